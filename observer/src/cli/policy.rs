//! `--policy PATH` (repeatable), shared by `run` and `replay`: load and validate before anything
//! privileged happens, reload on change in the background, keep the last good policy on error.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use crate::policy::{FileSource, LoadErrors, PolicyStore};

/// How often policy files are checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

#[derive(clap::Args, Debug, Default, Clone)]
pub struct PolicyArgs {
    /// Policy and inventory: a YAML file or a directory of Kubernetes manifests (Pods, Services,
    /// PeerAuthentication, DestinationRule, Gateway, VirtualService, Expectation). Repeatable.
    /// Without it, the embedded default policy applies.
    #[arg(long = "policy", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Every error of a policy that failed to load, one per line with file:line.
#[derive(Debug, thiserror::Error)]
#[error("the policy has {} error(s):\n{errors}", errors.0.len())]
pub struct PolicyRejected {
    pub errors: LoadErrors,
}

/// The policy in force and, for files, the thread that reloads it.
pub struct LoadedPolicy {
    pub store: Arc<PolicyStore>,
    watcher: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl PolicyArgs {
    /// Load the files (all errors at once), or the embedded default without `--policy`.
    pub fn load(&self) -> Result<LoadedPolicy, PolicyRejected> {
        if self.paths.is_empty() {
            return Ok(LoadedPolicy { store: Arc::new(PolicyStore::embedded_default()), watcher: None });
        }
        let (mut source, snapshot) =
            FileSource::open(self.paths.clone()).map_err(|errors| PolicyRejected { errors })?;
        let store = Arc::new(PolicyStore::new(snapshot));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || store.watch(&mut source, RELOAD_INTERVAL, &stop))
        };
        Ok(LoadedPolicy { store, watcher: Some((stop, handle)) })
    }
}

impl Drop for LoadedPolicy {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.watcher.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = handle.join();
        }
    }
}
