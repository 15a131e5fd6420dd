//! The objects read from the API and the snapshot built from them. Pure: no I/O.
//!
//! Every object is rendered once, when it arrives, to the text the manifest loader reads (pretty
//! JSON, which is YAML), under a name that stands for the file in messages:
//! `k8s:PeerAuthentication/prod/strict`, and loaded on its own right away. Objects from the API
//! thus pass exactly the validation files pass, a broken object is reported as
//! `k8s:DestinationRule/prod/api:12: DestinationRule: ...` (line 12 of its rendering), and a
//! snapshot merges already validated pieces: with thousands of Services, a pod's change does
//! not parse every Service again. The loader's only checks across objects (duplicates, a second
//! mesh ConfigMap) cannot fail here: the API has one object per key and one `istio` ConfigMap
//! is watched.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::resources::Resource;
use observer_mesh::{
    Mesh,
    inventory::{Inventory, Namespace, Pod, Service},
    load::LoadErrors,
    load_texts,
    policy::Policy,
};

/// Metadata the API adds that the observer never reads and that only makes renderings large:
/// field ownership and `kubectl apply`'s copy of the whole object.
const DROPPED_METADATA: [&str; 1] = ["managedFields"];
const DROPPED_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// Identifies an object within the watched set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub resource: Resource,
    /// Empty for cluster-scoped objects (Namespaces).
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// The key of an object of `resource` as the API returns it.
    pub fn of(resource: Resource, object: &Value) -> Self {
        let field = |name: &str| object.pointer(&format!("/metadata/{name}")).and_then(Value::as_str);
        Self {
            resource,
            namespace: field("namespace").unwrap_or_default().to_owned(),
            name: field("name").unwrap_or_default().to_owned(),
        }
    }

    /// The name messages use in place of a file: `k8s:Kind/namespace/name` (`k8s:Kind/name`
    /// for cluster-scoped objects).
    pub fn origin(&self) -> PathBuf {
        let kind = self.resource.kind();
        if self.namespace.is_empty() {
            PathBuf::from(format!("k8s:{kind}/{}", self.name))
        } else {
            PathBuf::from(format!("k8s:{kind}/{}/{}", self.namespace, self.name))
        }
    }
}

/// One object, loaded on arrival: through the manifest loader on its own, so a rebuild only
/// merges what is already validated instead of parsing every object again.
#[derive(Debug)]
struct Entry {
    /// Of the rendering: an object that did not change is not loaded again.
    digest: u64,
    loaded: Result<Piece, Rejected>,
}

/// What one valid object contributes.
#[derive(Debug, Default)]
struct Piece {
    /// For Istio objects and the mesh ConfigMap.
    policy: Option<Policy>,
    pods: Vec<Pod>,
    services: Vec<Service>,
    namespaces: Vec<Namespace>,
}

/// An invalid object's rendering, kept to report its errors again at every rebuild.
#[derive(Debug)]
struct Rejected {
    origin: PathBuf,
    text: String,
}

fn digest(text: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Loads one rendered object with the manifest loader.
fn load(resource: Resource, origin: PathBuf, text: String) -> Result<Piece, Rejected> {
    match load_texts([(origin.as_path(), text.as_str())]) {
        Ok(snapshot) => {
            let (pods, services, namespaces) = snapshot.inventory.into_parts();
            let policy = match resource {
                Resource::Pod | Resource::Service | Resource::Namespace => None,
                _ => Some(snapshot.policy),
            };
            Ok(Piece { policy, pods, services, namespaces })
        }
        Err(_) => Err(Rejected { origin, text }),
    }
}

/// Renders an object as the loader reads it. Items of a list response carry no `apiVersion`
/// and `kind`; they are set from the resource watched.
pub fn render(resource: Resource, mut object: Value) -> String {
    if let Value::Object(map) = &mut object {
        map.insert("apiVersion".to_owned(), Value::String(resource.api_version()));
        map.insert("kind".to_owned(), Value::String(resource.kind().to_owned()));
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            for field in DROPPED_METADATA {
                metadata.remove(field);
            }
            if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
                for annotation in DROPPED_ANNOTATIONS {
                    annotations.remove(annotation);
                }
            }
        }
    }
    // Serializing a Value cannot fail (its map keys are strings).
    serde_json::to_string_pretty(&object).unwrap_or_default()
}

/// Every object currently known, by key.
#[derive(Debug, Default)]
pub struct Objects {
    entries: BTreeMap<ObjectKey, Entry>,
}

impl Objects {
    /// Adds or replaces an object; whether anything changed.
    pub fn apply(&mut self, resource: Resource, object: Value) -> bool {
        let key = ObjectKey::of(resource, &object);
        let text = render(resource, object);
        let digest = digest(&text);
        if self.entries.get(&key).is_some_and(|e| e.digest == digest) {
            return false;
        }
        let loaded = load(resource, key.origin(), text);
        self.entries.insert(key, Entry { digest, loaded });
        true
    }

    /// Removes an object; whether it was there.
    pub fn delete(&mut self, resource: Resource, object: &Value) -> bool {
        self.entries.remove(&ObjectKey::of(resource, object)).is_some()
    }

    /// Replaces every object of `resource` (after a full list); whether anything changed.
    pub fn replace(&mut self, resource: Resource, objects: Vec<Value>) -> bool {
        let mut changed = false;
        let mut listed = BTreeSet::new();
        for object in objects {
            listed.insert(ObjectKey::of(resource, &object));
            changed |= self.apply(resource, object);
        }
        let before = self.entries.len();
        self.entries.retain(|k, _| k.resource != resource || listed.contains(k));
        changed || self.entries.len() != before
    }

    /// How many objects of `resource` are known.
    pub fn count(&self, resource: Resource) -> usize {
        self.entries.keys().filter(|k| k.resource == resource).count()
    }

    /// The policy and inventory these objects make, as the manifest loader makes it from them:
    /// every error of every invalid object at once, each naming its object.
    pub fn snapshot(&self) -> Result<Mesh, LoadErrors> {
        let rejected: Vec<(&Path, &str)> = self
            .entries
            .values()
            .filter_map(|e| e.loaded.as_ref().err())
            .map(|r| (r.origin.as_path(), r.text.as_str()))
            .collect();
        if !rejected.is_empty() {
            // Loading is deterministic: the objects that failed alone fail again, together.
            load_texts(rejected)?;
        }
        let mut policy = Policy::default();
        let (mut pods, mut services, mut namespaces) = (Vec::new(), Vec::new(), Vec::new());
        let mut files = Vec::with_capacity(self.entries.len());
        for (key, entry) in &self.entries {
            let Ok(piece) = &entry.loaded else { continue };
            files.push(key.origin());
            pods.extend(piece.pods.iter().cloned());
            services.extend(piece.services.iter().cloned());
            namespaces.extend(piece.namespaces.iter().cloned());
            if let Some(p) = &piece.policy {
                if key.resource == Resource::MeshConfigMap {
                    policy.mesh = p.mesh.clone();
                }
                policy.peer_authentications.extend(p.peer_authentications.iter().cloned());
                policy.destination_rules.extend(p.destination_rules.iter().cloned());
                policy.gateways.extend(p.gateways.iter().cloned());
                policy.virtual_services.extend(p.virtual_services.iter().cloned());
                policy.expectations.extend(p.expectations.iter().cloned());
            }
        }
        policy.sort_by_age();
        Ok(Mesh { policy, inventory: Inventory::new(pods, services, namespaces), files })
    }
}
