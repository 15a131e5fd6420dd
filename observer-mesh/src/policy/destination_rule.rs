//! DestinationRule: what a client sidecar (or gateway) sends to a destination (docs/MESH.md, "DestinationRule").
//! Lookup: the client's namespace, then the service's namespace if the rule is exported to the
//! client, then the root namespace; within a namespace the most specific host wins, and a rule
//! whose workloadSelector matches the client beats a selector-less one. Within the rule: subset
//! port-level > subset > top-level port-level > top-level, and a port-level setting replaces the
//! level below wholesale (a port-level entry without `tls` means no `tls`, i.e. auto mTLS).

use std::collections::BTreeSet;

use super::{Policy, raw};
use crate::inventory::CLUSTER_DOMAIN;
use crate::manifest::{At, Doc, Labels, Meta, ObjectRef, Selector};

/// `tls.mode` of a DestinationRule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientTlsMode {
    /// Send as the application wrote it.
    Disable,
    /// Originate TLS.
    Simple,
    /// Originate TLS with a client certificate the rule names.
    Mutual,
    /// Originate Istio mTLS with the workload certificate.
    IstioMutual,
}

/// Client TLS settings of one level of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    pub mode: ClientTlsMode,
    /// `caCertificates` or `credentialName` is set: the server certificate is verified.
    pub has_ca: bool,
    /// `clientCertificate` or `credentialName` is set.
    pub has_client_cert: bool,
    pub insecure_skip_verify: bool,
    /// Line of `tls.mode`.
    pub line: u32,
}

impl ClientTls {
    /// TLS originated by the proxy that is not Istio's own (SIMPLE or MUTUAL).
    pub fn originates_custom_tls(&self) -> bool {
        matches!(self.mode, ClientTlsMode::Simple | ClientTlsMode::Mutual)
    }
}

/// A `trafficPolicy` as far as TLS goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficPolicy {
    pub tls: Option<ClientTls>,
    /// `portLevelSettings`: (service port, its `tls`, which replaces the level's wholesale).
    pub port_level: Vec<(u16, Option<ClientTls>)>,
}

/// A named subset of the host's endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subset {
    pub name: String,
    pub labels: Labels,
    pub policy: Option<TrafficPolicy>,
}

/// The `host` of a rule, expanded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A fully qualified name.
    Exact(String),
    /// `*.suffix`: the suffix, with its leading dot.
    Wildcard(String),
    /// `*`.
    Any,
}

impl Host {
    /// Expands a short name relative to the rule's namespace, as Istio does.
    fn parse(text: &str, namespace: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        if text == "*" {
            return Some(Self::Any);
        }
        if let Some(suffix) = text.strip_prefix('*') {
            return (suffix.starts_with('.') && !suffix[1..].contains('*') && suffix.len() > 1)
                .then(|| Self::Wildcard(suffix.to_owned()));
        }
        if text.is_empty() || text.contains('*') {
            return None;
        }
        Some(if text.contains('.') {
            Self::Exact(text)
        } else {
            Self::Exact(format!("{text}.{namespace}.{CLUSTER_DOMAIN}"))
        })
    }

    /// How specifically this host matches a fully qualified name (higher wins), if at all.
    pub fn specificity(&self, fqdn: &str) -> Option<usize> {
        match self {
            Self::Exact(h) => (h == fqdn).then_some(usize::MAX),
            Self::Wildcard(suffix) => fqdn.ends_with(suffix.as_str()).then_some(suffix.len()),
            Self::Any => Some(0),
        }
    }
}

/// `exportTo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportTo {
    /// `*` or no `exportTo`.
    pub all: bool,
    /// `.`
    pub own_namespace: bool,
    pub namespaces: BTreeSet<String>,
}

impl ExportTo {
    /// Whether a rule of `rule_namespace` is visible to clients in `client_namespace`.
    pub fn visible_to(&self, rule_namespace: &str, client_namespace: &str) -> bool {
        self.all
            || (self.own_namespace && rule_namespace == client_namespace)
            || self.namespaces.contains(client_namespace)
    }
}

/// A validated DestinationRule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationRule {
    pub meta: Meta,
    pub host: Host,
    /// The host as written.
    pub host_text: String,
    pub export_to: ExportTo,
    pub workload_selector: Option<Selector>,
    pub policy: TrafficPolicy,
    pub subsets: Vec<Subset>,
}

