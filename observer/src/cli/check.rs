//! `observer check PATH...`: static analysis of mesh policy manifests.

use std::{path::PathBuf, process::ExitCode};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// YAML files or directories of Kubernetes manifests.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("check is not implemented yet")
}
