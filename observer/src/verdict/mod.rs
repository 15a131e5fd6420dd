//! What a leg should be and whether it is: the leg kind (DESIGN §2), the expected security set by
//! a policy object, and `ok` or a deviation. `leg` identifies the leg, `expect` derives what the
//! policy expects of it, `evaluate` judges it, `enrich` fills a JSON record.

mod enrich;
mod evaluate;
mod expect;
mod leg;
#[cfg(test)]
mod tests;

pub use enrich::enrich;
pub use evaluate::{Assessment, assess, judge};
pub use expect::{DEFAULT_MIN_TLS_MINOR, Destination, Source, TLS_PORTS, Want, parse_istio_sni, resolve_destination};
pub use leg::{
    EndFacts, HBONE_PORT, INBOUND_CAPTURE_PORT, LOCAL_INBOUND_V4, LOCAL_INBOUND_V6, LegFacts, OUTBOUND_CAPTURE_PORT,
    PROXY_COMMS, PROXY_UID, identify_leg, is_gateway,
};

use serde::Serialize;

/// The kind of connection leg (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
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

/// The security a policy expects on a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    Mtls,
    Tls,
    Plaintext,
    Any,
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
    pub expected: Option<Expected>,
    pub kind: Option<DeviationKind>,
    /// The policy object that set the expectation, as `Kind/namespace/name`.
    pub policy: Option<String>,
    pub reason: Option<String>,
}

impl Verdict {
    /// No policy applied (yet).
    pub fn unevaluated() -> Self {
        Self { status: Status::Unevaluated, expected: None, kind: None, policy: None, reason: None }
    }
}
