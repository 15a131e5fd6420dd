//! `cargo xtask bench`.
use anyhow::Result;

pub fn run(_criterion: bool) -> Result<()> {
    anyhow::bail!("bench: not yet")
}
