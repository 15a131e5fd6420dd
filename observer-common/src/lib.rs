//! The kernel/user ABI of the observer: event records written to the ring buffer, map values,
//! map names and the sampling limits. Nothing else lives here.
//!
//! Every type is `#[repr(C)]` with its padding spelled out, and its size is pinned by a
//! compile-time assertion, so a change on one side that the other side does not see fails the build.
#![no_std]

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;

/// Most bytes of payload one sample record carries: the whole budget, since a segment carries
/// at most `SAMPLE_BUDGET` sampled bytes. Each packet's sample is one record (one ring reserve
/// and one copy), of the smallest size class that holds it: `SMALL_SAMPLE`, `MEDIUM_SAMPLE`,
/// `LARGE_SAMPLE` or this.
pub const SAMPLE_CHUNK: usize = SAMPLE_BUDGET as usize;

/// Bytes sampled per socket and direction, counted from the first payload byte (the TCP
/// sequence number after the handshake). 4 KiB holds a 2 KiB ClientHello, the ChangeCipherSpec and
/// the record headers of the client's second flight; on the server side the ServerHello (including a
/// post-quantum key share) and the first records after it. Nothing beyond this offset is ever copied.
pub const SAMPLE_BUDGET: u32 = 4096;

/// Ring buffer size. A new plaintext connection with both ends on this node costs about 1 KiB of
/// it (2 opens, 2 closes, a small sample per direction); a TLS one about 7 KiB (its handshake
/// records are full-size samples). 8 MiB is about 0.4 s of 20k new plaintext connections per
/// second, or 0.6 s of 2k TLS handshakes, if userspace stalls. It is mapped twice into the
/// daemon (the kernel maps the data area twice so that records never wrap), so it counts 16 MiB
/// of the daemon's RSS.
pub const RING_BYTES: u32 = 8 << 20;
/// Bytes waiting in the ring buffer past which a submit wakes userspace; below it userspace
/// drains on its poll timer. A wakeup costs the submitting program microseconds, so most
/// submits must not wake (docs/KERNEL.md, "Ring buffer wakeups").
pub const RING_WAKEUP_BYTES: u64 = 512 * 1024;

/// Connections tracked in the kernel at once (LRU: the oldest is evicted first).
pub const MAX_CONNECTIONS: u32 = 65_536;

/// Names of the maps and programs, shared so userspace does not repeat string literals.
pub mod names {
    pub const EVENTS: &str = "EVENTS";
    pub const CONNS: &str = "CONNS";
    pub const OWNERS: &str = "OWNERS";
    pub const LISTENERS: &str = "LISTENERS";
    pub const DROPS: &str = "DROPS";
    pub const PEERS: &str = "PEERS";
    pub const WAKEUP_BYTES: &str = "WAKEUP_BYTES";
    pub const SOCK_OPS: &str = "observer_sock_ops";
    pub const SOCK_CREATE: &str = "observer_sock_create";
    pub const POST_BIND4: &str = "observer_post_bind4";
    pub const POST_BIND6: &str = "observer_post_bind6";
    pub const SKB_EGRESS: &str = "observer_skb_egress";
    pub const SKB_INGRESS: &str = "observer_skb_ingress";
    /// The empty programs of `observer-ebpf/src/baseline.rs` (hidden diagnostics only).
    pub const NOOP_EGRESS: &str = "observer_noop_egress";
    pub const NOOP_INGRESS: &str = "observer_noop_ingress";
    pub const NOOP_SOCK_CREATE: &str = "observer_noop_sock_create";
    pub const NOOP_SOCK_OPS: &str = "observer_noop_sock_ops";
}

/// `EventHeader::kind` values.
pub mod event_kind {
    /// An [`OpenEvent`](super::OpenEvent): a TCP socket reached ESTABLISHED.
    pub const OPEN: u32 = 1;
    /// A [`SampleEvent`](super::SampleEvent): handshake bytes from one segment.
    pub const SAMPLE: u32 = 2;
    /// A [`CloseEvent`](super::CloseEvent): the socket reached CLOSE.
    pub const CLOSE: u32 = 3;
}

/// Which side of the connection the socket is on.
pub mod role {
    /// The socket connected (sock_ops ACTIVE_ESTABLISHED): it is the client.
    pub const ACTIVE: u32 = 1;
    /// The socket was accepted (sock_ops PASSIVE_ESTABLISHED): it is the server.
    pub const PASSIVE: u32 = 2;
}

/// Direction of a sampled segment, seen from the socket.
pub mod direction {
    /// Sent by this socket (cgroup_skb egress).
    pub const EGRESS: u32 = 1;
    /// Received by this socket (cgroup_skb ingress).
    pub const INGRESS: u32 = 2;
}

