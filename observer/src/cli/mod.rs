//! Command line: `observer run`, `observer replay`, `observer check`, `observer edges`,
//! `observer readiness`, `observer unpin`.

mod check;
mod edges;
mod http;
mod output_thread;
pub mod policy;
mod prometheus;
mod replay;
mod run;
mod tracker_thread;
mod unpin;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "observer",
    version,
    about = "Classifies every TCP connection leg on a node as plaintext, TLS or mutual TLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Observe live connections on this node (needs root: loads eBPF programs).
    Run(run::Args),
    /// Classify the connections in pcap or pcapng files.
    Replay(replay::Args),
    /// Check mesh policy manifests for documented mistakes.
    Check(check::Args),
    /// The client → server edge map with the security mix of each edge.
    Edges(edges::EdgesArgs),
    /// Whether a namespace (or workload) can switch to STRICT mTLS: exit 0 ready, 1 not, 2 bad input.
    Readiness(edges::ReadinessArgs),
    /// Remove the links and maps `observer run --pin DIR` left pinned (the programs detach).
    Unpin(unpin::Args),
}

/// Parse the command line, run the command, and map its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Check(args) => check::run(args),
        Command::Edges(args) => edges::run_edges(args),
        Command::Readiness(args) => edges::run_readiness(args),
        Command::Unpin(args) => unpin::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("observer: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default: info).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The node name in records: `NODE_NAME` (set by the DaemonSet from the downward API), else the hostname.
pub fn node_name() -> String {
    if let Ok(name) = std::env::var("NODE_NAME")
        && !name.is_empty()
    {
        return name;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}
