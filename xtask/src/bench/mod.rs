//! `cargo xtask bench`: the budgets of docs/ARCHITECTURE.md, measured here and reported as figures.
//!
//! - kernel: run time per packet of the cgroup_skb programs, from the kernel's BPF stats, on the
//!   sampling path (short connections) and the after-budget path (one long stream), repeated,
//!   against empty programs attached beside them ([`kernel`]);
//! - loss: loopback connection rates stepped up, with the observer's lost counters read before and after;
//! - memory: the observer's RSS idle and at its peak;
//! - userspace: replay against tshark on one generated capture; the criterion benches;
//! - first, with bpf_stats off: the with/without table of what the observer takes from the
//!   node's own traffic ([`overhead`]), then, for new connections, the floor: the same rounds
//!   with a third arm, only empty programs at the observer's hooks (`observer run --baseline-only`).
//!
//! The whole report goes to stdout and to docs/BENCHMARKS.md (tracked), with a plot of the
//! daemon's CPU per connection against the connection rate and of memory against legs held.

mod kernel;
mod load;
mod observer;
mod overhead;
mod report;

use std::{process::Command, time::Duration};

use anyhow::Result;

use crate::cmd;
use observer::Observer;
use overhead::{Servers, Workload, spread};
use report::Report;

const RATES: &[u64] = &[2_000, 5_000, 10_000, 15_000, 20_000];

/// With `kernel_only`, just the eBPF table, printed: docs/BENCHMARKS.md is left alone.
pub fn run(criterion: bool, rounds: usize, kernel_only: bool) -> Result<()> {
    if !cmd::is_root() {
        anyhow::bail!("the bench loads eBPF programs and reads BPF stats: run it as root");
    }
    let mut report = Report::new(rounds)?;
    if !kernel_only {
        // Measured first, with bpf_stats off: what a user's node pays.
        overhead_table(&mut report, rounds)?;
    }

    let stats = BpfStats::enable()?;
    // With an observer of its own (the empty programs beside the real ones would add their cost
    // to every packet of the later sections, which run without them).
    kernel::table(&mut report)?;
    if kernel_only {
        return Ok(());
    }

    let observer = Observer::start(&[])?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = observer.rss_kib();

    report.section("Loopback connection rate: lost samples and daemon CPU per connection (3 s per step)");
    report.line("| target conn/s | reached conn/s | failed | lost (all stages) | daemon CPU µs per connection |");
    report.line("|---|---|---|---|---|");
    let mut best_clean = 0.0f64;
    let mut cpu_curve = Vec::new();
    for &rate in RATES {
        let lost_before = observer.lost()?;
        let cpu_before = observer.cpu_time();
        let run = load::connections(rate, Duration::from_secs(3))?;
        std::thread::sleep(Duration::from_millis(300));
        let cpu = observer.cpu_time().saturating_sub(cpu_before);
        let lost = observer.lost()? - lost_before;
        // The lost-counter reads sleep 1.1 s each and the daemon idles meanwhile: its idle cost
        // is part of the figure, as a user would see it.
        let per_connection = cpu.as_secs_f64() * 1e6 / run.completed.max(1) as f64;
        cpu_curve.push((run.rate(), per_connection));
        report.line(&format!("| {rate} | {:.0} | {} | {lost} | {per_connection:.1} |", run.rate(), run.failed));
        if lost == 0 {
            best_clean = best_clean.max(run.rate());
        }
    }
    report.line(&format!("\nHighest rate reached with zero lost samples: {best_clean:.0} connections/s"));

    report.section("Observer memory");
    report.line(&format!("RSS idle: {} KiB; peak (VmHWM) after the runs: {} KiB", idle_rss, observer.peak_rss_kib()));
    drop(observer);
    drop(stats);

    report.section("Tracker memory against legs held (userspace, no kernel)");
    let tracker = report::capture(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())).args([
        "run",
        "--release",
        "-q",
        "-p",
        "observer-wire",
        "--example",
        "tracker_memory",
    ]))?;
    report.block(&tracker);
    let memory_curve = report::table_columns(&tracker, 0, 1);

    report.section("observer replay against tshark -r FILE -Y tls.handshake (same capture, one run)");
    // The release binary is already built (with its eBPF object): the script must not rebuild it.
    let replay = report::capture(
        Command::new("bash")
            .arg(cmd::workspace().join("scripts/bench-replay.sh"))
            .args(["5000", "5"])
            .env("OBSERVER", cmd::observer_bin()),
    )?;
    report.block(&replay);

    if criterion {
        report.section("Userspace benches (criterion: median and its 95% interval)");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let out = report::capture(
            Command::new(cargo).args(["bench", "-p", "observer-wire"]).env("PATH", cmd::path_with_tools()),
        )?;
        report.block(&report::criterion_summary(&out));
    }
    report.plot(&cpu_curve, &memory_curve)?;
    report.write()
}

