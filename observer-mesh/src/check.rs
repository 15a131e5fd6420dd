//! `observer check`: static analysis of manifests for the documented TLS mistakes (docs/MESH.md, "Mistakes",
//! Istio's "TLS configuration mistakes"). Each finding names the line that causes it.

use std::{collections::HashMap, fmt};

use observer_wire::printable::Escaped;

use crate::{
    Mesh,
    manifest::Origin,
    policy::{
        ClientTls, ClientTlsMode, DestinationRule, GatewayTlsMode, Host, MtlsMode, RouteKind, TLS_PORTS, hosts_overlap,
    },
};

/// The kinds of mistakes `observer check` finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FindingKind {
    /// A Gateway passes TLS through and a DestinationRule originates TLS on top of it.
    DoubleTls,
    /// A DestinationRule originates SIMPLE/MUTUAL TLS without `caCertificates`/`credentialName`.
    MissingCa,
    /// A DestinationRule with MUTUAL TLS names no client certificate.
    MutualWithoutClientCert,
    /// `portLevelMtls` in a PeerAuthentication without a selector (Istio ignores it).
    PortLevelWithoutSelector,
    /// A workload or port-level DISABLE that auto mTLS clients ignore (they infer the mode
    /// from mesh and namespace policy only) and no DestinationRule disables TLS for.
    DisableIgnoredByAutoMtls,
    /// A VirtualService route that the bound Gateway server's TLS mode never lets match.
    GatewayVirtualServiceMismatch,
    /// TLS sent to a Service port named (or `appProtocol`) HTTP.
    TlsToHttpPort,
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DoubleTls => "double_tls",
            Self::MissingCa => "missing_ca",
            Self::MutualWithoutClientCert => "mutual_without_client_cert",
            Self::PortLevelWithoutSelector => "port_level_without_selector",
            Self::DisableIgnoredByAutoMtls => "disable_ignored_by_auto_mtls",
            Self::GatewayVirtualServiceMismatch => "gateway_virtual_service_mismatch",
            Self::TlsToHttpPort => "tls_to_http_port",
        })
    }
}

/// One finding, printed as `file:line: kind: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub origin: Origin,
    pub kind: FindingKind,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Object names, hosts and file names come from the manifests: escaped for the terminal.
        write!(f, "{}: {}: {}", self.origin, self.kind, Escaped(&self.message))
    }
}

/// Every TLS setting of a rule: (port-level port, subset, settings).
fn all_tls(dr: &DestinationRule) -> Vec<(Option<u16>, Option<&str>, &ClientTls)> {
    fn level(policy: &crate::policy::TrafficPolicy) -> Vec<(Option<u16>, &ClientTls)> {
        let top = policy.tls.iter().map(|t| (None, t));
        let ports = policy.port_level.iter().filter_map(|(p, t)| t.as_ref().map(|t| (Some(*p), t)));
        top.chain(ports).collect()
    }
    let mut out: Vec<_> = level(&dr.policy).into_iter().map(|(port, tls)| (port, None, tls)).collect();
    for subset in &dr.subsets {
        for (port, tls) in subset.policy.as_ref().map(level).unwrap_or_default() {
            out.push((port, Some(subset.name.as_str()), tls));
        }
    }
    out
}

fn mode_name(mode: ClientTlsMode) -> &'static str {
    match mode {
        ClientTlsMode::Disable => "DISABLE",
        ClientTlsMode::Simple => "SIMPLE",
        ClientTlsMode::Mutual => "MUTUAL",
        ClientTlsMode::IstioMutual => "ISTIO_MUTUAL",
    }
}

/// Expands a route destination host as Istio does (short names are in the route's namespace).
fn expand_host(host: &str, namespace: &str) -> String {
    if host.contains('.') {
        host.to_ascii_lowercase()
    } else {
        format!("{host}.{namespace}.{}", crate::inventory::CLUSTER_DOMAIN)
    }
}

/// All findings, in file and line order.
pub fn check(mesh: &Mesh) -> Vec<Finding> {
    let mut findings = Vec::new();
    destination_rules(mesh, &mut findings);
    peer_authentications(mesh, &mut findings);
    gateways(mesh, &mut findings);
    services(mesh, &mut findings);
    findings.sort_by(|a, b| (&a.origin, a.kind).cmp(&(&b.origin, b.kind)));
    findings.dedup();
    findings
}

