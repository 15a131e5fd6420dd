//! Objects as the API serves them to snapshots: the conversion is pure and tested on
//! `kubectl get -o json`-shaped objects. The watchers are tested end to end in `watch` against
//! `fake_api`, an in-process stand-in for the API server (none can run on the build machine).

mod fake_api;
mod watch;

use std::path::Path;

use serde_json::{Value, json};

use super::{ObjectKey, Objects, Resource, render};
use observer_mesh::{load_str, policy::MtlsMode};

/// The fixture: a `v1 List` as `kubectl get ns,pods,svc,cm,peerauthentications,... -A -o json`
/// prints it.
const CLUSTER_JSON: &str = include_str!("../testdata/cluster.json");

/// The resource an object of the fixture is watched as.
fn resource_of(object: &Value) -> Resource {
    let kind = object["kind"].as_str().expect("kind");
    *Resource::ALL.iter().find(|r| r.kind() == kind).expect("a watched kind")
}

/// The fixture's objects as a list response carries them: without `apiVersion` and `kind`.
pub(super) fn api_items() -> Vec<(Resource, Value)> {
    let list: Value = serde_json::from_str(CLUSTER_JSON).expect("fixture is JSON");
    let items = list["items"].as_array().expect("items").clone();
    items
        .into_iter()
        .map(|mut item| {
            let resource = resource_of(&item);
            let map = item.as_object_mut().expect("object");
            map.remove("apiVersion");
            map.remove("kind");
            (resource, item)
        })
        .collect()
}

fn objects() -> Objects {
    let mut objects = Objects::default();
    for (resource, item) in api_items() {
        assert!(objects.apply(resource, item));
    }
    objects
}

#[test]
fn api_objects_make_the_policy_and_inventory_the_same_files_make() {
    let from_api = objects().snapshot().expect("the fixture is valid");
    let from_file = load_str(Path::new("cluster.json"), CLUSTER_JSON).expect("the fixture loads as a file");

    let pa = |s: &observer_mesh::Mesh| -> Vec<(String, MtlsMode)> {
        s.policy.peer_authentications.iter().map(|p| (p.meta.object.to_string(), p.mode)).collect()
    };
    assert_eq!(pa(&from_api), pa(&from_file));
    assert_eq!(
        pa(&from_api),
        [
            ("PeerAuthentication/istio-system/default".to_owned(), MtlsMode::Permissive),
            ("PeerAuthentication/prod/strict".to_owned(), MtlsMode::Strict),
        ]
    );
    assert_eq!(from_api.policy.destination_rules.len(), 1);
    assert_eq!(from_api.policy.gateways.len(), 1);
    assert_eq!(from_api.policy.virtual_services.len(), 1);
    assert_eq!(from_api.policy.mesh.root_namespace, "istio-system");
    // The same pods; only their origins differ (the object, not a file).
    let pods = |s: &observer_mesh::Mesh| {
        let mut pods: Vec<observer_mesh::inventory::Pod> = s.inventory.pods().to_vec();
        for pod in &mut pods {
            pod.meta.origin = pod.meta.origin.at(0);
            pod.meta.origin.file = Path::new("-").into();
        }
        pods.sort_by(|a, b| a.meta.object.cmp(&b.meta.object));
        pods
    };
    assert_eq!(pods(&from_api), pods(&from_file));
    assert_eq!(pods(&from_api).len(), 2);

    let api = from_api.inventory.pod_by_ip("10.244.1.12".parse().expect("ip")).expect("the api pod");
    assert_eq!(api.workload(), "prod/api-7d9f8b6c5-x2k8p");
    assert!(api.has_sidecar);
    assert_eq!(api.service_account, "api");
    let legacy = from_api.inventory.pod_by_ip("10.244.1.13".parse().expect("ip")).expect("the legacy pod");
    assert!(!legacy.has_sidecar);
    assert!(from_api.inventory.service_by_ip("10.96.120.7".parse().expect("ip")).is_some());
}

#[test]
fn verdicts_name_the_object_not_a_file() {
    let snapshot = objects().snapshot().expect("valid");
    let strict = &snapshot.policy.peer_authentications[1];
    let origin = strict.meta.origin.to_string();
    assert!(origin.starts_with("k8s:PeerAuthentication/prod/strict:"), "{origin}");
    let namespace = &snapshot.inventory.namespaces()[0];
    assert!(["prod", "legacy"].contains(&namespace.name.as_str()));
}

