//! What a leg should be: the expectations the policy sets for it, each naming the object that
//! set it. A leg can have several (the client's DestinationRule, the server's
//! PeerAuthentication, an Expectation rule); `evaluate` judges the leg against all of them.

use std::net::SocketAddr;

use super::{Expected, Leg};
use crate::{
    classify::Classification,
    inventory::Pod,
    policy::{ClientTlsMode, GatewayTlsMode, MtlsMode, ObjectRef, Snapshot, host_matches},
};

/// Well-known ports of TLS-only protocols: plaintext to them is a deviation by default.
pub const TLS_PORTS: [u16; 11] = [443, 465, 636, 853, 989, 990, 993, 995, 5671, 6443, 8443];
/// The default lowest acceptable TLS version (minor number: TLS 1.2).
pub const DEFAULT_MIN_TLS_MINOR: u8 = 2;

/// Who set an expectation; Istio's facts outrank the observer's own rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Istio,
    Expectation,
    Default,
}

/// One expectation on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub expected: Expected,
    /// `Kind/namespace/name`, or `default`.
    pub policy: String,
    pub reason: String,
    /// A PERMISSIVE server: plaintext is accepted today, refused under STRICT.
    pub permissive: bool,
    pub source: Source,
    /// Application TLS here would be wrapped in TLS the proxy originates (SIMPLE/MUTUAL).
    pub originates_custom_tls: bool,
}

impl Want {
    pub(crate) fn new(expected: Expected, policy: Option<&ObjectRef>, reason: impl Into<String>) -> Self {
        Self {
            expected,
            policy: policy.map_or_else(|| "default".to_owned(), ToString::to_string),
            reason: reason.into(),
            permissive: false,
            source: Source::Istio,
            originates_custom_tls: false,
        }
    }
}

/// Where a client's connection goes, as far as the inventory and an Istio SNI tell.
#[derive(Clone, Debug, Default)]
pub struct Destination<'a> {
    /// The service FQDN.
    pub host: Option<String>,
    pub service_namespace: Option<String>,
    pub service_port: Option<u16>,
    /// The Service port declares HTTP (name prefix or appProtocol).
    pub port_declares_http: bool,
    /// The endpoints: the pod addressed, or the pods behind the Service addressed.
    pub pods: Vec<&'a Pod>,
    /// The subset, from an Istio SNI.
    pub subset: Option<String>,
}

/// `outbound_.8080_.v1_.reviews.prod.svc.cluster.local` -> (port, subset, host).
pub fn parse_istio_sni(sni: &str) -> Option<(u16, Option<String>, String)> {
    let mut parts = sni.strip_prefix("outbound_.")?.splitn(3, "_.");
    let port = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let host = parts.next()?;
    Some((port, (!subset.is_empty()).then(|| subset.to_owned()), host.to_owned()))
}

/// Resolves the server address (and SNI) of a leg to a destination.
pub fn resolve_destination<'a>(server: SocketAddr, sni: Option<&str>, snapshot: &'a Snapshot) -> Destination<'a> {
    let inventory = &snapshot.inventory;
    let mut dest = Destination::default();
    if let Some(svc) = inventory.service_by_ip(server.ip()) {
        dest.host = Some(svc.fqdn());
        dest.service_namespace = Some(svc.meta.object.namespace.clone());
        dest.service_port = Some(server.port());
        dest.port_declares_http = svc.ports.iter().any(|p| p.port == server.port() && p.declares_http());
        dest.pods = inventory.pods_of(svc).collect();
    } else if let Some(pod) = inventory.pod_by_ip(server.ip()) {
        dest.pods = vec![pod];
        if let Some((svc, port)) = inventory.service_port_of(pod, server.port()) {
            dest.host = Some(svc.fqdn());
            dest.service_namespace = Some(svc.meta.object.namespace.clone());
            dest.service_port = Some(port.port);
            dest.port_declares_http = port.declares_http();
        }
    }
    if let Some((port, subset, host)) = sni.and_then(parse_istio_sni) {
        if dest.host.is_none() {
            dest.service_namespace = host.split('.').nth(1).map(str::to_owned);
            dest.host = Some(host);
            dest.service_port = Some(port);
        }
        dest.subset = subset;
    }
    dest
}

