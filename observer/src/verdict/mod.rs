//! What a leg should be and whether it is: the leg kind (DESIGN §2), the expected security set by
//! a policy object, and `ok` or a deviation. Values only; evaluation lives with the policy.

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
    /// Plaintext to a PERMISSIVE workload: fine today, refused once the workload is STRICT.
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
    pub fn unevaluated() -> Self {
        Self { status: Status::Unevaluated, expected: None, kind: None, policy: None, reason: None }
    }
}
