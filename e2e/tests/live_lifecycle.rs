//! The live observer over a connection's lifetime and under load: servers that were listening
//! before it started are still attributed, a connection that stays open is reported once its
//! handshake is seen (not only when it closes), and a burst of connections from parallel
//! clients yields every one exactly once.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    DRAIN, ExpectedConn, ObserverProcess, Privileges, RUN_CAP, Spawn, Topology,
    peers::{ClientAuth, Curl, HttpServer, PYTHON, TlsServer, TlsVersion, host_port},
    pki::{KeyType, Pki},
    require_root, serial,
};

const HTTP_PORT: u16 = 18081;
const TLS_PORT: u16 = 14414;

#[test]
fn servers_listening_before_the_observer_started_are_attributed() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    // Finding the owners of listeners older than the observer takes the chart's documented
    // optional additions (Privileges::chart_with_listener_walk).
    let privileges = Privileges::chart_with_listener_walk();
    let observer = ObserverProcess::start_as(&privileges, RUN_CAP, &[], &[]).expect("observer attaches");
    let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), HTTP_PORT).run().expect("curl");
    assert_eq!(curl.http_code, 200, "{curl}");
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let server = SocketAddr::new(IpAddr::V4(b.ipv4()), HTTP_PORT);
    let mut want = ExpectedConn::both(
        "pre-existing listener",
        IpAddr::V4(a.ipv4()),
        curl.pid(),
        "curl",
        server,
        http.pid(),
        "python3",
    );
    want.client_port = curl.local.map(|l| l.port());
    run.assert_connections("listener started before the observer", &[want]);
}

#[test]
fn an_open_connection_is_reported_once_its_handshake_is_seen() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["open.b.e2e.test"], None).expect("cert");
    // Without -www s_server keeps the connection open and answers nothing.
    let server = Spawn::new(b.ns(), "openssl")
        .args(["s_server", "-accept", &TLS_PORT.to_string(), "-tls1_3", "-cert"])
        .arg(leaf.cert.to_string_lossy())
        .arg("-key")
        .arg(leaf.key.to_string_lossy())
        // s_server echoes its stdin to the client and quits at EOF: keep it open.
        .keep_stdin_open()
        .start();
    let mut server = server.expect("s_server");
    server.wait_listening(TLS_PORT).expect("s_server listens");
    let target = host_port(IpAddr::V4(b.ipv4()), TLS_PORT);
    let mut client = Spawn::new(a.ns(), "openssl")
        .args(["s_client", "-connect", &target, "-servername", "open.b.e2e.test"])
        .stdin("hello while open\n")
        .keep_stdin_open()
        .start()
        .expect("s_client");
    let server_addr = SocketAddr::new(IpAddr::V4(b.ipv4()), TLS_PORT);
    let client_ip = IpAddr::V4(a.ipv4());
    let seen = observer.wait_for_records(Duration::from_secs(10), |r| r.between(client_ip, server_addr));
    let still_open = client.try_wait().expect("poll s_client").is_none();
    client.close_stdin();
    let _ = client.wait_timeout(Duration::from_secs(5));
    let run = observer.stop_after(DRAIN).expect("observer stops");
    assert!(still_open, "s_client ended early, the test proves nothing:\n{}", client.logs());
    assert!(
        seen.is_some(),
        "no record within 10 s of a completed handshake on an open connection; records at exit:\n{}",
        run.records.between(client_ip, server_addr)
    );
    let want =
        ExpectedConn::both("open connection", client_ip, client.pid(), "openssl", server_addr, server.pid(), "openssl")
            .field("/protocol", "tls");
    run.assert_connections("open connection reported once", &[want]);
}

/// A python3 client making `count` HTTP connections one after another, printing each local port.
const BURST_CLIENT: &str = r#"
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    s = socket.create_connection((host, port))
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    while s.recv(65536):
        pass
    print(s.getsockname()[1], flush=True)
    s.close()
"#;

#[test]
fn a_burst_of_connections_from_parallel_clients_is_reported_exactly_once_each() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 150;
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            Spawn::new(a.ns(), PYTHON)
                .args(["-c", BURST_CLIENT, &b.ipv4().to_string(), &HTTP_PORT.to_string(), &PER_CLIENT.to_string()])
                .start()
                .expect("burst client")
        })
        .collect();
    for client in &mut clients {
        let status = client.wait_timeout(Duration::from_secs(60)).expect("wait");
        assert!(status.is_some_and(|s| s.success()), "burst client failed:\n{}", client.logs());
    }
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let server = SocketAddr::new(IpAddr::V4(b.ipv4()), HTTP_PORT);
    let mut want = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let ports: Vec<u16> = client.stdout().lines().filter_map(|l| l.trim().parse().ok()).collect();
        assert_eq!(ports.len(), PER_CLIENT, "client {i} made {} connections", ports.len());
        for port in ports {
            let mut c = ExpectedConn::both(
                format!("client {i} port {port}"),
                IpAddr::V4(a.ipv4()),
                client.pid(),
                "python3",
                server,
                http.pid(),
                "python3",
            )
            .field("/security", "plaintext");
            c.client_port = Some(port);
            want.push(c);
        }
    }
    run.assert_connections("burst", &want);
    // Both sockets of every leg are on this node: each direction is sampled once, at its
    // sender's egress, not again at the receiver's ingress.
    let counters = run.stderr.lines().rev().find(|l| l.contains("counters")).expect("a counters line at exit");
    let count = |name: &str| -> u64 {
        counters
            .split_whitespace()
            .find_map(|field| field.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in the counters line: {counters}"))
    };
    let (egress, ingress) = (count("egress_samples"), count("ingress_samples"));
    let pieces = (CLIENTS * PER_CLIENT * 2) as u64;
    assert!(egress >= pieces, "{egress} egress samples for {pieces} pieces: {counters}");
    assert!(ingress * 20 < egress, "local legs sampled at ingress too ({ingress} of {egress}): {counters}");
}

