//! The edge map from the metrics of every node (`observer edges --prometheus URL`): PromQL
//! over the observers' `observer_connections_total` and `observer_policy_deviations_total`
//! (README "Metrics"), answered by a Prometheus that scrapes every node, turned into the same
//! [`Snapshot`] the daemon serves, so that readiness and the renderers are shared.
//!
//! What the metrics cannot say, the snapshot does not invent: ends are owning workloads
//! (`namespace/owner`, never pod names), there are no addresses or process names (a client
//! outside the inventory is [`OUTSIDE`]), no connection ids, and no per-edge times. Counts are
//! Prometheus's `increase()` over the window, so approximate; a series born inside the window
//! (a client's first connection) also counts its first value, which `increase()` alone misses.
//! A leg seen at both ends (by the client's node and the server's) is counted once: each
//! attribute set takes the larger of its server-side and client-side counts
//! (`observer_observed_at`).
//!
//! Prometheus's answer is hostile input: the body is bounded by the HTTP client, the number of
//! series by [`MAX_SERIES`], every value must be a finite count, every name is cut to
//! [`MAX_NAME`](super::MAX_NAME) and escaped when printed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{
    TableStats, cut,
    model::{Edge, End, Example, Snapshot, implied_mode},
};

/// Largest query answer read (each query).
pub const MAX_BODY: u64 = 64 << 20;
/// Most series accepted in one answer: the observers' cardinality limit times the nodes.
pub const MAX_SERIES: usize = 200_000;
/// Most distinct `client_cert` values or deviation kinds per edge (both small enums).
const MAX_KINDS: usize = 16;
/// The default `--window`.
pub const DEFAULT_WINDOW: &str = "1h";
/// Printed under `observer edges --prometheus` tables.
pub const TABLE_NOTE: &str = "from Prometheus: ends are owning workloads (namespace/owner); the metrics carry no addresses, processes or times; counts are increase() over --window";
/// What an end outside the inventory is called: the metrics carry no address.
pub const OUTSIDE: &str = "(outside the inventory)";

const CONNECTIONS: &str = "observer_connections_total";
const DEVIATIONS: &str = "observer_policy_deviations_total";
/// A gauge every observer exports: which observers Prometheus has, and since when.
const PRESENCE: &str = "observer_connections_tracked";
const IN_POD: &str = r#"observer_leg=~"local_inbound|local_outbound""#;
const NOT_IN_POD: &str = r#"observer_leg!~"local_inbound|local_outbound""#;
const EDGE_LABELS: &str = "k8s_src_namespace, k8s_src_owner_name, k8s_dst_namespace, k8s_dst_owner_name, server_port";

/// `--window`: how far back the queries look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    secs: u64,
}

/// Why a `--window` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Not a number followed by `s`, `m`, `h`, `d` or `w`.
    #[error("{0:?} is not a duration (a number and s, m, h, d or w: 30m, 1h, 7d)")]
    Syntax(String),
    /// Outside [`Window::MIN_SECS`]..=[`Window::MAX_SECS`].
    #[error("--window {0:?} is out of range (1m to 400d)")]
    Range(String),
}

impl Window {
    /// Below a minute `increase()` may see a single scrape.
    pub const MIN_SECS: u64 = 60;
    pub const MAX_SECS: u64 = 400 * 86_400;

    pub fn secs(self) -> u64 {
        self.secs
    }

    /// The resolution of the query for the earliest sample: 240 steps per window.
    pub fn step_secs(self) -> u64 {
        (self.secs / 240).max(1)
    }
}

impl std::str::FromStr for Window {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, WindowError> {
        let syntax = || WindowError::Syntax(s.to_owned());
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(syntax)?;
        let (number, unit) = s.split_at(split);
        let n: u64 = number.parse().map_err(|_| syntax())?;
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(syntax()),
        };
        let secs = n.checked_mul(unit_secs).ok_or_else(|| WindowError::Range(s.to_owned()))?;
        if !(Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            return Err(WindowError::Range(s.to_owned()));
        }
        Ok(Self { secs })
    }
}

