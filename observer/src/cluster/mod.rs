//! Policy and inventory from the Kubernetes API (`observer run --kubernetes`): kube-rs watchers
//! on this node's Pods, all Services and Namespaces, the `istio` ConfigMap of Istio's root
//! namespace, and Istio's PeerAuthentication, DestinationRule, Gateway and VirtualService.
//!
//! Objects go through the same loader and validation as manifest files (`objects`), so a policy
//! from the API and one from `--policy` mean the same thing and fail the same way; errors name
//! the object (`k8s:Kind/namespace/name:line`). [`KubeSource`] is a
//! [`ConfigSource`](crate::reload::ConfigSource): the [`PolicyStore`](crate::reload::PolicyStore)
//! polls it, swaps in clean snapshots and keeps the last good one when an object is invalid.

mod objects;
mod resources;
mod source;
#[cfg(test)]
mod tests;
mod watch;

use std::time::Duration;

pub use objects::{ObjectKey, Objects, render};
pub use resources::{MESH_CONFIG_MAP, Query, Resource, Scope};
pub use source::{KubeOptions, KubeSource};
pub use watch::watch_error_counts;

use observer_mesh::load::LoadErrors;

/// Why the Kubernetes API source could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// Neither the in-cluster service account nor a kubeconfig was usable.
    #[error("no Kubernetes API configuration (neither an in-cluster service account nor a kubeconfig)")]
    Config(#[source] kube::config::InferConfigError),
    /// The client could not be built from the configuration (bad TLS material, ...).
    #[error("cannot build the Kubernetes API client")]
    Client(#[source] kube::Error),
    /// The watchers' thread or runtime could not be started.
    #[error("cannot start the Kubernetes watchers")]
    Runtime(#[source] std::io::Error),
    /// `NODE_NAME` is not set: the pods to watch are unknown.
    #[error("NODE_NAME is not set: give it from the downward API (fieldRef spec.nodeName) or pass --node-name")]
    NoNodeName,
    /// Some resources were not listed within the start-up timeout.
    #[error(
        "not every resource was listed within {}s (pending: {}){}",
        timeout.as_secs(),
        pending.join(", "),
        last_error.as_ref().map(|e| format!("; last error: {e}")).unwrap_or_default()
    )]
    SyncTimeout { timeout: Duration, pending: Vec<&'static str>, last_error: Option<String> },
    /// Objects in the cluster are invalid; every error, each naming its object.
    #[error("{} invalid object(s) in the cluster:\n{errors}", errors.0.len())]
    Rejected { errors: LoadErrors },
}
