//! OTLP end to end: the live observer pushes its metrics to a real OTLP receiver (the official
//! protobufs, grpcio) over gRPC and over HTTP/protobuf; the connections a test makes between
//! two namespaces arrive as `observer.connections` under the owning Deployment (a ReplicaSet's
//! pod-template-hash stripped), with the resource, semantic-convention attributes, the
//! `OTEL_EXPORTER_OTLP_HEADERS` and exact counts; a low `--metrics-cardinality-limit` shows as `otel.metric.overflow` and is counted;
//! an unreachable collector is counted and costs the pipeline nothing.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use observer_e2e::{
    ObserverProcess, RUN_CAP, TempDir, Topology,
    peers::{Curl, HttpServer},
    require_root, serial,
    telemetry::{OtlpReceiver, attr_value, free_port, http_get, point_value, points},
};
use serde_json::Value;

const NAMESPACE: &str = "otlp-test";

/// A Pod manifest as a Deployment's ReplicaSet makes it.
fn pod_manifest(ip: std::net::Ipv4Addr, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(|p| format!("{{containerPort: {p}}}")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-5d9c7b8f6c-q7x2m\n  namespace: {NAMESPACE}\n  labels: {{app: web, pod-template-hash: 5d9c7b8f6c}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d9c7b8f6c, controller: true, uid: u}}]\nspec:\n  containers: [{{name: web, image: web, ports: [{}]}}]\nstatus: {{phase: Running, podIP: {ip}}}\n",
        ports.join(", ")
    )
}

/// The newest value of `observer.connections` for our server port and workload.
fn our_connections(requests: &[Value], transport: &str, port: u16) -> Option<(Value, Value)> {
    requests.iter().rev().filter(|r| r["transport"] == transport).find_map(|r| {
        points(r, "observer.connections")
            .into_iter()
            .find(|(_, p)| {
                attr_value(&p["attributes"], "server.port") == Some(port.to_string())
                    && attr_value(&p["attributes"], "k8s.dst.owner.name").as_deref() == Some("web")
            })
            .map(|(resource, point)| (resource.clone(), point.clone()))
    })
}

fn live_traffic_arrives(transport: &str, port: u16) {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let receiver = OtlpReceiver::start().expect("OTLP receiver");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let dir = TempDir::new("otlp-policy").expect("temp dir");
    let policy = dir.write("pod.yaml", pod_manifest(b.ipv4(), &[port]).as_bytes()).expect("manifest");
    let policy = policy.display().to_string();
    let _http = HttpServer::start(b.ns(), port).expect("http server");
    let grpc = format!("http://127.0.0.1:{}", receiver.grpc_port);
    let http = format!("http://127.0.0.1:{}", receiver.http_port);
    // gRPC: the flags win over contrary variables. HTTP: the standard variables alone.
    let (extra, env): (Vec<&str>, Vec<(&str, &str)>) = if transport == "grpc" {
        (
            vec!["--policy", &policy, "--otlp-endpoint", &grpc, "--otlp-protocol", "grpc"],
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
    } else {
        (
            vec!["--policy", &policy],
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", &http), ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")],
        )
    };
    let mut env = env;
    env.extend([
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=e2e"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-observer-test=e2e%20run"),
        ("NODE_NAME", "otlp-node"),
    ]);
    let observer = ObserverProcess::start_with_env(RUN_CAP, &extra, &env).expect("observer attaches");
    const CONNECTIONS: usize = 3;
    for _ in 0..CONNECTIONS {
        let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), port).run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
    }
    let counted = receiver.wait_for(Duration::from_secs(30), |requests| {
        our_connections(requests, transport, port).filter(|(_, point)| point_value(point) == Some(CONNECTIONS as f64))
    });
    let requests = receiver.requests();
    let run = observer.stop_after(Duration::from_millis(200)).expect("observer stops");
    let Some((resource, point)) = counted else {
        panic!(
            "no observer.connections = {CONNECTIONS} for port {port} over {transport}: last {:?}\n{}",
            our_connections(&requests, transport, port),
            run.log_tail(20)
        );
    };
    assert!(requests.iter().all(|r| r["transport"] == transport), "only {transport} was used");
    assert!(
        requests.iter().all(|r| r["headers"]["x-observer-test"] == "e2e run"),
        "OTEL_EXPORTER_OTLP_HEADERS on every request: {}",
        requests[0]["headers"]
    );
    for (key, want) in [
        ("service.name", "observer"),
        ("service.version", env!("CARGO_PKG_VERSION")),
        ("k8s.node.name", "otlp-node"),
        ("deployment.environment.name", "e2e"),
    ] {
        assert_eq!(attr_value(&resource, key).as_deref(), Some(want), "resource {key}: {resource}");
    }
    assert!(attr_value(&resource, "host.name").is_some_and(|h| !h.is_empty()), "{resource}");
    let attributes = &point["attributes"];
    for (key, want) in [
        ("k8s.dst.owner.type", "Deployment"),
        ("k8s.dst.namespace", NAMESPACE),
        ("observer.connection.security", "plaintext"),
        ("network.protocol.name", "http"),
        ("network.transport", "tcp"),
        ("network.type", "ipv4"),
        ("observer.verdict", "ok"),
    ] {
        assert_eq!(attr_value(attributes, key).as_deref(), Some(want), "{key}: {point}");
    }
    let text = point.to_string();
    assert!(!text.contains("q7x2m") && !text.contains(&b.ipv4().to_string()), "no pod names or addresses: {text}");
    assert!(attr_value(attributes, "k8s.src.owner.name").is_none(), "the client is not in the inventory: {text}");
    let last = requests.iter().rev().find(|r| !points(r, "process.cpu.time").is_empty()).expect("process.cpu.time");
    assert!(points(last, "process.cpu.time").iter().any(|(_, p)| point_value(p).is_some_and(|v| v > 0.0)));
    assert!(points(last, "process.memory.usage").iter().any(|(_, p)| point_value(p).is_some_and(|v| v > 1e6)));
    assert!(!points(last, "observer.capture.lost").is_empty(), "self-telemetry is pushed too");
    run.expect_clean_exit().expect("clean exit");
}

