use std::net::{IpAddr, SocketAddr};

use observer_common::{CloseEvent, EventHeader, Owner, event_kind};

use super::*;

fn open_event(cookie: u64, netns: u64, role: u32, local: &str, remote: &str, comm: &[u8]) -> OpenEvent {
    paired_open(cookie, 0, netns, role, local, remote, comm)
}

/// An open the kernel paired with the socket `peer` (0: not paired).
fn paired_open(cookie: u64, peer: u64, netns: u64, role: u32, local: &str, remote: &str, comm: &[u8]) -> OpenEvent {
    let local: SocketAddr = local.parse().expect("test address");
    let remote: SocketAddr = remote.parse().expect("test address");
    let octets = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => {
            let mut raw = [0u8; 16];
            raw[..4].copy_from_slice(&v4.octets());
            raw
        }
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut name = [0u8; 16];
    name[..comm.len()].copy_from_slice(comm);
    OpenEvent {
        header: EventHeader { kind: event_kind::OPEN, _pad: 0, cookie, ktime_ns: 1_000 },
        netns_cookie: netns,
        owner: Owner { pid: cookie as u32, uid: 0, gid: 0, known: 1, cgroup_id: 0, comm: name },
        family: if local.is_ipv4() { 2 } else { 10 },
        role,
        local_addr: octets(local.ip()),
        remote_addr: octets(remote.ip()),
        local_port: local.port(),
        remote_port: remote.port(),
        _pad: 0,
        peer_cookie: peer,
    }
}

fn close_event(cookie: u64) -> KernelEvent<'static> {
    KernelEvent::Close(CloseEvent {
        header: EventHeader { kind: event_kind::CLOSE, _pad: 0, cookie, ktime_ns: 2_000 },
        flags: 0,
        _pad: 0,
    })
}

