//! The privileges an observer under test runs with: by default exactly the capabilities the
//! Helm chart grants (read from `deploy/helm/observer/values.yaml`, not copied), applied with
//! `setpriv` the way a container runtime applies them to a uid-0 process: the bounding set
//! holds only those, inheritable and ambient are empty and no_new_privs is set (the chart's
//! `allowPrivilegeEscalation: false`). A root process's permitted and effective sets at
//! `execve` are its bounding set, so that is what the observer starts with.

use std::{path::Path, process::Command};

use anyhow::{Context, bail};

use crate::workspace_root;

/// The capability set an observer is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Privileges {
    /// Exactly these capabilities (names as the chart spells them: `BPF`, `NET_ADMIN`).
    Only(Vec<String>),
    /// Whatever this test process holds (full root): no `setpriv`.
    Unrestricted,
}

impl Privileges {
    /// The chart's set (`capabilities` in values.yaml).
    pub fn chart() -> Self {
        Self::Only(chart_capabilities().expect("the chart's capabilities"))
    }

    /// The chart's set with `extra` added (the documented optional additions).
    pub fn chart_with(extra: &[&str]) -> Self {
        let mut caps = chart_capabilities().expect("the chart's capabilities");
        caps.extend(extra.iter().map(|c| (*c).to_owned()));
        Self::Only(caps)
    }

    /// The chart's set with its documented optional additions, `SYS_ADMIN`, `SYS_PTRACE` and
    /// `DAC_READ_SEARCH`: what attributing servers that were listening before the observer
    /// started takes (listing their /proc/PID/fd, mode 0500 of their own uid; reading its links;
    /// entering their network namespaces). Tests that start their servers (a mesh) before the
    /// observer and check the servers' processes use it.
    pub fn chart_with_listener_walk() -> Self {
        Self::chart_with(&["SYS_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"])
    }

    /// The chart's set without `missing`.
    pub fn chart_without(missing: &str) -> Self {
        let caps = chart_capabilities().expect("the chart's capabilities");
        Self::Only(caps.into_iter().filter(|c| c != missing).collect())
    }

    /// `program args...` under these privileges.
    pub fn command(&self, program: &Path) -> Command {
        match self {
            Self::Unrestricted => Command::new(program),
            Self::Only(caps) => {
                let mut set = "-all".to_owned();
                for cap in caps {
                    set.push_str(",+");
                    set.push_str(&cap.to_ascii_lowercase());
                }
                let mut command = Command::new("setpriv");
                command
                    .args(["--bounding-set", &set, "--inh-caps", "-all", "--ambient-caps", "-all", "--no-new-privs"])
                    .arg("--")
                    .arg(program);
                command
            }
        }
    }
}

/// The chart's `capabilities` list, in order.
pub fn chart_capabilities() -> anyhow::Result<Vec<String>> {
    let path = workspace_root().join("deploy/helm/observer/values.yaml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let caps = parse_capabilities(&text);
    if caps.is_empty() {
        bail!("{}: no `capabilities:` list found", path.display());
    }
    Ok(caps)
}

/// The items of the top-level `capabilities:` block list of a values file (comments skipped).
fn parse_capabilities(values: &str) -> Vec<String> {
    let mut lines = values.lines().skip_while(|l| l.trim_end() != "capabilities:").skip(1);
    let mut caps = Vec::new();
    for line in lines.by_ref() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_prefix("- ") {
            Some(item) if line.starts_with(' ') => caps.push(item.trim().trim_matches('"').to_owned()),
            _ => break,
        }
    }
    caps
}

/// Bit mask of capability names (`BPF`, `NET_ADMIN`), by the kernel's numbers.
pub fn mask(caps: &[String]) -> anyhow::Result<u64> {
    const NUMBERS: [(&str, u32); 7] = [
        ("DAC_READ_SEARCH", 2),
        ("SETPCAP", 8),
        ("NET_ADMIN", 12),
        ("SYS_PTRACE", 19),
        ("SYS_ADMIN", 21),
        ("PERFMON", 38),
        ("BPF", 39),
    ];
    let mut mask = 0;
    for cap in caps {
        let Some((_, bit)) = NUMBERS.iter().find(|(name, _)| name == cap) else {
            bail!("capability {cap} is not one the harness knows the number of");
        };
        mask |= 1u64 << bit;
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_values_list_is_read_and_ends_at_the_next_key() {
        let values =
            "a: 1\ncapabilities:\n  # why\n  - BPF\n  - PERFMON\n\n  # not here: X\n  - NET_ADMIN\nnext:\n  - NO\n";
        assert_eq!(parse_capabilities(values), ["BPF", "PERFMON", "NET_ADMIN"]);
        assert!(parse_capabilities("capabilities: []\n").is_empty());
    }

    #[test]
    fn the_chart_grants_names_the_harness_can_apply() {
        let caps = chart_capabilities().expect("chart");
        assert!(caps.iter().any(|c| c == "BPF"), "{caps:?}");
        mask(&caps).expect("known names");
    }
}
