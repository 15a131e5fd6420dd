//! Loading manifests: files and directories of multi-document YAML, each document dispatched on
//! `apiVersion`/`kind`. Kinds the observer does not use (Deployments, AuthorizationPolicies, ...)
//! are skipped; a known kind at a version Istio does not serve, bad YAML and invalid objects are
//! errors, and every error of every file is reported at once with file:line.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::de::DeserializeOwned;
use serde_saphyr::Spanned;

mod error;
mod list;
#[cfg(test)]
mod tests;

pub use error::{LoadError, LoadErrorKind, LoadErrors};

use crate::{
    inventory::{self, Inventory, Namespace, Pod, Service},
    manifest::{
        At, Doc, Meta, NameRule, ObjectRef, Origin, blank_value, check_name, documents, field_path, is_value_error,
        manifest_files, parse_timestamp, raw, read_bounded, yaml_message,
    },
    policy::{self, DestinationRule, Expectation, Gateway, MeshSettings, PeerAuthentication, Policy, VirtualService},
};

/// Most errors reported per document: a document of nothing but errors says enough by then.
const MAX_ERRORS_PER_DOCUMENT: usize = 32;

/// The mesh as one set of manifests describes it: the policy and the inventory, validated.
#[derive(Clone, Debug, Default)]
pub struct Mesh {
    pub policy: Policy,
    pub inventory: Inventory,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// Loads `--policy PATH...`: files and directories of manifests. A file named twice (directly,
/// through two folders, or through a link) is read once.
pub fn load_paths(paths: &[PathBuf]) -> Result<Mesh, LoadErrors> {
    load_paths_with(paths, false)
}

/// [`load_paths`] for `observer check`: a folder holding no manifest is an error too (a
/// mistyped path must not read as "clean").
pub fn load_paths_requiring_manifests(paths: &[PathBuf]) -> Result<Mesh, LoadErrors> {
    load_paths_with(paths, true)
}

fn load_paths_with(paths: &[PathBuf], require_manifests: bool) -> Result<Mesh, LoadErrors> {
    let mut loader = Loader::default();
    let mut read = std::collections::HashSet::new();
    for path in paths {
        let files = match manifest_files(path) {
            Ok(files) => files,
            Err(e) => {
                loader.error(path, 0, LoadErrorKind::Io(e));
                continue;
            }
        };
        if require_manifests && files.is_empty() {
            loader.error(path, 0, LoadErrorKind::NoManifests);
        }
        for file in files {
            // The same file again (`a.yaml a.yaml`, `dir dir/a.yaml`, a link): not a duplicate of itself.
            if !read.insert(std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone())) {
                continue;
            }
            match read_bounded(&file) {
                Ok(text) => loader.add_text(&file, &text),
                Err(e) => loader.error(&file, 0, LoadErrorKind::File(e)),
            }
        }
    }
    loader.finish()
}

/// Loads manifests from a string (`name` stands for the file in messages).
pub fn load_str(name: &Path, text: &str) -> Result<Mesh, LoadErrors> {
    let mut loader = Loader::default();
    loader.add_text(name, text);
    loader.finish()
}

/// Loads manifests from named texts, as if each were a file of that name: the Kubernetes API
/// source renders every object it watches to one text named after the object, so objects from
/// the API pass the same validation as files and errors name the object.
pub fn load_texts<'a>(texts: impl IntoIterator<Item = (&'a Path, &'a str)>) -> Result<Mesh, LoadErrors> {
    let mut loader = Loader::default();
    for (name, text) in texts {
        loader.add_text(name, text);
    }
    loader.finish()
}

#[derive(Default)]
struct Loader {
    errors: Vec<LoadError>,
    files: Vec<PathBuf>,
    policy: Policy,
    mesh_seen: Option<Origin>,
    pods: Vec<Pod>,
    services: Vec<Service>,
    namespaces: Vec<Namespace>,
    seen: HashMap<ObjectRef, Origin>,
    /// The errors of the `kind: List` document being loaded.
    list_errors: list::ListErrors,
}

