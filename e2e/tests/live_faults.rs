//! Faults, end to end: a ClientHello sent a byte a second is reported `unknown`
//! (`handshake_timeout`) once `--handshake-timeout` passes, while the peer still dribbles; a
//! burst that overflows the ring buffer while the daemon is stopped (SIGSTOP) is counted as
//! lost in the kernel, exported on /metrics and logged, and the daemon recovers: it keeps
//! running and reports the connections that come after; a kernel connection table too small
//! for the connections open at once evicts entries, which are counted and exported, and the legs
//! it lost are `unknown`, never a verdict made up from what was not seen.

use std::{
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    time::{Duration, Instant},
};

use observer_e2e::{
    DRAIN, ExpectedConn, ObserverProcess, RUN_CAP, Spawn, Topology,
    netns::signal,
    peers::{ClientAuth, Curl, HttpServer, PYTHON, TlsServer, TlsVersion},
    pki::{KeyType, Pki},
    require_root, serial,
};

const TLS_PORT: u16 = 14471;
const BURST_PORT: u16 = 18472;
const HTTP_PORT: u16 = 18473;
const HOLD_PORT: u16 = 18474;

/// A python3 client that makes a real ClientHello (ssl over memory BIOs) and sends it one byte a
/// second: prints its local port, then dribbles for `seconds` bytes' worth.
const SLOW_HELLO_CLIENT: &str = r#"
import socket, ssl, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context()
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(incoming, outgoing, server_hostname="slow.b.e2e.test")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
sock = socket.create_connection((host, port))
print(sock.getsockname()[1], flush=True)
for byte in hello[:seconds]:
    sock.send(bytes([byte]))
    time.sleep(1)
"#;

#[test]
fn a_client_hello_sent_a_byte_a_second_is_unknown_after_the_handshake_timeout() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start_with(RUN_CAP, &["--handshake-timeout", "3s"]).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["slow.b.e2e.test"], None).expect("cert");
    let server =
        TlsServer::start(b.ns(), TLS_PORT, &leaf, pki.ca_cert(), TlsVersion::Any, ClientAuth::None).expect("server");
    let mut client = Spawn::new(a.ns(), PYTHON)
        .args(["-c", SLOW_HELLO_CLIENT, &b.ipv4().to_string(), &TLS_PORT.to_string(), "20"])
        .start()
        .expect("slow client");
    let server_addr = SocketAddr::new(IpAddr::V4(b.ipv4()), TLS_PORT);
    let client_ip = IpAddr::V4(a.ipv4());
    let seen = observer.wait_for_records(Duration::from_secs(15), |r| r.between(client_ip, server_addr));
    let still_sending = client.try_wait().expect("poll client").is_none();
    assert!(seen.is_some(), "no record within 15 s of a 3 s handshake timeout:\n{}", observer.stderr());
    assert!(still_sending, "the client finished first: the record must not wait for the close");
    let port: Option<u16> = client.stdout().lines().next().and_then(|l| l.trim().parse().ok());
    let client_pid = client.pid();
    drop(client);
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let mut want = ExpectedConn::both(
        "slow ClientHello",
        client_ip,
        client_pid,
        "python3",
        server_addr,
        server.child.pid(),
        "openssl",
    )
    .field("/security", "unknown")
    .field("/reason", "handshake_timeout");
    want.client_port = port;
    run.assert_connections("a ClientHello a byte a second", &[want]);
    let counters = run.stderr.lines().rev().find(|l| l.contains("counters")).expect("counters at exit");
    assert!(!counters.contains("legs_handshake_expired=0"), "{counters}");
}

/// Accepts, reads a line, answers and closes, as fast as one thread can.
const BURST_SERVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4096)
while True:
    c, _ = s.accept()
    c.recv(64)
    c.sendall(b"ok\n")
    c.close()
"#;

/// `count` sequential connections, each sending a line and reading the answer.
const BURST_CLIENT: &str = r#"
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
done = 0
for _ in range(count):
    c = socket.create_connection((host, port))
    c.sendall(b"HELLO from the burst\n")
    c.recv(16)
    c.close()
    done += 1
