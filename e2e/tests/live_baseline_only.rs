//! `observer run --baseline-only` (hidden; the bench's floor arm): it attaches an empty program at
//! each hook the observer uses per connection and nothing real, prints nothing even while
//! connections come and go, and everything goes when it exits, at `--duration` or on SIGTERM.
//! It refuses `--pin`: its links are never pinned.
//!
//! What the process holds is read from its own descriptors (`/proc/PID/fdinfo`), so observers
//! other tests run at the same time are not counted. Needs root and the release binary (the
//! `--pin` refusal does not need root).

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    process::Command,
    time::Duration,
};

use observer_e2e::{ObserverProcess, cmd, observer::BpfObjects, require_root, serial};
use serde_json::Value;

/// The empty programs, each with the attach type of its link as bpftool names it.
const EXPECTED: [(&str, &str); 4] = [
    ("observer_noop_egress", "cgroup_inet_egress"),
    ("observer_noop_ingress", "cgroup_inet_ingress"),
    ("observer_noop_sock_create", "cgroup_inet_sock_create"),
    ("observer_noop_sock_ops", "cgroup_sock_ops"),
];

/// The (program name, link attach type) pairs of the links `held` holds, from `bpftool -j`.
fn attached(held: &BpfObjects) -> Vec<(String, String)> {
    let list = |kind: &str| -> Vec<Value> {
        let out = cmd::run("bpftool", ["-j", kind, "list"]).expect("bpftool runs");
        let value: Value = serde_json::from_slice(&out.stdout).expect("bpftool prints JSON");
        value.as_array().cloned().unwrap_or_default()
    };
    let programs = list("prog");
    let name_of = |id: u64| {
        programs
            .iter()
            .find(|p| p["id"].as_u64() == Some(id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut found: Vec<(String, String)> = list("link")
        .iter()
        .filter(|l| l["id"].as_u64().is_some_and(|id| held.links.contains(&id)))
        .map(|l| (name_of(l["prog_id"].as_u64().unwrap_or(0)), l["attach_type"].as_str().unwrap_or("?").to_owned()))
        .collect();
    found.sort();
    found
}

/// A loopback connection with a request and an answer, while the empty programs are attached.
fn one_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    let addr = listener.local_addr().expect("local address");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = [0u8; 5];
        stream.read_exact(&mut request).expect("read the request");
        stream.write_all(b"world").expect("answer");
    });
    let mut client = TcpStream::connect(addr).expect("connect over loopback");
    client.write_all(b"hello").expect("send");
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).expect("read the answer");
    assert_eq!(answer, b"world");
    server.join().expect("server thread");
}

/// Starts `--baseline-only` for `duration`, checks what it attached, makes a connection, and
/// returns it with what it held.
fn start_and_check(duration: Duration) -> (ObserverProcess, BpfObjects) {
    let observer = ObserverProcess::start_with(duration, &["--baseline-only"]).expect("observer attaches");
    let held = observer.bpf_objects().expect("read the observer's fds");
    let want: Vec<(String, String)> = EXPECTED.iter().map(|(p, a)| ((*p).to_owned(), (*a).to_owned())).collect();
    assert_eq!(attached(&held), want, "links held: {held:?}\n{}", observer.stderr());
    // The four empty programs and nothing else: no real program is even loaded.
    let loaded = held.still_loaded().expect("bpftool");
    let programs: Vec<&String> = loaded.iter().filter(|o| o.starts_with("prog ")).collect();
    assert_eq!(programs.len(), EXPECTED.len(), "programs held: {loaded:?}");
    assert!(programs.iter().all(|p| p.contains(" observer_noop_")), "a real program is loaded: {loaded:?}");
    one_connection();
    (observer, held)
}

#[test]
fn baseline_only_attaches_only_the_empty_programs_and_they_go_at_the_end() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let (observer, held) = start_and_check(Duration::from_secs(3));
    let run = observer.finish(Duration::from_secs(30)).expect("it exits after --duration");
    run.expect_clean_exit().expect("clean exit");
    assert!(run.records.is_empty(), "it printed records: {:?}", run.records.all());
    assert!(run.stderr.contains("baseline only"), "{}", run.stderr);
    assert!(run.stderr.contains("observer detached"), "{}", run.stderr);
    let leaked = held.left_after_exit().expect("bpftool");
    assert!(leaked.is_empty(), "still in the kernel after exit: {leaked:?}\nobserver stderr:\n{}", run.stderr);
}

#[test]
fn baseline_only_detaches_on_sigterm() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let (observer, held) = start_and_check(Duration::from_secs(600));
    let run = observer.signal_after(libc::SIGTERM, Duration::from_millis(200)).expect("it exits on SIGTERM");
    run.expect_clean_exit().expect("clean exit");
    let leaked = held.left_after_exit().expect("bpftool");
    assert!(leaked.is_empty(), "still in the kernel after SIGTERM: {leaked:?}\nobserver stderr:\n{}", run.stderr);
}

/// Refused by the argument parser, before anything is created or loaded.
#[test]
fn baseline_only_refuses_pin() {
    let dir = std::env::temp_dir().join(format!("observer-baseline-pin-{}", std::process::id()));
    let out = Command::new(observer_e2e::observer::binary())
        .args(["run", "--baseline-only", "--pin"])
        .arg(&dir)
        .output()
        .expect("observer runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'--baseline-only' cannot be used with '--pin"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!dir.exists(), "{} was created", dir.display());
}
