//! The observer's metrics scraped by a real Prometheus (Debian's package): the OpenTelemetry
//! instruments arrive under their Prometheus names (README "Metrics") with bounded labels, the
//! connections a test makes are counted under the workload the policy's Pod manifest names,
//! and the daemon's own CPU time and memory are there for the dashboards.

use std::{net::IpAddr, time::Duration};

use observer_e2e::{
    ObserverProcess, RUN_CAP, TempDir, Topology,
    peers::{Curl, HttpServer},
    prometheus::{Prometheus, free_port},
    require_root, serial,
};

const HTTP_PORT: u16 = 18085;
const CONNECTIONS: usize = 3;

#[test]
fn prometheus_scrapes_connections_by_workload_and_the_loss_counters() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let dir = TempDir::new("metrics").expect("temp dir");
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: metrics-test, labels: {{app: web}}}}\nspec:\n  containers: [{{name: web, image: web, ports: [{{containerPort: {HTTP_PORT}}}]}}]\nstatus: {{phase: Running, podIP: {}}}\n",
        b.ipv4()
    );
    let policy = dir.write("pod.yaml", pod.as_bytes()).expect("pod manifest");
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let _http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    let observer = ObserverProcess::start_with(
        RUN_CAP,
        &["--metrics-addr", &metrics_addr, "--policy", &policy.display().to_string()],
    )
    .expect("observer attaches");
    let prometheus = Prometheus::start(&dir, &[metrics_port]).expect("prometheus");

    for _ in 0..CONNECTIONS {
        let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), HTTP_PORT).run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
    }
    let counted = r#"sum(observer_connections_total{k8s_dst_owner_name="web",k8s_dst_owner_type="Pod",k8s_dst_namespace="metrics-test",observer_connection_security="plaintext",network_protocol_name="http"})"#;
    let seen = prometheus.wait_for(counted, CONNECTIONS as f64, Duration::from_secs(30));
    let up = prometheus.query(r#"up{job="observer"}"#);
    let lost_series = prometheus.query(r#"count(observer_capture_lost_total)"#);
    let tracked = prometheus.query("observer_connections_tracked");
    let cpu = prometheus.query(r#"sum(process_cpu_time_seconds_total{job="observer"})"#);
    let memory = prometheus.query(r#"process_memory_usage_bytes{job="observer"}"#);
    let service = prometheus.query(r#"count(target_info{service_name="observer"})"#);
    let run = observer.stop_after(Duration::from_millis(200)).expect("observer stops");
    assert_eq!(up, Some(1.0), "Prometheus could not scrape the observer\n{}", run.log_tail(20));
    assert_eq!(seen, Some(CONNECTIONS as f64), "connections counted for metrics-test/web\n{}", run.log_tail(20));
    assert!(lost_series.is_some_and(|n| n >= 10.0), "observer_capture_lost_total by stage: {lost_series:?}");
    assert!(tracked.is_some(), "observer_connections_tracked missing");
    assert!(cpu.is_some_and(|c| c > 0.0), "process_cpu_time_seconds_total: {cpu:?}");
    assert!(memory.is_some_and(|m| m > 1e6), "process_memory_usage_bytes: {memory:?}");
    assert_eq!(service, Some(1.0), "target_info carries the resource");
}
