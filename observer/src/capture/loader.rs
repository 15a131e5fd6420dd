//! Loading the eBPF object, attaching its programs at a cgroup v2 directory, and the map handles
//! userspace needs. Dropping a [`LiveCapture`] detaches everything, unless it was attached with
//! a pin directory: then the links and maps stay in the kernel for the next run (see `pins`).

use std::{fs::File, os::fd::AsFd as _, path::Path};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, SockOps, links::FdLink},
};
use observer_common::{ConnState, ListenerKey, Owner, RING_WAKEUP_BYTES, conn_flags, drop_reason, names};

use super::pins::{self, PinDir, PinError};

/// The empty cgroup_skb programs (`observer-ebpf/src/baseline.rs`) of `--attach-baseline` (and
/// of `--baseline-only`, see `baseline`), with their hooks. Never pinned: their links belong to
/// the process and go with it.
pub(super) const BASELINE_PROGRAMS: [(&str, CgroupSkbAttachType); 2] =
    [(names::NOOP_EGRESS, CgroupSkbAttachType::Egress), (names::NOOP_INGRESS, CgroupSkbAttachType::Ingress)];

/// How one loaded program came to run at its hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hook {
    /// A link owned by this process: detached when it exits.
    Owned,
    /// A new link, pinned.
    Pinned,
    /// An earlier run's pinned link, now running this program (swapped atomically).
    Updated,
}

/// Attaches the loaded `$program` through its pinned link when there is one (the program swapped
/// in place), else with `$attach` (a closure-like `|p| expr` over the program), pinning the new
/// link when `$pins` is set. A macro because the program types share no trait for `fd` and
/// `take_link`.
macro_rules! hook {
    ($program:expr, $name:expr, $pins:expr, $cgroup:expr, |$p:ident| $attach:expr) => {{
        let program = $program;
        match $pins.map(|pins: &PinDir| pins.open_link($name, $cgroup)).transpose()?.flatten() {
            Some(link) => {
                let fd = program.fd().map_err(|source| CaptureError::Program { program: $name, source })?;
                pins::bpf::link_update(link.as_fd(), fd.as_fd())
                    .map_err(|source| CaptureError::LinkUpdate { program: $name, source })?;
                Hook::Updated
            }
            None => {
                let $p = &mut *program;
                let id = $attach.map_err(|source| CaptureError::Program { program: $name, source })?;
                match $pins {
                    Some(pins) => {
                        let link =
                            program.take_link(id).map_err(|source| CaptureError::Program { program: $name, source })?;
                        pins.pin_link($name, FdLink::try_from(link))?;
                        Hook::Pinned
                    }
                    None => Hook::Owned,
                }
            }
        }
    }};
}

/// Run statistics of one eBPF program (non-zero only while kernel.bpf_stats_enabled is 1).
#[derive(Clone, Debug, Default)]
pub struct ProgramRun {
    pub program: String,
    pub run_time_ns: u64,
    pub run_count: u64,
}