/// How a document's kind is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handler {
    PeerAuthentication,
    DestinationRule,
    Gateway,
    VirtualService,
    Expectation,
    Pod,
    Service,
    Namespace,
    ConfigMap,
}

fn handler(api_version: &str, kind: &str) -> Result<Option<Handler>, &'static str> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let check = |ok: &[&str], expected: &'static str, h: Handler| {
        if ok.contains(&version) { Ok(Some(h)) } else { Err(expected) }
    };
    const NET: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];
    const NET_EXPECTED: &str = "networking.istio.io/v1, v1beta1 or v1alpha3";
    match (group, kind) {
        ("security.istio.io", "PeerAuthentication") => {
            check(&["v1", "v1beta1"], "security.istio.io/v1 or v1beta1", Handler::PeerAuthentication)
        }
        ("networking.istio.io", "DestinationRule") => check(&NET, NET_EXPECTED, Handler::DestinationRule),
        ("networking.istio.io", "Gateway") => check(&NET, NET_EXPECTED, Handler::Gateway),
        ("networking.istio.io", "VirtualService") => check(&NET, NET_EXPECTED, Handler::VirtualService),
        ("observer.dev", "Expectation") => check(&["v1alpha1"], "observer.dev/v1alpha1", Handler::Expectation),
        ("", "Pod") => check(&["v1"], "v1", Handler::Pod),
        ("", "Service") => check(&["v1"], "v1", Handler::Service),
        ("", "Namespace") => check(&["v1"], "v1", Handler::Namespace),
        ("", "ConfigMap") => check(&["v1"], "v1", Handler::ConfigMap),
        _ => Ok(None),
    }
}

/// A body nothing is read from (Namespaces: their metadata is all).
#[derive(serde::Deserialize)]
struct IgnoredBody {}

/// The line of a spanned value within its document.
fn span_line<T>(value: &Spanned<T>) -> u32 {
    u32::try_from(value.referenced.line()).unwrap_or(0)
}

/// The body of a kind whose spec is under `spec`.
#[derive(serde::Deserialize)]
struct SpecBody<S> {
    spec: Option<S>,
}

impl Loader {
    fn error(&mut self, file: &Path, line: u32, kind: LoadErrorKind) {
        self.errors.push(LoadError { file: file.to_owned(), line, kind });
    }

    /// A YAML error at its line, with the field path of the value at fault when it has one;
    /// in a List, the path starts with the item (`items[3]`), named even when no path is found.
    fn yaml_error(&mut self, file: &Path, text: &str, offset: u32, error: &serde_saphyr::Error, item: Option<usize>) {
        let location = error.location();
        let line = location.map_or(0, |l| u32::try_from(l.line()).unwrap_or(0));
        let path =
            location.and_then(|l| field_path(text, usize::try_from(l.line()).ok()?, usize::try_from(l.column()).ok()?));
        let path = match (item, path) {
            (Some(i), Some(path)) if !path.starts_with("items[") => Some(format!("items[{i}].{path}")),
            (Some(i), None) => Some(format!("items[{i}]")),
            (_, path) => path,
        };
        let message = yaml_message(error);
        let message = match path {
            Some(path) => format!("{path}: {message}"),
            None => message,
        };
        self.error(file, offset + line.max(1), LoadErrorKind::Yaml(message));
    }

    fn add_text(&mut self, file: &Path, text: &str) {
        self.files.push(file.to_owned());
        let shared: Arc<Path> = Arc::from(file);
        for (doc, offset) in documents(text) {
            self.add_document(&shared, &doc, offset);
        }
    }

