//! A stand-in for the Kubernetes API server, on 127.0.0.1, for the watcher tests.
//!
//! No API server can run on the build machine (Debian ships only kubectl; nothing on PyPI or npm
//! runs one), so this implements the part of the protocol kube-rs' watcher uses, as the API
//! server does it: `GET` of a collection answers a `...List` with `metadata.resourceVersion`;
//! `?watch=true&resourceVersion=N` answers a chunked stream of JSON lines
//! (`{"type":"ADDED"|"MODIFIED"|"DELETED"|"ERROR","object":...}`) starting after version N,
//! or an ERROR 410 "Expired" event when N is older than the history kept; `fieldSelector`
//! (`a.b=value`) and namespaced paths filter; an API group that is not installed answers
//! `404 page not found` in plain text, as the API server does for an unknown group.
//! Tests steer it: apply and delete objects, drop or expire watches, fail lists, install Istio.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    thread::JoinHandle,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use crate::cluster::Resource;

/// Most request bytes read: a request line and headers.
const MAX_REQUEST: usize = 16 * 1024;

/// What a watch connection is sent: an event line, or the end of the stream.
type WatchLine = Option<String>;

/// Which objects a request asked for.
#[derive(Clone, Debug, Default)]
struct Filter {
    namespace: Option<String>,
    /// `(dotted.path, value)` pairs of `fieldSelector`.
    fields: Vec<(String, String)>,
}

impl Filter {
    fn matches(&self, object: &Value) -> bool {
        let namespace_ok = self.namespace.as_ref().is_none_or(|ns| object["metadata"]["namespace"] == **ns);
        namespace_ok
            && self.fields.iter().all(|(path, value)| {
                let pointer = format!("/{}", path.replace('.', "/"));
                object.pointer(&pointer).and_then(Value::as_str) == Some(value)
            })
    }
}

#[derive(Default)]
struct Collection {
    objects: BTreeMap<(String, String), Value>,
    /// Every event with its resourceVersion, for watches that start from an older version.
    history: Vec<(u64, Value)>,
    /// Watches from a version before this one get 410 Expired (0: the whole history is kept).
    expired_before: u64,
    watchers: Vec<(Filter, mpsc::UnboundedSender<WatchLine>)>,
    /// The next this many lists answer 500.
    failing_lists: u32,
}

#[derive(Default)]
struct ApiState {
    version: u64,
    collections: BTreeMap<Resource, Collection>,
    istio_installed: bool,
    /// Every request line, for assertions on selectors.
    requests: Vec<String>,
}

/// The fake API server; stops when dropped.
pub struct FakeApi {
    pub addr: SocketAddr,
    state: Arc<Mutex<ApiState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    /// Serves on an ephemeral port of 127.0.0.1; Istio's groups only if `istio_installed`.
    pub fn start(istio_installed: bool) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("address");
        let state = Arc::new(Mutex::new(ApiState { istio_installed, ..ApiState::default() }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    let serve = async {
                        loop {
                            let Ok((stream, _)) = listener.accept().await else { continue };
                            tokio::spawn(serve_connection(stream, Arc::clone(&state)));
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = stopped => {}
                    }
                });
            })
        };
        Self { addr, state, stop: Some(stop), thread: Some(thread) }
    }

    /// A kube-rs configuration pointing at this server (plain HTTP on loopback).
    pub fn config(&self) -> kube::Config {
        kube::Config::new(format!("http://{}", self.addr).parse().expect("URL"))
    }

    fn lock(&self) -> MutexGuard<'_, ApiState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates or replaces an object and tells the watches (ADDED or MODIFIED).
    pub fn apply(&self, resource: Resource, mut object: Value) {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let key = key_of(&object);
        let collection = state.collections.entry(resource).or_default();
        let kind = if collection.objects.insert(key, object.clone()).is_some() { "MODIFIED" } else { "ADDED" };
        collection.publish(version, json!({"type": kind, "object": object}));
    }

    /// Deletes an object and tells the watches.
    pub fn delete(&self, resource: Resource, namespace: &str, name: &str) {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        let collection = state.collections.entry(resource).or_default();
        if let Some(mut object) = collection.objects.remove(&(namespace.to_owned(), name.to_owned())) {
            object["metadata"]["resourceVersion"] = json!(version.to_string());
            collection.publish(version, json!({"type": "DELETED", "object": object}));
        }
    }

    /// Ends every open watch of `resource`, as an API server restart or a proxy timeout does.
    pub fn drop_watches(&self, resource: Resource) {
        let mut state = self.lock();
        for (_, watcher) in state.collections.entry(resource).or_default().watchers.drain(..) {
            let _ = watcher.send(None);
        }
    }

    /// Forgets the history of `resource` (as etcd compaction does) and ends its watches: a
    /// watcher resuming from its last version gets 410 Expired and must list again.
    pub fn expire_history(&self, resource: Resource) {
        let mut state = self.lock();
        // Compaction moves the version on: a list after it is newer than every forgotten event.
        state.version += 1;
        let version = state.version;
        let collection = state.collections.entry(resource).or_default();
        collection.expired_before = version;
        collection.history.clear();
        for (_, watcher) in collection.watchers.drain(..) {
            let _ = watcher.send(None);
        }
    }

    /// The next `count` lists of `resource` answer 500 Internal Server Error.
    pub fn fail_lists(&self, resource: Resource, count: u32) {
        self.lock().collections.entry(resource).or_default().failing_lists = count;
    }

    /// Serves Istio's API groups from now on.
    pub fn install_istio(&self) {
        self.lock().istio_installed = true;
    }

    /// Every request line so far (`GET /api/v1/pods?... HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Collection {
    fn publish(&mut self, version: u64, event: Value) {
        self.watchers.retain(|(filter, watcher)| {
            !filter.matches(&event["object"]) || watcher.send(Some(event.to_string())).is_ok()
        });
        self.history.push((version, event));
    }
}

