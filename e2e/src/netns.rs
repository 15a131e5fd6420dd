//! Network namespaces owned by the harness: unique names, removed on drop together with every
//! process still inside them, and a sweep for the leftovers of crashed runs.

use std::{
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use crate::cmd;

/// Prefix of every namespace the harness creates: `obs-<pid>-<n>-<role>`.
pub const NETNS_PREFIX: &str = "obs-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace the harness created. Dropping it kills the processes left inside (all of
/// them were started by the harness: nobody else knows the name) and deletes it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `obs-<pid>-<n>-<role>` with `lo` up.
    pub fn new(role: &str) -> anyhow::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NETNS_PREFIX}{}-{n}-{role}", std::process::id());
        cmd::ip(&["netns", "add", &name])?;
        let ns = Self { name };
        cmd::ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The name to pass to `ip netns exec` / `ip -n`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> args...`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        cmd::ip(&full).map(drop)
    }

    /// Runs a command inside the namespace (as root) to completion; returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let output = cmd::in_ns(&self.name, program, args)?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// PIDs of the processes inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

fn pids_in(name: &str) -> Vec<u32> {
    cmd::ip(&["netns", "pids", name])
        .map(|out| String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

/// Kills what is left in namespace `name` (SIGTERM, then SIGKILL after 1 s) and deletes it.
fn remove(name: &str) {
    let pids = pids_in(name);
    for &pid in &pids {
        signal(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !pids_in(name).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids_in(name) {
        signal(pid, libc::SIGKILL);
    }
    if let Err(error) = cmd::ip(&["netns", "del", name]) {
        eprintln!("warning: {error:#}");
    }
}

/// Sends `sig` to one process by PID.
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; a stale PID yields ESRCH.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// The names of the harness's namespaces currently present.
pub fn list_ours() -> Vec<String> {
    cmd::ip(&["netns", "list"])
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|line| line.split_whitespace().next())
                .filter(|name| name.starts_with(NETNS_PREFIX))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The PID embedded in a harness name (`obs-<pid>-...` or `obs-e2e-<pid>-...`).
pub(crate) fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

pub(crate) fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the namespaces left by earlier harness runs that crashed (killed before their
/// destructors ran): only names with the harness prefix whose creating process is gone.
pub(crate) fn cleanup_stale_namespaces() -> Vec<String> {
    let mut removed = Vec::new();
    for name in list_ours() {
        if owner_pid(&name, NETNS_PREFIX).is_some_and(|pid| !alive(pid)) {
            remove(&name);
            removed.push(name);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tempdir::TEMP_PREFIX;

    #[test]
    fn owner_pid_is_read_from_our_names_only() {
        assert_eq!(owner_pid("obs-4242-3-pod-a", NETNS_PREFIX), Some(4242));
        assert_eq!(owner_pid("obs-e2e-77-0-pki", TEMP_PREFIX), Some(77));
        assert_eq!(owner_pid("cni-1234", NETNS_PREFIX), None);
        assert_eq!(owner_pid("obs-demo", NETNS_PREFIX), None);
    }
}