    /// A document read as `T`. On an error, the value at fault is blanked and the document
    /// read again, so that every type error of the document is reported, not only the first.
    fn parse<T: DeserializeOwned>(&mut self, file: &Path, text: &str, offset: u32) -> Option<T> {
        let mut error = match serde_saphyr::from_str::<T>(text) {
            Ok(value) => return Some(value),
            Err(e) => e,
        };
        self.yaml_error(file, text, offset, &error, None);
        let mut patched = text.to_owned();
        let mut last = error.location().map(|l| (l.line(), l.column()));
        for _ in 0..MAX_ERRORS_PER_DOCUMENT {
            if !is_value_error(&error) {
                break;
            }
            let Some(next) = last.and_then(|(line, column)| {
                blank_value(&patched, usize::try_from(line).ok()?, usize::try_from(column).ok()?)
            }) else {
                break;
            };
            patched = next;
            error = match serde_saphyr::from_str::<T>(&patched) {
                Ok(_) => break,
                Err(e) => e,
            };
            let here = error.location().map(|l| (l.line(), l.column()));
            if here == last {
                break; // the blanked value is still wrong (`null` not allowed): no progress
            }
            self.yaml_error(file, &patched, offset, &error, None);
            last = here;
        }
        None
    }

    fn add_document(&mut self, file: &Arc<Path>, text: &str, offset: u32) {
        let Some(head) = self.parse::<Option<raw::RawHeader>>(file, text, offset).flatten() else {
            return;
        };
        let is_list = head.api_version.as_ref().is_some_and(|v| v.value == "v1")
            && head.kind.as_ref().is_some_and(|k| k.value == "List");
        if !is_list {
            if let Some(handler) = self.handler_of(file, text, offset, &head) {
                self.dispatch(file, text, offset, &[Some(head)], handler, None);
            }
            return;
        }
        self.list_errors = list::ListErrors::default();
        // Every item's header; an item whose header does not read is reported and left out.
        let mut heads: Vec<Option<raw::RawHeader>> = Vec::new();
        for (index, item) in self.list_items::<raw::RawHeader>(file, text, offset, None) {
            heads.resize_with(index, || None);
            heads.push(Some(item));
        }
        let handlers: Vec<Option<Handler>> =
            heads.iter().map(|item| self.handler_of(file, text, offset, item.as_ref()?)).collect();
        let mut kinds: Vec<Handler> = handlers.iter().flatten().copied().collect();
        kinds.sort_by_key(|h| *h as u8);
        kinds.dedup();
        for kind in kinds {
            let wanted: Vec<bool> = handlers.iter().map(|h| *h == Some(kind)).collect();
            self.dispatch(file, text, offset, &heads, kind, Some(&wanted));
        }
        if let Some(error) = std::mem::take(&mut self.list_errors).not_shown() {
            // After the errors it counts: at the List's last line.
            let last = offset.saturating_add(u32::try_from(text.lines().count()).unwrap_or(u32::MAX).max(1));
            self.error(file, last, error);
        }
    }

    /// The handler of an object's kind; `None` for kinds the observer skips (or errors).
    fn handler_of(&mut self, file: &Arc<Path>, text: &str, offset: u32, head: &raw::RawHeader) -> Option<Handler> {
        let (Some(api_version), Some(kind)) = (&head.api_version, &head.kind) else {
            let skipped = text.lines().take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#')).count();
            let line = offset + 1 + u32::try_from(skipped).unwrap_or(0);
            self.error(file, line, LoadErrorKind::NotAnObject);
            return None;
        };
        match handler(&api_version.value, &kind.value) {
            Ok(h) => h,
            Err(expected) => {
                let error = LoadErrorKind::UnsupportedVersion {
                    api_version: api_version.value.clone(),
                    kind: kind.value.clone(),
                    expected,
                };
                self.error(file, offset + span_line(kind), error);
                None
            }
        }
    }

    /// The bodies of type `T`: the document itself, or the wanted items of a List.
    fn bodies<T: DeserializeOwned>(
        &mut self,
        file: &Path,
        text: &str,
        offset: u32,
        wanted: Option<&[bool]>,
    ) -> Vec<(usize, T)> {
        match wanted {
            None => self.parse::<T>(file, text, offset).map(|b| vec![(0, b)]).unwrap_or_default(),
            Some(wanted) => self.list_items(file, text, offset, Some(wanted)),
        }
    }

