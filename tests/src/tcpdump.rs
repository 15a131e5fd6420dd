//! Watching the segments themselves: run tcpdump in a namespace around an action and return the
//! TCP payload length of each captured packet (to prove that a ClientHello really crossed in
//! several segments, not one GSO super-packet).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::Spawn;

/// tcpdump drops the last packets when stopped at once (shared/MESH-TESTBED.md).
const SETTLE: Duration = Duration::from_millis(300);

/// Runs `action` while tcpdump captures `filter` on `iface` inside `ns`; returns the non-zero
/// TCP payload lengths in capture order and the action's result.
pub fn payload_lengths<R>(
    ns: &str,
    iface: &str,
    filter: &str,
    action: impl FnOnce() -> R,
) -> anyhow::Result<(Vec<usize>, R)> {
    let mut tcpdump = Spawn::new(ns, "tcpdump")
        .args(["-i", iface, "-nn", "-l", "--immediate-mode", filter])
        .start()
        .context("cannot start tcpdump")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tcpdump.stderr().contains("listening on") {
        if tcpdump.try_wait()?.is_some() || Instant::now() >= deadline {
            bail!("tcpdump did not start:\n{}", tcpdump.logs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let result = action();
    std::thread::sleep(SETTLE);
    tcpdump.stop();
    let lengths = tcpdump
        .stdout()
        .lines()
        .filter_map(|l| l.rsplit_once("length ").and_then(|(_, n)| n.trim().parse().ok()))
        .filter(|&n: &usize| n > 0)
        .collect();
    Ok((lengths, result))
}
