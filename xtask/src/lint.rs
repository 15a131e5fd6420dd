//! The static checks `cargo xtask test` runs before the tests, so that none of them can rot:
//! formatting of every crate (the fuzz crate included), clippy with warnings as errors on the
//! host crates and on the eBPF crate for its own target, and a build check of the fuzz targets
//! (they live outside the workspace, so no other step compiles them).

use std::process::Command;

use anyhow::Result;

use crate::cmd;

pub fn run() -> Result<()> {
    let root = cmd::workspace();
    let fuzz_manifest = root.join("fuzz/Cargo.toml");
    let fuzz_manifest = fuzz_manifest.to_string_lossy();
    eprintln!("lint: cargo fmt --check");
    cmd::cargo(&["fmt", "--all", "--check"])?;
    cmd::cargo(&["fmt", "--check", "--manifest-path", &fuzz_manifest])?;
    eprintln!("lint: clippy (host crates; the eBPF object is not needed to lint userspace)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd::status(
        Command::new(&cargo)
            .args(["clippy", "--all-targets", "--", "-D", "warnings"])
            .current_dir(&root)
            .env("PATH", cmd::path_with_tools())
            .env("AYA_BUILD_SKIP", "1"),
    )?;
    eprintln!("lint: clippy (observer-ebpf, for bpfel-unknown-none with nightly)");
    cmd::status(
        Command::new("rustup")
            .args(["run", "nightly", "cargo", "clippy", "-p", "observer-ebpf", "--release"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core", "--", "-D", "warnings"])
            .current_dir(&root)
            .env("PATH", cmd::path_with_tools())
            // The stable toolchain that runs xtask must not leak into the nightly build.
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO"),
    )?;
    eprintln!("lint: cargo check of the fuzz targets");
    cmd::cargo(&["check", "--bins", "--manifest-path", &fuzz_manifest])
}
