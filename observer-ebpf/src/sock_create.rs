//! cgroup/sock_create and cgroup/post_bind{4,6}: record who owns each TCP socket.
//!
//! Socket creation and bind run in the calling process, so pid, uid and comm are the owner's.
//! Accepted sockets are created by the kernel in softirq context and never pass through here:
//! they inherit the owner recorded when their listener was bound (`LISTENERS`).

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::cgroup_sock,
    programs::SockContext,
};
use observer_common::ListenerKey;

use crate::{
    maps::{LISTENERS, OWNERS},
    owner,
};

const SOCK_STREAM: u32 = 1;
const IPPROTO_TCP: u32 = 6;
/// cgroup sock programs return 1 to let the operation proceed.
const ALLOW: i32 = 1;

fn is_tcp(ctx: &SockContext) -> bool {
    // SAFETY: the kernel hands us a valid bpf_sock for the program's lifetime.
    let sock = unsafe { &*ctx.sock };
    sock.type_ == SOCK_STREAM && sock.protocol == IPPROTO_TCP
}

#[cgroup_sock(sock_create)]
pub fn observer_sock_create(ctx: SockContext) -> i32 {
    if is_tcp(&ctx) {
        // SAFETY: the helper accepts the cgroup sock context.
        let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
        // A full LRU map evicts the oldest entry; an insert cannot fail for want of space.
        let _ = OWNERS.insert(cookie, owner::current(), 0);
    }
    ALLOW
}

#[cgroup_sock(post_bind4)]
pub fn observer_post_bind4(ctx: SockContext) -> i32 {
    record_listener(&ctx);
    ALLOW
}

#[cgroup_sock(post_bind6)]
pub fn observer_post_bind6(ctx: SockContext) -> i32 {
    record_listener(&ctx);
    ALLOW
}

fn record_listener(ctx: &SockContext) {
    if !is_tcp(ctx) {
        return;
    }
    // SAFETY: valid bpf_sock, see is_tcp.
    let port = unsafe { (*ctx.sock).src_port };
    // SAFETY: the helper accepts the cgroup sock context.
    let netns_cookie = unsafe { bpf_get_netns_cookie(ctx.as_ptr()) };
    let key = ListenerKey { netns_cookie, port, _pad: 0 };
    let _ = LISTENERS.insert(key, owner::current(), 0);
}
