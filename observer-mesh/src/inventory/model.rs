//! The validated inventory objects and their conversion from the raw manifests.

use std::{collections::BTreeMap, net::IpAddr};

use super::raw;
use crate::manifest::{At, Doc, Labels, Meta};

/// The Kubernetes cluster DNS domain short hosts expand into.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";
/// Label Istio's injector puts on pods whose sidecar accepts Istio mTLS; auto mTLS sends
/// ISTIO_MUTUAL only to endpoints carrying it.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Annotation Istio's injector puts on injected pods.
pub const SIDECAR_STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// The name of Istio's sidecar container.
pub const PROXY_CONTAINER: &str = "istio-proxy";

/// A named container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    pub port: u16,
    pub name: Option<String>,
}

/// A pod, as far as the observer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub meta: Meta,
    pub labels: Labels,
    pub service_account: String,
    /// An `istio-proxy` container (or init container) or the injector's status annotation.
    pub has_sidecar: bool,
    pub host_network: bool,
    /// Succeeded or Failed: its address may belong to another pod now.
    pub finished: bool,
    pub ips: Vec<IpAddr>,
    pub ports: Vec<ContainerPort>,
    pub node: Option<String>,
    /// The owning workload (bounded: survives rollouts), shared with the records.
    pub owner: std::sync::Arc<super::Owner>,
}

impl Pod {
    /// `namespace/name`, as records show it.
    pub fn workload(&self) -> String {
        format!("{}/{}", self.meta.object.namespace, self.meta.object.name)
    }

    /// Labelled `security.istio.io/tlsMode=istio`.
    pub fn accepts_istio_mtls(&self) -> bool {
        self.labels.get(TLS_MODE_LABEL).map(String::as_str) == Some("istio")
    }

    /// The container port a Service port targets (a missing target is the service port).
    pub fn resolve_target(&self, target: &TargetPort, service_port: u16) -> Option<u16> {
        match target {
            TargetPort::Number(n) => Some(*n),
            TargetPort::SamePort => Some(service_port),
            TargetPort::Name(name) => self.ports.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| p.port),
        }
    }
}

/// `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
    /// Not given: the same as the service port.
    SamePort,
}

/// One Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target: TargetPort,
    pub app_protocol: Option<String>,
    pub line: u32,
}

impl ServicePort {
    /// The port declares HTTP (by `appProtocol` or Istio's name prefix convention).
    pub fn declares_http(&self) -> bool {
        let protocol = self
            .app_protocol
            .as_deref()
            .or_else(|| self.name.as_deref().map(|n| n.split('-').next().unwrap_or(n)))
            .unwrap_or("")
            .to_ascii_lowercase();
        matches!(protocol.as_str(), "http" | "http2" | "grpc" | "grpc-web" | "h2c" | "kubernetes.io/h2c")
    }
}

/// A Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub meta: Meta,
    /// `None`: no selector (endpoints managed elsewhere).
    pub selector: Option<BTreeMap<String, String>>,
    pub cluster_ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
}

impl Service {
    /// `name.namespace.svc.cluster.local`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}.{}", self.meta.object.name, self.meta.object.namespace, CLUSTER_DOMAIN)
    }
}

/// A Namespace and its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub labels: Labels,
}

/// Why a Pod is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPod {
    /// `status.podIP(s)` is not an IP address.
    #[error("{0:?} is not an IP address")]
    InvalidIp(String),
    /// A container port outside 1-65535.
    #[error("containerPort {0} is not 1-65535")]
    InvalidPort(u32),
}

/// Why a Service is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidService {
    /// `spec.clusterIP(s)` is neither an IP address nor `None`.
    #[error("{0:?} is not an IP address")]
    InvalidIp(String),
    /// A port (or numeric targetPort) outside 1-65535, or a missing `port`.
    #[error("service port needs port (and a numeric targetPort) 1-65535")]
    InvalidPort,
}

