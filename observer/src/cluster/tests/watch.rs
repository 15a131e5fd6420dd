//! The watchers end to end, over HTTP on 127.0.0.1, against [`FakeApi`] standing in for the
//! Kubernetes API server (none can run on the build machine): list, watch, resume, relist,
//! retry with backoff, absent CRDs, and the policy store swapping snapshots.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{api_items, fake_api::FakeApi};
use observer_mesh::{Mesh, policy::MtlsMode};

use crate::{
    cluster::{KubeError, KubeOptions, KubeSource, Resource, Scope},
    reload::{PolicyStore, ReloadOutcome},
};

/// Start-up waits at most this long in tests; a healthy fake answers in milliseconds.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a test waits for a change to reach the store: kube's backoff starts at 0.8 s and
/// doubles with jitter, so a few retries fit.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);

fn scope() -> Scope {
    Scope { node: "node-1".to_owned(), istio_namespace: "istio-system".to_owned() }
}

/// A fake API holding the fixture's objects, and a pod of another node.
fn fake_with_fixture(istio_installed: bool) -> FakeApi {
    let fake = FakeApi::start(istio_installed);
    for (resource, item) in api_items() {
        fake.apply(resource, item);
    }
    fake.apply(Resource::Pod, pod("prod", "elsewhere", "node-2", "10.244.2.9"));
    fake
}

fn pod(namespace: &str, name: &str, node: &str, ip: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"nodeName": node, "serviceAccountName": "default", "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn peer_authentication(namespace: &str, name: &str, mode: &str) -> Value {
    json!({
        "apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-11-22T10:00:00Z"},
        "spec": {"mtls": {"mode": mode}}
    })
}

fn open(fake: &FakeApi) -> (KubeSource, Mesh) {
    let options = KubeOptions { scope: scope(), config: Some(fake.config()), sync_timeout: SYNC_TIMEOUT };
    KubeSource::open(options).expect("the fake API syncs")
}

fn mode_of(snapshot: &Mesh, namespace: &str, name: &str) -> Option<MtlsMode> {
    let pa = snapshot.policy.peer_authentications.iter();
    pa.filter(|p| p.meta.object.namespace == namespace && p.meta.object.name == name).map(|p| p.mode).next()
}

/// Polls the source into the store until `done` holds for the snapshot in force.
fn reload_until(store: &PolicyStore, source: &mut KubeSource, done: impl Fn(&Mesh) -> bool) {
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    while !done(&store.current()) {
        assert!(Instant::now() < deadline, "the change did not reach the store in {CHANGE_TIMEOUT:?}");
        if let ReloadOutcome::Rejected(errors) = store.reload_from(source) {
            panic!("unexpected rejection: {errors}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lists_this_nodes_pods_and_the_policy_then_follows_changes() {
    let fake = fake_with_fixture(true);
    let (mut source, snapshot) = open(&fake);

    let pods: Vec<String> = snapshot.inventory.pods().iter().map(|p| p.workload()).collect();
    assert_eq!(pods, ["legacy/client", "prod/api-7d9f8b6c5-x2k8p"], "only node-1's pods");
    assert_eq!(mode_of(&snapshot, "prod", "strict"), Some(MtlsMode::Strict));
    assert_eq!(snapshot.policy.destination_rules.len(), 1);
    assert_eq!(snapshot.policy.mesh.root_namespace, "istio-system");
    assert!(source.absent().is_empty());
    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /api/v1/pods?") && r.contains("fieldSelector=spec.nodeName%3Dnode-1")),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with("GET /api/v1/namespaces/istio-system/configmaps?")
            && r.contains("fieldSelector=metadata.name%3Distio")),
        "{requests:#?}"
    );

    let store = PolicyStore::new(snapshot);
    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "strict", "PERMISSIVE"));
    reload_until(&store, &mut source, |s| mode_of(s, "prod", "strict") == Some(MtlsMode::Permissive));

    fake.apply(Resource::Pod, pod("prod", "new", "node-1", "10.244.1.20"));
    fake.delete(Resource::Pod, "legacy", "client");
    reload_until(&store, &mut source, |s| {
        let ip = |ip: &str| s.inventory.pod_by_ip(ip.parse().expect("ip")).map(|p| p.workload());
        ip("10.244.1.20").as_deref() == Some("prod/new") && ip("10.244.1.13").is_none()
    });
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged), "nothing changed since");
    assert!(source.errors().is_empty(), "{:?}", source.errors());
}

#[test]
fn without_istio_the_crds_are_empty_and_istio_installed_later_is_picked_up() {
    let fake = fake_with_fixture(false);
    let (mut source, snapshot) = open(&fake);
    assert!(snapshot.policy.peer_authentications.is_empty());
    assert_eq!(snapshot.inventory.pods().len(), 2, "core resources still read");
    let absent = source.absent();
    assert_eq!(
        absent,
        [Resource::PeerAuthentication, Resource::DestinationRule, Resource::Gateway, Resource::VirtualService]
    );
    assert!(source.errors().is_empty(), "a missing CRD is not an error: {:?}", source.errors());

    fake.install_istio();
    let store = PolicyStore::new(snapshot);
    reload_until(&store, &mut source, |s| {
        mode_of(s, "prod", "strict") == Some(MtlsMode::Strict)
            && s.policy.destination_rules.len() == 1
            && s.policy.gateways.len() == 1
            && s.policy.virtual_services.len() == 1
    });
    assert!(source.absent().is_empty(), "{:?}", source.absent());
}

