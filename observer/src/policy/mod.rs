//! The mesh policy the observer checks legs against: Istio's PeerAuthentication, DestinationRule,
//! Gateway and VirtualService, the mesh settings, and the observer's own `Expectation` kind.
//!
//! The model holds no wire types: manifests are read into raw serde types (`raw`), which convert
//! with `TryFrom` into the validated types here, each with an `Invalid*` error enum. Loading
//! (`load`) reads files and directories and reports every problem at once with file:line;
//! `reload` keeps the last good policy when a changed file is broken; `check` looks for the
//! documented mistakes. Evaluation of a leg against the policy lives in `crate::verdict`.

mod check;
mod destination_rule;
mod error;
mod expectation;
mod files;
mod gateway;
mod list;
pub(crate) mod load;
mod mesh;
mod peer_authentication;
pub(crate) mod raw;
mod reload;
#[cfg(test)]
mod tests;
/// Fixture loading shared by the tests of other modules.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::{fixture, testdata};
}

use std::{collections::BTreeMap, fmt, path::Path, sync::Arc};

pub use check::{Finding, FindingKind, check};
pub use destination_rule::{
    CLUSTER_DOMAIN, ClientTls, ClientTlsMode, DestinationRule, ExportTo, Host, InvalidDestinationRule, Subset,
    TlsOrigination, TrafficPolicy,
};
pub use error::{LoadError, LoadErrorKind, LoadErrors};
pub use expectation::{AllowPlaintext, Expectation, ExpectationRule, InvalidExpectation, IpNet, Peers, tls_minor};
pub use gateway::{
    Gateway, GatewayServer, GatewayTlsMode, InvalidGateway, InvalidVirtualService, Route, RouteKind, VirtualService,
    host_matches, hosts_overlap,
};
pub use load::{MAX_FILE_BYTES, Snapshot, load_paths, load_str, load_texts, manifest_files};
pub use mesh::{InvalidMeshSettings, MeshSettings};
pub use peer_authentication::{EffectiveMtls, InvalidPeerAuthentication, MtlsMode, PeerAuthentication};
pub use reload::{ConfigSource, FileSource, PolicyStore, ReloadOutcome};

/// A validation problem and the line (1-based, in the file) it was found on.
#[derive(Debug, PartialEq, Eq)]
pub struct At<E> {
    pub line: u32,
    pub error: E,
}

/// Kubernetes labels.
pub type Labels = BTreeMap<String, String>;

/// Where an object (or one of its fields) was written: file and 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub file: Arc<Path>,
    pub line: u32,
}

impl Origin {
    /// The same file at another line.
    pub fn at(&self, line: u32) -> Self {
        Self { file: Arc::clone(&self.file), line }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// Names a policy object in verdicts: `Kind/namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What every policy object has: its name, age and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub object: ObjectRef,
    /// `metadata.creationTimestamp` in seconds since the epoch; `None` sorts as the newest.
    pub created: Option<i64>,
    pub origin: Origin,
}

impl Meta {
    /// Sort key for "the oldest wins": creation time (unknown last), then name.
    pub fn age_key(&self) -> (bool, i64, &str, &str) {
        (self.created.is_none(), self.created.unwrap_or(0), &self.object.namespace, &self.object.name)
    }
}

/// A label selector (`matchLabels`); an empty one selects nothing in particular (namespace-wide).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector(pub Labels);

impl Selector {
    /// All of the selector's labels are on the workload.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The whole policy, validated.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub mesh: MeshSettings,
    pub peer_authentications: Vec<PeerAuthentication>,
    pub destination_rules: Vec<DestinationRule>,
    pub gateways: Vec<Gateway>,
    pub virtual_services: Vec<VirtualService>,
    pub expectations: Vec<Expectation>,
}

impl Policy {
    /// The embedded default: Istio's defaults (no PeerAuthentication means PERMISSIVE, auto mTLS
    /// on, root namespace `istio-system`). The port and TLS version rules of the default are
    /// applied by the verdict whatever the policy.
    pub fn embedded_default() -> Self {
        Self::default()
    }

    /// Orders objects so that "the oldest wins" is "the first wins".
    pub(crate) fn sort_by_age(&mut self) {
        self.peer_authentications.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.destination_rules.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.gateways.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.virtual_services.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.expectations.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
    }
}

/// `2026-11-26T14:00:00Z` (or with an offset / fraction) to seconds since the epoch.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(b.get(r)?).ok()?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        rest = &rest[1 + digits..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let d = |c: &u8| i64::from(c.wrapping_sub(b'0'));
            if ![h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let minutes = (d(h1) * 10 + d(h2)) * 60 + d(m1) * 10 + d(m2);
            if *sign == b'+' { minutes * 60 } else { -minutes * 60 }
        }
        _ => return None,
    };
    // Days from civil (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}
