//! Restart without a blind window: `observer run --pin DIR` killed with SIGKILL and started
//! again on the same pins reports the connections opened while it was down, through the same
//! links (no second set attached), and `observer unpin DIR` leaves nothing of it in the kernel.
//! A pin directory off bpffs, holding someone else's files, a map of another layout, or links at
//! another cgroup is refused, touching nothing.

use std::{
    net::{IpAddr, SocketAddr},
    os::unix::process::ExitStatusExt as _,
    time::{Duration, Instant},
};

use observer_e2e::{
    Child, DRAIN, ExpectedConn, ObserverProcess, RUN_CAP, Spawn, TempDir, Topology,
    cgroup::Cgroup,
    observer::BpfObjects,
    peers::{Curl, HttpServer, PYTHON},
    pins::{PinDir, links_running},
    records::endpoint,
    require_root, serial,
};

const HTTP_PORT: u16 = 18086;
/// Connections made while no daemon runs.
const WHILE_DOWN: usize = 3;
/// How many links the observer pins (one per program).
const LINKS: usize = 6;

/// A python3 client that connects, prints its port, and sends a request only once its stdin closes.
const HELD_CLIENT: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
print(s.getsockname()[1], flush=True)
sys.stdin.read()
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
while s.recv(65536):
    pass
s.close()
"#;

