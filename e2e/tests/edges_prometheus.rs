//! `observer readiness --prometheus` and `observer edges --prometheus` (issue 11): one real
//! Prometheus scrapes two observers, each standing for one node (attached to its own cgroup,
//! the pods of "node 1" started in one, those of "node 2" in the other) on the HAProxy mesh.
//!
//! node 1: pod-a (STRICT sidecar), pod-b (PERMISSIVE); node 2: pod-c, pod-d (PERMISSIVE) and a
//! legacy pod without sidecar. pod-a → pod-b is mTLS seen by node 1 only; legacy → pod-d is
//! plaintext seen by node 2 only; pod-a → pod-c (mTLS) and legacy → pod-b (plaintext) cross
//! the nodes, so both observers count them, and the answer must count them once. The
//! namespace is not ready (legacy would break at pod-b and pod-d, which no single node sees),
//! pod-c is ready (mTLS only), and the edges agree with the two daemons' /v1 APIs combined. A
//! second Prometheus, allowed to load one sample per query, refuses: exit 2 with its message.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Output},
    thread,
    time::{Duration, Instant},
};

use observer_e2e::{
    Mesh, ObserverProcess, RUN_CAP, Sidecar, TempDir,
    cgroup::Cgroup,
    peers::Curl,
    prometheus::{Prometheus, free_port},
    require_root, serial,
};
use serde_json::Value;