/// What the server's sidecar accepts (its PeerAuthentication), for a server pod with a sidecar.
pub fn server_want(pod: &Pod, port: Option<u16>, snapshot: &Snapshot) -> Want {
    let effective = snapshot.policy.workload_mtls(&pod.meta.object.namespace, &pod.labels, port);
    let by = effective.set_by.as_ref();
    match effective.mode {
        MtlsMode::Strict => Want::new(Expected::Mtls, by, "STRICT: the sidecar accepts mTLS only"),
        MtlsMode::Disable => Want::new(Expected::Plaintext, by, "DISABLE: the sidecar accepts plaintext only"),
        MtlsMode::Permissive | MtlsMode::Unset => Want {
            permissive: true,
            ..Want::new(Expected::Any, by, "PERMISSIVE: the sidecar accepts mTLS and plaintext")
        },
    }
}

/// What the client's proxy sends (its DestinationRule, or auto mTLS).
pub fn client_want(client: Option<&Pod>, dest: &Destination<'_>, snapshot: &Snapshot) -> Want {
    let policy = &snapshot.policy;
    let (namespace, labels) = match client {
        Some(pod) => (pod.meta.object.namespace.as_str(), pod.labels.clone()),
        None => (policy.mesh.root_namespace.as_str(), Default::default()),
    };
    let origination = dest.host.as_deref().map(|host| {
        policy.tls_origination(
            namespace,
            &labels,
            host,
            dest.service_namespace.as_deref(),
            dest.service_port,
            dest.subset.as_deref(),
        )
    });
    if let Some(origination) = &origination
        && let Some(tls) = &origination.tls
    {
        let by = origination.rule.as_ref();
        let mut want = match tls.mode {
            ClientTlsMode::Disable => Want::new(Expected::Any, by, "DISABLE: sent as the application wrote it"),
            ClientTlsMode::Simple => Want::new(Expected::Tls, by, "SIMPLE: the proxy originates TLS"),
            ClientTlsMode::Mutual => Want::new(Expected::Mtls, by, "MUTUAL: the proxy originates mTLS"),
            ClientTlsMode::IstioMutual => {
                Want::new(Expected::Mtls, by, "ISTIO_MUTUAL: the proxy originates Istio mTLS")
            }
        };
        want.originates_custom_tls = tls.originates_custom_tls();
        return want;
    }
    let rule = origination.as_ref().and_then(|o| o.rule.as_ref());
    if !policy.mesh.auto_mtls {
        return Want::new(Expected::Any, rule, "no DestinationRule tls and auto mTLS is off: sent as-is");
    }
    if dest.pods.is_empty() {
        return Want::new(Expected::Any, rule, "auto mTLS: destination not in the inventory");
    }
    let server_ns = dest.pods.first().map_or("", |p| p.meta.object.namespace.as_str());
    let inferred = policy.namespace_mtls(server_ns);
    if inferred.mode == MtlsMode::Disable {
        return Want::new(
            Expected::Any,
            inferred.set_by.as_ref(),
            "auto mTLS: the destination namespace disables mTLS",
        );
    }
    if dest.pods.iter().all(|p| p.accepts_istio_mtls()) {
        Want::new(Expected::Mtls, rule.or(inferred.set_by.as_ref()), "auto mTLS: the destination has an Istio sidecar")
    } else {
        Want::new(Expected::Any, rule, "auto mTLS: the destination is not in the mesh, sent as-is")
    }
}

