//! `cargo xtask demo`: two throwaway network namespaces with real peers (python3's HTTP server,
//! `openssl s_server`, curl, `openssl s_client`), the observer watching from the root namespace,
//! and what it saw; then the HAProxy mesh with a STRICT and a PERMISSIVE workload and a legacy
//! client without a sidecar: its plaintext flagged, the STRICT-readiness answer naming it, the
//! edge map, and where the metrics are. Built from the end-to-end harness (`e2e/`), which
//! removes every namespace and process it made, also on failure.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::{Result, bail};
use observer_e2e::{
    Mesh, ObserverProcess, Sidecar, Topology,
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
    drop(topo);
    mesh()?;
    eprintln!("demo: done; namespaces and processes removed");
    Ok(())
}

/// The mesh part: what the product is for.
fn mesh() -> Result<()> {
    eprintln!("\ndemo: the mesh: pod-a (STRICT), pod-b (PERMISSIVE), legacy (no sidecar), HAProxy sidecars");
    let mesh = Mesh::builder()
        .pod("pod-a", Sidecar::Strict)
        .pod("pod-b", Sidecar::Permissive)
        .pod("legacy", Sidecar::None)
        .build()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let policy = mesh.manifests_dir().to_string_lossy().into_owned();
    let observer = ObserverProcess::start_with(RUN_CAP, &["--policy", &policy, "--metrics-addr", &addr])?;
    let ip = |pod: &str| IpAddr::V4(mesh.pod(pod).ipv4());
    eprintln!("demo: pod-a -> pod-b through both sidecars (mTLS)");
    Curl::http(mesh.pod("pod-a").ns(), ip("pod-b"), mesh.app_port()).run()?;
    eprintln!("demo: legacy -> pod-a, plaintext to a STRICT workload (its sidecar refuses it)");
    Curl::http(mesh.pod("legacy").ns(), ip("pod-a"), mesh.app_port()).run()?;
    eprintln!("demo: legacy -> pod-b, plaintext to a PERMISSIVE workload (accepted today)");
    Curl::http(mesh.pod("legacy").ns(), ip("pod-b"), mesh.app_port()).run()?;
    std::thread::sleep(observer_e2e::DRAIN);

    let flagged = observer.records_so_far().filter(|r| {
        r.pointer("/client/ip").and_then(|v| v.as_str()) == Some(mesh.pod("legacy").ipv4().to_string().as_str())
            && r.pointer("/verdict/kind").is_some_and(|k| !k.is_null())
    });
    println!("\nThe legacy client's connections, as `observer run` prints them:\n");
    for record in flagged.iter() {
        println!("{record}\n");
    }
    let ns = mesh.namespace();
    let from = format!("http://{addr}");
    let cli = |args: &[&str]| -> Result<()> {
        println!("$ observer {}\n", args.join(" "));
        let out = std::process::Command::new(observer_e2e::observer::binary()).args(args).output()?;
        println!(
            "{}{}(exit status {})\n",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            out.status.code().unwrap_or(-1)
        );
        Ok(())
    };
    cli(&["readiness", ns, "--workload", "pod-b", "--from", &from])?;
    cli(&["readiness", ns, "--workload", "pod-a", "--from", &from])?;
    cli(&["edges", "--namespace", ns, "--from", &from])?;
    println!(
        "The same daemon serves Prometheus metrics at http://{addr}/metrics and the answers above as\n\
         JSON at http://{addr}/v1/readiness?namespace={ns}&workload=pod-b and /v1/edges?namespace={ns}.\n"
    );
    observer.stop_after(Duration::from_millis(500))?;
    Ok(())
}
