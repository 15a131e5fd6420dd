//! cgroup_skb egress and ingress: copy the first bytes of each direction of a tracked connection
//! (the handshake sample) with their offset in the TCP stream, up to `SAMPLE_BUDGET`.
//!
//! Once a direction's budget is spent, or userspace has marked the connection done, a packet
//! costs one socket-local storage lookup and a flag test (`DONE`, a cache of `CONNS`'s done
//! bits) once the socket has sent or received `DONE_HITS_TO_CACHE` packets that way; before,
//! also the cookie and the `CONNS` lookup. A segment without payload returns after the header
//! reads, before any helper call. Application data beyond the budget is never copied.
//! docs/KERNEL.md, "The after-budget path", says why each step is where it is.

use core::{ffi::c_void, ptr::addr_of_mut};

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_SK_STORAGE_GET_F_CREATE, bpf_sock},
    helpers::{bpf_get_socket_cookie, bpf_sk_storage_get, bpf_skb_load_bytes},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use observer_common::{
    DONE_HITS_TO_CACHE, LARGE_SAMPLE, MEDIUM_SAMPLE, SAMPLE_BUDGET, SAMPLE_CHUNK, SMALL_SAMPLE, SampleRecord,
    conn_flags, direction, drop_reason, event_kind,
};

use crate::maps::{CONNS, DONE, EVENTS, count_drop, submit_flags};

/// cgroup_skb programs return 1 to let the packet pass; the observer never drops traffic.
const PASS: i32 = 1;
const IPPROTO_TCP: u8 = 6;
/// [`tcp_payload`]'s error for a packet that is not TCP: nothing to count.
const NOT_TCP: u32 = u32::MAX;
/// `TCP_ESTABLISHED` in the kernel's TCP state enum (`bpf_sock::state`).
const TCP_ESTABLISHED: u32 = 1;
/// Fixed IPv6 header; extension headers are not walked (counted as `ipv6_ext_header`).
const IPV6_HEADER_LEN: u32 = 40;
/// The fixed IPv4 header, without options.
const IPV4_HEADER_LEN: usize = 20;
/// The fixed TCP header: sequence number and data offset are within it.
const TCP_HEADER_LEN: usize = 20;

#[cgroup_skb]
pub fn observer_skb_egress(ctx: SkBuffContext) -> i32 {
    sample(&ctx, direction::EGRESS);
    PASS
}

#[cgroup_skb]
pub fn observer_skb_ingress(ctx: SkBuffContext) -> i32 {
    sample(&ctx, direction::INGRESS);
    PASS
}

#[inline(always)]
fn sample(ctx: &SkBuffContext, dir: u32) {
    let done_bit = if dir == direction::EGRESS { conn_flags::EGRESS_DONE } else { conn_flags::INGRESS_DONE };
    // A pure ACK, SYN or FIN has nothing to sample, whichever socket it is, and other protocols
    // are never tracked: they return after the header reads, straight from the packet, before
    // any helper call.
    let header = tcp_payload(ctx);
    let skb_len = ctx.len();
    match header {
        Ok((payload_offset, _)) if payload_offset >= skb_len => return,
        Err(NOT_TCP) => return,
        _ => {}
    }
    // SAFETY: a context field of the running program's skb.
    let sk = unsafe { (*ctx.skb.skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return;
    }
    // No `bpf_sk_fullsock` first: the storage helper returns null for a request or time-wait
    // socket, which are never tracked.
    let cached = done_slot(sk, 0);
    // SAFETY: a socket storage value, valid while the program runs.
    if !cached.is_null() && unsafe { *cached } & done_bit != 0 {
        return;
    }
    // SAFETY: the helper accepts the skb context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(state) = CONNS.get_ptr_mut(cookie) else {
        // Established without an entry (before the programs were attached, or evicted): it
        // never gets one, so it is as good as done. Earlier states may still get one.
        // SAFETY: as above.
        if unsafe { (*sk).state } == TCP_ESTABLISHED {
            remember_done(sk, cached, conn_flags::ALL_DONE);
        }
        return;
    };
    // SAFETY: a pointer into the map value, valid while the program runs.
    let state = unsafe { &mut *state };
    if state.flags & done_bit != 0 {
        if state.done_hits < DONE_HITS_TO_CACHE {
            state.done_hits += 1;
        } else {
            remember_done(sk, cached, state.flags & conn_flags::ALL_DONE);
        }
        return;
    }
    let (payload_offset, seq) = match header {
        Ok(header) => header,
        // Counted only for tracked sockets: what the observer failed to sample.
        Err(reason) => {
            count_drop(reason);
            return;
        }
    };
    let segment_len = skb_len - payload_offset;
    let base = if dir == direction::EGRESS { state.egress_base } else { state.ingress_base };
    let offset = seq.wrapping_sub(base);
    if offset >= SAMPLE_BUDGET {
        // Past the budget (or, wrapped, before the first payload byte: nothing to sample there).
        if offset < u32::MAX / 2 {
            state.flags |= done_bit;
            remember_done(sk, cached, state.flags & conn_flags::ALL_DONE);
        }
        return;
    }
    let wanted = core::cmp::min(segment_len, SAMPLE_BUDGET - offset);
    copy_sample(ctx, cookie, dir, offset, payload_offset, wanted, segment_len);
    if offset + wanted >= SAMPLE_BUDGET {
        state.flags |= done_bit;
        remember_done(sk, cached, state.flags & conn_flags::ALL_DONE);
    }
}

