//! A cgroup v2 directory owned by the harness (`obs-<pid>-<n>-<label>` under the cgroup2
//! mount), to run some peers inside and point `observer run --cgroup` at it: then only one end
//! of a connection is in scope, which is how `observed_at: client|server` can be tested on one
//! machine. Removed on drop; `cleanup_stale` sweeps those of crashed runs.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, bail};

use crate::netns::NETNS_PREFIX;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The first cgroup2 mount point (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a hybrid
/// hierarchy), read from /proc/self/mounts. Call it from the root namespace.
pub fn cgroup2_root() -> anyhow::Result<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    mounts
        .lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, path, kind) = (fields.next(), fields.next()?, fields.next()?);
            (kind == "cgroup2").then(|| PathBuf::from(path))
        })
        .context("no cgroup2 mount")
}

/// A child cgroup of the cgroup2 root.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    root: PathBuf,
}

impl Cgroup {
    /// Creates `<cgroup2 root>/obs-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let root = cgroup2_root()?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = root.join(format!("{NETNS_PREFIX}{}-{n}-{label}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("cannot create cgroup {}", path.display()))?;
        Ok(Self { path, root })
    }

    /// Its directory (what `--cgroup` takes).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves a process (all of it) into this cgroup.
    pub fn add(&self, pid: u32) -> anyhow::Result<()> {
        let procs = self.path.join("cgroup.procs");
        fs::write(&procs, pid.to_string()).with_context(|| format!("cannot move {pid} into {}", self.path.display()))
    }

    /// PIDs inside.
    pub fn pids(&self) -> Vec<u32> {
        pids_of(&self.path)
    }
}

fn pids_of(path: &Path) -> Vec<u32> {
    fs::read_to_string(path.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Moves what is left back to the root cgroup, then removes the directory.
fn remove(path: &Path, root: &Path) -> anyhow::Result<()> {
    for pid in pids_of(path) {
        let _ = fs::write(root.join("cgroup.procs"), pid.to_string());
    }
    fs::remove_dir(path).with_context(|| format!("cannot remove cgroup {}", path.display()))?;
    if path.exists() {
        bail!("cgroup {} still exists", path.display());
    }
    Ok(())
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(error) = remove(&self.path, &self.root) {
            eprintln!("warning: {error:#}");
        }
    }
}

/// Removes the harness's cgroups whose creating process is gone; returns their paths.
pub fn cleanup_stale_cgroups(alive: impl Fn(u32) -> bool) -> Vec<PathBuf> {
    let Ok(root) = cgroup2_root() else { return Vec::new() };
    let Ok(entries) = fs::read_dir(&root) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = name.strip_prefix(NETNS_PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse().ok());
        if owner.is_some_and(|pid| !alive(pid)) && remove(&entry.path(), &root).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}
