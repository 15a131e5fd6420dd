//! End-to-end harness for the observer: network namespaces as pods, real TLS peers from Debian
//! (openssl, curl, python3, HAProxy), an Istio-like mesh, and the live `observer run` process.
//!
//! Everything here creates only namespaces named `obs-<pid>-<n>-<role>` and processes inside them,
//! and removes both on drop, so a test that panics still cleans up. Traffic stays on loopback or
//! inside those namespaces. Tests that need root call [`require_root`] first and return early
//! when it says no.
//!
//! # Parts
//! - [`Topology`]: `Topology::builder().pod("a").pod("b").mtu(576).build()?` — a `node` namespace
//!   with a bridge, one namespace per pod (`eth0` on 10.88.X.0/24 and fd00:88:0:X::/64, `lo` up).
//!   `pod("a").ns()`, `.ipv4()`, `.ipv6()?`, `.ip(v6)?`, `.split_loopback(mtu)?`. Below MTU 1500
//!   every skb carries one segment (GSO off), so a small MTU really splits a ClientHello.
//! - [`Spawn`] / [`Child`]: `Spawn::new(ns, "prog").args(..).user(uid, gid).stdin(..).start()?`
//!   (killed by PID on drop; `pid()`, `logs()`, `wait_listening(port)?`) or `.run()?` to completion
//!   ([`ClientRun`]: `pid`, `code`, `stdout`, `stderr`).
//! - [`peers`]: `HttpServer::start(ns, port)?`, `TlsServer::start(ns, port, &leaf, ca, version,
//!   auth)?`, `Curl::http(ns, ip, port).run()?` (HTTP status and its own socket address),
//!   `SClient::new(ns, ip, port).servername(..).cert(&leaf).version(..).alpn(..).run()?`,
//!   `padding_alpn(bytes)` for big ClientHellos.
//! - [`Pki`]: `Pki::new()?.issue(name, KeyType::Rsa2048, &[dns..], Some(&spiffe_id(ns, sa)))?`.
//! - [`Mesh`]: `Mesh::builder().pod("pod-a", Sidecar::Strict).pod("legacy", Sidecar::None)
//!   .tls12_only(..).build()?` — HAProxy sidecars as uid 1337 behind Istio's iptables rules, an
//!   HTTP app per pod, and `manifests_dir()` with Pod/Service/PeerAuthentication YAML for `--policy`.
//! - [`postgres::Postgres`]: a real PostgreSQL (initdb, `ssl = on`, trust) and
//!   [`postgres::psql`] with an `sslmode`, for in-protocol upgrades.
//! - [`ObserverProcess`]: `start(cap)?` / `start_with(cap, &["--policy", dir])?` from the root
//!   namespace under the chart's capability set (`setpriv`, [`Privileges::chart`]; `start_as`
//!   for another set), waits for `observer attached`; while it runs `records_so_far()`,
//!   `wait_for_records(..)`, `wait_for_log(needle, skip, timeout)?`, `bpf_objects()?` (its own
//!   prog/link/map ids); then `stop_after(grace)?` (SIGINT), `signal_after(SIGTERM, grace)?` or
//!   `finish(timeout)?` give an [`observer::ObserverRun`] (`records`, `stderr`,
//!   `expect_clean_exit()`, `assert_passed(what, checks)`).
//! - [`prometheus::Prometheus`]: `Prometheus::start(&dir, &[metrics ports])?` scraping observers
//!   every second, `query(promql)`, `wait_for(promql, value, timeout)`, `url()`.
//! - [`Records`] filters (`between`, `to_server`, `involving`, `with_pid`) and [`ExpectedConn`] +
//!   [`check_connections`] + [`Checks`]: each connection reported exactly once, with ends,
//!   processes, side, well-formed `time`/`node`/`conn_id`, and any JSON-pointer fields; every
//!   failure collected, records shown.
//! - [`Mesh`] ingress gateways: `.ingress_gateway("gw", "pod-b")` (HAProxy on 443, SIMPLE TLS
//!   with `gateway_host(name)`, Istio mTLS upstream; Pod/Service/Gateway manifests), `gateway(name)`.
//! - [`Mesh`] also rewrites policy live: `set_peer_authentication(pod, Sidecar::Permissive)?`,
//!   `write_manifest(file, yaml)?`.
//! - [`pins::PinDir`]: a unique `observer run --pin` directory on bpffs (a private bpffs mount
//!   when /sys/fs/bpf is none), `unpin()`ed and removed on drop; `links()?` reads its pinned links.
//! - [`tcpdump::payload_lengths`] to see the segments; [`observer::BpfObjects::still_loaded`]
//!   to see what the observer left in the kernel; [`cleanup_stale`] for crashed runs' leftovers
//!   (also run once by the first [`require_root`] call as root).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use observer_e2e::{require_root, Topology, peers};
//! if !require_root() { return Ok(()); }
//! let topo = Topology::builder().pod("a").pod("b").build()?;
//! let server = peers::HttpServer::start(topo.pod("b").ns(), 8080)?;
//! let run = peers::Curl::http(topo.pod("a").ns(), topo.pod("b").ipv4().into(), 8080).run()?;
//! assert_eq!(run.http_code, 200);
//! # drop(server); Ok(()) }
//! ```

