//! The edge table from JSON lines as `observer run` prints them: aggregation, readiness, the
//! HTTP routes' validation, hostile lines, and the bound.

use std::sync::Mutex;

use super::*;

fn line(
    client: (&str, Option<&str>, &str),
    server: (&str, Option<&str>),
    leg: &str,
    security: &str,
    verdict: (&str, Option<&str>, &str),
) -> String {
    let (status, kind, expected) = verdict;
    serde_json::json!({
        "time": "2026-11-26T14:00:00.123Z", "node": "n1", "conn_id": format!("c:{}", client.0.len()),
        "client": { "ip": client.0, "port": 40000, "workload": client.1, "process": { "pid": 7, "uid": 0, "comm": client.2 } },
        "server": { "ip": server.0, "port": 8080, "workload": server.1, "process": null },
        "observed_at": "both", "leg": leg, "security": security, "protocol": "http1", "reason": null,
        "tls": if security == "mtls" { serde_json::json!({ "client_cert": "presented" }) } else { serde_json::Value::Null },
        "verdict": { "status": status, "expected": expected, "kind": kind, "policy": "PeerAuthentication/mesh/pod-b", "reason": null }
    })
    .to_string()
}

/// pod-a → pod-b through sidecars (with its two in-pod legs) and a legacy client's plaintext.
fn mesh_lines(with_legacy: bool) -> String {
    let mut lines = vec![
        line(
            ("10.0.0.1", Some("mesh/pod-a"), "curl"),
            ("10.0.0.2", Some("mesh/pod-b")),
            "local_outbound",
            "plaintext",
            ("ok", None, "any"),
        ),
        line(
            ("10.0.0.1", Some("mesh/pod-a"), "haproxy"),
            ("10.0.0.2", Some("mesh/pod-b")),
            "external_outbound",
            "mtls",
            ("ok", None, "mtls"),
        ),
        line(("127.0.0.6", None, "haproxy"), ("127.0.0.1", None), "local_inbound", "plaintext", ("ok", None, "any")),
        line(
            ("10.0.0.2", Some("mesh/pod-a"), "haproxy"),
            ("10.0.0.3", Some("mesh/pod-b")),
            "external_inbound",
            "mtls",
            ("ok", None, "any"),
        ),
    ];
    if with_legacy {
        for _ in 0..3 {
            lines.push(line(
                ("10.0.0.9", None, "curl"),
                ("10.0.0.2", Some("mesh/pod-b")),
                "external_inbound",
                "plaintext",
                ("ok", Some("would_break_under_strict"), "any"),
            ));
        }
    }
    lines.join("\n") + "\n"
}

fn table_of(text: &str) -> EdgeTable {
    let mut table = EdgeTable::new(100);
    let stats = read_lines(text.as_bytes(), &mut table).expect("read");
    assert_eq!(stats.skipped, 0, "{text}");
    table
}

#[test]
fn edges_aggregate_per_client_server_and_port_without_in_pod_legs() {
    let snapshot = table_of(&mesh_lines(true)).snapshot();
    assert_eq!(snapshot.stats.in_pod_legs, 2);
    assert_eq!(snapshot.stats.records, 5);
    assert_eq!(snapshot.edges.len(), 2, "{snapshot:#?}");
    let legacy = &snapshot.edges[0];
    assert_eq!(legacy.client.label(), "10.0.0.9 (curl)");
    assert_eq!((legacy.connections, legacy.security.plaintext, legacy.would_break_under_strict), (3, 3, 3));
    assert_eq!(legacy.mode.as_deref(), Some("PERMISSIVE"));
    assert_eq!(legacy.example.verdict.as_deref(), Some("would_break_under_strict"));
    let mesh = &snapshot.edges[1];
    assert_eq!((mesh.client.label().as_str(), mesh.server.label().as_str()), ("mesh/pod-a", "mesh/pod-b"));
    assert_eq!((mesh.connections, mesh.security.mtls), (2, 2));
    assert_eq!(mesh.client_cert.get("presented"), Some(&2));
    assert!(!mesh.is_weak() && legacy.is_weak());
    let dot = render::dot(&snapshot);
    assert!(dot.contains("\"10.0.0.9 (curl)\" -> \"mesh/pod-b\"") && dot.contains("color=red"), "{dot}");
    assert!(dot.contains("\"mesh/pod-a\" -> \"mesh/pod-b\" [label=\":8080 mtls 2\", color=darkgreen"), "{dot}");
}

