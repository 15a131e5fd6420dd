//! Empty cgroup_skb programs: the reference the real ones are measured against. The daemon loads
//! and attaches them only for `observer run --attach-baseline` (a hidden diagnostic), next to the
//! real programs at the same cgroup, so the kernel's BPF stats time both on the same packets in
//! the same run: what the observer costs a packet is its programs' run time over these.
//!
//! Nothing may be added here: the point is a program that does nothing but return.

use aya_ebpf::{macros::cgroup_skb, programs::SkBuffContext};

/// cgroup_skb programs return 1 to let the packet pass.
const PASS: i32 = 1;

#[cgroup_skb]
pub fn observer_noop_egress(_ctx: SkBuffContext) -> i32 {
    PASS
}

#[cgroup_skb]
pub fn observer_noop_ingress(_ctx: SkBuffContext) -> i32 {
    PASS
}