#[test]
fn a_daemon_killed_and_restarted_on_its_pins_reports_what_was_opened_while_it_was_down() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let pins = PinDir::new("restart").expect("a pin directory on bpffs");
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let client_ip = IpAddr::V4(a.ipv4());
    let server = SocketAddr::new(IpAddr::V4(b.ipv4()), HTTP_PORT);

    let first = ObserverProcess::start_with(RUN_CAP, &["--pin", pins.arg()]).expect("first daemon attaches");
    // The server listens once the programs are attached: its owner is then recorded by the
    // kernel (post_bind, in the pinned LISTENERS map) and reaches the second daemon through the
    // pins, with no walk of /proc, which the chart's capability set does not allow.
    let http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    // Opened under the first daemon (which consumes its open event) and used after the restart.
    let mut held = Spawn::new(a.ns(), PYTHON)
        .args(["-c", HELD_CLIENT, &b.ipv4().to_string(), &HTTP_PORT.to_string()])
        .keep_stdin_open()
        .start()
        .expect("held client");
    let held_port = wait_port(&held);
    // Its open event is in the ring before this curl's: seeing the curl means it was consumed.
    let curl = Curl::http(a.ns(), server.ip(), HTTP_PORT).run().expect("curl");
    assert_eq!(curl.http_code, 200, "{curl}");
    let seen = first.wait_for_records(Duration::from_secs(10), |r| r.between(client_ip, server));
    assert!(seen.is_some(), "the first daemon reported nothing:\n{}", first.stderr());
    let pinned = pins.links().expect("read the pinned links");
    assert_eq!(pinned.len(), LINKS, "pinned links after the first start: {pinned:?}\n{:?}", pins.files());
    let first_progs = first.bpf_objects().expect("first daemon's fds").progs;

    let killed = first.signal_after(libc::SIGKILL, Duration::ZERO).expect("first daemon ends");
    assert_eq!(killed.status.signal(), Some(libc::SIGKILL), "{}", killed.stderr);
    assert_eq!(pins.links().expect("pinned links"), pinned, "the links changed while no daemon ran");

    let mut want = Vec::new();
    for i in 0..WHILE_DOWN {
        let curl = Curl::http(a.ns(), server.ip(), HTTP_PORT).run().expect("curl while down");
        assert_eq!(curl.http_code, 200, "{curl}");
        let mut conn = ExpectedConn::both(
            format!("opened while down #{i}"),
            client_ip,
            curl.pid(),
            "curl",
            server,
            http.pid(),
            "python3",
        )
        .field("/security", "plaintext");
        conn.client_port = curl.local.map(|l| l.port());
        assert!(conn.client_port.is_some(), "curl did not say its port: {curl}");
        want.push(conn);
    }

    let second = ObserverProcess::start_with(RUN_CAP, &["--pin", pins.arg()]).expect("second daemon attaches");
    let line = second.wait_for_log("pinned", 0, Duration::from_secs(5)).expect("the pinned summary");
    for field in ["maps_reused=6", "links_updated=6", "links_pinned=0"] {
        assert!(line.contains(field), "restart did not reuse every pin ({field}): {line}");
    }
    // The held connection at least is open in the kernel's pinned state.
    let open_sockets: u64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("open_sockets=")?.parse().ok())
        .unwrap_or_else(|| panic!("open_sockets in {line}"));
    assert!(open_sockets >= 1, "the kernel's pinned state lost the held connection: {line}");
    let objects = second.bpf_objects().expect("second daemon's fds");
    let relinked = pins.links().expect("pinned links");
    let ids =
        |links: &[observer_e2e::pins::PinnedLink]| links.iter().map(|l| (l.file.clone(), l.id)).collect::<Vec<_>>();
    assert_eq!(ids(&relinked), ids(&pinned), "the restart made new links instead of reusing the pinned ones");
    for link in &relinked {
        assert!(
            objects.progs.contains(&link.prog_id),
            "{link:?} does not run the second daemon's program: {objects:?}"
        );
    }
    // Exactly one set: no other link runs the second daemon's programs, and the first
    // daemon's programs (swapped out of the links) are gone.
    let running = links_running(&objects.progs).expect("bpftool link list");
    assert_eq!(running.len(), LINKS, "links running the second daemon's programs: {running:?}");
    let old = BpfObjects { progs: first_progs, ..BpfObjects::default() }.left_after_exit().expect("bpftool");
    assert!(old.is_empty(), "the first daemon's programs outlived the restart: {old:?}");

    // The held connection's bytes and closes reach a daemon that never saw it open.
    held.close_stdin();
    let status = held.wait_timeout(Duration::from_secs(10)).expect("wait for the held client");
    assert!(status.is_some_and(|s| s.success()), "held client failed:\n{}", held.logs());
    let run = second.stop_after(DRAIN).expect("second daemon stops");
    run.assert_connections("connections opened while no daemon ran", &want);
    let held_addr = SocketAddr::new(client_ip, held_port);
    let orphans = run.records.filter(|r| endpoint(r, "client") == Some(held_addr));
    assert!(orphans.is_empty(), "a connection opened before the restart was reported (mislabelled): {orphans}");
    let counters = run.stderr.lines().rev().find(|l| l.contains("counters")).expect("a counters line at exit");
    let orphan_closes: u64 = counters
        .split_whitespace()
        .find_map(|f| f.strip_prefix("orphan_closes=")?.parse().ok())
        .unwrap_or_else(|| panic!("orphan_closes in {counters}"));
    assert!(orphan_closes >= 2, "the held connection's closes were not counted as orphans: {counters}");
    assert!(run.stderr.contains("pins kept"), "a clean exit with --pin did not say the pins stay:\n{}", run.stderr);
    assert_eq!(ids(&pins.links().expect("pinned links")), ids(&pinned), "a clean exit with --pin removed links");

    let out = pins.unpin().expect("observer unpin");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "unpin failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.matches("removed link ").count(), LINKS, "{stdout}");
    assert_eq!(stdout.matches("removed map ").count(), 6, "{stdout}");
    assert!(!pins.path().exists(), "unpin left {}: {:?}", pins.path().display(), pins.files());
    let links = relinked.iter().map(|l| l.id).collect();
    let left = BpfObjects { links, ..objects }.left_after_exit().expect("bpftool");
    assert!(left.is_empty(), "still in the kernel after unpin: {left:?}");
    let again = pins.unpin().expect("observer unpin again");
    assert!(again.status.success() && String::from_utf8_lossy(&again.stdout).contains("nothing pinned"));
}

