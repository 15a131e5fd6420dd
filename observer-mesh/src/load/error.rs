//! Load errors: every problem in the input, each with its file and line, reported together.

use std::{fmt, path::PathBuf};

use observer_wire::printable::Escaped;

use crate::{
    inventory::{InvalidPod, InvalidService},
    manifest::{FileError, NameRule},
    policy::{
        InvalidDestinationRule, InvalidExpectation, InvalidGateway, InvalidMeshSettings, InvalidPeerAuthentication,
        InvalidVirtualService,
    },
};

/// One problem in the input.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}{}: {}",
    Escaped(&file.to_string_lossy()),
    if *line > 0 { format!(":{line}") } else { String::new() },
    Escaped(&kind.to_string())
)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file itself.
    pub line: u32,
    pub kind: LoadErrorKind,
}

/// What is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// The path could not be read.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A folder without any `*.yaml` or `*.yml` file (for `observer check`).
    #[error("no manifests (*.yaml, *.yml) in this folder")]
    NoManifests,
    /// A manifest file that could not be read (too large, not text).
    #[error("{0}")]
    File(#[from] FileError),
    /// Not valid YAML, or not the shape the kind has.
    #[error("{0}")]
    Yaml(String),
    /// A `kind: List` with more bad items than are reported: how many errors were not shown
    /// (`at_least` when counting them stopped too).
    #[error("{}{count} more errors in this List not shown (the first {shown} are)", if *at_least { "at least " } else { "" })]
    ListErrorsNotShown { count: usize, at_least: bool, shown: usize },
    /// A document without `apiVersion` or `kind`.
    #[error("document has no apiVersion/kind")]
    NotAnObject,
    /// A kind the observer reads, at a version it does not know.
    #[error("{kind} {api_version} is not supported (expected {expected})")]
    UnsupportedVersion { api_version: String, kind: String, expected: &'static str },
    /// `metadata.name` is missing.
    #[error("metadata.name is required")]
    MissingName,
    /// `metadata.name` or `metadata.namespace` is not a name Kubernetes accepts.
    #[error("{field} \"{value}\" is not {rule}")]
    InvalidName { field: &'static str, value: String, rule: NameRule },
    /// `metadata.creationTimestamp` is not RFC 3339.
    #[error("metadata.creationTimestamp {0:?} is not an RFC 3339 time")]
    InvalidTimestamp(String),
    /// The same object twice.
    #[error("{object} is also defined at {first}")]
    Duplicate { object: String, first: String },
    #[error("PeerAuthentication: {0}")]
    PeerAuthentication(#[from] InvalidPeerAuthentication),
    #[error("DestinationRule: {0}")]
    DestinationRule(#[from] InvalidDestinationRule),
    #[error("Gateway: {0}")]
    Gateway(#[from] InvalidGateway),
    #[error("VirtualService: {0}")]
    VirtualService(#[from] InvalidVirtualService),
    #[error("Expectation: {0}")]
    Expectation(#[from] InvalidExpectation),
    #[error("mesh settings: {0}")]
    MeshSettings(#[from] InvalidMeshSettings),
    #[error("Pod: {0}")]
    Pod(#[from] InvalidPod),
    #[error("Service: {0}")]
    Service(#[from] InvalidService),
}

/// Every problem found, in file and line order.
#[derive(Debug, Default)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}