#[test]
fn readiness_names_the_clients_that_would_break() {
    let target = Target { namespace: "mesh".into(), workload: Some("pod-b".into()) };
    let r = readiness::assess(&table_of(&mesh_lines(true)).snapshot(), &target);
    assert!(!r.ready);
    assert!(r.summary.starts_with("not ready to switch workload mesh/pod-b to STRICT: 1 client would break"), "{r:#?}");
    assert!(r.summary.contains("PeerAuthentication/mesh/pod-b PERMISSIVE"), "{}", r.summary);
    assert_eq!(r.would_break.len(), 1);
    assert_eq!((r.would_break[0].ip.as_str(), r.would_break[0].process.as_deref()), ("10.0.0.9", Some("curl")));
    assert_eq!(r.would_break[0].connections, 3);
    assert_eq!(r.mtls[0].client, "mesh/pod-a");
    assert!(r.thin_evidence.iter().any(|t| t.contains("observed for 0 s")), "{:?}", r.thin_evidence);
    let text = render::readiness_text(&r);
    assert!(text.lines().next().expect("present").starts_with("not ready"), "{text}");
    assert!(text.contains("10.0.0.9 (curl) -> mesh/pod-b:8080  3 plaintext connections"), "{text}");

    let ready = readiness::assess(&table_of(&mesh_lines(false)).snapshot(), &target);
    assert!(ready.ready && ready.summary.starts_with("ready to switch"), "{ready:#?}");
    let elsewhere = readiness::assess(
        &table_of(&mesh_lines(false)).snapshot(),
        &Target { namespace: "other".into(), workload: None },
    );
    assert!(!elsewhere.ready && elsewhere.thin_evidence[0].contains("no traffic"), "{elsewhere:#?}");
}

#[test]
fn hostile_lines_are_skipped_and_counted() {
    let long = format!("{{\"x\": \"{}\"}}\n", "a".repeat(MAX_LINE + 10));
    let text = format!("not json\n{{\"conn_id\": 1}}\n[]\n{long}\n{}", mesh_lines(false));
    let mut table = EdgeTable::new(100);
    let stats = read_lines(text.as_bytes(), &mut table).expect("read");
    assert_eq!((stats.lines, stats.skipped), (8, 4));
    assert_eq!(table.len(), 1);
    // Names are cut, and escaped when printed.
    let evil = line(
        ("1.2.3.4", None, &format!("\x1b[2J{}", "x".repeat(400))),
        ("10.0.0.2", Some("mesh/pod-b")),
        "direct",
        "plaintext",
        ("ok", None, "any"),
    );
    let mut table = EdgeTable::new(10);
    read_lines(evil.as_bytes(), &mut table).expect("read");
    let snapshot = table.snapshot();
    assert!(snapshot.edges[0].client.process.as_ref().expect("present").len() <= MAX_NAME);
    let printed = render::edges_table(&snapshot);
    assert!(!printed.contains('\x1b') && printed.contains("\\u{1b}[2J"), "{printed}");
}