fn key_of(object: &Value) -> (String, String) {
    let field = |name: &str| object["metadata"][name].as_str().unwrap_or_default().to_owned();
    (field("namespace"), field("name"))
}

/// `/api/v1/...` or `/apis/group/version/...` to the resource and namespace it names.
fn route(path: &str) -> Option<(Resource, Option<String>)> {
    let (group, rest) = if let Some(rest) = path.strip_prefix("/api/v1/") {
        ("", rest)
    } else {
        let rest = path.strip_prefix("/apis/")?;
        let mut parts = rest.splitn(3, '/');
        let (group, _version, rest) = (parts.next()?, parts.next()?, parts.next()?);
        (group, rest)
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (namespace, plural) = match segments.as_slice() {
        [plural] => (None, *plural),
        ["namespaces", namespace, plural] => (Some((*namespace).to_owned()), *plural),
        _ => return None,
    };
    let resource = Resource::ALL.into_iter().find(|r| {
        let (g, _, _, p) = r.gvk();
        // The mesh ConfigMap is the only ConfigMap the observer asks for.
        g == group && p == plural
    })?;
    Some((resource, namespace))
}

/// `%3D` and `+` decoding of a query value.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(target: &str) -> (String, BTreeMap<String, String>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path.to_owned(), params)
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

async fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<ApiState>>) {
    let mut request = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    while len < MAX_REQUEST {
        match stream.read(&mut request[len..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        if request[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&request[..len]).into_owned();
    let line = head.lines().next().unwrap_or_default().to_owned();
    let target = line.split(' ').nth(1).unwrap_or_default();
    let (path, params) = query(target);
    let filter_fields = params
        .get("fieldSelector")
        .map(|s| s.split(',').filter_map(|f| f.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
        .unwrap_or_default();

    // Decide under the lock, write after it.
    enum Answer {
        Text(&'static str, &'static str, String),
        Watch(Vec<String>, Option<mpsc::UnboundedReceiver<WatchLine>>),
    }
    let answer = {
        let mut state = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.requests.push(line.clone());
        let routed = route(&path).filter(|(r, _)| !r.may_be_absent() || state.istio_installed);
        match routed {
            None => Answer::Text("404 Not Found", "text/plain; charset=utf-8", "404 page not found\n".to_owned()),
            Some((resource, namespace)) => {
                let filter = Filter { namespace, fields: filter_fields };
                let version = state.version;
                let collection = state.collections.entry(resource).or_default();
                if params.get("watch").map(String::as_str) == Some("true") {
                    let from: u64 = params.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
                    if from < collection.expired_before {
                        let gone = status(410, "Expired", &format!("too old resource version: {from}"));
                        Answer::Watch(vec![json!({"type": "ERROR", "object": gone}).to_string()], None)
                    } else {
                        let backlog = collection
                            .history
                            .iter()
                            .filter(|(v, event)| *v > from && filter.matches(&event["object"]))
                            .map(|(_, event)| event.to_string())
                            .collect();
                        let (sender, receiver) = mpsc::unbounded_channel();
                        collection.watchers.push((filter, sender));
                        Answer::Watch(backlog, Some(receiver))
                    }
                } else if collection.failing_lists > 0 {
                    collection.failing_lists -= 1;
                    let body = status(500, "InternalError", "etcdserver: request timed out").to_string();
                    Answer::Text("500 Internal Server Error", "application/json", body)
                } else {
                    let items: Vec<&Value> = collection.objects.values().filter(|o| filter.matches(o)).collect();
                    let list = json!({
                        "kind": format!("{}List", resource.kind()),
                        "apiVersion": resource.api_version(),
                        "metadata": {"resourceVersion": version.to_string()},
                        "items": items,
                    });
                    Answer::Text("200 OK", "application/json", list.to_string())
                }
            }
        }
    };
    match answer {
        Answer::Text(code, content_type, body) => respond(&mut stream, code, content_type, &body).await,
        Answer::Watch(backlog, receiver) => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for line in backlog {
                if write_chunk(&mut stream, &line).await.is_err() {
                    return;
                }
            }
            if let Some(mut receiver) = receiver {
                while let Some(Some(line)) = receiver.recv().await {
                    if write_chunk(&mut stream, &line).await.is_err() {
                        return;
                    }
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
            let _ = stream.shutdown().await;
        }
    }
}

async fn write_chunk(stream: &mut TcpStream, line: &str) -> std::io::Result<()> {
    let chunk = format!("{:x}\r\n{line}\n\r\n", line.len() + 1);
    stream.write_all(chunk.as_bytes()).await
}