fn destination_rules(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for dr in &mesh.policy.destination_rules {
        let name = dr.meta.object.to_string();
        for (port, subset, tls) in all_tls(dr) {
            let at = dr.meta.origin.at(tls.line);
            let scope = match (subset, port) {
                (Some(s), Some(p)) => format!(" (subset {s}, port {p})"),
                (Some(s), None) => format!(" (subset {s})"),
                (None, Some(p)) => format!(" (port {p})"),
                (None, None) => String::new(),
            };
            if tls.originates_custom_tls() && !tls.has_ca && !tls.insecure_skip_verify {
                findings.push(Finding {
                    origin: at.clone(),
                    kind: FindingKind::MissingCa,
                    message: format!("{name}{scope}: tls.mode {} without caCertificates or credentialName: the server certificate is not verified", mode_name(tls.mode)),
                });
            }
            if tls.mode == ClientTlsMode::Mutual && !tls.has_client_cert {
                findings.push(Finding {
                    origin: at.clone(),
                    kind: FindingKind::MutualWithoutClientCert,
                    message: format!("{name}{scope}: tls.mode MUTUAL without clientCertificate or credentialName"),
                });
            }
            if !tls.originates_custom_tls() {
                continue;
            }
            let Host::Exact(host) = &dr.host else {
                continue;
            };
            for svc in mesh.inventory.services().iter().filter(|s| &s.fqdn() == host) {
                for sp in svc.ports.iter().filter(|sp| port.is_none_or(|p| p == sp.port) && sp.declares_http()) {
                    findings.push(Finding {
                        origin: at.clone(),
                        kind: FindingKind::TlsToHttpPort,
                        message: format!(
                            "{name}{scope} originates TLS to port {} of Service {}/{}, which is named for HTTP ({}): the receiving sidecar parses it as HTTP",
                            sp.port, svc.meta.object.namespace, svc.meta.object.name, sp.name.as_deref().unwrap_or("appProtocol")
                        ),
                    });
                }
            }
        }
    }
}

