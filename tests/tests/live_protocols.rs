//! What the dissector reads from live handshakes beyond the basic matrix: TLS 1.3 session
//! resumption (no certificate exchanged: `client_cert: resumed`, not a guess) and HTTP/2 with
//! prior knowledge (the `PRI * HTTP/2.0` preface). One observer run covers both.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    Checks, ExpectedConn, ObserverProcess, TempDir, Topology, check_connections,
    peers::{ClientAuth, Curl, HttpServer, SClient, TlsServer, TlsVersion},
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
#[ignore = "needs the dissector (issue 3)"]
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
