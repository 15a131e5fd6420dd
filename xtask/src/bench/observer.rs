//! The observer under measurement: started in the background, read through bpftool, its
//! metrics endpoint and /proc, and stopped (by its PID) when dropped.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

const METRICS_ADDR: &str = "127.0.0.1:19464";

pub struct Observer {
    child: Child,
}

/// Cumulative run time and count per program name.
#[derive(Default)]
pub struct ProgramRuns(HashMap<String, (u64, u64)>);

impl ProgramRuns {
    pub fn delta(&self, before: &ProgramRuns) -> ProgramRuns {
        ProgramRuns(
            self.0
                .iter()
                .map(|(name, (time, count))| {
                    let (t0, c0) = before.0.get(name).copied().unwrap_or_default();
                    (name.clone(), (time.saturating_sub(t0), count.saturating_sub(c0)))
                })
                .collect(),
        )
    }

    pub fn ns_per_run(&self, program: &str) -> Option<f64> {
        let (time, count) = self.0.get(program)?;
        (*count > 0).then(|| *time as f64 / *count as f64)
    }

    pub fn count(&self, program: &str) -> u64 {
        self.0.get(program).map_or(0, |(_, c)| *c)
    }

    /// Run time and runs of every program whose name starts with `prefix`, summed.
    pub fn total(&self, prefix: &str) -> (u64, u64) {
        self.0
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .fold((0, 0), |(t, c), (_, (time, count))| (t + time, c + count))
    }
}

impl Observer {
    /// Starts `observer run` with `extra` arguments and waits until it has attached. The binary
    /// is this workspace's release build, or `OBSERVER_BENCH_BIN` when set (to time an older
    /// build copied aside against the current one, alternating runs).
    pub fn start(extra: &[&str]) -> Result<Self> {
        let binary = std::env::var_os("OBSERVER_BENCH_BIN").map_or_else(cmd::observer_bin, Into::into);
        let mut child = Command::new(&binary)
            .args(["run", "--output", "json", "--metrics-addr", METRICS_ADDR])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting the observer {}", binary.display()))?;
        let stderr = child.stderr.take().context("observer stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.wait();
                bail!("the observer exited before attaching");
            };
            if line.contains("observer attached") {
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child })
    }

    /// Run statistics of this observer's programs, from the metrics endpoint.
    pub fn program_runs(&self) -> Result<ProgramRuns> {
        // The values behind the exposition refresh twice a second: wait for fresh ones.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let text = scrape()?;
        let mut runs = ProgramRuns::default();
        for line in text.lines() {
            let (metric, value) = match line.rsplit_once(' ') {
                Some(parts) => parts,
                None => continue,
            };
            let Some(program) = metric.split("program=\"").nth(1).and_then(|s| s.split('"').next()) else { continue };
            let value: f64 = value.parse().unwrap_or(0.0);
            let entry = runs.0.entry(program.to_owned()).or_default();
            if metric.starts_with("observer_ebpf_run_time_seconds_total") {
                entry.0 = (value * 1e9).round() as u64;
            } else if metric.starts_with("observer_ebpf_runs_total") {
                entry.1 = value as u64;
            }
        }
        Ok(runs)
    }

    /// Run statistics of the programs this process holds, from bpftool (by the program ids of
    /// its descriptors, so other observers on the machine are not counted): for a run that
    /// serves no metrics (`--baseline-only`).
    pub fn held_program_runs(&self) -> Result<ProgramRuns> {
        let dir = format!("/proc/{}/fdinfo", self.child.id());
        let mut ids = Vec::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))?.flatten() {
            let Ok(info) = std::fs::read_to_string(entry.path()) else { continue };
            ids.extend(info.lines().find_map(|l| l.strip_prefix("prog_id:")?.trim().parse::<u64>().ok()));
        }
        let out = cmd::output("bpftool", &["-j", "prog", "show"]).context("running bpftool -j prog show")?;
        let list: serde_json::Value = serde_json::from_str(&out).context("bpftool -j prog show printed no JSON")?;
        let mut runs = ProgramRuns::default();
        for program in list.as_array().into_iter().flatten() {
            if !program["id"].as_u64().is_some_and(|id| ids.contains(&id)) {
                continue;
            }
            let name = program["name"].as_str().unwrap_or("?").to_owned();
            let (time, count) =
                (program["run_time_ns"].as_u64().unwrap_or(0), program["run_cnt"].as_u64().unwrap_or(0));
            // A program is held by its own descriptor and by its link's: count it once.
            runs.0.insert(name, (time, count));
        }
        Ok(runs)
    }

    /// Sum of `observer_capture_lost_total` over stages.
    pub fn lost(&self) -> Result<u64> {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        Ok(scrape()?
            .lines()
            .filter(|l| l.starts_with("observer_capture_lost_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum())
    }

    /// CPU time the daemon used so far (user + system), from /proc/PID/stat.
    pub fn cpu_time(&self) -> std::time::Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let total = ticks(11) + ticks(12);
        std::time::Duration::from_secs_f64(total as f64 / clock_ticks_per_second())
    }

    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    fn status_field(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix(field)?.split_whitespace().next()?.parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        // SIGTERM: the observer detaches its programs and exits.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// `getconf CLK_TCK` (the unit of /proc/PID/stat times), 100 if it cannot be read.
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        cmd::output("getconf", &["CLK_TCK"]).and_then(|t| t.trim().parse().ok()).filter(|t| *t > 0.0).unwrap_or(100.0)
    })
}

fn scrape() -> Result<String> {
    let mut stream = TcpStream::connect(METRICS_ADDR).context("connecting to the observer's metrics")?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
}
