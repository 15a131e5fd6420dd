//! The resources the observer watches, where they live in the API, and which of them may be
//! missing (Istio's CRDs on a cluster without Istio).

use kube::core::ApiResource;

/// A kind of object read from the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// This node's pods only (field selector `spec.nodeName`).
    Pod,
    Service,
    Namespace,
    /// The `istio` ConfigMap in Istio's root namespace (the mesh settings).
    MeshConfigMap,
    PeerAuthentication,
    DestinationRule,
    Gateway,
    VirtualService,
}

impl Resource {
    /// Every resource, in the order their counters are exported.
    pub const ALL: [Resource; 8] = [
        Resource::Pod,
        Resource::Service,
        Resource::Namespace,
        Resource::MeshConfigMap,
        Resource::PeerAuthentication,
        Resource::DestinationRule,
        Resource::Gateway,
        Resource::VirtualService,
    ];

    /// `(group, version, kind, plural)` as the API serves them. Istio's CRDs are read at v1,
    /// served since Istio 1.22.
    pub const fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Resource::Pod => ("", "v1", "Pod", "pods"),
            Resource::Service => ("", "v1", "Service", "services"),
            Resource::Namespace => ("", "v1", "Namespace", "namespaces"),
            Resource::MeshConfigMap => ("", "v1", "ConfigMap", "configmaps"),
            Resource::PeerAuthentication => ("security.istio.io", "v1", "PeerAuthentication", "peerauthentications"),
            Resource::DestinationRule => ("networking.istio.io", "v1", "DestinationRule", "destinationrules"),
            Resource::Gateway => ("networking.istio.io", "v1", "Gateway", "gateways"),
            Resource::VirtualService => ("networking.istio.io", "v1", "VirtualService", "virtualservices"),
        }
    }

    /// The `kind` of its objects.
    pub const fn kind(self) -> &'static str {
        self.gvk().2
    }

    /// The label value in metrics and logs (the API's plural; `istio-configmap` for the mesh settings).
    pub const fn name(self) -> &'static str {
        match self {
            Resource::MeshConfigMap => "istio-configmap",
            other => other.gvk().3,
        }
    }

    /// `apiVersion` of its objects.
    pub fn api_version(self) -> String {
        match self.gvk() {
            ("", version, ..) => version.to_owned(),
            (group, version, ..) => format!("{group}/{version}"),
        }
    }

    /// Where kube-rs finds it.
    pub fn api_resource(self) -> ApiResource {
        let (group, version, kind, plural) = self.gvk();
        ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            api_version: self.api_version(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
        }
    }

    /// A CustomResourceDefinition that a cluster without Istio does not have: a 404 means
    /// "no objects", not an error.
    pub const fn may_be_absent(self) -> bool {
        matches!(
            self,
            Resource::PeerAuthentication | Resource::DestinationRule | Resource::Gateway | Resource::VirtualService
        )
    }
}

/// Where to look: the node whose pods are watched and Istio's root namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    /// `spec.nodeName` of the pods to watch (`NODE_NAME` from the downward API).
    pub node: String,
    /// The namespace holding the `istio` ConfigMap (Istio's default: `istio-system`).
    pub istio_namespace: String,
}

/// How a resource is listed and watched: the namespace (None: all) and the field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub namespace: Option<String>,
    pub fields: Option<String>,
}

impl Scope {
    /// The list/watch query of a resource.
    pub fn query(&self, resource: Resource) -> Query {
        match resource {
            Resource::Pod => Query { namespace: None, fields: Some(format!("spec.nodeName={}", self.node)) },
            Resource::MeshConfigMap => Query {
                namespace: Some(self.istio_namespace.clone()),
                fields: Some(format!("metadata.name={MESH_CONFIG_MAP}")),
            },
            _ => Query { namespace: None, fields: None },
        }
    }
}

/// The ConfigMap Istio keeps the mesh settings in (key `mesh`).
pub const MESH_CONFIG_MAP: &str = "istio";
