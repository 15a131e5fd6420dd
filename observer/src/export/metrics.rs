//! The observer's metrics (docs/OUTPUT.md) in the Prometheus text format, served on `--metrics-addr`.
//!
//! Labels are bounded: workload and namespace names, enum values, program names; never client IPs
//! or ports. Counters are kept here as the records pass; gauges and kernel counters are read at
//! render time from a [`Snapshot`].

use std::{collections::BTreeMap, fmt::Write as _};

use super::ConnectionRecord;
use crate::capture::ProgramRun;

/// Label values of `observer_connections_total`, in the order of [`CONNECTION_LABELS`].
type ConnectionLabels = [String; 10];

const CONNECTION_LABELS: [&str; 10] = [
    "leg",
    "security",
    "protocol",
    "tls_version",
    "client_cert",
    "client_workload",
    "client_namespace",
    "server_workload",
    "server_namespace",
    "verdict",
];

/// Counters accumulated from the records.
#[derive(Default)]
pub struct Metrics {
    connections: BTreeMap<ConnectionLabels, u64>,
    deviations: BTreeMap<[String; 6], u64>,
    dissect_errors: BTreeMap<String, u64>,
}

/// Values read from the sources when rendering.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `observer_capture_lost_total` by stage.
    pub lost: Vec<(String, u64)>,
    /// `observer_connections_tracked`.
    pub tracked: u64,
    /// `observer_ebpf_run_seconds_total` and run counts by program.
    pub programs: Vec<ProgramRun>,
    /// `observer_kubernetes_watch_errors_total` by resource (all zero without the API source).
    pub watch_errors: Vec<(&'static str, u64)>,
}

/// The JSON spelling of a serializable value, or "unknown" for null.
fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