#[test]
fn tls_server_attributed_on_ipv6_and_v4_mapped_addresses() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    // s_server listens dual-stack: an IPv4 client lands on a v4-mapped socket, which the
    // record shows as plain IPv4.
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::Rsa2048, &["b.e2e.test"], None).expect("cert");
    let server =
        TlsServer::start(b.ns(), TLS_PORT, &leaf, pki.ca_cert(), TlsVersion::Any, ClientAuth::None).expect("s_server");
    let mut want = Vec::new();
    // The third client dials a v4-mapped IPv6 address from an AF_INET6 socket: both of its ends
    // are IPv4 in the record too.
    let mapped = IpAddr::V6(b.ipv4().to_ipv6_mapped());
    for ip in [IpAddr::V4(b.ipv4()), IpAddr::V6(b.ipv6().expect("v6")), mapped] {
        let run =
            observer_e2e::peers::SClient::new(a.ns(), ip, TLS_PORT).servername("b.e2e.test").run().expect("s_client");
        assert!(run.stdout.contains("HTTP/1.0 200"), "{run}");
        let client_ip =
            if ip.to_canonical().is_ipv4() { IpAddr::V4(a.ipv4()) } else { IpAddr::V6(a.ipv6().expect("v6")) };
        want.push(ExpectedConn::both(
            format!("to {ip}"),
            client_ip,
            run.pid,
            "openssl",
            SocketAddr::new(ip, TLS_PORT),
            server.pid(),
            "openssl",
        ));
    }
    let run = observer.stop_after(DRAIN).expect("observer stops");
    for r in run.records.involving(&[IpAddr::V4(b.ipv4())]).iter() {
        let shown = r.to_string();
        assert!(!shown.contains("::ffff:"), "v4-mapped address leaked into a record: {shown}");
    }
    run.assert_connections("dual-stack server", &want);
}

#[test]
fn without_privileges_it_fails_with_one_line_saying_what_to_do() {
    if !require_root() {
        return;
    }
    let bin = observer_e2e::observer::binary();
    assert!(bin.exists(), "observer binary {} not built", bin.display());
    // nobody may not reach the checkout's binary (a clone under root's 0700 home): a copy in a
    // world-readable folder, run from `/`.
    let dir = observer_e2e::TempDir::new("nobody").expect("temp dir");
    let copy = dir.join("observer");
    std::fs::copy(&bin, &copy).expect("copy the observer binary");
    // As nobody, from the root namespace (never under ip netns exec).
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(&copy)
        .args(["run", "--duration", "1"])
        .current_dir("/")
        .output()
        .expect("run observer as nobody");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!out.status.success(), "succeeded without privileges: {stderr}");
    assert_eq!(lines.len(), 1, "expected a one-line error, got:\n{stderr}");
    assert!(out.stdout.is_empty(), "printed records without privileges");
}

/// A python3 client: one connection closed without data, one left open without data.
const SILENT_CLIENT: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
closed = socket.create_connection((host, port))
print(closed.getsockname()[1], flush=True)
closed.close()
held = socket.create_connection((host, port))
print(held.getsockname()[1], flush=True)
time.sleep(30)
"#;

#[test]
fn a_silent_leg_is_no_data_when_closed_and_observer_stopped_when_still_open() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").build().expect("topology");
    let a = topo.pod("a");
    // A listener that never writes.
    let server = Spawn::new(a.ns(), PYTHON)
        // The first connection is closed from both ends once the client has closed its side (a
        // half-closed connection could still carry the server's bytes); the second is held open.
        .args(["-c", "import socket,time\ns=socket.create_server(('127.0.0.1',18082))\na,_=s.accept()\na.recv(1)\na.close()\nb=s.accept()\ntime.sleep(30)"])
        .start();
    let mut server = server.expect("silent server");
    server.wait_listening(18082).expect("listens");
    let client = Spawn::new(a.ns(), PYTHON).args(["-c", SILENT_CLIENT, "127.0.0.1", "18082"]).start().expect("client");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.stdout().lines().count() < 2 {
        assert!(std::time::Instant::now() < deadline, "client stuck:\n{}", client.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
    let ports: Vec<u16> = client.stdout().lines().filter_map(|l| l.trim().parse().ok()).collect();
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let server_addr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 18082);
    let mut want = Vec::new();
    for (port, reason) in ports.iter().zip(["no_data", "observer_stopped"]) {
        let mut c = ExpectedConn::both(
            format!("silent {reason}"),
            server_addr.ip(),
            client.pid(),
            "python3",
            server_addr,
            server.pid(),
            "python3",
        )
        .field("/security", "unknown")
        .field("/reason", reason);
        c.client_port = Some(*port);
        want.push(c);
    }
    run.assert_connections("silent legs", &want);
}
