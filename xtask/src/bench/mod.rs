//! `cargo xtask bench`: the budgets of docs/ARCHITECTURE.md, measured here and reported as figures.
//!
//! - kernel: run time per packet of the cgroup_skb programs, from the kernel's BPF stats, on the
//!   sampling path (short connections) and the after-budget path (one long stream), repeated;
//! - loss: loopback connection rates stepped up, with the observer's lost counters read before and after;
//! - memory: the observer's RSS idle and at its peak;
//! - userspace: replay against tshark on one generated capture; the criterion benches.

mod load;
mod observer;

use std::{process::Command, time::Duration};

use anyhow::Result;

use crate::cmd;
use observer::Observer;

const REPEATS: usize = 5;
const RATES: &[u64] = &[2_000, 5_000, 10_000, 15_000, 20_000];

pub fn run(criterion: bool) -> Result<()> {
    if !cmd::is_root() {
        anyhow::bail!("the bench loads eBPF programs and reads BPF stats: run it as root");
    }
    let stats = BpfStats::enable()?;
    let observer = Observer::start()?;
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss = observer.rss_kib();

    println!("\n## eBPF run time per packet (bpf_stats on: it adds ~20 ns per run)\n");
    println!("| path | program | median ns/run | min | max | runs per repeat |");
    println!("|---|---|---|---|---|---|");
    let mut sampling = Vec::new();
    let mut after = Vec::new();
    for _ in 0..REPEATS {
        let before = observer.program_runs()?;
        load::connections(3_000, Duration::from_secs(2))?;
        sampling.push(observer.program_runs()?.delta(&before));
        let before = observer.program_runs()?;
        load::stream(Duration::from_secs(2))?;
        after.push(observer.program_runs()?.delta(&before));
    }
    for (path, runs) in [("sampling (short connections)", &sampling), ("after budget (long stream)", &after)] {
        for program in ["observer_skb_egress", "observer_skb_ingress", "observer_sock_ops"] {
            let mut per_run: Vec<f64> = runs.iter().filter_map(|r| r.ns_per_run(program)).collect();
            if per_run.is_empty() {
                continue;
            }
            per_run.sort_by(f64::total_cmp);
            let count = runs.iter().map(|r| r.count(program)).sum::<u64>() / runs.len() as u64;
            println!(
                "| {path} | {program} | {:.0} | {:.0} | {:.0} | {count} |",
                per_run[per_run.len() / 2],
                per_run[0],
                per_run[per_run.len() - 1]
            );
        }
    }

    println!("\n## Loopback connection rate against lost samples (3 s per step)\n");
    println!("| target conn/s | reached conn/s | failed | lost (all stages) |");
    println!("|---|---|---|---|");
    let mut best_clean = 0.0f64;
    for &rate in RATES {
        let lost_before = observer.lost()?;
        let run = load::connections(rate, Duration::from_secs(3))?;
        std::thread::sleep(Duration::from_millis(300));
        let lost = observer.lost()? - lost_before;
        println!("| {rate} | {:.0} | {} | {lost} |", run.rate(), run.failed);
        if lost == 0 {
            best_clean = best_clean.max(run.rate());
        }
    }
    println!("\nHighest rate reached with zero lost samples: {best_clean:.0} connections/s");

    println!("\n## Observer memory\n");
    println!("RSS idle: {} KiB; peak (VmHWM) after the runs: {} KiB", idle_rss, observer.peak_rss_kib());
    drop(observer);
    drop(stats);

    println!("\n## Tracker memory against legs held (userspace, no kernel)\n");
    cmd::cargo(&["run", "--release", "-q", "-p", "observer-wire", "--example", "tracker_memory"])?;

    println!("\n## observer replay against tshark -r FILE -Y tls.handshake (same capture, one run)\n");
    // The release binary is already built (with its eBPF object): the script must not rebuild it.
    cmd::status(
        Command::new("bash")
            .arg(cmd::workspace().join("scripts/bench-replay.sh"))
            .args(["5000", "5"])
            .env("OBSERVER", cmd::observer_bin()),
    )?;

    if criterion {
        println!("\n## Userspace benches (criterion)\n");
        cmd::cargo(&["bench", "-p", "observer-wire"])?;
    }
    Ok(())
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
