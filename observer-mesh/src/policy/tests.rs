//! Precedence rules of docs/MESH.md, one test per rule, table-driven from the YAML fixtures in
//! `testdata/`. Loading is tested in `crate::load`.

use std::path::{Path, PathBuf};

use super::*;
use crate::{Mesh, load::load_paths, manifest::Labels};

pub(crate) fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(name)
}

pub(crate) fn fixture(name: &str) -> Mesh {
    match load_paths(&[testdata(name)]) {
        Ok(mesh) => mesh,
        Err(errors) => panic!("fixture {name} does not load:\n{errors}"),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// (namespace, labels, container port) -> (mode, policy name or "default").
type PaCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<u16>, MtlsMode, &'a str);

fn assert_pa(policy: &Policy, cases: &[PaCase<'_>]) {
    for (ns, l, port, mode, by) in cases {
        let got = policy.workload_mtls(ns, &labels(l), *port);
        let name = got.set_by.as_ref().map_or("default".to_owned(), |o| o.name.clone());
        assert_eq!((got.mode, name.as_str()), (*mode, *by), "{ns} {l:?} port {port:?}");
    }
}

#[test]
fn no_peer_authentication_at_all_means_permissive() {
    let policy = Policy::embedded_default();
    assert_pa(&policy, &[("prod", &[("app", "api")], Some(8080), MtlsMode::Permissive, "default")]);
}

#[test]
fn mesh_policy_applies_where_the_namespace_has_none() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(&policy, &[("other", &[("app", "x")], None, MtlsMode::Strict, "mesh-strict")]);
}

#[test]
fn namespace_policy_beats_mesh_policy() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(&policy, &[("prod", &[("app", "web")], Some(80), MtlsMode::Permissive, "ns-permissive")]);
}

#[test]
fn workload_policy_beats_namespace_policy() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(&policy, &[("prod", &[("app", "api"), ("v", "1")], Some(80), MtlsMode::Strict, "api-strict")]);
}

#[test]
fn unset_inherits_from_the_parent_scope() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(
        &policy,
        &[
            // Workload UNSET -> namespace PERMISSIVE.
            ("prod", &[("app", "db")], Some(80), MtlsMode::Permissive, "ns-permissive"),
            // Namespace UNSET -> mesh STRICT.
            ("unset", &[], None, MtlsMode::Strict, "mesh-strict"),
            // Port UNSET -> workload UNSET -> namespace.
            ("prod", &[("app", "db")], Some(6379), MtlsMode::Permissive, "ns-permissive"),
        ],
    );
}

#[test]
fn port_level_mtls_applies_to_its_container_port_only() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(
        &policy,
        &[
            ("prod", &[("app", "db")], Some(5432), MtlsMode::Disable, "db-ports"),
            ("prod", &[("app", "db")], Some(9000), MtlsMode::Strict, "db-ports"),
            ("prod", &[("app", "db")], Some(5433), MtlsMode::Permissive, "ns-permissive"),
            // Port unknown (seen only at 15006): the workload level.
            ("prod", &[("app", "db")], None, MtlsMode::Permissive, "ns-permissive"),
        ],
    );
}

#[test]
fn port_level_mtls_without_selector_is_ignored() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(&policy, &[("ported", &[("app", "x")], Some(8080), MtlsMode::Strict, "no-selector-ports")]);
}

#[test]
fn oldest_policy_wins_at_equal_scope() {
    let policy = fixture("peer_authentication.yaml").policy;
    assert_pa(
        &policy,
        &[
            ("twins", &[("app", "x")], None, MtlsMode::Strict, "older-strict"),
            // Both workload policies select it: the older one (DISABLE) wins.
            ("twins", &[("app", "web"), ("tier", "front")], None, MtlsMode::Disable, "older-web"),
        ],
    );
}

#[test]
fn auto_mtls_inference_sees_mesh_and_namespace_only() {
    let policy = fixture("peer_authentication.yaml").policy;
    // The api workload is STRICT, but a client infers from mesh + namespace: PERMISSIVE.
    let inferred = policy.namespace_mtls("prod");
    assert_eq!(inferred.mode, MtlsMode::Permissive);
    assert_eq!(inferred.set_by.map(|o| o.name), Some("ns-permissive".to_owned()));
}

