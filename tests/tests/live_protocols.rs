//! What the dissector reads from live handshakes beyond the basic matrix: TLS 1.3 session
//! resumption (no certificate exchanged: `client_cert: resumed`, not a guess), HTTP/2 with
//! prior knowledge (the `PRI * HTTP/2.0` preface), and a ClientHello dribbled out in 64-byte
//! writes with pauses (reassembly across many segments and time, not only an MTU split).

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    Checks, ExpectedConn, ObserverProcess, Spawn, TempDir, Topology, check_connections,
    peers::{ClientAuth, Curl, HttpServer, PYTHON, SClient, TlsServer, TlsVersion},
    pki::{KeyType, Pki},
    require_root, serial,
};

const RUN_CAP: Duration = Duration::from_secs(120);
const DRAIN: Duration = Duration::from_millis(1500);
const TLS_PORT: u16 = 14415;
const HTTP_PORT: u16 = 18083;

fn conn(
    label: &str,
    client_ip: IpAddr,
    pid: u32,
    comm: &str,
    server: SocketAddr,
    server_pid: u32,
    server_comm: &str,
) -> ExpectedConn {
    ExpectedConn {
        label: label.into(),
        client_ip,
        client_port: None,
        client_pid: pid,
        client_comm: comm.into(),
        server,
        server_pid,
        server_comm: server_comm.into(),
        observed_at: "both".into(),
        fields: Vec::new(),
    }
}

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
    let mut h2_conn = conn(
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
        conn("full handshake", client_ip, first.pid, "openssl", tls_server, tls.pid(), "openssl")
            .field("/security", "tls")
            .field("/tls/client_cert", "not_requested")
            .field("/tls/sni", "resume.b.e2e.test"),
        conn("resumed", client_ip, resumed.pid, "openssl", tls_server, tls.pid(), "openssl")
            .field("/tls/client_cert", "resumed")
            .field("/tls/evidence", "psk_resumption")
            .field("/tls/version", "1.3")
            .field("/tls/sni", "resume.b.e2e.test"),
        h2_conn,
    ];
    let mut checks = Checks::new();
    checks.check("observer exit", run.expect_clean_exit());
    check_connections(&run.records, &want, &mut checks);
    run.assert_passed("resumption and h2", checks);
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
    let mut relayed = conn(
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
    let mut checks = Checks::new();
    checks.check("observer exit", run.expect_clean_exit());
    check_connections(&run.records, &[relayed], &mut checks);
    run.assert_passed("dribbled ClientHello", checks);
}
