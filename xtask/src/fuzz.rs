//! `cargo xtask fuzz [--time S] [TARGET...]`: runs the cargo-fuzz targets of `fuzz/` with
//! libFuzzer, one after the other, each for S seconds from a corpus seeded with the project's
//! real fixtures, and prints what each found.
//!
//! Every input is hostile, so anything libFuzzer reports is a finding: a panic (crash), an
//! input that takes longer than [`INPUT_TIMEOUT_S`] (a hang), or memory past [`RSS_LIMIT_MB`].
//! The task exits non-zero when any target found one, naming the artifact to replay.

mod seeds;

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

/// The targets of `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: &[&str] = &["dissect", "pipeline", "packet", "capture", "records", "policy"];

/// One input running this long is a hang: the parsers are linear in their (small) input.
const INPUT_TIMEOUT_S: u32 = 10;
/// Memory of the fuzzing process past this is an out-of-memory finding: every parser has a
/// named cap far below it.
const RSS_LIMIT_MB: u32 = 2048;

/// What one target's run found, from libFuzzer's final stats and its artifact lines.
#[derive(Debug, Default)]
struct Outcome {
    target: String,
    executions: u64,
    per_second: u64,
    corpus: usize,
    crashes: usize,
    timeouts: usize,
    ooms: usize,
    artifacts: Vec<PathBuf>,
    /// libFuzzer exited non-zero without naming an artifact (it could not start, say).
    failed: Option<String>,
}

impl Outcome {
    fn found_something(&self) -> bool {
        self.crashes + self.timeouts + self.ooms > 0 || self.failed.is_some()
    }
}

/// How long each target runs: `seconds`, or until `runs` inputs were executed if that is first.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub seconds: u64,
    pub runs: Option<u64>,
}

pub fn run(budget: Budget, targets: &[String]) -> Result<()> {
    let targets: Vec<String> =
        if targets.is_empty() { TARGETS.iter().map(|t| (*t).to_owned()).collect() } else { targets.to_vec() };
    if let Some(unknown) = targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
        bail!("no fuzz target {unknown:?}: the targets are {}", TARGETS.join(", "));
    }
    let root = cmd::workspace();
    let mut outcomes = Vec::new();
    for target in &targets {
        let corpus = root.join("target/fuzz-corpus").join(target);
        let seeded = seeds::write(target, &corpus)?;
        let artifacts = root.join("target/fuzz-artifacts").join(target);
        fs::create_dir_all(&artifacts).with_context(|| format!("creating {}", artifacts.display()))?;
        let log = root.join("target/fuzz-logs").join(format!("{target}.log"));
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let runs = budget.runs.map(|r| format!(" or {r} runs")).unwrap_or_default();
        eprintln!(
            "fuzz: {target} for {} s{runs} ({seeded} seeds into {}, log {})",
            budget.seconds,
            corpus.display(),
            log.display()
        );
        outcomes.push(run_target(&root, target, budget, &corpus, &artifacts, &log)?);
    }
    print_table(&outcomes);
    let found: Vec<&str> = outcomes.iter().filter(|o| o.found_something()).map(|o| o.target.as_str()).collect();
    if !found.is_empty() {
        bail!(
            "fuzzing found problems in {}: replay an artifact with `cd fuzz && cargo +nightly fuzz run TARGET ARTIFACT`",
            found.join(", ")
        );
    }
    Ok(())
}

