//! The live `observer run` against real peers in namespaces. For plaintext
//! HTTP, TLS 1.3 and TLS 1.2 with and without a client certificate, over IPv4 and IPv6 between
//! two pods and over loopback inside one, every connection is reported exactly once with its
//! ends, owning processes and side; the TLS details prove the capture starts at the real
//! ClientHello (the SNI is the `-servername` the client was given), also when the ClientHello
//! spans several segments; and nothing stays attached after the observer exits.
//!
//! Needs root and the release binary (`cargo build --release -p observer`, or `OBSERVER_BIN`).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    DRAIN, ExpectedConn, ObserverProcess, RUN_CAP, Topology,
    observer::ObserverRun,
    peers::{ClientAuth, Curl, HttpServer, SClient, TlsServer, TlsVersion, padding_alpn},
    pins::PinDir,
    pki::{KeyType, Leaf, Pki, spiffe_id},
    require_root, serial,
};

const HTTP_PORT: u16 = 18080;
const TLS13_PORT: u16 = 14413;
const TLS12_PORT: u16 = 14412;

/// One way to reach the server pod: from which namespace, to which address.
struct Path {
    name: &'static str,
    client_ns: String,
    client_ip: IpAddr,
    server_ip: IpAddr,
}

fn paths(topo: &Topology) -> Vec<Path> {
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let v6 = |p: &observer_e2e::Pod| IpAddr::V6(p.ipv6().expect("pods have IPv6 at MTU 1500"));
    vec![
        Path { name: "ipv4", client_ns: a.ns().into(), client_ip: a.ipv4().into(), server_ip: b.ipv4().into() },
        Path { name: "ipv6", client_ns: a.ns().into(), client_ip: v6(a), server_ip: v6(b) },
        Path {
            name: "loopback4",
            client_ns: b.ns().into(),
            client_ip: Ipv4Addr::LOCALHOST.into(),
            server_ip: Ipv4Addr::LOCALHOST.into(),
        },
        Path {
            name: "loopback6",
            client_ns: b.ns().into(),
            client_ip: Ipv6Addr::LOCALHOST.into(),
            server_ip: Ipv6Addr::LOCALHOST.into(),
        },
    ]
}

/// Starts the observer, then servers in pod b, then every client over every path; returns the
/// run and what each connection must look like. `dissected` adds the dissector's fields.
fn run_matrix(dissected: bool) -> (ObserverRun, Vec<ExpectedConn>) {
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let pki = Pki::new().expect("pki");
    let server_leaf = pki
        .issue("b", KeyType::EcdsaP256, &["b.e2e.test", "*.b.e2e.test"], Some(&spiffe_id("e2e", "b")))
        .expect("server cert");
    let client_leaf = pki.issue("a", KeyType::Rsa2048, &[], Some(&spiffe_id("e2e", "a"))).expect("client cert");
    let b = topo.pod("b").ns().to_owned();
    let http = HttpServer::start(&b, HTTP_PORT).expect("http server");
    let tls13 = TlsServer::start(&b, TLS13_PORT, &server_leaf, pki.ca_cert(), TlsVersion::Tls13, ClientAuth::Request)
        .expect("s_server 1.3");
    let tls12 = TlsServer::start(&b, TLS12_PORT, &server_leaf, pki.ca_cert(), TlsVersion::Tls12, ClientAuth::Request)
        .expect("s_server 1.2");

    let mut want = Vec::new();
    for path in paths(&topo) {
        let server = |port| SocketAddr::new(path.server_ip, port);
        let curl = Curl::http(&path.client_ns, path.server_ip, HTTP_PORT).run().expect("curl");
        assert_eq!(curl.http_code, 200, "{curl}");
        let mut conn = ExpectedConn::both(
            format!("http/{}", path.name),
            path.client_ip,
            curl.pid(),
            "curl",
            server(HTTP_PORT),
            http.pid(),
            "python3",
        );
        conn.client_port = curl.local.map(|l| l.port());
        conn = conn.field("/security", "plaintext").field("/tls", serde_json::Value::Null);
        if dissected {
            conn = conn.field("/protocol", "http1");
        }
        want.push(conn);

        for (version, port, pid, v) in
            [(TlsVersion::Tls13, TLS13_PORT, tls13.pid(), "1.3"), (TlsVersion::Tls12, TLS12_PORT, tls12.pid(), "1.2")]
        {
            for cert in [Some(&client_leaf), None::<&Leaf>] {
                let tag = if cert.is_some() { "cert" } else { "nocert" };
                let sni = format!("{tag}-{}.{}.b.e2e.test", v.replace('.', ""), path.name);
                let mut client = SClient::new(&path.client_ns, path.server_ip, port).servername(&sni).version(version);
                if let Some(leaf) = cert {
                    client = client.cert(leaf);
                }
                let run = client.run().expect("s_client");
                assert!(run.stdout.contains("HTTP/1.0 200"), "no reply over {}: {run}", path.name);
                let mut conn = ExpectedConn::both(
                    format!("tls{v}+{tag}/{}", path.name),
                    path.client_ip,
                    run.pid,
                    "openssl",
                    server(port),
                    pid,
                    "openssl",
                )
                .field("/protocol", "tls");
                if dissected {
                    let (security, client_cert) =
                        if cert.is_some() { ("mtls", "presented") } else { ("tls", "requested_not_presented") };
                    conn = conn
                        .field("/security", security)
                        .field("/tls/sni", sni.as_str())
                        .field("/tls/version", v)
                        .field("/tls/client_cert", client_cert);
                }
                want.push(conn);
            }
        }
    }
    let run = observer.stop_after(DRAIN).expect("observer stops");
    drop((http, tls13, tls12));
    (run, want)
}

