//! Raw serde types of the Pod, Service and Namespace manifests the inventory is read from.
//! Kubernetes' format is not ours: unknown fields are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPodBody {
    pub metadata: RawPodMetadata,
    pub spec: RawPodSpec,
    pub status: RawPodStatus,
}

/// The part of a Pod's metadata only the inventory reads (names and labels are read for all kinds).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawPodMetadata {
    pub owner_references: Vec<RawOwnerReference>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawOwnerReference {
    pub kind: String,
    pub name: String,
    pub controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawPodSpec {
    pub host_network: bool,
    pub service_account_name: Option<String>,
    pub service_account: Option<String>,
    pub node_name: Option<String>,
    pub containers: Vec<RawContainer>,
    pub init_containers: Vec<RawContainer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawContainer {
    pub name: String,
    pub ports: Vec<RawContainerPort>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawContainerPort {
    pub container_port: Option<Spanned<u32>>,
    pub name: Option<String>,
    pub protocol: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawPodStatus {
    #[serde(rename = "podIP")]
    pub pod_ip: Option<Spanned<String>>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Vec<RawPodIp>,
    pub phase: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPodIp {
    pub ip: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawServiceBody {
    pub spec: RawServiceSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawServiceSpec {
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<Spanned<String>>,
    #[serde(rename = "clusterIPs")]
    pub cluster_ips: Vec<Spanned<String>>,
    pub selector: Option<BTreeMap<String, String>>,
    pub ports: Vec<RawServicePort>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawServicePort {
    pub name: Option<String>,
    pub port: Option<Spanned<u32>>,
    /// A number or a container port name.
    pub target_port: Option<String>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}