/// `namespace/name` split into (name, namespace); "unknown" when absent.
fn workload(workload: Option<&str>) -> (String, String) {
    match workload.and_then(|w| w.split_once('/')) {
        Some((namespace, name)) => (name.to_owned(), namespace.to_owned()),
        None => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

impl Metrics {
    /// Count one finished leg.
    pub fn record(&mut self, r: &ConnectionRecord) {
        let tls = r.tls.as_ref();
        let (client_workload, client_namespace) = workload(r.client.workload.as_deref());
        let (server_workload, server_namespace) = workload(r.server.workload.as_deref());
        let labels: ConnectionLabels = [
            label(&r.leg),
            label(&r.security),
            label(&r.protocol),
            tls.and_then(|t| t.version.clone()).unwrap_or_else(|| "none".to_owned()),
            tls.and_then(|t| t.client_cert.as_ref()).map_or_else(|| "none".to_owned(), label),
            client_workload.clone(),
            client_namespace.clone(),
            server_workload.clone(),
            server_namespace.clone(),
            label(&r.verdict.status),
        ];
        *self.connections.entry(labels).or_default() += 1;
        if let Some(kind) = &r.verdict.kind {
            let policy = r.verdict.policy.clone().unwrap_or_else(|| "none".to_owned());
            let key = [label(kind), client_workload, client_namespace, server_workload, server_namespace, policy];
            *self.deviations.entry(key).or_default() += 1;
        }
        if let Some(reason) = &r.reason {
            *self.dissect_errors.entry(label(reason)).or_default() += 1;
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        header(&mut out, "observer_connections_total", "counter", "Classified connection legs.");
        for (values, count) in &self.connections {
            series(&mut out, "observer_connections_total", &CONNECTION_LABELS, values, *count as f64);
        }
        header(&mut out, "observer_policy_deviations_total", "counter", "Legs that differ from the policy.");
        let deviation_labels =
            ["kind", "client_workload", "client_namespace", "server_workload", "server_namespace", "policy"];
        for (values, count) in &self.deviations {
            series(&mut out, "observer_policy_deviations_total", &deviation_labels, values, *count as f64);
        }
        header(&mut out, "observer_dissect_errors_total", "counter", "Legs left unknown, by reason.");
        for (reason, count) in &self.dissect_errors {
            series(&mut out, "observer_dissect_errors_total", &["reason"], std::slice::from_ref(reason), *count as f64);
        }
        header(&mut out, "observer_capture_lost_total", "counter", "Samples and events lost, by stage.");
        for (stage, count) in &snapshot.lost {
            series(&mut out, "observer_capture_lost_total", &["stage"], std::slice::from_ref(stage), *count as f64);
        }
        header(&mut out, "observer_connections_tracked", "gauge", "Legs held, waiting for their classification.");
        series(&mut out, "observer_connections_tracked", &[], &[], snapshot.tracked as f64);
        header(&mut out, "observer_ebpf_run_seconds_total", "counter", "Time spent in each eBPF program.");
        for run in &snapshot.programs {
            let seconds = run.run_time_ns as f64 / 1e9;
            series(
                &mut out,
                "observer_ebpf_run_seconds_total",
                &["program"],
                std::slice::from_ref(&run.program),
                seconds,
            );
        }
        header(&mut out, "observer_ebpf_runs_total", "counter", "Runs of each eBPF program.");
        for run in &snapshot.programs {
            series(
                &mut out,
                "observer_ebpf_runs_total",
                &["program"],
                std::slice::from_ref(&run.program),
                run.run_count as f64,
            );
        }
        header(
            &mut out,
            "observer_kubernetes_watch_errors_total",
            "counter",
            "Failed lists and watches of the Kubernetes API, by resource (retried with backoff).",
        );
        for (resource, count) in &snapshot.watch_errors {
            let resource = (*resource).to_owned();
            series(
                &mut out,
                "observer_kubernetes_watch_errors_total",
                &["resource"],
                std::slice::from_ref(&resource),
                *count as f64,
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn series(out: &mut String, name: &str, labels: &[&str], values: &[String], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let _ = write!(out, "{label}=\"{escaped}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, time::SystemTime};

    use super::*;
    use observer_wire::{
        classify::{Classification, Protocol, Security},
        legs::{LegRecord, ObservedAt, Peer},
    };

    fn record() -> ConnectionRecord {
        let addr: SocketAddr = "10.0.0.1:1234".parse().expect("address");
        let leg = LegRecord {
            leg: 1,
            time: SystemTime::UNIX_EPOCH,
            client: Peer { addr, process: None },
            server: Peer { addr, process: None },
            observed_at: ObservedAt::Wire,
            classification: Classification {
                security: Security::Plaintext,
                protocol: Protocol::Http1,
                reason: None,
                tls: None,
            },
        };
        let mut record = ConnectionRecord::unassessed(&leg, "n");
        record.server.workload = Some("prod/api".to_owned());
        record
    }

    #[test]
    fn legs_are_counted_by_bounded_labels() {
        let mut metrics = Metrics::default();
        metrics.record(&record());
        metrics.record(&record());
        let snapshot = Snapshot {
            lost: vec![("sample_reserve".to_owned(), 3)],
            tracked: 5,
            programs: vec![ProgramRun { program: "observer_skb_egress".to_owned(), run_time_ns: 1_500, run_count: 10 }],
            watch_errors: vec![("pods", 2)],
        };
        let text = metrics.render(&snapshot);
        assert!(text.contains(
            "observer_connections_total{leg=\"unknown\",security=\"plaintext\",protocol=\"http1\",tls_version=\"none\",client_cert=\"none\",client_workload=\"unknown\",client_namespace=\"unknown\",server_workload=\"api\",server_namespace=\"prod\",verdict=\"unevaluated\"} 2\n"
        ), "{text}");
        assert!(text.contains("observer_capture_lost_total{stage=\"sample_reserve\"} 3\n"));
        assert!(text.contains("observer_connections_tracked 5\n"));
        assert!(text.contains("observer_ebpf_run_seconds_total{program=\"observer_skb_egress\"} 0.0000015\n"));
        assert!(text.contains("observer_kubernetes_watch_errors_total{resource=\"pods\"} 2\n"));
        assert!(!text.contains("10.0.0.1"), "no addresses in labels");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        series(&mut out, "m", &["l"], &["a\"b\\c\nd".to_owned()], 1.0);
        assert_eq!(out, "m{l=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
