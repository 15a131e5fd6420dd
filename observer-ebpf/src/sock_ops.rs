//! sock_ops: the connection lifecycle. ESTABLISHED (active = we connected, passive = we accepted)
//! starts tracking and sampling a socket; the move to CLOSE ends it.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG,
    },
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_ktime_get_ns},
    macros::sock_ops,
    programs::SockOpsContext,
};
use observer_common::{CloseEvent, ConnState, ListenerKey, OpenEvent, drop_reason, event_kind, role};

use crate::{
    maps::{CONNS, EVENTS, LISTENERS, OWNERS, count_drop, submit_flags},
    owner,
};

const AF_INET: u32 = 2;
/// `TCP_CLOSE` in the kernel's TCP state enum.
const TCP_CLOSE: u32 = 7;

#[sock_ops]
pub fn observer_sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => on_established(&ctx, role::ACTIVE),
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB => on_established(&ctx, role::PASSIVE),
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == TCP_CLOSE => on_close(&ctx),
        _ => {}
    }
    // sock_ops return values are ignored for these callbacks.
    0
}

fn on_established(ctx: &SockOpsContext, role: u32) {
    // SAFETY: the helpers accept the sock_ops context; ctx.ops is valid for the program's run.
    let (cookie, netns_cookie, ops) =
        unsafe { (bpf_get_socket_cookie(ctx.as_ptr()), bpf_get_netns_cookie(ctx.as_ptr()), &*ctx.ops) };
    let state = ConnState { egress_base: ops.snd_nxt, ingress_base: ops.rcv_nxt, flags: 0, _pad: 0 };
    if CONNS.insert(cookie, state, 0).is_err() {
        count_drop(drop_reason::CONN_INSERT);
        return;
    }
    // Ask for STATE callbacks so the close is seen; failure only loses the close event,
    // and the LRU map then ages the entry out.
    let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);

    let local_port = ctx.local_port() as u16;
    let owner = if role == role::ACTIVE {
        // SAFETY: map values are plain data.
        unsafe { OWNERS.get(cookie) }.copied()
    } else {
        let key = ListenerKey { netns_cookie, port: local_port as u32, _pad: 0 };
        // SAFETY: as above.
        unsafe { LISTENERS.get(key) }.copied()
    };

    let Some(mut entry) = EVENTS.reserve::<OpenEvent>(0) else {
        count_drop(drop_reason::OPEN_RESERVE);
        return;
    };
    let family = ctx.family();
    let mut local_addr = [0u8; 16];
    let mut remote_addr = [0u8; 16];
    if family == AF_INET {
        local_addr[..4].copy_from_slice(&ctx.local_ip4().to_ne_bytes());
        remote_addr[..4].copy_from_slice(&ctx.remote_ip4().to_ne_bytes());
    } else {
        // SAFETY: ctx.ops is valid for the program's run.
        let ops = unsafe { &*ctx.ops };
        copy_ip6(&mut local_addr, &ops.local_ip6);
        copy_ip6(&mut remote_addr, &ops.remote_ip6);
    }
    entry.write(OpenEvent {
        header: observer_common::EventHeader {
            kind: event_kind::OPEN,
            _pad: 0,
            cookie,
            // SAFETY: helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        netns_cookie,
        owner: owner.unwrap_or(owner::UNKNOWN),
        family,
        role,
        local_addr,
        remote_addr,
        local_port,
        // Network byte order in the upper half of the field on little-endian machines.
        remote_port: u16::from_be((ctx.remote_port() >> 16) as u16),
        _pad: 0,
    });
    entry.submit(submit_flags());
}

/// Copy an IPv6 address out of the context one word at a time: the verifier refuses a load
/// through a context pointer moved to the array's start ("dereference of modified ctx ptr").
#[inline(always)]
fn copy_ip6(dst: &mut [u8; 16], words: &[u32; 4]) {
    // SAFETY: each read is a 4-byte context field at a constant offset.
    let w = unsafe {
        [
            core::ptr::read_volatile(&words[0]),
            core::ptr::read_volatile(&words[1]),
            core::ptr::read_volatile(&words[2]),
            core::ptr::read_volatile(&words[3]),
        ]
    };
    dst[0..4].copy_from_slice(&w[0].to_ne_bytes());
    dst[4..8].copy_from_slice(&w[1].to_ne_bytes());
    dst[8..12].copy_from_slice(&w[2].to_ne_bytes());
    dst[12..16].copy_from_slice(&w[3].to_ne_bytes());
}

fn on_close(ctx: &SockOpsContext) {
    // SAFETY: the helper accepts the sock_ops context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: map values are plain data.
    let flags = unsafe { CONNS.get(cookie) }.map_or(0, |state| state.flags);
    let _ = CONNS.remove(cookie);
    let _ = OWNERS.remove(cookie);
    let Some(mut entry) = EVENTS.reserve::<CloseEvent>(0) else {
        count_drop(drop_reason::CLOSE_RESERVE);
        return;
    };
    entry.write(CloseEvent {
        header: observer_common::EventHeader {
            kind: event_kind::CLOSE,
            _pad: 0,
            cookie,
            // SAFETY: helper without arguments.
            ktime_ns: unsafe { bpf_ktime_get_ns() },
        },
        flags,
        _pad: 0,
    });
    entry.submit(submit_flags());
}