/// Why a DestinationRule is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidDestinationRule {
    /// `spec.host` is missing.
    #[error("spec.host is required")]
    MissingHost,
    /// `spec.host` is empty or uses `*` other than as a leading label.
    #[error("invalid host {0:?}")]
    InvalidHost(String),
    /// `tls.mode` is not DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL.
    #[error("unknown tls.mode {0:?} (expected DISABLE, SIMPLE, MUTUAL or ISTIO_MUTUAL)")]
    UnknownTlsMode(String),
    /// A `portLevelSettings` entry without `port.number`, or a port outside 1-65535.
    #[error("portLevelSettings entry needs port.number 1-65535")]
    InvalidPort,
    /// A subset without a name.
    #[error("subset without a name")]
    UnnamedSubset,
    /// Two subsets of one rule with the same name.
    #[error("duplicate subset name {0:?}")]
    DuplicateSubset(String),
}

fn client_tls(
    raw: &raw::RawClientTls,
    doc_line: &dyn Fn(&serde_saphyr::Spanned<String>) -> u32,
    fallback_line: u32,
    errors: &mut Vec<At<InvalidDestinationRule>>,
) -> Option<ClientTls> {
    let (mode, line) = match &raw.mode {
        // No mode: DISABLE is the proto default.
        None => (ClientTlsMode::Disable, fallback_line),
        Some(m) => {
            let mode = match m.value.as_str() {
                "DISABLE" => ClientTlsMode::Disable,
                "SIMPLE" => ClientTlsMode::Simple,
                "MUTUAL" => ClientTlsMode::Mutual,
                "ISTIO_MUTUAL" => ClientTlsMode::IstioMutual,
                other => {
                    errors.push(At {
                        line: doc_line(m),
                        error: InvalidDestinationRule::UnknownTlsMode(other.to_owned()),
                    });
                    return None;
                }
            };
            (mode, doc_line(m))
        }
    };
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    Some(ClientTls {
        mode,
        has_ca: set(&raw.ca_certificates) || set(&raw.credential_name),
        has_client_cert: set(&raw.client_certificate) || set(&raw.credential_name),
        insecure_skip_verify: raw.insecure_skip_verify.unwrap_or(false),
        line,
    })
}

fn traffic_policy(
    raw: &raw::RawTrafficPolicy,
    doc_line: &dyn Fn(&serde_saphyr::Spanned<String>) -> u32,
    object_line: u32,
    errors: &mut Vec<At<InvalidDestinationRule>>,
) -> TrafficPolicy {
    let tls = raw.tls.as_ref().and_then(|t| client_tls(t, doc_line, object_line, errors));
    let mut port_level = Vec::new();
    for entry in &raw.port_level_settings {
        let number = entry.port.as_ref().and_then(|p| p.number.as_ref());
        let port = number.and_then(|n| u16::try_from(n.value).ok()).filter(|p| *p > 0);
        let Some(port) = port else {
            errors.push(At { line: object_line, error: InvalidDestinationRule::InvalidPort });
            continue;
        };
        let tls = entry.tls.as_ref().and_then(|t| client_tls(t, doc_line, object_line, errors));
        port_level.push((port, tls));
    }
    TrafficPolicy { tls, port_level }
}

impl TryFrom<Doc<raw::RawDestinationRuleSpec>> for DestinationRule {
    type Error = Vec<At<InvalidDestinationRule>>;

    fn try_from(doc: Doc<raw::RawDestinationRuleSpec>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let line = doc.meta.origin.line;
        let doc_line = |s: &serde_saphyr::Spanned<String>| doc.line(s);
        let spec = &doc.spec;
        let namespace = doc.meta.object.namespace.clone();
        let host = match &spec.host {
            None => {
                errors.push(At { line, error: InvalidDestinationRule::MissingHost });
                None
            }
            Some(h) => Host::parse(&h.value, &namespace).or_else(|| {
                errors.push(At { line: doc.line(h), error: InvalidDestinationRule::InvalidHost(h.value.clone()) });
                None
            }),
        };
        let policy =
            spec.traffic_policy.as_ref().map(|p| traffic_policy(p, &doc_line, line, &mut errors)).unwrap_or_default();
        let mut subsets: Vec<Subset> = Vec::new();
        for raw_subset in &spec.subsets {
            let Some(name) = raw_subset.name.as_ref().filter(|n| !n.value.is_empty()) else {
                errors.push(At { line, error: InvalidDestinationRule::UnnamedSubset });
                continue;
            };
            if subsets.iter().any(|s| s.name == name.value) {
                errors.push(At {
                    line: doc.line(name),
                    error: InvalidDestinationRule::DuplicateSubset(name.value.clone()),
                });
            }
            subsets.push(Subset {
                name: name.value.clone(),
                labels: raw_subset.labels.clone(),
                policy: raw_subset
                    .traffic_policy
                    .as_ref()
                    .map(|p| traffic_policy(p, &doc_line, doc.line(name), &mut errors)),
            });
        }
        let export_to = if spec.export_to.is_empty() {
            ExportTo { all: true, own_namespace: false, namespaces: BTreeSet::new() }
        } else {
            let mut export = ExportTo { all: false, own_namespace: false, namespaces: BTreeSet::new() };
            for target in &spec.export_to {
                match target.as_str() {
                    "*" => export.all = true,
                    "." => export.own_namespace = true,
                    "~" => {}
                    ns => {
                        export.namespaces.insert(ns.to_owned());
                    }
                }
            }
            export
        };
        match host {
            Some(host) if errors.is_empty() => Ok(Self {
                host,
                host_text: spec.host.as_ref().map(|h| h.value.clone()).unwrap_or_default(),
                export_to,
                workload_selector: spec
                    .workload_selector
                    .as_ref()
                    .map(|s| Selector(s.match_labels.clone()))
                    .filter(|s| !s.is_empty()),
                policy,
                subsets,
                meta: doc.meta,
            }),
            _ => Err(errors),
        }
    }
}

