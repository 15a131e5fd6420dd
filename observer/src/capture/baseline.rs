//! `observer run --baseline-only` (hidden): the empty programs of `observer-ebpf/src/baseline.rs`
//! at every hook the observer uses per connection, and nothing real, so a load generator can
//! measure the floor of the new-connection figure: what any program at those hooks costs (the
//! kernel's call into a cgroup program, its context, the return), apart from the observer's own
//! work. The links belong to the process and go with it; they are never pinned.

use std::{fs::File, path::Path, time::Duration};

use anyhow::Context as _;
use aya::{
    Ebpf,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSock, SockOps},
};
use observer_common::names;
use tokio::signal::unix::SignalKind;

use super::loader::{BASELINE_PROGRAMS, CaptureError, load_error, program};

/// The empty programs attached at the cgroup; dropping it detaches them.
pub struct BaselineOnly {
    _ebpf: Ebpf,
}

impl BaselineOnly {
    /// Load the object and attach only its empty programs at `cgroup`: sock_create, sock_ops and
    /// cgroup_skb egress and ingress. The real programs are never loaded.
    pub fn attach(object: &[u8], cgroup: &Path) -> Result<Self, CaptureError> {
        let cgroup_file =
            File::open(cgroup).map_err(|source| CaptureError::Cgroup { path: cgroup.display().to_string(), source })?;
        let mut ebpf = aya::EbpfLoader::new().load(object)?;
        let name = names::NOOP_SOCK_CREATE;
        let sock_create: &mut CgroupSock = program(&mut ebpf, name)?;
        sock_create.load().map_err(|source| load_error(name, source))?;
        sock_create
            .attach(&cgroup_file, CgroupAttachMode::default())
            .map_err(|source| CaptureError::Program { program: name, source })?;
        let name = names::NOOP_SOCK_OPS;
        let sock_ops: &mut SockOps = program(&mut ebpf, name)?;
        sock_ops.load().map_err(|source| load_error(name, source))?;
        sock_ops
            .attach(&cgroup_file, CgroupAttachMode::default())
            .map_err(|source| CaptureError::Program { program: name, source })?;
        for (name, attach_type) in BASELINE_PROGRAMS {
            let program: &mut CgroupSkb = program(&mut ebpf, name)?;
            program.load().map_err(|source| load_error(name, source))?;
            program
                .attach(&cgroup_file, attach_type, CgroupAttachMode::default())
                .map_err(|source| CaptureError::Program { program: name, source })?;
        }
        Ok(Self { _ebpf: ebpf })
    }
}

/// The programs [`BaselineOnly`] attaches, by name, for its log line.
const ATTACHED: [&str; 4] =
    [names::NOOP_SOCK_CREATE, names::NOOP_SOCK_OPS, BASELINE_PROGRAMS[0].0, BASELINE_PROGRAMS[1].0];

/// Attach the empty programs at `cgroup` (default: the cgroup v2 root), keep them there until
/// SIGINT, SIGTERM or `duration`, then detach them. Prints nothing on stdout.
pub fn run(object: &[u8], cgroup: Option<&Path>, duration: Option<Duration>) -> anyhow::Result<()> {
    let cgroup = super::preflight(object, cgroup)?;
    let attached = BaselineOnly::attach(object, &cgroup)
        .with_context(|| format!("attaching the empty programs at {}", cgroup.display()))?;
    crate::privileges::drop_after_attach()?;
    // "observer attached" like a real run, so what waits for a run to attach waits for this too.
    tracing::info!(
        cgroup = %cgroup.display(),
        programs = ?ATTACHED,
        "observer attached, baseline only: empty programs at the observer's hooks, nothing observed (never pinned)"
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let stopped = runtime.block_on(async {
        let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut sigint = tokio::signal::unix::signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let deadline = tokio::time::sleep(duration.unwrap_or(Duration::MAX / 4));
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
            () = deadline => {}
        }
        anyhow::Ok(())
    });
    drop(attached);
    tracing::info!("observer detached");
    stopped
}
