//! A real Prometheus (Debian's `prometheus`) on loopback scraping observers every second,
//! stopped by PID when dropped; its TSDB lives in the caller's temp dir. Queried with curl,
//! not with the observer's own client, so that a test of `--prometheus` does not check the
//! observer against itself.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::tempdir::TempDir;

/// A port free on loopback right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Prometheus on `127.0.0.1:port`.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    /// Starts it scraping `127.0.0.1:<port>` of each of `targets` (job `observer`) every second.
    pub fn start(dir: &TempDir, targets: &[u16]) -> anyhow::Result<Self> {
        Self::start_with(dir, targets, &[])
    }

    /// Like [`Prometheus::start`] with extra flags (`--query.max-samples=N`).
    pub fn start_with(dir: &TempDir, targets: &[u16], flags: &[&str]) -> anyhow::Result<Self> {
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: observer\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        let config = dir.write("prometheus.yml", config.as_bytes())?;
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("prometheus starts (cargo xtask setup installs it)")?;
        Ok(Self { child, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The results of an instant query (`data.result`), if it answered one.
    pub fn results(&self, promql: &str) -> Option<Vec<serde_json::Value>> {
        let url = format!("{}/api/v1/query", self.url());
        let out = Command::new("curl")
            .args(["-s", "-G", &url, "--data-urlencode"])
            .arg(format!("query={promql}"))
            .output()
            .ok()?;
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        body["data"]["result"].as_array().cloned()
    }

    /// The value of an instant query's single result, if it has one.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let results = self.results(promql)?;
        if results.len() != 1 {
            return None;
        }
        results[0]["value"][1].as_str()?.parse().ok()
    }

    /// Poll `promql` until it equals `want` or the deadline passes; the last value seen.
    pub fn wait_for(&self, promql: &str, want: f64, timeout: Duration) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.query(promql);
            if last == Some(want) {
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
        last
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