/// Why the live capture could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The cgroup directory could not be opened.
    #[error("cannot open cgroup {path}: {source}")]
    Cgroup { path: String, source: std::io::Error },
    /// The kernel refused the object (maps or BTF).
    #[error(
        "the kernel refused the eBPF object ({0}): is BPF available in this kernel and not blocked by lockdown or a seccomp profile?"
    )]
    Load(#[from] aya::EbpfError),
    /// A program is of the wrong type, or attaching it failed.
    #[error("eBPF program {program}: {source}")]
    Program { program: &'static str, source: aya::programs::ProgramError },
    /// The verifier (or the kernel's permission checks) refused a program. The whole log is
    /// logged at debug level; the error keeps its last lines, where the verifier says why.
    #[error("the kernel refused eBPF program {program}: {error}; verifier: {log_tail}")]
    Verifier { program: &'static str, error: std::io::Error, log_tail: String },
    /// A map is missing or of the wrong type.
    #[error("eBPF map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
    /// A map is missing from the object.
    #[error("eBPF map {0} missing from the object")]
    MissingMap(&'static str),
    /// A program is missing from the object.
    #[error("eBPF program {0} missing from the object")]
    MissingProgram(&'static str),
    /// The pin directory cannot be used (`--pin`).
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The kernel refused to swap this build's program into a pinned link.
    #[error(
        "cannot replace the program of the pinned link of {program}: {source}; `observer unpin` the directory and start again"
    )]
    LinkUpdate { program: &'static str, source: std::io::Error },
}

/// Kernel-side counters of everything not delivered, summed over CPUs, by `drop_reason`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub drops: [u64; drop_reason::COUNT as usize],
}

/// The loaded and attached programs with the maps userspace uses.
pub struct LiveCapture {
    // Field order matters for drop: maps first, then the programs and their links.
    conns: HashMap<MapData, u64, ConnState>,
    drops: PerCpuArray<MapData, u64>,
    ebpf: Ebpf,
    /// Holds the pin directory's lock while this capture lives.
    pins: Option<PinDir>,
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        if let Some(pins) = &self.pins {
            let dir = pins.path().display();
            tracing::info!(
                dir = %dir,
                "pins kept: the programs stay attached and keep recording; `observer run --pin {dir}` resumes, `observer unpin {dir}` removes them"
            );
        }
    }
}

impl LiveCapture {
    /// Load the object and attach every program at `cgroup`, with a connection table of
    /// `conn_entries` (`MAX_CONNECTIONS` but in fault tests). Returns the capture and its ring buffer.
    /// With `baseline`, the empty programs of [`BASELINE_PROGRAMS`] are attached there too, after
    /// the real ones, so the kernel's BPF stats time both on the same packets.
    ///
    /// With `pin`, the maps and links are pinned in that directory; pins an earlier run left
    /// there are reused: its maps (ring buffer included, with what the kernel wrote while no
    /// daemon ran) and its links, whose programs are swapped for this build's in place
    /// (`BPF_LINK_UPDATE`), so the hooks never go unobserved.
    pub fn attach(
        object: &[u8],
        cgroup: &Path,
        pin: Option<&Path>,
        conn_entries: u32,
        baseline: bool,
    ) -> Result<(Self, RingBuf<MapData>), CaptureError> {
        let cgroup_file =
            File::open(cgroup).map_err(|source| CaptureError::Cgroup { path: cgroup.display().to_string(), source })?;
        let pins = pin.map(PinDir::prepare).transpose()?;
        let mut loader = EbpfLoader::new();
        loader.override_global(names::WAKEUP_BYTES, &RING_WAKEUP_BYTES, true);
        loader.map_max_entries(names::CONNS, conn_entries);
        if let Some(pins) = &pins {
            pins.check_layouts(object)?;
            for name in pins::PINNED_MAPS {
                loader.map_pin_path(name, pins.map_path(name));
            }
        }
        let mut ebpf = loader.load(object)?;
        let pins_ref = pins.as_ref();
        let mut hooks = Vec::new();

        // Owners first, so sockets created while the rest attaches are already attributed.
        for name in [names::SOCK_CREATE, names::POST_BIND4, names::POST_BIND6] {
            let program: &mut CgroupSock = program(&mut ebpf, name)?;
            program.load().map_err(|source| load_error(name, source))?;
            hooks.push(hook!(program, name, pins_ref, cgroup, |p| p.attach(&cgroup_file, CgroupAttachMode::default())));
        }
        let sock_ops: &mut SockOps = program(&mut ebpf, names::SOCK_OPS)?;
        sock_ops.load().map_err(|source| load_error(names::SOCK_OPS, source))?;
        hooks
            .push(hook!(sock_ops, names::SOCK_OPS, pins_ref, cgroup, |p| p
                .attach(&cgroup_file, CgroupAttachMode::default())));
        for (name, attach_type) in
            [(names::SKB_EGRESS, CgroupSkbAttachType::Egress), (names::SKB_INGRESS, CgroupSkbAttachType::Ingress)]
        {
            let program: &mut CgroupSkb = program(&mut ebpf, name)?;
            program.load().map_err(|source| load_error(name, source))?;
            hooks.push(hook!(program, name, pins_ref, cgroup, |p| p.attach(
                &cgroup_file,
                attach_type,
                CgroupAttachMode::default()
            )));
        }

        if baseline {
            attach_baseline(&mut ebpf, &cgroup_file)?;
        }

        let ring = RingBuf::try_from(take_map(&mut ebpf, names::EVENTS)?)
            .map_err(|source| CaptureError::Map { map: names::EVENTS, source })?;
        let conns = HashMap::try_from(take_map(&mut ebpf, names::CONNS)?)
            .map_err(|source| CaptureError::Map { map: names::CONNS, source })?;
        let drops = PerCpuArray::try_from(take_map(&mut ebpf, names::DROPS)?)
            .map_err(|source| CaptureError::Map { map: names::DROPS, source })?;
        seed_listeners(&mut ebpf, cgroup)?;
        if let Some(pins) = &pins {
            log_pins(pins, &hooks, &conns);
        }
        Ok((Self { conns, drops, ebpf, pins }, ring))
    }

    /// Tell the kernel to stop sampling a socket (its leg is classified). A socket that already
    /// closed is not an error.
    pub fn stop_sampling(&mut self, cookie: u64) {
        const BPF_EXIST: u64 = 2;
        if let Ok(mut state) = self.conns.get(&cookie, 0) {
            state.flags |= conn_flags::ALL_DONE;
            // Fails only if the socket closed in between: nothing left to stop.
            let _ = self.conns.insert(cookie, state, BPF_EXIST);
        }
    }

    /// Run time and count of each program (zero unless kernel.bpf_stats_enabled is 1).
    pub fn program_runs(&self) -> Vec<ProgramRun> {
        self.ebpf
            .programs()
            .filter_map(|(name, program)| {
                let info = program.info().ok()?;
                Some(ProgramRun {
                    program: name.to_owned(),
                    run_time_ns: u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX),
                    run_count: info.run_count(),
                })
            })
            .collect()
    }

    /// The kernel's drop counters, summed over CPUs.
    pub fn counters(&self) -> KernelCounters {
        let mut counters = KernelCounters::default();
        for (index, slot) in counters.drops.iter_mut().enumerate() {
            if let Ok(values) = self.drops.get(&(index as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        counters
    }
}

/// Says what a pinned start reused: a restart that found its pins shows `links_updated=6`.
fn log_pins(pins: &PinDir, hooks: &[Hook], conns: &HashMap<MapData, u64, ConnState>) {
    let count = |kind: Hook| hooks.iter().filter(|h| **h == kind).count();
    let maps_reused = pins.reused_maps();
    // Open sockets the kernel tracks: those whose open event an earlier run consumed are not
    // reported; their samples and closes are counted as orphans.
    let open_sockets =
        if maps_reused > 0 { conns.keys().take(observer_common::MAX_CONNECTIONS as usize).count() } else { 0 };
    tracing::info!(
        dir = %pins.path().display(),
        maps_reused,
        links_updated = count(Hook::Updated),
        links_pinned = count(Hook::Pinned),
        open_sockets,
        "pinned"
    );
}

/// Loads and attaches the empty programs with links this process owns, pinned or not.
fn attach_baseline(ebpf: &mut Ebpf, cgroup: &File) -> Result<(), CaptureError> {
    for (name, attach_type) in BASELINE_PROGRAMS {
        let program: &mut CgroupSkb = program(ebpf, name)?;
        program.load().map_err(|source| load_error(name, source))?;
        program
            .attach(cgroup, attach_type, CgroupAttachMode::default())
            .map_err(|source| CaptureError::Program { program: name, source })?;
    }
    tracing::info!(
        programs = ?BASELINE_PROGRAMS.map(|(name, _)| name),
        "baseline attached: empty cgroup_skb programs, for comparing run times (never pinned)"
    );
    Ok(())
}

pub(super) fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, CaptureError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(CaptureError::MissingProgram(name))?;
    program.try_into().map_err(|source| CaptureError::Program { program: name, source })
}

/// Record the owners of listeners bound before the programs were attached. An entry the kernel
/// wrote meanwhile (a fresh bind) is newer and wins.
fn seed_listeners(ebpf: &mut Ebpf, cgroup: &Path) -> Result<(), CaptureError> {
    const BPF_NOEXIST: u64 = 1;
    let map = ebpf.map_mut(names::LISTENERS).ok_or(CaptureError::MissingMap(names::LISTENERS))?;
    let mut listeners: HashMap<_, ListenerKey, Owner> =
        HashMap::try_from(map).map_err(|source| CaptureError::Map { map: names::LISTENERS, source })?;
    let found = super::listeners::scan(cgroup);
    let count = found.len();
    for listener in found {
        let _ = listeners.insert(listener.key, listener.owner, BPF_NOEXIST);
    }
    tracing::debug!(count, "listeners seeded from /proc");
    Ok(())
}

pub(super) fn load_error(program: &'static str, source: aya::programs::ProgramError) -> CaptureError {
    match source {
        aya::programs::ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            tracing::debug!(program, log = %log, "verifier log");
            let tail: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            let log_tail = tail[tail.len().saturating_sub(3)..].join(" | ");
            CaptureError::Verifier { program, error: io_error, log_tail }
        }
        source => CaptureError::Program { program, source },
    }
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, CaptureError> {
    ebpf.take_map(name).ok_or(CaptureError::MissingMap(name))
}