/// `ConnState::flags` bits.
pub mod conn_flags {
    /// Egress sampling is over (budget spent, or userspace said so).
    pub const EGRESS_DONE: u32 = 1;
    /// Ingress sampling is over.
    pub const INGRESS_DONE: u32 = 2;
    /// Both directions; userspace sets this when the classification no longer needs bytes.
    pub const ALL_DONE: u32 = EGRESS_DONE | INGRESS_DONE;
    /// This socket waits in `PEERS` for its peer, keyed by its local address (a client). A
    /// `PEERS` entry pairs only with a socket that still has this bit or the next one.
    pub const WAITING_AS_CLIENT: u32 = 4;
    /// This socket waits in `PEERS` for its peer, keyed by its remote address (a server).
    pub const WAITING_AS_SERVER: u32 = 8;
    /// Only in a `CloseEvent`: the socket's `CONNS` entry was gone at its close. Only sockets
    /// that had an entry ask for the close callback, so the LRU table (full) evicted it, and
    /// what it sent or received after that was not sampled.
    pub const EVICTED: u32 = 16;
}

/// Indexes of the per-CPU `DROPS` counters: every sample or event the kernel could not deliver.
pub mod drop_reason {
    /// Ring buffer full when reserving a sample record.
    pub const SAMPLE_RESERVE: u32 = 0;
    /// Ring buffer full when reserving an open record.
    pub const OPEN_RESERVE: u32 = 1;
    /// Ring buffer full when reserving a close record.
    pub const CLOSE_RESERVE: u32 = 2;
    /// The connection table refused an insert.
    pub const CONN_INSERT: u32 = 3;
    /// A segment's IP/TCP headers could not be read or were not TCP.
    pub const HEADER: u32 = 4;
    /// An IPv6 segment with extension headers before TCP (not parsed, not sampled).
    pub const IPV6_EXT: u32 = 5;
    /// Copying payload bytes out of the packet failed.
    pub const LOAD_BYTES: u32 = 6;
    /// A connection's `CONNS` entry was evicted (table full) before its close.
    pub const CONN_EVICTED: u32 = 7;
    /// Number of counters.
    pub const COUNT: u32 = 8;
    /// Names used as the `stage` label of `observer_capture_lost_total`.
    pub const NAMES: [&str; COUNT as usize] = [
        "sample_reserve",
        "open_reserve",
        "close_reserve",
        "conn_insert",
        "header",
        "ipv6_ext_header",
        "load_bytes",
        "conn_evicted",
    ];
}

/// The process that owns a socket, taken in process context (socket creation, bind).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Thread group id (the "pid" a user sees).
    pub pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// 1 when the fields above were recorded, 0 when the owner is unknown.
    pub known: u32,
    /// cgroup v2 id of the task.
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
}

/// The address both sockets of a connection on this node agree on: the client socket's local
/// address is the server socket's remote address (also behind a REDIRECT). Loopback addresses
/// repeat in every network namespace, so for them the namespace cookie is part of the key (0
/// otherwise, since pods in different namespaces reach each other by their own addresses).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerKey {
    pub netns_cookie: u64,
    /// The address as the kernel stores it (network byte order in each word): IPv4 in the
    /// first word and zeros after it, or the four words of an IPv6 address.
    pub addr: [u32; 4],
    /// Host byte order.
    pub port: u32,
    /// `AF_INET` or `AF_INET6`; an IPv4-mapped IPv6 address is keyed as IPv4.
    pub family: u32,
}

/// The socket of a connection waiting for its peer on this node, in the `PEERS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingPeer {
    pub cookie: u64,
    /// `role` of that socket.
    pub role: u32,
    pub _pad: u32,
}

/// Key of the listener owner table: an accepted socket inherits the owner of the socket bound to
/// its local port in its network namespace.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerKey {
    pub netns_cookie: u64,
    /// Host byte order.
    pub port: u32,
    pub _pad: u32,
}

/// Per-connection state kept by the kernel, keyed by socket cookie.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnState {
    /// TCP sequence number of the first payload byte this socket sends.
    pub egress_base: u32,
    /// TCP sequence number of the first payload byte this socket receives.
    pub ingress_base: u32,
    /// `conn_flags` bits.
    pub flags: u32,
    /// Packets the skb programs found done here, counted up to `DONE_HITS_TO_CACHE`: past it they
    /// cache the done bits with the socket (its socket-local storage). Kernel-side only.
    pub done_hits: u32,
}

/// Done packets a socket takes through `CONNS` before the skb programs cache its done bits in
/// socket-local storage: creating that storage costs about a microsecond, which a short
/// connection (a few packets after its handshake) would never earn back.
pub const DONE_HITS_TO_CACHE: u32 = 16;

