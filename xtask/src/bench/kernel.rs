//! The eBPF table: run time per packet of the cgroup_skb programs against empty cgroup_skb
//! programs attached at the same cgroup by the same observer (`observer run --attach-baseline`),
//! so the kernel's BPF stats time both on the same packets in the same windows. Each repeat gives
//! one ratio per program; the table shows their median and spread next to the budget of
//! docs/ARCHITECTURE.md.

use std::time::Duration;

use anyhow::Result;

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
pub fn table(report: &mut Report, observer: &Observer) -> Result<()> {
    let mut sampling = Path { label: "sampling (short connections)", budget: 2.5, runs: Vec::new() };
    let mut after = Path { label: "after budget (long stream)", budget: 1.2, runs: Vec::new() };
    for _ in 0..REPEATS {
        let before = observer.program_runs()?;
        load::connections(3_000, Duration::from_secs(2))?;
        sampling.runs.push(observer.program_runs()?.delta(&before));
        let before = observer.program_runs()?;
        load::stream(Duration::from_secs(2))?;
        after.runs.push(observer.program_runs()?.delta(&before));
    }
    report.section(&format!(
        "eBPF run time per packet against an empty cgroup_skb program (same packets, same run, bpf_stats on: it adds ~20 ns per run; {REPEATS} repeats)"
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
    Ok(())
}

fn per_run(runs: &[ProgramRuns], program: &str) -> Vec<f64> {
    runs.iter().filter_map(|r| r.ns_per_run(program)).collect()
}

fn mean_count(runs: &[ProgramRuns], program: &str) -> u64 {
    runs.iter().map(|r| r.count(program)).sum::<u64>() / runs.len().max(1) as u64
}
