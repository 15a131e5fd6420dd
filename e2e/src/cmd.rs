//! Running helper commands (`ip`, `ss`, `openssl`, `iptables-restore`) with errors that say
//! which command failed and what it printed.

use std::{
    ffi::OsStr,
    io::Write,
    process::{Command, Output, Stdio},
};

use anyhow::{Context, bail};

/// Runs `program args...` to completion; fails unless it exits 0, with its stderr in the error.
pub fn run<I, S>(program: &str, args: I) -> anyhow::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_stdin(program, args, None)
}

/// Like [`run`], feeding `stdin` to the command.
pub fn run_with_stdin<I, S>(program: &str, args: I, stdin: Option<&[u8]>) -> anyhow::Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(program);
    command.args(args);
    let shown = describe(&command);
    command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("cannot start `{shown}`"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes).with_context(|| format!("cannot write stdin of `{shown}`"))?;
    }
    let output = child.wait_with_output().with_context(|| format!("cannot wait for `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    Ok(output)
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> anyhow::Result<Output> {
    run("ip", args)
}

/// Runs `program args...` inside network namespace `ns` (as root), to completion.
pub fn in_ns(ns: &str, program: &str, args: &[&str]) -> anyhow::Result<Output> {
    let mut full = vec!["netns", "exec", ns, program];
    full.extend_from_slice(args);
    run("ip", full)
}

/// The command line as a person would type it, for messages.
pub fn describe(command: &Command) -> String {
    let mut shown = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

/// Whether a program is on PATH (for optional peers).
pub fn available(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
