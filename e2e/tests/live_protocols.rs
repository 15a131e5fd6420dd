//! What the dissector reads from live handshakes beyond the basic matrix: TLS 1.3 session
//! resumption (no certificate exchanged: `client_cert: resumed`, not a guess), HTTP/2 with
//! prior knowledge (the `PRI * HTTP/2.0` preface), and a ClientHello dribbled out in 64-byte
//! writes with pauses (reassembly across many segments and time, not only an MTU split); and
//! handshakes that fail, retry (HelloRetryRequest), resume (TLS 1.2) or carry a 5 KB chain.

use std::net::{IpAddr, SocketAddr};

use observer_e2e::{
    DRAIN, ExpectedConn, ObserverProcess, RUN_CAP, Spawn, TempDir, Topology,
    peers::{ClientAuth, Curl, HttpServer, PYTHON, SClient, TlsServer, TlsVersion},
    pki::{KeyType, Pki},
    require_root, serial,
};

const TLS_PORT: u16 = 14415;
const HTTP_PORT: u16 = 18083;

#[test]
fn resumption_and_http2_prior_knowledge_are_recognised() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["resume.b.e2e.test"], None).expect("cert");
    let tls = TlsServer::start(b.ns(), TLS_PORT, &leaf, pki.ca_cert(), TlsVersion::Tls13, ClientAuth::None)
        .expect("s_server");
    let http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    let sessions = TempDir::new("sessions").expect("temp dir");
    let session = sessions.join("session.pem").to_string_lossy().into_owned();

    let server_ip = IpAddr::V4(b.ipv4());
    let client = |flag: &str| {
        SClient::new(a.ns(), server_ip, TLS_PORT)
            .servername("resume.b.e2e.test")
            .arg(flag)
            .arg(session.clone())
            .run()
            .expect("s_client")
    };
    let first = client("-sess_out");
    assert!(first.stdout.contains("New, TLSv1.3"), "{first}");
    let resumed = client("-sess_in");
    assert!(resumed.stdout.contains("Reused, TLSv1.3"), "the session was not resumed: {resumed}");
    // Python's HTTP/1.0 server answers the preface with an error: only the client's bytes matter.
    let h2 = Curl::http(a.ns(), server_ip, HTTP_PORT).arg("--http2-prior-knowledge").run().expect("curl");
    let run = observer.stop_after(DRAIN).expect("observer stops");

    let client_ip = IpAddr::V4(a.ipv4());
    let tls_server = SocketAddr::new(server_ip, TLS_PORT);
    let mut h2_conn = ExpectedConn::both(
        "h2 prior knowledge",
        client_ip,
        h2.pid(),
        "curl",
        SocketAddr::new(server_ip, HTTP_PORT),
        http.pid(),
        "python3",
    )
    .field("/security", "plaintext")
    .field("/protocol", "http2");
    h2_conn.client_port = h2.local.map(|l| l.port());
    let want = [
        ExpectedConn::both("full handshake", client_ip, first.pid, "openssl", tls_server, tls.pid(), "openssl")
            .field("/security", "tls")
            .field("/tls/client_cert", "not_requested")
            .field("/tls/sni", "resume.b.e2e.test"),
        ExpectedConn::both("resumed", client_ip, resumed.pid, "openssl", tls_server, tls.pid(), "openssl")
            .field("/tls/client_cert", "resumed")
            .field("/tls/evidence", "psk_resumption")
            .field("/tls/version", "1.3")
            .field("/tls/sni", "resume.b.e2e.test"),
        h2_conn,
    ];
    run.assert_connections("resumption and h2", &want);
}

/// A python3 relay: accepts on 127.0.0.1:<listen>, connects to <host>:<port>, and forwards the
/// client's first 2 KiB in 64-byte writes 20 ms apart (TCP_NODELAY: one segment each), the
/// rest as it comes. Prints its upstream local port.
const DRIBBLE_RELAY: &str = r#"
import socket, sys, threading, time
listen, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
srv = socket.create_server(("127.0.0.1", listen))
print("ready", flush=True)
down, _ = srv.accept()
up = socket.create_connection((host, port))
up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print(up.getsockname()[1], flush=True)
def back():
    while (data := up.recv(65536)):
        down.sendall(data)
    down.close()
threading.Thread(target=back, daemon=True).start()
sent = 0
while (data := down.recv(65536)):
    while data and sent < 2048:
        up.sendall(data[:64]); sent += len(data[:64]); data = data[64:]; time.sleep(0.02)
    if data:
        up.sendall(data)
up.shutdown(socket.SHUT_WR)
time.sleep(1)
"#;

#[test]
fn a_client_hello_dribbled_in_small_writes_is_reassembled() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    const RELAY_PORT: u16 = 18084;
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["dribble.b.e2e.test"], None).expect("cert");
    let tls = TlsServer::start(b.ns(), TLS_PORT, &leaf, pki.ca_cert(), TlsVersion::Tls12, ClientAuth::None)
        .expect("s_server");
    let mut relay = Spawn::new(a.ns(), PYTHON)
        .args(["-c", DRIBBLE_RELAY, &RELAY_PORT.to_string(), &b.ipv4().to_string(), &TLS_PORT.to_string()])
        .start()
        .expect("relay");
    relay.wait_listening(RELAY_PORT).expect("relay listens");
    let client = SClient::new(a.ns(), IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), RELAY_PORT)
        .servername("dribble.b.e2e.test")
        .run()
        .expect("s_client");
    assert!(client.stdout.contains("HTTP/1.0 200"), "{client}\n{}", relay.logs());
    let upstream_port: Option<u16> = relay.stdout().lines().nth(1).and_then(|l| l.trim().parse().ok());
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let mut relayed = ExpectedConn::both(
        "dribbled ClientHello",
        IpAddr::V4(a.ipv4()),
        relay.pid(),
        "python3",
        SocketAddr::new(IpAddr::V4(b.ipv4()), TLS_PORT),
        tls.pid(),
        "openssl",
    )
    .field("/security", "tls")
    .field("/tls/sni", "dribble.b.e2e.test")
    .field("/tls/version", "1.2")
    .field("/tls/client_cert", "not_requested");
    relayed.client_port = upstream_port;
    run.assert_connections("dribbled ClientHello", &[relayed]);
}

