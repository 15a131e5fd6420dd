//! The maps shared by the programs, and the two helpers every program uses on them:
//! counting a drop and choosing the ring buffer wakeup flag.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    btf_maps::SkStorage,
    macros::{btf_map, map},
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use observer_common::{
    ConnState, ListenerKey, MAX_CONNECTIONS, Owner, PeerKey, RING_BYTES, RING_WAKEUP_BYTES, WaitingPeer, drop_reason,
};

/// Events to userspace: opens, samples, closes.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(RING_BYTES, 0);

/// Sampling state of every established connection, by socket cookie.
#[map(name = "CONNS")]
pub static CONNS: LruHashMap<u64, ConnState> = LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

/// The `conn_flags` done bits of each socket, kept with the socket by the skb programs once a
/// direction is over (found done in `CONNS`) or the socket is known untracked: a finished
/// direction then costs one socket-local lookup, without the cookie and the `CONNS` hash lookup.
/// A cache of what `CONNS` said (done bits are only ever set): freed with the socket, never
/// pinned, so a restarted daemon's programs start it afresh.
#[btf_map]
pub static DONE: SkStorage<u32> = SkStorage::new();

/// Owner of every TCP socket created since load, by socket cookie (taken at creation), until it
/// connects: sock_ops reads and removes it at ACTIVE_ESTABLISHED. An LRU map, so that the
/// entries of sockets that never connect (listeners, failed connects) age out.
#[map(name = "OWNERS")]
pub static OWNERS: LruHashMap<u64, Owner> = LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

/// Owner of the socket bound to a port in a network namespace; accepted sockets inherit it.
#[map(name = "LISTENERS")]
pub static LISTENERS: LruHashMap<ListenerKey, Owner> = LruHashMap::with_max_entries(16_384, 0);

/// The first socket of a connection whose other end may be on this node, until the second one
/// arrives (or it closes): when both sockets are here, each byte is sampled once, at the
/// sender's egress, instead of again at the receiver's ingress.
#[map(name = "PEERS")]
pub static PEERS: LruHashMap<PeerKey, WaitingPeer> = LruHashMap::with_max_entries(MAX_CONNECTIONS, 0);

/// Per-CPU counters of everything the kernel side could not deliver, by `drop_reason`.
#[map(name = "DROPS")]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop_reason::COUNT, 0);

/// Bytes waiting in the ring buffer past which a submit wakes userspace; below it userspace
/// polls on a timer. The loader sets it (to the same default unless told otherwise).
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = RING_WAKEUP_BYTES;

#[inline(always)]
pub fn count_drop(reason: u32) {
    if let Some(counter) = DROPS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU while the program runs.
        unsafe { *counter += 1 };
    }
}

/// Flags for a ring buffer submit: no wakeup unless enough data is waiting.
#[inline(always)]
pub fn submit_flags() -> u64 {
    // SAFETY: a read of a constant the loader may have rewritten; volatile keeps it from being folded.
    let threshold = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
