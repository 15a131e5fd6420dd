//! Giving up the capabilities that only loading and attaching needed.
//!
//! `observer run` needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN to create its maps, load its
//! programs and attach them (plus CAP_SYS_ADMIN, CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, when
//! granted, to find the owners of listeners that existed before it started). Once attached it only drains the ring
//! buffer (an mmap of a map it already holds), reads and updates its maps through descriptors it
//! already holds, and closes them at exit; none of that needs a capability on kernels since 6.5.
//! Older kernels with `kernel.unprivileged_bpf_disabled` set refuse every bpf(2) command to a
//! caller without CAP_BPF, so that one is kept where a probe shows the kernel still checks it.
//!
//! Capabilities belong to threads, not to the process, and threads started before the attach
//! (the policy watcher, the Kubernetes watcher, tokio's blocking pool) hold what the main thread
//! held then. Each thread is therefore asked, by a signal whose handler makes the same raw
//! syscalls, to drop them too, and every thread's `/proc/self/task/TID/status` is read back.
//!
//! The bounding set can only be reduced with CAP_SETPCAP, which the DaemonSet does not grant;
//! it is reduced when that capability is held (a run as full root). Either way no_new_privs is
//! set, so an `execve` can never regain what was dropped.

use std::{
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

/// Why the capabilities could not be dropped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// A syscall of the drop failed in the main thread.
    #[error("dropping capabilities after attach: {call} failed: {source}")]
    Syscall { call: &'static str, source: std::io::Error },
    /// Some thread still holds more than it should after every retry.
    #[error("dropping capabilities after attach: thread {tid} still holds {held}")]
    ThreadKept { tid: u32, held: String },
    /// /proc/self/task or a thread's status could not be read.
    #[error("dropping capabilities after attach: cannot read {path}: {source}")]
    Proc { path: String, source: std::io::Error },
}

/// The capability sets of the main thread after the drop, as bit masks (bit N is capability N).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Held {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub bounding: u64,
    pub ambient: u64,
    pub no_new_privs: bool,
}

pub const CAP_SETPCAP: u32 = 8;
pub const CAP_BPF: u32 = 39;

/// Capability names by number, as the kernel's headers spell them (without `CAP_`).
const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `CAP_BPF,CAP_NET_ADMIN` for a mask (`none` when empty); unknown bits as `CAP_<N>`.
pub fn names(mask: u64) -> String {
    let names: Vec<String> = (0..64u32)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| match NAMES.get(bit as usize) {
            Some(name) => format!("CAP_{name}"),
            None => format!("CAP_{bit}"),
        })
        .collect();
    if names.is_empty() { "none".to_owned() } else { names.join(",") }
}

/// The capability sets of one thread, from its `/proc/.../status` text.
pub fn parse_status(status: &str) -> Option<Held> {
    let field = |key: &str| -> Option<u64> {
        let hex = status.lines().find_map(|line| line.strip_prefix(key))?.trim();
        u64::from_str_radix(hex, 16).ok()
    };
    Some(Held {
        effective: field("CapEff:")?,
        permitted: field("CapPrm:")?,
        inheritable: field("CapInh:")?,
        bounding: field("CapBnd:")?,
        ambient: field("CapAmb:")?,
        no_new_privs: field("NoNewPrivs:")? == 1,
    })
}

/// The mask a thread keeps; read by the signal handler.
static KEEP: AtomicU64 = AtomicU64::new(0);
/// Threads that ran the handler, and those whose drop failed in it.
static DONE: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);

/// How long the other threads get to run the handler, per round.
const SIGNAL_WAIT: Duration = Duration::from_secs(2);
/// Rounds of signalling, for threads started while the previous round ran.
const ROUNDS: usize = 4;

