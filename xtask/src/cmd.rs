//! Running commands with their output shown, and the workspace paths tasks need.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// The release observer binary.
pub fn observer_bin() -> PathBuf {
    workspace().join("target/release/observer")
}

/// Run `cargo ARGS` in the workspace, with LLVM 22 first on PATH (bpf-linker needs it).
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(workspace()).env("PATH", path_with_tools());
    status(&mut command)
}

/// PATH with cargo's bin directory and LLVM 22's tools in front.
pub fn path_with_tools() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("CARGO_HOME")
        .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned())));
    format!("{home}/bin:/usr/lib/llvm-22/bin:{path}")
}

/// Run a command, failing if it does not exit 0.
pub fn status(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

/// Run a command and return its stdout, or None if it could not run or failed.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn is_root() -> bool {
    output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}
