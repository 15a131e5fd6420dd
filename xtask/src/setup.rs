//! Prerequisites, installed only when missing (TOOLCHAIN.md has the verified recipe).

use std::process::Command;

use anyhow::{Result, bail};

use crate::cmd;

/// Debian packages: the eBPF build's (LLVM 22 for bpf-linker, bpftool) and everything the tests,
/// demo and benches run.
const APT_PACKAGES: &[&str] = &[
    "bpftool",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "iptables",
    "procps",
    "openssl",
    "curl",
    "python3",
    "haproxy",
    "gnutls-bin",
    "nginx-light",
    "postgresql",
    "tcpdump",
    "tshark",
    "prometheus",
    "prometheus-alertmanager",
    "python3-venv",
];

/// The OTLP receiver of the end-to-end tests (tests/tools/otlp_receiver.py) runs in a venv
/// this setup owns, with the official protobuf definitions and gRPC from PyPI.
pub const OTLP_VENV: &str = "target/otlp-venv";
const OTLP_PIP_PACKAGES: &[&str] = &["opentelemetry-proto==1.45.2", "grpcio==1.85.1"];

const BPF_LINKER_VERSION: &str = "0.13.0";

pub fn run() -> Result<()> {
    apt()?;
    otlp_venv()?;
    rust_src()?;
    bpf_linker()?;
    Ok(())
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !cmd::is_root() {
        bail!("missing Debian packages {missing:?}: run `cargo xtask setup` as root (it runs apt-get install)");
    }
    eprintln!("setup: installing {}", missing.join(" "));
    let noninteractive = [("DEBIAN_FRONTEND", "noninteractive")];
    cmd::status(Command::new("apt-get").args(["update", "-q"]).envs(noninteractive))?;
    cmd::status(Command::new("apt-get").args(["install", "-y", "-q"]).args(&missing).envs(noninteractive))?;
    // Debian starts some of these services on install; the tests start their own instances.
    Ok(())
}

fn otlp_venv() -> Result<()> {
    let venv = cmd::workspace().join(OTLP_VENV);
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import grpc, opentelemetry.proto.collector.metrics.v1.metrics_service_pb2_grpc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Ok(());
    }
    eprintln!("setup: creating {} with {}", venv.display(), OTLP_PIP_PACKAGES.join(" "));
    cmd::status(Command::new("python3").arg("-m").arg("venv").arg("--clear").arg(&venv))?;
    cmd::status(
        Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(OTLP_PIP_PACKAGES),
    )
}

fn installed(package: &str) -> bool {
    cmd::output("dpkg-query", &["-W", "-f=${Status}", package]).is_some_and(|s| s.contains("install ok installed"))
}

fn rust_src() -> Result<()> {
    let Some(toolchains) = cmd::output("rustup", &["toolchain", "list"]) else {
        bail!("rustup not found: the eBPF build needs rustup with a nightly toolchain");
    };
    if !toolchains.lines().any(|t| t.starts_with("nightly")) {
        bail!("no nightly toolchain: the eBPF build needs one (rustup toolchain install nightly)");
    }
    let components =
        cmd::output("rustup", &["component", "list", "--installed", "--toolchain", "nightly"]).unwrap_or_default();
    if !components.lines().any(|c| c.starts_with("rust-src")) {
        eprintln!("setup: adding rust-src to the nightly toolchain");
        cmd::status(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))?;
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let path = cmd::path_with_tools();
    let version = Command::new("bpf-linker")
        .arg("--version")
        .env("PATH", &path)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if version.is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return Ok(());
    }
    eprintln!("setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd::status(Command::new(cargo).env("PATH", &path).args([
        "install",
        "bpf-linker",
        "--locked",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
        "--features",
        "llvm-22",
    ]))
}
