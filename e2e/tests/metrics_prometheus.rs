//! The observer's metrics scraped by a real Prometheus (Debian's package): the OpenTelemetry
//! instruments arrive under their Prometheus names (README "Metrics") with bounded labels, the
//! connections a test makes are counted under the workload the policy's Pod manifest names,
//! and the daemon's own CPU time and memory are there for the dashboards.

use std::{
    net::{IpAddr, TcpListener},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use observer_e2e::{
    ObserverProcess, RUN_CAP, TempDir, Topology,
    peers::{Curl, HttpServer},
    require_root, serial,
};

const HTTP_PORT: u16 = 18085;
const CONNECTIONS: usize = 3;

/// A port free on loopback right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Prometheus on loopback, stopped by PID when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &TempDir, target_port: u16) -> Self {
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: observer\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
        );
        let config = dir.write("prometheus.yml", config.as_bytes()).expect("prometheus config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts (cargo xtask setup installs it)");
        Self { child, port }
    }

    /// The value of an instant query's single result, if it has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let out = Command::new("curl")
            .args(["-s", "-G", &url, "--data-urlencode"])
            .arg(format!("query={promql}"))
            .output()
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let results = body["data"]["result"].as_array()?;
        if results.len() != 1 {
            return None;
        }
        results[0]["value"][1].as_str()?.parse().ok()
    }

    /// Poll `promql` until it equals `want` or the deadline passes; the last value seen.
    fn wait_for(&self, promql: &str, want: f64, timeout: Duration) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql);
            if last == Some(want) {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    let prometheus = Prometheus::start(&dir, metrics_port);

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