#[test]
fn every_leg_is_reported_once_with_its_ends_processes_and_side() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let (run, want) = run_matrix(false);
    run.assert_connections("live capture", &want);
}

#[test]
fn tls_details_come_from_the_real_client_hello() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let (run, want) = run_matrix(true);
    run.assert_connections("dissected live capture", &want);
}

/// TLS 1.3 connections whose ~1.7 KB ClientHello (a long ALPN list) crosses in several segments
/// (one per skb; the harness test checks the split with tcpdump): IPv4 at MTU 576 (4 segments),
/// IPv6 at MTU 1280 (2), loopback at MTU 576 (4). `dissected` adds the fields only a whole
/// ClientHello yields.
fn split_client_hello(dissected: bool) {
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches");
    let small = Topology::builder().mtu(576).pod("a").pod("b").build().expect("topology");
    let ipv6 = Topology::builder().mtu(1280).pod("a").pod("b").build().expect("topology");
    small.pod("b").split_loopback(576).expect("loopback MTU");
    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("b", KeyType::EcdsaP256, &["split.b.e2e.test"], None).expect("cert");
    let alpn = padding_alpn(1400);
    let cases = [
        ("ipv4-576", &small, small.pod("a").ns(), IpAddr::V4(small.pod("a").ipv4()), IpAddr::V4(small.pod("b").ipv4())),
        (
            "ipv6-1280",
            &ipv6,
            ipv6.pod("a").ns(),
            ipv6.pod("a").ip(true).expect("v6"),
            ipv6.pod("b").ip(true).expect("v6"),
        ),
        ("loopback-576", &small, small.pod("b").ns(), Ipv4Addr::LOCALHOST.into(), Ipv4Addr::LOCALHOST.into()),
    ];
    let servers: Vec<TlsServer> = [&small, &ipv6]
        .iter()
        .map(|t| {
            TlsServer::start(t.pod("b").ns(), TLS13_PORT, &leaf, pki.ca_cert(), TlsVersion::Tls13, ClientAuth::None)
                .expect("s_server")
        })
        .collect();
    let mut want = Vec::new();
    for (label, topo, client_ns, client_ip, server_ip) in cases {
        let sni = format!("{label}.split.b.e2e.test");
        let client =
            SClient::new(client_ns, server_ip, TLS13_PORT).servername(&sni).alpn(alpn.clone()).run().expect("s_client");
        assert!(client.stdout.contains("HTTP/1.0 200"), "{label}: {client}");
        let server_pid = servers[usize::from(std::ptr::eq(topo, &ipv6))].pid();
        let server = SocketAddr::new(server_ip, TLS13_PORT);
        let mut conn = ExpectedConn::both(
            format!("split/{label}"),
            client_ip,
            client.pid,
            "openssl",
            server,
            server_pid,
            "openssl",
        )
        .field("/security", "tls")
        .field("/protocol", "tls");
        if dissected {
            conn = conn
                .field("/tls/sni", sni.as_str())
                .field("/tls/alpn_offered", alpn.clone())
                .field("/tls/client_cert", "not_requested");
        }
        want.push(conn);
    }
    let run = observer.stop_after(DRAIN).expect("observer stops");
    run.assert_connections("multi-segment ClientHello", &want);
}

#[test]
fn a_client_hello_spanning_several_segments_is_reported_once() {
    let _serial = serial();
    if require_root() {
        split_client_hello(false);
    }
}

#[test]
fn a_client_hello_spanning_several_segments_is_captured_whole() {
    let _serial = serial();
    if require_root() {
        split_client_hello(true);
    }
}