    /// The document of object `heads[index]`, if its metadata is valid.
    fn doc<S>(
        &mut self,
        file: &Arc<Path>,
        offset: u32,
        head: Option<&raw::RawHeader>,
        handler: Handler,
        spec: S,
    ) -> Option<Doc<S>> {
        let head = head?;
        let line = offset + head.kind.as_ref().map_or(1, span_line);
        let meta = self.meta(file, &head.metadata, offset, line, &handler)?;
        Some(Doc {
            meta,
            labels: head.metadata.labels.clone(),
            annotations: head.metadata.annotations.clone(),
            line_offset: offset,
            spec,
        })
    }

    fn dispatch(
        &mut self,
        file: &Arc<Path>,
        text: &str,
        offset: u32,
        heads: &[Option<raw::RawHeader>],
        handler: Handler,
        wanted: Option<&[bool]>,
    ) {
        macro_rules! each {
            ($body:ty, |$doc_body:ident| $spec:expr, $model:ty, $into:ident) => {
                for (i, $doc_body) in self.bodies::<$body>(file, text, offset, wanted) {
                    if let Some(doc) = self.doc(file, offset, heads.get(i).and_then(Option::as_ref), handler, $spec) {
                        let converted = self.convert::<$model, _, _>(file, doc);
                        self.$into(converted);
                    }
                }
            };
        }
        match handler {
            Handler::PeerAuthentication => each!(
                SpecBody<policy::raw::RawPeerAuthenticationSpec>,
                |b| b.spec.unwrap_or_default(),
                PeerAuthentication,
                keep_pa
            ),
            Handler::DestinationRule => {
                each!(
                    SpecBody<policy::raw::RawDestinationRuleSpec>,
                    |b| b.spec.unwrap_or_default(),
                    DestinationRule,
                    keep_dr
                )
            }
            Handler::Gateway => {
                each!(SpecBody<policy::raw::RawGatewaySpec>, |b| b.spec.unwrap_or_default(), Gateway, keep_gw)
            }
            Handler::VirtualService => {
                each!(
                    SpecBody<policy::raw::RawVirtualServiceSpec>,
                    |b| b.spec.unwrap_or_default(),
                    VirtualService,
                    keep_vs
                )
            }
            Handler::Expectation => {
                each!(
                    SpecBody<policy::raw::RawExpectationSpec>,
                    |b| b.spec.unwrap_or_default(),
                    Expectation,
                    keep_expectation
                )
            }
            Handler::Pod => each!(inventory::raw::RawPodBody, |b| b, Pod, keep_pod),
            Handler::Service => each!(inventory::raw::RawServiceBody, |b| b, Service, keep_service),
            Handler::Namespace => {
                for (i, ()) in self.bodies::<IgnoredBody>(file, text, offset, wanted).into_iter().map(|(i, _)| (i, ()))
                {
                    if let Some(doc) = self.doc(file, offset, heads.get(i).and_then(Option::as_ref), handler, ()) {
                        self.namespaces.push(Namespace { name: doc.meta.object.name, labels: doc.labels });
                    }
                }
            }
            Handler::ConfigMap => {
                for (i, map) in self.bodies::<raw::RawConfigMap>(file, text, offset, wanted) {
                    if let Some(doc) = self.doc(file, offset, heads.get(i).and_then(Option::as_ref), handler, map) {
                        self.add_config_map(file, offset, doc);
                    }
                }
            }
        }
    }

    fn keep_pa(&mut self, v: Option<PeerAuthentication>) {
        self.policy.peer_authentications.extend(v);
    }
    fn keep_dr(&mut self, v: Option<DestinationRule>) {
        self.policy.destination_rules.extend(v);
    }
    fn keep_gw(&mut self, v: Option<Gateway>) {
        self.policy.gateways.extend(v);
    }
    fn keep_vs(&mut self, v: Option<VirtualService>) {
        self.policy.virtual_services.extend(v);
    }
    fn keep_expectation(&mut self, v: Option<Expectation>) {
        self.policy.expectations.extend(v);
    }
    fn keep_pod(&mut self, v: Option<Pod>) {
        self.pods.extend(v);
    }
    fn keep_service(&mut self, v: Option<Service>) {
        self.services.extend(v);
    }

