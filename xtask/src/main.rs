//! Project tasks: `cargo xtask setup | build | test | demo | bench | fuzz | image | render-deploy`.
//!
//! Every task that needs a prerequisite installs it first (`setup` is idempotent), so a fresh
//! Debian 12 machine needs nothing but this repository and the Rust toolchains.

mod bench;
mod chart;
mod chart_checks;
mod cmd;
mod demo;
mod fuzz;
mod image;
mod lint;
mod setup;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "observer project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install every missing prerequisite (apt packages, nightly rust-src, bpf-linker, cargo-fuzz).
    Setup,
    /// Build the observer (release, with its eBPF programs).
    Build,
    /// Run every check and test: rustfmt, clippy, the fuzz targets build, unit tests, the
    /// end-to-end tests (as root), the chart checks, then the image's (as root).
    Test {
        /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
    /// Show the observer on real traffic in throwaway network namespaces.
    Demo,
    /// Measure what the observer costs (with/without table, eBPF per packet, daemon CPU per
    /// connection, loss, memory, replay, dissector) and write docs/BENCHMARKS.md.
    Bench {
        /// Skip the criterion benches (faster).
        #[arg(long)]
        no_criterion: bool,
        /// Rounds of the with/without table (each workload alternately without and with).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Only the eBPF per-packet table, printed; docs/BENCHMARKS.md is left alone.
        #[arg(long)]
        kernel_only: bool,
    },
    /// Fuzz the parsers of untrusted input (the targets of fuzz/, nightly and cargo-fuzz), one
    /// after the other from corpora seeded with the real fixtures; non-zero if any target found a
    /// crash, a hang or an out-of-memory.
    Fuzz {
        /// Seconds each target runs.
        #[arg(long = "time", default_value_t = 60)]
        seconds: u64,
        /// Stop a target earlier, once it executed this many inputs.
        #[arg(long)]
        runs: Option<u64>,
        /// Targets to run (default: all of dissect, pipeline, packet, capture, policy).
        targets: Vec<String>,
    },
    /// Build the observer's container image as an OCI archive (target/image/), without a daemon.
    Image {
        /// Then test it as `cargo xtask test` does (root): annotations, `observer --version`
        /// inside it, conversion to a docker archive.
        #[arg(long)]
        check: bool,
    },
    /// Render the Helm chart with its default values into deploy/kubernetes/.
    RenderDeploy,
    /// Check the Helm chart: lint, render, Kubernetes schemas, deploy/kubernetes/ in step.
    CheckDeploy,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Setup => setup::run(),
        Task::Build => {
            setup::run()?;
            build()
        }
        Task::Test { cargo_args } => {
            setup::run()?;
            lint::run()?;
            test(&cargo_args)
        }
        Task::Demo => {
            setup::run()?;
            build()?;
            demo::run()
        }
        Task::Bench { no_criterion, rounds, kernel_only } => {
            setup::run()?;
            build()?;
            bench::run(!no_criterion, rounds.max(1), kernel_only)
        }
        Task::Fuzz { seconds, runs, targets } => {
            // Only its own prerequisites: fuzzing needs neither the Debian packages nor eBPF.
            setup::cargo_fuzz()?;
            fuzz::run(fuzz::Budget { seconds: seconds.max(1), runs }, &targets)
        }
        Task::Image { check: false } => {
            setup::run()?;
            image::build(&image::build_binary()?).map(|_| ())
        }
        Task::Image { check: true } => {
            setup::run()?;
            image::test()
        }
        Task::RenderDeploy => {
            setup::run()?;
            chart::render_deploy()
        }
        Task::CheckDeploy => {
            setup::run()?;
            build()?;
            chart::check()
        }
    }
}

/// The release build of the observer, eBPF included.
fn build() -> Result<()> {
    cmd::cargo(&["build", "--release", "-p", "observer"])
}

fn test(extra: &[String]) -> Result<()> {
    build()?;
    let mut args = vec!["test", "--workspace", "--release"];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    cmd::cargo(&args)?;
    // A filtered run (`cargo xtask test -- NAME`) is for iterating on some tests: only the whole
    // run adds the deploy checks.
    if extra.is_empty() {
        // The deploy checks: the chart against its rendered manifests and the Kubernetes
        // schemas, then the image (as root) with `observer --version` run inside it.
        chart::check()?;
        image::test()?;
    }
    Ok(())
}