print(done, flush=True)
"#;

/// The sum of `observer_capture_lost_total` series whose stage ends in `stage_suffix` (`_reserve`:
/// the ring buffer was full, in the kernel), from the daemon's /metrics.
fn lost(metrics_port: u16, stage_suffix: &str) -> f64 {
    let mut stream = TcpStream::connect(("127.0.0.1", metrics_port)).expect("connect to /metrics");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("response");
    body.lines()
        .filter(|l| l.starts_with("observer_capture_lost_total{") && l.contains(&format!("{stage_suffix}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_ring_buffer_overflow_is_counted_exported_and_survived() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 4000;
    let metrics_port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let observer = ObserverProcess::start_with(RUN_CAP, &["--metrics-addr", &metrics_addr]).expect("attaches");
    observer.wait_for_log("serving metrics", 0, Duration::from_secs(10)).expect("metrics served");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let mut burst_server = Spawn::new(b.ns(), PYTHON).args(["-c", BURST_SERVER, &BURST_PORT.to_string()]).start();
    let burst_server = burst_server.as_mut().expect("burst server");
    burst_server.wait_listening(BURST_PORT).expect("burst server listens");
    let before = lost(metrics_port, "_reserve");

    // Stopped, the daemon drains nothing; the kernel programs go on filling the ring buffer.
    signal(observer.pid(), libc::SIGSTOP);
    let started = Instant::now();
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            Spawn::new(a.ns(), PYTHON)
                .args(["-c", BURST_CLIENT, &b.ipv4().to_string(), &BURST_PORT.to_string(), &PER_CLIENT.to_string()])
                .start()
                .expect("burst client")
        })
        .collect();
    let mut finished = Vec::new();
    for client in &mut clients {
        finished.push(client.wait_timeout(Duration::from_secs(120)).expect("wait"));
    }
    let burst = started.elapsed();
    signal(observer.pid(), libc::SIGCONT);
    for (client, status) in clients.iter().zip(&finished) {
        assert!(status.is_some_and(|s| s.success()), "burst client failed:\n{}", client.logs());
    }

    // Recovered: it drains, serves metrics and reports what comes after.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dropped = lost(metrics_port, "_reserve") - before;
    while dropped <= 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        dropped = lost(metrics_port, "_reserve") - before;
    }
    assert!(
        dropped > 0.0,
        "{} connections in {burst:?} while stopped, no ring buffer loss exported",
        CLIENTS * PER_CLIENT
    );
    eprintln!("{} connections in {burst:?} while stopped: {dropped} ring buffer losses", CLIENTS * PER_CLIENT);
    let http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), HTTP_PORT).run().expect("curl");
    assert_eq!(curl.http_code, 200, "{curl}");
    let server = SocketAddr::new(IpAddr::V4(b.ipv4()), HTTP_PORT);
    let after = observer.wait_for_records(Duration::from_secs(20), |r| r.to_server(server));
    assert!(after.is_some(), "the connection after the burst was not reported:\n{}", observer.stderr());
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let mut want = ExpectedConn::both(
        "after the overflow",
        IpAddr::V4(a.ipv4()),
        curl.pid(),
        "curl",
        server,
        http.pid(),
        "python3",
    )
    .field("/security", "plaintext");
    want.client_port = curl.local.map(|l| l.port());
    run.assert_connections("recovery after a ring buffer overflow", &[want]);
    // The exit counters log the loss too.
    let counters = run.stderr.lines().rev().find(|l| l.contains("counters")).expect("counters at exit");
    assert!(counters.contains("_reserve="), "no ring buffer loss in the log: {counters}");
    // What was reported of the burst is what the bytes say, never more.
    let burst_server_addr = SocketAddr::new(IpAddr::V4(b.ipv4()), BURST_PORT);
    for record in run.records.to_server(burst_server_addr).iter() {
        let security = record.pointer("/security").and_then(serde_json::Value::as_str);
        let reason = record.pointer("/reason").and_then(serde_json::Value::as_str);
        assert!(
            security == Some("plaintext") || (security == Some("unknown") && reason.is_some()),
            "a burst leg reported as {security:?} ({reason:?}): {record}"
        );
    }
}

