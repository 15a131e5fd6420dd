//! Metric and attribute names. OpenTelemetry semantic conventions where one exists
//! (`server.port`, `network.*`, `tls.protocol.version`, `error.type`, `k8s.src.*`/`k8s.dst.*`
//! for the two ends as eBPF network instrumentations spell them), `observer.*` where none does.
//! The Prometheus exposition replaces dots with underscores and appends `_total` to counters
//! and the unit (`_seconds`, `_bytes`) where it is one Prometheus knows.

use opentelemetry::KeyValue;

use super::{ConnectionRecord, EndpointRecord};
use observer_mesh::verdict::DeviationKind;

/// Instrument names (OTLP). Prometheus: `observer_connections_total`, ...
pub mod names {
    pub const CONNECTIONS: &str = "observer.connections";
    pub const DEVIATIONS: &str = "observer.policy.deviations";
    pub const DISSECT_ERRORS: &str = "observer.dissect.errors";
    pub const OVERFLOW: &str = "observer.metrics.overflow";
    pub const CAPTURE_LOST: &str = "observer.capture.lost";
    pub const TRACKED: &str = "observer.connections.tracked";
    pub const ORPHAN_CLOSES: &str = "observer.capture.orphan_closes";
    pub const UNKNOWN_LEG_EVENTS: &str = "observer.capture.unknown_leg_events";
    pub const IDLE_EXPIRED: &str = "observer.connections.idle_expired";
    pub const HANDSHAKE_EXPIRED: &str = "observer.connections.handshake_expired";
    pub const EBPF_RUN_TIME: &str = "observer.ebpf.run.time";
    pub const EBPF_RUNS: &str = "observer.ebpf.runs";
    pub const POLICY_RELOADS: &str = "observer.policy.reloads";
    pub const WATCH_ERRORS: &str = "observer.kubernetes.watch.errors";
    pub const EXPORT_FAILURES: &str = "observer.export.failures";
    pub const ALERTS_SENT: &str = "observer.alerts.sent";
    pub const ALERT_FAILURES: &str = "observer.alerts.delivery.failures";
    pub const PROCESS_CPU_TIME: &str = "process.cpu.time";
    pub const PROCESS_MEMORY: &str = "process.memory.usage";
}

pub const OVERFLOW: &str = "otel.metric.overflow";
pub const METRIC: &str = "observer.metric";
pub const LEG: &str = "observer.leg";
pub const SECURITY: &str = "observer.connection.security";
pub const VERDICT: &str = "observer.verdict";
pub const EXPECTED: &str = "observer.verdict.expected";
pub const OBSERVED_AT: &str = "observer.observed_at";
pub const DEVIATION_KIND: &str = "observer.deviation.kind";
pub const POLICY: &str = "observer.policy";
pub const CLIENT_CERT: &str = "observer.tls.client_cert";
pub const STAGE: &str = "observer.stage";
pub const PROGRAM: &str = "observer.ebpf.program";
pub const RESULT: &str = "observer.result";
pub const RESOURCE: &str = "observer.kubernetes.resource";
pub const EXPORTER: &str = "observer.exporter";
pub const ERROR_TYPE: &str = "error.type";
pub const PROTOCOL_NAME: &str = "network.protocol.name";
pub const PROTOCOL_VERSION: &str = "network.protocol.version";
pub const TRANSPORT: &str = "network.transport";
pub const NETWORK_TYPE: &str = "network.type";
pub const SERVER_PORT: &str = "server.port";
pub const TLS_VERSION: &str = "tls.protocol.version";
pub const CPU_MODE: &str = "cpu.mode";

/// The JSON spelling of a serializable unit enum value ("unknown" if it has none), without
/// serializing anything: it is asked for several times per record.
pub fn spelling<T: serde::Serialize>(value: &T) -> &'static str {
    observer_wire::names::unit_name(value).unwrap_or("unknown")
}

