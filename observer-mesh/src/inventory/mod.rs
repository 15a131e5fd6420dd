//! Workload inventory: which pod an address belongs to (namespace, name, service account,
//! labels, sidecar, container ports), and the Services in front of pods. Built from Pod,
//! Service and Namespace manifests, from files or from the Kubernetes API (the daemon's
//! `cluster` source renders API objects into the same manifests). Host-network pods and
//! unknown addresses stay unknown: an address shared by several running pods is never guessed.

mod model;
mod owner;
pub(crate) mod raw;

pub use model::{
    CLUSTER_DOMAIN, ContainerPort, InvalidPod, InvalidService, Namespace, Pod, Service, ServicePort, TargetPort,
};
pub use owner::Owner;

use std::net::IpAddr;

// Keyed by the addresses the inventory lists (the API's, not the wire's); every leg looks up both
// of its ends, so a fast hash.
use foldhash::HashMap;

/// Pods and Services by address.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pods: Vec<Pod>,
    services: Vec<Service>,
    namespaces: Vec<Namespace>,
    /// Index into `pods`; `None` when several running pods claim the address.
    pod_by_ip: HashMap<IpAddr, Option<usize>>,
    service_by_ip: HashMap<IpAddr, usize>,
}

impl Inventory {
    /// Indexes the objects. Host-network and finished pods get no address.
    pub fn new(pods: Vec<Pod>, services: Vec<Service>, namespaces: Vec<Namespace>) -> Self {
        let mut pod_by_ip: HashMap<IpAddr, Option<usize>> = HashMap::default();
        for (i, pod) in pods.iter().enumerate() {
            if pod.host_network || pod.finished {
                continue;
            }
            for ip in &pod.ips {
                pod_by_ip.entry(ip.to_canonical()).and_modify(|slot| *slot = None).or_insert(Some(i));
            }
        }
        let mut service_by_ip = HashMap::default();
        for (i, svc) in services.iter().enumerate() {
            for ip in &svc.cluster_ips {
                service_by_ip.entry(ip.to_canonical()).or_insert(i);
            }
        }
        Self { pods, services, namespaces, pod_by_ip, service_by_ip }
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    pub fn services(&self) -> &[Service] {
        &self.services
    }

    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// The objects, without the index (to merge inventories built apart).
    pub fn into_parts(self) -> (Vec<Pod>, Vec<Service>, Vec<Namespace>) {
        (self.pods, self.services, self.namespaces)
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty() && self.services.is_empty()
    }

    /// The one running, pod-network pod with this address.
    pub fn pod_by_ip(&self, ip: IpAddr) -> Option<&Pod> {
        let index = (*self.pod_by_ip.get(&ip.to_canonical())?)?;
        self.pods.get(index)
    }

    /// The Service with this cluster IP.
    pub fn service_by_ip(&self, ip: IpAddr) -> Option<&Service> {
        self.services.get(*self.service_by_ip.get(&ip.to_canonical())?)
    }

    /// Services (with a selector) in the pod's namespace that select it.
    pub fn services_of<'a>(&'a self, pod: &'a Pod) -> impl Iterator<Item = &'a Service> + 'a {
        self.services.iter().filter(move |svc| {
            svc.meta.object.namespace == pod.meta.object.namespace
                && svc
                    .selector
                    .as_ref()
                    .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
        })
    }

    /// Running pods a Service selects.
    pub fn pods_of<'a>(&'a self, service: &'a Service) -> impl Iterator<Item = &'a Pod> + 'a {
        self.pods.iter().filter(move |pod| {
            !pod.finished
                && pod.meta.object.namespace == service.meta.object.namespace
                && service
                    .selector
                    .as_ref()
                    .is_some_and(|sel| !sel.is_empty() && sel.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
        })
    }

    /// The Service port whose target is this container port of the pod.
    pub fn service_port_of<'a>(&'a self, pod: &'a Pod, container_port: u16) -> Option<(&'a Service, &'a ServicePort)> {
        self.services_of(pod).find_map(|svc| {
            svc.ports.iter().find(|p| pod.resolve_target(&p.target, p.port) == Some(container_port)).map(|p| (svc, p))
        })
    }

    /// Whether a namespace is labelled for ambient mode.
    pub fn namespace_is_ambient(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|ns| {
            ns.name == namespace && ns.labels.get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
        })
    }

    /// SPIFFE identity of a pod that is in the mesh (sidecar or ambient), else `None`.
    pub fn identity(&self, pod: &Pod, trust_domain: &str) -> Option<String> {
        let meshed = pod.has_sidecar
            || pod.labels.get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
            || self.namespace_is_ambient(&pod.meta.object.namespace);
        meshed.then(|| format!("spiffe://{trust_domain}/ns/{}/sa/{}", pod.meta.object.namespace, pod.service_account))
    }
}

#[cfg(test)]
mod tests;
