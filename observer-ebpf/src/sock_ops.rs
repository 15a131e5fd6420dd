//! sock_ops: the connection lifecycle. ESTABLISHED (active = we connected, passive = we accepted)
//! starts tracking and sampling a socket; the move to CLOSE ends it. When both sockets of a
//! connection are on this node, they find each other here (`PEERS`) and sample each direction
//! once, at its sender's egress.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_NOEXIST, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_STATE_CB,
        BPF_SOCK_OPS_STATE_CB_FLAG,
    },
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_ktime_get_ns},
    macros::sock_ops,
    programs::SockOpsContext,
};
use observer_common::{
    CloseEvent, ConnState, ListenerKey, OpenEvent, PeerKey, WaitingPeer, conn_flags, drop_reason, event_kind, role,
};

use crate::{
    maps::{CONNS, EVENTS, LISTENERS, OWNERS, PEERS, count_drop, submit_flags},
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
    let (egress_base, ingress_base) = (ops.snd_nxt, ops.rcv_nxt);
    let ends = Ends::read(ctx);
    let (family, local_port, remote_port) = (ends.family, ends.local_port, ends.remote_port);
    let (local_addr, remote_addr) = (bytes(&ends.local), bytes(&ends.remote));

    // The client keys itself by its local address, the server by its remote one: the same key.
    let key = ends.peer_key(netns_cookie, role == role::ACTIVE);
    let (flags, peer_cookie) = pair_with_local_peer(cookie, role, &key);
    let state = ConnState { egress_base, ingress_base, flags, done_hits: 0 };
    if CONNS.insert(cookie, state, 0).is_err() {
        count_drop(drop_reason::CONN_INSERT);
        return;
    }
    // Ask for STATE callbacks so the close is seen; failure only loses the close event,
    // and the LRU map then ages the entry out.
    let _ = ctx.set_cb_flags((ctx.cb_flags() | BPF_SOCK_OPS_STATE_CB_FLAG) as i32);

    let owner = if role == role::ACTIVE {
        // SAFETY: map values are plain data.
        let owner = unsafe { OWNERS.get(cookie) }.copied();
        // Read once, here, and removed now: the close then has no `OWNERS` delete to do, which
        // for the accepted sockets (half of the closes) found nothing, having had no entry.
        if owner.is_some() {
            let _ = OWNERS.remove(cookie);
        }
        owner
    } else {
        let key = ListenerKey { netns_cookie, port: local_port as u32, _pad: 0 };
        // SAFETY: as above.
        unsafe { LISTENERS.get(key) }.copied()
    };

    let Some(mut entry) = EVENTS.reserve::<OpenEvent>(0) else {
        count_drop(drop_reason::OPEN_RESERVE);
        return;
    };
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
        remote_port,
        _pad: 0,
        peer_cookie,
    });
    entry.submit(submit_flags());
}

/// A socket's two addresses and ports, read from the context once and unconditionally: a load
/// whose context offset depends on a branch becomes a modified context pointer, which the
/// verifier refuses. IPv4 is the first word of an address, the other words zero.
struct Ends {
    family: u32,
    local: [u32; 4],
    remote: [u32; 4],
    /// Host byte order.
    local_port: u16,
    remote_port: u16,
}

impl Ends {
    #[inline(always)]
    fn read(ctx: &SockOpsContext) -> Self {
        let family = ctx.family();
        let (mut local, mut remote) = ([0u32; 4], [0u32; 4]);
        if family == AF_INET {
            local[0] = ctx.local_ip4();
            remote[0] = ctx.remote_ip4();
        } else {
            // SAFETY: ctx.ops is valid for the program's run.
            let ops = unsafe { &*ctx.ops };
            copy_words(&mut local, &ops.local_ip6);
            copy_words(&mut remote, &ops.remote_ip6);
        }
        Self {
            family,
            local,
            remote,
            local_port: ctx.local_port() as u16,
            // Network byte order in the upper half of the field on little-endian machines.
            remote_port: u16::from_be((ctx.remote_port() >> 16) as u16),
        }
    }

    /// The `PEERS` key of the local (`local`) or remote address. An IPv4-mapped IPv6 address is
    /// keyed as the IPv4 address it is (a dual-stack server sees an IPv4 client that way), and
    /// loopback addresses are scoped to their network namespace.
    #[inline(always)]
    fn peer_key(&self, netns_cookie: u64, local: bool) -> PeerKey {
        let (w, port) = if local { (self.local, self.local_port) } else { (self.remote, self.remote_port) };
        let mut key = PeerKey { netns_cookie: 0, addr: w, port: u32::from(port), family: self.family };
        // ::ffff:a.b.c.d: bytes 10 and 11 are 0xff, the third word's upper half (little endian).
        if self.family != AF_INET && w[0] == 0 && w[1] == 0 && w[2] == 0xffff_0000 {
            key.family = AF_INET;
            key.addr = [w[3], 0, 0, 0];
        }
        let loopback = if key.family == AF_INET {
            key.addr[0] & 0xff == 127
        } else {
            key.addr[0] == 0 && key.addr[1] == 0 && key.addr[2] == 0 && key.addr[3] == 0x0100_0000
        };
        if loopback {
            key.netns_cookie = netns_cookie;
        }
        key
    }
}

