//! Kernel programs of the observer, one file per attach point. All attach at the cgroup v2 root,
//! so one attachment covers every pod, every network namespace and the loopback legs.
#![no_std]
#![no_main]

mod baseline;
mod maps;
mod owner;
mod skb;
mod sock_create;
mod sock_ops;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a program the verifier accepted: the verifier rejects code that could get here.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