fn run_target(
    root: &Path,
    target: &str,
    budget: Budget,
    corpus: &Path,
    artifacts: &Path,
    log: &Path,
) -> Result<Outcome> {
    let log_file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut prefix = artifacts.to_string_lossy().into_owned();
    prefix.push('/');
    // One libFuzzer process (no -jobs/-fork: those move the output into per-worker log files
    // and run more than one core on a shared machine).
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo", "fuzz", "run", target])
        // Overflow checks and debug assertions on: an arithmetic overflow on hostile input is a
        // finding. No AddressSanitizer: the parsers are safe Rust (no `unsafe`), and it would
        // cost two thirds of the executions on a shared machine.
        .args(["--debug-assertions", "--sanitizer", "none"])
        .arg(corpus)
        .arg("--")
        .arg(format!("-max_total_time={}", budget.seconds))
        .arg("-print_final_stats=1")
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg(format!("-artifact_prefix={prefix}"))
        .current_dir(root.join("fuzz"))
        .env("PATH", cmd::path_with_tools())
        // The stable toolchain that runs xtask must not leak into the nightly build.
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO")
        .stdout(Stdio::null())
        .stderr(log_file);
    if let Some(runs) = budget.runs {
        command.arg(format!("-runs={runs}"));
    }
    let status =
        command.status().context("starting `cargo +nightly fuzz run` (cargo xtask setup installs cargo-fuzz)")?;
    let text = fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut outcome = parse_log(target, &text);
    outcome.corpus = fs::read_dir(corpus).map(|d| d.count()).unwrap_or(0);
    if !status.success() && outcome.crashes + outcome.timeouts + outcome.ooms == 0 {
        outcome.failed = Some(format!("{status}; see {}", log.display()));
    }
    if outcome.found_something() {
        // The panic message and the input's name are at the end of the log.
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for line in tail.into_iter().rev() {
            eprintln!("  {target}: {line}");
        }
    }
    Ok(outcome)
}

/// libFuzzer's final stats (`stat::number_of_executed_units: N`) and the artifacts it wrote
/// (`Test unit written to PATH`, named `crash-`, `timeout-`, `oom-`...).
fn parse_log(target: &str, text: &str) -> Outcome {
    let mut outcome = Outcome { target: target.to_owned(), ..Outcome::default() };
    for line in text.lines() {
        if let Some((key, value)) = line.strip_prefix("stat::").and_then(|s| s.split_once(':')) {
            let value = value.trim().parse().unwrap_or(0);
            match key {
                "number_of_executed_units" => outcome.executions = value,
                "average_exec_per_sec" => outcome.per_second = value,
                _ => {}
            }
        }
        if let Some(path) = line.split("Test unit written to ").nth(1) {
            let path = PathBuf::from(path.trim());
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with("timeout-") {
                outcome.timeouts += 1;
            } else if name.starts_with("oom-") {
                outcome.ooms += 1;
            } else if name.starts_with("slow-unit-") {
                continue; // slow but under the timeout: libFuzzer's note, not a finding
            } else {
                outcome.crashes += 1; // crash-, leak-, or anything else it stopped on
            }
            outcome.artifacts.push(path);
        }
    }
    outcome
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:<10} {:>14} {:>10} {:>8} {:>8} {:>9} {:>5}  artifacts",
        "target", "executions", "exec/s", "corpus", "crashes", "timeouts", "ooms"
    );
    for o in outcomes {
        let mut artifacts: Vec<String> = o.artifacts.iter().map(|a| a.display().to_string()).collect();
        artifacts.extend(o.failed.iter().map(|f| format!("libFuzzer failed: {f}")));
        println!(
            "{:<10} {:>14} {:>10} {:>8} {:>8} {:>9} {:>5}  {}",
            o.target,
            o.executions,
            o.per_second,
            o.corpus,
            o.crashes,
            o.timeouts,
            o.ooms,
            if artifacts.is_empty() { "-".to_owned() } else { artifacts.join(" ") }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_and_artifacts_are_read() {
        let log = "#1048576\tpulse  cov: 812 ft: 3021 corp: 201/40Kb exec/s: 52428 rss: 80Mb\n\
            ==12==ERROR: libFuzzer: timeout after 11 seconds\n\
            artifact_prefix='/t/a/'; Test unit written to /t/a/timeout-0a1b\n\
            slowest unit: 3 s:\n\
            artifact_prefix='/t/a/'; Test unit written to /t/a/slow-unit-99\n\
            stat::number_of_executed_units: 10485760\n\
            stat::average_exec_per_sec:     17476\n\
            stat::new_units_added:          300\n";
        let o = parse_log("policy", log);
        assert_eq!((o.executions, o.per_second), (10_485_760, 17_476));
        assert_eq!((o.crashes, o.timeouts, o.ooms), (0, 1, 0));
        assert_eq!(o.artifacts, vec![PathBuf::from("/t/a/timeout-0a1b")]);
        assert!(o.found_something());
        let clean = parse_log("dissect", "stat::number_of_executed_units: 5\n");
        assert!(!clean.found_something());
    }
}