/// (client ns, client labels, host, service ns, port, subset) -> (rule name, tls mode).
type DrCase<'a> =
    (&'a str, &'a [(&'a str, &'a str)], &'a str, Option<u16>, Option<&'a str>, Option<&'a str>, Option<ClientTlsMode>);

fn assert_dr(policy: &Policy, cases: &[DrCase<'_>]) {
    for (client_ns, l, host, port, subset, rule, mode) in cases {
        let service_ns = host.split('.').nth(1);
        let got = policy.tls_origination(client_ns, &labels(l), host, service_ns, *port, *subset);
        let got = (got.rule.map(|r| r.name), got.tls.map(|t| t.mode));
        assert_eq!(got, (rule.map(str::to_owned), *mode), "{client_ns} -> {host}:{port:?} subset {subset:?}");
    }
}

const REVIEWS: &str = "reviews.prod.svc.cluster.local";

#[test]
fn client_namespace_rule_comes_first() {
    let policy = fixture("destination_rule.yaml").policy;
    assert_dr(
        &policy,
        &[("frontend", &[], REVIEWS, Some(80), None, Some("reviews-from-frontend"), Some(ClientTlsMode::Disable))],
    );
}

#[test]
fn service_namespace_rule_applies_when_exported() {
    let policy = fixture("destination_rule.yaml").policy;
    assert_dr(
        &policy,
        &[("elsewhere", &[], REVIEWS, Some(80), None, Some("reviews"), Some(ClientTlsMode::IstioMutual))],
    );
}

#[test]
fn unexported_rule_is_skipped_for_the_root_namespace() {
    let policy = fixture("destination_rule.yaml").policy;
    let host = "ratings.prod.svc.cluster.local";
    assert_dr(
        &policy,
        &[
            ("elsewhere", &[], host, Some(80), None, Some("mesh-default"), Some(ClientTlsMode::IstioMutual)),
            ("prod", &[], host, Some(80), None, Some("ratings-private"), Some(ClientTlsMode::Simple)),
        ],
    );
}

#[test]
fn root_namespace_rule_is_the_fallback() {
    let policy = fixture("destination_rule.yaml").policy;
    assert_dr(
        &policy,
        &[(
            "elsewhere",
            &[],
            "db.data.svc.cluster.local",
            None,
            None,
            Some("mesh-default"),
            Some(ClientTlsMode::IstioMutual),
        )],
    );
}

#[test]
fn most_specific_host_wins() {
    let policy = fixture("destination_rule.yaml").policy;
    assert_dr(
        &policy,
        &[
            ("other", &[], "x.prod.svc.cluster.local", None, None, Some("narrower"), Some(ClientTlsMode::Simple)),
            ("other", &[], "x.dev.svc.cluster.local", None, None, Some("wide"), Some(ClientTlsMode::Disable)),
        ],
    );
}

#[test]
fn workload_selector_rule_beats_selectorless_in_the_same_namespace() {
    let policy = fixture("destination_rule.yaml").policy;
    let host = "details.prod.svc.cluster.local";
    assert_dr(
        &policy,
        &[
            ("frontend", &[("track", "canary")], host, None, None, Some("details-canary"), Some(ClientTlsMode::Simple)),
            (
                "frontend",
                &[("track", "stable")],
                host,
                None,
                None,
                Some("details-all"),
                Some(ClientTlsMode::IstioMutual),
            ),
            // A selector in another namespace does not select clients here.
            (
                "elsewhere",
                &[("track", "canary")],
                host,
                None,
                None,
                Some("mesh-default"),
                Some(ClientTlsMode::IstioMutual),
            ),
        ],
    );
}

#[test]
fn subset_port_level_beats_subset_beats_port_level_beats_top_level() {
    let policy = fixture("destination_rule.yaml").policy;
    assert_dr(
        &policy,
        &[
            ("prod", &[], REVIEWS, Some(9080), Some("v2"), Some("reviews"), Some(ClientTlsMode::Disable)),
            ("prod", &[], REVIEWS, Some(80), Some("v2"), Some("reviews"), Some(ClientTlsMode::Mutual)),
            ("prod", &[], REVIEWS, Some(9080), Some("v1"), Some("reviews"), Some(ClientTlsMode::Simple)),
            ("prod", &[], REVIEWS, Some(80), Some("v1"), Some("reviews"), Some(ClientTlsMode::IstioMutual)),
        ],
    );
}

#[test]
fn port_level_setting_replaces_wholesale() {
    let policy = fixture("destination_rule.yaml").policy;
    // Port 9443 has a port-level entry without tls: no tls at all (auto mTLS), not ISTIO_MUTUAL.
    assert_dr(&policy, &[("prod", &[], REVIEWS, Some(9443), None, Some("reviews"), None)]);
}

#[test]
fn short_hosts_expand_in_the_rule_namespace() {
    let policy = fixture("destination_rule.yaml").policy;
    let reviews = policy.destination_rules.iter().find(|d| d.meta.object.name == "reviews");
    assert_eq!(reviews.map(|d| d.host.clone()), Some(Host::Exact(REVIEWS.to_owned())));
}