#[test]
fn list_items_get_api_version_and_kind_from_the_resource() {
    let text = render(Resource::PeerAuthentication, json!({"metadata": {"name": "a", "namespace": "b"}}));
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["apiVersion"], "security.istio.io/v1");
    assert_eq!(value["kind"], "PeerAuthentication");
    let text = render(Resource::MeshConfigMap, json!({"metadata": {"name": "istio"}}));
    assert!(text.contains("\"apiVersion\": \"v1\"") && text.contains("\"kind\": \"ConfigMap\""), "{text}");
}

#[test]
fn field_ownership_and_last_applied_copies_are_not_kept() {
    let items = api_items();
    let item = |kind: Resource| items.iter().find(|(r, _)| *r == kind).map(|(_, v)| v.clone()).expect("in fixture");
    let pod = render(Resource::Pod, item(Resource::Pod));
    assert!(!pod.contains("managedFields") && pod.contains("sidecar.istio.io/status"), "{pod}");
    let service = render(Resource::Service, item(Resource::Service));
    assert!(!service.contains("last-applied-configuration") && service.contains("clusterIP"), "{service}");
    let key = ObjectKey::of(Resource::Pod, &item(Resource::Pod));
    assert_eq!(key.origin(), Path::new("k8s:Pod/prod/api-7d9f8b6c5-x2k8p"));
    let key = ObjectKey::of(Resource::Namespace, &item(Resource::Namespace));
    assert_eq!(key.origin(), Path::new("k8s:Namespace/prod"));
}

#[test]
fn an_invalid_object_is_reported_with_its_reference_and_the_line_of_the_field() {
    let mut objects = objects();
    let bad = json!({
        "metadata": {"name": "typo", "namespace": "prod", "creationTimestamp": "2026-11-23T10:00:00Z"},
        "spec": {"mtls": {"mode": "STRICTT"}}
    });
    objects.apply(Resource::PeerAuthentication, bad);
    let errors = objects.snapshot().expect_err("STRICTT is not a mode");
    let text = errors.to_string();
    assert_eq!(errors.0.len(), 1, "{text}");
    // The rendering's line 11 is `"mode": "STRICTT"`: keys are sorted, one per line.
    assert!(text.starts_with("k8s:PeerAuthentication/prod/typo:11: PeerAuthentication: unknown mTLS mode"), "{text}");
}

#[test]
fn every_invalid_object_is_reported_at_once() {
    let mut objects = objects();
    objects.apply(
        Resource::PeerAuthentication,
        json!({"metadata": {"name": "a", "namespace": "x"}, "spec": {"mtls": {"mode": "NOPE"}}}),
    );
    objects.apply(Resource::DestinationRule, json!({"metadata": {"name": "b", "namespace": "x"}, "spec": {"host": "b", "trafficPolicy": {"tls": {"mode": "NOPE"}}}}));
    let errors = objects.snapshot().expect_err("two bad objects");
    let origins: Vec<String> = errors.0.iter().map(|e| e.file.display().to_string()).collect();
    assert_eq!(origins, ["k8s:DestinationRule/x/b", "k8s:PeerAuthentication/x/a"], "{errors}");
}

#[test]
fn a_relist_with_the_same_objects_changes_nothing_and_deletes_are_seen() {
    let mut objects = objects();
    let pods: Vec<Value> = api_items().into_iter().filter(|(r, _)| *r == Resource::Pod).map(|(_, item)| item).collect();
    assert!(!objects.replace(Resource::Pod, pods.clone()), "same objects: no rebuild");
    assert!(objects.replace(Resource::Pod, pods[..1].to_vec()), "one pod gone");
    assert_eq!(objects.count(Resource::Pod), 1);
    assert!(objects.delete(Resource::Pod, &pods[0]));
    assert!(!objects.delete(Resource::Pod, &pods[0]), "already gone");
    assert_eq!(objects.count(Resource::Pod), 0);
    assert_eq!(objects.count(Resource::Service), 1, "other resources untouched");
    assert!(
        !objects
            .apply(Resource::Service, api_items().into_iter().find(|(r, _)| *r == Resource::Service).expect("svc").1)
    );
}
