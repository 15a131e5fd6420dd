//! The observer given the mesh's Pod, Service and PeerAuthentication YAML
//! (`--policy DIR`) names every leg of a request through two sidecars, finds nothing wrong on the
//! healthy path, reports a legacy pod's plaintext to a STRICT workload as `unexpected_plaintext`
//! naming the PeerAuthentication, and to a PERMISSIVE one as `would_break_under_strict`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    Checks, ExpectedConn, Mesh, ObserverProcess, Privileges, Sidecar, check_connections,
    mesh::manifests::peer_authentication_name,
    peers::Curl,
    pki::spiffe_id,
    records::{at, str_at},
    require_root, serial,
};

fn leg(label: &str, client_ip: IpAddr, client_pid: u32, client_comm: &str, server: SocketAddr) -> ExpectedConn {
    ExpectedConn::both(label, client_ip, client_pid, client_comm, server, 0, "")
}

/// Runs the mesh with the observer and `--policy`, and checks every leg. Without `dissected`
/// the sidecar-to-sidecar leg is checked for its kind and expectation only: that it is mTLS
/// (and so `ok`) is read from its Istio ALPN by the dissector.
fn check_legs_and_verdicts(dissected: bool) {
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-b", Sidecar::Strict)
        .pod("pod-c", Sidecar::Permissive)
        .pod("legacy", Sidecar::None)
        .build()
        .expect("mesh");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    // The sidecars and apps listen before the observer starts: attributing them takes the
    // chart's optional SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH.
    let walk = Privileges::chart_with_listener_walk();
    let observer =
        ObserverProcess::start_as(&walk, Duration::from_secs(120), &["--policy", &policy], &[]).expect("attaches");
    let ip = |pod: &str| IpAddr::V4(mesh.pod(pod).ipv4());
    let app = |pod: &str| SocketAddr::new(ip(pod), mesh.app_port());
    let proxy = |pod: &str| mesh.mesh_pod(pod).proxy_pid().expect("sidecar");
    let pa = |pod: &str| format!("PeerAuthentication/{}/{}", mesh.namespace(), peer_authentication_name(pod));

    let healthy = Curl::http(mesh.pod("pod-a").ns(), ip("pod-b"), mesh.app_port()).run().expect("curl");
    assert_eq!(healthy.http_code, 200, "{healthy}");
    let to_strict = Curl::http(mesh.pod("legacy").ns(), ip("pod-b"), mesh.app_port()).run().expect("curl");
    assert_eq!(to_strict.code(), Some(52), "{to_strict}");
    let to_permissive = Curl::http(mesh.pod("legacy").ns(), ip("pod-c"), mesh.app_port()).run().expect("curl");
    assert_eq!(to_permissive.http_code, 200, "{to_permissive}");
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");

    let mut external = leg("external outbound", ip("pod-a"), proxy("pod-a"), "haproxy", app("pod-b"))
        .field("/leg", "external_outbound")
        .field("/verdict/expected", "mtls")
        .field("/client/identity", spiffe_id(mesh.namespace(), "pod-a"))
        .field("/server/identity", spiffe_id(mesh.namespace(), "pod-b"))
        .field("/server/workload", format!("{}/pod-b", mesh.namespace()));
    if dissected {
        external = external.field("/security", "mtls").field("/verdict/status", "ok");
    }
    let mut want = vec![
        leg("local outbound", ip("pod-a"), healthy.pid(), "curl", app("pod-b"))
            .field("/leg", "local_outbound")
            .field("/verdict/status", "ok"),
        external,
        leg(
            "local inbound",
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)),
            proxy("pod-b"),
            "haproxy",
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), mesh.app_port()),
        )
        .field("/leg", "local_inbound")
        .field("/verdict/status", "ok"),
        leg("legacy -> STRICT", ip("legacy"), to_strict.pid(), "curl", app("pod-b"))
            .field("/leg", "external_inbound")
            .field("/security", "plaintext")
            .field("/verdict/status", "deviation")
            .field("/verdict/kind", "unexpected_plaintext")
            .field("/verdict/expected", "mtls")
            .field("/verdict/policy", pa("pod-b")),
        leg("legacy -> PERMISSIVE", ip("legacy"), to_permissive.pid(), "curl", app("pod-c"))
            .field("/leg", "external_inbound")
            .field("/security", "plaintext")
            .field("/verdict/status", "ok")
            .field("/verdict/kind", "would_break_under_strict")
            .field("/verdict/policy", pa("pod-c")),
    ];
    // The server side is checked through `fields`; fill in what check_connections compares.
    for (conn, (pid, comm)) in want.iter_mut().zip([
        (proxy("pod-a"), "haproxy"),
        (proxy("pod-b"), "haproxy"),
        (mesh.mesh_pod("pod-b").app_pid(), "python3"),
        (proxy("pod-b"), "haproxy"),
        (proxy("pod-c"), "haproxy"),
    ]) {
        conn.server_pid = pid;
        conn.server_comm = comm.into();
    }
    let mut checks = Checks::new();
    checks.check("observer exit", run.expect_clean_exit());
    check_connections(&run.records, &want, &mut checks);
    // Nothing else of this mesh is a deviation.
    let strict_pid = u64::from(to_strict.pid());
    let external_pid = u64::from(proxy("pod-a"));
    for record in run.records.involving(&mesh.ips()).iter() {
        let client_pid = at(record, "/client/process/pid").as_u64();
        let judged_here = dissected || client_pid != Some(external_pid);
        if str_at(record, "/verdict/status") == Some("deviation") && client_pid != Some(strict_pid) && judged_here {
            checks.check("healthy path", Err(anyhow::anyhow!("unexpected deviation: {record}")));
        }
    }
    checks.finish().unwrap_or_else(|e| panic!("{e:#}\nrecords of this mesh:\n{}", run.records.involving(&mesh.ips())));
}

