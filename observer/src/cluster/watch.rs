//! One kube-rs watcher per resource, feeding the shared object set. The watcher lists, then
//! watches from the list's resourceVersion, relists when the watch expires, and retries failures
//! with kube's default backoff (client-go's: 0.8 s doubling to 30 s, with jitter). Failures are
//! logged and counted; an Istio CRD the API does not serve (404) is an empty set, not a failure,
//! and is looked for again at the same backoff, so installing Istio later is noticed.

use std::{
    collections::{BTreeMap, BTreeSet},
    pin::pin,
    sync::{
        Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::StreamExt as _;
use kube::{
    Api, Client,
    core::DynamicObject,
    runtime::{
        WatchStreamExt as _,
        watcher::{self, Event},
    },
};
use serde_json::Value;

use super::{
    objects::Objects,
    resources::{Resource, Scope},
};

/// Watch failures of this process by resource, in the order of [`Resource::ALL`], for
/// `observer_kubernetes_watch_errors_total`.
static WATCH_ERRORS: [AtomicU64; Resource::ALL.len()] = [const { AtomicU64::new(0) }; Resource::ALL.len()];

/// `(resource, failures)` for every resource, for the metrics exposition.
pub fn watch_error_counts() -> Vec<(&'static str, u64)> {
    Resource::ALL.iter().zip(&WATCH_ERRORS).map(|(r, n)| (r.name(), n.load(Ordering::Relaxed))).collect()
}

/// What the watchers know, shared with the source that builds snapshots.
#[derive(Debug, Default)]
pub struct State {
    pub objects: Objects,
    /// Bumped at every change of `objects`: a snapshot is rebuilt when it moved.
    pub generation: u64,
    /// Resources whose first full list (or absence) is in.
    pub synced: BTreeSet<Resource>,
    /// Istio CRDs the API does not serve.
    pub absent: BTreeSet<Resource>,
    /// Watch failures by resource, since this source started.
    pub errors: BTreeMap<Resource, u64>,
    /// The latest failure, for the start-up timeout's message.
    pub last_error: Option<String>,
}

impl State {
    /// Every resource has been listed once: a snapshot would not be partial.
    pub fn all_synced(&self) -> bool {
        self.synced.len() == Resource::ALL.len()
    }
}

/// The state and a signal for whoever waits on the first sync.
#[derive(Debug, Default)]
pub struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    /// The state. A watcher that panicked mid-update leaves at worst one resource stale, which its
    /// next relist repairs, so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until `done` holds or `timeout` passes; the state either way.
    pub fn wait_until(&self, timeout: std::time::Duration, done: impl Fn(&State) -> bool) -> MutexGuard<'_, State> {
        let guard = self.lock();
        match self.changed.wait_timeout_while(guard, timeout, |state| !done(state)) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    fn update(&self, change: impl FnOnce(&mut State) -> bool) {
        let mut state = self.lock();
        if change(&mut state) {
            state.generation += 1;
        }
        drop(state);
        self.changed.notify_all();
    }

    fn listed(&self, resource: Resource, objects: Vec<Value>) {
        self.update(|state| {
            state.synced.insert(resource);
            if state.absent.remove(&resource) {
                tracing::info!(resource = resource.name(), "now served by the API");
            }
            state.objects.replace(resource, objects)
        });
    }

    fn absent(&self, resource: Resource) {
        self.update(|state| {
            state.synced.insert(resource);
            if state.absent.insert(resource) {
                tracing::info!(
                    resource = resource.name(),
                    "not served by the API (Istio not installed?): no objects of this kind; looking again with backoff"
                );
            }
            state.objects.replace(resource, Vec::new())
        });
    }

    fn failed(&self, resource: Resource, error: &watcher::Error) {
        if let Some(i) = Resource::ALL.iter().position(|r| *r == resource) {
            WATCH_ERRORS[i].fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(resource = resource.name(), %error, "watch failed; retrying with backoff");
        self.update(|state| {
            *state.errors.entry(resource).or_default() += 1;
            state.last_error = Some(format!("{}: {error}", resource.name()));
            false
        });
    }
}

/// A 404 from listing: the API does not serve the resource.
fn not_served(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::InitialListFailed(kube::Error::Api(status)) if status.code == 404)
}

fn to_value(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// Watches one resource until the task is dropped.
pub async fn watch(client: Client, scope: Scope, resource: Resource, shared: std::sync::Arc<Shared>) {
    let api_resource = resource.api_resource();
    let query = scope.query(resource);
    let api: Api<DynamicObject> = match &query.namespace {
        Some(namespace) => Api::namespaced_with(client, namespace, &api_resource),
        None => Api::all_with(client, &api_resource),
    };
    let mut config = watcher::Config::default();
    if let Some(fields) = &query.fields {
        config = config.fields(fields);
    }
    let mut events = pin!(watcher::watcher(api, config).default_backoff());
    // A (re)list arrives as Init, InitApply..., InitDone and replaces the whole set at once, so
    // a relist never shows a half-listed resource.
    let mut listing = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => listing.clear(),
            Ok(Event::InitApply(object)) => listing.push(to_value(object)),
            Ok(Event::InitDone) => shared.listed(resource, std::mem::take(&mut listing)),
            Ok(Event::Apply(object)) => shared.update(|state| state.objects.apply(resource, to_value(object))),
            Ok(Event::Delete(object)) => shared.update(|state| state.objects.delete(resource, &to_value(object))),
            Err(error) if resource.may_be_absent() && not_served(&error) => shared.absent(resource),
            Err(error) => shared.failed(resource, &error),
        }
    }
}
