//! Alerts end to end with a real Alertmanager (Debian's, single node, notifying a webhook of
//! the test): a legacy pod's plaintext to a STRICT workload fires exactly one alert with the
//! deviation's labels, healthy mTLS between sidecars fires none, the alert resolves after the
//! quiet period; with Alertmanager down the pipeline keeps classifying and the failures show
//! in the metrics.

use std::{
    net::IpAddr,
    thread,
    time::{Duration, Instant},
};

use observer_e2e::{
    Mesh, ObserverProcess, RUN_CAP, Sidecar, Topology,
    mesh::manifests::peer_authentication_name,
    peers::{Curl, HttpServer},
    require_root, serial,
    telemetry::{Alertmanager, Webhook, free_port, http_get},
};
use serde_json::Value;

fn wait_until<T>(timeout: Duration, found: impl Fn() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(hit) = found() {
            return Some(hit);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The alerts of webhook notifications with this status whose labels name this mesh's server.
fn notified(webhook: &Webhook, status: &str, namespace: &str) -> Vec<Value> {
    webhook
        .notifications()
        .iter()
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == status && a["labels"]["server_namespace"] == namespace)
        .collect()
}

#[test]
fn plaintext_under_strict_fires_one_alert_that_resolves_when_quiet() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-b", Sidecar::Strict)
        .pod("legacy", Sidecar::None)
        .build()
        .expect("mesh");
    let webhook = Webhook::start().expect("webhook");
    let alertmanager = Alertmanager::start(webhook.port).expect("alertmanager");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    let url = alertmanager.url();
    let observer = ObserverProcess::start_with(
        RUN_CAP,
        &["--policy", &policy, "--alertmanager", &url, "--alert-resolve-after", "4s"],
    )
    .expect("observer attaches");
    let ip = |pod: &str| IpAddr::V4(mesh.pod(pod).ipv4());
    for _ in 0..3 {
        let healthy = Curl::http(mesh.pod("pod-a").ns(), ip("pod-b"), mesh.app_port()).run().expect("curl");
        assert_eq!(healthy.http_code, 200, "{healthy}");
        let refused = Curl::http(mesh.pod("legacy").ns(), ip("pod-b"), mesh.app_port()).run().expect("curl");
        assert_eq!(refused.code(), Some(52), "STRICT refuses plaintext: {refused}");
    }
    let namespace = mesh.namespace().to_owned();
    let firing = wait_until(Duration::from_secs(30), || {
        let alerts = notified(&webhook, "firing", &namespace);
        (!alerts.is_empty()).then_some(alerts)
    });
    let active: Vec<Value> =
        alertmanager.alerts().into_iter().filter(|a| a["labels"]["server_namespace"] == namespace.as_str()).collect();
    // Quiet from now on: the alert must resolve 4 s after the last deviation.
    let resolved = wait_until(Duration::from_secs(40), || {
        let alerts = notified(&webhook, "resolved", &namespace);
        (!alerts.is_empty()).then_some(alerts)
    });
    let run = observer.stop_after(Duration::from_millis(200)).expect("observer stops");
    let firing = firing.unwrap_or_else(|| panic!("no alert reached the webhook\n{}", run.log_tail(20)));
    assert_eq!(active.len(), 1, "exactly one alert in Alertmanager for this mesh: {active:#?}");
    let labels = &active[0]["labels"];
    let pa = format!("PeerAuthentication/{namespace}/{}", peer_authentication_name("pod-b"));
    for (key, want) in [
        ("alertname", "ObserverDeviation"),
        ("kind", "unexpected_plaintext"),
        ("severity", "critical"),
        ("client_namespace", namespace.as_str()),
        ("client_workload", "legacy"),
        ("server_workload", "pod-b"),
        ("policy", pa.as_str()),
    ] {
        assert_eq!(labels[key].as_str(), Some(want), "label {key}: {labels}");
    }
    assert_eq!(labels["server_port"].as_str(), Some(mesh.app_port().to_string().as_str()), "{labels}");
    let example = active[0]["annotations"]["example_connection"].as_str().unwrap_or_default();
    assert!(example.contains(&mesh.pod("legacy").ipv4().to_string()), "example connection: {example}");
    assert!(active[0]["annotations"]["client_process"].as_str().is_some_and(|p| p.contains("curl")), "{active:#?}");
    assert!(firing.iter().all(|a| a["labels"] == *labels), "one alert, re-sent at most: {firing:#?}");
    let resolved = resolved.unwrap_or_else(|| panic!("the alert never resolved\n{}", run.log_tail(20)));
    assert!(resolved.iter().all(|a| a["labels"] == *labels), "{resolved:#?}");
    assert!(run.stderr.contains("policy deviation"), "a structured WARN per deviation");
    run.expect_clean_exit().expect("clean exit");
}

#[test]
fn with_alertmanager_down_classification_goes_on_and_failures_are_counted() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    // Plaintext to 443 is a deviation under the embedded default policy.
    let _http = HttpServer::start(b.ns(), 443).expect("http server");
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let observer = ObserverProcess::start_with(RUN_CAP, &["--metrics-addr", &metrics_addr, "--alertmanager", &nobody])
        .expect("observer attaches");
    const CONNECTIONS: usize = 5;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), 443).run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
        clients.push(curl.pid());
    }
    let failures = wait_until(Duration::from_secs(30), || {
        let (_, body) = http_get(metrics_port, "/metrics").ok()?;
        let line = body.lines().find(|l| {
            l.starts_with("observer_alerts_delivery_failures_total{") && l.contains("error_type=\"unreachable\"")
        })?;
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        (value >= 1.0).then_some(value)
    });
    let records = observer.wait_for_records(Duration::from_secs(10), |r| {
        r.filter(|rec| rec["verdict"]["kind"] == "plaintext_on_tls_port" && rec["server"]["port"] == 443)
    });
    let run = observer.stop_after(Duration::from_millis(500)).expect("observer stops");
    assert!(failures.is_some(), "delivery failures counted\n{}", run.log_tail(20));
    let ours = run.records.filter(|rec| {
        rec["server"]["port"] == 443
            && rec["client"]["process"]["pid"].as_u64().is_some_and(|pid| clients.contains(&(pid as u32)))
    });
    assert_eq!(ours.len(), CONNECTIONS, "every leg still classified and printed:\n{ours}");
    assert!(records.is_some());
    for rec in ours.iter() {
        assert_eq!(rec["verdict"]["status"], "deviation", "{rec}");
    }
    run.expect_clean_exit().expect("clean exit");
}
