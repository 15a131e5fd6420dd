//! [`KubeSource`]: the watchers on a thread of their own, and a [`ConfigSource`] over what they
//! know. The first snapshot waits for every resource to be listed once (a partial one would
//! raise false deviations); later ones are built when a poll finds the objects changed, so the
//! [`PolicyStore`](crate::reload::PolicyStore)'s poll interval is the debounce: a burst of pod
//! churn costs one rebuild per interval.

use std::{sync::Arc, thread::JoinHandle, time::Duration};

use kube::Client;

use super::{
    KubeError,
    resources::{Resource, Scope},
    watch::{Shared, watch},
};
use observer_mesh::{Mesh, load::LoadErrors};

use crate::reload::ConfigSource;

/// What [`KubeSource::open`] needs.
#[derive(Clone)]
pub struct KubeOptions {
    pub scope: Scope,
    /// How to reach the API; `None`: the pod's service account in a cluster, else the kubeconfig
    /// (kube-rs' `Config::infer`).
    pub config: Option<kube::Config>,
    /// How long start-up waits for the first full list of every resource.
    pub sync_timeout: Duration,
}

/// Policy and inventory from the Kubernetes API.
pub struct KubeSource {
    shared: Arc<Shared>,
    /// The generation of the objects the last snapshot (or rejection) was built from.
    built: Option<u64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KubeSource {
    /// Starts the watchers, waits for the first full list of every resource and builds the first
    /// snapshot; fails if the API cannot be reached in time or an object is invalid (every error
    /// at once), before anything privileged happens.
    pub fn open(options: KubeOptions) -> Result<(Self, Mesh), KubeError> {
        let mut source = Self::start(options.config, options.scope)?;
        let snapshot = source.first_snapshot(options.sync_timeout)?;
        Ok((source, snapshot))
    }

    /// Starts the watchers on their own thread and runtime.
    pub fn start(config: Option<kube::Config>, scope: Scope) -> Result<Self, KubeError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(KubeError::Runtime)?;
        let client = runtime.block_on(async {
            let config = match config {
                Some(config) => config,
                None => kube::Config::infer().await.map_err(KubeError::Config)?,
            };
            Client::try_from(config).map_err(KubeError::Client)
        })?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("kube-watch".to_owned())
                .spawn(move || {
                    runtime.block_on(async move {
                        for resource in Resource::ALL {
                            tokio::spawn(watch(client.clone(), scope.clone(), resource, Arc::clone(&shared)));
                        }
                        // Until the source is dropped; the watchers end with the runtime.
                        let _ = stopped.await;
                    });
                })
                .map_err(KubeError::Runtime)?
        };
        Ok(Self { shared, built: None, stop: Some(stop), thread: Some(thread) })
    }

    /// Waits for every resource to be listed once, then builds the snapshot.
    pub fn first_snapshot(&mut self, timeout: Duration) -> Result<Mesh, KubeError> {
        let state = self.shared.wait_until(timeout, |state| state.all_synced());
        if !state.all_synced() {
            let pending = Resource::ALL.iter().filter(|r| !state.synced.contains(r)).map(|r| r.name()).collect();
            return Err(KubeError::SyncTimeout { timeout, pending, last_error: state.last_error.clone() });
        }
        self.built = Some(state.generation);
        state.objects.snapshot().map_err(|errors| KubeError::Rejected { errors })
    }

    /// Watch failures by resource since this source started.
    pub fn errors(&self) -> Vec<(Resource, u64)> {
        self.shared.lock().errors.iter().map(|(r, n)| (*r, *n)).collect()
    }

    /// The Istio CRDs the API does not serve.
    pub fn absent(&self) -> Vec<Resource> {
        self.shared.lock().absent.iter().copied().collect()
    }
}

impl ConfigSource for KubeSource {
    fn poll(&mut self) -> Result<Option<Mesh>, LoadErrors> {
        let state = self.shared.lock();
        if !state.all_synced() || self.built == Some(state.generation) {
            return Ok(None);
        }
        // Remember the generation even when it is rejected: the errors are reported once, and
        // the next change (perhaps the fix) is tried again.
        self.built = Some(state.generation);
        state.objects.snapshot().map(Some)
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource").field("built", &self.built).finish_non_exhaustive()
    }
}
