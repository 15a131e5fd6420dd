//! cgroup_skb egress and ingress: copy the first bytes of each direction of a tracked connection
//! (the handshake sample) with their offset in the TCP stream, up to `SAMPLE_BUDGET`.
//!
//! Once a direction's budget is spent, or userspace has marked the connection done, a packet
//! costs one map lookup and a flag test. Application data beyond the budget is never copied.

use core::{ffi::c_void, ptr::addr_of_mut};

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_socket_cookie, bpf_ktime_get_ns, bpf_skb_load_bytes},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use observer_common::{
    MAX_CHUNKS_PER_PACKET, SAMPLE_BUDGET, SAMPLE_CHUNK, SampleEvent, conn_flags, direction, drop_reason, event_kind,
};

use crate::maps::{CONNS, EVENTS, count_drop, submit_flags};

/// cgroup_skb programs return 1 to let the packet pass; the observer never drops traffic.
const PASS: i32 = 1;
const IPPROTO_TCP: u8 = 6;
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
    // SAFETY: the helper accepts the skb context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    let Some(state) = CONNS.get_ptr_mut(cookie) else {
        return;
    };
    // SAFETY: a pointer into the map value, valid while the program runs.
    let state = unsafe { &mut *state };
    let done_bit = if dir == direction::EGRESS { conn_flags::EGRESS_DONE } else { conn_flags::INGRESS_DONE };
    if state.flags & done_bit != 0 {
        return;
    }
    let Some((payload_offset, seq)) = tcp_payload(ctx) else {
        return;
    };
    let skb_len = ctx.len();
    if payload_offset >= skb_len {
        return; // a pure ACK, SYN or FIN
    }
    let segment_len = skb_len - payload_offset;
    let base = if dir == direction::EGRESS { state.egress_base } else { state.ingress_base };
    let offset = seq.wrapping_sub(base);
    if offset >= SAMPLE_BUDGET {
        // Past the budget (or, wrapped, before the first payload byte: nothing to sample there).
        if offset < u32::MAX / 2 {
            state.flags |= done_bit;
        }
        return;
    }
    let wanted = core::cmp::min(segment_len, SAMPLE_BUDGET - offset);
    copy_chunks(ctx, cookie, dir, offset, payload_offset, wanted, segment_len);
    if offset + wanted >= SAMPLE_BUDGET {
        state.flags |= done_bit;
    }
}

/// Offset of the TCP payload from the start of the IP header, and the segment's sequence number.
/// The headers are read straight from the packet when they are in its linear part (a locally
/// made or received TCP segment's are), which costs no helper call; otherwise through
/// `bpf_skb_load_bytes`.
#[inline(always)]
fn tcp_payload(ctx: &SkBuffContext) -> Option<(u32, u32)> {
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
                return None;
            }
            usize::from(first & 0x0f) * 4
        }
        6 => {
            if data + IPV6_HEADER_LEN as usize > end {
                return tcp_payload_loaded(ctx);
            }
            if unsafe { *((data + 6) as *const u8) } != IPPROTO_TCP {
                count_drop(drop_reason::IPV6_EXT);
                return None;
            }
            IPV6_HEADER_LEN as usize
        }
        _ => {
            count_drop(drop_reason::HEADER);
            return None;
        }
    };
    let tcp = data + ip_len;
    if tcp + TCP_HEADER_LEN > end {
        return tcp_payload_loaded(ctx);
    }
    let (seq, data_offset) =
        unsafe { (core::ptr::read_unaligned((tcp + 4) as *const u32), *((tcp + 12) as *const u8)) };
    Some((ip_len as u32 + u32::from(data_offset >> 4) * 4, u32::from_be(seq)))
}

/// [`tcp_payload`] for headers outside the packet's linear part, through `bpf_skb_load_bytes`.
#[inline(always)]
fn tcp_payload_loaded(ctx: &SkBuffContext) -> Option<(u32, u32)> {
    let Ok(first) = ctx.load::<u8>(0) else {
        count_drop(drop_reason::HEADER);
        return None;
    };
    let ip_len = match first >> 4 {
        4 => {
            let protocol = ctx.load::<u8>(9).ok()?;
            if protocol != IPPROTO_TCP {
                return None;
            }
            u32::from(first & 0x0f) * 4
        }
        6 => {
            let next = ctx.load::<u8>(6).ok()?;
            if next != IPPROTO_TCP {
                count_drop(drop_reason::IPV6_EXT);
                return None;
            }
            IPV6_HEADER_LEN
        }
        _ => {
            count_drop(drop_reason::HEADER);
            return None;
        }
    };
    let (Ok(seq), Ok(data_offset)) = (ctx.load::<u32>(ip_len as usize + 4), ctx.load::<u8>(ip_len as usize + 12))
    else {
        count_drop(drop_reason::HEADER);
        return None;
    };
    Some((ip_len + u32::from(data_offset >> 4) * 4, u32::from_be(seq)))
}

#[inline(always)]
fn copy_chunks(
    ctx: &SkBuffContext,
    cookie: u64,
    dir: u32,
    offset: u32,
    payload_offset: u32,
    wanted: u32,
    segment_len: u32,
) {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // Once a packet: its few records cannot move the ring far past the wakeup threshold.
    let flags = submit_flags();
    for i in 0..MAX_CHUNKS_PER_PACKET as u32 {
        let done = i * SAMPLE_CHUNK as u32;
        if done >= wanted {
            break;
        }
        // Bounded as [1, SAMPLE_CHUNK] in a form the verifier follows (docs/KERNEL.md, "Verifier").
        let mut len = wanted - done - 1;
        if len > SAMPLE_CHUNK as u32 - 1 {
            len = SAMPLE_CHUNK as u32 - 1;
        }
        let len = len + 1;
        let Some(mut entry) = EVENTS.reserve::<SampleEvent>(0) else {
            count_drop(drop_reason::SAMPLE_RESERVE);
            return;
        };
        let event = entry.as_mut_ptr();
        // SAFETY: `event` points at a reserved, writable SampleEvent; fields are written in place
        // because the record is larger than the BPF stack.
        let loaded = unsafe {
            addr_of_mut!((*event).header.kind).write(event_kind::SAMPLE);
            addr_of_mut!((*event).header._pad).write(0);
            addr_of_mut!((*event).header.cookie).write(cookie);
            addr_of_mut!((*event).header.ktime_ns).write(now);
            addr_of_mut!((*event).direction).write(dir);
            addr_of_mut!((*event).offset).write(offset + done);
            addr_of_mut!((*event).len).write(len);
            addr_of_mut!((*event).segment_len).write(segment_len);
            bpf_skb_load_bytes(
                ctx.as_ptr() as *const c_void,
                payload_offset + done,
                addr_of_mut!((*event).data) as *mut c_void,
                len,
            )
        };
        if loaded < 0 {
            count_drop(drop_reason::LOAD_BYTES);
            entry.discard(0);
            return;
        }
        entry.submit(flags);
    }
}