/// The socket's `DONE` slot, or null when it has none (and `flags` lacks
/// `BPF_SK_STORAGE_GET_F_CREATE`, or the kernel could not allocate one).
#[inline(always)]
fn done_slot(sk: *mut bpf_sock, flags: u64) -> *mut u32 {
    let map = core::ptr::from_ref(&DONE).cast_mut().cast::<c_void>();
    // SAFETY: `sk` is the skb's socket (the helper checks it is a full one), `map` the socket
    // storage map.
    unsafe { bpf_sk_storage_get(map, sk.cast(), core::ptr::null_mut(), flags) }.cast::<u32>()
}

/// Caches done bits with the socket. Without memory for the slot the next packet just takes the
/// longer way through `CONNS` again: nothing is lost.
#[inline(always)]
fn remember_done(sk: *mut bpf_sock, cached: *mut u32, bits: u32) {
    let slot = if cached.is_null() { done_slot(sk, u64::from(BPF_SK_STORAGE_GET_F_CREATE)) } else { cached };
    if !slot.is_null() {
        // SAFETY: a socket storage value, valid while the program runs; bits are only added.
        unsafe { *slot |= bits };
    }
}

/// Offset of the TCP payload from the start of the IP header, and the segment's sequence number;
/// or the `drop_reason` of a packet whose headers cannot be read (`NOT_TCP`: not a drop).
/// The headers are read straight from the packet when they are in its linear part (a locally
/// made or received TCP segment's are), which costs no helper call; otherwise through
/// `bpf_skb_load_bytes`.
#[inline(always)]
fn tcp_payload(ctx: &SkBuffContext) -> Result<(u32, u32), u32> {
    // SAFETY: data and data_end are context fields of the running program's skb.
    let (data, end) = unsafe { ((*ctx.skb.skb).data as usize, (*ctx.skb.skb).data_end as usize) };
    // Both families' headers are at least this long. (A check for one byte would be compiled
    // as `data >= end`, a form the verifier does not take as a bound.)
    if data + IPV4_HEADER_LEN > end {
        return tcp_payload_loaded(ctx);
    }
    // SAFETY (every read below): the bytes are between data and data_end, checked just before.
    let first = unsafe { *(data as *const u8) };
    let ip_len = match first >> 4 {
        4 => {
            if unsafe { *((data + 9) as *const u8) } != IPPROTO_TCP {
                return Err(NOT_TCP);
            }
            usize::from(first & 0x0f) * 4
        }
        6 => {
            if data + IPV6_HEADER_LEN as usize > end {
                return tcp_payload_loaded(ctx);
            }
            if unsafe { *((data + 6) as *const u8) } != IPPROTO_TCP {
                return Err(drop_reason::IPV6_EXT);
            }
            IPV6_HEADER_LEN as usize
        }
        _ => {
            return Err(drop_reason::HEADER);
        }
    };
    let tcp = data + ip_len;
    if tcp + TCP_HEADER_LEN > end {
        return tcp_payload_loaded(ctx);
    }
    let (seq, data_offset) =
        unsafe { (core::ptr::read_unaligned((tcp + 4) as *const u32), *((tcp + 12) as *const u8)) };
    Ok((ip_len as u32 + u32::from(data_offset >> 4) * 4, u32::from_be(seq)))
}

