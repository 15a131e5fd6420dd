//! The harness on its own, without the observer: namespaces come and go cleanly (also after a
//! panic), peers talk over IPv4, IPv6 and loopback, the mesh enforces STRICT and PERMISSIVE like
//! Istio, and a 576-byte MTU splits a ClientHello into several segments.

use std::{net::IpAddr, panic::AssertUnwindSafe, path::Path, time::Instant};

use observer_e2e::{
    Mesh, Sidecar, Topology, cleanup_stale,
    netns::list_ours,
    peers::{ClientAuth, Curl, HttpServer, SClient, TlsServer, TlsVersion},
    pki::{KeyType, Pki},
    require_root,
    tcpdump::payload_lengths,
};

fn gone(names: &[String]) -> bool {
    let present = list_ours();
    names.iter().all(|n| !present.contains(n))
}

fn process_gone(pid: u32) -> bool {
    // A zombie is gone for our purposes too: it holds no socket.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |stat| stat.split_whitespace().nth(2) == Some("Z"))
}

#[test]
fn topology_carries_ipv4_ipv6_and_loopback_then_leaves_nothing() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let names = topo.namespaces();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| list_ours().contains(n)), "namespaces {names:?} not created");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let server = HttpServer::start(b.ns(), 8080).expect("http server");
    let server_pid = server.pid();
    let targets = [
        (a.ns(), IpAddr::V4(b.ipv4()), IpAddr::V4(a.ipv4())),
        (a.ns(), IpAddr::V6(b.ipv6().expect("v6")), IpAddr::V6(a.ipv6().expect("v6"))),
        (b.ns(), "127.0.0.1".parse().expect("ip"), "127.0.0.1".parse().expect("ip")),
        (b.ns(), "::1".parse().expect("ip"), "::1".parse().expect("ip")),
    ];
    for (ns, ip, expected_local) in targets {
        let run = Curl::http(ns, ip, 8080).run().expect("curl");
        assert_eq!(run.http_code, 200, "to {ip}: {run}");
        let local = run.local.unwrap_or_else(|| panic!("curl reported no local address: {run}"));
        assert_eq!(local.ip(), expected_local, "{run}");
    }
    drop(server);
    drop(topo);
    assert!(gone(&names), "left behind: {:?}", list_ours());
    assert!(process_gone(server_pid), "server {server_pid} still running");
}

#[test]
fn tls_peers_handshake_with_and_without_client_certificates() {
    if !require_root() {
        return;
    }
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let pki = Pki::new().expect("pki");
    let server_leaf = pki.issue("server", KeyType::EcdsaP256, &["b.test.svc"], None).expect("server cert");
    let client_leaf =
        pki.issue("client", KeyType::Rsa2048, &[], Some("spiffe://cluster.local/ns/test/sa/a")).expect("client cert");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    for (port, version) in [(4433, TlsVersion::Tls13), (4434, TlsVersion::Tls12)] {
        let _server = TlsServer::start(b.ns(), port, &server_leaf, pki.ca_cert(), version, ClientAuth::Require)
            .expect("s_server");
        let with_cert = SClient::new(a.ns(), IpAddr::V4(b.ipv4()), port)
            .servername("b.test.svc")
            .verify_with(pki.ca_cert())
            .cert(&client_leaf)
            .version(version)
            .run()
            .expect("s_client");
        assert_eq!(with_cert.code, Some(0), "{with_cert}");
        assert!(with_cert.stdout.contains("HTTP/1.0 200"), "no HTTP reply: {with_cert}");
        let without = SClient::new(a.ns(), IpAddr::V4(b.ipv4()), port)
            .servername("b.test.svc")
            .version(version)
            .run()
            .expect("s_client");
        assert!(!without.stdout.contains("HTTP/1.0 200"), "served without a certificate: {without}");
    }
}

#[test]
fn mesh_enforces_strict_and_permissive_like_istio() {
    if !require_root() {
        return;
    }
    let started = Instant::now();
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-b", Sidecar::Strict)
        .pod("pod-c", Sidecar::Permissive)
        .pod("legacy", Sidecar::None)
        .build()
        .expect("mesh");
    eprintln!("mesh built in {:?}", started.elapsed());
    let ip = |pod: &str| IpAddr::V4(mesh.pod(pod).ipv4());
    let logs = |pod: &str| mesh.mesh_pod(pod).proxy_logs();

    // pod-a's app -> its sidecar (15001) -> mTLS -> pod-b's sidecar (15006) -> pod-b's app.
    let run = Curl::http(mesh.pod("pod-a").ns(), ip("pod-b"), 8080).run().expect("curl");
    assert_eq!(run.http_code, 200, "{run}\n{}\n{}", logs("pod-a"), logs("pod-b"));
    // The app saw the request from 127.0.0.6 (the sidecar's local inbound leg), proving the path.
    let app_log = mesh.mesh_pod("pod-b").app_stderr();
    assert!(app_log.contains("127.0.0.6"), "pod-b's app was not reached via its sidecar:\n{app_log}");

    let run = Curl::http(mesh.pod("pod-a").ns(), ip("pod-c"), 8080).run().expect("curl");
    assert_eq!(run.http_code, 200, "mTLS into PERMISSIVE: {run}\n{}", logs("pod-c"));

    // A legacy client's plaintext: STRICT closes without a reply, PERMISSIVE serves it.
    let run = Curl::http(mesh.pod("legacy").ns(), ip("pod-b"), 8080).run().expect("curl");
    assert_eq!(run.code(), Some(52), "legacy -> STRICT must get an empty reply: {run}");
    let run = Curl::http(mesh.pod("legacy").ns(), ip("pod-c"), 8080).run().expect("curl");
    assert_eq!(run.http_code, 200, "legacy -> PERMISSIVE: {run}\n{}", logs("pod-c"));

    // A sidecar pod's plaintext to a legacy pod passes through (Istio's PassthroughCluster).
    let run = Curl::http(mesh.pod("pod-a").ns(), ip("legacy"), 8080).run().expect("curl");
    assert_eq!(run.http_code, 200, "pod-a -> legacy: {run}\n{}", logs("pod-a"));

    let dir = mesh.manifests_dir().to_owned();
    let pod_b = std::fs::read_to_string(dir.join("pod-pod-b.yaml")).expect("pod manifest");
    assert!(pod_b.contains(&format!("podIP: {}", mesh.pod("pod-b").ipv4())), "{pod_b}");
    let pa = std::fs::read_to_string(dir.join("peerauthentication-pod-c.yaml")).expect("PA");
    assert!(pa.contains("mode: PERMISSIVE"), "{pa}");
    assert!(!dir.join("peerauthentication-legacy.yaml").exists());

    let names = mesh.topology().namespaces();
    let started = Instant::now();
    drop(mesh);
    eprintln!("mesh torn down in {:?}", started.elapsed());
    assert!(gone(&names), "left behind: {:?}", list_ours());
    assert!(!Path::new(&dir).exists(), "manifests dir {} left behind", dir.display());
}

