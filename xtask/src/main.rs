//! Project tasks: `cargo xtask setup | build | test | demo | bench`.
//!
//! Every task that needs a prerequisite installs it first (`setup` is idempotent), so a fresh
//! Debian 12 machine needs nothing but this repository and the Rust toolchains.

mod bench;
mod cmd;
mod demo;
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
    /// Install every missing prerequisite (apt packages, nightly rust-src, bpf-linker).
    Setup,
    /// Build the observer (release, with its eBPF programs).
    Build,
    /// Run every check and test: rustfmt, clippy, the fuzz targets build, unit tests, then the
    /// end-to-end tests (as root).
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
    },
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
        Task::Bench { no_criterion, rounds } => {
            setup::run()?;
            build()?;
            bench::run(!no_criterion, rounds.max(1))
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
    cmd::cargo(&args)
}