/// An address as the 16 bytes of the open event.
#[inline(always)]
fn bytes(words: &[u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[0..4].copy_from_slice(&words[0].to_ne_bytes());
    out[4..8].copy_from_slice(&words[1].to_ne_bytes());
    out[8..12].copy_from_slice(&words[2].to_ne_bytes());
    out[12..16].copy_from_slice(&words[3].to_ne_bytes());
    out
}

/// Pairs a socket with the other end of its connection when that is on this node too: then the
/// sender's egress already samples every byte, and both sockets stop sampling their ingress.
/// Otherwise the socket waits in `PEERS` (until its peer comes or it closes). Returns the
/// socket's initial `conn_flags` and the cookie of the peer it paired with (0: none), which the
/// open event carries so that userspace joins the two sockets without a table of its own.
///
/// The client comes first (it is established when the SYN-ACK arrives, the server only at the
/// ACK that follows), so it tries a `BPF_NOEXIST` insert, one map operation, and looks the key
/// up only when an entry is there (a server that came first with TCP Fast Open, or an entry the
/// LRU table kept for a socket whose close callback never ran). A waiting entry pairs only with a
/// socket still tracked in `CONNS` and still waiting (its `WAITING_AS_*` bit, cleared when it
/// pairs). The server looks up first: on this node its client is usually waiting.
#[inline(always)]
fn pair_with_local_peer(cookie: u64, role: u32, key: &PeerKey) -> (u32, u64) {
    let waiting = WaitingPeer { cookie, role, _pad: 0 };
    let waiting_flag = if role == role::ACTIVE { conn_flags::WAITING_AS_CLIENT } else { conn_flags::WAITING_AS_SERVER };
    if role == role::ACTIVE && PEERS.insert(key, waiting, u64::from(BPF_NOEXIST)).is_ok() {
        return (waiting_flag, 0);
    }
    // SAFETY: map values are plain data.
    if let Some(found) = unsafe { PEERS.get(key) }.copied()
        && found.role != role
        && found.cookie != cookie
        && let Some(peer) = CONNS.get_ptr_mut(found.cookie)
        // SAFETY: a pointer into the map value, valid while the program runs.
        && unsafe { (*peer).flags } & (conn_flags::WAITING_AS_CLIENT | conn_flags::WAITING_AS_SERVER) != 0
    {
        // SAFETY: as above; a racing update of the flags at worst samples the peer's ingress once
        // more (userspace drops the copy).
        unsafe {
            (*peer).flags = ((*peer).flags | conn_flags::INGRESS_DONE)
                & !(conn_flags::WAITING_AS_CLIENT | conn_flags::WAITING_AS_SERVER);
        }
        let _ = PEERS.remove(key);
        return (conn_flags::INGRESS_DONE, found.cookie);
    }
    if PEERS.insert(key, waiting, 0).is_err() {
        // Not paired: both sockets sample and are reported as two legs, one seen from each end.
        return (0, 0);
    }
    (waiting_flag, 0)
}

/// Copy an IPv6 address out of the context one word at a time: the verifier refuses a load
/// through a context pointer moved to the array's start ("dereference of modified ctx ptr").
#[inline(always)]
fn copy_words(dst: &mut [u32; 4], words: &[u32; 4]) {
    // SAFETY: each read is a 4-byte context field at a constant offset.
    unsafe {
        dst[0] = core::ptr::read_volatile(&words[0]);
        dst[1] = core::ptr::read_volatile(&words[1]);
        dst[2] = core::ptr::read_volatile(&words[2]);
        dst[3] = core::ptr::read_volatile(&words[3]);
    }
}

/// A socket that closes unpaired leaves `PEERS`, so that a later socket reusing its address
/// cannot pair with it.
#[inline(always)]
fn forget_waiting_peer(ctx: &SockOpsContext, cookie: u64, flags: u32) {
    // SAFETY: the helper accepts the sock_ops context.
    let netns_cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    let key = Ends::read(ctx).peer_key(netns_cookie, flags & conn_flags::WAITING_AS_CLIENT != 0);
    // SAFETY: map values are plain data.
    if unsafe { PEERS.get(key) }.is_some_and(|w| w.cookie == cookie) {
        let _ = PEERS.remove(key);
    }
}

fn on_close(ctx: &SockOpsContext) {
    // SAFETY: the helper accepts the sock_ops context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: map values are plain data.
    let flags = match unsafe { CONNS.get(cookie) } {
        Some(state) => state.flags,
        // Only sockets that had an entry asked for this callback: the full table evicted it.
        None => {
            count_drop(drop_reason::CONN_EVICTED);
            conn_flags::EVICTED
        }
    };
    if flags & (conn_flags::WAITING_AS_CLIENT | conn_flags::WAITING_AS_SERVER) != 0 {
        forget_waiting_peer(ctx, cookie, flags);
    }
    let _ = CONNS.remove(cookie);
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
