//! `--policy PATH` (repeatable), shared by `run` and `replay`: load and validate before anything
//! privileged happens, reload on change in the background, keep the last good policy on error.
//! `run` also reads policy and inventory from the Kubernetes API ([`KubeArgs`]).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use observer_mesh::{Mesh, load::LoadErrors};

use crate::{
    cluster::{KubeError, KubeOptions, KubeSource, Scope},
    reload::{ConfigSource, FileSource, PolicyStore},
};

/// How often policy files are checked for changes.
const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// How often the Kubernetes objects are checked for changes: at most one rebuild per interval
/// however fast objects change (the debounce).
const KUBE_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Set in every pod by Kubernetes: the observer runs in a cluster.
const IN_CLUSTER_ENV: &str = "KUBERNETES_SERVICE_HOST";

#[derive(clap::Args, Debug, Default, Clone)]
pub struct PolicyArgs {
    /// Policy and inventory: a YAML file or a directory of Kubernetes manifests (Pods, Services,
    /// PeerAuthentication, DestinationRule, Gateway, VirtualService, Expectation). Repeatable.
    /// Without it the embedded default policy applies (`observer run` in a cluster reads the
    /// Kubernetes API instead, see --kubernetes).
    #[arg(long = "policy", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Every error of a policy that failed to load, one per line with file:line.
#[derive(Debug, thiserror::Error)]
#[error("the policy has {} error(s):\n{errors}", errors.0.len())]
pub struct PolicyRejected {
    pub errors: LoadErrors,
}

/// `observer run`'s Kubernetes API source.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct KubeArgs {
    /// Read policy and inventory from the Kubernetes API: this node's Pods, Services, Namespaces,
    /// the `istio` ConfigMap and Istio's PeerAuthentication, DestinationRule, Gateway and
    /// VirtualService (absent CRDs are empty). On by default in a cluster
    /// (KUBERNETES_SERVICE_HOST set) when no --policy is given.
    #[arg(long, conflicts_with = "paths")]
    pub kubernetes: bool,
    /// The node whose pods are watched (default: NODE_NAME, from the downward API).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Istio's root namespace, holding the `istio` ConfigMap with the mesh settings.
    #[arg(long, value_name = "NAMESPACE", default_value = "istio-system")]
    pub istio_namespace: String,
    /// How long start-up waits for the first full list of every resource, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub kube_sync_timeout: u64,
}

/// Why the policy could not be loaded at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StartupPolicyError {
    #[error(transparent)]
    Files(#[from] PolicyRejected),
    #[error(transparent)]
    Kubernetes(#[from] KubeError),
}

impl KubeArgs {
    /// The Kubernetes API is the source: asked for, or running in a cluster without `--policy`.
    pub fn wanted(&self, policy: &PolicyArgs) -> bool {
        self.wanted_in(policy, std::env::var_os(IN_CLUSTER_ENV).is_some())
    }

    fn wanted_in(&self, policy: &PolicyArgs, in_cluster: bool) -> bool {
        self.kubernetes || (policy.paths.is_empty() && in_cluster)
    }

    /// Loads from the Kubernetes API when [`wanted`](Self::wanted), else as `policy` says.
    pub fn load(&self, policy: &PolicyArgs) -> Result<LoadedPolicy, StartupPolicyError> {
        if !self.wanted(policy) {
            return Ok(policy.load()?);
        }
        let node = self
            .node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok())
            .filter(|n| !n.is_empty())
            .ok_or(KubeError::NoNodeName)?;
        let options = KubeOptions {
            scope: Scope { node: node.clone(), istio_namespace: self.istio_namespace.clone() },
            config: None,
            sync_timeout: Duration::from_secs(self.kube_sync_timeout),
        };
        let (source, snapshot) = KubeSource::open(options)?;
        tracing::info!(
            node = %node,
            pods = snapshot.inventory.pods().len(),
            absent = ?source.absent().iter().map(|r| r.name()).collect::<Vec<_>>(),
            "policy and inventory from the Kubernetes API"
        );
        Ok(LoadedPolicy::watching(snapshot, source, KUBE_RELOAD_INTERVAL))
    }
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
        let (source, snapshot) = FileSource::open(self.paths.clone()).map_err(|errors| PolicyRejected { errors })?;
        Ok(LoadedPolicy::watching(snapshot, source, RELOAD_INTERVAL))
    }

    /// Load the files once, without a reload thread (`replay`: its input does not change while
    /// it runs, and nothing waits for a thread at exit).
    pub fn load_once(&self) -> Result<LoadedPolicy, PolicyRejected> {
        if self.paths.is_empty() {
            return Ok(LoadedPolicy { store: Arc::new(PolicyStore::embedded_default()), watcher: None });
        }
        let (_, snapshot) = FileSource::open(self.paths.clone()).map_err(|errors| PolicyRejected { errors })?;
        Ok(LoadedPolicy { store: Arc::new(PolicyStore::new(snapshot)), watcher: None })
    }
}

impl LoadedPolicy {
    /// `snapshot` in force, and a thread polling `source` every `interval` for the next one.
    fn watching(snapshot: Mesh, mut source: impl ConfigSource + Send + 'static, interval: Duration) -> Self {
        let store = Arc::new(PolicyStore::new(snapshot));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || store.watch(&mut source, interval, &stop))
        };
        LoadedPolicy { store, watcher: Some((stop, handle)) }
    }
}

impl Drop for LoadedPolicy {
    fn drop(&mut self) {
        if let Some((stop, handle)) = self.watcher.take() {
            stop.store(true, Ordering::Relaxed);
            // The watcher parks between polls: wake it, rather than wait out its interval.
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{KubeArgs, PolicyArgs};

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        kube: KubeArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("observer").chain(args.iter().copied()))
    }

    #[test]
    fn the_api_is_the_source_when_asked_or_in_a_cluster_without_policy_files() {
        let cli = parse(&["--kubernetes"]).expect("valid");
        assert!(cli.kube.wanted_in(&cli.policy, false));
        let cli = parse(&[]).expect("valid");
        assert!(cli.kube.wanted_in(&cli.policy, true), "in a cluster by default");
        assert!(!cli.kube.wanted_in(&cli.policy, false), "outside a cluster: the embedded default");
        let cli = parse(&["--policy", "p.yaml"]).expect("valid");
        assert!(!cli.kube.wanted_in(&cli.policy, true), "files win over the cluster");
        assert_eq!(cli.kube.istio_namespace, "istio-system");
    }

    #[test]
    fn replay_loads_policy_once_without_a_reload_thread() {
        let mesh = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../observer-mesh/testdata/mesh.yaml");
        let args = PolicyArgs { paths: vec![mesh] };
        let once = args.load_once().expect("loads");
        assert!(once.watcher.is_none(), "nothing to join at exit");
        assert!(!once.store.current().files.is_empty());
        let watching = args.load().expect("loads");
        assert!(watching.watcher.is_some());
    }

    #[test]
    fn files_and_the_api_are_not_mixed() {
        let error = parse(&["--kubernetes", "--policy", "p.yaml"]).expect_err("one source");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