fn ip<E>(doc_line: u32, text: &str, errors: &mut Vec<At<E>>, bad: impl Fn(String) -> E) -> Option<IpAddr> {
    match text.trim().parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errors.push(At { line: doc_line, error: bad(text.to_owned()) });
            None
        }
    }
}

impl TryFrom<Doc<raw::RawPodBody>> for Pod {
    type Error = Vec<At<InvalidPod>>;

    fn try_from(doc: Doc<raw::RawPodBody>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let (spec, status) = (&doc.spec.spec, &doc.spec.status);
        let mut ips = Vec::new();
        let listed = status.pod_ip.iter().chain(status.pod_ips.iter().filter_map(|p| p.ip.as_ref()));
        for text in listed {
            if let Some(addr) = ip(doc.line(text), &text.value, &mut errors, InvalidPod::InvalidIp)
                && !ips.contains(&addr)
            {
                ips.push(addr);
            }
        }
        let mut ports = Vec::new();
        let containers = spec.containers.iter().chain(&spec.init_containers);
        for port in containers.clone().flat_map(|c| &c.ports) {
            let Some(number) = &port.container_port else {
                continue;
            };
            match u16::try_from(number.value).ok().filter(|p| *p > 0) {
                Some(p) => ports.push(ContainerPort { port: p, name: port.name.clone() }),
                None => errors.push(At { line: doc.line(number), error: InvalidPod::InvalidPort(number.value) }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let has_sidecar = containers.clone().any(|c| c.name == PROXY_CONTAINER)
            || doc.annotations.contains_key(SIDECAR_STATUS_ANNOTATION);
        Ok(Self {
            labels: doc.labels.clone(),
            service_account: spec
                .service_account_name
                .clone()
                .or_else(|| spec.service_account.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "default".to_owned()),
            has_sidecar,
            host_network: spec.host_network,
            finished: matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")),
            ips,
            ports,
            node: spec.node_name.clone(),
            owner: std::sync::Arc::new(super::Owner::of_pod(
                &doc.meta.object.namespace,
                &doc.meta.object.name,
                &doc.labels,
                &doc.spec.metadata.owner_references,
            )),
            meta: doc.meta,
        })
    }
}

impl TryFrom<Doc<raw::RawServiceBody>> for Service {
    type Error = Vec<At<InvalidService>>;

    fn try_from(doc: Doc<raw::RawServiceBody>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let spec = &doc.spec.spec;
        let mut cluster_ips = Vec::new();
        for text in spec.cluster_ip.iter().chain(&spec.cluster_ips) {
            if text.value.is_empty() || text.value.eq_ignore_ascii_case("none") {
                continue;
            }
            if let Some(addr) = ip(doc.line(text), &text.value, &mut errors, InvalidService::InvalidIp)
                && !cluster_ips.contains(&addr)
            {
                cluster_ips.push(addr);
            }
        }
        let mut ports = Vec::new();
        for raw in &spec.ports {
            let line = raw.port.as_ref().map_or(doc.meta.origin.line, |p| doc.line(p));
            let port = raw.port.as_ref().and_then(|p| u16::try_from(p.value).ok()).filter(|p| *p > 0);
            let target = match raw.target_port.as_deref().map(str::trim) {
                None | Some("") => Some(TargetPort::SamePort),
                Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
                    t.parse::<u16>().ok().filter(|p| *p > 0).map(TargetPort::Number)
                }
                Some(name) => Some(TargetPort::Name(name.to_owned())),
            };
            match (port, target) {
                (Some(port), Some(target)) => ports.push(ServicePort {
                    name: raw.name.clone(),
                    port,
                    target,
                    app_protocol: raw.app_protocol.clone(),
                    line,
                }),
                _ => errors.push(At { line, error: InvalidService::InvalidPort }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { selector: spec.selector.clone(), cluster_ips, ports, meta: doc.meta })
    }
}
