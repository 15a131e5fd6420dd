//! `observer run --cgroup PATH`: only sockets of processes in that cgroup are seen. With the
//! client in scope and the server not, a leg is `observed_at: client` with no server process;
//! the other way round `server`; a leg with neither end in scope is not reported. That is how a
//! node sees a peer on another node, reproduced on one machine.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    ObserverProcess, Spawn, Topology,
    cgroup::Cgroup,
    peers::{Curl, HttpServer, PYTHON},
    records::{at, str_at},
    require_root, serial,
};

/// Starts `program args` in `ns`, held before exec until it has been moved into `cgroup`, so
/// that every socket it creates belongs there. The PID stays the program's (sh execs it).
fn start_in(cgroup: &Cgroup, ns: &str, command: &str) -> observer_e2e::Child {
    let mut child = Spawn::new(ns, "sh")
        .args(["-c", &format!("read go && exec {command}")])
        .keep_stdin_open()
        .start()
        .expect("start held process");
    cgroup.add(child.pid()).expect("move into cgroup");
    child.write_stdin(b"go\n").expect("release");
    child
}

#[test]
fn a_narrower_cgroup_sees_one_end_and_says_which() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let cgroup = Cgroup::new("scope").expect("cgroup");
    let scope = cgroup.path().to_string_lossy().into_owned();
    let observer =
        ObserverProcess::start_with(Duration::from_secs(120), &["--cgroup", &scope]).expect("observer attaches");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let (a_ip, b_ip) = (IpAddr::V4(a.ipv4()), IpAddr::V4(b.ipv4()));
    let outside_server = HttpServer::start(b.ns(), 18091).expect("server outside the cgroup");
    let mut inside_server = start_in(&cgroup, b.ns(), &format!("{PYTHON} -m http.server 18092 --bind ::"));
    inside_server.wait_listening(18092).expect("server in the cgroup listens");

    // Client in scope -> server out of scope.
    let url = format!("http://{}:18091/", b.ipv4());
    let mut inside_client =
        start_in(&cgroup, a.ns(), &format!("curl -sS -o /dev/null -w '%{{http_code}} %{{local_port}}' {url}"));
    let status = inside_client.wait_timeout(Duration::from_secs(20)).expect("wait");
    assert!(status.is_some_and(|s| s.success()), "curl in the cgroup failed:\n{}", inside_client.logs());
    let out = inside_client.stdout();
    let client_port: u16 = out.split_whitespace().nth(1).and_then(|p| p.parse().ok()).expect("curl's local port");
    // Client out of scope -> server in scope; and a leg with no end in scope.
    let to_inside = Curl::http(a.ns(), b_ip, 18092).run().expect("curl");
    assert_eq!(to_inside.http_code, 200, "{to_inside}");
    let unseen = Curl::http(a.ns(), b_ip, 18091).run().expect("curl");
    assert_eq!(unseen.http_code, 200, "{unseen}");
    let run = observer.stop_after(Duration::from_millis(1500)).expect("observer stops");
    run.expect_clean_exit().expect("clean exit");

    let client_side = run.records.between(a_ip, SocketAddr::new(b_ip, 18091));
    let one = client_side.exactly_one("client in scope, server not").expect("one client-side record");
    let mut problems = Vec::new();
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            problems.push(what.to_owned());
        }
    };
    expect("client-side leg is observed_at client", str_at(one, "/observed_at") == Some("client"));
    expect("client port is curl's", at(one, "/client/port").as_u64() == Some(u64::from(client_port)));
    expect("client process is curl", str_at(one, "/client/process/comm") == Some("curl"));
    expect("client pid is curl's", at(one, "/client/process/pid").as_u64() == Some(u64::from(inside_client.pid())));
    expect("server process unseen is null", at(one, "/server/process").is_null());
    expect("plaintext", str_at(one, "/security") == Some("plaintext"));

    let server_side = run.records.between(a_ip, SocketAddr::new(b_ip, 18092));
    let other = server_side.exactly_one("server in scope, client not").expect("one server-side record");
    expect("server-side leg is observed_at server", str_at(other, "/observed_at") == Some("server"));
    expect("client port is curl's", at(other, "/client/port").as_u64() == to_inside.local.map(|l| u64::from(l.port())));
    expect("server process is python3", str_at(other, "/server/process/comm") == Some("python3"));
    expect("server pid", at(other, "/server/process/pid").as_u64() == Some(u64::from(inside_server.pid())));
    expect("client process unseen is null", at(other, "/client/process").is_null());

    let unseen_records = run.records.filter(|r| {
        at(r, "/client/port").as_u64() == unseen.local.map(|l| u64::from(l.port()))
            && at(r, "/server/port").as_u64() == Some(18091)
    });
    expect("a leg with no end in the cgroup is not reported", unseen_records.is_empty());
    assert!(
        problems.is_empty(),
        "{problems:?}\nclient side:\n{client_side}server side:\n{server_side}out of scope:\n{unseen_records}"
    );
    drop((inside_client, inside_server, outside_server));
    let _ = &cgroup;
}
