//! `observer run`: live observation.

use std::{path::PathBuf, process::ExitCode};

use crate::export::Format;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value = "json")]
    pub output: Format,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// cgroup v2 directory to attach to (default: the cgroup v2 root).
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("run is not implemented yet")
}