/// Drops, in every thread of the process, every capability `observer run` no longer needs once
/// its programs are attached, and logs what the process still holds (one INFO line).
pub fn drop_after_attach() -> Result<Held, PrivilegeError> {
    let keep = if bpf_needs_capability() { 1 << CAP_BPF } else { 0 };
    KEEP.store(keep, Ordering::SeqCst);
    apply(keep).map_err(|(call, source)| PrivilegeError::Syscall { call, source })?;
    drop_in_other_threads(keep)?;
    let held = read_status("/proc/thread-self/status")?;
    tracing::info!(
        effective = %names(held.effective),
        permitted = %names(held.permitted),
        bounding = %names(held.bounding),
        ambient = %names(held.ambient),
        no_new_privs = held.no_new_privs,
        "capabilities after attach"
    );
    Ok(held)
}

/// Whether this kernel refuses bpf(2) on existing descriptors to a thread without CAP_BPF
/// (kernels before 6.5 with `kernel.unprivileged_bpf_disabled` set check it on entry, for every
/// command). Asked from a throw-away thread that drops everything and makes a lookup on an
/// invalid descriptor: EPERM means the entry check, EBADF means none.
fn bpf_needs_capability() -> bool {
    const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
    let probe = std::thread::spawn(|| {
        if apply(0).is_err() {
            return true;
        }
        // bpf_attr for a lookup: map_fd (u32), padding, key, value, flags; the rest zero.
        let mut attr = [0u8; 128];
        attr[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        // SAFETY: attr is a valid, writable buffer of the size passed.
        let rc = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_ELEM, attr.as_mut_ptr(), attr.len()) };
        rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    });
    // A probe that could not run keeps CAP_BPF: keeping too much beats breaking map access.
    probe.join().unwrap_or(true)
}

/// Sends every other thread the drop signal until each holds no more than `keep`.
fn drop_in_other_threads(keep: u64) -> Result<(), PrivilegeError> {
    let signal = drop_signal();
    // SAFETY: the handler only makes raw syscalls and atomic updates (async-signal-safe).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_drop_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(PrivilegeError::Syscall { call: "sigaction", source: std::io::Error::last_os_error() });
        }
    }
    let me = gettid();
    for _ in 0..ROUNDS {
        let holding = threads_holding_more(keep, me)?;
        if holding.is_empty() {
            break;
        }
        let before = DONE.load(Ordering::SeqCst) + FAILED.load(Ordering::SeqCst);
        let mut sent = 0;
        for (tid, _) in &holding {
            // SAFETY: tgkill on our own thread group; a thread that just exited gives ESRCH.
            if unsafe { libc::syscall(libc::SYS_tgkill, std::process::id(), *tid, signal) } == 0 {
                sent += 1;
            }
        }
        let deadline = Instant::now() + SIGNAL_WAIT;
        while DONE.load(Ordering::SeqCst) + FAILED.load(Ordering::SeqCst) < before + sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let last = match threads_holding_more(keep, me)?.first() {
        Some(&(tid, held)) => Err(PrivilegeError::ThreadKept { tid, held: names(held) }),
        None => Ok(()),
    };
    // SAFETY: ignoring, from now on, a signal nothing else uses.
    unsafe { libc::signal(signal, libc::SIG_IGN) };
    last
}

/// Threads other than `me` whose effective, permitted or ambient set exceeds `keep`, with what
/// they hold beyond it.
fn threads_holding_more(keep: u64, me: u32) -> Result<Vec<(u32, u64)>, PrivilegeError> {
    let dir = "/proc/self/task";
    let entries = std::fs::read_dir(dir).map_err(|source| PrivilegeError::Proc { path: dir.to_owned(), source })?;
    let mut holding = Vec::new();
    for entry in entries.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if tid == me {
            continue;
        }
        // A thread that exited meanwhile holds nothing.
        let Ok(held) = read_status(&format!("{dir}/{tid}/status")) else { continue };
        let extra = (held.effective | held.permitted | held.ambient) & !keep;
        if extra != 0 || !held.no_new_privs {
            holding.push((tid, extra));
        }
    }
    Ok(holding)
}

