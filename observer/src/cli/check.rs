//! `observer check PATH...`: static analysis of mesh policy manifests. Prints one finding per
//! line (`file:line: kind: message`) on stdout; exits 0 when clean, 1 with findings, 2 when the
//! input cannot be read or is invalid (every error printed at once on stderr, `file:line: ...`).

use std::{io::Write, path::PathBuf, process::ExitCode};

use crate::policy::{check, load_paths};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// YAML files or directories of Kubernetes manifests.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Exit status: no findings.
pub const CLEAN: u8 = 0;
/// Exit status: findings.
pub const FINDINGS: u8 = 1;
/// Exit status: unreadable or invalid input.
pub const INVALID: u8 = 2;

/// Checks the manifests under `paths`, writing findings to `out` and errors to `err`.
pub fn check_paths(paths: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let snapshot = match load_paths(paths) {
        Ok(snapshot) => snapshot,
        Err(errors) => {
            for error in &errors.0 {
                writeln!(err, "{error}")?;
            }
            writeln!(err, "observer check: {} error(s); nothing checked", errors.0.len())?;
            return Ok(INVALID);
        }
    };
    let findings = check(&snapshot);
    for finding in &findings {
        writeln!(out, "{finding}")?;
    }
    if findings.is_empty() {
        Ok(CLEAN)
    } else {
        writeln!(err, "observer check: {} finding(s) in {} file(s)", findings.len(), snapshot.files.len())?;
        Ok(FINDINGS)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let code = check_paths(&args.paths, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
    Ok(ExitCode::from(code))
}