/// Runs the observer, ended by `stop`, and fails if any of its programs, links or maps outlive
/// it. The objects are the process's own (its fds), so other observers running meanwhile (a
/// parallel test, a demo) cannot confuse the check.
fn assert_detaches_on_exit(how: &str, stop: impl FnOnce(ObserverProcess) -> ObserverRun) {
    let observer = ObserverProcess::start(Duration::from_secs(3)).expect("observer attaches");
    let held = observer.bpf_objects().expect("read the observer's fds");
    assert!(
        !held.progs.is_empty() && !held.links.is_empty(),
        "{how}: the observer holds no programs or links: {held:?}"
    );
    let loaded = held.still_loaded().expect("bpftool");
    assert!(
        loaded.iter().filter(|o| o.starts_with("prog ")).all(|o| o.contains(" observer")),
        "{how}: the observer's programs are not named observer_*: {loaded:?}"
    );
    let run = stop(observer);
    if how == "SIGKILL" {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(run.status.signal(), Some(libc::SIGKILL), "{how}: {}", run.stderr);
    } else {
        run.expect_clean_exit().unwrap_or_else(|e| panic!("{how}: {e:#}"));
        // Without --pin nothing is pinned, and it says it detached.
        assert!(
            run.stderr.contains("observer detached")
                && !run.stderr.contains("pinned")
                && !run.stderr.contains("pins kept"),
            "{how}: {}",
            run.stderr
        );
    }
    let leaked = held.left_after_exit().expect("bpftool");
    assert!(leaked.is_empty(), "{how}: still in the kernel after exit: {leaked:?}\nobserver stderr:\n{}", run.stderr);
}

#[test]
fn nothing_of_the_observer_stays_attached_after_it_exits() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    assert_detaches_on_exit("--duration", |o| {
        o.finish(Duration::from_secs(30)).expect("observer exits after --duration")
    });
    assert_detaches_on_exit("SIGTERM", |o| {
        o.signal_after(libc::SIGTERM, Duration::ZERO).expect("observer exits on SIGTERM")
    });
    assert_detaches_on_exit("SIGINT", |o| o.stop_after(Duration::ZERO).expect("observer exits on SIGINT"));
    // The kernel closes a killed process's link fds: nothing stays attached either.
    assert_detaches_on_exit("SIGKILL", |o| {
        o.signal_after(libc::SIGKILL, Duration::ZERO).expect("observer ends on SIGKILL")
    });
}

/// The names of a running observer's programs (bpftool shows them whole, from their BTF).
fn program_names(observer: &ObserverProcess) -> (Vec<String>, observer_e2e::observer::BpfObjects) {
    let held = observer.bpf_objects().expect("read the observer's fds");
    let names = held
        .still_loaded()
        .expect("bpftool")
        .into_iter()
        .filter_map(|o| Some(o.strip_prefix("prog ")?.split_once(' ')?.1.to_owned()))
        .collect();
    (names, held)
}

/// `--attach-baseline` (the bench's reference) attaches the two empty cgroup_skb programs with
/// links of their own next to the usual ones, and they go with the process like the others.
#[test]
fn the_baseline_option_attaches_two_empty_programs_that_go_at_exit() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let plain = ObserverProcess::start(Duration::from_secs(2)).expect("observer attaches");
    let (plain_names, plain_held) = program_names(&plain);
    plain.finish(Duration::from_secs(30)).expect("observer exits").expect_clean_exit().expect("clean exit");
    assert!(!plain_names.iter().any(|n| n.starts_with("observer_noop")), "no baseline unless asked: {plain_names:?}");

    let observer =
        ObserverProcess::start_with(Duration::from_secs(2), &["--attach-baseline"]).expect("observer attaches");
    let (names, held) = program_names(&observer);
    let mut noop: Vec<&str> = names.iter().map(String::as_str).filter(|n| n.starts_with("observer_noop")).collect();
    noop.sort_unstable();
    assert_eq!(noop, ["observer_noop_egress", "observer_noop_ingress"], "programs: {names:?}");
    assert_eq!(held.progs.len(), plain_held.progs.len() + 2, "{held:?} against {plain_held:?}");
    assert_eq!(held.links.len(), plain_held.links.len() + 2, "{held:?} against {plain_held:?}");
    let run = observer.finish(Duration::from_secs(30)).expect("observer exits after --duration");
    run.expect_clean_exit().expect("clean exit");
    assert!(run.stderr.contains("baseline attached"), "{}", run.stderr);
    let leaked = held.left_after_exit().expect("bpftool");
    assert!(leaked.is_empty(), "still in the kernel after exit: {leaked:?}\nobserver stderr:\n{}", run.stderr);

    // With --pin the usual links are pinned and stay; the baseline's are never pinned and go.
    let pins = PinDir::new("baseline").expect("a pin directory on bpffs");
    let observer = ObserverProcess::start_with(Duration::from_secs(2), &["--attach-baseline", "--pin", pins.arg()])
        .expect("observer attaches");
    let (_, held) = program_names(&observer);
    let run = observer.finish(Duration::from_secs(30)).expect("observer exits after --duration");
    run.expect_clean_exit().expect("clean exit");
    let files = pins.files();
    assert!(!files.iter().any(|f| f.contains("noop")), "the baseline was pinned: {files:?}");
    assert_eq!(pins.links().expect("pinned links").len(), 6, "pinned: {files:?}");
    let noop_left = || -> Vec<String> {
        held.still_loaded().expect("bpftool").into_iter().filter(|o| o.contains("observer_noop")).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut left = noop_left();
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        left = noop_left();
    }
    assert!(left.is_empty(), "the baseline stayed with the pins: {left:?}");
    let out = pins.unpin().expect("observer unpin");
    assert!(out.status.success(), "unpin: {}", String::from_utf8_lossy(&out.stderr));
}
