//! What the observer takes from the node's own traffic, measured the way a user would: the same
//! loopback workloads (nginx driven by wrk, iperf3) run alternately without and with
//! `observer run --output json > /dev/null`, several rounds, medians and ratios. While the
//! observer runs, its CPU time (utime + stime) and RSS are read from /proc, so the daemon's
//! cost per connection comes from the same windows. New connections get a third arm in the
//! same rounds: only empty programs at the observer's hooks (`--baseline-only`), the floor.
//!
//! Everything listens on 127.0.0.1, every process started here is stopped by its PID, and each
//! run stops by itself.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::observer::Observer;
use crate::cmd;

const HTTP_PORT: u16 = 18080;
const HTTPS_PORT: u16 = 18443;
const IPERF_PORT: u16 = 15201;
/// Length of one measured run.
const RUN: Duration = Duration::from_secs(5);
/// wrk's connections and threads: enough to keep nginx busy on 2 cores.
const WRK_CONNECTIONS: &str = "32";
const WRK_THREADS: &str = "2";

/// One workload of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    NewConnections,
    KeepAlive,
    TlsHandshakes,
    Iperf,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Self::NewConnections, Self::KeepAlive, Self::TlsHandshakes, Self::Iperf];

    pub fn label(self) -> &'static str {
        match self {
            Self::NewConnections => "new HTTP connections/s (wrk, Connection: close)",
            Self::KeepAlive => "keep-alive HTTP requests/s (wrk)",
            Self::TlsHandshakes => "new TLS handshakes/s (nginx, RSA-2048, Connection: close)",
            Self::Iperf => "iperf3 Gbit/s",
        }
    }

    /// The budget of docs/ARCHITECTURE.md: the lowest acceptable with/without ratio.
    pub fn budget(self) -> f64 {
        match self {
            Self::NewConnections => 0.97,
            _ => 0.98,
        }
    }

    /// Connections each unit of the figure stands for (to turn CPU time into µs per connection).
    fn connections_per_unit(self) -> f64 {
        match self {
            Self::NewConnections | Self::TlsHandshakes => 1.0,
            Self::KeepAlive | Self::Iperf => 0.0,
        }
    }
}

/// One measured run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// The workload's figure (requests/s, handshakes/s, Gbit/s).
    pub figure: f64,
    /// The daemon's CPU time during the run, when the observer ran.
    pub daemon_cpu: Option<Duration>,
    /// The daemon's RSS at the end of the run, KiB.
    pub daemon_rss_kib: Option<u64>,
    /// Requests or handshakes completed in the run (new-connection workloads).
    pub completed: f64,
}

impl Sample {
    /// Daemon CPU µs per connection, for the new-connection workloads.
    pub fn cpu_us_per_connection(&self) -> Option<f64> {
        let cpu = self.daemon_cpu?;
        (self.completed > 0.0).then(|| cpu.as_secs_f64() * 1e6 / self.completed)
    }
}

/// The servers the workloads talk to: nginx (HTTP and HTTPS) and an iperf3 server.
pub struct Servers {
    dir: PathBuf,
    nginx: Child,
    iperf: Child,
}

