//! An ingress gateway in the mesh (HAProxy as the gateway proxy): a client's HTTPS to the gateway
//! is a `gateway_downstream` leg judged by the Gateway server's TLS mode (SIMPLE: TLS expected),
//! and the gateway's Istio mTLS to the backend's sidecar a `gateway_upstream` leg.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    ExpectedConn, Mesh, ObserverProcess, Privileges, Sidecar, mesh::gateway::GATEWAY_PORT, peers::Curl, require_root,
    serial,
};

#[test]
fn gateway_downstream_and_upstream_legs_follow_the_gateway() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder()
        .pod("pod-b", Sidecar::Strict)
        .pod("legacy", Sidecar::None)
        .ingress_gateway("gw", "pod-b")
        .build()
        .expect("mesh");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    // The sidecars and apps listen before the observer starts: attributing them takes the
    // chart's optional SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH.
    let walk = Privileges::chart_with_listener_walk();
    let observer =
        ObserverProcess::start_as(&walk, Duration::from_secs(120), &["--policy", &policy], &[]).expect("attaches");
    let gw = mesh.gateway("gw");
    let gw_ip = IpAddr::V4(mesh.pod("gw").ipv4());
    let url = format!("https://{}/", gw.host);
    let curl = Curl::new(mesh.pod("legacy").ns(), url)
        .arg("-k")
        .arg("--resolve")
        .arg(format!("{}:{GATEWAY_PORT}:{gw_ip}", gw.host))
        .run()
        .expect("curl");
    assert_eq!(curl.http_code, 200, "{curl}\n{}", gw.proxy_logs());
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");

    let b_proxy = mesh.mesh_pod("pod-b").proxy_pid().expect("sidecar");
    let downstream = ExpectedConn {
        label: "client -> gateway".into(),
        client_ip: IpAddr::V4(mesh.pod("legacy").ipv4()),
        client_port: curl.local.map(|l| l.port()),
        client_pid: curl.pid(),
        client_comm: "curl".into(),
        server: SocketAddr::new(gw_ip, GATEWAY_PORT),
        server_pid: gw.proxy_pid(),
        server_comm: "haproxy".into(),
        observed_at: "both".into(),
        fields: Vec::new(),
    }
    .field("/leg", "gateway_downstream")
    .field("/security", "tls")
    .field("/tls/sni", gw.host.as_str())
    .field("/verdict/status", "ok")
    .field("/verdict/expected", "tls")
    .field("/verdict/policy", format!("Gateway/{}/gw", mesh.namespace()));
    let upstream = ExpectedConn {
        label: "gateway -> backend".into(),
        client_ip: gw_ip,
        client_port: None,
        client_pid: gw.proxy_pid(),
        client_comm: "haproxy".into(),
        server: SocketAddr::new(IpAddr::V4(mesh.pod("pod-b").ipv4()), mesh.app_port()),
        server_pid: b_proxy,
        server_comm: "haproxy".into(),
        observed_at: "both".into(),
        fields: Vec::new(),
    }
    .field("/leg", "gateway_upstream")
    .field("/security", "mtls")
    .field("/tls/sni", mesh.sni("pod-b"))
    .field("/verdict/status", "ok")
    .field("/verdict/expected", "mtls");
    run.assert_connections("gateway legs", &[downstream, upstream]);
}
