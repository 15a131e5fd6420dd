//! `cargo xtask demo`: two throwaway network namespaces with real peers (python3's HTTP server,
//! `openssl s_server`, curl, `openssl s_client`), the observer watching from the root namespace,
//! and what it saw. Built from the end-to-end harness (`e2e/`), which removes every namespace
//! and process it made, also on failure.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::{Result, bail};
use observer_e2e::{
    ObserverProcess, Topology,
    peers::{ClientAuth, Curl, HttpServer, SClient, TlsServer, TlsVersion},
    pki::{KeyType, Pki, spiffe_id},
};

use crate::cmd;

/// The longest the observer may run if something hangs.
const RUN_CAP: Duration = Duration::from_secs(60);

pub fn run() -> Result<()> {
    if !cmd::is_root() {
        bail!("the demo creates network namespaces and loads eBPF programs: run it as root");
    }
    let topo = Topology::builder().pod("client").pod("server").build()?;
    let (client, server) = (topo.pod("client"), topo.pod("server"));
    let server_ip = IpAddr::V4(server.ipv4());
    eprintln!("demo: namespaces {} ({}) and {} ({server_ip})", client.ns(), client.ipv4(), server.ns());

    let pki = Pki::new()?;
    let names = ["api.demo.test", "legacy.demo.test"];
    let server_leaf = pki.issue("server", KeyType::Rsa2048, &names, None)?;
    let client_leaf = pki.issue("client", KeyType::Rsa2048, &[], Some(&spiffe_id("demo", "client")))?;
    let _http = HttpServer::start(server.ns(), 8080)?;
    // Requests a client certificate (optional): mTLS when the client sends one, TLS when not.
    let _tls13 =
        TlsServer::start(server.ns(), 8443, &server_leaf, pki.ca_cert(), TlsVersion::Any, ClientAuth::Request)?;
    let _tls12 = TlsServer::start(server.ns(), 9443, &server_leaf, pki.ca_cert(), TlsVersion::Tls12, ClientAuth::None)?;

    eprintln!("demo: starting the observer");
    let observer = ObserverProcess::start(RUN_CAP)?;
    eprintln!("demo: curl, plaintext HTTP");
    Curl::http(client.ns(), server_ip, 8080).run()?;
    eprintln!("demo: openssl s_client, TLS 1.3 without a client certificate");
    SClient::new(client.ns(), server_ip, 8443).servername(names[0]).verify_with(pki.ca_cert()).run()?;
    eprintln!("demo: openssl s_client, TLS 1.3 with a client certificate (mTLS)");
    SClient::new(client.ns(), server_ip, 8443).servername(names[0]).cert(&client_leaf).run()?;
    eprintln!("demo: openssl s_client, TLS 1.2, no certificate requested");
    SClient::new(client.ns(), server_ip, 9443).servername(names[1]).version(TlsVersion::Tls12).run()?;
    let run = observer.stop_after(Duration::from_millis(1500))?;

    println!("\nWhat the observer saw between the two namespaces (JSON lines, one per connection leg):\n");
    let mut seen = 0;
    for port in [8080, 8443, 9443] {
        for record in run.records.between(IpAddr::V4(client.ipv4()), SocketAddr::new(server_ip, port)).iter() {
            seen += 1;
            println!("{record}\n");
            let field = |pointer: &str| record.pointer(pointer).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
            println!(
                "  => {} -> {} :{port}  security={} protocol={} client_cert={} sni={}\n",
                field("/client/process/comm"),
                field("/server/process/comm"),
                field("/security"),
                field("/protocol"),
                field("/tls/client_cert"),
                field("/tls/sni"),
            );
        }
    }
    if seen < 4 {
        bail!("the observer reported {seen} of the 4 demo connections\n{}", run.stderr);
    }
    eprintln!("demo: done; namespaces and processes removed");
    Ok(())
}
