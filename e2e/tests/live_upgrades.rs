//! In-protocol upgrades, live: PostgreSQL's SSLRequest followed to the TLS after it
//! (`protocol: postgres`, `security: tls`, `tls.starttls: postgres`), next to plaintext PostgreSQL (`protocol:
//! postgres`), over IPv4 and IPv6, against a real server and `psql`.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    ExpectedConn, ObserverProcess, Topology,
    pki::{KeyType, Pki},
    postgres::{Postgres, psql},
    require_root, serial,
};

const PG_PORT: u16 = 15432;

#[test]
fn postgres_plaintext_and_sslrequest_upgrades_are_classified() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let observer = ObserverProcess::start(Duration::from_secs(120)).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("pg", KeyType::EcdsaP256, &["pg.e2e.test"], None).expect("cert");
    let pg = Postgres::start(b.ns(), PG_PORT, &leaf).expect("postgres");
    let mut want = Vec::new();
    for (client_ip, server_ip) in [
        (IpAddr::V4(a.ipv4()), IpAddr::V4(b.ipv4())),
        (IpAddr::V6(a.ipv6().expect("v6")), IpAddr::V6(b.ipv6().expect("v6"))),
    ] {
        for (sslmode, security, protocol) in [("disable", "plaintext", "postgres"), ("require", "tls", "postgres")] {
            let run = psql(a.ns(), &server_ip.to_string(), PG_PORT, sslmode).expect("psql");
            assert_eq!(run.stdout.trim(), "1", "psql sslmode={sslmode} to {server_ip}: {run}\n{}", pg.child.logs());
            let mut conn = ExpectedConn {
                label: format!("psql sslmode={sslmode} to {server_ip}"),
                client_ip,
                client_port: None,
                client_pid: run.pid,
                client_comm: "psql".into(),
                server: SocketAddr::new(server_ip, PG_PORT),
                server_pid: pg.pid(),
                server_comm: "postgres".into(),
                observed_at: "both".into(),
                fields: Vec::new(),
            }
            .field("/security", security)
            .field("/protocol", protocol);
            if sslmode == "require" {
                conn = conn.field("/tls/starttls", "postgres").field("/tls/client_cert", "not_requested");
            }
            want.push(conn);
        }
    }
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");
    run.assert_connections("postgres upgrades", &want);
}
