//! The live observer as a black box: `observer run --output json --duration N` started from the
//! root namespace (never under `ip netns exec`, which remounts /sys and hides cgroupfs), awaited
//! until it logs that it is attached, then stopped and its JSON lines collected.

use std::{
    fs::File,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{
    cmd,
    netns::signal,
    privileges::Privileges,
    records::{Checks, Records},
    tempdir::TempDir,
    workspace_root,
};

/// How long the observer may take to load and attach its programs.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// What the observer logs (stderr, info level) once its programs are attached (and its
/// capabilities dropped: it logs `capabilities after attach` first).
pub const ATTACHED_MARKER: &str = "observer attached";

/// The observer binary: `$OBSERVER_BIN`, else `<workspace>/target/release/observer`.
pub fn binary() -> PathBuf {
    match std::env::var_os("OBSERVER_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => workspace_root().join("target/release/observer"),
    }
}

/// A running `observer run`. Dropping it without [`ObserverProcess::stop_after`] or
/// [`ObserverProcess::finish`] kills it by PID.
#[derive(Debug)]
pub struct ObserverProcess {
    process: std::process::Child,
    shown: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _logs: TempDir,
}

/// Upper bound of one observer run in a test; tests stop it earlier with SIGINT.
pub const RUN_CAP: Duration = Duration::from_secs(120);
/// Time for the last events to drain after a test's traffic, before SIGINT.
pub const DRAIN: Duration = Duration::from_millis(1500);

/// What one observer run produced.
#[derive(Debug)]
pub struct ObserverRun {
    pub status: ExitStatus,
    pub records: Records,
    /// stdout lines that are not JSON objects (a contract violation worth a failure).
    pub bad_lines: Vec<String>,
    pub stderr: String,
}

impl ObserverProcess {
    /// Starts `observer run --output json --duration <duration>` and waits until attached.
    pub fn start(duration: Duration) -> anyhow::Result<Self> {
        Self::start_with(duration, &[])
    }

    /// Like [`ObserverProcess::start`] with extra arguments (`--policy DIR`, `--cgroup PATH`).
    pub fn start_with(duration: Duration, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(duration, extra, &[])
    }

    /// Like [`ObserverProcess::start_with`] with environment variables (`OTEL_*`).
    pub fn start_with_env(duration: Duration, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_as(&Privileges::chart(), duration, extra, env)
    }

    /// Like [`ObserverProcess::start_with_env`] under `privileges`; every other start uses the
    /// chart's capability set ([`Privileges::chart`]), so every live test proves it suffices.
    pub fn start_as(
        privileges: &Privileges,
        duration: Duration,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let bin = binary();
        if !bin.exists() {
            bail!(
                "observer binary {} not found: build it with `cargo build --release -p observer` \
                 or set OBSERVER_BIN",
                bin.display()
            );
        }
        let logs = TempDir::new("observer")?;
        let stdout_path = logs.join("stdout");
        let stderr_path = logs.join("stderr");
        let mut command = privileges.command(&bin);
        command
            .args(["run", "--output", "json", "--duration"])
            .arg(duration.as_secs().max(1).to_string())
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).context("cannot create observer stdout log")?)
            .stderr(File::create(&stderr_path).context("cannot create observer stderr log")?);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "info");
        }
        let shown = cmd::describe(&command);
        let process = command.spawn().with_context(|| format!("cannot start `{shown}`"))?;
        let mut observer = Self { process, shown, stdout_path, stderr_path, _logs: logs };
        observer.wait_attached()?;
        Ok(observer)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The records printed so far (complete lines), while it runs.
    pub fn records_so_far(&self) -> Records {
        let stdout = std::fs::read_to_string(&self.stdout_path).unwrap_or_default();
        let complete = stdout.rfind('\n').map_or("", |end| &stdout[..end]);
        Records::new(complete.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).collect())
    }

    /// Polls its log until a line contains `needle` after the first `skip` matching lines
    /// (count them first to wait for the next one); returns that line.
    pub fn wait_for_log(&self, needle: &str, skip: usize, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr().lines().filter(|l| l.contains(needle)).nth(skip) {
                return Ok(line.to_owned());
            }
            if Instant::now() >= deadline {
                bail!("no log line containing {needle:?} within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls [`ObserverProcess::records_so_far`] until `found` picks a non-empty set, or `timeout`.
    pub fn wait_for_records(&self, timeout: Duration, found: impl Fn(&Records) -> Records) -> Option<Records> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = found(&self.records_so_far());
            if !hits.is_empty() {
                return Some(hits);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The BPF programs, links and maps this observer process holds, read from
    /// `/proc/<pid>/fdinfo` (exact even when other observers run at the same time).
    pub fn bpf_objects(&self) -> anyhow::Result<BpfObjects> {
        let dir = format!("/proc/{}/fdinfo", self.pid());
        let mut objects = BpfObjects::default();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))?.flatten() {
            let Ok(info) = std::fs::read_to_string(entry.path()) else { continue };
            let field =
                |key: &str| info.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<u64>().ok());
            if let Some(link) = field("link_id:") {
                objects.links.push(link);
            } else if let Some(prog) = field("prog_id:") {
                objects.progs.push(prog);
            } else if let Some(map) = field("map_id:") {
                objects.maps.push(map);
            }
        }
        Ok(objects)
    }

    fn wait_attached(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        loop {
            if self.stderr().lines().any(|l| l.contains(ATTACHED_MARKER)) {
                return Ok(());
            }
            if let Some(status) = self.process.try_wait().context("cannot poll observer")? {
                bail!("`{}` exited ({status}) before attaching:\n{}", self.shown, self.stderr());
            }
            if Instant::now() >= deadline {
                bail!("`{}` not attached after {ATTACH_TIMEOUT:?}:\n{}", self.shown, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it with SIGINT after `grace` (time for the last events to drain), waits for it to
    /// exit, and collects its records. SIGKILL after 20 s is a failure.
    pub fn stop_after(self, grace: Duration) -> anyhow::Result<ObserverRun> {
        self.signal_after(libc::SIGINT, grace)
    }

    /// Like [`ObserverProcess::stop_after`] with another signal (SIGTERM, as Kubernetes sends).
    pub fn signal_after(mut self, sig: libc::c_int, grace: Duration) -> anyhow::Result<ObserverRun> {
        std::thread::sleep(grace);
        if matches!(self.process.try_wait(), Ok(None)) {
            signal(self.pid(), sig);
        }
        self.collect(Duration::from_secs(20))
    }

    /// Waits for it to exit on its own (`--duration`), at most `timeout`, and collects.
    pub fn finish(mut self, timeout: Duration) -> anyhow::Result<ObserverRun> {
        self.collect(timeout)
    }

    fn collect(&mut self, timeout: Duration) -> anyhow::Result<ObserverRun> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.process.try_wait().context("cannot poll observer")? {
                break status;
            }
            if Instant::now() >= deadline {
                signal(self.pid(), libc::SIGKILL);
                let _ = self.process.wait();
                bail!("`{}` did not exit within {timeout:?}:\n{}", self.shown, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = std::fs::read_to_string(&self.stdout_path).context("cannot read observer stdout")?;
        let (records, bad_lines) = parse_lines(&stdout);
        Ok(ObserverRun { status, records, bad_lines, stderr: self.stderr() })
    }
}

/// JSON object lines into records; anything else into the second list.
fn parse_lines(stdout: &str) -> (Records, Vec<String>) {
    let mut records = Vec::new();
    let mut bad_lines = Vec::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(value @ Value::Object(_)) => records.push(value),
            _ => bad_lines.push(line.to_owned()),
        }
    }
    (Records::new(records), bad_lines)
}

/// `observer replay FILES... --output json [extra]`, run to completion.
pub fn replay(files: &[&std::path::Path], extra: &[&str]) -> anyhow::Result<ObserverRun> {
    let mut command = Command::new(binary());
    command.arg("replay").args(files).args(["--output", "json"]).args(extra).stdin(Stdio::null());
    let shown = cmd::describe(&command);
    let out = command.output().with_context(|| format!("cannot run `{shown}`"))?;
    let (records, bad_lines) = parse_lines(&String::from_utf8_lossy(&out.stdout));
    Ok(ObserverRun {
        status: out.status,
        records,
        bad_lines,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

impl ObserverRun {
    /// Panics with every failed expectation of `checks` and the observer's last log lines (its
    /// exit counters say whether samples were lost).
    #[track_caller]
    pub fn assert_passed(&self, what: &str, checks: Checks) {
        if let Err(error) = checks.finish() {
            panic!("{what}: {error:#}\nobserver log tail:\n{}", self.log_tail(4));
        }
    }

    /// The common ending of a test: the observer exited cleanly and reported exactly `want`
    /// (see [`check_connections`](crate::check_connections)); every failure is shown at once.
    #[track_caller]
    pub fn assert_connections(&self, what: &str, want: &[crate::ExpectedConn]) {
        let mut checks = Checks::new();
        checks.check("observer exit", self.expect_clean_exit());
        crate::check_connections(&self.records, want, &mut checks);
        self.assert_passed(what, checks);
    }

    /// The last `n` lines the observer logged (its exit counters), for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Fails unless it exited 0 and printed only JSON objects.
    pub fn expect_clean_exit(&self) -> anyhow::Result<()> {
        if !self.status.success() {
            bail!("observer exited {}:\n{}", self.status, self.stderr);
        }
        if !self.bad_lines.is_empty() {
            bail!("observer printed non-JSON lines:\n{}", self.bad_lines.join("\n"));
        }
        Ok(())
    }
}

impl Drop for ObserverProcess {
    fn drop(&mut self) {
        if matches!(self.process.try_wait(), Ok(None)) {
            signal(self.pid(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.process.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            signal(self.pid(), libc::SIGKILL);
            let _ = self.process.wait();
        }
    }
}

/// Kernel BPF objects by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BpfObjects {
    pub progs: Vec<u64>,
    pub links: Vec<u64>,
    pub maps: Vec<u64>,
}

impl BpfObjects {
    /// Which of these objects the kernel still has (`bpftool -j prog|link|map list`), as
    /// `prog 12 observer_sock_o`, `link 7`, `map 40`.
    pub fn still_loaded(&self) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        for (kind, ids) in [("prog", &self.progs), ("link", &self.links), ("map", &self.maps)] {
            let out = cmd::run("bpftool", ["-j", kind, "list"])?;
            let list: Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("`bpftool -j {kind} list` printed no JSON"))?;
            for item in list.as_array().into_iter().flatten() {
                let id = item.get("id").and_then(Value::as_u64).unwrap_or(0);
                if ids.contains(&id) {
                    let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                    found.push(format!("{kind} {id} {name}").trim_end().to_owned());
                }
            }
        }
        Ok(found)
    }

    /// What is still loaded once the kernel had up to 5 s to free it: it frees a map in
    /// deferred work after its last reference (a program being freed) drops, so a check right
    /// after the observer exits can still see maps nothing holds any more.
    pub fn left_after_exit(&self) -> anyhow::Result<Vec<String>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left = self.still_loaded()?;
            if left.is_empty() || std::time::Instant::now() >= deadline {
                return Ok(left);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Loaded BPF programs whose name starts with `observer` (the kernel keeps 15 characters:
/// `observer_sock_o`), and the links attaching them, from `bpftool -j`. Compare before/after a
/// run: another observer (another test binary, a demo) may be running too.
pub fn attached_observer_objects() -> anyhow::Result<Vec<String>> {
    let list = |kind: &str| -> anyhow::Result<Vec<Value>> {
        let out = cmd::run("bpftool", ["-j", kind, "list"])?;
        let value: Value =
            serde_json::from_slice(&out.stdout).with_context(|| format!("`bpftool -j {kind} list` printed no JSON"))?;
        Ok(value.as_array().cloned().unwrap_or_default())
    };
    let mut found = Vec::new();
    let mut ours = Vec::new();
    for prog in list("prog")? {
        let name = prog.get("name").and_then(Value::as_str).unwrap_or("");
        if name.starts_with("observer") {
            let id = prog.get("id").and_then(Value::as_u64).unwrap_or(0);
            ours.push(id);
            found.push(format!("prog {id} {name}"));
        }
    }
    for link in list("link")? {
        let prog_id = link.get("prog_id").and_then(Value::as_u64).unwrap_or(0);
        if ours.contains(&prog_id) {
            let id = link.get("id").and_then(Value::as_u64).unwrap_or(0);
            found.push(format!("link {id} -> prog {prog_id}"));
        }
    }
    Ok(found)
}
