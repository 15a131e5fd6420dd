//! Inventory from manifests: addresses to pods, sidecars, identities, Services.

use std::net::IpAddr;

use crate::policy::tests::fixture;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn pod_addresses_map_to_pods_with_their_facts() {
    let s = fixture("mesh.yaml");
    let inv = &s.inventory;
    let b = inv.pod_by_ip(ip("10.88.0.20")).unwrap_or_else(|| panic!("pod-b unknown"));
    assert_eq!(b.workload(), "default/pod-b");
    assert_eq!(b.service_account, "b");
    assert!(b.has_sidecar && b.accepts_istio_mtls());
    assert_eq!(b.ports.first().map(|p| (p.port, p.name.as_deref())), Some((8080, Some("http"))));
    // Every podIPs entry, IPv6 included; v4-mapped addresses are the IPv4 pod.
    assert_eq!(inv.pod_by_ip(ip("fd00::20")).map(|p| p.workload()), Some("default/pod-b".to_owned()));
    assert_eq!(inv.pod_by_ip(ip("::ffff:10.88.0.20")).map(|p| p.workload()), Some("default/pod-b".to_owned()));
}

#[test]
fn sidecar_is_detected_by_container_or_injector_annotation() {
    let s = fixture("mesh.yaml");
    let has = |addr: &str| s.inventory.pod_by_ip(ip(addr)).map(|p| p.has_sidecar);
    assert_eq!(has("10.88.0.10"), Some(true), "annotation");
    assert_eq!(has("10.88.0.20"), Some(true), "istio-proxy container");
    assert_eq!(has("10.88.0.30"), Some(false), "legacy");
}

#[test]
fn host_network_unknown_and_ambiguous_addresses_stay_unknown() {
    let s = fixture("mesh.yaml");
    assert!(s.inventory.pod_by_ip(ip("10.88.0.1")).is_none(), "host network");
    assert!(s.inventory.pod_by_ip(ip("10.1.2.3")).is_none(), "unknown");
    assert!(s.inventory.pod_by_ip(ip("10.88.0.98")).is_none(), "two running pods claim it");
    // A finished pod's address belongs to the running one.
    assert_eq!(s.inventory.pod_by_ip(ip("10.88.0.99")).map(|p| p.workload()), Some("default/new-job".to_owned()));
}

#[test]
fn meshed_pods_have_spiffe_identities() {
    let s = fixture("mesh.yaml");
    let identity = |addr: &str| s.inventory.pod_by_ip(ip(addr)).and_then(|p| s.inventory.identity(p, "cluster.local"));
    assert_eq!(identity("10.88.0.20").as_deref(), Some("spiffe://cluster.local/ns/default/sa/b"));
    assert_eq!(identity("10.88.0.60").as_deref(), Some("spiffe://cluster.local/ns/default/sa/default"));
    assert_eq!(identity("10.88.0.30"), None, "no sidecar, no identity");
}

#[test]
fn services_resolve_named_and_numbered_target_ports() {
    let s = fixture("mesh.yaml");
    let inv = &s.inventory;
    let b = inv.pod_by_ip(ip("10.88.0.20")).unwrap_or_else(|| panic!("pod-b unknown"));
    let (svc, port) = inv.service_port_of(b, 8080).unwrap_or_else(|| panic!("no service port"));
    assert_eq!((svc.fqdn().as_str(), port.port, port.declares_http()), ("b.default.svc.cluster.local", 80, true));
    assert_eq!(inv.service_by_ip(ip("10.96.0.60")).map(|s| s.meta.object.name.as_str()), Some("secure"));
    let secure = inv.service_by_ip(ip("10.96.0.60")).unwrap_or_else(|| panic!("no service"));
    assert_eq!(inv.pods_of(secure).map(Pod::workload).collect::<Vec<_>>(), ["default/pod-d"]);
    assert_eq!(inv.namespaces().first().map(|n| n.name.as_str()), Some("payments"));
}

use super::Pod;
