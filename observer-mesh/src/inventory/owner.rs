//! The workload a pod belongs to, for bounded metric attributes and alert grouping: its owning
//! controller, never the pod's own (per-rollout) name. From the controller `ownerReferences`
//! entry, mapped up the usual chains a pod cannot see itself: a ReplicaSet named
//! `<deployment>-<pod-template-hash>` (the pod carries the hash as a label) is its Deployment,
//! a Job named `<cronjob>-<minutes since the epoch>` is its CronJob. Without a controller,
//! Istio's `service.istio.io/canonical-name` label names the workload; a bare pod is its own.

use super::raw::RawOwnerReference;
use crate::manifest::Labels;

/// Istio's canonical service label (defaults from `app.kubernetes.io/name` / `app`).
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";
/// The label a Deployment's ReplicaSets put on their pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A pod's owning workload: `k8s.*.owner.type` / `k8s.*.owner.name` in metrics.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`, `CronJob`,
    /// `CanonicalService` (from the Istio label), `Pod` (bare), or the controller's own kind.
    pub kind: String,
    pub name: String,
}

impl Owner {
    /// The owner of a pod from its metadata.
    pub fn of_pod(namespace: &str, name: &str, labels: &Labels, owners: &[RawOwnerReference]) -> Self {
        let controller = owners.iter().find(|o| o.controller == Some(true)).or_else(|| owners.first());
        let (kind, name) = match controller.filter(|o| !o.kind.is_empty() && !o.name.is_empty()) {
            Some(o) if o.kind == "ReplicaSet" => match labels.get(POD_TEMPLATE_HASH_LABEL).and_then(|hash| {
                o.name.strip_suffix(hash.as_str()).and_then(|n| n.strip_suffix('-')).filter(|n| !n.is_empty())
            }) {
                Some(deployment) => ("Deployment", deployment.to_owned()),
                None => ("ReplicaSet", o.name.clone()),
            },
            Some(o) if o.kind == "Job" => match cronjob_of(&o.name) {
                Some(cronjob) => ("CronJob", cronjob.to_owned()),
                None => ("Job", o.name.clone()),
            },
            Some(o) => (o.kind.as_str(), o.name.clone()),
            None => match labels.get(CANONICAL_NAME_LABEL).filter(|n| !n.is_empty()) {
                Some(canonical) => ("CanonicalService", canonical.clone()),
                None => ("Pod", name.to_owned()),
            },
        };
        Self { namespace: namespace.to_owned(), kind: kind.to_owned(), name }
    }
}

/// `nightly-29384756` → `nightly`: the CronJob controller names Jobs after the scheduled time
/// in minutes since the epoch (8 or more digits).
fn cronjob_of(job: &str) -> Option<&str> {
    let (base, suffix) = job.rsplit_once('-')?;
    (suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_digit()) && !base.is_empty()).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(kind: &str, name: &str) -> RawOwnerReference {
        RawOwnerReference { kind: kind.to_owned(), name: name.to_owned(), controller: Some(true) }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_deployments_pod_is_the_deployment_not_its_replicaset() {
        let l = labels(&[(POD_TEMPLATE_HASH_LABEL, "7d4b9c8f5d")]);
        let o = Owner::of_pod("prod", "web-7d4b9c8f5d-x2x9z", &l, &[owner("ReplicaSet", "web-7d4b9c8f5d")]);
        assert_eq!((o.kind.as_str(), o.name.as_str(), o.namespace.as_str()), ("Deployment", "web", "prod"));
        // A ReplicaSet of its own (no hash label, or a name that does not end in it) stays one.
        let o = Owner::of_pod("prod", "rs-abcde", &Labels::new(), &[owner("ReplicaSet", "rs")]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("ReplicaSet", "rs"));
        let l = labels(&[(POD_TEMPLATE_HASH_LABEL, "other")]);
        let o = Owner::of_pod("prod", "p", &l, &[owner("ReplicaSet", "web-7d4b9c8f5d")]);
        assert_eq!(o.kind, "ReplicaSet");
    }

    #[test]
    fn other_controllers_cronjobs_canonical_names_and_bare_pods() {
        let none = Labels::new();
        let o = Owner::of_pod("db", "pg-0", &none, &[owner("StatefulSet", "pg")]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("StatefulSet", "pg"));
        let o = Owner::of_pod("kube-system", "agent-x1", &none, &[owner("DaemonSet", "agent")]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("DaemonSet", "agent"));
        let o = Owner::of_pod("ops", "nightly-29384756-abcde", &none, &[owner("Job", "nightly-29384756")]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("CronJob", "nightly"));
        let o = Owner::of_pod("ops", "migrate-abcde", &none, &[owner("Job", "migrate")]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("Job", "migrate"));
        let l = labels(&[(CANONICAL_NAME_LABEL, "reviews")]);
        let o = Owner::of_pod("bookinfo", "reviews-v1-abc", &l, &[]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("CanonicalService", "reviews"));
        let o = Owner::of_pod("default", "debug", &none, &[]);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("Pod", "debug"));
        // A non-controller reference is used only when no controller is named.
        let mut refs = vec![owner("ConfigMap", "x"), owner("StatefulSet", "pg")];
        refs[0].controller = None;
        assert_eq!(Owner::of_pod("db", "pg-0", &none, &refs).kind, "StatefulSet");
    }
}
