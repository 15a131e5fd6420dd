//! Raw serde types of the manifests, as written. Istio's and Kubernetes' formats are not ours, so
//! unknown fields are ignored there (a manifest from `kubectl get -o yaml` has many); the
//! observer's own `Expectation` kind denies unknown fields. Fields whose line a message may need
//! are `Spanned`. Nothing here is used outside loading: the model is in the sibling modules.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::manifest::raw::RawSelector;

// --- security.istio.io PeerAuthentication

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawPeerAuthenticationSpec {
    pub selector: Option<RawSelector>,
    pub mtls: Option<RawMtls>,
    /// Keys are container ports; YAML may write them as numbers or strings.
    pub port_level_mtls: Option<BTreeMap<String, RawMtls>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMtls {
    pub mode: Option<Spanned<String>>,
}

// --- networking.istio.io DestinationRule

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawDestinationRuleSpec {
    pub host: Option<Spanned<String>>,
    pub traffic_policy: Option<RawTrafficPolicy>,
    pub subsets: Vec<RawSubset>,
    pub export_to: Vec<String>,
    pub workload_selector: Option<RawSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawTrafficPolicy {
    pub tls: Option<RawClientTls>,
    pub port_level_settings: Vec<RawPortTrafficPolicy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPortTrafficPolicy {
    pub port: Option<RawPortSelector>,
    pub tls: Option<RawClientTls>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPortSelector {
    pub number: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawClientTls {
    pub mode: Option<Spanned<String>>,
    pub client_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    pub credential_name: Option<String>,
    pub sni: Option<String>,
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawSubset {
    pub name: Option<Spanned<String>>,
    pub labels: BTreeMap<String, String>,
    pub traffic_policy: Option<RawTrafficPolicy>,
}

// --- networking.istio.io Gateway

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawGatewaySpec {
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<RawServer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawServer {
    pub port: Option<RawServerPort>,
    pub hosts: Vec<String>,
    pub tls: Option<RawServerTls>,
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawServerPort {
    pub number: Option<Spanned<u32>>,
    pub name: Option<String>,
    pub protocol: Option<Spanned<String>>,
    pub target_port: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawServerTls {
    pub mode: Option<Spanned<String>>,
    pub https_redirect: Option<bool>,
    pub credential_name: Option<String>,
    pub server_certificate: Option<String>,
    pub ca_certificates: Option<String>,
}

// --- networking.istio.io VirtualService

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawVirtualServiceSpec {
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    pub http: Vec<RawRoute>,
    pub tls: Vec<RawRoute>,
    pub tcp: Vec<RawRoute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawRoute {
    #[serde(rename = "match")]
    pub matches: Vec<RawRouteMatch>,
    pub route: Vec<RawRouteDestination>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawRouteMatch {
    pub port: Option<u32>,
    pub gateways: Vec<String>,
    pub sni_hosts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRouteDestination {
    pub destination: Option<RawDestination>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDestination {
    pub host: Option<Spanned<String>>,
    pub subset: Option<String>,
    pub port: Option<RawPortSelector>,
}

// --- the mesh settings: the `istio` ConfigMap's `data.mesh`

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawMeshConfig {
    pub root_namespace: Option<String>,
    pub enable_auto_mtls: Option<bool>,
    pub trust_domain: Option<String>,
}

// --- observer.dev Expectation (our format: unknown fields are errors)

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RawExpectationSpec {
    pub rules: Vec<RawExpectationRule>,
    pub allow_plaintext: Vec<RawAllowPlaintext>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawExpectationRule {
    #[serde(default)]
    pub to: RawPeers,
    #[serde(default)]
    pub ports: Vec<Spanned<u32>>,
    pub security: Spanned<String>,
    #[serde(default)]
    pub min_tls_version: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RawAllowPlaintext {
    pub from: RawPeers,
    pub to: RawPeers,
    pub ports: Vec<Spanned<u32>>,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct RawPeers {
    pub namespaces: Vec<String>,
    pub match_labels: BTreeMap<String, String>,
    pub addresses: Vec<Spanned<String>>,
}
