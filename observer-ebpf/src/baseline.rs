//! Empty programs: the reference the real ones are measured against. The daemon loads and
//! attaches them only for two hidden diagnostics:
//!
//! - `observer run --attach-baseline`: the empty cgroup_skb programs, next to the real programs at
//!   the same cgroup, so the kernel's BPF stats time both on the same packets in the same run:
//!   what the observer costs a packet is its programs' run time over these;
//! - `observer run --baseline-only`: an empty program at each hook the observer uses per
//!   connection (sock_create, sock_ops, cgroup_skb egress and ingress) and nothing real, so a
//!   load generator measures the floor: what having any program at those hooks costs a
//!   connection. The post_bind hooks are left out: they run once per bind, not per connection.
//!
//! Nothing may be added here: the point is a program that does nothing but return. The empty
//! sock_ops program in particular sets no callback flags, so it runs only at the callbacks the
//! kernel makes to every sock_ops program (the real one also asks for the state changes).

use aya_ebpf::{
    macros::{cgroup_skb, cgroup_sock, sock_ops},
    programs::{SkBuffContext, SockContext, SockOpsContext},
};

/// cgroup_skb programs return 1 to let the packet pass; cgroup/sock_create ones to allow the socket.
const PASS: i32 = 1;

#[cgroup_skb]
pub fn observer_noop_egress(_ctx: SkBuffContext) -> i32 {
    PASS
}

#[cgroup_skb]
pub fn observer_noop_ingress(_ctx: SkBuffContext) -> i32 {
    PASS
}

#[cgroup_sock(sock_create)]
pub fn observer_noop_sock_create(_ctx: SockContext) -> i32 {
    PASS
}

/// 1: the kernel's "allowed" (0 would make it see -EPERM, which it ignores for these callbacks
/// but is not nothing).
#[sock_ops]
pub fn observer_noop_sock_ops(_ctx: SockOpsContext) -> u32 {
    1
}