/// The with/without table of docs/ARCHITECTURE.md's budgets: each workload alternately without
/// and with the observer, `rounds` times.
fn overhead_table(report: &mut Report, rounds: usize) -> Result<()> {
    report.section(&format!(
        "What the observer takes from the node (loopback, alternating without/with, {rounds} rounds, medians)"
    ));
    report.line("| workload | without | with | ratio (median, min–max) | budget | daemon CPU µs per connection | daemon RSS MiB |");
    report.line("|---|---|---|---|---|---|---|");
    let servers = Servers::start()?;
    let mut floor = None;
    for workload in Workload::ALL {
        let (mut without, mut empty, mut with) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            without.push(overhead::without_observer(&servers, workload)?);
            if workload == Workload::NewConnections {
                empty.push(overhead::with_empty_programs(&servers, workload)?);
            }
            with.push(overhead::with_observer(&servers, workload)?);
        }
        let figures = |s: &[overhead::Sample]| s.iter().map(|x| x.figure).collect::<Vec<_>>();
        let ratios: Vec<f64> = without.iter().zip(&with).map(|(a, b)| b.figure / a.figure).collect();
        let cpu: Vec<f64> = with.iter().filter_map(overhead::Sample::cpu_us_per_connection).collect();
        let rss: Vec<f64> = with.iter().filter_map(|s| s.daemon_rss_kib).map(|k| k as f64 / 1024.0).collect();
        let digits = if workload == Workload::Iperf { 1 } else { 0 };
        report.line(&format!(
            "| {} | {} | {} | {} | ≥ {} | {} | {} |",
            workload.label(),
            spread(&figures(&without), digits),
            spread(&figures(&with), digits),
            spread(&ratios, 2),
            workload.budget(),
            if cpu.is_empty() { "–".to_owned() } else { spread(&cpu, 1) },
            spread(&rss, 0),
        ));
        if !empty.is_empty() {
            floor = Some((without, empty, with));
        }
    }
    if let Some((without, empty, with)) = floor {
        floor_table(report, &without, &empty, &with);
    }
    Ok(())
}

/// The new-connection rounds with their third arm: connections/s without anything attached,
/// with only the empty programs, with the observer, and the ratios within each round.
fn floor_table(
    report: &mut Report,
    without: &[overhead::Sample],
    empty: &[overhead::Sample],
    with: &[overhead::Sample],
) {
    let figures = |s: &[overhead::Sample]| s.iter().map(|x| x.figure).collect::<Vec<_>>();
    let ratios = |a: &[overhead::Sample], b: &[overhead::Sample]| -> Vec<f64> {
        a.iter().zip(b).map(|(a, b)| b.figure / a.figure).collect()
    };
    report.line("");
    report.line(&format!(
        "New connections/s (wrk, Connection: close), the same {} rounds with a third arm:",
        without.len()
    ));
    report.line("");
    report.line("| without | empty programs at the observer's hooks | observer | empty/without | observer/without | observer/empty |");
    report.line("|---|---|---|---|---|---|");
    report.line(&format!(
        "| {} | {} | {} | {} | {} | {} |",
        spread(&figures(without), 0),
        spread(&figures(empty), 0),
        spread(&figures(with), 0),
        spread(&ratios(without, empty), 2),
        spread(&ratios(without, with), 2),
        spread(&ratios(empty, with), 2),
    ));
    report.line(
        "\nThe empty programs (`observer run --baseline-only`: one that only returns at sock_create, sock_ops and \
         cgroup_skb egress and ingress, nothing else) cost what any program at those hooks costs: empty/without is the \
         floor no observer attached there can beat, and observer/empty the part of the gap that is the observer's own work.",
    );
}

/// `kernel.bpf_stats_enabled` on for the bench, restored after.
struct BpfStats {
    previous: String,
}

impl BpfStats {
    fn enable() -> Result<Self> {
        let previous = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")?.trim().to_owned();
        cmd::status(Command::new("sysctl").args(["-q", "-w", "kernel.bpf_stats_enabled=1"]))?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ =
            Command::new("sysctl").args(["-q", "-w", &format!("kernel.bpf_stats_enabled={}", self.previous)]).status();
    }
}
