//! Gateway and VirtualService: what a gateway accepts downstream (`servers[].tls.mode`) and, as
//! far as TLS matching needs, which routes of which VirtualServices are bound to it.

use super::raw;
use crate::manifest::{At, Doc, Meta, Selector};

/// `servers[].tls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GatewayTlsMode {
    /// Forward the client's TLS as-is, routed by SNI.
    Passthrough,
    /// Terminate TLS.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Forward Istio mTLS as-is (multi-network east-west gateways).
    AutoPassthrough,
    /// Terminate with Istio mTLS.
    IstioMutual,
    /// Terminate TLS; a client certificate is verified if sent.
    OptionalMutual,
}

impl GatewayTlsMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PASSTHROUGH" => Self::Passthrough,
            "SIMPLE" => Self::Simple,
            "MUTUAL" => Self::Mutual,
            "AUTO_PASSTHROUGH" => Self::AutoPassthrough,
            "ISTIO_MUTUAL" => Self::IstioMutual,
            "OPTIONAL_MUTUAL" => Self::OptionalMutual,
            _ => return None,
        })
    }

    /// The mode as Istio spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Passthrough => "PASSTHROUGH",
            Self::Simple => "SIMPLE",
            Self::Mutual => "MUTUAL",
            Self::AutoPassthrough => "AUTO_PASSTHROUGH",
            Self::IstioMutual => "ISTIO_MUTUAL",
            Self::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }

    /// The gateway forwards the client's TLS rather than terminating it.
    pub fn passes_through(self) -> bool {
        matches!(self, Self::Passthrough | Self::AutoPassthrough)
    }
}

/// One `servers[]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayServer {
    pub port: u16,
    /// `port.protocol`, upper case (HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS).
    pub protocol: String,
    /// Hosts without their `namespace/` prefix.
    pub hosts: Vec<String>,
    pub tls: Option<GatewayTlsMode>,
    pub https_redirect: bool,
    pub line: u32,
}

/// A validated Gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    pub meta: Meta,
    /// Selects the gateway pods (in any namespace).
    pub selector: Selector,
    pub servers: Vec<GatewayServer>,
}

/// Why a Gateway is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidGateway {
    /// A server without `port.number`, or a port outside 1-65535.
    #[error("server needs port.number 1-65535")]
    InvalidPort,
    /// `tls.mode` is not one of Istio's server TLS modes.
    #[error(
        "unknown server tls.mode {0:?} (expected PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL or OPTIONAL_MUTUAL)"
    )]
    UnknownTlsMode(String),
    /// A server without hosts.
    #[error("server needs at least one host")]
    NoHosts,
}

impl TryFrom<Doc<raw::RawGatewaySpec>> for Gateway {
    type Error = Vec<At<InvalidGateway>>;

    fn try_from(doc: Doc<raw::RawGatewaySpec>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let mut servers = Vec::new();
        for server in &doc.spec.servers {
            let number = server.port.as_ref().and_then(|p| p.number.as_ref());
            let line = number.map_or(doc.meta.origin.line, |n| doc.line(n));
            let Some(port) = number.and_then(|n| u16::try_from(n.value).ok()).filter(|p| *p > 0) else {
                errors.push(At { line, error: InvalidGateway::InvalidPort });
                continue;
            };
            if server.hosts.is_empty() {
                errors.push(At { line, error: InvalidGateway::NoHosts });
            }
            let tls = match server.tls.as_ref().and_then(|t| t.mode.as_ref()) {
                None if server.tls.is_some() => Some(GatewayTlsMode::Passthrough),
                None => None,
                Some(m) => match GatewayTlsMode::parse(&m.value) {
                    Some(mode) => Some(mode),
                    None => {
                        errors.push(At { line: doc.line(m), error: InvalidGateway::UnknownTlsMode(m.value.clone()) });
                        None
                    }
                },
            };
            let port_spec = server.port.as_ref();
            servers.push(GatewayServer {
                port,
                protocol: port_spec
                    .and_then(|p| p.protocol.as_ref())
                    .map(|p| p.value.to_ascii_uppercase())
                    .unwrap_or_default(),
                hosts: server.hosts.iter().map(|h| strip_namespace(h).to_owned()).collect(),
                // `tls` with only httpsRedirect is not a TLS server.
                tls: tls.filter(|_| {
                    server.tls.as_ref().is_some_and(|t| t.mode.is_some() || t.https_redirect != Some(true))
                }),
                https_redirect: server.tls.as_ref().and_then(|t| t.https_redirect).unwrap_or(false),
                line,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self { selector: Selector(doc.spec.selector.clone()), servers, meta: doc.meta })
    }
}

fn strip_namespace(host: &str) -> &str {
    host.split_once('/').map_or(host, |(_, h)| h)
}

/// Whether a host pattern (`*`, `*.example.com`, `example.com`) covers a name.
pub fn host_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    match pattern.strip_prefix('*') {
        Some(suffix) => name.ends_with(suffix),
        None => pattern == name,
    }
}

/// Two host patterns can match a common name.
pub fn hosts_overlap(a: &str, b: &str) -> bool {
    host_matches(a, b) || host_matches(b, a)
}

/// Which route list of a VirtualService a route is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    Http,
    Tls,
    Tcp,
}

