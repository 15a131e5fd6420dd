//! What the policy requires of a leg, each requirement naming the object that set it. A leg can
//! have several (the client's DestinationRule, the server's PeerAuthentication, an Expectation
//! rule), or a choice among Gateway servers. Everything here is derived from the leg's kind,
//! addresses and SNI and from the policy, never from the security observed: [`super::decide`]
//! holds the requirements against the observation.

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
};

use super::{LegKind, RequiredSecurity};
use crate::{
    Mesh,
    inventory::Pod,
    manifest::{Labels, ObjectRef},
    policy::{ClientTlsMode, GatewayTlsMode, MtlsMode, host_matches},
};

/// Who set a requirement; Istio's facts outrank the observer's own rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Istio,
    Expectation,
    Default,
}

/// One requirement on a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub security: RequiredSecurity,
    /// The object that set it; `None` for the observer's embedded default.
    pub policy: Option<ObjectRef>,
    pub reason: Cow<'static, str>,
    /// A PERMISSIVE server: plaintext is accepted today, refused under STRICT.
    pub permissive: bool,
    pub source: Source,
    /// Application TLS here would be wrapped in TLS the proxy originates (SIMPLE/MUTUAL).
    pub originates_custom_tls: bool,
}

impl Requirement {
    pub(crate) fn new(
        security: RequiredSecurity,
        policy: Option<&ObjectRef>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            security,
            policy: policy.cloned(),
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
pub fn resolve_destination<'a>(server: SocketAddr, sni: Option<&str>, mesh: &'a Mesh) -> Destination<'a> {
    let inventory = &mesh.inventory;
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
pub fn server_requirement(pod: &Pod, port: Option<u16>, mesh: &Mesh) -> Requirement {
    let effective = mesh.policy.workload_mtls(&pod.meta.object.namespace, &pod.labels, port);
    let by = effective.set_by.as_ref();
    match effective.mode {
        MtlsMode::Strict => Requirement::new(RequiredSecurity::Mtls, by, "STRICT: the sidecar accepts mTLS only"),
        MtlsMode::Disable => {
            Requirement::new(RequiredSecurity::Plaintext, by, "DISABLE: the sidecar accepts plaintext only")
        }
        MtlsMode::Permissive | MtlsMode::Unset => Requirement {
            permissive: true,
            ..Requirement::new(RequiredSecurity::Any, by, "PERMISSIVE: the sidecar accepts mTLS and plaintext")
        },
    }
}

/// What the client's proxy sends (its DestinationRule, or auto mTLS).
pub fn client_requirement(client: Option<&Pod>, dest: &Destination<'_>, mesh: &Mesh) -> Requirement {
    let policy = &mesh.policy;
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
            ClientTlsMode::Disable => {
                Requirement::new(RequiredSecurity::Any, by, "DISABLE: sent as the application wrote it")
            }
            ClientTlsMode::Simple => Requirement::new(RequiredSecurity::Tls, by, "SIMPLE: the proxy originates TLS"),
            ClientTlsMode::Mutual => Requirement::new(RequiredSecurity::Mtls, by, "MUTUAL: the proxy originates mTLS"),
            ClientTlsMode::IstioMutual => {
                Requirement::new(RequiredSecurity::Mtls, by, "ISTIO_MUTUAL: the proxy originates Istio mTLS")
            }
        };
        want.originates_custom_tls = tls.originates_custom_tls();
        return want;
    }
    let rule = origination.as_ref().and_then(|o| o.rule.as_ref());
    if !policy.mesh.auto_mtls {
        return Requirement::new(
            RequiredSecurity::Any,
            rule,
            "no DestinationRule tls and auto mTLS is off: sent as-is",
        );
    }
    if dest.pods.is_empty() {
        return Requirement::new(RequiredSecurity::Any, rule, "auto mTLS: destination not in the inventory");
    }
    let server_ns = dest.pods.first().map_or("", |p| p.meta.object.namespace.as_str());
    let inferred = policy.namespace_mtls(server_ns);
    if inferred.mode == MtlsMode::Disable {
        return Requirement::new(
            RequiredSecurity::Any,
            inferred.set_by.as_ref(),
            "auto mTLS: the destination namespace disables mTLS",
        );
    }
    if dest.pods.iter().all(|p| p.accepts_istio_mtls()) {
        Requirement::new(
            RequiredSecurity::Mtls,
            rule.or(inferred.set_by.as_ref()),
            "auto mTLS: the destination has an Istio sidecar",
        )
    } else {
        Requirement::new(RequiredSecurity::Any, rule, "auto mTLS: the destination is not in the mesh, sent as-is")
    }
}