fn observer(args: &[&str]) -> Output {
    Command::new(observer_e2e::observer::binary()).args(args).output().expect("observer runs")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn json(out: &Output) -> Option<Value> {
    serde_json::from_slice(&out.stdout).ok()
}

/// `GET path` on a daemon's listener with curl.
fn http_get(port: u16, path: &str) -> Value {
    let out = Command::new("curl").args(["-sS", &format!("http://127.0.0.1:{port}{path}")]).output().expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: GET {path} on :{port}: {}", text(&out)))
}

type Key = (String, String, u64);

/// (client, server, port) → [plaintext, tls, mtls] of each edge.
fn edge_rows(snapshot: &Value) -> BTreeMap<Key, [u64; 3]> {
    let label = |end: &Value| end["workload"].as_str().or(end["ip"].as_str()).unwrap_or("").to_owned();
    let mut rows = BTreeMap::new();
    for e in snapshot["edges"].as_array().into_iter().flatten() {
        let n = |k: &str| e["security"][k].as_u64().unwrap_or(0);
        let key = (label(&e["client"]), label(&e["server"]), e["port"].as_u64().unwrap_or(0));
        rows.insert(key, [n("plaintext"), n("tls"), n("mtls")]);
    }
    rows
}

/// (client, server, port) → connections of a readiness list (`would_break`, `mtls`).
fn clients(readiness: &Value, list: &str) -> BTreeMap<Key, [u64; 1]> {
    let mut out = BTreeMap::new();
    for c in readiness[list].as_array().into_iter().flatten() {
        let key = (
            c["client"].as_str().unwrap_or("").to_owned(),
            c["server"].as_str().unwrap_or("").to_owned(),
            c["port"].as_u64().unwrap_or(0),
        );
        out.insert(key, [c["connections"].as_u64().unwrap_or(0)]);
    }
    out
}

/// The sidecar's inbound capture port: where a node sees the legs its REDIRECT sent to a sidecar.
const CAPTURE_PORT: u64 = 15006;

/// What the two nodes saw together: a connection seen by both counts once (the larger count),
/// and a leg that the server's node saw at the capture port (it cannot see the port the client
/// dialled) is the one the client's node saw at the service port: what is left at 15006 is
/// only what exceeds the counts of the same client and server at other ports.
fn combined<const N: usize>(a: BTreeMap<Key, [u64; N]>, b: BTreeMap<Key, [u64; N]>) -> BTreeMap<Key, [u64; N]> {
    let mut out = a;
    for (k, v) in b {
        let slot = out.entry(k).or_insert(v);
        for (x, y) in slot.iter_mut().zip(v) {
            *x = (*x).max(y);
        }
    }
    let captured: Vec<Key> = out.keys().filter(|k| k.2 == CAPTURE_PORT).cloned().collect();
    for key in captured {
        let mut at_service_ports = [0u64; N];
        for (_, v) in out.iter().filter(|(k, _)| k.0 == key.0 && k.1 == key.1 && k.2 != CAPTURE_PORT) {
            for (sum, n) in at_service_ports.iter_mut().zip(v) {
                *sum += n;
            }
        }
        let left = out.get_mut(&key).map(|v| {
            for (x, seen) in v.iter_mut().zip(at_service_ports) {
                *x = x.saturating_sub(seen);
            }
            *v
        });
        if left.is_some_and(|v| v.iter().all(|n| *n == 0)) {
            out.remove(&key);
        }
    }
    out
}

fn start_observer(policy: &str, port: u16, node: &Cgroup, name: &str) -> ObserverProcess {
    let cgroup = node.path().to_string_lossy().into_owned();
    let addr = format!("127.0.0.1:{port}");
    let args = ["--policy", policy, "--metrics-addr", &addr, "--cgroup", &cgroup, "--node-name", name];
    ObserverProcess::start_with(RUN_CAP, &args).expect("observer attaches")
}

fn curl(mesh: &Mesh, from: &str, to: &str, node: &Path) {
    let ip = std::net::IpAddr::V4(mesh.pod(to).ipv4());
    let run = Curl::http(mesh.pod(from).ns(), ip, mesh.app_port()).cgroup(node).run().expect("curl");
    assert_eq!(run.http_code, 200, "{from} -> {to}: {run}");
}

#[test]
fn one_prometheus_over_two_nodes_answers_for_the_cluster() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    // Declared first, dropped last: the processes inside are gone by then.
    let node1 = Cgroup::new("node1").expect("cgroup");
    let node2 = Cgroup::new("node2").expect("cgroup");
    let mesh = Mesh::builder()
        .pod_in("pod-a", Sidecar::Strict, node1.path())
        .pod_in("pod-b", Sidecar::Permissive, node1.path())
        .pod_in("pod-c", Sidecar::Permissive, node2.path())
        .pod_in("pod-d", Sidecar::Permissive, node2.path())
        .pod_in("legacy", Sidecar::None, node2.path())
        .build()
        .expect("mesh");
    let ns = mesh.namespace().to_owned();
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    let (port1, port2) = (free_port(), free_port());
    let daemon1 = start_observer(&policy, port1, &node1, "node-1");
    let daemon2 = start_observer(&policy, port2, &node2, "node-2");
    let dir = TempDir::new("edges-prom").expect("temp dir");
    let prometheus = Prometheus::start(&dir, &[port1, port2]).expect("prometheus");
    // A real Prometheus that refuses the queries: at most one sample may be loaded per query.
    let refusing_dir = TempDir::new("prom-refuses").expect("temp dir");
    let refusing = Prometheus::start_with(&refusing_dir, &[port1], &["--query.max-samples=1"]).expect("prometheus");
    let up = prometheus.wait_for(r#"count(up{job="observer"} == 1)"#, 2.0, Duration::from_secs(30));
    assert_eq!(up, Some(2.0), "Prometheus scrapes both observers");

    for (from, to, node) in [
        ("pod-a", "pod-b", node1.path()),
        ("pod-a", "pod-c", node1.path()),
        ("legacy", "pod-b", node2.path()),
        ("legacy", "pod-b", node2.path()),
        ("legacy", "pod-d", node2.path()),
    ] {
        curl(&mesh, from, to, node);
    }
    thread::sleep(observer_e2e::DRAIN);

    let node_edges = [port1, port2].map(|p| edge_rows(&http_get(p, &format!("/v1/edges?namespace={ns}"))));
    let [edges1, edges2] = node_edges.clone();
    let daemons = [port1, port2].map(|p| http_get(p, &format!("/v1/readiness?namespace={ns}")));
    let want = combined(edges1.clone(), edges2.clone());
    let url = prometheus.url();
    let source = ["--prometheus", url.as_str()];
    // The metrics reach Prometheus a scrape later; and increase() wants a few samples.
    let deadline = Instant::now() + Duration::from_secs(40);
    let (edges, got) = loop {
        let out = observer(&[&["edges", "--namespace", &ns, "--output", "json"], &source[..]].concat());
        let got = json(&out).map(|v| edge_rows(&v)).unwrap_or_default();
        if got == want || Instant::now() > deadline {
            break (out, got);
        }
        thread::sleep(Duration::from_secs(1));
    };
    let run1 = daemon1.stop_after(Duration::from_millis(300)).expect("observer 1 stops");
    let run2 = daemon2.stop_after(Duration::from_millis(300)).expect("observer 2 stops");
    let tails = format!("node 1:\n{}\nnode 2:\n{}", run1.log_tail(10), run2.log_tail(10));
    assert!(edges.status.success(), "{}", text(&edges));
    let key = |c: &str, s: &str| (format!("{ns}/{c}"), format!("{ns}/{s}"), u64::from(mesh.app_port()));
    // Each node alone misses an edge: the answer needs both.
    assert!(!edges1.contains_key(&key("legacy", "pod-d")) && !edges2.contains_key(&key("pod-a", "pod-b")), "{tails}");
    assert_eq!(want.get(&key("pod-a", "pod-b")), Some(&[0, 0, 1]), "the daemons: {edges1:?} {edges2:?}");
    assert_eq!(want.get(&key("legacy", "pod-b")), Some(&[2, 0, 0]), "the daemons: {edges1:?} {edges2:?}");
    assert_eq!(got, want, "Prometheus's edges and the two daemons' combined\n{}\n{tails}", text(&edges));

    let table = observer(&[&["edges", "--namespace", &ns], &source[..]].concat());
    let table_text = text(&table);
    let row = table_text.lines().find(|l| l.starts_with(&format!("{ns}/legacy ")) && l.contains("/pod-b:"));
    assert!(row.is_some_and(|r| r.contains("plaintext 2") && r.contains("would_break_under_strict 2")), "{table_text}");
    assert!(table_text.contains("no addresses, processes or times"), "says what metrics cannot: {table_text}");

    let all = observer(&[&["readiness", &ns, "--output", "json"], &source[..]].concat());
    let answer = json(&all).unwrap_or_else(|| panic!("{}", text(&all)));
    assert_eq!(all.status.code(), Some(1), "the namespace is not ready: {answer:#}");
    for list in ["would_break", "mtls"] {
        let want = combined(clients(&daemons[0], list), clients(&daemons[1], list));
        assert_eq!(clients(&answer, list), want, "{list}: Prometheus and the daemons combined: {answer:#}");
    }
    let breaking = clients(&answer, "would_break");
    assert_eq!(breaking.get(&key("legacy", "pod-b")), Some(&[2]), "{answer:#}");
    assert_eq!(breaking.get(&key("legacy", "pod-d")), Some(&[1]), "{answer:#}");
    // Its legs into pod-b are seen twice: at port 8080 by its own node, at the sidecar's capture
    // port 15006 by pod-b's node, which cannot see the original port (that daemon lists them
    // there). Together they are the same two connections, listed once.
    let pod_b = (format!("{ns}/legacy"), format!("{ns}/pod-b"), CAPTURE_PORT);
    assert!(clients(&daemons[0], "would_break").contains_key(&pod_b), "pod-b's node: {:#}", daemons[0]);
    assert_eq!(breaking.keys().cloned().collect::<Vec<_>>(), [key("legacy", "pod-b"), key("legacy", "pod-d")]);
    assert!(answer["summary"].as_str().is_some_and(|s| s.contains(": 2 clients would break")), "{answer:#}");
    let people = observer(&[&["readiness", &ns], &source[..]].concat());
    let people_text = text(&people);
    eprintln!("{table_text}\n{people_text}");
    let first = format!("not ready to switch namespace {ns} to STRICT: ");
    assert!(people_text.starts_with(&first) && people_text.contains("would break"), "{people_text}");
    assert!(people_text.contains("PERMISSIVE"), "the policy now is named:\n{people_text}");
    assert!(people_text.contains(&format!("  {ns}/legacy -> {ns}/pod-b:{}", mesh.app_port())), "{people_text}");
    assert!(people_text.contains("evidence is thin: observed for"), "a short window is said:\n{people_text}");

    let pod_c = observer(&[&["readiness", &ns, "--workload", "pod-c"], &source[..]].concat());
    let pod_c_text = text(&pod_c);
    eprintln!("{pod_c_text}");
    assert_eq!(pod_c.status.code(), Some(0), "pod-c has mTLS clients only:\n{pod_c_text}");
    assert!(pod_c_text.starts_with(&format!("ready to switch workload {ns}/pod-c to STRICT")), "{pod_c_text}");
    assert!(pod_c_text.contains(&format!("{ns}/pod-a -> {ns}/pod-c:{}  1 mtls connection", mesh.app_port())));
    let window = observer(&[&["readiness", &ns, "--window", "5m", "--workload", "pod-c"], &source[..]].concat());
    assert_eq!(window.status.code(), Some(0), "{}", text(&window));
    drop(prometheus);

    let refused = observer(&["readiness", &ns, "--prometheus", &refusing.url()]);
    let message = text(&refused);
    assert_eq!(refused.status.code(), Some(2), "{message}");
    assert!(message.contains("Prometheus refused the query (HTTP 422, execution)"), "{message}");
    assert!(message.contains("too many samples"), "Prometheus's own message: {message}");
}

#[test]
fn an_unreachable_or_bad_prometheus_or_window_exits_2_and_says_why() {
    let nothing = format!("http://127.0.0.1:{}", free_port());
    let out = observer(&["readiness", "mesh", "--prometheus", &nothing]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("{}/api/v1/query", &nothing[7..])), "names the URL: {}", text(&out));
    let out = observer(&["edges", "--prometheus", "ftp://127.0.0.1:9090"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("is not an http://HOST:PORT URL"), "{}", text(&out));
    for window in ["10s", "1y", "soon"] {
        let out = observer(&["readiness", "mesh", "--prometheus", &nothing, "--window", window]);
        assert_eq!(out.status.code(), Some(2), "--window {window}");
        assert!(text(&out).contains(window), "names the window: {}", text(&out));
    }
    let out = observer(&["readiness", "mesh", "--input", "/dev/null", "--window", "1h"]);
    assert!(out.status.code() == Some(2) && text(&out).contains("--window is for --prometheus"), "{}", text(&out));
    let out = observer(&["readiness", "mesh", "--input", "/dev/null", "--prometheus", &nothing]);
    assert_eq!(out.status.code(), Some(2), "two sources: {}", text(&out));
}