    /// The `istio` ConfigMap carries the mesh settings; other ConfigMaps are not policy.
    fn add_config_map(&mut self, file: &Arc<Path>, offset: u32, doc: Doc<raw::RawConfigMap>) {
        if doc.meta.object.name != "istio" {
            return;
        }
        let Some(mesh) = doc.spec.data.get("mesh") else {
            return;
        };
        let line = offset + span_line(mesh);
        if let Some(first) = &self.mesh_seen {
            let kind = LoadErrorKind::Duplicate {
                object: "mesh settings (ConfigMap istio)".to_owned(),
                first: first.to_string(),
            };
            self.error(file, line, kind);
            return;
        }
        self.mesh_seen = Some(doc.meta.origin.clone());
        match MeshSettings::from_mesh_yaml(&mesh.value, doc.meta.origin.clone(), line) {
            Ok(settings) => self.policy.mesh = settings,
            Err(errors) => {
                for At { line, error } in errors {
                    self.error(file, line, error.into());
                }
            }
        }
    }

    fn meta(
        &mut self,
        file: &Arc<Path>,
        raw: &raw::RawMeta,
        offset: u32,
        line: u32,
        handler: &Handler,
    ) -> Option<Meta> {
        let Some(name) = raw.name.clone().filter(|n| !n.is_empty()) else {
            self.error(file, line, LoadErrorKind::MissingName);
            return None;
        };
        let namespace = match handler {
            Handler::Namespace => String::new(),
            _ => raw.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".to_owned()),
        };
        let name_rule = if *handler == Handler::Namespace { NameRule::Label } else { NameRule::Subdomain };
        for (field, value, rule) in
            [("metadata.name", &name, name_rule), ("metadata.namespace", &namespace, NameRule::Label)]
        {
            if !(field == "metadata.namespace" && value.is_empty())
                && let Err(rule) = check_name(value, rule)
            {
                self.error(file, line, LoadErrorKind::InvalidName { field, value: value.clone(), rule });
                return None;
            }
        }
        let created = match &raw.creation_timestamp {
            None => None,
            Some(ts) => match parse_timestamp(&ts.value) {
                Some(t) => Some(t),
                None => {
                    let at = offset + u32::try_from(ts.referenced.line()).unwrap_or(0);
                    self.error(file, at, LoadErrorKind::InvalidTimestamp(ts.value.clone()));
                    return None;
                }
            },
        };
        let kind: &'static str = match handler {
            Handler::PeerAuthentication => "PeerAuthentication",
            Handler::DestinationRule => "DestinationRule",
            Handler::Gateway => "Gateway",
            Handler::VirtualService => "VirtualService",
            Handler::Expectation => "Expectation",
            Handler::Pod => "Pod",
            Handler::Service => "Service",
            Handler::Namespace => "Namespace",
            Handler::ConfigMap => "ConfigMap",
        };
        let object = ObjectRef { kind, namespace, name };
        let origin = Origin { file: Arc::clone(file), line };
        if let Some(first) = self.seen.get(&object) {
            let error = LoadErrorKind::Duplicate { object: object.to_string(), first: first.to_string() };
            self.error(file, line, error);
            return None;
        }
        self.seen.insert(object.clone(), origin.clone());
        Some(Meta { object, created, origin })
    }

    fn convert<T, S, E>(&mut self, file: &Path, doc: Doc<S>) -> Option<T>
    where
        T: TryFrom<Doc<S>, Error = Vec<At<E>>>,
        LoadErrorKind: From<E>,
    {
        match T::try_from(doc) {
            Ok(value) => Some(value),
            Err(errors) => {
                for At { line, error } in errors {
                    self.error(file, line, error.into());
                }
                None
            }
        }
    }

    fn finish(mut self) -> Result<Mesh, LoadErrors> {
        if !self.errors.is_empty() {
            self.errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            return Err(LoadErrors(self.errors));
        }
        self.policy.sort_by_age();
        Ok(Mesh {
            policy: self.policy,
            inventory: Inventory::new(self.pods, self.services, self.namespaces),
            files: self.files,
        })
    }
}
