//! The sidecar of a mesh pod: Istio's iptables capture rules (loaded with iptables-restore in the
//! pod) and an HAProxy 2.6 configuration playing Envoy (outbound 15001 originating Istio-style
//! mTLS, inbound 15006 terminating it, STRICT or PERMISSIVE). docs/TESTING.md describes the testbed.

use std::{fmt::Write as _, net::Ipv4Addr, path::Path};

use super::Sidecar;

/// uid and gid the sidecar runs as; Istio's capture rules exempt this owner.
pub const PROXY_UID: u32 = 1337;
/// Outbound capture port (Envoy's virtualOutbound).
pub const OUTBOUND_PORT: u16 = 15001;
/// Inbound capture port (Envoy's virtualInbound).
pub const INBOUND_PORT: u16 = 15006;
/// Source address of the sidecar's connections to the app (Istio's local inbound leg).
pub const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6";
/// ALPN a sidecar offers for ISTIO_MUTUAL.
pub const ISTIO_ALPN: &str = "istio-peer-exchange,istio";

/// Istio's SNI for a service port: `outbound_.<port>_._.<svc>.<ns>.svc.cluster.local`.
pub fn istio_sni(port: u16, service: &str, namespace: &str) -> String {
    format!("outbound_.{port}_._.{service}.{namespace}.svc.cluster.local")
}

/// Istio's capture rules (istio-iptables), nat table, as iptables-restore input.
pub fn iptables_rules() -> String {
    let uid = PROXY_UID;
    format!(
        "*nat\n\
         :PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
         :ISTIO_INBOUND - [0:0]\n:ISTIO_IN_REDIRECT - [0:0]\n:ISTIO_OUTPUT - [0:0]\n:ISTIO_REDIRECT - [0:0]\n\
         -A PREROUTING -p tcp -j ISTIO_INBOUND\n\
         -A OUTPUT -p tcp -j ISTIO_OUTPUT\n\
         -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN\n\
         -A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN\n\
         -A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN\n\
         -A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN\n\
         -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT\n\
         -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_PORT}\n\
         -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_PORT}\n\
         -A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN\n\
         -A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner {uid} -j ISTIO_IN_REDIRECT\n\
         -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner {uid} -j RETURN\n\
         -A ISTIO_OUTPUT -m owner --uid-owner {uid} -j RETURN\n\
         -A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner {uid} -j ISTIO_IN_REDIRECT\n\
         -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner {uid} -j RETURN\n\
         -A ISTIO_OUTPUT -m owner --gid-owner {uid} -j RETURN\n\
         -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN\n\
         -A ISTIO_OUTPUT -j ISTIO_REDIRECT\n\
         COMMIT\n"
    )
}

/// A destination in the mesh: traffic to it is upgraded to mTLS with this SNI.
#[derive(Debug, Clone)]
pub struct MeshDestination {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub sni: String,
}

/// What one sidecar needs to know.
#[derive(Debug, Clone)]
pub struct SidecarConfig<'a> {
    pub mode: Sidecar,
    /// Certificate + key of this pod (SPIFFE URI SAN), HAProxy's `crt`.
    pub combined_pem: &'a Path,
    pub ca: &'a Path,
    pub destinations: &'a [MeshDestination],
    /// Cap the originated and accepted TLS at 1.2 (client Certificate in cleartext).
    pub tls12_only: bool,
}

/// The HAProxy configuration. Paths go in double quotes (HAProxy expands `${VAR}` only there).
pub fn haproxy_config(config: &SidecarConfig<'_>) -> String {
    let crt = config.combined_pem.display();
    let ca = config.ca.display();
    let max_ver = if config.tls12_only { " ssl-max-ver TLSv1.2" } else { "" };
    let tls_in = format!("ssl crt \"{crt}\" ca-file \"{ca}\" verify required alpn {ISTIO_ALPN},h2,http/1.1{max_ver}");
    let mut cfg = String::from(
        "global\n  nbthread 1\n\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n",
    );
    // Outbound: the original destination picks mTLS (in the mesh) or plaintext passthrough.
    let _ = writeln!(cfg, "frontend outbound\n  bind 0.0.0.0:{OUTBOUND_PORT}");
    for (i, dest) in config.destinations.iter().enumerate() {
        let _ = writeln!(cfg, "  use_backend mesh_{i} if {{ dst {} }} {{ dst_port {} }}", dest.ip, dest.port);
    }
    cfg.push_str("  default_backend passthrough\n\n");
    cfg.push_str("backend passthrough\n  server original 0.0.0.0:0\n\n");
    for (i, dest) in config.destinations.iter().enumerate() {
        let _ = writeln!(
            cfg,
            "backend mesh_{i}\n  server original 0.0.0.0:0 ssl crt \"{crt}\" ca-file \"{ca}\" \
             verify required sni str({}) alpn {ISTIO_ALPN}{max_ver}\n",
            dest.sni
        );
    }
    // Inbound: terminate mTLS (STRICT), or sniff and accept both (PERMISSIVE).
    match config.mode {
        Sidecar::Strict | Sidecar::None => {
            let _ = writeln!(cfg, "frontend inbound\n  bind 0.0.0.0:{INBOUND_PORT} {tls_in}\n  default_backend app\n");
        }
        Sidecar::Permissive => {
            let _ = writeln!(
                cfg,
                "frontend inbound\n  bind 0.0.0.0:{INBOUND_PORT}\n  tcp-request inspect-delay 5s\n  \
                 tcp-request content accept if {{ req.ssl_hello_type 1 }}\n  \
                 tcp-request content accept if {{ req.len gt 0 }}\n  \
                 use_backend inbound_mtls if {{ req.ssl_hello_type 1 }}\n  default_backend app\n\n\
                 backend inbound_mtls\n  server inner abns@inbound-mtls send-proxy-v2\n\n\
                 frontend inbound_mtls_terminate\n  bind abns@inbound-mtls accept-proxy {tls_in}\n  \
                 default_backend app\n"
            );
        }
    }
    // To the app: keep the original port, from 127.0.0.6 as Envoy does.
    let _ = writeln!(cfg, "backend app\n  server app 127.0.0.1 source {INBOUND_PASSTHROUGH_SOURCE}");
    cfg
}
