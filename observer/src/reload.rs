//! Live reload: a [`ConfigSource`] says when the policy changed, and a [`PolicyStore`] swaps in
//! the new snapshot only when it loaded cleanly: a broken file is reported (every error, with
//! file:line) and the last good policy stays in force. [`FileSource`] polls file mtimes and
//! sizes; the Kubernetes API source (`crate::cluster::KubeSource`) implements the same trait.

use std::{
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use observer_mesh::{Mesh, load::LoadErrors, load_paths, manifest::manifest_files};

/// Where policy and inventory come from.
pub trait ConfigSource {
    /// A new snapshot if the source changed since the last call (the first call always loads),
    /// `Ok(None)` if it did not, or every error of the changed input.
    fn poll(&mut self) -> Result<Option<Mesh>, LoadErrors>;
}

/// What identifies a version of a file without reading it.
type Stamp = (PathBuf, Option<SystemTime>, u64);

/// `--policy PATH...`: files and directories, re-read when a file's mtime or size changes or
/// files appear or disappear.
#[derive(Debug)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    stamps: Option<Vec<Stamp>>,
}

impl FileSource {
    /// A source whose first poll loads.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self { paths, stamps: None }
    }

    /// Loads the paths once (for startup: reject bad configuration before anything
    /// privileged happens) and returns a source whose polls report later changes only.
    pub fn open(paths: Vec<PathBuf>) -> Result<(Self, Mesh), LoadErrors> {
        let mut source = Self::new(paths);
        let stamps = source.stamps();
        let snapshot = load_paths(&source.paths)?;
        source.stamps = Some(stamps);
        Ok((source, snapshot))
    }

    fn stamps(&self) -> Vec<Stamp> {
        let mut stamps = Vec::new();
        for path in &self.paths {
            let files = manifest_files(path).unwrap_or_else(|_| vec![path.clone()]);
            for file in files {
                let meta = std::fs::metadata(&file).ok();
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                stamps.push((file, modified, meta.map_or(u64::MAX, |m| m.len())));
            }
        }
        stamps
    }
}

impl ConfigSource for FileSource {
    fn poll(&mut self) -> Result<Option<Mesh>, LoadErrors> {
        let stamps = self.stamps();
        if self.stamps.as_ref() == Some(&stamps) {
            return Ok(None);
        }
        // Remember the stamps even when loading fails: a broken file is reported once, not at
        // every poll, and retried when it changes again.
        self.stamps = Some(stamps);
        load_paths(&self.paths).map(Some)
    }
}

/// The outcome of one reload attempt.
#[derive(Debug)]
pub enum ReloadOutcome {
    Unchanged,
    Reloaded,
    /// The new input is broken; the previous snapshot stays.
    Rejected(LoadErrors),
}

/// The policy in force, shared between the pipeline and the reloader.
#[derive(Debug)]
pub struct PolicyStore {
    current: RwLock<Arc<Mesh>>,
    /// Reloads applied and rejected (for the metrics).
    reloads: [AtomicU64; 2],
}

impl PolicyStore {
    pub fn new(snapshot: Mesh) -> Self {
        Self { current: RwLock::new(Arc::new(snapshot)), reloads: Default::default() }
    }

    /// The embedded default policy and an empty inventory.
    pub fn embedded_default() -> Self {
        Self::new(Mesh::default())
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<Mesh> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Polls the source once; swaps in a clean new snapshot, keeps the old one otherwise.
    pub fn reload_from(&self, source: &mut dyn ConfigSource) -> ReloadOutcome {
        match source.poll() {
            Ok(None) => ReloadOutcome::Unchanged,
            Ok(Some(snapshot)) => {
                let snapshot = Arc::new(snapshot);
                match self.current.write() {
                    Ok(mut guard) => *guard = snapshot,
                    Err(poisoned) => *poisoned.into_inner() = snapshot,
                }
                self.reloads[0].fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Reloaded
            }
            Err(errors) => {
                self.reloads[1].fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Rejected(errors)
            }
        }
    }

    /// Reloads (applied, rejected) since start, the first load not included.
    pub fn reload_counts(&self) -> (u64, u64) {
        (self.reloads[0].load(Ordering::Relaxed), self.reloads[1].load(Ordering::Relaxed))
    }

    /// Polls `source` every `interval` until `stop` is set, logging reloads and rejections.
    /// Meant for a thread of its own (`std::thread::spawn`); it parks between polls, so whoever
    /// sets `stop` unparks it and need not wait out the interval.
    pub fn watch(&self, source: &mut dyn ConfigSource, interval: Duration, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match self.reload_from(source) {
                ReloadOutcome::Unchanged => {}
                ReloadOutcome::Reloaded => tracing::info!("policy reloaded"),
                ReloadOutcome::Rejected(errors) => {
                    for error in &errors.0 {
                        tracing::error!("{error}");
                    }
                    tracing::error!("policy rejected ({} errors); the last good policy stays in force", errors.0.len());
                }
            }
            let deadline = std::time::Instant::now() + interval;
            while !stop.load(Ordering::Relaxed) {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                std::thread::park_timeout(left);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use observer_mesh::{manifest::Labels, policy::MtlsMode};

    use super::*;

    #[test]
    fn reload_keeps_the_last_good_policy() {
        let dir = std::env::temp_dir().join(format!("observer-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("pa.yaml");
        let good = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: strict, namespace: prod}\nspec: {mtls: {mode: STRICT}}\n";
        std::fs::write(&file, good).unwrap_or_else(|e| panic!("{e}"));
        let (mut source, mesh) = FileSource::open(vec![dir.clone()]).unwrap_or_else(|e| panic!("{e}"));
        let store = PolicyStore::new(mesh);
        assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged));
        std::fs::write(&file, good.replace("STRICT", "STRICTER")).unwrap_or_else(|e| panic!("{e}"));
        match store.reload_from(&mut source) {
            ReloadOutcome::Rejected(errors) => {
                assert!(errors.to_string().contains("pa.yaml:4"), "{errors}")
            }
            other => panic!("broken file accepted: {other:?}"),
        }
        assert_eq!(store.current().policy.workload_mtls("prod", &Labels::new(), None).mode, MtlsMode::Strict);
        // Broken files are reported once, not at every poll.
        assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged));
        std::fs::write(&file, good.replace("STRICT", "DISABLE")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Reloaded));
        assert_eq!(store.current().policy.workload_mtls("prod", &Labels::new(), None).mode, MtlsMode::Disable);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
