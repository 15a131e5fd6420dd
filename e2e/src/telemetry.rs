//! Real receivers of what the observer exports, on loopback, stopped by PID on drop:
//! [`OtlpReceiver`] (e2e/tools/otlp_receiver.py on the official OTLP protobufs and grpcio,
//! in the venv `cargo xtask setup` makes), [`Alertmanager`] (Debian's, single node) with a
//! [`Webhook`] it notifies, and [`http_get`] for scrapes and API queries.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{tempdir::TempDir, workspace_root};

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

/// `GET http://127.0.0.1:<port><path>`: status and body (HTTP/1.0, no keep-alive).
pub fn http_get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).with_context(|| format!("connecting to :{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

fn stop(child: &mut Child) {
    crate::netns::signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    crate::netns::signal(child.id(), libc::SIGKILL);
    let _ = child.wait();
}

/// The OTLP receiver: every request it got, gRPC or HTTP, as protobuf JSON.
pub struct OtlpReceiver {
    child: Child,
    pub grpc_port: u16,
    pub http_port: u16,
    out: PathBuf,
    _dir: TempDir,
}

impl OtlpReceiver {
    pub fn start() -> anyhow::Result<Self> {
        let python = workspace_root().join("target/otlp-venv/bin/python");
        if !python.exists() {
            bail!("{} missing: run `cargo xtask setup`", python.display());
        }
        let dir = TempDir::new("otlp")?;
        let out = dir.join("requests.jsonl");
        let script = workspace_root().join("e2e/tools/otlp_receiver.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let stdout = child.stdout.take().context("receiver stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let ports: Vec<u16> = line.split_whitespace().skip(1).filter_map(|p| p.parse().ok()).collect();
        let [grpc_port, http_port] = ports[..] else {
            stop(&mut child);
            bail!("the OTLP receiver did not start: {line:?}");
        };
        Ok(Self { child, grpc_port, http_port, out, _dir: dir })
    }

    /// Every request received so far: `{"transport": "grpc"|"http", "request": {...}}`.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Polls until `found` returns something from the requests, or `timeout`.
    pub fn wait_for<T>(&self, timeout: Duration, found: impl Fn(&[Value]) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(hit) = found(&self.requests()) {
                return Some(hit);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// An OTLP attribute's value as a string (`stringValue`, `intValue`, `boolValue`).
pub fn attr_value(attributes: &Value, key: &str) -> Option<String> {
    let kv = attributes.as_array()?.iter().find(|kv| kv["key"] == key)?;
    let value = &kv["value"];
    value["stringValue"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| value["intValue"].as_str().map(str::to_owned))
        .or_else(|| value["boolValue"].as_bool().map(|b| b.to_string()))
        .or_else(|| value["doubleValue"].as_f64().map(|d| d.to_string()))
}

/// Every data point of metric `name` in one request, with its resource attributes.
pub fn points<'a>(request: &'a Value, name: &str) -> Vec<(&'a Value, &'a Value)> {
    let mut out = Vec::new();
    for rm in request["request"]["resourceMetrics"].as_array().into_iter().flatten() {
        for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
            for metric in sm["metrics"].as_array().into_iter().flatten().filter(|m| m["name"] == name) {
                let data = ["sum", "gauge", "histogram"].iter().map(|k| &metric[*k]).find(|d| d.is_object());
                for point in data.and_then(|d| d["dataPoints"].as_array()).into_iter().flatten() {
                    out.push((&rm["resource"]["attributes"], point));
                }
            }
        }
    }
    out
}

/// A data point's value (`asInt` arrives as a string in protobuf JSON, `asDouble` as a number).
pub fn point_value(point: &Value) -> Option<f64> {
    point["asInt"].as_str().and_then(|s| s.parse().ok()).or_else(|| point["asDouble"].as_f64())
}

/// A webhook receiver for Alertmanager: every notification body it got.
pub struct Webhook {
    pub port: u16,
    received: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Some(body) = read_post(stream) {
                    sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(body);
                }
            }
        });
        Ok(Self { port, received })
    }

    pub fn notifications(&self) -> Vec<Value> {
        self.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// One HTTP POST's JSON body; answers 200.
fn read_post(mut stream: TcpStream) -> Option<Value> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length.min(16 * 1024 * 1024)];
    reader.read_exact(&mut body).ok()?;
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    serde_json::from_slice(&body).ok()
}

/// Alertmanager, single node (`--cluster.listen-address=`), notifying a webhook fast.
pub struct Alertmanager {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

impl Alertmanager {
    pub fn start(webhook_port: u16) -> anyhow::Result<Self> {
        let dir = TempDir::new("alertmanager")?;
        let config = format!(
            "route:\n  receiver: test\n  group_by: ['...']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: 'http://127.0.0.1:{webhook_port}/'\n        send_resolved: true\n"
        );
        let config = dir.write("alertmanager.yml", config.as_bytes())?;
        let port = free_port();
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting prometheus-alertmanager (cargo xtask setup installs it)")?;
        let alertmanager = Self { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_get(port, "/-/ready").is_ok_and(|(status, _)| status == 200) {
            if Instant::now() >= deadline {
                bail!("Alertmanager not ready on :{port} within 30 s");
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(alertmanager)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The active alerts (`GET /api/v2/alerts`).
    pub fn alerts(&self) -> Vec<Value> {
        http_get(self.port, "/api/v2/alerts")
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