#[test]
fn pin_directories_off_bpffs_with_foreign_files_another_layout_or_cgroup_are_refused() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let plain = TempDir::new("not-bpffs").expect("temp dir");
    let out = observer(&["run", "--pin", plain.path().to_str().expect("utf-8"), "--duration", "1"]);
    assert!(!out.status.success(), "--pin on a plain directory succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not on a BPF filesystem") && stderr.contains("mount -t bpf"), "{stderr}");
    assert!(std::fs::read_dir(plain.path()).expect("list").next().is_none(), "wrote into a plain directory");

    let pins = PinDir::new("foreign").expect("a pin directory on bpffs");
    std::fs::create_dir(pins.path()).expect("create the pin directory");
    let stranger = pins.path().join("stranger");
    let stranger_arg = stranger.to_str().expect("utf-8");
    observer_e2e::cmd::run(
        "bpftool",
        ["map", "create", stranger_arg, "type", "array", "key", "4", "value", "4", "entries", "1", "name", "stranger"],
    )
    .expect("pin a foreign map");
    let out = observer(&["run", "--pin", pins.arg(), "--duration", "1"]);
    assert!(!out.status.success(), "--pin on a directory with a foreign map succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not the observer's") && stderr.contains("stranger"), "{stderr}");
    assert_eq!(pins.files(), ["stranger"], "--pin touched a directory it refused");
    let out = pins.unpin().expect("observer unpin");
    assert!(!out.status.success(), "unpin of a directory with a foreign map succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("stranger"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(pins.files(), ["stranger"], "unpin touched a foreign file");

    // A map of the observer's name but another layout (as an incompatible build would leave).
    let layout = PinDir::new("layout").expect("a pin directory on bpffs");
    std::fs::create_dir(layout.path()).expect("create the pin directory");
    let conns = layout.path().join("CONNS");
    observer_e2e::cmd::run(
        "bpftool",
        [
            "map",
            "create",
            conns.to_str().expect("utf-8"),
            "type",
            "hash",
            "key",
            "8",
            "value",
            "8",
            "entries",
            "16",
            "name",
            "CONNS",
        ],
    )
    .expect("pin a map of another layout");
    let out = observer(&["run", "--pin", layout.arg(), "--duration", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a pinned map of another layout was reused: {stderr}");
    assert!(stderr.contains("has another layout") && stderr.contains("observer unpin"), "{stderr}");
    assert_eq!(layout.files(), ["CONNS"], "the refused start pinned something");

    // A ring buffer of another size (an earlier build pinned 16 MiB) is reused, not refused.
    let ring = PinDir::new("ring").expect("a pin directory on bpffs");
    std::fs::create_dir(ring.path()).expect("create the pin directory");
    let events = ring.path().join("EVENTS");
    let events = events.to_str().expect("utf-8");
    let sixteen_mib = (16u32 << 20).to_string();
    observer_e2e::cmd::run(
        "bpftool",
        [
            "map",
            "create",
            events,
            "type",
            "ringbuf",
            "key",
            "0",
            "value",
            "0",
            "entries",
            &sixteen_mib,
            "name",
            "EVENTS",
        ],
    )
    .expect("pin a ring buffer of another size");
    let out = observer(&["run", "--pin", ring.arg(), "--duration", "1"]);
    assert!(
        out.status.success(),
        "a pinned ring of another size was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ring.files().iter().any(|f| f == "EVENTS") && ring.files().len() > 1, "{:?}", ring.files());
    let out = ring.unpin().expect("observer unpin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // Pins made at one cgroup are not reused by a run attaching at another.
    let elsewhere = PinDir::new("cgroup").expect("a pin directory on bpffs");
    let cgroup = Cgroup::new("pinned").expect("cgroup");
    let cgroup_arg = cgroup.path().to_str().expect("utf-8");
    let out = observer(&["run", "--pin", elsewhere.arg(), "--cgroup", cgroup_arg, "--duration", "1"]);
    assert!(out.status.success(), "pinning at a test cgroup: {}", String::from_utf8_lossy(&out.stderr));
    let out = observer(&["run", "--pin", elsewhere.arg(), "--duration", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pins of another cgroup were reused: {stderr}");
    assert!(stderr.contains("is attached at cgroup id"), "{stderr}");
    let out = elsewhere.unpin().expect("observer unpin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let missing = pins.path().join("never-made");
    let out = observer(&["unpin", missing.to_str().expect("utf-8")]);
    assert!(out.status.success(), "unpin of a missing directory failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing pinned"));
}

/// The port a client printed on its first line.
fn wait_port(client: &Child) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(port) = client.stdout().lines().next().and_then(|l| l.trim().parse().ok()) {
            return port;
        }
        assert!(Instant::now() < deadline, "client printed no port:\n{}", client.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn observer(args: &[&str]) -> std::process::Output {
    std::process::Command::new(observer_e2e::observer::binary()).args(args).output().expect("run observer")
}