#[test]
fn the_routes_validate_their_queries() {
    let table = Mutex::new(table_of(&mesh_lines(true)));
    let get = |target: &str| api::respond(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"), &table);
    assert_eq!(get("/metrics"), None);
    let status = |target: &str| get(target).expect("present").split(' ').nth(1).expect("present").to_owned();
    for bad in [
        "/v1/edges?namespace=Bad_NS",
        "/v1/edges?namespace=a&namespace=b",
        "/v1/edges?colour=red",
        "/v1/edges?security=weird",
        "/v1/edges?workload=%zz",
        "/v1/edges?workload=%+1",
        "/v1/edges?workload=%ff",
        "/v1/readiness",
        "/v1/readiness?workload=pod-b",
        "/v1/readiness?namespace=mesh&workload=a/b/c",
    ] {
        assert_eq!(status(bad), "400", "{bad}");
    }
    assert_eq!(status(&format!("/v1/edges?namespace={}", "a".repeat(api::MAX_QUERY))), "400");
    assert_eq!(status("/v1/nothing"), "404");
    let post = api::respond("POST /v1/edges HTTP/1.1\r\n\r\n", &table).expect("present");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let ok = get("/v1/edges?namespace=mesh&security=plaintext").expect("present");
    let body: Snapshot = serde_json::from_str(ok.split_once("\r\n\r\n").expect("present").1).expect("a snapshot");
    assert_eq!(body.edges.len(), 1);
    assert_eq!(body.edges[0].client.ip, "10.0.0.9");
    let ok = get("/v1/readiness?namespace=mesh&workload=mesh%2Fpod-b").expect("present");
    let r: Readiness = serde_json::from_str(ok.split_once("\r\n\r\n").expect("present").1).expect("readiness");
    assert!(!r.ready && r.would_break.len() == 1);
}

#[test]
fn a_million_distinct_edges_stay_within_the_bound_and_evictions_are_counted() {
    const MAX: usize = 10_000;
    let mut table = EdgeTable::new(MAX);
    let (mut peak, mut full) = (0, 0);
    for i in 0..1_000_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        let o = Observation {
            time: "2026-11-26T14:00:00.123Z",
            conn_id: "c:1",
            client: observation::EndView { ip: &ip, port: 1, workload: None, process: Some("curl") },
            server: observation::EndView { ip: "10.1.0.1", port: 80, workload: Some("mesh/pod-b"), process: None },
            leg: "external_inbound",
            security: "plaintext",
            status: "ok",
            ..Observation::default()
        };
        table.observe(&o);
        // The oldest-but-busy edge stays: it is seen again every 1000 records.
        if i % 1000 == 0 {
            table.observe(&Observation { client: observation::EndView { ip: "11.9.9.9", ..o.client }, ..o });
        }
        if i as usize == MAX {
            full = table.approx_bytes();
        }
        if i % 100_000 == 0 {
            peak = peak.max(table.approx_bytes());
        }
    }
    assert_eq!(table.len(), MAX);
    let stats = table.stats();
    assert_eq!(stats.records, 1_000_000 + 1000);
    assert_eq!(stats.evicted, 1_000_000 + 1 - MAX as u64);
    // Full at 10k edges, and no larger after 990k more: about 1.5 KiB an edge with these names.
    let bound = MAX * 2048;
    assert!(peak.max(table.approx_bytes()) < bound, "{} bytes for {MAX} edges", table.approx_bytes());
    assert!(peak <= full + full / 100, "grew from {full} bytes when full to {peak}");
    eprintln!("{MAX} edges: {} bytes", table.approx_bytes());
    let snapshot = table.snapshot();
    assert!(snapshot.edges.iter().any(|e| e.client.ip == "11.9.9.9"), "the recently seen edge was evicted");
    assert!(snapshot.edges.iter().any(|e| e.client.ip == "10.15.66.63"), "the newest edge is missing");
}

#[test]
fn record_times_parse_back() {
    assert_eq!(readiness::parse_rfc3339_millis("2026-11-26T14:00:00.123Z"), Some(1_795_701_600_123));
    assert_eq!(readiness::parse_rfc3339_millis("1970-01-01T00:00:00.000Z"), Some(0));
    assert_eq!(readiness::parse_rfc3339_millis("2000-02-29T00:00:00Z"), Some(951_782_400_000));
    for bad in ["", "2026-13-01T00:00:00Z", "yesterday at noon!!!", "2026-11-26T14:00:00"] {
        assert_eq!(readiness::parse_rfc3339_millis(bad), None, "{bad}");
    }
}
