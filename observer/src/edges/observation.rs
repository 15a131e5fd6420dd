//! What the edge table reads of one record: borrowed fields and enum spellings, taken either
//! from a [`ConnectionRecord`] (the daemon, a replay) or from one JSON line of `observer run` /
//! `observer replay` output. Both paths end in the same [`Observation`], so a file of JSON lines
//! and the daemon that printed it build the same table.

use serde::Deserialize;

use observer_mesh::verdict::{DeviationKind, LegKind, RequiredSecurity, Status};
use observer_wire::classify::{ClientCert, Security};

use crate::export::ConnectionRecord;

/// One end of a leg as the edge table sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct EndView<'a> {
    pub ip: &'a str,
    pub port: u16,
    pub workload: Option<&'a str>,
    pub process: Option<&'a str>,
}

/// The fields of one record the edge table aggregates.
#[derive(Clone, Copy, Debug, Default)]
pub struct Observation<'a> {
    pub time: &'a str,
    pub node: &'a str,
    pub conn_id: &'a str,
    pub client: EndView<'a>,
    pub server: EndView<'a>,
    pub leg: &'a str,
    pub security: &'a str,
    pub client_cert: Option<&'a str>,
    pub status: &'a str,
    pub kind: Option<&'a str>,
    pub expected: Option<&'a str>,
    pub policy: Option<&'a str>,
}

impl<'a> Observation<'a> {
    pub fn of(record: &'a ConnectionRecord) -> Self {
        let end = |e: &'a crate::export::EndpointRecord| EndView {
            ip: &e.ip,
            port: e.port,
            workload: e.workload.as_deref(),
            process: e.process.as_ref().map(|p| &*p.comm),
        };
        Self {
            time: &record.time,
            node: &record.node,
            conn_id: &record.conn_id,
            client: end(&record.client),
            server: end(&record.server),
            leg: leg_name(record.leg),
            security: security_name(record.security),
            client_cert: record.tls.as_ref().and_then(|t| t.client_cert).map(client_cert_name),
            status: status_name(record.verdict.status),
            kind: record.verdict.kind.map(deviation_name),
            expected: record.verdict.expected.map(required_name),
            policy: record.verdict.policy.as_deref(),
        }
    }
}

/// The subset of a JSON record line that the edge table reads; unknown fields are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RecordLine {
    time: String,
    node: String,
    conn_id: String,
    client: EndLine,
    server: EndLine,
    leg: String,
    security: String,
    tls: Option<TlsLine>,
    verdict: VerdictLine,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EndLine {
    ip: String,
    port: u16,
    workload: Option<String>,
    process: Option<ProcessLine>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessLine {
    comm: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TlsLine {
    client_cert: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VerdictLine {
    status: String,
    kind: Option<String>,
    expected: Option<String>,
    policy: Option<String>,
}

impl RecordLine {
    /// Whether the line had what every record has (a JSON object of another kind has not).
    pub fn is_record(&self) -> bool {
        !self.conn_id.is_empty() && !self.security.is_empty() && !self.leg.is_empty() && !self.time.is_empty()
    }

    pub fn observation(&self) -> Observation<'_> {
        fn end(e: &EndLine) -> EndView<'_> {
            EndView {
                ip: &e.ip,
                port: e.port,
                workload: e.workload.as_deref(),
                process: e.process.as_ref().map(|p| &*p.comm),
            }
        }
        Observation {
            time: &self.time,
            node: &self.node,
            conn_id: &self.conn_id,
            client: end(&self.client),
            server: end(&self.server),
            leg: &self.leg,
            security: &self.security,
            client_cert: self.tls.as_ref().and_then(|t| t.client_cert.as_deref()),
            status: &self.verdict.status,
            kind: self.verdict.kind.as_deref(),
            expected: self.verdict.expected.as_deref(),
            policy: self.verdict.policy.as_deref(),
        }
    }
}

// The spellings below are the JSON record's (docs/OUTPUT.md); `spellings_match_the_record`
// checks them against serde.

pub fn security_name(s: Security) -> &'static str {
    match s {
        Security::Plaintext => "plaintext",
        Security::Tls => "tls",
        Security::Mtls => "mtls",
        Security::Unknown => "unknown",
    }
}

