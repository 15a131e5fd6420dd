//! An Istio-like mesh in network namespaces (docs/TESTING.md): pods with an HAProxy
//! sidecar (uid 1337, Istio's iptables capture, 127.0.0.6 on lo, mTLS with ALPN
//! `istio-peer-exchange,istio`, SPIFFE certificates, Istio SNI), a plaintext app behind each,
//! legacy pods without sidecar, ingress gateways, and the matching Kubernetes/Istio manifests
//! for `--policy`.
//!
//! Capture is IPv4 only, see [`pod_ip`]; pods still have IPv6 addresses, and IPv6 traffic goes
//! past the sidecars (a realistic sidecar bypass).

pub mod gateway;
pub mod manifests;
pub mod sidecar;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::{
    cmd,
    peers::HttpServer,
    pki::{KeyType, Leaf, Pki, spiffe_id},
    process::{Child, Spawn},
    tempdir::TempDir,
    topology::{Pod, Topology},
};
use sidecar::{INBOUND_PORT, MeshDestination, OUTBOUND_PORT, PROXY_UID, SidecarConfig};

/// A pod's sidecar and the inbound mode its PeerAuthentication sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    /// Sidecar accepting only mTLS (PeerAuthentication STRICT).
    Strict,
    /// Sidecar accepting mTLS and plaintext (PeerAuthentication PERMISSIVE).
    Permissive,
    /// No sidecar: a legacy workload outside the mesh.
    None,
}

/// One pod of the mesh and what runs in it.
#[derive(Debug)]
pub struct MeshPod {
    pub name: String,
    pub sidecar: Sidecar,
    /// Its workload certificate (sidecar pods only).
    pub leaf: Option<Leaf>,
    // Processes drop (are killed) before the namespaces of the topology.
    proxy: Option<Child>,
    app: HttpServer,
}

impl MeshPod {
    /// The app (python3 HTTP server as root) PID.
    pub fn app_pid(&self) -> u32 {
        self.app.pid()
    }

    /// What the app logged (python's access log: the peer address of each request).
    pub fn app_stderr(&self) -> String {
        self.app.child.stderr()
    }

    /// The sidecar (HAProxy as uid 1337) PID.
    pub fn proxy_pid(&self) -> Option<u32> {
        self.proxy.as_ref().map(Child::pid)
    }

    /// The sidecar's logs, for failure messages.
    pub fn proxy_logs(&self) -> String {
        self.proxy.as_ref().map_or_else(String::new, Child::logs)
    }
}

/// A running mesh; dropping it stops every process and removes every namespace and file.
#[derive(Debug)]
pub struct Mesh {
    gateways: Vec<gateway::IngressGateway>,
    pods: Vec<MeshPod>,
    topology: Topology,
    pki: Pki,
    namespace: String,
    app_port: u16,
    manifests: TempDir,
    _config: TempDir,
}

/// Builds a [`Mesh`].
#[derive(Debug, Clone)]
pub struct MeshBuilder {
    pods: Vec<(String, Sidecar)>,
    /// (gateway pod, backend pod)
    gateways: Vec<(String, String)>,
    namespace: String,
    app_port: u16,
    key_type: KeyType,
    tls12_only: bool,
    /// Pods whose processes start in a cgroup (a "node" for `observer run --cgroup`).
    cgroups: BTreeMap<String, PathBuf>,
}

impl Mesh {
    pub fn builder() -> MeshBuilder {
        MeshBuilder {
            pods: Vec::new(),
            gateways: Vec::new(),
            namespace: "default".into(),
            app_port: 8080,
            key_type: KeyType::Rsa2048,
            tls12_only: false,
            cgroups: BTreeMap::new(),
        }
    }

    /// The pod's network side (namespace, addresses).
    pub fn pod(&self, name: &str) -> &Pod {
        self.topology.pod(name)
    }

    /// The pod's mesh side (sidecar, certificate, PIDs); panics (a test bug) when unknown.
    pub fn mesh_pod(&self, name: &str) -> &MeshPod {
        self.pods.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no mesh pod named {name}"))
    }

