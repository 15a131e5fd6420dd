//! The mesh policy the observer checks legs against: Istio's PeerAuthentication, DestinationRule,
//! Gateway and VirtualService, the mesh settings, and the observer's own `Expectation` kind.
//!
//! The model holds no wire types: manifests are read into raw serde types (`raw`), which convert
//! with `TryFrom` into the validated types here, each with an `Invalid*` error enum. Reading
//! manifests is [`crate::load`]'s, the static analysis of `observer check` is [`crate::check`],
//! and judging a leg against the policy is [`crate::verdict`]'s.

mod destination_rule;
mod expectation;
mod gateway;
mod mesh;
mod peer_authentication;
pub(crate) mod raw;
#[cfg(test)]
pub(crate) mod tests;

use serde::Serialize;

pub use destination_rule::{
    ClientTls, ClientTlsMode, DestinationRule, ExportTo, Host, InvalidDestinationRule, Subset, TlsOrigination,
    TrafficPolicy,
};
pub use expectation::{AllowPlaintext, Expectation, ExpectationRule, InvalidExpectation, IpNet, Peers, tls_minor};
pub use gateway::{
    Gateway, GatewayServer, GatewayTlsMode, InvalidGateway, InvalidVirtualService, Route, RouteKind, VirtualService,
    host_matches, hosts_overlap,
};
pub use mesh::{InvalidMeshSettings, MeshSettings};
pub use peer_authentication::{EffectiveMtls, InvalidPeerAuthentication, MtlsMode, NamespaceModes, PeerAuthentication};

/// Well-known ports of TLS-only protocols: plaintext to them is a deviation under the embedded
/// default, unless a policy object expects or allows plaintext there.
pub const TLS_PORTS: [u16; 11] = [443, 465, 636, 853, 989, 990, 993, 995, 5671, 6443, 8443];
/// The embedded default's lowest acceptable TLS version (minor number: TLS 1.2).
pub const DEFAULT_MIN_TLS_MINOR: u8 = 2;

/// The security a policy object requires of a leg (`expected` in the JSON record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequiredSecurity {
    Mtls,
    Tls,
    Plaintext,
    Any,
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
    pub fn sort_by_age(&mut self) {
        self.peer_authentications.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.destination_rules.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.gateways.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.virtual_services.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
        self.expectations.sort_by(|a, b| a.meta.age_key().cmp(&b.meta.age_key()));
    }
}