pub mod cgroup;
pub mod cmd;
pub mod expect;
pub mod mesh;
pub mod netns;
pub mod observer;
pub mod peers;
pub mod pins;
pub mod pki;
pub mod postgres;
pub mod privileges;
pub mod process;
pub mod prometheus;
pub mod records;
pub mod tcpdump;
pub mod telemetry;
pub mod tempdir;
pub mod topology;

use std::{
    path::PathBuf,
    sync::{Mutex, MutexGuard},
};

pub use expect::{ExpectedConn, check_connections};
pub use mesh::{Mesh, MeshPod, Sidecar};
pub use netns::Netns;
pub use observer::{DRAIN, ObserverProcess, RUN_CAP};
pub use pki::{KeyType, Leaf, Pki};
pub use privileges::Privileges;
pub use process::{Child, ClientRun, Spawn, wait_for_tcp_listen};
pub use records::{Checks, Records};
pub use tempdir::TempDir;
pub use topology::{Pod, Topology, TopologyBuilder};

/// Removes namespaces, pin directories, cgroups and temp dirs left by earlier harness runs that
/// crashed (killed before their destructors ran). Only names with the harness prefix whose
/// creating process is gone are touched, so concurrent runs (another test binary, `cargo xtask
/// demo`) are left alone. Returns the namespaces, pin directories and cgroups removed.
pub fn cleanup_stale() -> Vec<String> {
    let mut removed = netns::cleanup_stale_namespaces();
    // Before the temp dirs: a private bpffs mounted over one must be unmounted first.
    removed.extend(pins::cleanup_stale_pins());
    removed.extend(cgroup::cleanup_stale_cgroups(netns::alive).into_iter().map(|p| p.display().to_string()));
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if netns::owner_pid(&name, tempdir::TEMP_PREFIX).is_some_and(|pid| !netns::alive(pid)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    removed
}

/// Whether this process runs as root; the first call as root also runs [`cleanup_stale`]. When
/// not root, prints `skipped: <why>` (visible with
/// `--nocapture`, and in CI logs) so that a green run without root is not mistaken for coverage.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 {
        // Once per test binary: sweep what crashed earlier runs left (only dead owners' names).
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(|| {
            let removed = cleanup_stale();
            if !removed.is_empty() {
                eprintln!("removed stale namespaces of crashed runs: {removed:?}");
            }
        });
        true
    } else {
        println!("skipped: needs root (network namespaces, eBPF); euid is {euid}");
        eprintln!("skipped: needs root (network namespaces, eBPF); euid is {euid}");
        false
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

static SERIAL: Mutex<()> = Mutex::new(());

/// A process-wide lock for tests that must not overlap (each live observer sees every
/// connection on the machine, and two at once double the CPU load on a small machine).
/// A test that panicked while holding it does not poison the others.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