    /// An ingress gateway; panics (a test bug) when unknown.
    pub fn gateway(&self, name: &str) -> &gateway::IngressGateway {
        self.gateways.iter().find(|g| g.name == name).unwrap_or_else(|| panic!("no gateway named {name}"))
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The Kubernetes namespace of every pod.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn app_port(&self) -> u16 {
        self.app_port
    }

    /// The directory of manifests (one file per object) to pass as `--policy`.
    pub fn manifests_dir(&self) -> &Path {
        self.manifests.path()
    }

    /// Writes (or replaces) a manifest file in [`Mesh::manifests_dir`], as an operator editing
    /// policy would; the observer reloads it live.
    pub fn write_manifest(&self, file: &str, yaml: &str) -> anyhow::Result<()> {
        self.manifests.write(file, yaml.as_bytes()).map(drop)
    }

    /// Rewrites the pod's PeerAuthentication to the mode of `mode` (the sidecar itself keeps
    /// enforcing what it was built with: this changes what policy says, not what HAProxy does).
    pub fn set_peer_authentication(&self, pod: &str, mode: Sidecar) -> anyhow::Result<()> {
        let pm = manifests::PodManifest {
            name: pod,
            namespace: &self.namespace,
            service_account: pod,
            ips: Vec::new(),
            app_port: self.app_port,
            sidecar: mode,
        };
        let yaml = manifests::peer_authentication(&pm).context("a pod without sidecar has no PeerAuthentication")?;
        self.write_manifest(&format!("peerauthentication-{pod}.yaml"), &yaml)
    }

    /// Istio's SNI for the pod's service port.
    pub fn sni(&self, pod: &str) -> String {
        sidecar::istio_sni(self.app_port, pod, &self.namespace)
    }

    /// Every pod IP (to filter the observer's records to this mesh).
    pub fn ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self.topology.pods().iter().map(|p| IpAddr::V4(p.ipv4())).collect();
        ips.extend(self.topology.pods().iter().filter_map(|p| p.ipv6().ok()).map(IpAddr::V6));
        ips
    }
}

impl MeshBuilder {
    /// Adds a pod (also its service and service account name).
    pub fn pod(mut self, name: &str, sidecar: Sidecar) -> Self {
        self.pods.push((name.to_owned(), sidecar));
        self
    }

    /// Adds a pod whose app and sidecar run inside the cgroup v2 directory `cgroup`: the pod of
    /// one node when each node's observer is attached to its own cgroup.
    pub fn pod_in(mut self, name: &str, sidecar: Sidecar, cgroup: &Path) -> Self {
        self.cgroups.insert(name.to_owned(), cgroup.to_owned());
        self.pod(name, sidecar)
    }

    /// Port of every app (default 8080).
    pub fn app_port(mut self, port: u16) -> Self {
        self.app_port = port;
        self
    }

    /// Workload certificate key type (default RSA-2048, like Istio's).
    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Sidecars speak TLS 1.2 at most (the client Certificate then travels in cleartext).
    pub fn tls12_only(mut self, yes: bool) -> Self {
        self.tls12_only = yes;
        self
    }

    /// Adds an ingress gateway pod forwarding HTTPS on 443 to `backend`'s app over Istio mTLS.
    pub fn ingress_gateway(mut self, name: &str, backend: &str) -> Self {
        self.gateways.push((name.to_owned(), backend.to_owned()));
        self
    }

