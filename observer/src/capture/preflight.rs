//! Checks made before anything is loaded, so a missing prerequisite gives one line saying which
//! and what to do, not a verifier dump.

use std::path::{Path, PathBuf};

/// A prerequisite of `observer run` that is missing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreflightError {
    /// Neither root nor the capabilities to load and attach BPF programs; `missing` names the
    /// effective capabilities that are absent (`CAP_BPF,CAP_PERFMON`).
    #[error(
        "observer run needs root, or CAP_BPF + CAP_PERFMON + CAP_NET_ADMIN (or CAP_SYS_ADMIN), to load eBPF programs; missing {missing}: run it with sudo or grant them"
    )]
    NotPrivileged { missing: String },
    /// No cgroup v2 hierarchy at the usual places.
    #[error(
        "no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified: mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or pass --cgroup PATH"
    )]
    NoCgroup2,
    /// `--cgroup` names something that is not in a cgroup v2 hierarchy.
    #[error("{0} is not a cgroup v2 directory: pass a directory of a cgroup2 mount to --cgroup")]
    NotCgroup2(PathBuf),
    /// The kernel exposes no BTF.
    #[error(
        "kernel BTF not found at /sys/kernel/btf/vmlinux: the observer needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
    /// The binary embeds no eBPF object.
    #[error(
        "this observer binary was built without its eBPF programs (AYA_BUILD_SKIP was set): rebuild it without AYA_BUILD_SKIP"
    )]
    NoObject,
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Run every check; the first failure is returned.
pub fn check(object: &[u8], cgroup: Option<&Path>) -> Result<PathBuf, PreflightError> {
    if object.is_empty() {
        return Err(PreflightError::NoObject);
    }
    let missing = missing_capabilities(effective_capabilities());
    if missing != 0 {
        return Err(PreflightError::NotPrivileged { missing: crate::privileges::names(missing) });
    }
    let cgroup = match cgroup {
        Some(path) if is_cgroup2(path) => path.to_path_buf(),
        Some(path) => return Err(PreflightError::NotCgroup2(path.to_path_buf())),
        None => find_cgroup2().ok_or(PreflightError::NoCgroup2)?,
    };
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(PreflightError::NoBtf);
    }
    Ok(cgroup)
}

/// The cgroup v2 root: `/sys/fs/cgroup` on a unified system, `/sys/fs/cgroup/unified` on a hybrid one.
pub fn find_cgroup2() -> Option<PathBuf> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"].into_iter().map(PathBuf::from).find(|p| is_cgroup2(p))
}

fn is_cgroup2(path: &Path) -> bool {
    filesystem_type(path) == Some(CGROUP2_SUPER_MAGIC)
}

/// The magic number of the filesystem `path` is on (statfs `f_type`), if it can be read.
pub(super) fn filesystem_type(path: &Path) -> Option<i64> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: c_path is NUL-terminated; stat points at writable memory of the right size.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    // SAFETY: zero-initialised above, and filled by statfs when it returned 0.
    #[expect(clippy::unnecessary_cast, reason = "f_type is i64 here but a different type on other architectures")]
    let f_type = unsafe { stat.assume_init() }.f_type as i64;
    (rc == 0).then_some(f_type)
}

/// Effective capabilities from /proc/self/status (none when unreadable).
fn effective_capabilities() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| crate::privileges::parse_status(&status))
        .map_or(0, |held| held.effective)
}

/// The capabilities loading and attaching need that `cap_eff` lacks: CAP_NET_ADMIN, and CAP_BPF
/// with CAP_PERFMON unless CAP_SYS_ADMIN stands in for both. Zero when nothing is missing.
fn missing_capabilities(cap_eff: u64) -> u64 {
    let bit = |cap: u32| 1u64 << cap;
    let mut missing = bit(CAP_NET_ADMIN) & !cap_eff;
    if cap_eff & bit(CAP_SYS_ADMIN) == 0 {
        missing |= (bit(CAP_BPF) | bit(CAP_PERFMON)) & !cap_eff;
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_sets() {
        let bit = |cap: u32| 1u64 << cap;
        assert_eq!(missing_capabilities(0x1ff_ffff_ffff), 0);
        assert_eq!(missing_capabilities(bit(CAP_NET_ADMIN) | bit(CAP_BPF) | bit(CAP_PERFMON)), 0);
        assert_eq!(missing_capabilities(bit(CAP_NET_ADMIN) | bit(CAP_SYS_ADMIN)), 0);
        assert_eq!(missing_capabilities(bit(CAP_BPF)), bit(CAP_NET_ADMIN) | bit(CAP_PERFMON));
        assert_eq!(missing_capabilities(bit(CAP_NET_ADMIN) | bit(CAP_PERFMON)), bit(CAP_BPF));
        assert_eq!(missing_capabilities(0), bit(CAP_NET_ADMIN) | bit(CAP_PERFMON) | bit(CAP_BPF));
    }

    #[test]
    fn an_empty_object_is_refused_first() {
        assert_eq!(check(&[], None), Err(PreflightError::NoObject));
    }

    #[test]
    fn a_regular_directory_is_not_a_cgroup() {
        assert!(!is_cgroup2(Path::new("/tmp")));
        assert!(!is_cgroup2(Path::new("/nonexistent")));
    }
}
