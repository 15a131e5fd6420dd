//! The observer's own policy kind, for clusters without Istio (or to demand more than Istio
//! says): `observer.dev/v1alpha1` `Expectation`. Rules say what security traffic *to* some
//! workloads, namespaces or addresses must have; `allowPlaintext` lists plaintext flows that
//! are expected. See the README ("Expectation") for the format.

use std::net::IpAddr;

use super::RequiredSecurity;
use super::raw;
use crate::manifest::{At, Doc, Labels, Meta, Selector};

/// An address or a CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// `10.0.0.0/8`, `fd00::/8` or a single address.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr: addr.to_canonical(), prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Which ends of a leg a rule is about; every criterion given must hold (none: everything).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    pub namespaces: Vec<String>,
    pub labels: Selector,
    pub addresses: Vec<IpNet>,
}

impl Peers {
    /// How specifically these peers describe an end (higher wins), if they match it.
    /// `workload` is (namespace, labels) when the inventory knows the address.
    pub fn specificity(&self, ip: IpAddr, workload: Option<(&str, &Labels)>) -> Option<u8> {
        let mut score = 0;
        if !self.addresses.is_empty() {
            self.addresses.iter().any(|n| n.contains(ip)).then_some(())?;
            score += 1;
        }
        if !self.namespaces.is_empty() {
            let (ns, _) = workload?;
            self.namespaces.iter().any(|n| n == ns).then_some(())?;
            score += 2;
        }
        if !self.labels.is_empty() {
            let (_, labels) = workload?;
            self.labels.matches(labels).then_some(())?;
            score += 4;
        }
        Some(score)
    }
}

/// One `rules[]` entry: traffic to `to` (on `ports`, if given) must have `security`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectationRule {
    pub to: Peers,
    pub ports: Vec<u16>,
    pub security: RequiredSecurity,
    /// Lowest acceptable TLS minor version (2 = TLS 1.2); `None`: the default (1.2).
    pub min_tls_minor: Option<u8>,
    pub line: u32,
}

/// One `allowPlaintext[]` entry: plaintext from `from` to `to` (on `ports`) is expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowPlaintext {
    pub from: Peers,
    pub to: Peers,
    pub ports: Vec<u16>,
    pub reason: Option<String>,
    pub line: u32,
}

/// A validated Expectation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub meta: Meta,
    pub rules: Vec<ExpectationRule>,
    pub allow_plaintext: Vec<AllowPlaintext>,
}

/// Why an Expectation is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidExpectation {
    /// `security` is not mtls, tls, plaintext or any.
    #[error("unknown security {0:?} (expected mtls, tls, plaintext or any)")]
    UnknownSecurity(String),
    /// `minTlsVersion` is not 1.0, 1.1, 1.2 or 1.3.
    #[error("unknown minTlsVersion {0:?} (expected 1.0, 1.1, 1.2 or 1.3)")]
    UnknownTlsVersion(String),
    /// A port outside 1-65535.
    #[error("port {0} is not 1-65535")]
    InvalidPort(u32),
    /// An address that is neither an IP address nor a CIDR block.
    #[error("{0:?} is not an IP address or CIDR block")]
    InvalidAddress(String),
    /// An Expectation with neither rules nor allowPlaintext entries.
    #[error("spec needs rules or allowPlaintext")]
    Empty,
}

/// `"1.2"` to its minor version number.
pub fn tls_minor(version: &str) -> Option<u8> {
    match version.trim() {
        "1.0" => Some(0),
        "1.1" => Some(1),
        "1.2" => Some(2),
        "1.3" => Some(3),
        _ => None,
    }
}

type Errors = Vec<At<InvalidExpectation>>;

fn ports(doc: &Doc<raw::RawExpectationSpec>, raw: &[serde_saphyr::Spanned<u32>], errors: &mut Errors) -> Vec<u16> {
    raw.iter()
        .filter_map(|p| match u16::try_from(p.value).ok().filter(|p| *p > 0) {
            Some(port) => Some(port),
            None => {
                errors.push(At { line: doc.line(p), error: InvalidExpectation::InvalidPort(p.value) });
                None
            }
        })
        .collect()
}

fn peers(doc: &Doc<raw::RawExpectationSpec>, raw: &raw::RawPeers, errors: &mut Errors) -> Peers {
    let mut addresses = Vec::new();
    for a in &raw.addresses {
        match IpNet::parse(&a.value) {
            Some(net) => addresses.push(net),
            None => errors.push(At { line: doc.line(a), error: InvalidExpectation::InvalidAddress(a.value.clone()) }),
        }
    }
    Peers { namespaces: raw.namespaces.clone(), labels: Selector(raw.match_labels.clone()), addresses }
}

impl TryFrom<Doc<raw::RawExpectationSpec>> for Expectation {
    type Error = Errors;

    fn try_from(doc: Doc<raw::RawExpectationSpec>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        for rule in &doc.spec.rules {
            let line = doc.line(&rule.security);
            let security = match rule.security.value.to_ascii_lowercase().as_str() {
                "mtls" => RequiredSecurity::Mtls,
                "tls" => RequiredSecurity::Tls,
                "plaintext" => RequiredSecurity::Plaintext,
                "any" => RequiredSecurity::Any,
                other => {
                    errors.push(At { line, error: InvalidExpectation::UnknownSecurity(other.to_owned()) });
                    continue;
                }
            };
            let min_tls_minor = match &rule.min_tls_version {
                None => None,
                Some(v) => {
                    let minor = tls_minor(&v.value);
                    if minor.is_none() {
                        errors.push(At {
                            line: doc.line(v),
                            error: InvalidExpectation::UnknownTlsVersion(v.value.clone()),
                        });
                    }
                    minor
                }
            };
            let to = peers(&doc, &rule.to, &mut errors);
            let ports = ports(&doc, &rule.ports, &mut errors);
            rules.push(ExpectationRule { to, ports, security, min_tls_minor, line });
        }
        let mut allow_plaintext = Vec::new();
        for allow in &doc.spec.allow_plaintext {
            allow_plaintext.push(AllowPlaintext {
                from: peers(&doc, &allow.from, &mut errors),
                to: peers(&doc, &allow.to, &mut errors),
                ports: ports(&doc, &allow.ports, &mut errors),
                reason: allow.reason.clone(),
                // The entry itself has no span; its first spanned field or the object.
                line: allow
                    .ports
                    .first()
                    .map(|p| doc.line(p))
                    .or_else(|| allow.to.addresses.first().map(|a| doc.line(a)))
                    .unwrap_or(doc.meta.origin.line),
            });
        }
        if doc.spec.rules.is_empty() && doc.spec.allow_plaintext.is_empty() {
            errors.push(At { line: doc.meta.origin.line, error: InvalidExpectation::Empty });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { meta: doc.meta, rules, allow_plaintext })
    }
}
