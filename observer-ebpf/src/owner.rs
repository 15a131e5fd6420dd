//! The owner of a socket, read in process context (the only context where "current" is the
//! owner), and kept with the socket in `OWNERS`.

use core::ffi::c_void;

use aya_ebpf::{bindings::bpf_sock, helpers::bpf_sk_storage_get};

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

/// The `OWNERS` map as the storage helpers take it.
#[inline(always)]
pub fn map() -> *mut c_void {
    core::ptr::from_ref(&crate::maps::OWNERS).cast_mut().cast::<c_void>()
}

/// The owner recorded with `sk` at its creation, if any (accepted sockets have none: they take
/// their listener's, and sockets older than the programs have none either).
#[inline(always)]
pub fn of(sk: *mut bpf_sock) -> Option<Owner> {
    if sk.is_null() {
        return None;
    }
    // SAFETY: `sk` is the callback's full socket (checked non-null), `map()` a socket storage map;
    // without the create flag the helper only looks up.
    let owner = unsafe { bpf_sk_storage_get(map(), sk.cast(), core::ptr::null_mut(), 0) }.cast::<Owner>();
    // SAFETY: a socket storage value, valid while the program runs.
    (!owner.is_null()).then(|| unsafe { *owner })
}