fn client_cert_name(c: ClientCert) -> &'static str {
    match c {
        ClientCert::Presented => "presented",
        ClientCert::RequestedNotPresented => "requested_not_presented",
        ClientCert::NotRequested => "not_requested",
        ClientCert::Resumed => "resumed",
        ClientCert::Unknown => "unknown",
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Deviation => "deviation",
        Status::Unevaluated => "unevaluated",
    }
}

fn required_name(r: RequiredSecurity) -> &'static str {
    match r {
        RequiredSecurity::Mtls => "mtls",
        RequiredSecurity::Tls => "tls",
        RequiredSecurity::Plaintext => "plaintext",
        RequiredSecurity::Any => "any",
    }
}

fn leg_name(l: LegKind) -> &'static str {
    match l {
        LegKind::ExternalInbound => "external_inbound",
        LegKind::LocalInbound => "local_inbound",
        LegKind::LocalOutbound => "local_outbound",
        LegKind::ExternalOutbound => "external_outbound",
        LegKind::GatewayDownstream => "gateway_downstream",
        LegKind::GatewayUpstream => "gateway_upstream",
        LegKind::Hbone => "hbone",
        LegKind::Direct => "direct",
        LegKind::Unknown => "unknown",
    }
}

fn deviation_name(k: DeviationKind) -> &'static str {
    match k {
        DeviationKind::UnexpectedPlaintext => "unexpected_plaintext",
        DeviationKind::MissingClientCert => "missing_client_cert",
        DeviationKind::UnexpectedTls => "unexpected_tls",
        DeviationKind::DoubleTls => "double_tls",
        DeviationKind::TlsOnPlaintextPort => "tls_on_plaintext_port",
        DeviationKind::PlaintextOnTlsPort => "plaintext_on_tls_port",
        DeviationKind::WeakTlsVersion => "weak_tls_version",
        DeviationKind::WouldBreakUnderStrict => "would_break_under_strict",
        _ => "other_deviation",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: serde::Serialize>(v: T) -> String {
        serde_json::to_value(v).expect("present").as_str().expect("present").to_owned()
    }

    #[test]
    fn spellings_match_the_record() {
        for s in [Security::Plaintext, Security::Tls, Security::Mtls, Security::Unknown] {
            assert_eq!(security_name(s), serde_name(s));
        }
        use ClientCert::*;
        for c in [Presented, RequestedNotPresented, NotRequested, Resumed, Unknown] {
            assert_eq!(client_cert_name(c), serde_name(c));
        }
        for s in [Status::Ok, Status::Deviation, Status::Unevaluated] {
            assert_eq!(status_name(s), serde_name(s));
        }
        use RequiredSecurity as R;
        for r in [R::Mtls, R::Tls, R::Plaintext, R::Any] {
            assert_eq!(required_name(r), serde_name(r));
        }
        use LegKind as L;
        for l in [
            L::ExternalInbound,
            L::LocalInbound,
            L::LocalOutbound,
            L::ExternalOutbound,
            L::GatewayDownstream,
            L::GatewayUpstream,
            L::Hbone,
            L::Direct,
            L::Unknown,
        ] {
            assert_eq!(leg_name(l), serde_name(l));
        }
        use DeviationKind as D;
        for k in [
            D::UnexpectedPlaintext,
            D::MissingClientCert,
            D::UnexpectedTls,
            D::DoubleTls,
            D::TlsOnPlaintextPort,
            D::PlaintextOnTlsPort,
            D::WeakTlsVersion,
            D::WouldBreakUnderStrict,
        ] {
            assert_eq!(deviation_name(k), serde_name(k));
        }
    }
}