fn sample(cookie: u64, dir: u32, offset: u32, data: &'static [u8]) -> KernelEvent<'static> {
    KernelEvent::Sample { cookie, direction: dir, offset, segment_len: data.len() as u32, data }
}

fn table() -> Sockets {
    Sockets::new(SystemTime::UNIX_EPOCH, Duration::from_secs(2))
}

#[test]
fn the_two_sockets_of_a_loopback_connection_make_one_leg() {
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let client = open_event(1, 9, role::ACTIVE, "127.0.0.1:40000", "127.0.0.1:8080", b"curl");
    let server = paired_open(2, 1, 9, role::PASSIVE, "127.0.0.1:8080", "127.0.0.1:40000", b"python3");
    sockets.on_event(KernelEvent::Open(client), now, &mut |e| out.push(e));
    sockets.on_event(KernelEvent::Open(server), now, &mut |e| out.push(e));
    assert!(matches!(out[0], legs::Event::Open { leg: 1, observed_at: ObservedAt::Client, .. }));
    let legs::Event::Joined { leg: 1, side: Side::Server, process: Some(ref p), .. } = out[1] else {
        panic!("server did not join the client's leg: {out:?}")
    };
    assert_eq!(&*p.comm, "python3");
    assert_eq!(sockets.cookies(1), &[1, 2]);

    out.clear();
    sockets.on_event(sample(1, direction::EGRESS, 0, b"GET"), now, &mut |e| out.push(e));
    sockets.on_event(sample(2, direction::INGRESS, 0, b"GET"), now, &mut |e| out.push(e));
    sockets.on_event(sample(2, direction::EGRESS, 0, b"HTTP"), now, &mut |e| out.push(e));
    let dirs: Vec<_> = out
        .iter()
        .map(|e| match e {
            legs::Event::Data { direction, .. } => *direction,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(dirs, [Direction::ClientToServer, Direction::ClientToServer, Direction::ServerToClient]);

    out.clear();
    sockets.on_event(close_event(1), now, &mut |e| out.push(e));
    assert!(out.is_empty(), "the leg stays open while one of its sockets is");
    sockets.on_event(close_event(2), now, &mut |e| out.push(e));
    assert!(matches!(out[..], [legs::Event::Close { leg: 1 }]));
    // Nothing can join a leg whose two ends both closed: it is not held for the retention.
    assert_eq!(sockets.len(), 0);
    assert!(sockets.cookies(1).is_empty());
}

#[test]
fn a_closed_socket_without_its_peer_stays_pairable_for_the_retention() {
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let client = open_event(1, 9, role::ACTIVE, "127.0.0.1:40000", "127.0.0.1:8080", b"curl");
    sockets.on_event(KernelEvent::Open(client), now, &mut |e| out.push(e));
    sockets.on_event(close_event(1), now, &mut |e| out.push(e));
    sockets.tick(now + Duration::from_millis(1));
    assert_eq!(sockets.len(), 1, "its peer's open may still be in flight");
    let server = paired_open(2, 1, 9, role::PASSIVE, "127.0.0.1:8080", "127.0.0.1:40000", b"python3");
    out.clear();
    sockets.on_event(KernelEvent::Open(server), now, &mut |e| out.push(e));
    assert!(matches!(out[..], [legs::Event::Joined { leg: 1, side: Side::Server, .. }]), "{out:?}");
}

#[test]
fn addresses_alone_never_pair_only_the_kernel_does() {
    // Matching addresses the kernel did not pair (other namespaces' loopback, a full `PEERS`):
    // two legs, each seen from its own end.
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let client = open_event(1, 9, role::ACTIVE, "127.0.0.1:40000", "127.0.0.1:8080", b"curl");
    let server = open_event(2, 10, role::PASSIVE, "127.0.0.1:8080", "127.0.0.1:40000", b"nginx");
    sockets.on_event(KernelEvent::Open(client), now, &mut |e| out.push(e));
    sockets.on_event(KernelEvent::Open(server), now, &mut |e| out.push(e));
    assert!(matches!(out[1], legs::Event::Open { leg: 2, observed_at: ObservedAt::Server, .. }));
}

#[test]
fn a_peer_named_before_its_own_open_arrived_still_joins() {
    // The events of two CPUs can arrive in either order: the app's socket (second to reach
    // ESTABLISHED, so it names the proxy's) comes first here. Behind REDIRECT the app's remote
    // address is the original destination, which the leg keeps.
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let app = paired_open(4, 5, 3, role::ACTIVE, "10.88.0.10:41000", "10.88.0.20:8080", b"curl");
    let proxy = open_event(5, 3, role::PASSIVE, "127.0.0.1:15001", "10.88.0.10:41000", b"haproxy");
    sockets.on_event(KernelEvent::Open(app), now, &mut |e| out.push(e));
    sockets.on_event(KernelEvent::Open(proxy), now, &mut |e| out.push(e));
    let legs::Event::Open { leg: 4, ref server, observed_at: ObservedAt::Client, .. } = out[0] else {
        panic!("the app's socket did not open the leg: {out:?}")
    };
    assert_eq!(server.addr.to_string(), "10.88.0.20:8080");
    assert!(matches!(out[1], legs::Event::Joined { leg: 4, side: Side::Server, .. }), "{out:?}");
    assert_eq!(sockets.cookies(4), &[4, 5]);
}

#[test]
fn a_named_peer_that_never_opens_is_forgotten_and_counted() {
    let mut sockets = Sockets::new(SystemTime::UNIX_EPOCH, Duration::from_millis(150));
    let now = Instant::now();
    let mut out = Vec::new();
    let server = paired_open(2, 1, 9, role::PASSIVE, "127.0.0.1:8080", "127.0.0.1:40000", b"nginx");
    sockets.on_event(KernelEvent::Open(server), now, &mut |e| out.push(e));
    sockets.tick(now + Duration::from_millis(200));
    assert_eq!(sockets.stats().early_forgotten, 1);
    // A socket 1 arriving now is another connection's: it does not join.
    let late = open_event(1, 9, role::ACTIVE, "127.0.0.1:40000", "127.0.0.1:8080", b"curl");
    sockets.on_event(KernelEvent::Open(late), now, &mut |e| out.push(e));
    assert!(matches!(out[1], legs::Event::Open { leg: 1, .. }), "{out:?}");
}

#[test]
fn a_peer_of_the_same_side_or_a_reported_leg_does_not_join() {
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let first = open_event(1, 9, role::ACTIVE, "127.0.0.1:40000", "127.0.0.1:8080", b"curl");
    let same_side = paired_open(2, 1, 9, role::ACTIVE, "127.0.0.1:40001", "127.0.0.1:8080", b"curl");
    sockets.on_event(KernelEvent::Open(first), now, &mut |e| out.push(e));
    sockets.on_event(KernelEvent::Open(same_side), now, &mut |e| out.push(e));
    assert!(matches!(out[1], legs::Event::Open { leg: 2, .. }), "{out:?}");
    sockets.reported(1);
    let server = paired_open(3, 1, 9, role::PASSIVE, "127.0.0.1:8080", "127.0.0.1:40000", b"nginx");
    sockets.on_event(KernelEvent::Open(server), now, &mut |e| out.push(e));
    assert!(matches!(out[2], legs::Event::Open { leg: 3, .. }), "{out:?}");
}

#[test]
fn the_budget_end_is_reported_and_reported_legs_go_quiet() {
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let client = open_event(1, 9, role::ACTIVE, "10.0.0.1:40000", "10.0.0.2:443", b"curl");
    sockets.on_event(KernelEvent::Open(client), now, &mut |e| out.push(e));
    out.clear();
    sockets.on_event(sample(1, direction::EGRESS, SAMPLE_BUDGET - 3, b"end"), now, &mut |e| out.push(e));
    assert!(matches!(
        out[1],
        legs::Event::DirectionEnd { leg: 1, direction: Direction::ClientToServer, end: StreamEnd::BudgetSpent }
    ));
    out.clear();
    sockets.reported(1);
    sockets.on_event(sample(1, direction::INGRESS, 0, b"late"), now, &mut |e| out.push(e));
    sockets.on_event(close_event(1), now, &mut |e| out.push(e));
    assert!(out.is_empty());
    sockets.tick(now + Duration::from_secs(2));
    assert!(sockets.is_empty());
    assert!(sockets.cookies(1).is_empty());
}

#[test]
fn events_of_unknown_sockets_are_counted() {
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    sockets.on_event(sample(77, direction::EGRESS, 0, b"x"), now, &mut |e| out.push(e));
    sockets.on_event(close_event(77), now, &mut |e| out.push(e));
    sockets.on_record(&[0u8; 3], now, &mut |e| out.push(e));
    assert!(out.is_empty());
    assert_eq!(
        sockets.stats(),
        SocketStats {
            orphan_samples: 1,
            orphan_closes: 1,
            undecodable: 1,
            evicted: 0,
            egress_samples: 1,
            ingress_samples: 0,
            early_forgotten: 0
        }
    );
}

#[test]
fn sockets_whose_close_never_came_are_bounded() {
    let mut sockets = table();
    let t0 = Instant::now();
    let mut out = Vec::new();
    let total = MAX_SOCKETS as u64 + 10;
    for cookie in 0..total {
        let local = format!("10.{}.{}.{}:{}", (cookie >> 16) & 0xff, (cookie >> 8) & 0xff, cookie & 0xff, 40_000);
        let mut open = open_event(cookie, 1, role::ACTIVE, &local, "10.255.0.1:443", b"curl");
        // Opened in the reverse order of their cookies: eviction goes by the kernel's time.
        open.header.ktime_ns = 1_000 + total - cookie;
        sockets.on_event(KernelEvent::Open(open), t0 + Duration::from_micros(cookie), &mut |e| out.push(e));
    }
    sockets.tick(t0 + Duration::from_secs(1));
    assert!(sockets.len() <= MAX_SOCKETS, "{} sockets held", sockets.len());
    let evicted = total - (MAX_SOCKETS * 9 / 10) as u64;
    assert_eq!(sockets.stats().evicted, evicted);
    assert!(sockets.cookies(total - 1).is_empty(), "the oldest went first");
    assert!(sockets.cookies(total - evicted).is_empty());
    assert_eq!(sockets.cookies(total - evicted - 1), &[total - evicted - 1]);
    assert_eq!(sockets.cookies(0), &[0]);
}

#[test]
fn a_socket_the_kernel_evicted_ends_its_leg_unseen_and_never_closes_it() {
    let mut sockets = table();
    let now = Instant::now();
    let mut out = Vec::new();
    let client = open_event(1, 9, role::ACTIVE, "10.0.0.1:40000", "10.0.0.2:443", b"curl");
    let server = paired_open(2, 1, 9, role::PASSIVE, "10.0.0.2:443", "10.0.0.1:40000", b"nginx");
    sockets.on_event(KernelEvent::Open(client), now, &mut |e| out.push(e));
    sockets.on_event(KernelEvent::Open(server), now, &mut |e| out.push(e));
    out.clear();
    let evicted = KernelEvent::Close(CloseEvent {
        header: EventHeader { kind: event_kind::CLOSE, _pad: 0, cookie: 1, ktime_ns: 2_000 },
        flags: conn_flags::EVICTED,
        _pad: 0,
    });
    sockets.on_event(evicted, now, &mut |e| out.push(e));
    let ends: Vec<_> = out
        .iter()
        .map(|e| match e {
            legs::Event::DirectionEnd { leg: 1, direction, end: StreamEnd::BudgetSpent } => *direction,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ends, [Direction::ClientToServer, Direction::ServerToClient]);
    out.clear();
    // The peer's normal close must not make what was seen look like the whole stream.
    sockets.on_event(close_event(2), now, &mut |e| out.push(e));
    assert!(out.is_empty(), "{out:?}");
}
