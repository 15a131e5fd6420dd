//! A pin directory for `observer run --pin DIR`, cleaned on drop: `observer unpin DIR`, then
//! whatever is left removed. Under `/sys/fs/bpf` when that is a bpffs; otherwise on a private
//! bpffs instance mounted over a temporary directory (a bpffs mount is its own instance, so
//! nothing else on the machine sees it) and unmounted on drop.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{cmd, observer::binary, tempdir::TempDir};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique, not yet existing pin directory on bpffs.
#[derive(Debug)]
pub struct PinDir {
    dir: PathBuf,
    /// The private bpffs mount (and its temp dir) when /sys/fs/bpf is not a bpffs.
    mount: Option<TempDir>,
}

/// One pinned link: its file name, link id and the id of the program it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PinnedLink {
    pub file: String,
    pub id: u64,
    pub prog_id: u64,
}

impl PinDir {
    /// A fresh directory name on bpffs (created by the observer, not here).
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("obs-e2e-{}-{n}-{label}", std::process::id());
        if is_bpffs(Path::new("/sys/fs/bpf")) {
            return Ok(Self { dir: Path::new("/sys/fs/bpf").join(name), mount: None });
        }
        let mount = TempDir::new("bpffs")?;
        let target = mount.path().to_string_lossy().into_owned();
        cmd::run("mount", ["-t", "bpf", "bpf", &target]).context("mounting a private bpffs")?;
        Ok(Self { dir: mount.join(&name), mount: Some(mount) })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path as an argument.
    pub fn arg(&self) -> &str {
        self.dir.to_str().unwrap_or_default()
    }

    /// File names in the directory, sorted (empty when it does not exist).
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The pinned links (`link_*` files), from `bpftool -j link show pinned FILE`.
    pub fn links(&self) -> anyhow::Result<Vec<PinnedLink>> {
        let mut links = Vec::new();
        for file in self.files().into_iter().filter(|f| f.starts_with("link_")) {
            let path = self.dir.join(&file);
            let shown = path.to_string_lossy().into_owned();
            let out = cmd::run("bpftool", ["-j", "link", "show", "pinned", &shown])?;
            let link: Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("`bpftool -j link show pinned {shown}` printed no JSON"))?;
            let field = |key: &str| link.get(key).and_then(Value::as_u64).unwrap_or(0);
            links.push(PinnedLink { file, id: field("id"), prog_id: field("prog_id") });
        }
        Ok(links)
    }

    /// `observer unpin DIR` (its output whatever the exit status).
    pub fn unpin(&self) -> anyhow::Result<Output> {
        Command::new(binary()).arg("unpin").arg(&self.dir).output().context("cannot run `observer unpin`")
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if self.dir.exists() {
            let _ = self.unpin();
        }
        // What unpin refused (a test's foreign file) or missed: removing a pin unpins it.
        if self.dir.exists() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some(mount) = &self.mount {
            let _ = Command::new("umount").arg(mount.path()).output();
        }
    }
}

/// Every cgroup link in the kernel whose program is one of `progs`, as `link ID -> prog ID`.
pub fn links_running(progs: &[u64]) -> anyhow::Result<Vec<String>> {
    let out = cmd::run("bpftool", ["-j", "link", "list"])?;
    let list: Value = serde_json::from_slice(&out.stdout).context("`bpftool -j link list` printed no JSON")?;
    let Some(list) = list.as_array() else { bail!("`bpftool -j link list` printed no array") };
    Ok(list
        .iter()
        .filter_map(|link| {
            let prog = link.get("prog_id").and_then(Value::as_u64)?;
            let id = link.get("id").and_then(Value::as_u64)?;
            progs.contains(&prog).then(|| format!("link {id} -> prog {prog}"))
        })
        .collect())
}

/// Removes pin directories of crashed runs (dead owner PIDs): under /sys/fs/bpf, and the
/// private bpffs mounts over `obs-e2e-<pid>-<n>-bpffs` temp dirs, unmounted so that the temp-dir
/// sweep can remove them. Removing a pin unpins it: their programs detach. Returns what went.
pub(crate) fn cleanup_stale_pins() -> Vec<String> {
    use crate::{netns, tempdir::TEMP_PREFIX};
    let mut removed = Vec::new();
    let stale = |name: &str| netns::owner_pid(name, TEMP_PREFIX).is_some_and(|pid| !netns::alive(pid));
    if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf") {
        for entry in entries.flatten() {
            if stale(&entry.file_name().to_string_lossy()) && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed.push(entry.path().display().to_string());
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("-bpffs") && stale(&name) && is_bpffs(&entry.path()) {
                for pins in std::fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_dir_all(pins.path());
                }
                if Command::new("umount").arg(entry.path()).status().is_ok_and(|s| s.success()) {
                    removed.push(entry.path().display().to_string());
                }
            }
        }
    }
    removed
}

fn is_bpffs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c_path is NUL-terminated; stat points at writable memory of the right size.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    // SAFETY: zero-initialised above, and filled by statfs when it returned 0.
    #[expect(clippy::unnecessary_cast, reason = "f_type is i64 here but a different type on other architectures")]
    let f_type = unsafe { stat.assume_init() }.f_type as i64;
    rc == 0 && f_type == BPF_FS_MAGIC
}
