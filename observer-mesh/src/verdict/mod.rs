//! The verdict on a classified leg, in three steps that only look down:
//! - [`leg_kind`]: which leg of the mesh it is (docs/MESH.md, "Legs"), from the sockets' own
//!   addresses, their processes and the inventory;
//! - [`requirements`]: what the policy requires of that leg, each requirement naming the object
//!   that set it; it never looks at what was observed;
//! - [`decide`]: one step that holds the requirements against the classification and picks
//!   the verdict (`ok`, a deviation, or unevaluated), with the identities of both ends.

mod decide;
mod leg_kind;
mod requirements;
#[cfg(test)]
mod tests;

pub use decide::{Assessment, EndIdentity, assess, judge};
pub use leg_kind::{
    EndFacts, HBONE_PORT, INBOUND_CAPTURE_PORT, LOCAL_INBOUND_V4, LOCAL_INBOUND_V6, LegFacts, OUTBOUND_CAPTURE_PORT,
    PROXY_COMMS, PROXY_UID, identify_leg, is_gateway,
};
pub use requirements::{Destination, Requirement, Requirements, Source, parse_istio_sni, resolve_destination};
use std::borrow::Cow;

use serde::Serialize;

pub use crate::policy::RequiredSecurity;

/// The kind of connection leg (docs/MESH.md, "Legs").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegKind {
    ExternalInbound,
    LocalInbound,
    LocalOutbound,
    ExternalOutbound,
    GatewayDownstream,
    GatewayUpstream,
    Hbone,
    /// Neither end has a sidecar.
    Direct,
    Unknown,
}

/// Whether a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Deviation,
    /// No policy applied, or the leg's security is unknown.
    Unevaluated,
}

/// How reality differs from the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviationKind {
    UnexpectedPlaintext,
    MissingClientCert,
    UnexpectedTls,
    DoubleTls,
    TlsOnPlaintextPort,
    PlaintextOnTlsPort,
    WeakTlsVersion,
    /// Plaintext (or TLS without a client certificate) to a PERMISSIVE workload: fine today,
    /// refused once the workload is STRICT. Reported with status `ok`, not as an alert.
    WouldBreakUnderStrict,
}

/// The verdict on one leg.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub expected: Option<RequiredSecurity>,
    pub kind: Option<DeviationKind>,
    /// The policy object that set the requirement, as `Kind/namespace/name`, or `default` for
    /// the observer's embedded default. Fixed texts are borrowed: most legs' verdicts allocate
    /// nothing.
    pub policy: Option<Cow<'static, str>>,
    pub reason: Option<Cow<'static, str>>,
}

impl Verdict {
    /// No policy applied (yet).
    pub fn unevaluated() -> Self {
        Self { status: Status::Unevaluated, expected: None, kind: None, policy: None, reason: None }
    }
}
