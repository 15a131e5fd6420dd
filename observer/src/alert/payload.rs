//! Alertmanager v2 `PostableAlert` bodies: labels identify the alert (Alertmanager
//! deduplicates on them), annotations carry an example connection.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::export::{ConnectionRecord, EndpointRecord, attributes::spelling, rfc3339_millis};

/// The value of `alertname`.
pub const ALERT_NAME: &str = "ObserverDeviation";

/// What identifies one alert: bounded (workloads, never pods, addresses or client ports).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub kind: String,
    pub client_namespace: String,
    pub client_workload: String,
    pub server_namespace: String,
    pub server_workload: String,
    pub server_port: u16,
    pub policy: String,
}

fn workload(endpoint: &EndpointRecord) -> (String, String) {
    match &endpoint.owner {
        Some(owner) => (owner.namespace.clone(), owner.name.clone()),
        None => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

impl AlertKey {
    /// The key of a deviating record (`None` without a deviation kind).
    pub fn of(r: &ConnectionRecord) -> Option<Self> {
        let kind = spelling(&r.verdict.kind?).to_owned();
        let (client_namespace, client_workload) = workload(&r.client);
        let (server_namespace, server_workload) = workload(&r.server);
        Some(Self {
            kind,
            client_namespace,
            client_workload,
            server_namespace,
            server_workload,
            server_port: r.server.port,
            policy: r.verdict.policy.as_deref().unwrap_or("none").to_owned(),
        })
    }

    /// `critical` for traffic the policy says must be authenticated, `warning` otherwise.
    pub fn severity(&self) -> &'static str {
        match self.kind.as_str() {
            "unexpected_plaintext" | "missing_client_cert" => "critical",
            _ => "warning",
        }
    }
}

/// The latest connection of an alert, for its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    pub node: String,
    pub conn_id: String,
    pub client: String,
    pub server: String,
    pub client_pod: Option<String>,
    pub server_pod: Option<String>,
    pub client_process: Option<String>,
    pub server_process: Option<String>,
    pub security: String,
    pub protocol: String,
    pub evidence: Option<String>,
    pub expected: String,
    pub reason: Option<String>,
}

fn address(e: &EndpointRecord) -> String {
    if e.ip.contains(':') { format!("[{}]:{}", e.ip, e.port) } else { format!("{}:{}", e.ip, e.port) }
}

fn process(e: &EndpointRecord) -> Option<String> {
    e.process.as_ref().map(|p| format!("{} (pid {}, uid {})", p.comm, p.pid, p.uid))
}

impl Example {
    pub fn of(r: &ConnectionRecord) -> Self {
        Self {
            node: r.node.clone(),
            conn_id: r.conn_id.clone(),
            client: address(&r.client),
            server: address(&r.server),
            client_pod: r.client.workload.clone(),
            server_pod: r.server.workload.clone(),
            client_process: process(&r.client),
            server_process: process(&r.server),
            security: spelling(&r.security).to_owned(),
            protocol: spelling(&r.protocol).to_owned(),
            evidence: r.tls.as_ref().and_then(|t| t.evidence.as_ref()).map(|e| spelling(e).to_owned()),
            expected: spelling(&r.verdict.expected).to_owned(),
            reason: r.verdict.reason.as_deref().map(str::to_owned),
        }
    }
}

fn labels(key: &AlertKey) -> Value {
    json!({
        "alertname": ALERT_NAME,
        "kind": key.kind,
        "severity": key.severity(),
        "client_namespace": key.client_namespace,
        "client_workload": key.client_workload,
        "server_namespace": key.server_namespace,
        "server_workload": key.server_workload,
        "server_port": key.server_port.to_string(),
        "policy": key.policy,
    })
}

fn annotations(key: &AlertKey, e: &Example) -> Value {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    json!({
        "summary": format!(
            "{} from {}/{} to {}/{} port {}",
            key.kind, key.client_namespace, key.client_workload, key.server_namespace, key.server_workload, key.server_port
        ),
        "description": format!(
            "{} {} where {} expects {}{}",
            e.security, e.protocol, key.policy, e.expected,
            e.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
        ),
        "example_connection": format!("{} -> {} ({}, seen on {})", e.client, e.server, e.conn_id, e.node),
        "client_pod": or_dash(&e.client_pod),
        "server_pod": or_dash(&e.server_pod),
        "client_process": or_dash(&e.client_process),
        "server_process": or_dash(&e.server_process),
        "evidence": or_dash(&e.evidence),
    })
}

/// A firing alert; it ends by itself `resolve_after` from now unless re-sent.
pub fn firing(key: &AlertKey, example: &Example, starts_at: SystemTime, resolve_after: Duration) -> Value {
    let ends = SystemTime::now() + resolve_after;
    json!({
        "labels": labels(key),
        "annotations": annotations(key, example),
        "startsAt": rfc3339_millis(starts_at),
        "endsAt": rfc3339_millis(ends),
    })
}

/// The same alert, resolved now.
pub fn resolved(key: &AlertKey, example: &Example, starts_at: SystemTime) -> Value {
    json!({
        "labels": labels(key),
        "annotations": annotations(key, example),
        "startsAt": rfc3339_millis(starts_at),
        "endsAt": rfc3339_millis(SystemTime::now()),
    })
}
