//! `observer replay FILE...`: the pcap source feeding the same pipeline as the live capture.

use std::{path::PathBuf, process::ExitCode};

use crate::export::Format;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// pcap or pcapng files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub output: Format,
}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("replay is not implemented yet")
}