fn read_status(path: &str) -> Result<Held, PrivilegeError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| PrivilegeError::Proc { path: path.to_owned(), source })?;
    parse_status(&text).ok_or_else(|| PrivilegeError::Proc {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no capability lines"),
    })
}

/// A real-time signal of glibc's range that nothing else in the process uses.
fn drop_signal() -> libc::c_int {
    libc::SIGRTMIN() + 7
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() as u32 }
}

extern "C" fn on_drop_signal(_: libc::c_int) {
    // SAFETY: errno is thread-local; saved and restored around the handler's syscalls.
    let errno = unsafe { *libc::__errno_location() };
    let counter = if apply(KEEP.load(Ordering::SeqCst)).is_ok() { &DONE } else { &FAILED };
    counter.fetch_add(1, Ordering::SeqCst);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Reduces the calling thread to `keep`: no_new_privs, the bounding set (when CAP_SETPCAP
/// allows), the ambient set, then effective and permitted (inheritable emptied). Raw syscalls
/// only: it also runs in a signal handler.
fn apply(keep: u64) -> Result<(), (&'static str, std::io::Error)> {
    let fail = |call| (call, std::io::Error::last_os_error());
    // SAFETY: prctl and capget/capset with valid arguments and buffers of the kernel's layout.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("prctl(PR_SET_NO_NEW_PRIVS)"));
        }
        let mut header = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
        let mut data = [CapData::default(); 2];
        if libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) != 0 {
            return Err(fail("capget"));
        }
        let effective = u64::from(data[0].effective) | (u64::from(data[1].effective) << 32);
        let permitted = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
        if effective & (1 << CAP_SETPCAP) != 0 {
            for cap in (0..64u64).filter(|cap| keep & (1 << cap) == 0) {
                // EINVAL for numbers past the kernel's last capability: nothing to drop.
                libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0);
            }
        }
        if libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(fail("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
        }
        let kept = keep & permitted;
        let data = [
            CapData { effective: kept as u32, permitted: kept as u32, inheritable: 0 },
            CapData { effective: (kept >> 32) as u32, permitted: (kept >> 32) as u32, inheritable: 0 },
        ];
        if libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) != 0 {
            return Err(fail("capset"));
        }
    }
    Ok(())
}

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_named_as_the_kernel_spells_them() {
        assert_eq!(names(0), "none");
        assert_eq!(names(1 << CAP_BPF), "CAP_BPF");
        assert_eq!(names((1 << 12) | (1 << 38) | (1 << 39)), "CAP_NET_ADMIN,CAP_PERFMON,CAP_BPF");
        assert_eq!(names(1 << 50), "CAP_50");
    }

    #[test]
    fn status_lines_are_parsed_and_missing_ones_refused() {
        let status = "Name:\tobserver\nCapInh:\t0000000000000000\nCapPrm:\t0000008000000000\n\
                      CapEff:\t0000008000000000\nCapBnd:\t000000c000001000\nCapAmb:\t0000000000000000\n\
                      NoNewPrivs:\t1\n";
        let held = parse_status(status).expect("parsed");
        assert_eq!(held.effective, 1 << CAP_BPF);
        assert_eq!(held.bounding, (1 << 12) | (1 << 38) | (1 << 39));
        assert!(held.no_new_privs);
        assert_eq!(parse_status("CapEff:\tzz\n"), None);
    }

    #[test]
    fn a_thread_drops_to_what_it_keeps() {
        // A throw-away thread: capabilities are per thread, the test process keeps its own.
        let held = std::thread::spawn(|| {
            apply(0).expect("drop");
            read_status("/proc/thread-self/status").expect("status")
        })
        .join()
        .expect("thread");
        assert_eq!((held.effective, held.permitted, held.ambient, held.inheritable), (0, 0, 0, 0));
        assert!(held.no_new_privs);
    }
}
