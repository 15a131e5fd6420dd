//! The live source and the pcap replay feed the same pipeline (docs/ARCHITECTURE.md): traffic seen live
//! and captured by tcpdump at the same time must be classified alike — same ends, security,
//! protocol and TLS details — with `observed_at: wire` and no processes in the replay.

use std::{net::IpAddr, time::Duration};

use observer_e2e::{
    Checks, ObserverProcess, TempDir, Topology,
    observer::replay,
    peers::{ClientAuth, Curl, HttpServer, SClient, TlsServer, TlsVersion, padding_alpn},
    pki::{KeyType, Pki},
    records::{at, endpoint},
    require_root, serial,
    tcpdump::PcapCapture,
};

/// The fields both sources must agree on.
const SAME: [&str; 10] = [
    "/security",
    "/protocol",
    "/reason",
    "/tls/version",
    "/tls/sni",
    "/tls/alpn_offered",
    "/tls/cipher",
    "/tls/ja4",
    "/tls/client_cert",
    "/tls/evidence",
];

/// Runs the traffic at `mtu` (576: IPv4 only, big ClientHellos in 4 segments each) live and
/// captured, and compares the two classifications of every leg.
fn compare(mtu: u32) {
    let topo = Topology::builder().mtu(mtu).pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["b.e2e.test"], None).expect("cert");
    let client_leaf = pki.issue("a", KeyType::Rsa2048, &[], Some("spiffe://cluster.local/ns/e2e/sa/a")).expect("cert");
    let files = TempDir::new("pcap").expect("temp dir");
    let observer = ObserverProcess::start(Duration::from_secs(120)).expect("observer attaches");
    let http = HttpServer::start(b.ns(), 18086).expect("http");
    let tls13 = TlsServer::start(b.ns(), 14441, &leaf, pki.ca_cert(), TlsVersion::Tls13, ClientAuth::Request)
        .expect("s_server");
    let tls12 = TlsServer::start(b.ns(), 14442, &leaf, pki.ca_cert(), TlsVersion::Tls12, ClientAuth::Request)
        .expect("s_server");
    let capture = PcapCapture::start(b.ns(), "eth0", &files.join("legs.pcap"), "tcp").expect("tcpdump");
    let mut pids = Vec::new();
    let mut server_ips = vec![IpAddr::V4(b.ipv4())];
    server_ips.extend(b.ipv6().ok().map(IpAddr::V6));
    let alpn = if mtu < 1500 { padding_alpn(1400) } else { vec!["h2".to_owned(), "http/1.1".to_owned()] };
    for server_ip in server_ips {
        let curl = Curl::http(a.ns(), server_ip, 18086).arg("-H").arg("X-Observer: e2e").run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
        pids.push(curl.pid());
        for port in [14441, 14442] {
            for with_cert in [true, false] {
                let mut client =
                    SClient::new(a.ns(), server_ip, port).servername("replay.b.e2e.test").alpn(alpn.clone());
                if with_cert {
                    client = client.cert(&client_leaf);
                }
                let run = client.run().expect("s_client");
                assert!(run.stdout.contains("HTTP/1.0 200"), "{run}");
                pids.push(run.pid);
            }
        }
    }
    let pcap = capture.finish();
    let live = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");
    let replayed = replay(&[&pcap], &[]).expect("observer replay");
    drop((http, tls13, tls12));

    let mut checks = Checks::new();
    checks.check("live exit", live.expect_clean_exit());
    checks.check("replay exit", replayed.expect_clean_exit());
    let ours =
        live.records.filter(|r| pids.iter().any(|&p| at(r, "/client/process/pid").as_u64() == Some(u64::from(p))));
    if ours.len() != pids.len() {
        checks.check("live", Err(anyhow::anyhow!("{} connections, {} live records:\n{ours}", pids.len(), ours.len())));
    }
    for record in ours.iter() {
        let (Some(client), Some(server)) = (endpoint(record, "client"), endpoint(record, "server")) else {
            continue;
        };
        let twin =
            replayed.records.filter(|r| endpoint(r, "client") == Some(client) && endpoint(r, "server") == Some(server));
        let label = format!("{client} -> {server}");
        match twin.exactly_one("replay of this leg") {
            Ok(replay) => {
                for pointer in SAME {
                    if at(record, pointer) != at(replay, pointer) {
                        checks.check(
                            &label,
                            Err(anyhow::anyhow!(
                                "{pointer}: live {} vs replay {}\n  live   {record}\n  replay {replay}",
                                at(record, pointer),
                                at(replay, pointer)
                            )),
                        );
                    }
                }
                checks.eq(&label, replay, "/observed_at", "wire");
                checks.eq(&label, replay, "/client/process", serde_json::Value::Null);
            }
            Err(error) => checks.check(&label, Err(error)),
        }
    }
    live.assert_passed(&format!("live vs replay at MTU {mtu}"), checks);
}

#[test]
fn live_and_replayed_classifications_agree() {
    let _serial = serial();
    if require_root() {
        compare(1500);
    }
}

#[test]
fn live_and_replayed_classifications_agree_on_split_client_hellos() {
    let _serial = serial();
    if require_root() {
        compare(576);
    }
}