/// What a gateway pod accepts on a port: the Gateway servers there whose hosts match the SNI.
/// Several may apply; the leg needs to satisfy one of them, which [`super::decide`] picks.
pub fn gateway_candidates(pod: &Pod, port: u16, sni: Option<&str>, mesh: &Mesh) -> Vec<Requirement> {
    let inventory = &mesh.inventory;
    // A Gateway's port is the Service port; the pod listens on its target.
    let mut ports = vec![port];
    for svc in inventory.services_of(pod) {
        ports.extend(svc.ports.iter().filter(|p| pod.resolve_target(&p.target, p.port) == Some(port)).map(|p| p.port));
    }
    let mut candidates = Vec::new();
    for gw in mesh.policy.gateways.iter().filter(|gw| !gw.selector.is_empty() && gw.selector.matches(&pod.labels)) {
        for server in gw.servers.iter().filter(|s| ports.contains(&s.port)) {
            if let Some(sni) = sni
                && !server.hosts.iter().any(|h| host_matches(h, sni))
            {
                continue;
            }
            let (security, what) = match server.tls {
                None => (RequiredSecurity::Plaintext, "no TLS"),
                Some(GatewayTlsMode::Simple) => (RequiredSecurity::Tls, "SIMPLE"),
                Some(GatewayTlsMode::OptionalMutual) => (RequiredSecurity::Tls, "OPTIONAL_MUTUAL"),
                Some(GatewayTlsMode::Passthrough) => (RequiredSecurity::Tls, "PASSTHROUGH"),
                Some(GatewayTlsMode::Mutual) => (RequiredSecurity::Mtls, "MUTUAL"),
                Some(GatewayTlsMode::IstioMutual) => (RequiredSecurity::Mtls, "ISTIO_MUTUAL"),
                Some(GatewayTlsMode::AutoPassthrough) => (RequiredSecurity::Mtls, "AUTO_PASSTHROUGH"),
            };
            let reason = format!("Gateway server on port {} ({})", server.port, what);
            candidates.push(Requirement::new(security, Some(&gw.meta.object), reason));
        }
    }
    candidates
}

/// Everything the policy requires of one leg.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Istio's requirements: each must hold.
    pub istio: Vec<Requirement>,
    /// Gateway servers on the leg's port: one of them must hold.
    pub gateway: Vec<Requirement>,
    /// The most specific Expectation rule, with its minimum TLS version (minor) if it sets one.
    pub expectation: Option<(Requirement, Option<u8>)>,
    /// An `allowPlaintext` entry matching the leg: plaintext here is expected.
    pub allow_plaintext: Option<Requirement>,
}

/// The leg as [`requirements`] needs it: its kind, both ends and the SNI the client sent.
#[derive(Clone, Copy, Debug)]
pub struct LegAddress<'a> {
    pub kind: LegKind,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub sni: Option<&'a str>,
}