impl Servers {
    pub fn start() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("observer-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        cmd::status(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=bench.test"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, &cert, &key))?;
        let nginx = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let iperf = Command::new("iperf3")
            .args(["-s", "-p", &IPERF_PORT.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting iperf3 -s")?;
        let servers = Self { dir, nginx, iperf };
        for port in [HTTP_PORT, HTTPS_PORT, IPERF_PORT] {
            wait_listening(port)?;
        }
        Ok(servers)
    }

    /// Run one workload for [`RUN`] and return its figure and the connections it completed.
    pub fn run(&self, workload: Workload) -> Result<(f64, f64)> {
        match workload {
            Workload::NewConnections => wrk(&format!("http://127.0.0.1:{HTTP_PORT}/"), true),
            Workload::KeepAlive => wrk(&format!("http://127.0.0.1:{HTTP_PORT}/"), false),
            Workload::TlsHandshakes => wrk(&format!("https://127.0.0.1:{HTTPS_PORT}/"), true),
            Workload::Iperf => iperf().map(|gbits| (gbits, 0.0)),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // nginx's master runs in the foreground (daemon off): SIGQUIT lets it stop its workers.
        let _ = Command::new("kill").args(["-QUIT", &self.nginx.id().to_string()]).status();
        let _ = self.nginx.wait();
        let _ = Command::new("kill").args(["-TERM", &self.iperf.id().to_string()]).status();
        let _ = self.iperf.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_conf(dir: &Path, cert: &Path, key: &Path) -> String {
    format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir};\n  proxy_temp_path {dir};\n  fastcgi_temp_path {dir};\n\
           uwsgi_temp_path {dir};\n  scgi_temp_path {dir};\n  keepalive_requests 1000000;\n\
           server {{ listen 127.0.0.1:{HTTP_PORT}; location / {{ return 200 \"ok\\n\"; }} }}\n\
           server {{ listen 127.0.0.1:{HTTPS_PORT} ssl; ssl_certificate {cert}; ssl_certificate_key {key};\n\
             ssl_session_cache off; ssl_session_tickets off; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        dir = dir.display(),
        cert = cert.display(),
        key = key.display(),
    )
}

fn wait_listening(port: u16) -> Result<()> {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port}")
}

/// `wrk` against `url`: (requests per second, requests completed).
fn wrk(url: &str, close: bool) -> Result<(f64, f64)> {
    let mut command = Command::new("wrk");
    command.args(["-t", WRK_THREADS, "-c", WRK_CONNECTIONS, "-d", &format!("{}s", RUN.as_secs())]);
    if close {
        command.args(["-H", "Connection: close"]);
    }
    let out = command.arg(url).output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse::<f64>().ok())
        .with_context(|| format!("wrk printed no rate:\n{text}"))?;
    let completed = text
        .lines()
        .find_map(|l| l.split_once(" requests in ")?.0.trim().parse::<f64>().ok())
        .unwrap_or(rate * RUN.as_secs_f64());
    Ok((rate, completed))
}

/// One iperf3 run over loopback against the bench's server: Gbit/s received. The server takes
/// one test at a time and may still be finishing the last one: a busy server is asked again.
fn iperf() -> Result<f64> {
    let port = IPERF_PORT.to_string();
    let mut last = String::new();
    for _ in 0..5 {
        let out = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port, "-t", &RUN.as_secs().to_string(), "-J"])
            .output()
            .context("running iperf3 -c")?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bits) = json["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bits / 1e9);
        }
        last = json["error"].as_str().unwrap_or("no JSON output").to_owned();
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("iperf3 reported no throughput: {last}")
}

/// Measures `workload` with the observer running: its figure, and the daemon's CPU and RSS.
pub fn with_observer(servers: &Servers, workload: Workload) -> Result<Sample> {
    let observer = Observer::start(&[])?;
    // A node's observer runs for days: its start-up (the first metrics refresh, the kernel's
    // work after an attach) is left out of the window, as it is left out of a user's day.
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = observer.cpu_time();
    let (figure, completed) = servers.run(workload)?;
    let daemon_cpu = observer.cpu_time().saturating_sub(cpu_before);
    let daemon_rss_kib = observer.rss_kib();
    drop(observer);
    Ok(Sample {
        figure,
        daemon_cpu: Some(daemon_cpu),
        daemon_rss_kib: Some(daemon_rss_kib),
        completed: completed * workload.connections_per_unit(),
    })
}

/// Measures `workload` with only empty programs at the observer's hooks (`observer run
/// --baseline-only`: sock_create, sock_ops, cgroup_skb egress and ingress, nothing real): the
/// floor, what any program at those hooks costs the workload.
pub fn with_empty_programs(servers: &Servers, workload: Workload) -> Result<Sample> {
    let programs = Observer::start(&["--baseline-only"])?;
    // The same settling time as `with_observer`, so the arms differ only in what is attached.
    std::thread::sleep(Duration::from_secs(2));
    let (figure, completed) = servers.run(workload)?;
    drop(programs);
    Ok(Sample { figure, completed: completed * workload.connections_per_unit(), ..Sample::default() })
}

/// Measures `workload` alone.
pub fn without_observer(servers: &Servers, workload: Workload) -> Result<Sample> {
    let (figure, completed) = servers.run(workload)?;
    Ok(Sample { figure, completed: completed * workload.connections_per_unit(), ..Sample::default() })
}

/// The median of `values` (NaN for none).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// `median (min–max)` of a set of figures.
pub fn spread(values: &[f64], digits: usize) -> String {
    let mut sorted = values.to_vec();
    let m = median(&mut sorted);
    match (sorted.first(), sorted.last()) {
        (Some(lo), Some(hi)) => format!("{m:.digits$} ({lo:.digits$}–{hi:.digits$})"),
        _ => "–".to_owned(),
    }
}
