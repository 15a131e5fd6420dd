//! Which kind of leg (docs/MESH.md, "Legs") a connection is, from the sockets' own addresses, the owning
//! processes and what the inventory knows about each end. A pure function over [`LegFacts`];
//! [`LegFacts::gather`] fills them from a finished leg and the mesh.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use observer_wire::legs::{LegRecord, Peer};

use super::LegKind;
use crate::{Mesh, inventory::Pod};

/// Envoy (and ztunnel, and the project's HAProxy stand-in) run as this uid; its own traffic is
/// exempt from the iptables redirect.
pub const PROXY_UID: u32 = 1337;
/// Process names of mesh proxies, for nodes where the proxy does not run as 1337.
pub const PROXY_COMMS: [&str; 3] = ["envoy", "pilot-agent", "ztunnel"];
/// Envoy's outbound capture port (local outbound legs end here).
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
/// Envoy's inbound capture port (external inbound legs are redirected here).
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// Ambient mode's HBONE port (ztunnel mTLS).
pub const HBONE_PORT: u16 = 15008;
/// Source address of Envoy's local inbound connections to the application.
pub const LOCAL_INBOUND_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 6);
/// Its IPv6 counterpart.
pub const LOCAL_INBOUND_V6: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 6);

/// What one end of a leg is known to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndFacts {
    /// Owner uid and whether its process name is a mesh proxy, when the socket is on this node.
    pub process: Option<(u32, bool)>,
    /// `Some(has_sidecar)` when the inventory knows the address.
    pub sidecar: Option<bool>,
    /// The address is a gateway pod.
    pub gateway: bool,
}

impl EndFacts {
    fn is_proxy(&self) -> bool {
        self.process.is_some_and(|(uid, proxy_comm)| uid == PROXY_UID || proxy_comm)
    }
}

/// Everything leg identification looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegFacts {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub client_end: EndFacts,
    pub server_end: EndFacts,
}

/// Whether a pod is a gateway: selected by a Gateway, or labelled as Istio's gateways are.
pub fn is_gateway(pod: &Pod, mesh: &Mesh) -> bool {
    mesh.policy.gateways.iter().any(|gw| !gw.selector.is_empty() && gw.selector.matches(&pod.labels))
        || pod.labels.get("istio").is_some_and(|v| v.ends_with("gateway"))
        || pod.labels.contains_key("gateway.networking.k8s.io/gateway-name")
}

impl LegFacts {
    /// Facts of a finished leg, resolved against a mesh's inventory and gateways.
    pub fn gather(leg: &LegRecord, mesh: &Mesh) -> Self {
        let end = |peer: &Peer| {
            let pod = mesh.inventory.pod_by_ip(peer.addr.ip());
            EndFacts {
                process: peer.process.as_ref().map(|p| (p.uid, PROXY_COMMS.contains(&&*p.comm))),
                sidecar: pod.map(|p| p.has_sidecar),
                gateway: pod.is_some_and(|p| is_gateway(p, mesh)),
            }
        };
        Self {
            client: leg.client.addr,
            server: leg.server.addr,
            client_end: end(&leg.client),
            server_end: end(&leg.server),
        }
    }
}

fn is_local_inbound_source(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4 == LOCAL_INBOUND_V4,
        IpAddr::V6(v6) => v6 == LOCAL_INBOUND_V6,
    }
}

/// The leg kind (docs/MESH.md, "Legs"). Rules in order:
/// 1. to port 15008: `hbone`;
/// 2. from 127.0.0.6 / ::6: `local_inbound` (Envoy to the application);
/// 3. to port 15001: `local_outbound` (the application to Envoy);
/// 4. from a proxy process (uid 1337 or a proxy name): `gateway_upstream` from a gateway pod,
///    `unknown` between loopback addresses (the proxy's own plumbing), else `external_outbound`;
/// 5. to a gateway pod: `gateway_downstream`;
/// 6. to port 15006, or to a pod with a sidecar: `external_inbound`;
/// 7. from a non-proxy process in a pod with a sidecar: `local_outbound` (its socket sees the
///    original destination, the connection ends at its own sidecar) — unless the server's socket
///    is seen too and is not a proxy: then the app bypassed its sidecar (`direct`, or
///    `external_inbound` by rule 6 when the server pod has a sidecar);
/// 8. from a pod with a sidecar (process not seen): `external_outbound`; from a gateway pod:
///    `gateway_upstream`;
/// 9. an end is known (in the inventory or by its process) and none has a sidecar: `direct`;
/// 10. otherwise `unknown`.
pub fn identify_leg(facts: &LegFacts) -> LegKind {
    let (client, server) = (&facts.client_end, &facts.server_end);
    let server_port = facts.server.port();
    if server_port == HBONE_PORT {
        return LegKind::Hbone;
    }
    if is_local_inbound_source(facts.client.ip()) {
        return LegKind::LocalInbound;
    }
    if server_port == OUTBOUND_CAPTURE_PORT {
        return LegKind::LocalOutbound;
    }
    if client.is_proxy() {
        if client.gateway {
            return LegKind::GatewayUpstream;
        }
        if facts.client.ip().is_loopback() && facts.server.ip().is_loopback() {
            return LegKind::Unknown;
        }
        return LegKind::ExternalOutbound;
    }
    if server.gateway {
        return LegKind::GatewayDownstream;
    }
    // Both sockets seen and neither is a proxy: no sidecar took part in this connection.
    let app_to_app = client.process.is_some() && server.process.is_some() && !server.is_proxy();
    if server_port == INBOUND_CAPTURE_PORT || server.sidecar == Some(true) {
        // An application in a sidecar pod calling another sidecar pod still talks to its own
        // sidecar first.
        if client.sidecar == Some(true) && client.process.is_some() && !app_to_app {
            return LegKind::LocalOutbound;
        }
        return LegKind::ExternalInbound;
    }
    if client.sidecar == Some(true) {
        if app_to_app {
            return LegKind::Direct;
        }
        return if client.process.is_some() { LegKind::LocalOutbound } else { LegKind::ExternalOutbound };
    }
    if client.gateway {
        return LegKind::GatewayUpstream;
    }
    let known = |end: &EndFacts| end.sidecar.is_some() || end.process.is_some();
    if known(client) || known(server) {
        return LegKind::Direct;
    }
    LegKind::Unknown
}