/// One PromQL query and what it is for (named in errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub what: &'static str,
    pub promql: String,
}

/// The queries of one answer: connections, deviations, in-pod legs, overflow, the observers
/// present and their earliest sample.
#[derive(Clone, Debug)]
pub struct Queries {
    pub connections: Query,
    pub deviations: Query,
    pub in_pod: Query,
    pub overflow: Query,
    pub observers: Query,
    pub since: Query,
}

/// The connections of each series of `selector` in the window: `increase()` where the series
/// existed at the window's start; for one born inside it, `increase()` plus its first value
/// (its minimum, short of a counter reset), or its only value.
fn counted(selector: &str, w: &str) -> String {
    format!(
        "((increase({selector}[{w}]) and {selector} offset {w}) or (increase({selector}[{w}]) + min_over_time({selector}[{w}])) or last_over_time({selector}[{w}]))"
    )
}

/// The queries, narrowed to servers in `server_namespace` when given (a validated DNS label).
pub fn queries(window: Window, server_namespace: Option<&str>) -> Queries {
    let w = format!("{}s", window.secs);
    let dst = server_namespace.map(|ns| format!(r#",k8s_dst_namespace="{ns}""#)).unwrap_or_default();
    let connections = format!(r#"{CONNECTIONS}{{otel_metric_overflow!="true",{NOT_IN_POD}{dst}}}"#);
    let deviations = format!(r#"{DEVIATIONS}{{otel_metric_overflow!="true",{NOT_IN_POD}{dst}}}"#);
    let step = window.step_secs();
    Queries {
        connections: Query {
            what: "connections by edge",
            promql: format!(
                "sum by ({EDGE_LABELS}, observer_connection_security, observer_tls_client_cert, observer_policy, observer_verdict_expected, observer_leg, observer_observed_at) ({})",
                counted(&connections, &w)
            ),
        },
        deviations: Query {
            what: "deviations by edge",
            promql: format!(
                "sum by ({EDGE_LABELS}, observer_deviation_kind, observer_policy, observer_observed_at) ({})",
                counted(&deviations, &w)
            ),
        },
        in_pod: Query {
            what: "in-pod legs",
            promql: format!("sum({})", counted(&format!("{CONNECTIONS}{{{IN_POD}}}"), &w)),
        },
        overflow: Query {
            what: "connections past the cardinality limit",
            promql: format!("sum({})", counted(&format!(r#"{CONNECTIONS}{{otel_metric_overflow="true"}}"#), &w)),
        },
        observers: Query {
            what: "observers scraped",
            promql: format!("count by (instance, job) (count_over_time({PRESENCE}[{w}]))"),
        },
        since: Query {
            what: "the earliest sample",
            promql: format!("min(min_over_time(timestamp({PRESENCE})[{w}:{step}s]))"),
        },
    }
}

/// One series of an instant vector: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Why Prometheus's answer was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    /// Prometheus refused the query (`status: error`): its type and message.
    #[error("Prometheus refused the query (HTTP {http}, {kind}): {message}")]
    Refused { http: u16, kind: String, message: String },
    /// Not the JSON of the query API, or not an instant vector.
    #[error("not a Prometheus query answer (HTTP {http}): {reason}")]
    Malformed { http: u16, reason: String },
    /// More than [`MAX_SERIES`] series.
    #[error("{0} series, more than the {MAX_SERIES} read")]
    TooManySeries(usize),
    /// A value that is not a count (negative, NaN, infinite, not a number).
    #[error("series {labels}: value {value:?} is not a count")]
    NotACount { labels: String, value: String },
}

#[derive(Deserialize)]
struct RawAnswer {
    status: String,
    #[serde(default)]
    data: Option<RawData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct RawData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (serde_json::Value, String),
}

/// The instant vector of a query answer (`http` its HTTP status), or why not.
pub fn parse_vector(http: u16, body: &[u8]) -> Result<Vec<Sample>, AnswerError> {
    use super::render::escape;
    let malformed = |reason: String| AnswerError::Malformed { http, reason: escape(&reason) };
    let answer: RawAnswer = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        malformed(format!("{e} (body starts {start:?})"))
    })?;
    if answer.status == "error" || http != 200 {
        return Err(AnswerError::Refused {
            http,
            kind: escape(answer.error_type.as_deref().unwrap_or("unknown")),
            message: escape(answer.error.as_deref().unwrap_or("no message")),
        });
    }
    if answer.status != "success" {
        return Err(malformed(format!("status {:?}", answer.status)));
    }
    let data = answer.data.ok_or_else(|| malformed("no data".to_owned()))?;
    if data.result_type != "vector" {
        return Err(malformed(format!("result type {:?}, not vector", data.result_type)));
    }
    let serde_json::Value::Array(result) = data.result else {
        return Err(malformed("result is not a list".to_owned()));
    };
    if result.len() > MAX_SERIES {
        return Err(AnswerError::TooManySeries(result.len()));
    }
    result
        .into_iter()
        .map(|raw| {
            let raw: RawSample = serde_json::from_value(raw).map_err(|e| malformed(format!("a series: {e}")))?;
            let value = raw.value.1.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| {
                AnswerError::NotACount { labels: escape(&format!("{:?}", raw.metric)), value: escape(&raw.value.1) }
            })?;
            Ok(Sample { labels: raw.metric, value })
        })
        .collect()
}

/// The answers of [`Queries`].
#[derive(Clone, Debug, Default)]
pub struct Answers {
    pub connections: Vec<Sample>,
    pub deviations: Vec<Sample>,
    pub in_pod: Vec<Sample>,
    pub overflow: Vec<Sample>,
    pub observers: Vec<Sample>,
    pub since: Vec<Sample>,
}

/// What the snapshot cannot show but an answer must say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Observers (Prometheus targets) seen in the window.
    pub observers: usize,
    /// Connections counted past an observer's cardinality limit: their ends are unknown.
    pub overflow: u64,
}

/// Server-side and client-side counts of one attribute set (without `observer_observed_at`).
#[derive(Default)]
struct Sides {
    server: f64,
    client: f64,
}

impl Sides {
    fn add(&mut self, observed_at: Option<&str>, n: f64) {
        match observed_at {
            Some("server") => self.server += n,
            Some("client") => self.client += n,
            // One socket pair on one node (or a capture): no other node saw it.
            _ => {
                self.server += n;
                self.client += n;
            }
        }
    }

    fn count(&self) -> u64 {
        // `as` saturates; the values are finite and non-negative.
        self.server.max(self.client).round() as u64
    }
}

/// Sums by attribute set, deduplicated across the two ends.
fn deduplicated(samples: &[Sample]) -> Vec<(BTreeMap<String, String>, u64)> {
    let mut sets: BTreeMap<BTreeMap<String, String>, Sides> = BTreeMap::new();
    for s in samples {
        let mut labels = s.labels.clone();
        let observed_at = labels.remove("observer_observed_at");
        sets.entry(labels).or_default().add(observed_at.as_deref(), s.value);
    }
    fold_capture_port(&mut sets);
    sets.into_iter().map(|(labels, sides)| (labels, sides.count())).filter(|(_, n)| *n > 0).collect()
}

/// The server port the sidecar's REDIRECT sends inbound connections to.
const CAPTURE_PORT: &str = "15006";

/// Behind the sidecar's REDIRECT the server's node sees an inbound leg at the capture port
/// (15006), never at the port the client dialled; the client's node, when it runs an observer,
/// counts the same connection at that port. So the server-side count at 15006 is first matched
/// with the client-side counts that no server-side count matched, of the same attributes at
/// another port; only what is left stays at 15006 (connections whose client no observer saw).
/// The leg kind is left out of the match: a sidecar's outbound leg is `external_outbound` at
/// its client's node and `external_inbound` at the server's. Attribute sets that differ in
/// anything else are never merged.
fn fold_capture_port(sets: &mut BTreeMap<BTreeMap<String, String>, Sides>) {
    let without_port = |labels: &BTreeMap<String, String>| {
        let mut key = labels.clone();
        key.remove("server_port");
        key.remove("observer_leg");
        key
    };
    let is_capture =
        |labels: &BTreeMap<String, String>| labels.get("server_port").map(String::as_str) == Some(CAPTURE_PORT);
    let mut spare: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
    for (labels, sides) in sets.iter().filter(|(labels, _)| !is_capture(labels)) {
        let unmatched = sides.client - sides.server;
        if unmatched > 0.0 {
            *spare.entry(without_port(labels)).or_default() += unmatched;
        }
    }
    if spare.is_empty() {
        return;
    }
    for (labels, sides) in sets.iter_mut().filter(|(labels, _)| is_capture(labels)) {
        if let Some(left) = spare.get_mut(&without_port(labels)) {
            let matched = left.min(sides.server).max(0.0);
            sides.server -= matched;
            *left -= matched;
        }
    }
}

/// (client workload, server workload, server port).
type EdgeKey = (Option<String>, Option<String>, u16);
/// The policy that judged a leg and the mode it implies.
type PolicyMode = (Option<String>, Option<&'static str>);

fn workload(labels: &BTreeMap<String, String>, side: &str) -> Option<String> {
    let ns = labels.get(&format!("k8s_{side}_namespace"))?;
    let name = labels.get(&format!("k8s_{side}_owner_name"))?;
    Some(cut(&format!("{ns}/{name}")).to_owned())
}

fn edge_key(labels: &BTreeMap<String, String>) -> Result<EdgeKey, AnswerError> {
    let port = labels.get("server_port").map(String::as_str).unwrap_or("0");
    let port = port.parse().map_err(|_| AnswerError::NotACount {
        labels: super::render::escape(&format!("{labels:?}")),
        value: format!("server_port {}", super::render::escape(port)),
    })?;
    Ok((workload(labels, "src"), workload(labels, "dst"), port))
}

fn end(workload: &Option<String>) -> End {
    End {
        workload: workload.clone(),
        ip: if workload.is_some() { String::new() } else { OUTSIDE.to_owned() },
        process: None,
    }
}

fn new_edge(key: &EdgeKey) -> Edge {
    Edge {
        client: end(&key.0),
        server: end(&key.1),
        port: key.2,
        connections: 0,
        security: Default::default(),
        client_cert: BTreeMap::new(),
        deviations: BTreeMap::new(),
        would_break_under_strict: 0,
        policy: None,
        mode: None,
        first_seen: String::new(),
        last_seen: String::new(),
        example: Example::default(),
    }
}

fn bump(counts: &mut BTreeMap<String, u64>, kind: &str, n: u64) {
    let kind = cut(kind);
    if counts.len() < MAX_KINDS || counts.contains_key(kind) {
        *counts.entry(kind.to_owned()).or_default() += n;
    } else {
        *counts.entry("other".to_owned()).or_default() += n;
    }
}

/// The snapshot of `answers`: edges most connections first, at most `max_edges` (the rest
/// counted as evicted); `first_seen` is the earliest sample of any observer in the window (to
/// the window's step: less than a step of data shows as one step), `last_seen` the query time.
pub fn snapshot(
    answers: &Answers,
    now: std::time::SystemTime,
    window: Window,
    max_edges: usize,
) -> Result<(Snapshot, Coverage), AnswerError> {
    let mut edges: BTreeMap<EdgeKey, Edge> = BTreeMap::new();
    // The policy and mode of each edge: those of its most connections.
    let mut policies: BTreeMap<EdgeKey, BTreeMap<PolicyMode, u64>> = BTreeMap::new();
    for (labels, n) in deduplicated(&answers.connections) {
        let key = edge_key(&labels)?;
        let edge = edges.entry(key.clone()).or_insert_with(|| new_edge(&key));
        edge.connections += n;
        let security = labels.get("observer_connection_security").map_or("unknown", String::as_str);
        match security {
            "plaintext" => edge.security.plaintext += n,
            "tls" => edge.security.tls += n,
            "mtls" => edge.security.mtls += n,
            _ => edge.security.unknown += n,
        }
        bump(&mut edge.client_cert, labels.get("observer_tls_client_cert").map_or("none", String::as_str), n);
        let policy = labels.get("observer_policy").map(|p| cut(p).to_owned());
        let leg = labels.get("observer_leg").map_or("", String::as_str);
        let mode = implied_mode(policy.as_deref(), leg, labels.get("observer_verdict_expected").map(String::as_str));
        *policies.entry(key).or_default().entry((policy, mode)).or_default() += n;
    }
    for (key, seen) in policies {
        let best = seen.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
        if let (Some(((policy, mode), _)), Some(edge)) = (best, edges.get_mut(&key)) {
            edge.policy = policy;
            edge.mode = mode.map(str::to_owned);
        }
    }
    for (labels, n) in deduplicated(&answers.deviations) {
        let key = edge_key(&labels)?;
        let edge = edges.entry(key.clone()).or_insert_with(|| new_edge(&key));
        match labels.get("observer_deviation_kind").map_or("other_deviation", String::as_str) {
            "would_break_under_strict" => edge.would_break_under_strict += n,
            kind => bump(&mut edge.deviations, kind, n),
        }
    }
    let mut edges: Vec<Edge> = edges.into_values().collect();
    edges.sort_by(|a, b| {
        b.connections.cmp(&a.connections).then_with(|| {
            (a.client.label(), a.server.label(), a.port).cmp(&(b.client.label(), b.server.label(), b.port))
        })
    });
    let max_edges = max_edges.max(1);
    let records = edges.iter().map(|e| e.connections).sum();
    let evicted = edges.len().saturating_sub(max_edges) as u64;
    edges.truncate(max_edges);
    let total = |samples: &[Sample]| samples.iter().map(|s| s.value).sum::<f64>().round() as u64;
    let now_secs = now.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let earliest =
        answers.since.iter().map(|s| s.value).fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v))));
    // Observers present with no step of data yet: their samples are younger than a step.
    let earliest = earliest.or_else(|| (!answers.observers.is_empty()).then(|| now_secs - window.step_secs() as f64));
    let stats = TableStats { records, in_pod_legs: total(&answers.in_pod), evicted, max_edges: max_edges as u64 };
    let snapshot = Snapshot {
        stats,
        first_seen: earliest.map(|secs| crate::export::rfc3339_millis(unix_time(secs.min(now_secs)))),
        last_seen: Some(crate::export::rfc3339_millis(now)),
        edges,
    };
    Ok((snapshot, Coverage { observers: answers.observers.len(), overflow: total(&answers.overflow) }))
}