#[test]
fn legs_and_verdicts_follow_the_peer_authentications() {
    let _serial = serial();
    if require_root() {
        check_legs_and_verdicts(false);
    }
}

#[test]
fn the_healthy_mesh_path_has_no_deviation() {
    let _serial = serial();
    if require_root() {
        check_legs_and_verdicts(true);
    }
}

#[test]
fn an_edited_policy_is_reloaded_live_and_a_broken_one_is_rejected() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder().pod("pod-b", Sidecar::Strict).pod("legacy", Sidecar::None).build().expect("mesh");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    // The sidecars and apps listen before the observer starts: attributing them takes the
    // chart's optional SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH.
    let walk = Privileges::chart_with_listener_walk();
    let observer =
        ObserverProcess::start_as(&walk, Duration::from_secs(120), &["--policy", &policy], &[]).expect("attaches");
    let target = (mesh.pod("legacy").ns().to_owned(), IpAddr::V4(mesh.pod("pod-b").ipv4()), mesh.app_port());
    let plaintext = || {
        let run = Curl::http(&target.0, target.1, target.2).run().expect("curl");
        assert_eq!(run.code(), Some(52), "HAProxy stays STRICT whatever the policy says: {run}");
        run
    };
    let server = SocketAddr::new(target.1, target.2);
    let legacy_ip = IpAddr::V4(mesh.pod("legacy").ipv4());
    let pa = format!("PeerAuthentication/{}/{}", mesh.namespace(), peer_authentication_name("pod-b"));

    let under_strict = plaintext();
    mesh.set_peer_authentication("pod-b", Sidecar::Permissive).expect("edit policy");
    observer.wait_for_log("policy reloaded", 0, Duration::from_secs(15)).expect("reload");
    let under_permissive = plaintext();
    mesh.write_manifest("broken.yaml", "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: [\n")
        .expect("write broken file");
    let rejected = observer.wait_for_log("broken.yaml", 0, Duration::from_secs(15)).expect("rejection logged");
    let after_broken = plaintext();
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");

    assert!(rejected.contains("broken.yaml:"), "the rejection names no file:line: {rejected}");
    let want: Vec<ExpectedConn> = [
        ("under STRICT", &under_strict, "deviation", "unexpected_plaintext"),
        ("after the edit to PERMISSIVE", &under_permissive, "ok", "would_break_under_strict"),
        ("with a broken file beside it", &after_broken, "ok", "would_break_under_strict"),
    ]
    .into_iter()
    .map(|(label, curl, status, kind)| {
        let mut c = leg(label, legacy_ip, curl.pid(), "curl", server)
            .field("/verdict/status", status)
            .field("/verdict/kind", kind)
            .field("/verdict/policy", pa.as_str());
        c.server_pid = mesh.mesh_pod("pod-b").proxy_pid().expect("sidecar");
        c.server_comm = "haproxy".into();
        c
    })
    .collect();
    run.assert_connections("live policy reload", &want);
}

#[test]
fn the_testbed_manifests_pass_observer_check() {
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-c", Sidecar::Permissive)
        .pod("legacy", Sidecar::None)
        .ingress_gateway("gw", "pod-a")
        .build()
        .expect("mesh");
    let out = std::process::Command::new(observer_e2e::observer::binary())
        .arg("check")
        .arg(mesh.manifests_dir())
        .output()
        .expect("observer check");
    assert!(
        out.status.success(),
        "observer check found problems in the testbed's own manifests ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The mesh captures IPv4 only (like Istio with an IPv4-only capture on a dual-stack cluster):
/// over IPv6 a sidecar pod's app reaches a legacy pod directly, past its sidecar — the traffic
/// the observer exists to catch. Both sockets are on this node, so the observer sees that the server
/// is python3 in another pod, not the pod's own sidecar: the leg cannot be `local_outbound`.
#[test]
fn an_app_bypassing_its_sidecar_is_not_called_local_outbound() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder().pod("pod-a", Sidecar::Strict).pod("legacy", Sidecar::None).build().expect("mesh");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    // The sidecars and apps listen before the observer starts: attributing them takes the
    // chart's optional SYS_ADMIN, SYS_PTRACE and DAC_READ_SEARCH.
    let walk = Privileges::chart_with_listener_walk();
    let observer =
        ObserverProcess::start_as(&walk, Duration::from_secs(120), &["--policy", &policy], &[]).expect("attaches");
    let legacy_v6 = IpAddr::V6(mesh.pod("legacy").ipv6().expect("v6"));
    let bypass = Curl::http(mesh.pod("pod-a").ns(), legacy_v6, mesh.app_port()).run().expect("curl");
    assert_eq!(bypass.http_code, 200, "{bypass}");
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");
    let pod_a_v6 = IpAddr::V6(mesh.pod("pod-a").ipv6().expect("v6"));
    let mut want = leg("bypass", pod_a_v6, bypass.pid(), "curl", SocketAddr::new(legacy_v6, mesh.app_port()));
    want.server_pid = mesh.mesh_pod("legacy").app_pid();
    want.server_comm = "python3".into();
    let mut checks = Checks::new();
    checks.check("observer exit", run.expect_clean_exit());
    let found = check_connections(&run.records, &[want], &mut checks);
    if let Some(record) = found.first().copied().flatten()
        && str_at(record, "/leg") == Some("local_outbound")
    {
        checks.check("bypass", Err(anyhow::anyhow!("labelled local_outbound: {record}")));
    }
    run.assert_passed("sidecar bypass", checks);
}
