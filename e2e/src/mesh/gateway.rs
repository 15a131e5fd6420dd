//! An Istio-like ingress gateway pod: HAProxy as uid 1337 (no capture rules: gateways run the
//! proxy as the workload) terminating client TLS on 443 with the gateway's certificate (a
//! Gateway server in SIMPLE mode) and originating Istio mTLS to a backend pod's sidecar (the
//! gateway's upstream leg), plus its Pod, Service and Gateway manifests.

use std::{fmt::Write as _, net::IpAddr, path::Path};

use super::sidecar::{ISTIO_ALPN, PROXY_UID};
use crate::{
    pki::{KeyType, Leaf, Pki, spiffe_id},
    process::{Child, Spawn},
    tempdir::TempDir,
    topology::Pod,
};

/// The HTTPS port the gateway listens on.
pub const GATEWAY_PORT: u16 = 443;

/// A running ingress gateway.
#[derive(Debug)]
pub struct IngressGateway {
    pub name: String,
    /// The host its Gateway server accepts (the SNI clients send).
    pub host: String,
    /// The backend pod it forwards to.
    pub backend: String,
    proxy: Child,
}

impl IngressGateway {
    pub fn proxy_pid(&self) -> u32 {
        self.proxy.pid()
    }

    pub fn proxy_logs(&self) -> String {
        self.proxy.logs()
    }
}

/// Where the gateway forwards, and how.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub ip: IpAddr,
    pub port: u16,
    /// Istio SNI of the backend's service.
    pub sni: String,
}

/// The public host name of a gateway.
pub fn gateway_host(name: &str) -> String {
    format!("{name}.example.test")
}

/// Issues its certificates, writes its HAProxy configuration and starts it in `pod`.
pub(super) fn start(
    pod: &Pod,
    namespace: &str,
    backend: &str,
    upstream: &Upstream,
    pki: &Pki,
    config_dir: &TempDir,
) -> anyhow::Result<IngressGateway> {
    let name = pod.name();
    let host = gateway_host(name);
    // The certificate clients see, and the workload identity it presents upstream.
    let server_leaf = pki.issue(&format!("{name}-server"), KeyType::EcdsaP256, &[&host], None)?;
    let workload = pki.issue(&format!("{name}-workload"), KeyType::Rsa2048, &[], Some(&spiffe_id(namespace, name)))?;
    let cfg = haproxy_config(&server_leaf, &workload, pki.ca_cert(), upstream);
    let cfg_path = config_dir.write(&format!("{name}.gateway.cfg"), cfg.as_bytes())?;
    // Istio's gateways bind 443 unprivileged the same way.
    pod.netns().exec("sysctl", &["-q", "-w", "net.ipv4.ip_unprivileged_port_start=0"])?;
    let mut proxy = Spawn::new(pod.ns(), "haproxy")
        .user(PROXY_UID, PROXY_UID)
        .args(["-db", "-f"])
        .arg(cfg_path.to_string_lossy())
        .start()?;
    proxy.wait_listening(GATEWAY_PORT)?;
    Ok(IngressGateway { name: name.to_owned(), host, backend: backend.to_owned(), proxy })
}

fn haproxy_config(server: &Leaf, workload: &Leaf, ca: &Path, upstream: &Upstream) -> String {
    let target = match upstream.ip {
        IpAddr::V4(v4) => format!("{v4}:{}", upstream.port),
        IpAddr::V6(v6) => format!("[{v6}]:{}", upstream.port),
    };
    let mut cfg = String::from(
        "global\n  nbthread 1\n\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\n",
    );
    let _ = writeln!(
        cfg,
        "frontend https\n  bind 0.0.0.0:{GATEWAY_PORT} ssl crt \"{}\"\n  default_backend upstream\n",
        server.combined.display()
    );
    let _ = writeln!(
        cfg,
        "backend upstream\n  server backend {target} ssl crt \"{}\" ca-file \"{}\" verify required sni str({}) alpn {ISTIO_ALPN}",
        workload.combined.display(),
        ca.display(),
        upstream.sni
    );
    cfg
}

/// The gateway's Pod (labels `istio: ingressgateway`, the proxy as its only container, as
/// Istio's gateway deployments have), its Service, and a Gateway with one SIMPLE TLS server.
pub fn manifests(name: &str, namespace: &str, ip: IpAddr) -> Vec<(String, String)> {
    let host = gateway_host(name);
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    \
         app: {name}\n    istio: ingressgateway\nspec:\n  serviceAccountName: {name}\n  containers:\n  \
         - name: istio-proxy\n    image: docker.io/istio/proxyv2:1.24.0\n    args: [\"proxy\", \"router\"]\n    \
         ports:\n    - name: https\n      containerPort: {GATEWAY_PORT}\n      protocol: TCP\n    \
         securityContext:\n      runAsUser: {PROXY_UID}\nstatus:\n  phase: Running\n  podIP: {ip}\n  podIPs:\n  - ip: {ip}\n"
    );
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  selector:\n    \
         istio: ingressgateway\n  ports:\n  - name: https\n    port: {GATEWAY_PORT}\n    targetPort: {GATEWAY_PORT}\n    \
         protocol: TCP\n"
    );
    let gateway = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  \
         selector:\n    istio: ingressgateway\n  servers:\n  - port:\n      number: {GATEWAY_PORT}\n      name: https\n      \
         protocol: HTTPS\n    hosts:\n    - \"{host}\"\n    tls:\n      mode: SIMPLE\n      credentialName: {name}-cert\n"
    );
    vec![
        (format!("pod-{name}.yaml"), pod),
        (format!("service-{name}.yaml"), service),
        (format!("gateway-{name}.yaml"), gateway),
    ]
}
