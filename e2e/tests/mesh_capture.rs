//! The live observer on the Istio-like mesh (HAProxy sidecars, Istio's iptables REDIRECT): one
//! request from pod-a's app to pod-b's app crosses three legs, each reported once with the
//! sockets' own view of the addresses (the original destination behind a REDIRECT, never the
//! proxy's 15001/15006) and the owning processes (the sidecar as uid 1337). A legacy pod's
//! plaintext to a STRICT pod is one leg to the original destination too.
//!
//! Capture facts only; leg names and verdicts from `--policy` are in `mesh_policy`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    Checks, ExpectedConn, Mesh, ObserverProcess, Sidecar, check_connections, peers::Curl, require_root, serial,
};

const SIDECAR_UID: u32 = 1337;

#[expect(clippy::too_many_arguments, reason = "one line per leg reads best as a table")]
fn leg(
    label: &str,
    client_ip: IpAddr,
    client_pid: u32,
    client_comm: &str,
    server: SocketAddr,
    server_pid: u32,
    server_comm: &str,
    security: &str,
) -> ExpectedConn {
    ExpectedConn::both(label, client_ip, client_pid, client_comm, server, server_pid, server_comm)
        .field("/security", security)
}

/// Runs the mesh under the observer and checks the legs; `dissected` adds the dissector's
/// verdicts (mTLS from the Istio ALPN, the Istio SNI; with `tls12` sidecars the client
/// Certificate in cleartext and its SPIFFE ID).
fn check_mesh_legs(dissected: bool, tls12: bool) {
    let observer = ObserverProcess::start(Duration::from_secs(120)).expect("observer attaches");
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-b", Sidecar::Strict)
        .pod("legacy", Sidecar::None)
        .tls12_only(tls12)
        .build()
        .expect("mesh");
    let ip = |pod: &str| IpAddr::V4(mesh.pod(pod).ipv4());
    let pid = |pod: &str| mesh.mesh_pod(pod).proxy_pid().expect("sidecar");
    let app_b = SocketAddr::new(ip("pod-b"), mesh.app_port());

    let through_mesh = Curl::http(mesh.pod("pod-a").ns(), ip("pod-b"), mesh.app_port()).run().expect("curl");
    assert_eq!(through_mesh.http_code, 200, "{through_mesh}");
    let legacy = Curl::http(mesh.pod("legacy").ns(), ip("pod-b"), mesh.app_port()).run().expect("curl");
    assert_eq!(legacy.code(), Some(52), "{legacy}");
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");

    let mut local_outbound = leg(
        "local outbound (app -> own sidecar)",
        ip("pod-a"),
        through_mesh.pid(),
        "curl",
        app_b,
        pid("pod-a"),
        "haproxy",
        "plaintext",
    )
    .field("/server/process/uid", SIDECAR_UID);
    local_outbound.client_port = through_mesh.local.map(|l| l.port());
    let mut external = ExpectedConn {
        label: "external (sidecar -> sidecar, mTLS)".into(),
        client_ip: ip("pod-a"),
        client_port: None,
        client_pid: pid("pod-a"),
        client_comm: "haproxy".into(),
        server: app_b,
        server_pid: pid("pod-b"),
        server_comm: "haproxy".into(),
        observed_at: "both".into(),
        fields: Vec::new(),
    }
    .field("/protocol", "tls")
    .field("/client/process/uid", SIDECAR_UID)
    .field("/server/process/uid", SIDECAR_UID);
    if dissected {
        external = external
            .field("/security", "mtls")
            .field("/tls/sni", mesh.sni("pod-b"))
            .field("/tls/alpn_offered", vec!["istio-peer-exchange", "istio"])
            .field("/tls/client_cert", "presented");
        if tls12 {
            let spiffe = observer_e2e::pki::spiffe_id(mesh.namespace(), "pod-a");
            external = external
                .field("/tls/version", "1.2")
                .field("/tls/evidence", "tls12_certificate")
                .field("/tls/client_spiffe_id", spiffe);
        } else {
            external = external.field("/tls/version", "1.3");
        }
    }
    let want = [
        local_outbound,
        external,
        leg(
            "local inbound (sidecar -> app, from 127.0.0.6)",
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)),
            pid("pod-b"),
            "haproxy",
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), mesh.app_port()),
            mesh.mesh_pod("pod-b").app_pid(),
            "python3",
            "plaintext",
        ),
        leg(
            "legacy plaintext -> STRICT sidecar",
            ip("legacy"),
            legacy.pid(),
            "curl",
            app_b,
            pid("pod-b"),
            "haproxy",
            "plaintext",
        ),
    ];
    let mut checks = Checks::new();
    checks.check("observer exit", run.expect_clean_exit());
    check_connections(&run.records, &want, &mut checks);
    if let Err(error) = checks.finish() {
        panic!("{error:#}\nall records of this mesh:\n{}", run.records.involving(&mesh.ips()));
    }
}

#[test]
fn mesh_legs_are_reported_with_original_destinations_and_owners() {
    let _serial = serial();
    if require_root() {
        check_mesh_legs(false, false);
    }
}

#[test]
fn mesh_mtls_is_recognised_from_the_istio_client_hello() {
    let _serial = serial();
    if require_root() {
        check_mesh_legs(true, false);
        check_mesh_legs(true, true);
    }
}