/// `k8s.<side>.namespace`, `k8s.<side>.owner.type`, `k8s.<side>.owner.name` of an end the
/// inventory knows; nothing for one it does not (an address outside the cluster).
fn owner(out: &mut Vec<KeyValue>, side: &str, endpoint: &EndpointRecord) {
    if let Some(owner) = &endpoint.owner {
        out.push(KeyValue::new(format!("k8s.{side}.namespace"), owner.namespace.clone()));
        out.push(KeyValue::new(format!("k8s.{side}.owner.type"), owner.kind.clone()));
        out.push(KeyValue::new(format!("k8s.{side}.owner.name"), owner.name.clone()));
    }
}

/// `network.protocol.name` (and version) in the semantic conventions' spelling.
fn protocol(out: &mut Vec<KeyValue>, protocol: &str) {
    let (name, version) = match protocol {
        "http1" => ("http", Some("1.1")),
        "http2" => ("http", Some("2")),
        "postgres" => ("postgresql", None),
        "unknown" => return,
        other => (other, None),
    };
    out.push(KeyValue::new(PROTOCOL_NAME, name.to_owned()));
    if let Some(version) = version {
        out.push(KeyValue::new(PROTOCOL_VERSION, version));
    }
}

fn network(out: &mut Vec<KeyValue>, r: &ConnectionRecord) {
    out.push(KeyValue::new(TRANSPORT, "tcp"));
    out.push(KeyValue::new(NETWORK_TYPE, if r.server.ip.contains(':') { "ipv6" } else { "ipv4" }));
    out.push(KeyValue::new(SERVER_PORT, i64::from(r.server.port)));
}

/// The attributes of `observer.connections`. `observer.observed_at` lets a query over every
/// node count a leg seen at both ends (by the client's node and the server's) once;
/// `observer.policy` and `observer.verdict.expected` say which policy judged it and what it
/// required, so that the server's PeerAuthentication mode can be read back (`observer edges
/// --prometheus`). All three are bounded: enum values, and the policy objects of the inventory.
pub fn connection(r: &ConnectionRecord) -> Vec<KeyValue> {
    let mut out = vec![
        KeyValue::new(LEG, spelling(&r.leg)),
        KeyValue::new(SECURITY, spelling(&r.security)),
        KeyValue::new(VERDICT, spelling(&r.verdict.status)),
        KeyValue::new(OBSERVED_AT, spelling(&r.observed_at)),
    ];
    if let Some(expected) = &r.verdict.expected {
        out.push(KeyValue::new(EXPECTED, spelling(expected)));
    }
    if let Some(policy) = &r.verdict.policy {
        out.push(KeyValue::new(POLICY, policy.clone()));
    }
    protocol(&mut out, spelling(&r.protocol));
    network(&mut out, r);
    if let Some(tls) = &r.tls {
        if let Some(version) = &tls.version {
            out.push(KeyValue::new(TLS_VERSION, version.clone()));
        }
        if let Some(cert) = &tls.client_cert {
            out.push(KeyValue::new(CLIENT_CERT, spelling(cert)));
        }
    }
    owner(&mut out, "src", &r.client);
    owner(&mut out, "dst", &r.server);
    out
}

/// The attributes of `observer.policy.deviations`.
pub fn deviation(r: &ConnectionRecord, kind: DeviationKind) -> Vec<KeyValue> {
    let mut out = vec![
        KeyValue::new(DEVIATION_KIND, spelling(&kind)),
        KeyValue::new(LEG, spelling(&r.leg)),
        KeyValue::new(OBSERVED_AT, spelling(&r.observed_at)),
    ];
    if let Some(policy) = &r.verdict.policy {
        out.push(KeyValue::new(POLICY, policy.clone()));
    }
    network(&mut out, r);
    owner(&mut out, "src", &r.client);
    owner(&mut out, "dst", &r.server);
    out
}
