//! PeerAuthentication: what a sidecar accepts on its inbound side, and how the mesh, namespace,
//! workload and port levels combine (docs/MESH.md, "PeerAuthentication"): the most specific level that is not UNSET
//! decides; nothing at all means PERMISSIVE; at equal scope the oldest object wins.
//! `portLevelMtls` counts only with a selector, and its keys are container ports.

use std::collections::{BTreeMap, HashMap};

use super::{Policy, raw};
use crate::manifest::{At, Doc, Labels, Meta, ObjectRef, Selector};

/// `mtls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MtlsMode {
    /// Inherit from the parent scope.
    Unset,
    /// Plaintext only.
    Disable,
    /// mTLS and plaintext.
    Permissive,
    /// mTLS only.
    Strict,
}

impl MtlsMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "UNSET" => Self::Unset,
            "DISABLE" => Self::Disable,
            "PERMISSIVE" => Self::Permissive,
            "STRICT" => Self::Strict,
            _ => return None,
        })
    }
}

/// A validated PeerAuthentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAuthentication {
    pub meta: Meta,
    /// `None` (or empty `matchLabels`): namespace-wide, or mesh-wide in the root namespace.
    pub selector: Option<Selector>,
    pub mode: MtlsMode,
    /// Keyed by container port. Ignored without a selector (as Istio does).
    pub port_modes: BTreeMap<u16, MtlsMode>,
}

/// Why a PeerAuthentication is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPeerAuthentication {
    /// `mtls.mode` is not UNSET, DISABLE, PERMISSIVE or STRICT.
    #[error("unknown mTLS mode {0:?} (expected UNSET, DISABLE, PERMISSIVE or STRICT)")]
    UnknownMode(String),
    /// A `portLevelMtls` key that is not a port number 1-65535.
    #[error("portLevelMtls key {0:?} is not a port number 1-65535")]
    InvalidPort(String),
}

impl TryFrom<Doc<raw::RawPeerAuthenticationSpec>> for PeerAuthentication {
    type Error = Vec<At<InvalidPeerAuthentication>>;

    fn try_from(doc: Doc<raw::RawPeerAuthenticationSpec>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let mode_of = |mtls: &raw::RawMtls, errors: &mut Vec<_>| match &mtls.mode {
            None => MtlsMode::Unset,
            Some(m) => MtlsMode::parse(&m.value).unwrap_or_else(|| {
                errors.push(At { line: doc.line(m), error: InvalidPeerAuthentication::UnknownMode(m.value.clone()) });
                MtlsMode::Unset
            }),
        };
        let spec = &doc.spec;
        let mode = spec.mtls.as_ref().map_or(MtlsMode::Unset, |m| mode_of(m, &mut errors));
        let mut port_modes = BTreeMap::new();
        for (key, mtls) in spec.port_level_mtls.iter().flatten() {
            let port_mode = mode_of(mtls, &mut errors);
            match key.trim().parse::<u16>() {
                Ok(port) if port > 0 => {
                    port_modes.insert(port, port_mode);
                }
                _ => errors.push(At {
                    line: mtls.mode.as_ref().map_or(doc.meta.origin.line, |m| doc.line(m)),
                    error: InvalidPeerAuthentication::InvalidPort(key.clone()),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let selector = spec.selector.as_ref().map(|s| Selector(s.match_labels.clone())).filter(|s| !s.is_empty());
        Ok(Self { meta: doc.meta, selector, mode, port_modes })
    }
}

/// The mode a workload's sidecar enforces on one port, and the object that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveMtls {
    pub mode: MtlsMode,
    /// `None`: no policy applies, Istio's default PERMISSIVE.
    pub set_by: Option<ObjectRef>,
}

/// The namespace-wide PeerAuthentication of each namespace, indexed once.
pub struct NamespaceModes<'a> {
    oldest: HashMap<&'a str, &'a PeerAuthentication>,
    mesh: Option<&'a PeerAuthentication>,
}

impl NamespaceModes<'_> {
    /// The same answer as [`Policy::namespace_mtls`].
    pub fn get(&self, namespace: &str) -> EffectiveMtls {
        layered([self.mesh, self.oldest.get(namespace).copied()])
    }
}

/// The mode of the mesh-wide, then the namespace-wide PeerAuthentication: the later one set wins.
fn layered(levels: [Option<&PeerAuthentication>; 2]) -> EffectiveMtls {
    let mut effective = EffectiveMtls { mode: MtlsMode::Permissive, set_by: None };
    for pa in levels.into_iter().flatten() {
        if pa.mode != MtlsMode::Unset {
            effective = EffectiveMtls { mode: pa.mode, set_by: Some(pa.meta.object.clone()) };
        }
    }
    effective
}

impl Policy {
    fn oldest_pa(&self, namespace: &str, labels: Option<&Labels>) -> Option<&PeerAuthentication> {
        // `peer_authentications` is sorted by age: the first match is the oldest.
        self.peer_authentications.iter().find(|pa| {
            pa.meta.object.namespace == namespace
                && match (&pa.selector, labels) {
                    (None, None) => true,
                    (Some(sel), Some(labels)) => sel.matches(labels),
                    _ => false,
                }
        })
    }

    /// The mesh-wide and namespace-wide mode only: what auto mTLS clients infer (docs/MESH.md, "Auto mTLS").
    pub fn namespace_mtls(&self, namespace: &str) -> EffectiveMtls {
        layered([self.oldest_pa(&self.mesh.root_namespace, None), self.oldest_pa(namespace, None)])
    }

    /// [`Policy::namespace_mtls`] for many namespaces: one pass over the PeerAuthentications,
    /// then each namespace in O(1) (`observer check` asks once per PeerAuthentication).
    pub fn namespace_modes(&self) -> NamespaceModes<'_> {
        let mut oldest = HashMap::new();
        for pa in self.peer_authentications.iter().filter(|pa| pa.selector.is_none()) {
            // Sorted by age: the first namespace-wide one of a namespace is its oldest.
            oldest.entry(pa.meta.object.namespace.as_str()).or_insert(pa);
        }
        let mesh = oldest.get(self.mesh.root_namespace.as_str()).copied();
        NamespaceModes { oldest, mesh }
    }

    /// What the sidecar of a workload (namespace, labels) enforces on a container port
    /// (`None` when the port is not known, e.g. the leg was seen only at 15006).
    pub fn workload_mtls(&self, namespace: &str, labels: &Labels, port: Option<u16>) -> EffectiveMtls {
        let mut effective = self.namespace_mtls(namespace);
        if let Some(pa) = self.oldest_pa(namespace, Some(labels)) {
            let mut set = |mode: MtlsMode| {
                if mode != MtlsMode::Unset {
                    effective = EffectiveMtls { mode, set_by: Some(pa.meta.object.clone()) };
                }
            };
            set(pa.mode);
            if let Some(mode) = port.and_then(|p| pa.port_modes.get(&p)) {
                set(*mode);
            }
        }
        effective
    }
}