#[test]
fn failed_retried_resumed_and_big_chain_handshakes_are_classified() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["b.e2e.test"], None).expect("cert");
    let client_leaf =
        pki.issue("a", KeyType::Rsa2048, &[], Some(&observer_e2e::pki::spiffe_id("e2e", "a"))).expect("client cert");
    let files = TempDir::new("handshakes").expect("temp dir");
    // A chain of ~5 KB: the client's Certificate message spans several records' worth of segments.
    let ca = std::fs::read(pki.ca_cert()).expect("read CA");
    let chain = files.write("chain.pem", &ca.repeat(4)).expect("chain").to_string_lossy().into_owned();
    let session = files.join("tls12-session.pem").to_string_lossy().into_owned();
    let server_ip = IpAddr::V4(b.ipv4());
    let start =
        |port, version, auth| TlsServer::start(b.ns(), port, &leaf, pki.ca_cert(), version, auth).expect("s_server");
    let required13 = start(14421, TlsVersion::Tls13, ClientAuth::Require);
    let required12 = start(14422, TlsVersion::Tls12, ClientAuth::Require);
    let plain12 = start(14423, TlsVersion::Tls12, ClientAuth::None);
    // Only X25519: a client whose first key share is P-256 gets a HelloRetryRequest.
    let mut x25519_only = Spawn::new(b.ns(), "openssl")
        .args(["s_server", "-accept", "14424", "-www", "-tls1_3", "-groups", "X25519", "-cert"])
        .arg(leaf.cert.to_string_lossy())
        .arg("-key")
        .arg(leaf.key.to_string_lossy())
        .start()
        .expect("s_server");
    x25519_only.wait_listening(14424).expect("listens");

    let client = |port, sni: &str| SClient::new(a.ns(), server_ip, port).servername(sni);
    let refused = client(14421, "refused.e2e.test").run().expect("s_client");
    assert!(!refused.stdout.contains("HTTP/1.0 200"), "served without the required certificate: {refused}");
    let retried = client(14424, "retried.e2e.test").arg("-groups").arg("P-256:X25519").run().expect("s_client");
    assert!(retried.stdout.contains("HTTP/1.0 200"), "{retried}");
    let first = client(14423, "resume12.e2e.test").arg("-sess_out").arg(session.clone()).run().expect("s_client");
    let resumed = client(14423, "resume12.e2e.test").arg("-sess_in").arg(session.clone()).run().expect("s_client");
    assert!(resumed.stdout.contains("Reused, TLSv1.2"), "not resumed: {resumed}");
    let mut big = Vec::new();
    for (server, v) in [(&required13, "1.3"), (&required12, "1.2")] {
        let run = client(server.port, "bigchain.e2e.test")
            .cert(&client_leaf)
            .arg("-cert_chain")
            .arg(chain.clone())
            .run()
            .expect("s_client");
        assert!(run.stdout.contains("HTTP/1.0 200"), "{run}");
        big.push((run, server.pid(), server.port, v));
    }
    let run = observer.stop_after(DRAIN).expect("observer stops");

    let client_ip = IpAddr::V4(a.ipv4());
    let to = |port| SocketAddr::new(server_ip, port);
    let mut want = vec![
        ExpectedConn::both(
            "TLS 1.3, required certificate not sent",
            client_ip,
            refused.pid,
            "openssl",
            to(14421),
            required13.pid(),
            "openssl",
        )
        .field("/security", "tls")
        .field("/tls/client_cert", "requested_not_presented")
        .field("/tls/sni", "refused.e2e.test"),
        ExpectedConn::both(
            "HelloRetryRequest",
            client_ip,
            retried.pid,
            "openssl",
            to(14424),
            x25519_only.pid(),
            "openssl",
        )
        .field("/security", "tls")
        .field("/tls/version", "1.3")
        .field("/tls/sni", "retried.e2e.test"),
        ExpectedConn::both("TLS 1.2 full", client_ip, first.pid, "openssl", to(14423), plain12.pid(), "openssl")
            .field("/tls/client_cert", "not_requested"),
        ExpectedConn::both("TLS 1.2 resumed", client_ip, resumed.pid, "openssl", to(14423), plain12.pid(), "openssl")
            .field("/tls/client_cert", "resumed")
            .field("/tls/version", "1.2"),
    ];
    for (client_run, pid, port, v) in &big {
        let mut c = ExpectedConn::both(
            format!("TLS {v}, 5 KB client chain"),
            client_ip,
            client_run.pid,
            "openssl",
            to(*port),
            *pid,
            "openssl",
        )
        .field("/security", "mtls")
        .field("/tls/client_cert", "presented")
        .field("/tls/version", *v);
        if *v == "1.2" {
            c = c.field("/tls/client_spiffe_id", observer_e2e::pki::spiffe_id("e2e", "a"));
        }
        want.push(c);
    }
    run.assert_connections("handshake variants", &want);
}