#[test]
fn a_dropped_watch_resumes_and_an_expired_one_relists_counting_the_error() {
    let fake = fake_with_fixture(true);
    let (mut source, snapshot) = open(&fake);
    let store = PolicyStore::new(snapshot);

    // The connection ends: the watcher watches again from its last version; no event is lost.
    fake.drop_watches(Resource::PeerAuthentication);
    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "strict", "DISABLE"));
    reload_until(&store, &mut source, |s| mode_of(s, "prod", "strict") == Some(MtlsMode::Disable));

    // History compacted while away: the API answers 410 Expired and the watcher lists again.
    fake.expire_history(Resource::PeerAuthentication);
    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "strict", "STRICT"));
    fake.apply(Resource::PeerAuthentication, peer_authentication("legacy", "off", "DISABLE"));
    fake.delete(Resource::PeerAuthentication, "istio-system", "default");
    reload_until(&store, &mut source, |s| {
        mode_of(s, "prod", "strict") == Some(MtlsMode::Strict)
            && mode_of(s, "legacy", "off") == Some(MtlsMode::Disable)
            && mode_of(s, "istio-system", "default").is_none()
    });
    let relists = fake
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/security.istio.io/v1/peerauthentications?") && !r.contains("watch=true"))
        .count();
    assert!(relists >= 2, "listed again after 410");
    let errors = source.errors();
    assert!(matches!(errors.as_slice(), [(Resource::PeerAuthentication, n)] if *n >= 1), "{errors:?}");
}

#[test]
fn failed_lists_are_retried_with_backoff_and_counted() {
    let fake = fake_with_fixture(true);
    fake.fail_lists(Resource::Service, 2);
    let started = Instant::now();
    let (source, snapshot) = open(&fake);
    assert!(snapshot.inventory.service_by_ip("10.96.120.7".parse().expect("ip")).is_some());
    assert_eq!(source.errors(), [(Resource::Service, 2)]);
    // Retried after a backoff (kube's starts at 0.8 s), not at once.
    assert!(started.elapsed() >= Duration::from_millis(800), "{:?}", started.elapsed());
    let exported = crate::cluster::watch_error_counts();
    assert!(exported.iter().any(|(name, n)| *name == "services" && *n >= 2), "{exported:?}");
}

#[test]
fn an_invalid_object_keeps_the_last_good_snapshot_until_it_is_fixed() {
    let fake = fake_with_fixture(true);
    let (mut source, snapshot) = open(&fake);
    let store = PolicyStore::new(snapshot);

    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "strict", "STRICTT"));
    let deadline = Instant::now() + CHANGE_TIMEOUT;
    let errors = loop {
        assert!(Instant::now() < deadline, "the broken object was never seen");
        if let ReloadOutcome::Rejected(errors) = store.reload_from(&mut source) {
            break errors;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = errors.to_string();
    assert!(text.starts_with("k8s:PeerAuthentication/prod/strict:"), "{text}");
    assert!(text.contains("unknown mTLS mode \"STRICTT\""), "{text}");
    assert_eq!(mode_of(&store.current(), "prod", "strict"), Some(MtlsMode::Strict), "last good policy stays");
    assert!(matches!(store.reload_from(&mut source), ReloadOutcome::Unchanged), "reported once, not at every poll");

    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "strict", "PERMISSIVE"));
    reload_until(&store, &mut source, |s| mode_of(s, "prod", "strict") == Some(MtlsMode::Permissive));
}

#[test]
fn start_up_rejects_invalid_objects_with_every_error() {
    let fake = fake_with_fixture(true);
    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "strict", "STRICTT"));
    fake.apply(Resource::PeerAuthentication, peer_authentication("prod", "other", "NOPE"));
    let options = KubeOptions { scope: scope(), config: Some(fake.config()), sync_timeout: SYNC_TIMEOUT };
    match KubeSource::open(options) {
        Err(KubeError::Rejected { errors }) => {
            let files: Vec<String> = errors.0.iter().map(|e| e.file.display().to_string()).collect();
            assert_eq!(files, ["k8s:PeerAuthentication/prod/other", "k8s:PeerAuthentication/prod/strict"]);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn start_up_fails_in_time_when_the_api_is_unreachable() {
    // A port nothing listens on: bind one, then free it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let config = kube::Config::new(format!("http://{addr}").parse().expect("URL"));
    let options = KubeOptions { scope: scope(), config: Some(config), sync_timeout: Duration::from_secs(2) };
    match KubeSource::open(options) {
        Err(KubeError::SyncTimeout { pending, last_error, .. }) => {
            assert_eq!(pending.len(), Resource::ALL.len(), "{pending:?}");
            assert!(last_error.is_some(), "the reason is given");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}