    pub fn build(self) -> anyhow::Result<Mesh> {
        ensure_proxy_user()?;
        let mut topo = Topology::builder();
        for name in self.pods.iter().map(|(n, _)| n).chain(self.gateways.iter().map(|(g, _)| g)) {
            topo = topo.pod(name);
        }
        let topology = topo.build()?;
        let pki = Pki::new()?;
        let config = TempDir::new("mesh")?;
        let manifests = TempDir::new("manifests")?;
        let ns = self.namespace.as_str();
        let destinations: Vec<MeshDestination> = self
            .pods
            .iter()
            .filter(|(_, s)| *s != Sidecar::None)
            .map(|(name, _)| MeshDestination {
                ip: topology.pod(name).ipv4(),
                port: self.app_port,
                sni: sidecar::istio_sni(self.app_port, name, ns),
            })
            .collect();
        manifests.write("namespace.yaml", manifests::namespace(ns).as_bytes())?;
        let mut pods = Vec::new();
        for (name, mode) in &self.pods {
            let pod = topology.pod(name);
            let cgroup = self.cgroups.get(name).map(PathBuf::as_path);
            let app =
                HttpServer::start_in(pod.ns(), self.app_port, cgroup).with_context(|| format!("app of {name}"))?;
            let (leaf, proxy) = if *mode == Sidecar::None {
                (None, None)
            } else {
                let dns = [
                    format!("{name}.{ns}.svc.cluster.local"),
                    format!("{name}.{ns}.svc"),
                    sidecar::istio_sni(self.app_port, name, ns),
                ];
                let dns: Vec<&str> = dns.iter().map(String::as_str).collect();
                let leaf = pki.issue(name, self.key_type, &dns, Some(&spiffe_id(ns, name)))?;
                let cfg = sidecar::haproxy_config(&SidecarConfig {
                    mode: *mode,
                    combined_pem: &leaf.combined,
                    ca: pki.ca_cert(),
                    destinations: &destinations,
                    tls12_only: self.tls12_only,
                });
                let cfg_path = config.write(&format!("{name}.haproxy.cfg"), cfg.as_bytes())?;
                let proxy = start_sidecar(pod, &cfg_path, cgroup).with_context(|| format!("sidecar of {name}"))?;
                (Some(leaf), Some(proxy))
            };
            let mut ips = vec![pod.ipv4().to_string()];
            ips.extend(pod.ipv6().ok().map(|ip| ip.to_string()));
            let pm = manifests::PodManifest {
                name,
                namespace: ns,
                service_account: name,
                ips,
                app_port: self.app_port,
                sidecar: *mode,
            };
            manifests.write(&format!("pod-{name}.yaml"), manifests::pod(&pm).as_bytes())?;
            manifests.write(&format!("service-{name}.yaml"), manifests::service(&pm).as_bytes())?;
            if let Some(pa) = manifests::peer_authentication(&pm) {
                manifests.write(&format!("peerauthentication-{name}.yaml"), pa.as_bytes())?;
            }
            pods.push(MeshPod { name: name.clone(), sidecar: *mode, leaf, proxy, app });
        }
        let mut gateways = Vec::new();
        for (name, backend) in &self.gateways {
            let pod = topology.pod(name);
            let upstream = gateway::Upstream {
                ip: IpAddr::V4(topology.pod(backend).ipv4()),
                port: self.app_port,
                sni: sidecar::istio_sni(self.app_port, backend, ns),
            };
            let gw = gateway::start(pod, ns, backend, &upstream, &pki, &config)
                .with_context(|| format!("gateway {name}"))?;
            for (file, yaml) in gateway::manifests(name, ns, IpAddr::V4(pod.ipv4())) {
                manifests.write(&file, yaml.as_bytes())?;
            }
            gateways.push(gw);
        }
        Ok(Mesh {
            gateways,
            pods,
            topology,
            pki,
            namespace: self.namespace,
            app_port: self.app_port,
            manifests,
            _config: config,
        })
    }
}

/// 127.0.0.6 on lo, the capture rules, then HAProxy as uid 1337, awaited on both ports.
fn start_sidecar(pod: &Pod, cfg: &Path, cgroup: Option<&Path>) -> anyhow::Result<Child> {
    pod.netns().ip(&["addr", "add", "127.0.0.6/32", "dev", "lo"])?;
    cmd::run_with_stdin(
        "ip",
        ["netns", "exec", pod.ns(), "iptables-restore"],
        Some(sidecar::iptables_rules().as_bytes()),
    )?;
    let mut spawn =
        Spawn::new(pod.ns(), "haproxy").user(PROXY_UID, PROXY_UID).args(["-db", "-f"]).arg(cfg.to_string_lossy());
    if let Some(dir) = cgroup {
        spawn = spawn.cgroup(dir);
    }
    let mut proxy = spawn.start()?;
    proxy.wait_listening(OUTBOUND_PORT)?;
    proxy.wait_listening(INBOUND_PORT)?;
    Ok(proxy)
}

/// Creates group and user `istio-proxy` (1337) when uid 1337 does not exist yet.
pub fn ensure_proxy_user() -> anyhow::Result<()> {
    let exists = |db: &str| cmd::run("getent", [db, &PROXY_UID.to_string()]).is_ok();
    if !exists("group") {
        // Another test may create it at the same moment: only the final state matters.
        let made = cmd::run("groupadd", ["-g", "1337", "istio-proxy"]);
        if !exists("group") {
            made?;
        }
    }
    if !exists("passwd") {
        let made =
            cmd::run("useradd", ["-u", "1337", "-g", "1337", "-M", "-r", "-s", "/usr/sbin/nologin", "istio-proxy"]);
        if !exists("passwd") {
            made?;
        }
    }
    Ok(())
}

/// The pod's IPv4 address. The mesh is IPv4 only: HAProxy 2.6 reads the original destination
/// (SO_ORIGINAL_DST) of AF_INET sockets only, so behind an ip6tables REDIRECT it would see its
/// own `[::1]:15001` and connect to itself in a loop (tried: thousands of connections a second).
pub fn pod_ip(mesh: &Mesh, pod: &str) -> Ipv4Addr {
    mesh.pod(pod).ipv4()
}