fn peer_authentications(mesh: &Mesh, findings: &mut Vec<Finding>) {
    let policy = &mesh.policy;
    // Indexed once: asking per PeerAuthentication made check quadratic in them.
    let namespace_modes = policy.namespace_modes();
    let mut services_of: HashMap<&str, Vec<&crate::inventory::Service>> = HashMap::new();
    for service in mesh.inventory.services() {
        services_of.entry(service.meta.object.namespace.as_str()).or_default().push(service);
    }
    for pa in &policy.peer_authentications {
        let name = pa.meta.object.to_string();
        if pa.selector.is_none() && !pa.port_modes.is_empty() {
            findings.push(Finding {
                origin: pa.meta.origin.clone(),
                kind: FindingKind::PortLevelWithoutSelector,
                message: format!("{name}: portLevelMtls without a selector is ignored by Istio"),
            });
            continue;
        }
        let Some(selector) = &pa.selector else {
            continue;
        };
        let namespace = &pa.meta.object.namespace;
        let disabled_ports: Vec<Option<u16>> = std::iter::once(None)
            .filter(|_| pa.mode == MtlsMode::Disable)
            .chain(pa.port_modes.iter().filter(|(_, m)| **m == MtlsMode::Disable).map(|(p, _)| Some(*p)))
            .collect();
        if disabled_ports.is_empty()
            || namespace_modes.get(namespace).mode == MtlsMode::Disable
            || !policy.mesh.auto_mtls
        {
            continue;
        }
        // The Services in front of the selected workloads, and whether a rule disables TLS to them.
        let services: Vec<_> = services_of
            .get(namespace.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(|s| {
                s.selector.as_ref().is_some_and(|sel| sel.iter().all(|(k, v)| selector.0.get(k).is_none_or(|x| x == v)))
            })
            .collect();
        let disables = |dr: &DestinationRule, port: Option<u16>| {
            dr.tls_for(port, None).is_some_and(|t| t.mode == ClientTlsMode::Disable)
        };
        let covered = |container_port: Option<u16>| {
            if services.is_empty() {
                let suffix = format!(".{namespace}.{}", crate::inventory::CLUSTER_DOMAIN);
                return policy.destination_rules.iter().any(|dr| {
                    let hits = match &dr.host {
                        Host::Exact(h) => h.ends_with(&suffix),
                        Host::Wildcard(s) => suffix.ends_with(s.as_str()),
                        Host::Any => true,
                    };
                    hits && (disables(dr, None) || dr.policy.port_level.iter().any(|(p, _)| disables(dr, Some(*p))))
                });
            }
            services.iter().all(|svc| {
                let ports: Vec<u16> = svc
                    .ports
                    .iter()
                    .filter(|sp| {
                        container_port.is_none_or(|cp| {
                            matches!(&sp.target, crate::inventory::TargetPort::Number(n) if *n == cp)
                                || (sp.target == crate::inventory::TargetPort::SamePort && sp.port == cp)
                        })
                    })
                    .map(|sp| sp.port)
                    .collect();
                let host = svc.fqdn();
                policy.destination_rules.iter().any(|dr| {
                    dr.host.specificity(&host).is_some()
                        && (if ports.is_empty() {
                            disables(dr, None)
                        } else {
                            ports.iter().all(|p| disables(dr, Some(*p)))
                        })
                })
            })
        };
        for port in disabled_ports {
            if covered(port) {
                continue;
            }
            let scope = port.map_or_else(|| "mtls.mode DISABLE".to_owned(), |p| format!("portLevelMtls {p}: DISABLE"));
            findings.push(Finding {
                origin: pa.meta.origin.clone(),
                kind: FindingKind::DisableIgnoredByAutoMtls,
                message: format!(
                    "{name}: {scope}, but auto mTLS clients infer the mode from mesh and namespace policy only and keep sending mTLS; add a DestinationRule with tls.mode DISABLE for the workload's service"
                ),
            });
        }
    }
}

fn gateways(mesh: &Mesh, findings: &mut Vec<Finding>) {
    let policy = &mesh.policy;
    for gw in &policy.gateways {
        let reference = gw.reference();
        let gw_ns = gw.meta.object.namespace.as_str();
        let bound: Vec<_> = policy.virtual_services.iter().filter(|vs| vs.gateways.contains(&reference)).collect();
        for server in &gw.servers {
            let passthrough = server.tls.is_some_and(GatewayTlsMode::passes_through);
            let server_desc = match server.tls {
                Some(mode) => mode.name().to_owned(),
                None => "no TLS".to_owned(),
            };
            for vs in &bound {
                if !vs.hosts.iter().any(|h| server.hosts.iter().any(|s| hosts_overlap(h, s))) {
                    continue;
                }
                let vs_name = vs.meta.object.to_string();
                for route in vs.routes.iter().filter(|r| r.ports.is_empty() || r.ports.contains(&server.port)) {
                    let mismatch = match route.kind {
                        RouteKind::Tls if !passthrough => Some(
                            "tls routes only match on PASSTHROUGH servers; this server terminates TLS, use http or tcp routes",
                        ),
                        RouteKind::Http if passthrough => {
                            Some("http routes never match on a PASSTHROUGH server; use tls routes (sniHosts)")
                        }
                        _ => None,
                    };
                    if let Some(why) = mismatch {
                        findings.push(Finding {
                            origin: vs.meta.origin.clone(),
                            kind: FindingKind::GatewayVirtualServiceMismatch,
                            message: format!(
                                "{vs_name}: Gateway {reference} port {} ({server_desc}): {why}",
                                server.port
                            ),
                        });
                    }
                    if !passthrough || route.kind == RouteKind::Http {
                        continue;
                    }
                    for (host, port) in &route.destinations {
                        let fqdn = expand_host(host, &vs.meta.object.namespace);
                        let Some(dr) =
                            policy.destination_rule_for(gw_ns, &gw.selector.0, &fqdn, fqdn.split('.').nth(1))
                        else {
                            continue;
                        };
                        if let Some(tls) = dr.tls_for(*port, None).filter(|t| t.originates_custom_tls()) {
                            findings.push(Finding {
                                origin: dr.meta.origin.at(tls.line),
                                kind: FindingKind::DoubleTls,
                                message: format!(
                                    "{}: Gateway {reference} port {} passes the client's TLS through to {fqdn} (via {vs_name}) and this rule originates {} TLS on top: double TLS",
                                    dr.meta.object, server.port, mode_name(tls.mode)
                                ),
                            });
                        }
                    }
                }
            }
        }
    }
}

fn services(mesh: &Mesh, findings: &mut Vec<Finding>) {
    for svc in mesh.inventory.services() {
        for sp in svc.ports.iter().filter(|sp| sp.declares_http() && TLS_PORTS.contains(&sp.port)) {
            findings.push(Finding {
                origin: svc.meta.origin.at(sp.line),
                kind: FindingKind::TlsToHttpPort,
                message: format!(
                    "Service {}/{} port {} is named for HTTP ({}) but {} is a TLS port: HTTPS sent to it is parsed as HTTP; name it https- or tls-",
                    svc.meta.object.namespace, svc.meta.object.name, sp.port, sp.name.as_deref().unwrap_or("appProtocol"), sp.port
                ),
            });
        }
    }
}
