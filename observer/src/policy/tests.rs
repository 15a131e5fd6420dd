//! Precedence rules of DESIGN §2, one test per rule, table-driven from the YAML fixtures in
//! `testdata/`; loading errors with file:line; reload keeping the last good policy.

use std::path::{Path, PathBuf};

use super::*;

pub(crate) fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy/testdata").join(name)
}

pub(crate) fn fixture(name: &str) -> Snapshot {
    match load_paths(&[testdata(name)]) {
        Ok(snapshot) => snapshot,
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
type DrCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, Option<u16>, Option<&'a str>, Option<&'a str>, Option<ClientTlsMode>);

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
    assert_dr(&policy, &[("frontend", &[], REVIEWS, Some(80), None, Some("reviews-from-frontend"), Some(ClientTlsMode::Disable))]);
}

#[test]
fn service_namespace_rule_applies_when_exported() {
    let policy = fixture("destination_rule.yaml").policy;
    assert_dr(&policy, &[("elsewhere", &[], REVIEWS, Some(80), None, Some("reviews"), Some(ClientTlsMode::IstioMutual))]);
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
    assert_dr(&policy, &[("elsewhere", &[], "db.data.svc.cluster.local", None, None, Some("mesh-default"), Some(ClientTlsMode::IstioMutual))]);
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
            ("frontend", &[("track", "stable")], host, None, None, Some("details-all"), Some(ClientTlsMode::IstioMutual)),
            // A selector in another namespace does not select clients here.
            ("elsewhere", &[("track", "canary")], host, None, None, Some("mesh-default"), Some(ClientTlsMode::IstioMutual)),
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

#[test]
fn every_error_is_reported_at_once_with_file_and_line() {
    let Err(errors) = load_paths(&[testdata("invalid")]) else { panic!("invalid fixtures loaded") };
    let got: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{}:{}", e.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), e.line))
        .collect();
    let text = errors.to_string();
    assert_eq!(
        got,
        ["broken.yaml:6", "broken.yaml:8", "broken.yaml:11", "broken.yaml:17", "broken.yaml:27", "broken.yaml:36", "broken.yaml:38", "second.yaml:4", "second.yaml:11"],
        "{text}"
    );
    for needle in ["STRIKT", "\"http\"", "metadata.name is required", "security.istio.io/v2", "MUTAUL", "minTLSVersion", "10.0.0.300", "encrypted"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn unknown_kinds_are_skipped_and_empty_documents_ignored() {
    let text = "---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n";
    let snapshot = load_str(Path::new("x.yaml"), text).map_err(|e| e.to_string());
    assert!(snapshot.is_ok_and(|s| s.policy.peer_authentications.is_empty() && s.inventory.is_empty()));
}

#[test]
fn duplicate_objects_are_rejected() {
    let doc = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: n}\n";
    let Err(errors) = load_str(Path::new("d.yaml"), &format!("{doc}---\n{doc}")) else { panic!("duplicate accepted") };
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, 6);
    assert!(errors.to_string().contains("also defined at d.yaml:2"), "{errors}");
}

#[test]
fn mesh_settings_come_from_the_istio_config_map() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    rootNamespace: mesh-root\n    enableAutoMtls: false\n    trustDomain: example.org\n    defaultConfig: {discoveryAddress: istiod:15012}\n";
    let mesh = load_str(Path::new("m.yaml"), text).map(|s| s.policy.mesh).map_err(|e| e.to_string());
    let mesh = mesh.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((mesh.root_namespace.as_str(), mesh.auto_mtls, mesh.trust_domain.as_str()), ("mesh-root", false, "example.org"));
    assert_eq!(Policy::default().mesh.root_namespace, "istio-system");
    assert!(Policy::default().mesh.auto_mtls);
}

#[test]
fn timestamps_parse_with_offsets() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_timestamp("2024-03-01T10:00:00+02:00"), parse_timestamp("2024-03-01T08:00:00Z"));
    assert_eq!(parse_timestamp("2024-03-01T08:00:00.5Z"), parse_timestamp("2024-03-01T08:00:00Z"));
    for bad in ["", "yesterday", "2024-13-01T00:00:00Z", "2024-03-01T08:00:00", "2024-03-01T08:00:00+2"] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn reload_keeps_the_last_good_policy() {
    let dir = std::env::temp_dir().join(format!("observer-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("pa.yaml");
    let good = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: strict, namespace: prod}\nspec: {mtls: {mode: STRICT}}\n";
    std::fs::write(&file, good).unwrap_or_else(|e| panic!("{e}"));
    let mut source = FileSource::new(vec![dir.clone()]);
    let store = PolicyStore::embedded_default();
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Reloaded));
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged));
    std::fs::write(&file, good.replace("STRICT", "STRICTER")).unwrap_or_else(|e| panic!("{e}"));
    match store.reload_from(&mut source) {
        ReloadOutcome::Rejected(errors) => assert!(errors.to_string().contains("pa.yaml:4"), "{errors}"),
        other => panic!("broken file accepted: {other:?}"),
    }
    assert_eq!(store.current().policy.workload_mtls("prod", &Labels::new(), None).mode, MtlsMode::Strict);
    // Broken files are reported once, not at every poll.
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged));
    std::fs::write(&file, good.replace("STRICT", "DISABLE")).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Reloaded));
    assert_eq!(store.current().policy.workload_mtls("prod", &Labels::new(), None).mode, MtlsMode::Disable);
    let _ = std::fs::remove_dir_all(&dir);
}
