//! Least privilege, end to end: the observer starts with exactly the chart's capability set (as
//! every live test does), each of those capabilities is necessary (without one it refuses to
//! start with one line naming it), and once attached every thread of the daemon holds only
//! what docs/DEPLOY.md says it keeps, while connections are still reported and everything is
//! detached at exit.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use observer_e2e::{
    DRAIN, ExpectedConn, ObserverProcess, Privileges, RUN_CAP, Topology,
    peers::{Curl, HttpServer},
    privileges::{chart_capabilities, mask},
    require_root, serial,
};

const HTTP_PORT: u16 = 18391;
const CAP_BPF: u32 = 39;

/// What docs/DEPLOY.md says the daemon keeps after attach: nothing, except CAP_BPF on kernels
/// before 6.5 that refuse unprivileged bpf(2) (`kernel.unprivileged_bpf_disabled` not 0).
fn documented_kept() -> u64 {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    let mut numbers = release.trim().split(['.', '-']).map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let disabled =
        std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled").map(|v| v.trim() != "0").unwrap_or(true);
    if version < (6, 5) && disabled { 1 << CAP_BPF } else { 0 }
}

/// Every thread's capability sets, from `/proc/PID/task/TID/status`: (tid, field, value).
fn thread_capabilities(pid: u32) -> Vec<(String, String, u64)> {
    let mut found = Vec::new();
    let dir = format!("/proc/{pid}/task");
    for task in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")).flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else { continue };
        for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs"] {
            let value = status
                .lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .unwrap_or_else(|| panic!("{field} missing from {tid}'s status"))
                .trim();
            let radix = if field == "NoNewPrivs" { 10 } else { 16 };
            found.push((tid.clone(), field.to_owned(), u64::from_str_radix(value, radix).expect("a number")));
        }
    }
    found
}

#[test]
fn once_attached_every_thread_holds_only_the_documented_capabilities_and_capture_goes_on() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let chart = mask(&chart_capabilities().expect("chart")).expect("known capabilities");
    let kept = documented_kept();
    let observer = ObserverProcess::start(RUN_CAP).expect("observer attaches under the chart's set");
    let objects = observer.bpf_objects().expect("its BPF objects");
    let caps = thread_capabilities(observer.pid());
    assert!(!caps.is_empty());
    for (tid, field, value) in &caps {
        let want = match field.as_str() {
            "CapPrm" | "CapEff" => kept,
            // Reducing the bounding set needs CAP_SETPCAP, which the chart does not grant;
            // no_new_privs keeps an execve from regaining any of it.
            "CapBnd" => chart,
            "NoNewPrivs" => 1,
            _ => 0,
        };
        assert_eq!(*value, want, "thread {tid} {field} is {value:016x}, documented {want:016x}");
    }
    let line = observer.wait_for_log("capabilities after attach", 0, Duration::from_secs(1)).expect("logged");
    let shown = if kept == 0 { "effective=none" } else { "effective=CAP_BPF" };
    assert!(line.contains(shown) && line.contains("no_new_privs=true"), "{line}");

    // Without its capabilities the daemon still follows connections.
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let http = HttpServer::start(b.ns(), HTTP_PORT).expect("http server");
    let curl = Curl::http(a.ns(), IpAddr::V4(b.ipv4()), HTTP_PORT).run().expect("curl");
    assert_eq!(curl.http_code, 200, "{curl}");
    let run = observer.stop_after(DRAIN).expect("observer stops");
    let server = SocketAddr::new(IpAddr::V4(b.ipv4()), HTTP_PORT);
    let mut want =
        ExpectedConn::both("after the drop", IpAddr::V4(a.ipv4()), curl.pid(), "curl", server, http.pid(), "python3")
            .field("/security", "plaintext");
    want.client_port = curl.local.map(|l| l.port());
    run.assert_connections("capture after dropping capabilities", &[want]);
    // Detaching at exit needs no capability either: closing the links does it.
    assert_eq!(objects.left_after_exit().expect("bpftool"), Vec::<String>::new(), "left in the kernel");
}

#[test]
fn as_full_root_the_bounding_set_is_reduced_too() {
    let _serial = serial();
    if !require_root() {
        return;
    }
    let kept = documented_kept();
    let observer = ObserverProcess::start_as(&Privileges::Unrestricted, RUN_CAP, &[], &[]).expect("attaches");
    for (tid, field, value) in thread_capabilities(observer.pid()) {
        let want = match field.as_str() {
            "CapPrm" | "CapEff" | "CapBnd" => kept,
            "NoNewPrivs" => 1,
            _ => 0,
        };
        assert_eq!(value, want, "thread {tid} {field} is {value:016x}, want {want:016x}");
    }
    let run = observer.stop_after(Duration::ZERO).expect("observer stops");
    run.expect_clean_exit().expect("clean exit");
}

#[test]
fn without_any_one_of_the_charts_capabilities_it_refuses_with_one_line_naming_it() {
    if !require_root() {
        return;
    }
    let bin = observer_e2e::observer::binary();
    assert!(bin.exists(), "observer binary {} not built", bin.display());
    for missing in chart_capabilities().expect("chart") {
        let out = Privileges::chart_without(&missing)
            .command(&bin)
            .args(["run", "--duration", "1"])
            .output()
            .expect("run observer");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!out.status.success(), "started without CAP_{missing}: {stderr}");
        assert_eq!(lines.len(), 1, "without CAP_{missing}, expected a one-line error, got:\n{stderr}");
        assert!(lines[0].contains(&format!("missing CAP_{missing}")), "without CAP_{missing}: {}", lines[0]);
        assert!(out.stdout.is_empty(), "printed records without CAP_{missing}");
    }
}
