//! Kubernetes and Istio manifests matching a mesh testbed, for the observer's `--policy`: a
//! Namespace, one Pod (with `status.podIP`) and Service per pod, and a workload-level
//! PeerAuthentication per sidecar pod. Plain standard YAML, written by hand (no YAML dependency).

use std::fmt::Write as _;

use super::{Sidecar, sidecar::PROXY_UID};

/// Image names only label the containers; nothing is pulled.
const APP_IMAGE: &str = "docker.io/library/python:3.11";
const PROXY_IMAGE: &str = "docker.io/istio/proxyv2:1.24.0";
/// A fixed creation time (oldest-wins ordering needs one; all policies here are distinct).
const CREATED: &str = "2026-11-26T12:00:00Z";

/// What the manifests say about one pod.
#[derive(Debug, Clone)]
pub struct PodManifest<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub service_account: &'a str,
    pub ips: Vec<String>,
    pub app_port: u16,
    pub sidecar: Sidecar,
}

/// `Namespace` with sidecar injection on.
pub fn namespace(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    \
         istio-injection: enabled\n"
    )
}

/// The `Pod`: labels (`security.istio.io/tlsMode: istio` with a sidecar), containers (the app,
/// and `istio-proxy` with a sidecar), `status.podIP`/`podIPs`.
pub fn pod(p: &PodManifest<'_>) -> String {
    let mesh = p.sidecar != Sidecar::None;
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  \
         creationTimestamp: \"{CREATED}\"\n  labels:\n    app: {name}\n",
        name = p.name,
        ns = p.namespace
    );
    if mesh {
        y.push_str("    security.istio.io/tlsMode: istio\n");
        let _ = writeln!(y, "    service.istio.io/canonical-name: {}", p.name);
        y.push_str(
            "  annotations:\n    sidecar.istio.io/status: \
             '{\"initContainers\":[\"istio-init\"],\"containers\":[\"istio-proxy\"]}'\n",
        );
    }
    let _ = write!(
        y,
        "spec:\n  serviceAccountName: {sa}\n  containers:\n  - name: app\n    image: {APP_IMAGE}\n    \
         ports:\n    - name: http\n      containerPort: {port}\n      protocol: TCP\n",
        sa = p.service_account,
        port = p.app_port
    );
    if mesh {
        let _ = write!(
            y,
            "  - name: istio-proxy\n    image: {PROXY_IMAGE}\n    args: [\"proxy\", \"sidecar\"]\n    \
             ports:\n    - name: http-envoy-prom\n      containerPort: 15090\n      protocol: TCP\n    \
             securityContext:\n      runAsUser: {PROXY_UID}\n      runAsGroup: {PROXY_UID}\n  \
             initContainers:\n  - name: istio-init\n    image: {PROXY_IMAGE}\n    \
             args: [\"istio-iptables\", \"-p\", \"15001\", \"-z\", \"15006\", \"-u\", \"1337\"]\n"
        );
    }
    let _ = write!(y, "status:\n  phase: Running\n  podIP: {}\n  podIPs:\n", p.ips[0]);
    for ip in &p.ips {
        let _ = writeln!(y, "  - ip: {ip}");
    }
    y
}

/// A `Service` named like the pod, selecting it, with its app port named `http`.
pub fn service(p: &PodManifest<'_>) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  \
         selector:\n    app: {name}\n  ports:\n  - name: http\n    port: {port}\n    \
         targetPort: {port}\n    protocol: TCP\n",
        name = p.name,
        ns = p.namespace,
        port = p.app_port
    )
}

/// The name of a pod's PeerAuthentication (`PeerAuthentication/<ns>/<this>` in verdicts).
pub fn peer_authentication_name(pod: &str) -> String {
    format!("{pod}-mtls")
}

/// A workload-level `PeerAuthentication` (STRICT or PERMISSIVE) for a sidecar pod.
pub fn peer_authentication(p: &PodManifest<'_>) -> Option<String> {
    let mode = match p.sidecar {
        Sidecar::Strict => "STRICT",
        Sidecar::Permissive => "PERMISSIVE",
        Sidecar::None => return None,
    };
    Some(format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: {pa}\n  \
         namespace: {ns}\n  creationTimestamp: \"{CREATED}\"\nspec:\n  selector:\n    matchLabels:\n      \
         app: {name}\n  mtls:\n    mode: {mode}\n",
        pa = peer_authentication_name(p.name),
        ns = p.namespace,
        name = p.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_manifest_carries_ip_labels_and_proxy() {
        let p = PodManifest {
            name: "pod-b",
            namespace: "default",
            service_account: "pod-b",
            ips: vec!["10.88.3.20".into(), "fd00:88:0:3::14".into()],
            app_port: 8080,
            sidecar: Sidecar::Strict,
        };
        let y = pod(&p);
        assert!(y.contains("  podIP: 10.88.3.20\n"), "{y}");
        assert!(y.contains("  - ip: fd00:88:0:3::14\n"), "{y}");
        assert!(y.contains("security.istio.io/tlsMode: istio"), "{y}");
        assert!(y.contains("- name: istio-proxy"), "{y}");
        let pa = peer_authentication(&p).expect("sidecar pods get a PeerAuthentication");
        assert!(pa.contains("mode: STRICT") && pa.contains("name: pod-b-mtls"), "{pa}");
        let legacy = PodManifest { sidecar: Sidecar::None, ..p };
        assert!(!pod(&legacy).contains("istio-proxy"));
        assert!(peer_authentication(&legacy).is_none());
    }
}
