//! The eBPF table: run time per packet of the cgroup_skb programs against empty cgroup_skb
//! programs attached at the same cgroup by the same observer (`observer run --attach-baseline`),
//! so the kernel's BPF stats time both on the same packets in the same windows. Each repeat gives
//! one ratio per program; the table shows their median and spread next to the budget of
//! docs/ARCHITECTURE.md.
//!
//! Then the floor's side of the kernel time: each connection's run time in all the observer's
//! programs against that of the empty programs alone (`observer run --baseline-only`: one at each
//! hook the observer uses per connection), on the same short connections.
//!
//! The machine is shared: programs at the cgroup root would also time everyone else's packets
//! (another engineer's connection storm in the after-budget window). So this process moves into
//! a cgroup of its own for the table, the measured observer attaches there (`--cgroup`), and only
//! the bench's own sockets are timed.

use std::{
    path::{Path as FsPath, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{
    load,
    observer::{Observer, ProgramRuns},
    overhead::spread,
    report::Report,
};

const REPEATS: usize = 5;

/// One hook: the observer's program there and the empty one beside it.
struct Hook {
    direction: &'static str,
    program: &'static str,
    empty: &'static str,
}

const HOOKS: [Hook; 2] = [
    Hook { direction: "egress", program: "observer_skb_egress", empty: "observer_noop_egress" },
    Hook { direction: "ingress", program: "observer_skb_ingress", empty: "observer_noop_ingress" },
];

/// One path of the table, its load and the budget of its ratio.
struct Path {
    label: &'static str,
    budget: f64,
    runs: Vec<ProgramRuns>,
}

/// Measures both paths `REPEATS` times with `observer` (started with the baseline) and writes
/// the table. bpf_stats must be on.
pub fn table(report: &mut Report) -> Result<()> {
    let cgroup = OwnCgroup::enter()?;
    let observer = Observer::start(&["--attach-baseline", "--cgroup", &cgroup.dir.to_string_lossy()])?;
    let mut sampling = Path { label: "sampling (short connections)", budget: 2.5, runs: Vec::new() };
    let mut after = Path { label: "after budget (long stream)", budget: 1.2, runs: Vec::new() };
    let mut observer_per_connection = Vec::new();
    for _ in 0..REPEATS {
        let before = observer.program_runs()?;
        let run = load::connections(3_000, Duration::from_secs(2))?;
        let runs = observer.program_runs()?.delta(&before);
        // The empty programs beside the real ones are not the observer's.
        let (all, _) = runs.total("observer_");
        let (noop, _) = runs.total("observer_noop_");
        observer_per_connection.push(all.saturating_sub(noop) as f64 / run.completed.max(1) as f64);
        sampling.runs.push(runs);
        let before = observer.program_runs()?;
        load::stream(Duration::from_secs(2))?;
        after.runs.push(observer.program_runs()?.delta(&before));
    }
    drop(observer);
    let empty = Observer::start(&["--baseline-only", "--cgroup", &cgroup.dir.to_string_lossy()])?;
    let (mut empty_per_connection, mut empty_runs) = (Vec::new(), Vec::new());
    for _ in 0..REPEATS {
        let before = empty.held_program_runs()?;
        let run = load::connections(3_000, Duration::from_secs(2))?;
        let (time, count) = empty.held_program_runs()?.delta(&before).total("observer_noop_");
        empty_per_connection.push(time as f64 / run.completed.max(1) as f64);
        empty_runs.push(count as f64 / run.completed.max(1) as f64);
    }
    drop(empty);
    drop(cgroup);
    report.section(&format!(
        "eBPF run time per packet against an empty cgroup_skb program (the bench's own packets, same run, bpf_stats on: it adds ~20 ns per run; {REPEATS} repeats)"
    ));
    report.line("| path | direction | observer ns/run | empty ns/run | ratio | budget | runs per repeat |");
    report.line("|---|---|---|---|---|---|---|");
    for path in [&sampling, &after] {
        for hook in &HOOKS {
            let observer_ns = per_run(&path.runs, hook.program);
            let empty_ns = per_run(&path.runs, hook.empty);
            let ratios: Vec<f64> = path
                .runs
                .iter()
                .filter_map(|r| Some(r.ns_per_run(hook.program)? / r.ns_per_run(hook.empty)?))
                .collect();
            report.line(&format!(
                "| {} | {} | {} | {} | {} | ≤ {} | {} |",
                path.label,
                hook.direction,
                spread(&observer_ns, 0),
                spread(&empty_ns, 0),
                spread(&ratios, 2),
                path.budget,
                mean_count(&path.runs, hook.program),
            ));
        }
    }
    report.line("");
    report.line("| path | program | ns/run | runs per repeat |");
    report.line("|---|---|---|---|");
    for path in [&sampling, &after] {
        report.line(&format!(
            "| {} | observer_sock_ops | {} | {} |",
            path.label,
            spread(&per_run(&path.runs, "observer_sock_ops"), 0),
            mean_count(&path.runs, "observer_sock_ops"),
        ));
    }
    report.line("");
    report.line(&format!(
        "Kernel ns per short connection, every program summed: the observer's {}; empty programs alone \
         (`--baseline-only`, sock_create, sock_ops, cgroup_skb) {} over {} runs per connection (the empty sock_ops \
         asks for no state callbacks). BPF stats time the programs, not the kernel's call into them: that is in the \
         floor table's rates.",
        spread(&observer_per_connection, 0),
        spread(&empty_per_connection, 0),
        spread(&empty_runs, 1),
    ));
    Ok(())
}

fn per_run(runs: &[ProgramRuns], program: &str) -> Vec<f64> {
    runs.iter().filter_map(|r| r.ns_per_run(program)).collect()
}

fn mean_count(runs: &[ProgramRuns], program: &str) -> u64 {
    runs.iter().map(|r| r.count(program)).sum::<u64>() / runs.len().max(1) as u64
}

/// A cgroup v2 directory this process is moved into while it lives, and moved out of after.
struct OwnCgroup {
    dir: PathBuf,
    previous: PathBuf,
}

impl OwnCgroup {
    fn enter() -> Result<Self> {
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(FsPath::new)
            .find(|p| p.join("cgroup.controllers").exists())
            .context("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")?;
        let own = std::fs::read_to_string("/proc/self/cgroup").context("reading /proc/self/cgroup")?;
        let Some(current) = own.lines().find_map(|l| l.strip_prefix("0::")) else {
            bail!("/proc/self/cgroup names no cgroup v2 directory: {own}");
        };
        let previous = root.join(current.trim_start_matches('/'));
        let dir = root.join(format!("observer-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let cgroup = Self { dir, previous };
        move_self(&cgroup.dir)?;
        Ok(cgroup)
    }
}

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        if let Err(error) = move_self(&self.previous) {
            eprintln!("bench: {error:#}");
        }
        if let Err(error) = std::fs::remove_dir(&self.dir) {
            eprintln!("bench: cannot remove {}: {error}", self.dir.display());
        }
    }
}

/// Moves this process (every thread) into the cgroup `dir`.
fn move_self(dir: &FsPath) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .with_context(|| format!("moving the bench into {}", procs.display()))
}
