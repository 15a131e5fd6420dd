//! Builds observer-ebpf for the BPF target with nightly (aya-build) so the observer can embed it.
//!
//! `AYA_BUILD_SKIP=1` skips that build for host-only checks (unit tests, replay, policy): an empty
//! object is embedded and `observer run` then refuses to start with a message saying so.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR not set")?;
    let object = std::path::Path::new(&out_dir).join("observer");
    let skip = std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        std::fs::write(&object, []).context("writing the empty eBPF placeholder")?;
    }
    let metadata = cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "observer-ebpf")
        .ok_or_else(|| anyhow!("observer-ebpf package not found"))?;
    let root_dir =
        ebpf.manifest_path.parent().ok_or_else(|| anyhow!("observer-ebpf manifest has no parent directory"))?;
    aya_build::build_ebpf(
        [Package { name: ebpf.name.as_str(), root_dir: root_dir.as_str(), ..Default::default() }],
        Toolchain::default(),
    )
}
