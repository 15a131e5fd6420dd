//! The STRICT-readiness answer for a namespace or one workload, computed from an edge
//! [`Snapshot`]: which clients a STRICT PeerAuthentication would refuse (records with
//! `verdict.kind: would_break_under_strict`, and plaintext to a DISABLE workload), which already
//! send mTLS, which are refused already, and whether the evidence is thin.

use serde::{Deserialize, Serialize};

use super::model::{Edge, Snapshot};

/// Below this observation window the answer says that rare clients may be missing.
pub const SHORT_WINDOW_SECS: u64 = 3600;

/// What is asked: a namespace, optionally one workload in it (`pod` or `namespace/pod`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub namespace: String,
    pub workload: Option<String>,
}

impl Target {
    fn keeps(&self, edge: &Edge) -> bool {
        edge.server.namespace() == Some(self.namespace.as_str())
            && self.workload.as_deref().is_none_or(|w| {
                let full = format!("{}/{w}", self.namespace);
                edge.server.workload.as_deref() == Some(w) || edge.server.workload.as_deref() == Some(full.as_str())
            })
    }

    pub fn describe(&self) -> String {
        match &self.workload {
            Some(w) if w.contains('/') => format!("workload {w}"),
            Some(w) => format!("workload {}/{w}", self.namespace),
            None => format!("namespace {}", self.namespace),
        }
    }
}

/// A client of the target, with what it sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub client: String,
    pub workload: Option<String>,
    pub ip: String,
    pub process: Option<String>,
    pub server: String,
    pub port: u16,
    /// The connections that count for the list this client is in.
    pub connections: u64,
    pub last_seen: String,
    /// `plaintext`, `tls` (no client certificate), `mtls`.
    pub sends: String,
}

/// A policy in force at a server of the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    pub server: String,
    pub policy: Option<String>,
    pub mode: Option<String>,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub target: Target,
    pub ready: bool,
    /// The first line for people.
    pub summary: String,
    pub policies: Vec<InForce>,
    pub would_break: Vec<Client>,
    /// Already refused today (the server is STRICT): switching changes nothing for them.
    pub refused_already: Vec<Client>,
    pub mtls: Vec<Client>,
    /// Why the answer may be incomplete; empty when the evidence is good.
    pub thin_evidence: Vec<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

/// Answer for `target` from the edges in `snapshot`. Without any traffic to the target it is
/// not ready: nothing shows that switching is safe.
pub fn assess(snapshot: &Snapshot, target: &Target) -> Readiness {
    let edges: Vec<&Edge> = snapshot.edges.iter().filter(|e| target.keeps(e)).collect();
    let mut r = Readiness {
        target: target.clone(),
        ready: false,
        summary: String::new(),
        policies: Vec::new(),
        would_break: Vec::new(),
        refused_already: Vec::new(),
        mtls: Vec::new(),
        thin_evidence: Vec::new(),
        first_seen: snapshot.first_seen.clone(),
        last_seen: snapshot.last_seen.clone(),
    };
    for edge in &edges {
        let disable_plaintext = if edge.mode.as_deref() == Some("DISABLE") { edge.security.plaintext } else { 0 };
        let breaking = edge.would_break_under_strict + disable_plaintext;
        if breaking > 0 {
            let sends = if edge.security.plaintext > 0 { "plaintext" } else { "tls" };
            r.would_break.push(client(edge, breaking, sends));
        }
        let refused: u64 =
            ["unexpected_plaintext", "missing_client_cert"].iter().filter_map(|k| edge.deviations.get(*k)).sum();
        if refused > 0 {
            let sends = if edge.deviations.contains_key("unexpected_plaintext") { "plaintext" } else { "tls" };
            r.refused_already.push(client(edge, refused, sends));
        }
        if edge.security.mtls > 0 {
            r.mtls.push(client(edge, edge.security.mtls, "mtls"));
        }
        if edge.mode.is_some() || edge.policy.as_deref().is_some_and(|p| p.starts_with("PeerAuthentication/")) {
            let server = edge.server.label();
            let in_force = InForce { server, policy: edge.policy.clone(), mode: edge.mode.clone() };
            if !r.policies.contains(&in_force) {
                r.policies.push(in_force);
            }
        }
    }
    for list in [&mut r.would_break, &mut r.refused_already, &mut r.mtls] {
        list.sort_by(|a, b| b.connections.cmp(&a.connections).then_with(|| a.client.cmp(&b.client)));
    }
    r.policies.sort_by(|a, b| a.server.cmp(&b.server));
    if edges.is_empty() {
        r.thin_evidence.push(format!("no traffic to {} was seen", target.describe()));
    }
    match window_secs(snapshot) {
        Some(secs) if secs < SHORT_WINDOW_SECS => r.thin_evidence.push(format!(
            "observed for {secs} s only: clients that connect rarely (batch jobs, backups) may not have been seen"
        )),
        _ => {}
    }
    if snapshot.stats.evicted > 0 {
        r.thin_evidence.push(format!(
            "{} edges were evicted (--max-edges {}): some clients may be missing",
            snapshot.stats.evicted, snapshot.stats.max_edges
        ));
    }
    r.ready = r.would_break.is_empty() && !edges.is_empty();
    let now = if r.policies.is_empty() {
        "policy now: not seen in the records".to_owned()
    } else {
        let p: Vec<String> = r
            .policies
            .iter()
            .map(|p| format!("{} {}", p.policy.as_deref().unwrap_or("none"), p.mode.as_deref().unwrap_or("?")))
            .collect();
        format!("policy now: {}", p.join(", "))
    };
    r.summary = if r.ready {
        format!("ready to switch {} to STRICT ({now})", target.describe())
    } else if edges.is_empty() {
        format!("not ready to switch {} to STRICT: no traffic to it seen ({now})", target.describe())
    } else {
        let n = r.would_break.len();
        let s = if n == 1 { "" } else { "s" };
        format!("not ready to switch {} to STRICT: {n} client{s} would break ({now})", target.describe())
    };
    r
}

fn client(edge: &Edge, connections: u64, sends: &str) -> Client {
    Client {
        client: edge.client.label(),
        workload: edge.client.workload.clone(),
        ip: edge.client.ip.clone(),
        process: edge.client.process.clone(),
        server: edge.server.label(),
        port: edge.port,
        connections,
        last_seen: edge.last_seen.clone(),
        sends: sends.to_owned(),
    }
}

/// Seconds between the first and the last record of the snapshot.
fn window_secs(snapshot: &Snapshot) -> Option<u64> {
    let first = parse_rfc3339_millis(snapshot.first_seen.as_deref()?)?;
    let last = parse_rfc3339_millis(snapshot.last_seen.as_deref()?)?;
    Some(last.saturating_sub(first) / 1000)
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (the record's `time`).
pub fn parse_rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u64>().ok();
    let (y, m, d) = (num(0..4)? as i64, num(5..7)? as i64, num(8..10)? as i64);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let millis = if b.get(19) == Some(&b'.') { num(20..23).unwrap_or(0) } else { 0 };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (H. Hinnant), the inverse of the record's formatting.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + millis)
}