/// Accepts `count` connections and holds them; then answers each one's line and closes them all.
const HOLD_SERVER: &str = r#"
import socket, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.listen(4096)
held = [s.accept()[0] for _ in range(count)]
for c in held:
    c.recv(64)
    c.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
for c in held:
    c.close()
"#;

/// Opens `count` connections, all held open; then sends a request line on each, reads the answer
/// and closes them; prints its local ports.
const HOLD_CLIENT: &str = r#"
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = [socket.create_connection((host, port)) for _ in range(count)]
for c in held:
    c.sendall(b"GET / HTTP/1.1\r\nHost: hold\r\n\r\n")
for c in held:
    c.recv(64)
    print(c.getsockname()[1], flush=True)
    c.close()
"#;

#[test]
fn a_full_connection_table_evicts_counted_and_the_legs_it_lost_are_unknown() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    // 600 connections are 1200 sockets here (both ends on this node) for 256 entries.
    const CONNECTIONS: usize = 600;
    let metrics_port =
        TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let observer =
        ObserverProcess::start_with(RUN_CAP, &["--metrics-addr", &metrics_addr, "--conn-table-entries", "256"])
            .expect("attaches");
    observer.wait_for_log("serving metrics", 0, Duration::from_secs(10)).expect("metrics served");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let mut server = Spawn::new(b.ns(), PYTHON)
        .args(["-c", HOLD_SERVER, &HOLD_PORT.to_string(), &CONNECTIONS.to_string()])
        .start()
        .expect("hold server");
    server.wait_listening(HOLD_PORT).expect("hold server listens");
    let before = lost(metrics_port, "conn_evicted");
    let mut client = Spawn::new(a.ns(), PYTHON)
        .args(["-c", HOLD_CLIENT, &b.ipv4().to_string(), &HOLD_PORT.to_string(), &CONNECTIONS.to_string()])
        .start()
        .expect("hold client");
    let status = client.wait_timeout(Duration::from_secs(60)).expect("wait");
    assert!(status.is_some_and(|s| s.success()), "hold client failed:\n{}", client.logs());
    std::thread::sleep(DRAIN);
    let evicted = lost(metrics_port, "conn_evicted") - before;
    let run = observer.stop_after(DRAIN).expect("observer stops");
    run.expect_clean_exit().expect("clean exit");
    assert!(evicted > 0.0, "{CONNECTIONS} connections held in a table of 256: no eviction exported");
    let legs = run.records.to_server(SocketAddr::new(IpAddr::V4(b.ipv4()), HOLD_PORT));
    let ports: Vec<u16> = client.stdout().lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(ports.len(), CONNECTIONS);
    let mut unknown = 0;
    for record in legs.iter() {
        let security = record.pointer("/security").and_then(serde_json::Value::as_str);
        let reason = record.pointer("/reason").and_then(serde_json::Value::as_str);
        match security {
            Some("plaintext") => {}
            Some("unknown") if reason.is_some() => unknown += 1,
            _ => panic!("a leg reported as {security:?} ({reason:?}) from a table that lost entries: {record}"),
        }
    }
    // Every leg whose open was seen is reported once, decided or not.
    assert_eq!(legs.len(), CONNECTIONS, "legs reported for {CONNECTIONS} connections");
    assert!(unknown > 0, "no leg unknown though {evicted} entries were evicted");
    eprintln!("{CONNECTIONS} connections, table of 256: {evicted} evictions, {unknown} legs unknown");
    let counters = run.stderr.lines().rev().find(|l| l.contains("counters")).expect("counters at exit");
    assert!(counters.contains("conn_evicted="), "no eviction in the log: {counters}");
}