fn unix_time(secs: f64) -> std::time::SystemTime {
    let millis = (secs * 1000.0).clamp(0.0, 1e15) as u64;
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis)
}

/// Sentences to add to a readiness answer's `thin_evidence` (for `target`) or to print under
/// the edges (no target) for what the metrics cannot show.
pub fn caveats(snapshot: &Snapshot, coverage: &Coverage, target: Option<&super::Target>) -> Vec<String> {
    let mut out = Vec::new();
    if coverage.observers == 0 {
        out.push(format!("Prometheus has no {PRESENCE} series in the window: is it scraping the observers?"));
    }
    if coverage.overflow > 0 {
        out.push(format!(
            "{} connections were counted past an observer's --metrics-cardinality-limit (otel_metric_overflow): their clients and servers are not known",
            coverage.overflow
        ));
    }
    // Without a target (the edges), the table's footer says it.
    let outside = target.is_some_and(|t| {
        snapshot.edges.iter().any(|e| e.client.workload.is_none() && e.server.namespace() == Some(t.namespace.as_str()))
    });
    if outside {
        out.push(format!(
            "the metrics carry no client addresses or process names: clients outside the inventory are one client, {OUTSIDE}, per server port"
        ));
    }
    out
}

#[cfg(test)]
#[path = "prometheus_tests.rs"]
mod tests;
