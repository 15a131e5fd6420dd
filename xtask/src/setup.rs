//! Prerequisites, installed only when missing (docs/KERNEL.md lists what the build needs and why).

use std::{path::PathBuf, process::Command};

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
    // cargo xtask bench: the with/without table's load generators and the report's plot.
    "wrk",
    "iperf3",
    "gnuplot-nox",
    // observer edges --png: the edge map rendered by Graphviz.
    "graphviz",
    // The container image (cargo xtask image): built without a daemon, from scratch.
    "buildah",
    "skopeo",
    "binutils",
    "ca-certificates",
    // The chart's render, lint and schema checks run in a venv of Debian's Python.
    "python3-venv",
    // The end-to-end alert tests run a real Alertmanager.
    "prometheus-alertmanager",
];

/// The Python venv the chart checks run in (under target/: `cargo clean` removes it, the next
/// setup makes it again).
pub const VENV: &str = "target/xtask-venv";
/// What the venv holds, pinned: Helm's engine behind a Python API (no helm binary can be
/// installed here), the Kubernetes JSON schemas with their validator, and PyYAML.
const VENV_REQUIREMENTS: &[&str] = &["helm-python-sdk==0.2.2", "kubernetes-validate==1.37.0", "PyYAML==6.0.4"];

/// The OTLP receiver of the end-to-end tests (e2e/tools/otlp_receiver.py) runs in a venv
/// this setup owns, with the official protobuf definitions and gRPC from PyPI.
pub const OTLP_VENV: &str = "target/otlp-venv";
const OTLP_PIP_PACKAGES: &[&str] = &["opentelemetry-proto==1.45.2", "grpcio==1.85.1"];

const BPF_LINKER_VERSION: &str = "0.13.0";
/// `cargo xtask fuzz` runs the fuzz targets with it (on the nightly toolchain).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

pub fn run() -> Result<()> {
    apt()?;
    otlp_venv()?;
    rust_src()?;
    bpf_linker()?;
    cargo_fuzz()?;
    venv()?;
    Ok(())
}

/// The venv's interpreter.
pub fn venv_python() -> PathBuf {
    cmd::workspace().join(VENV).join("bin/python")
}

/// Makes the venv with Debian's Python (not whichever `python3` is first on PATH), unless it
/// already holds exactly [`VENV_REQUIREMENTS`].
fn venv() -> Result<()> {
    let dir = cmd::workspace().join(VENV);
    let stamp = dir.join("xtask-requirements.txt");
    let wanted = VENV_REQUIREMENTS.join("\n");
    if venv_python().exists() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    eprintln!("setup: making the Python venv {VENV} ({})", VENV_REQUIREMENTS.join(" "));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    cmd::status(Command::new("/usr/bin/python3").args(["-m", "venv"]).arg(&dir))?;
    cmd::status(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(VENV_REQUIREMENTS),
    )?;
    std::fs::write(stamp, wanted)?;
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

/// cargo-fuzz at [`CARGO_FUZZ_VERSION`], and the nightly toolchain it builds with.
pub fn cargo_fuzz() -> Result<()> {
    let Some(toolchains) = cmd::output("rustup", &["toolchain", "list"]) else {
        bail!("rustup not found: fuzzing needs rustup with a nightly toolchain");
    };
    if !toolchains.lines().any(|t| t.starts_with("nightly")) {
        bail!("no nightly toolchain: fuzzing needs one (rustup toolchain install nightly)");
    }
    let version = Command::new("cargo-fuzz")
        .arg("--version")
        .env("PATH", cmd::path_with_tools())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if version.is_some_and(|v| v.split_whitespace().any(|w| w == CARGO_FUZZ_VERSION)) {
        return Ok(());
    }
    eprintln!("setup: installing cargo-fuzz {CARGO_FUZZ_VERSION} (about two minutes)");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd::status(Command::new(cargo).env("PATH", cmd::path_with_tools()).args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
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
