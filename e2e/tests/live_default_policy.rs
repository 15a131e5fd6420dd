//! The embedded default policy, live (no `--policy`): plaintext to a well-known TLS port and TLS
//! below 1.2 are deviations (docs/OUTPUT.md, "Verdict"), while plaintext to an ordinary port and TLS 1.3 are not.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    ExpectedConn, ObserverProcess, Spawn, Topology,
    peers::{ClientAuth, Curl, HttpServer, SClient, TlsServer, TlsVersion},
    pki::{KeyType, Pki},
    require_root, serial,
};

#[test]
fn plaintext_on_tls_ports_and_old_tls_are_deviations_by_default() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start(Duration::from_secs(120)).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::Rsa2048, &["b.e2e.test"], None).expect("cert");
    let on_443 = HttpServer::start(b.ns(), 443).expect("http on 443");
    let on_8080 = HttpServer::start(b.ns(), 8080).expect("http on 8080");
    // OpenSSL 3.0 speaks TLS 1.1 only at security level 0.
    let mut tls11 = Spawn::new(b.ns(), "openssl")
        .args(["s_server", "-accept", "14431", "-www", "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-cert"])
        .arg(leaf.cert.to_string_lossy())
        .arg("-key")
        .arg(leaf.key.to_string_lossy())
        .start()
        .expect("s_server 1.1");
    tls11.wait_listening(14431).expect("listens");
    let tls13 =
        TlsServer::start(b.ns(), 14432, &leaf, pki.ca_cert(), TlsVersion::Tls13, ClientAuth::None).expect("s_server");
    let ip = IpAddr::V4(b.ipv4());
    let plain443 = Curl::http(a.ns(), ip, 443).run().expect("curl");
    let plain8080 = Curl::http(a.ns(), ip, 8080).run().expect("curl");
    assert_eq!((plain443.http_code, plain8080.http_code), (200, 200), "{plain443}\n{plain8080}");
    let old = SClient::new(a.ns(), ip, 14431)
        .servername("old.e2e.test")
        .arg("-tls1_1")
        .arg("-cipher")
        .arg("DEFAULT@SECLEVEL=0")
        .run()
        .expect("s_client");
    assert!(old.stdout.contains("HTTP/1.0 200"), "{old}");
    let new = SClient::new(a.ns(), ip, 14432).servername("new.e2e.test").run().expect("s_client");
    assert!(new.stdout.contains("HTTP/1.0 200"), "{new}");
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");

    let client_ip = IpAddr::V4(a.ipv4());
    let to = |port| SocketAddr::new(ip, port);
    let want = [
        ExpectedConn::both("plaintext to 443", client_ip, plain443.pid(), "curl", to(443), on_443.pid(), "python3")
            .field("/security", "plaintext")
            .field("/verdict/status", "deviation")
            .field("/verdict/kind", "plaintext_on_tls_port"),
        ExpectedConn::both("plaintext to 8080", client_ip, plain8080.pid(), "curl", to(8080), on_8080.pid(), "python3")
            .field("/security", "plaintext")
            .field("/verdict/kind", serde_json::Value::Null),
        ExpectedConn::both("TLS 1.1", client_ip, old.pid, "openssl", to(14431), tls11.pid(), "openssl")
            .field("/tls/version", "1.1")
            .field("/verdict/status", "deviation")
            .field("/verdict/kind", "weak_tls_version"),
        ExpectedConn::both("TLS 1.3", client_ip, new.pid, "openssl", to(14432), tls13.pid(), "openssl")
            .field("/tls/version", "1.3")
            .field("/verdict/kind", serde_json::Value::Null),
    ];
    run.assert_connections("default policy", &want);
}