/// What a gateway pod accepts on a port: the Gateway servers there (the SNI picks among
/// several); one that the observed security satisfies is preferred.
pub fn gateway_want(pod: &Pod, port: u16, observed: &Classification, snapshot: &Snapshot) -> Option<Want> {
    let inventory = &snapshot.inventory;
    // A Gateway's port is the Service port; the pod listens on its target.
    let mut ports = vec![port];
    for svc in inventory.services_of(pod) {
        ports.extend(svc.ports.iter().filter(|p| pod.resolve_target(&p.target, p.port) == Some(port)).map(|p| p.port));
    }
    let sni = observed.tls.as_ref().and_then(|t| t.sni.as_deref());
    let mut candidates = Vec::new();
    for gw in snapshot.policy.gateways.iter().filter(|gw| !gw.selector.is_empty() && gw.selector.matches(&pod.labels)) {
        for server in gw.servers.iter().filter(|s| ports.contains(&s.port)) {
            if let Some(sni) = sni
                && !server.hosts.iter().any(|h| host_matches(h, sni))
            {
                continue;
            }
            let (expected, what) = match server.tls {
                None => (Expected::Plaintext, "no TLS"),
                Some(GatewayTlsMode::Simple) => (Expected::Tls, "SIMPLE"),
                Some(GatewayTlsMode::OptionalMutual) => (Expected::Tls, "OPTIONAL_MUTUAL"),
                Some(GatewayTlsMode::Passthrough) => (Expected::Tls, "PASSTHROUGH"),
                Some(GatewayTlsMode::Mutual) => (Expected::Mtls, "MUTUAL"),
                Some(GatewayTlsMode::IstioMutual) => (Expected::Mtls, "ISTIO_MUTUAL"),
                Some(GatewayTlsMode::AutoPassthrough) => (Expected::Mtls, "AUTO_PASSTHROUGH"),
            };
            let reason = format!("Gateway server on port {} ({})", server.port, what);
            candidates.push(Want::new(expected, Some(&gw.meta.object), reason));
        }
    }
    let satisfied = candidates.iter().position(|w| super::evaluate::judge(w, observed).0.is_none());
    let index = satisfied.unwrap_or(0);
    (index < candidates.len()).then(|| candidates.swap_remove(index))
}

/// The Istio expectations of a leg (empty when the leg is not governed by Istio policy).
pub fn istio_wants(
    leg: Leg,
    client: Option<&Pod>,
    server: Option<&Pod>,
    dest: &Destination<'_>,
    server_addr: SocketAddr,
    observed: &Classification,
    snapshot: &Snapshot,
) -> Vec<Want> {
    let mut wants = Vec::new();
    let server_port = server_addr.port();
    // The container port, unless the leg was seen only at the redirect target.
    let container_port = (server_port != super::leg::INBOUND_CAPTURE_PORT).then_some(server_port);
    match leg {
        Leg::Hbone => wants.push(Want::new(Expected::Mtls, None, "ambient HBONE is always mTLS")),
        Leg::LocalInbound => wants.push(Want::new(Expected::Any, None, "local inbound: forwarded as-is")),
        Leg::LocalOutbound => {
            let mut want = client_want(client, dest, snapshot);
            // The application's own choice; only the origination mistakes are checked.
            want.reason = format!("local outbound: the application's choice ({})", want.reason);
            if !want.originates_custom_tls {
                want.expected = Expected::Any;
            } else {
                want.expected = Expected::Plaintext;
            }
            wants.push(want);
        }
        Leg::ExternalOutbound | Leg::GatewayUpstream | Leg::ExternalInbound | Leg::Direct => {
            let client_is_meshed =
                client.is_some_and(|p| p.has_sidecar) || matches!(leg, Leg::ExternalOutbound | Leg::GatewayUpstream);
            if client_is_meshed {
                wants.push(client_want(client, dest, snapshot));
            }
            if let Some(pod) = server.filter(|p| p.has_sidecar) {
                wants.push(server_want(pod, container_port, snapshot));
            }
        }
        Leg::GatewayDownstream => {
            if let Some(pod) = server {
                wants.extend(gateway_want(pod, server_port, observed, snapshot));
            }
        }
        Leg::Unknown => {}
    }
    wants
}