#[test]
fn a_tls12_mesh_with_ecdsa_certificates_carries_requests() {
    if !require_root() {
        return;
    }
    let mesh = Mesh::builder()
        .pod("x", Sidecar::Strict)
        .pod("y", Sidecar::Permissive)
        .key_type(KeyType::EcdsaP256)
        .tls12_only(true)
        .app_port(9090)
        .build()
        .expect("mesh");
    for (from, to) in [("x", "y"), ("y", "x")] {
        let run = Curl::http(mesh.pod(from).ns(), IpAddr::V4(mesh.pod(to).ipv4()), 9090).run().expect("curl");
        assert_eq!(run.http_code, 200, "{from} -> {to}: {run}\n{}", mesh.mesh_pod(to).proxy_logs());
    }
    assert_eq!(mesh.sni("y"), "outbound_.9090_._.y.default.svc.cluster.local");
}

#[test]
fn small_mtus_split_a_client_hello_over_ipv4_ipv6_and_loopback() {
    if !require_root() {
        return;
    }
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["b.test.svc"], None).expect("cert");
    let alpn = observer_e2e::peers::padding_alpn(1400);
    // (label, MTU, IPv6?, loopback?, largest payload per segment: MTU - IP - TCP with timestamps)
    let cases =
        [("ipv4", 576, false, false, 524), ("ipv6", 1280, true, false, 1208), ("loopback", 576, false, true, 524)];
    for (label, mtu, v6, lo, mss) in cases {
        let topo = Topology::builder().mtu(mtu).pod("a").pod("b").build().expect("topology");
        let (a, b) = (topo.pod("a"), topo.pod("b"));
        if lo {
            b.split_loopback(mtu).expect("loopback mtu");
        }
        let _server = TlsServer::start(b.ns(), 4433, &leaf, pki.ca_cert(), TlsVersion::Tls13, ClientAuth::None)
            .expect("s_server");
        let (client_ns, server_ip, iface) = if lo {
            (b.ns(), IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), "lo")
        } else {
            (a.ns(), b.ip(v6).expect("address"), "eth0")
        };
        let filter = "tcp dst port 4433";
        let (lengths, run) = payload_lengths(b.ns(), iface, filter, || {
            SClient::new(client_ns, server_ip, 4433)
                .servername("b.test.svc")
                .alpn(alpn.clone())
                .run()
                .expect("s_client")
        })
        .expect("tcpdump");
        assert_eq!(run.code, Some(0), "{label}: {run}");
        eprintln!("{label} at MTU {mtu}: client data segments {lengths:?}");
        // A full first segment means the ~1.7 KB ClientHello continued in the next one.
        assert_eq!(lengths.first(), Some(&mss), "{label}: ClientHello not split at the MSS: {lengths:?}");
        assert!(lengths.len() >= 3, "{label}: expected ClientHello segments and more, got {lengths:?}");
    }
}

#[test]
fn a_panicking_test_still_cleans_up_and_stale_namespaces_are_swept() {
    if !require_root() {
        return;
    }
    let mut seen = (Vec::new(), 0);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let topo = Topology::builder().pod("a").build().expect("topology");
        let server = HttpServer::start(topo.pod("a").ns(), 8080).expect("server");
        seen = (topo.namespaces(), server.pid());
        panic!("deliberate panic with a topology and a server alive");
    }));
    assert!(outcome.is_err());
    assert!(!seen.0.is_empty());
    assert!(gone(&seen.0), "left behind after a panic: {:?}", list_ours());
    assert!(process_gone(seen.1), "server {} survived the panic", seen.1);

    // A namespace named by a run whose process is gone is swept; ours (alive) are not.
    let mut dead = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = dead.id();
    dead.wait().expect("wait true");
    let stale = format!("obs-{dead_pid}-0-stale");
    observer_e2e::cmd::ip(&["netns", "add", &stale]).expect("add stale netns");
    let live = Topology::builder().pod("live").build().expect("topology");
    let removed = cleanup_stale();
    assert!(removed.contains(&stale), "stale {stale} not swept: {removed:?}");
    assert!(gone(&[stale]));
    assert!(live.namespaces().iter().all(|n| list_ours().contains(n)), "a live namespace was swept");
}
