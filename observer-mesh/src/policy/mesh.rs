//! Mesh-wide settings: the root namespace (mesh-wide PeerAuthentication and fallback
//! DestinationRules live there), auto mTLS and the trust domain of SPIFFE identities. Read from
//! the `istio` ConfigMap's `data.mesh` (as istiod reads it); Istio's defaults otherwise.

use super::raw;
use crate::manifest::{At, Origin};

/// Istio's default root namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The mesh settings that change what a leg should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshSettings {
    pub root_namespace: String,
    /// `enableAutoMtls` (on by default).
    pub auto_mtls: bool,
    pub trust_domain: String,
    /// The ConfigMap they came from, if any.
    pub origin: Option<Origin>,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_owned(),
            auto_mtls: true,
            trust_domain: DEFAULT_TRUST_DOMAIN.to_owned(),
            origin: None,
        }
    }
}

/// Why the mesh settings are rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMeshSettings {
    /// `data.mesh` is not a YAML mapping of MeshConfig.
    #[error("data.mesh is not valid MeshConfig YAML: {0}")]
    MeshYaml(String),
    /// An empty root namespace or trust domain.
    #[error("{0} must not be empty")]
    Empty(&'static str),
}

impl MeshSettings {
    /// Reads `data.mesh` of the `istio` ConfigMap; `line` is where `mesh:` is written.
    pub(crate) fn from_mesh_yaml(text: &str, origin: Origin, line: u32) -> Result<Self, Vec<At<InvalidMeshSettings>>> {
        let parsed: Result<Option<raw::RawMeshConfig>, _> = serde_saphyr::from_str(text);
        let config = match parsed {
            Ok(config) => config.unwrap_or_default(),
            Err(e) => {
                let inner = e.location().map_or(0, |l| u32::try_from(l.line()).unwrap_or(0));
                return Err(vec![At {
                    line: line + inner,
                    error: InvalidMeshSettings::MeshYaml(crate::manifest::yaml_message(&e)),
                }]);
            }
        };
        let defaults = Self::default();
        let settings = Self {
            root_namespace: config.root_namespace.unwrap_or(defaults.root_namespace),
            auto_mtls: config.enable_auto_mtls.unwrap_or(true),
            trust_domain: config.trust_domain.unwrap_or(defaults.trust_domain),
            origin: Some(origin),
        };
        let mut errors = Vec::new();
        if settings.root_namespace.is_empty() {
            errors.push(At { line, error: InvalidMeshSettings::Empty("rootNamespace") });
        }
        if settings.trust_domain.is_empty() {
            errors.push(At { line, error: InvalidMeshSettings::Empty("trustDomain") });
        }
        if errors.is_empty() { Ok(settings) } else { Err(errors) }
    }
}