/// What a client sends to a destination port, and the rule that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsOrigination {
    /// The rule that applies, if any.
    pub rule: Option<ObjectRef>,
    /// Its effective `tls` for the port and subset; `None`: auto mTLS decides (when enabled).
    pub tls: Option<ClientTls>,
}

impl DestinationRule {
    /// The effective `tls` for a service port and (optionally) a subset.
    pub fn tls_for(&self, port: Option<u16>, subset: Option<&str>) -> Option<&ClientTls> {
        fn port_level(policy: &TrafficPolicy, port: Option<u16>) -> Option<Option<&ClientTls>> {
            let port = port?;
            policy.port_level.iter().find(|(n, _)| *n == port).map(|(_, tls)| tls.as_ref())
        }
        let mut tls = self.policy.tls.as_ref();
        if let Some(port_tls) = port_level(&self.policy, port) {
            tls = port_tls;
        }
        let subset_policy =
            subset.and_then(|name| self.subsets.iter().find(|s| s.name == name)).and_then(|s| s.policy.as_ref());
        if let Some(policy) = subset_policy {
            if policy.tls.is_some() {
                tls = policy.tls.as_ref();
            }
            if let Some(port_tls) = port_level(policy, port) {
                tls = port_tls;
            }
        }
        tls
    }
}

impl Policy {
    /// The DestinationRule a client (namespace, labels) uses for a host (FQDN) of a service
    /// in `service_namespace`.
    pub fn destination_rule_for(
        &self,
        client_namespace: &str,
        client_labels: &Labels,
        host: &str,
        service_namespace: Option<&str>,
    ) -> Option<&DestinationRule> {
        let host = host.to_ascii_lowercase();
        // (host specificity, selector matched, then age order via stable sort of the input).
        let best_in = |namespace: &str, local: bool| {
            self.destination_rules
                .iter()
                .filter(|dr| dr.meta.object.namespace == namespace)
                .filter(|dr| local || dr.export_to.visible_to(namespace, client_namespace))
                .filter_map(|dr| {
                    let specificity = dr.host.specificity(&host)?;
                    let selected = match &dr.workload_selector {
                        None => false,
                        // A selector only applies to clients in the rule's own namespace.
                        Some(sel) if local && sel.matches(client_labels) => true,
                        Some(_) => return None,
                    };
                    Some(((specificity, selected), dr))
                })
                // max_by_key keeps the last maximum; iterate newest-first so the oldest wins ties.
                .rev()
                .max_by_key(|(key, _)| *key)
                .map(|(_, dr)| dr)
        };
        let mut order = vec![(client_namespace, true)];
        if let Some(ns) = service_namespace.filter(|ns| *ns != client_namespace) {
            order.push((ns, false));
        }
        if self.mesh.root_namespace != client_namespace {
            order.push((self.mesh.root_namespace.as_str(), false));
        }
        order.into_iter().find_map(|(ns, local)| best_in(ns, local))
    }

    /// What a client sends to `host:port` (service port), subset `subset` when known.
    pub fn tls_origination(
        &self,
        client_namespace: &str,
        client_labels: &Labels,
        host: &str,
        service_namespace: Option<&str>,
        port: Option<u16>,
        subset: Option<&str>,
    ) -> TlsOrigination {
        match self.destination_rule_for(client_namespace, client_labels, host, service_namespace) {
            None => TlsOrigination { rule: None, tls: None },
            Some(dr) => TlsOrigination { rule: Some(dr.meta.object.clone()), tls: dr.tls_for(port, subset).cloned() },
        }
    }
}
