//! A temporary directory removed on drop (std only, so the harness stays light).

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::Context;

/// Prefix of every temporary directory; `cleanup_stale` removes those of dead processes.
pub const TEMP_PREFIX: &str = "obs-e2e-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory under the system temp dir, world-readable (HAProxy runs as uid 1337 and reads
/// certificates from it), removed with its contents on drop unless `OBS_E2E_KEEP=1`.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `/tmp/obs-e2e-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{TEMP_PREFIX}{}-{n}-{label}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(name)`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a file (world-readable) and returns its path.
    pub fn write(&self, name: &str, contents: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot chmod {}", path.display()))?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var("OBS_E2E_KEEP").is_ok_and(|v| v == "1") {
            eprintln!("kept {}", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}
