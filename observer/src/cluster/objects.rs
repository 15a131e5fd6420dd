//! The objects read from the API and the snapshot built from them. Pure: no I/O.
//!
//! Every object is rendered once, when it arrives, to the text the manifest loader reads (pretty
//! JSON, which is YAML), under a name that stands for the file in messages:
//! `k8s:PeerAuthentication/prod/strict`. A snapshot is then the loader run over all texts, so
//! objects from the API pass exactly the validation files pass, and a broken object is reported
//! as `k8s:DestinationRule/prod/api:12: DestinationRule: ...` (line 12 of its rendering).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::resources::Resource;
use crate::policy::{LoadErrors, Snapshot, load_texts};

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

/// One object, rendered for the loader.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rendered {
    origin: PathBuf,
    text: String,
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
#[derive(Clone, Debug, Default)]
pub struct Objects {
    rendered: BTreeMap<ObjectKey, Rendered>,
}

impl Objects {
    /// Adds or replaces an object; whether anything changed.
    pub fn apply(&mut self, resource: Resource, object: Value) -> bool {
        let key = ObjectKey::of(resource, &object);
        let rendered = Rendered { origin: key.origin(), text: render(resource, object) };
        if self.rendered.get(&key) == Some(&rendered) {
            return false;
        }
        self.rendered.insert(key, rendered);
        true
    }

    /// Removes an object; whether it was there.
    pub fn delete(&mut self, resource: Resource, object: &Value) -> bool {
        self.rendered.remove(&ObjectKey::of(resource, object)).is_some()
    }

    /// Replaces every object of `resource` (after a full list); whether anything changed.
    pub fn replace(&mut self, resource: Resource, objects: Vec<Value>) -> bool {
        let mut fresh = Objects::default();
        for object in objects {
            fresh.apply(resource, object);
        }
        let old: Vec<(&ObjectKey, &Rendered)> = self.rendered.iter().filter(|(k, _)| k.resource == resource).collect();
        let new: Vec<(&ObjectKey, &Rendered)> = fresh.rendered.iter().collect();
        if old == new {
            return false;
        }
        self.rendered.retain(|k, _| k.resource != resource);
        self.rendered.extend(fresh.rendered);
        true
    }

    /// How many objects of `resource` are known.
    pub fn count(&self, resource: Resource) -> usize {
        self.rendered.keys().filter(|k| k.resource == resource).count()
    }

    /// The policy and inventory these objects make, through the manifest loader's validation:
    /// every error of every object at once, each naming its object.
    pub fn snapshot(&self) -> Result<Snapshot, LoadErrors> {
        load_texts(self.rendered.values().map(|r| (r.origin.as_path(), r.text.as_str())))
    }

    /// The rendering of one object (for tests and debugging).
    pub fn text(&self, key: &ObjectKey) -> Option<(&Path, &str)> {
        self.rendered.get(key).map(|r| (r.origin.as_path(), r.text.as_str()))
    }
}
