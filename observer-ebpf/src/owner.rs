//! The owner of a socket, read in process context (the only context where "current" is the owner).

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
};
use observer_common::{COMM_LEN, Owner};

#[inline(always)]
pub fn current() -> Owner {
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    Owner {
        pid: (pid_tgid >> 32) as u32,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        known: 1,
        // SAFETY: helper without pointer arguments.
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or([0u8; COMM_LEN]),
    }
}

pub const UNKNOWN: Owner = Owner { pid: 0, uid: 0, gid: 0, known: 0, cgroup_id: 0, comm: [0; COMM_LEN] };