/// Common head of every ring buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader {
    /// `event_kind`.
    pub kind: u32,
    pub _pad: u32,
    /// Socket cookie: the connection identity (never the 5-tuple: docs/ARCHITECTURE.md, "Invariants").
    pub cookie: u64,
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC) in open and close records; 0 in sample records (not
    /// read: the daemon does not use it, and a clock read per sampled packet costs).
    pub ktime_ns: u64,
}

/// A socket reached ESTABLISHED. Addresses are the socket's own view (after any NAT).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenEvent {
    pub header: EventHeader,
    pub netns_cookie: u64,
    pub owner: Owner,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u32,
    /// `role`.
    pub role: u32,
    /// IPv4 in the first 4 bytes, or IPv6 (possibly v4-mapped), network byte order.
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: u32,
    /// The cookie of the connection's other socket when the kernel found it on this node (it
    /// reached ESTABLISHED first and was waiting in `PEERS`), else 0. Pairing is the kernel's:
    /// userspace joins the two sockets by this cookie, never by addresses.
    pub peer_cookie: u64,
}

/// Bytes copied from one segment, in a record of the smallest size class that holds them
/// (`SMALL_SAMPLE`, `MEDIUM_SAMPLE`, `LARGE_SAMPLE` or `SAMPLE_CHUNK` bytes of `data`). The
/// fields before `data` are the same in all; a record carries `len` bytes.
pub type SampleEvent = SampleRecord<SAMPLE_CHUNK>;

/// The small size class of a sample record.
pub type SmallSampleEvent = SampleRecord<SMALL_SAMPLE>;

/// Most bytes of a small sample record. Most first segments of plaintext protocols (an HTTP
/// request or response head, a PostgreSQL startup) fit; a larger record would spend a KiB or
/// more of ring buffer on each of them. (The reserve size must be a constant for the verifier:
/// hence classes, not exactly sized records.)
pub const SMALL_SAMPLE: usize = 256;
/// Most bytes of a medium sample record: a classic ClientHello (300 to 600 bytes) fits.
pub const MEDIUM_SAMPLE: usize = 1024;
/// Most bytes of a large sample record: a ClientHello with a post-quantum key share (~1.8 KB) fits.
pub const LARGE_SAMPLE: usize = 2048;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampleRecord<const N: usize> {
    pub header: EventHeader,
    /// `direction`.
    pub direction: u32,
    /// Offset of `data[0]` from the first payload byte of this direction.
    pub offset: u32,
    /// Valid bytes in `data`.
    pub len: u32,
    /// Payload length of the whole segment the bytes came from.
    pub segment_len: u32,
    pub data: [u8; N],
}

/// A socket reached CLOSE.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseEvent {
    pub header: EventHeader,
    /// `ConnState::flags` at close: which directions had finished sampling.
    pub flags: u32,
    pub _pad: u32,
}

const _: () = assert!(core::mem::size_of::<Owner>() == 40);
const _: () = assert!(core::mem::size_of::<ListenerKey>() == 16);
const _: () = assert!(core::mem::size_of::<ConnState>() == 16);
const _: () = assert!(core::mem::size_of::<PeerKey>() == 32);
const _: () = assert!(core::mem::size_of::<WaitingPeer>() == 16);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 24);
const _: () = assert!(core::mem::size_of::<OpenEvent>() == 24 + 8 + 40 + 8 + 32 + 8 + 8);
const _: () = assert!(core::mem::size_of::<SampleEvent>() == 24 + 16 + SAMPLE_CHUNK);
const _: () = assert!(core::mem::size_of::<SmallSampleEvent>() == 24 + 16 + SMALL_SAMPLE);
const _: () = assert!(core::mem::offset_of!(SmallSampleEvent, data) == core::mem::offset_of!(SampleEvent, data));
const _: () = assert!(SMALL_SAMPLE < MEDIUM_SAMPLE && MEDIUM_SAMPLE < LARGE_SAMPLE && LARGE_SAMPLE < SAMPLE_CHUNK);
const _: () = assert!(core::mem::size_of::<CloseEvent>() == 32);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C) plain data with explicit padding; every bit pattern is valid.
    unsafe impl aya::Pod for super::Owner {}
    unsafe impl aya::Pod for super::ListenerKey {}
    unsafe impl aya::Pod for super::ConnState {}
    unsafe impl aya::Pod for super::PeerKey {}
    unsafe impl aya::Pod for super::WaitingPeer {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_names_cover_every_counter() {
        assert_eq!(drop_reason::NAMES.len(), drop_reason::COUNT as usize);
    }
}
