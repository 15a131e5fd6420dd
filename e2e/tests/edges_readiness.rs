//! The STRICT-readiness answer and the edge map (issue 11) on the HAProxy mesh: pod-a (STRICT)
//! calls pod-b and pod-c (both PERMISSIVE) through the sidecars, and a legacy pod without a
//! sidecar sends plaintext to pod-b. `observer readiness` must say pod-b is not ready and name
//! the legacy pod and its process, and pod-c (sidecar traffic only) ready; `observer edges` must
//! show pod-a → pod-b as mTLS and legacy → pod-b as plaintext. The same answers come from the
//! running daemon's HTTP API (`--from`), its JSON lines (`--input`) and tcpdump captures of
//! the same traffic (`--replay`), and the API and the CLI agree.

use std::{
    net::{IpAddr, TcpListener},
    process::{Command, Output},
    time::Duration,
};

use observer_e2e::{Mesh, ObserverProcess, Sidecar, TempDir, peers::Curl, require_root, serial, tcpdump::PcapCapture};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn observer(args: &[&str]) -> Output {
    Command::new(observer_e2e::observer::binary()).args(args).output().expect("observer runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(out), String::from_utf8_lossy(&out.stderr)))
}

/// `GET path` on the daemon's listener with curl (not the observer's own client).
fn http_get(port: u16, path: &str) -> Value {
    let out = Command::new("curl").args(["-s", &format!("http://127.0.0.1:{port}{path}")]).output().expect("curl");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The parts of a readiness answer that do not depend on when it was asked.
fn stable(readiness: &Value) -> Value {
    let mut r = readiness.clone();
    for key in ["first_seen", "last_seen", "thin_evidence"] {
        r.as_object_mut().expect("object").remove(key);
    }
    r
}

/// (client, server, port, plaintext, tls, mtls) of each edge with an end in the namespace.
fn edge_rows(snapshot: &Value) -> Vec<(String, String, u64, u64, u64, u64)> {
    let label = |end: &Value| {
        end["workload"].as_str().map(str::to_owned).unwrap_or_else(|| end["ip"].as_str().unwrap_or("").to_owned())
    };
    let mut rows: Vec<_> = snapshot["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| {
            let s = &e["security"];
            let n = |k: &str| s[k].as_u64().unwrap_or(0);
            (
                label(&e["client"]),
                label(&e["server"]),
                e["port"].as_u64().unwrap_or(0),
                n("plaintext"),
                n("tls"),
                n("mtls"),
            )
        })
        .collect();
    rows.sort();
    rows
}

struct Answers {
    pod_b: Output,
    pod_c: Output,
    edges: Output,
}

fn ask(source: &[&str], ns: &str) -> Answers {
    let with = |args: &[&str]| observer(&[args, source].concat());
    Answers {
        pod_b: with(&["readiness", ns, "--workload", "pod-b"]),
        pod_c: with(&["readiness", ns, "--workload", "pod-c"]),
        edges: with(&["edges", "--namespace", ns, "--output", "json"]),
    }
}

/// What every source must answer. `process` is whether the legacy client's process is known
/// (not from a capture).
fn check(what: &str, a: &Answers, mesh: &Mesh, process: bool) {
    let ns = mesh.namespace();
    let legacy_ip = mesh.pod("legacy").ipv4().to_string();
    let text = stdout(&a.pod_b);
    let first = text.lines().next().unwrap_or("");
    assert_eq!(a.pod_b.status.code(), Some(1), "{what}: pod-b is not ready:\n{text}");
    assert!(first.starts_with(&format!("not ready to switch workload {ns}/pod-b to STRICT")), "{what}:\n{text}");
    assert!(first.contains("PERMISSIVE"), "{what}: the policy now is named:\n{text}");
    let breaking = text.lines().skip_while(|l| !l.starts_with("would break")).nth(1).unwrap_or("");
    assert!(
        breaking.contains(&format!("{ns}/legacy")) || breaking.contains(&legacy_ip),
        "{what}: names legacy:\n{text}"
    );
    if process {
        assert!(breaking.contains("curl"), "{what}: names the legacy client's process:\n{text}");
    }
    assert!(
        text.contains("already sending mTLS") && text.contains(&format!("{ns}/pod-a -> {ns}/pod-b")),
        "{what}:\n{text}"
    );
    let text_c = stdout(&a.pod_c);
    assert_eq!(a.pod_c.status.code(), Some(0), "{what}: pod-c has sidecar traffic only:\n{text_c}");
    assert!(text_c.starts_with(&format!("ready to switch workload {ns}/pod-c to STRICT")), "{what}:\n{text_c}");

    assert!(a.edges.status.success(), "{what}: {}", String::from_utf8_lossy(&a.edges.stderr));
    let rows = edge_rows(&json(&a.edges));
    let port = u64::from(mesh.app_port());
    let mtls = rows.iter().find(|r| r.0 == format!("{ns}/pod-a") && r.1 == format!("{ns}/pod-b") && r.2 == port);
    assert!(mtls.is_some_and(|r| r.5 > 0 && r.3 == 0 && r.4 == 0), "{what}: pod-a -> pod-b is mTLS: {rows:?}");
    let legacy = rows
        .iter()
        .find(|r| (r.0 == format!("{ns}/legacy") || r.0 == legacy_ip) && r.1 == format!("{ns}/pod-b") && r.2 == port);
    assert!(legacy.is_some_and(|r| r.3 > 0 && r.5 == 0), "{what}: legacy -> pod-b is plaintext: {rows:?}");
}

#[test]
fn readiness_and_edges_from_the_daemon_its_json_lines_and_captures() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-b", Sidecar::Permissive)
        .pod("pod-c", Sidecar::Permissive)
        .pod("legacy", Sidecar::None)
        .build()
        .expect("mesh");
    let dir = TempDir::new("edges").expect("tempdir");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let daemon = ObserverProcess::start_with(Duration::from_secs(120), &["--policy", &policy, "--metrics-addr", &addr])
        .expect("observer attaches");
    let captures = ["pod-b", "pod-c"].map(|pod| {
        PcapCapture::start(mesh.pod(pod).ns(), "eth0", &dir.join(&format!("{pod}.pcap")), "tcp").expect("tcpdump")
    });
    let ip = |pod: &str| IpAddr::V4(mesh.pod(pod).ipv4());
    for (from, to) in [("pod-a", "pod-b"), ("pod-a", "pod-c"), ("legacy", "pod-b"), ("legacy", "pod-b")] {
        let run = Curl::http(mesh.pod(from).ns(), ip(to), mesh.app_port()).run().expect("curl");
        assert_eq!(run.http_code, 200, "{from} -> {to}: {run}");
    }
    let pcaps = captures.map(PcapCapture::finish);
    std::thread::sleep(observer_e2e::DRAIN);

    let ns = mesh.namespace();
    let from = ["--from", &format!("http://{addr}")].map(str::to_owned);
    let from: Vec<&str> = from.iter().map(String::as_str).collect();
    let live = ask(&from, ns);
    // The API answers what the CLI prints.
    let cli_json =
        json(&observer(&[&["readiness", ns, "--workload", "pod-b", "--output", "json"], &from[..]].concat()));
    let api = http_get(port, &format!("/v1/readiness?namespace={ns}&workload=pod-b"));
    assert_eq!(stable(&cli_json), stable(&api), "CLI and API readiness differ");
    let api_edges = http_get(port, &format!("/v1/edges?namespace={ns}"));
    assert_eq!(edge_rows(&json(&live.edges)), edge_rows(&api_edges), "CLI and API edges differ");
    let bad = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{addr}/v1/readiness?namespace=Not_A_NS"),
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&bad.stdout), "400", "a bad namespace is a 400");
    let run = daemon.stop_after(Duration::from_millis(500)).expect("observer stops");
    run.expect_clean_exit().expect("clean exit");
    check("daemon (--from)", &live, &mesh, true);

    let lines: Vec<String> = run.records.iter().map(Value::to_string).collect();
    let file = dir.write("records.jsonl", (lines.join("\n") + "\n").as_bytes()).expect("write records");
    let file = file.to_string_lossy().into_owned();
    let from_file = ask(&["--input", &file], ns);
    check("JSON lines (--input)", &from_file, &mesh, true);
    assert_eq!(edge_rows(&json(&from_file.edges)), edge_rows(&api_edges), "file and daemon edges differ");

    let mut replay = vec!["--policy", policy.as_str(), "--replay"];
    let pcap_paths: Vec<String> = pcaps.iter().map(|p: &std::path::PathBuf| p.to_string_lossy().into_owned()).collect();
    replay.extend(pcap_paths.iter().map(String::as_str));
    check("captures (--replay)", &ask(&replay, ns), &mesh, false);

    let bad_ns = observer(&["readiness", "Not_A_NS", "--input", &file]);
    assert_eq!(bad_ns.status.code(), Some(2), "bad input exits 2");
    let no_source = observer(&["readiness", ns]);
    assert_eq!(no_source.status.code(), Some(2), "no source exits 2");
}
