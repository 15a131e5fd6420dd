//! The edge map as data: what `GET /v1/edges` serves and `observer edges --from` reads back, so
//! the daemon's answer and the CLI's are computed by the same code from the same values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::TableStats;

/// Every edge of a table (or of a filter over it), with the table's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stats: TableStats,
    /// The earliest and latest record time seen (RFC 3339), the observation window.
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    /// Most recently seen first.
    pub edges: Vec<Edge>,
}

/// One client → server:port edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub client: End,
    pub server: End,
    pub port: u16,
    pub connections: u64,
    pub security: SecurityMix,
    /// Connections by `tls.client_cert` (`none` for legs without TLS).
    pub client_cert: BTreeMap<String, u64>,
    /// Deviations by kind.
    pub deviations: BTreeMap<String, u64>,
    /// Connections fine today that a STRICT server would refuse.
    pub would_break_under_strict: u64,
    /// The policy object of the latest record (`Kind/namespace/name`, or `default`).
    pub policy: Option<String>,
    /// The server's PeerAuthentication mode as the latest judged record implies it.
    pub mode: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// One connection of the edge: the first deviating one, else the first.
    pub example: Example,
}

/// An end of an edge.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// `namespace/pod` when the inventory knows it.
    pub workload: Option<String>,
    /// The address (the latest seen, for a workload).
    pub ip: String,
    /// The client's process name, when its socket was on the observing node.
    pub process: Option<String>,
}

/// Connections by `security`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityMix {
    pub plaintext: u64,
    pub tls: u64,
    pub mtls: u64,
    pub unknown: u64,
}

/// One connection of an edge, to find it in the JSON lines.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub conn_id: String,
    pub node: String,
    pub time: String,
    pub leg: String,
    pub security: String,
    /// The verdict's kind, else its status.
    pub verdict: Option<String>,
}

impl SecurityMix {
    pub fn add(&mut self, security: &str) {
        match security {
            "plaintext" => self.plaintext += 1,
            "tls" => self.tls += 1,
            "mtls" => self.mtls += 1,
            _ => self.unknown += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.plaintext + self.tls + self.mtls + self.unknown
    }

    /// `mtls 3, plaintext 1`: the non-zero counts, largest first.
    pub fn summary(&self) -> String {
        let mut parts =
            [("mtls", self.mtls), ("tls", self.tls), ("plaintext", self.plaintext), ("unknown", self.unknown)];
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let parts: Vec<String> = parts.iter().filter(|p| p.1 > 0).map(|(k, n)| format!("{k} {n}")).collect();
        parts.join(", ")
    }
}

impl End {
    /// The name shown for people: the workload, else the address (and process).
    pub fn label(&self) -> String {
        match (&self.workload, &self.process) {
            (Some(w), _) => w.clone(),
            (None, Some(p)) => format!("{} ({p})", self.ip),
            (None, None) => self.ip.clone(),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        self.workload.as_deref().and_then(|w| w.split_once('/')).map(|(ns, _)| ns)
    }

    /// Whether this end is workload `w`, given as `pod` or `namespace/pod`.
    pub fn is_workload(&self, w: &str) -> bool {
        let Some(workload) = self.workload.as_deref() else { return false };
        workload == w || workload.split_once('/').is_some_and(|(_, pod)| pod == w)
    }
}

impl Edge {
    /// Plaintext or TLS without a client certificate, or any deviation: drawn red.
    pub fn is_weak(&self) -> bool {
        self.security.plaintext + self.security.tls > 0
            || !self.deviations.is_empty()
            || self.would_break_under_strict > 0
    }
}

/// Which edges to keep: every given filter must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Either end in this namespace.
    pub namespace: Option<String>,
    /// Either end is this workload (`pod` or `namespace/pod`).
    pub workload: Option<String>,
    /// At least one connection with this `security`.
    pub security: Option<String>,
}

impl Filter {
    pub fn keeps(&self, edge: &Edge) -> bool {
        let ends = [&edge.client, &edge.server];
        self.namespace.as_deref().is_none_or(|ns| ends.iter().any(|e| e.namespace() == Some(ns)))
            && self.workload.as_deref().is_none_or(|w| ends.iter().any(|e| e.is_workload(w)))
            && self.security.as_deref().is_none_or(|s| {
                let m = &edge.security;
                match s {
                    "plaintext" => m.plaintext > 0,
                    "tls" => m.tls > 0,
                    "mtls" => m.mtls > 0,
                    _ => m.unknown > 0,
                }
            })
    }
}

/// The server's PeerAuthentication mode that a leg's requirement (`verdict.expected`) implies:
/// for legs a PeerAuthentication judged, its mode; for a leg into a sidecar from outside judged
/// by Istio's default (no PeerAuthentication: anything is accepted), PERMISSIVE. Otherwise none:
/// a leg judged by its client's requirement (auto mTLS, a DestinationRule) says what the client
/// originates, not what the server accepts, so mTLS there is no sign of a STRICT server.
pub fn implied_mode(policy: Option<&str>, leg: &str, expected: Option<&str>) -> Option<&'static str> {
    if policy.is_some_and(|p| p.starts_with("PeerAuthentication/")) {
        return match expected? {
            "mtls" => Some("STRICT"),
            "any" => Some("PERMISSIVE"),
            "plaintext" => Some("DISABLE"),
            _ => None,
        };
    }
    let default = policy.is_none_or(|p| p == "default");
    (default && leg == "external_inbound" && expected == Some("any")).then_some("PERMISSIVE")
}

impl Snapshot {
    pub fn filtered(mut self, filter: &Filter) -> Self {
        self.edges.retain(|e| filter.keeps(e));
        self
    }
}
