//! Watching the segments themselves: run tcpdump in a namespace around an action and return the
//! TCP payload length of each captured packet (to prove that a ClientHello really crossed in
//! several segments, not one GSO super-packet).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::Spawn;

/// tcpdump drops the last packets when stopped at once (docs/TESTING.md).
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

/// A tcpdump writing a pcap file inside a namespace, for `observer replay` of the same traffic
/// the live observer saw.
#[derive(Debug)]
pub struct PcapCapture {
    child: crate::process::Child,
    path: std::path::PathBuf,
}

impl PcapCapture {
    /// Starts `tcpdump -i <iface> -w <path> <filter>` in `ns` and waits until it captures.
    pub fn start(ns: &str, iface: &str, path: &std::path::Path, filter: &str) -> anyhow::Result<Self> {
        let mut child = Spawn::new(ns, "tcpdump")
            .args(["-i", iface, "-U", "--immediate-mode", "-w"])
            .arg(path.to_string_lossy())
            .arg(filter)
            .start()
            .context("cannot start tcpdump")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !child.stderr().contains("listening on") {
            if child.try_wait()?.is_some() || Instant::now() >= deadline {
                bail!("tcpdump did not start:\n{}", child.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, path: path.to_owned() })
    }

    /// Stops it (after a short settle, so that the last packets are written) and returns the
    /// file.
    pub fn finish(mut self) -> std::path::PathBuf {
        std::thread::sleep(SETTLE);
        self.child.stop();
        self.path.clone()
    }
}