/// What the policy requires of a leg, and where its connection goes.
pub fn requirements<'a>(leg: &LegAddress<'_>, mesh: &'a Mesh) -> (Requirements, Destination<'a>) {
    let inventory = &mesh.inventory;
    let client_pod = inventory.pod_by_ip(leg.client.ip());
    let server_pod = inventory.pod_by_ip(leg.server.ip());
    let dest = resolve_destination(leg.server, leg.sni, mesh);
    let mut required = Requirements::default();
    let server_port = leg.server.port();
    // The container port, unless the leg was seen only at the redirect target.
    let container_port = (server_port != super::leg_kind::INBOUND_CAPTURE_PORT).then_some(server_port);
    match leg.kind {
        LegKind::Hbone => {
            required.istio.push(Requirement::new(RequiredSecurity::Mtls, None, "ambient HBONE is always mTLS"));
        }
        LegKind::LocalInbound => {
            required.istio.push(Requirement::new(RequiredSecurity::Any, None, "local inbound: forwarded as-is"));
        }
        LegKind::LocalOutbound => {
            let mut requirement = client_requirement(client_pod, &dest, mesh);
            // The application's own choice; only the origination mistakes are checked.
            requirement.reason = format!("local outbound: the application's choice ({})", requirement.reason).into();
            requirement.security =
                if requirement.originates_custom_tls { RequiredSecurity::Plaintext } else { RequiredSecurity::Any };
            required.istio.push(requirement);
        }
        LegKind::ExternalOutbound | LegKind::GatewayUpstream | LegKind::ExternalInbound | LegKind::Direct => {
            let client_is_meshed = client_pod.is_some_and(|p| p.has_sidecar)
                || matches!(leg.kind, LegKind::ExternalOutbound | LegKind::GatewayUpstream);
            if client_is_meshed {
                required.istio.push(client_requirement(client_pod, &dest, mesh));
            }
            if let Some(pod) = server_pod.filter(|p| p.has_sidecar) {
                required.istio.push(server_requirement(pod, container_port, mesh));
            }
        }
        LegKind::GatewayDownstream => {
            if let Some(pod) = server_pod {
                required.gateway = gateway_candidates(pod, server_port, leg.sni, mesh);
            }
        }
        LegKind::Unknown => {}
    }
    // Inside a pod the application talks to its own sidecar: Expectation rules are about the
    // traffic between workloads.
    if !matches!(leg.kind, LegKind::LocalInbound | LegKind::LocalOutbound) {
        let (rule, allow) =
            expectation_requirements((leg.client.ip(), client_pod), (leg.server.ip(), server_pod), server_port, mesh);
        required.expectation = rule;
        required.allow_plaintext = allow;
    }
    (required, dest)
}

/// The observer's `Expectation` rules and `allowPlaintext` entries that apply to a leg: the most
/// specific rule (labels > namespaces > addresses; with ports beats without) and the first
/// matching entry.
fn expectation_requirements(
    client: (IpAddr, Option<&Pod>),
    server: (IpAddr, Option<&Pod>),
    port: u16,
    mesh: &Mesh,
) -> (Option<(Requirement, Option<u8>)>, Option<Requirement>) {
    fn workload(pod: Option<&Pod>) -> Option<(&str, &Labels)> {
        pod.map(|p| (p.meta.object.namespace.as_str(), &p.labels))
    }
    let mut best: Option<(u8, Requirement, Option<u8>)> = None;
    let mut allow = None;
    for exp in &mesh.policy.expectations {
        for rule in &exp.rules {
            if !rule.ports.is_empty() && !rule.ports.contains(&port) {
                continue;
            }
            let Some(score) = rule.to.specificity(server.0, workload(server.1)) else {
                continue;
            };
            let score = score * 2 + u8::from(!rule.ports.is_empty());
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                let reason = format!("Expectation rule at line {}", rule.line);
                let mut requirement = Requirement::new(rule.security, Some(&exp.meta.object), reason);
                requirement.source = Source::Expectation;
                best = Some((score, requirement, rule.min_tls_minor));
            }
        }
        for entry in &exp.allow_plaintext {
            let ports_ok = entry.ports.is_empty() || entry.ports.contains(&port);
            if allow.is_none()
                && ports_ok
                && entry.from.specificity(client.0, workload(client.1)).is_some()
                && entry.to.specificity(server.0, workload(server.1)).is_some()
            {
                let reason = entry.reason.clone().unwrap_or_else(|| "plaintext expected".to_owned());
                let mut requirement = Requirement::new(RequiredSecurity::Plaintext, Some(&exp.meta.object), reason);
                requirement.source = Source::Expectation;
                allow = Some(requirement);
            }
        }
    }
    (best.map(|(_, r, min)| (r, min)), allow)
}