/// One route, as far as TLS matching needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub kind: RouteKind,
    /// `match[].port` values (empty: any port).
    pub ports: Vec<u16>,
    /// `match[].sniHosts`.
    pub sni_hosts: Vec<String>,
    /// Destination hosts (as written) and ports.
    pub destinations: Vec<(String, Option<u16>)>,
}

/// A validated VirtualService (the parts that matter for TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualService {
    pub meta: Meta,
    pub hosts: Vec<String>,
    /// Bound gateways as `namespace/name` (`mesh` for sidecars).
    pub gateways: Vec<String>,
    pub routes: Vec<Route>,
}

/// Why a VirtualService is rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidVirtualService {
    /// `spec.hosts` is empty.
    #[error("spec.hosts needs at least one host")]
    NoHosts,
    /// A route destination without a host.
    #[error("route destination needs a host")]
    MissingDestinationHost,
}

impl TryFrom<Doc<raw::RawVirtualServiceSpec>> for VirtualService {
    type Error = Vec<At<InvalidVirtualService>>;

    fn try_from(doc: Doc<raw::RawVirtualServiceSpec>) -> Result<Self, Self::Error> {
        let mut errors = Vec::new();
        let spec = &doc.spec;
        let namespace = doc.meta.object.namespace.clone();
        if spec.hosts.is_empty() {
            errors.push(At { line: doc.meta.origin.line, error: InvalidVirtualService::NoHosts });
        }
        let qualify = |g: &String| {
            if g == "mesh" || g.contains('/') { g.clone() } else { format!("{namespace}/{g}") }
        };
        let mut routes = Vec::new();
        for (kind, list) in [(RouteKind::Http, &spec.http), (RouteKind::Tls, &spec.tls), (RouteKind::Tcp, &spec.tcp)] {
            for route in list {
                let mut destinations = Vec::new();
                for dest in route.route.iter().filter_map(|r| r.destination.as_ref()) {
                    match &dest.host {
                        Some(h) => destinations.push((
                            h.value.clone(),
                            dest.port
                                .as_ref()
                                .and_then(|p| p.number.as_ref())
                                .and_then(|n| u16::try_from(n.value).ok()),
                        )),
                        None => errors.push(At {
                            line: doc.meta.origin.line,
                            error: InvalidVirtualService::MissingDestinationHost,
                        }),
                    }
                }
                routes.push(Route {
                    kind,
                    ports: route.matches.iter().filter_map(|m| m.port).filter_map(|p| u16::try_from(p).ok()).collect(),
                    sni_hosts: route.matches.iter().flat_map(|m| m.sni_hosts.iter().cloned()).collect(),
                    destinations,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            hosts: spec.hosts.clone(),
            gateways: spec.gateways.iter().map(qualify).collect(),
            routes,
            meta: doc.meta,
        })
    }
}

impl Gateway {
    /// `namespace/name`, as VirtualServices reference it.
    pub fn reference(&self) -> String {
        format!("{}/{}", self.meta.object.namespace, self.meta.object.name)
    }
}