#[test]
fn otlp_grpc_carries_live_connections_by_owning_workload() {
    live_traffic_arrives("grpc", 18091);
}

#[test]
fn otlp_http_protobuf_carries_live_connections_by_owning_workload() {
    live_traffic_arrives("http", 18092);
}

#[test]
fn a_low_cardinality_limit_overflows_visibly_and_is_counted() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let receiver = OtlpReceiver::start().expect("OTLP receiver");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let ports = [18093, 18094, 18095, 18096];
    let dir = TempDir::new("otlp-policy").expect("temp dir");
    let policy = dir.write("pod.yaml", pod_manifest(b.ipv4(), &ports).as_bytes()).expect("manifest");
    let _servers: Vec<HttpServer> = ports.iter().map(|p| HttpServer::start(b.ns(), *p).expect("server")).collect();
    let grpc = format!("http://127.0.0.1:{}", receiver.grpc_port);
    let observer = ObserverProcess::start_with_env(
        RUN_CAP,
        &["--policy", &policy.display().to_string(), "--otlp-endpoint", &grpc, "--metrics-cardinality-limit", "3"],
        &[("OTEL_METRIC_EXPORT_INTERVAL", "500")],
    )
    .expect("observer attaches");
    for port in ports {
        let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), port).run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
    }
    // Four attribute sets of ours (one per port) for two slots: at least two overflow, whatever
    // else the machine's other connections add.
    let overflow = receiver.wait_for(Duration::from_secs(30), |requests| {
        let last = requests.last()?;
        let overflowed = points(last, "observer.connections")
            .into_iter()
            .find(|(_, p)| attr_value(&p["attributes"], "otel.metric.overflow").as_deref() == Some("true"))
            .and_then(|(_, p)| point_value(p))?;
        let counted = points(last, "observer.metrics.overflow")
            .into_iter()
            .find(|(_, p)| attr_value(&p["attributes"], "observer.metric").as_deref() == Some("observer.connections"))
            .and_then(|(_, p)| point_value(p))?;
        let bound = points(last, "observer.connections").len();
        (overflowed >= 2.0 && counted >= 2.0).then_some((overflowed, counted, bound))
    });
    let run = observer.stop_after(Duration::from_millis(200)).expect("observer stops");
    let Some((overflowed, counted, series)) = overflow else {
        panic!("no overflow of observer.connections arrived\n{}", run.log_tail(20));
    };
    assert!(overflowed >= 2.0 && counted >= 2.0, "overflowed {overflowed}, counted {counted}");
    assert!(series <= 3, "two bound attribute sets and the overflow at most, got {series}");
    run.expect_clean_exit().expect("clean exit");
}

#[test]
fn an_unreachable_collector_is_counted_and_neither_stalls_the_pipeline_nor_the_exit() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let port = 18097;
    let _http = HttpServer::start(b.ns(), port).expect("http server");
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let observer = ObserverProcess::start_with_env(
        RUN_CAP,
        &["--metrics-addr", &metrics_addr, "--otlp-endpoint", &nobody, "--otlp-protocol", "http/protobuf"],
        &[("OTEL_METRIC_EXPORT_INTERVAL", "300")],
    )
    .expect("observer attaches");
    let mut clients = Vec::new();
    for _ in 0..3 {
        let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), port).run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
        clients.push(curl.pid());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = None;
    while Instant::now() < deadline && failures.is_none() {
        failures = http_get(metrics_port, "/metrics").ok().and_then(|(_, body)| {
            let line = body.lines().find(|l| l.starts_with("observer_export_failures_total{"))?;
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            (value >= 1.0).then_some(value)
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    let stopping = Instant::now();
    let run = observer.stop_after(Duration::from_millis(500)).expect("observer stops");
    let exit = stopping.elapsed();
    assert!(failures.is_some(), "export failures counted\n{}", run.log_tail(20));
    assert!(exit < Duration::from_secs(15), "the last flush is bounded: {exit:?}");
    let ours = run.records.filter(|rec| {
        rec["server"]["port"] == port
            && rec["client"]["process"]["pid"].as_u64().is_some_and(|pid| clients.contains(&(pid as u32)))
    });
    assert_eq!(ours.len(), 3, "every leg classified and printed:\n{ours}");
    run.expect_clean_exit().expect("clean exit");
}