/// [`tcp_payload`] for headers outside the packet's linear part, through `bpf_skb_load_bytes`.
#[inline(always)]
fn tcp_payload_loaded(ctx: &SkBuffContext) -> Result<(u32, u32), u32> {
    let Ok(first) = ctx.load::<u8>(0) else {
        return Err(drop_reason::HEADER);
    };
    let ip_len = match first >> 4 {
        4 => {
            if ctx.load::<u8>(9).map_err(|_| drop_reason::HEADER)? != IPPROTO_TCP {
                return Err(NOT_TCP);
            }
            u32::from(first & 0x0f) * 4
        }
        6 => {
            if ctx.load::<u8>(6).map_err(|_| drop_reason::HEADER)? != IPPROTO_TCP {
                return Err(drop_reason::IPV6_EXT);
            }
            IPV6_HEADER_LEN
        }
        _ => {
            return Err(drop_reason::HEADER);
        }
    };
    let (Ok(seq), Ok(data_offset)) = (ctx.load::<u32>(ip_len as usize + 4), ctx.load::<u8>(ip_len as usize + 12))
    else {
        return Err(drop_reason::HEADER);
    };
    Ok((ip_len + u32::from(data_offset >> 4) * 4, u32::from_be(seq)))
}

/// One record of the smallest size class that holds the `wanted` (1..=`SAMPLE_BUDGET`) bytes: a
/// segment never carries more sampled bytes than the budget, so one reserve and one copy per packet.
#[inline(always)]
fn copy_sample(
    ctx: &SkBuffContext,
    cookie: u64,
    dir: u32,
    offset: u32,
    payload_offset: u32,
    wanted: u32,
    segment_len: u32,
) {
    // Once a packet: its one record cannot move the ring far past the wakeup threshold.
    let flags = submit_flags();
    if wanted <= SMALL_SAMPLE as u32 {
        record::<SMALL_SAMPLE>(ctx, cookie, dir, offset, payload_offset, wanted, segment_len, flags);
    } else if wanted <= MEDIUM_SAMPLE as u32 {
        record::<MEDIUM_SAMPLE>(ctx, cookie, dir, offset, payload_offset, wanted, segment_len, flags);
    } else if wanted <= LARGE_SAMPLE as u32 {
        record::<LARGE_SAMPLE>(ctx, cookie, dir, offset, payload_offset, wanted, segment_len, flags);
    } else {
        record::<SAMPLE_CHUNK>(ctx, cookie, dir, offset, payload_offset, wanted, segment_len, flags);
    }
}

/// One sample record of the size class `N` holding `len` (1..=`N`) bytes from `from` in the
/// packet. A record that cannot be made is counted.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn record<const N: usize>(
    ctx: &SkBuffContext,
    cookie: u64,
    dir: u32,
    offset: u32,
    from: u32,
    len: u32,
    segment_len: u32,
    flags: u64,
) {
    // Bounded again as [1, N], in the form the verifier follows, for this class's buffer. The
    // caller's class test already implies the bound, so the compiler would drop a plain clamp
    // and leave the verifier a length it cannot bound: the cap is read through a volatile load,
    // which the compiler cannot see through and the verifier sees as the constant it is (64
    // bits wide: the verifier keeps the value of an 8-byte stack slot, not of a 4-byte one).
    let cap = N as u64 - 1;
    // SAFETY: a read of a local.
    let cap = unsafe { core::ptr::read_volatile(&cap) };
    let mut len = u64::from(len) - 1;
    if len > cap {
        len = cap;
    }
    let len = (len + 1) as u32;
    let Some(mut entry) = EVENTS.reserve::<SampleRecord<N>>(0) else {
        count_drop(drop_reason::SAMPLE_RESERVE);
        return;
    };
    let event = entry.as_mut_ptr();
    // SAFETY: `event` points at a reserved, writable record; fields are written in place
    // because the record is larger than the BPF stack.
    let loaded = unsafe {
        addr_of_mut!((*event).header.kind).write(event_kind::SAMPLE);
        addr_of_mut!((*event).header._pad).write(0);
        addr_of_mut!((*event).header.cookie).write(cookie);
        // No clock read per packet: the daemon times a connection by its open and close events.
        addr_of_mut!((*event).header.ktime_ns).write(0);
        addr_of_mut!((*event).direction).write(dir);
        addr_of_mut!((*event).offset).write(offset);
        addr_of_mut!((*event).len).write(len);
        addr_of_mut!((*event).segment_len).write(segment_len);
        bpf_skb_load_bytes(ctx.as_ptr() as *const c_void, from, addr_of_mut!((*event).data) as *mut c_void, len)
    };
    if loaded < 0 {
        count_drop(drop_reason::LOAD_BYTES);
        entry.discard(0);
        return;
    }
    entry.submit(flags);
}
