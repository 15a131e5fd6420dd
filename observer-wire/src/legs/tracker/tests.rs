use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::classify::Security;

fn peer(addr: &str) -> Peer {
    Peer { addr: addr.parse().expect("test address"), process: None }
}

fn open(leg: LegId, observed_at: ObservedAt) -> Event<'static> {
    Event::Open {
        leg,
        time: SystemTime::UNIX_EPOCH,
        client: peer("10.0.0.1:40000"),
        server: peer("10.0.0.2:80"),
        observed_at,
    }
}

fn data(leg: LegId, offset: u64, bytes: &[u8]) -> Event<'_> {
    Event::Data { leg, direction: Direction::ClientToServer, offset, bytes }
}

fn records(out: &[Output]) -> Vec<&LegRecord> {
    out.iter()
        .filter_map(|o| match o {
            Output::Record(r) => Some(r),
            Output::StopSampling(_) => None,
        })
        .collect()
}

#[test]
fn a_wire_leg_is_reported_once_as_soon_as_it_is_decided() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(1, ObservedAt::Wire), now, &mut out);
    assert!(out.is_empty());
    tracker.handle(data(1, 0, b"GET / HTTP/1.1\r\n"), now, &mut out);
    assert_eq!(out.first(), Some(&Output::StopSampling(1)));
    assert_eq!(records(&out).len(), 1);
    assert_eq!(records(&out)[0].classification.security, Security::Plaintext);
    out.clear();
    tracker.handle(data(1, 16, b"Host: x\r\n"), now, &mut out);
    tracker.handle(Event::Close { leg: 1 }, now, &mut out);
    assert!(out.is_empty(), "a reported leg is never reported again");
    assert_eq!(tracker.stats().events_for_unknown_legs, 2);
}

#[test]
fn a_one_sided_leg_waits_for_its_peer_socket() {
    let config = TrackerConfig { pair_grace: Duration::from_millis(100), ..Default::default() };
    let mut tracker = Tracker::new(config);
    let t0 = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(7, ObservedAt::Client), t0, &mut out);
    tracker.handle(data(7, 0, b"GET / HTTP/1.1\r\n"), t0, &mut out);
    assert!(records(&out).is_empty());
    let joined = Event::Joined {
        leg: 7,
        side: Side::Server,
        process: None,
        local: "10.0.0.2:80".parse().expect("test address"),
        remote: "10.0.0.1:40000".parse().expect("test address"),
    };
    tracker.handle(joined, t0, &mut out);
    let reported = records(&out);
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].observed_at, ObservedAt::Both);
    assert_eq!(reported[0].server.addr.to_string(), "10.0.0.2:80", "the client's view of the server is kept");
}

#[test]
fn a_joining_client_brings_the_original_destination() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let t0 = Instant::now();
    let mut out = Vec::new();
    let server_first = Event::Open {
        leg: 9,
        time: SystemTime::UNIX_EPOCH,
        client: peer("10.0.0.1:40000"),
        server: peer("127.0.0.1:15001"),
        observed_at: ObservedAt::Server,
    };
    tracker.handle(server_first, t0, &mut out);
    let joined = Event::Joined {
        leg: 9,
        side: Side::Client,
        process: None,
        local: "10.0.0.1:40000".parse().expect("test address"),
        remote: "10.0.0.2:8080".parse().expect("test address"),
    };
    tracker.handle(joined, t0, &mut out);
    tracker.handle(data(9, 0, b"GET / HTTP/1.1\r\n"), t0, &mut out);
    let reported = records(&out);
    assert_eq!(reported[0].server.addr.to_string(), "10.0.0.2:8080");
}

#[test]
fn an_unpaired_leg_is_reported_after_the_grace() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let t0 = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(3, ObservedAt::Server), t0, &mut out);
    tracker.handle(data(3, 0, b"\x16\x03\x01\x00\x05hello"), t0, &mut out);
    tracker.tick(t0 + Duration::from_millis(10), &mut out);
    assert!(records(&out).is_empty());
    tracker.tick(t0 + Duration::from_millis(150), &mut out);
    assert_eq!(records(&out).len(), 1);
    assert!(tracker.is_empty());
}

#[test]
fn a_leg_closed_without_bytes_is_unknown_no_data() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(4, ObservedAt::Wire), now, &mut out);
    tracker.handle(Event::Close { leg: 4 }, now, &mut out);
    let reported = records(&out);
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].classification, Classification::unknown(UnknownReason::NoData));
}

#[test]
fn flush_reports_undecided_legs_as_stopped() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(5, ObservedAt::Wire), now, &mut out);
    tracker.flush(UnknownReason::ObserverStopped, &mut out);
    assert_eq!(records(&out)[0].classification, Classification::unknown(UnknownReason::ObserverStopped));
}

#[test]
fn opens_beyond_the_limit_are_counted_and_refused() {
    let mut tracker = Tracker::new(TrackerConfig { max_legs: 2, ..Default::default() });
    let now = Instant::now();
    let mut out = Vec::new();
    for leg in 0..3 {
        tracker.handle(open(leg, ObservedAt::Wire), now, &mut out);
    }
    assert_eq!(tracker.len(), 2);
    assert_eq!(tracker.stats().legs_dropped_full, 1);
    assert_eq!(out, vec![Output::StopSampling(2)]);
}

#[test]
fn duplicate_segments_change_nothing_and_the_close_still_decides() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(8, ObservedAt::Both), now, &mut out);
    // A ClientHello record header announcing more bytes than have come: not decided yet.
    let head = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    tracker.handle(data(8, 0, &head), now, &mut out);
    tracker.handle(data(8, 0, &head), now, &mut out);
    assert!(out.is_empty());
    tracker.handle(Event::Close { leg: 8 }, now, &mut out);
    assert_eq!(records(&out).len(), 1, "closing still decides the leg: {out:?}");
}

#[test]
fn the_idle_timeout_counts_from_the_last_event_and_timers_hold_one_entry_per_leg() {
    let idle = Duration::from_secs(300);
    // The handshake deadline (tested below) is out of the way here.
    let handshake_timeout = Duration::from_secs(3600);
    let mut tracker = Tracker::new(TrackerConfig { idle_timeout: idle, handshake_timeout, ..TrackerConfig::default() });
    let t0 = Instant::now();
    let mut out = Vec::new();
    for leg in 1..=1000 {
        tracker.handle(open(leg, ObservedAt::Wire), t0, &mut out);
    }
    // Half decide at once and leave; their idle entries leave with them.
    for leg in 1..=500 {
        tracker.handle(data(leg, 0, b"GET / HTTP/1.1\r\n"), t0, &mut out);
    }
    assert_eq!(records(&out).len(), 500);
    assert_eq!((tracker.len(), tracker.idle_due.len()), (500, 500));
    out.clear();
    // Leg 501 keeps talking (an incomplete request line): it idles from its last event.
    tracker.handle(data(501, 0, b"GE"), t0 + Duration::from_secs(200), &mut out);
    tracker.tick(t0 + idle, &mut out);
    let expired: Vec<LegId> = records(&out).iter().map(|r| r.leg).collect();
    assert_eq!(expired.len(), 499, "every silent leg expires at its deadline");
    assert!(!expired.contains(&501));
    out.clear();
    tracker.tick(t0 + idle + Duration::from_secs(199), &mut out);
    assert!(out.is_empty(), "leg 501 is not due before its last event plus the timeout");
    tracker.tick(t0 + idle + Duration::from_secs(200), &mut out);
    assert_eq!(records(&out).iter().map(|r| r.leg).collect::<Vec<_>>(), vec![501]);
    assert_eq!(records(&out)[0].classification.reason, Some(UnknownReason::Truncated));
    assert_eq!(tracker.stats().legs_idle_expired, 500);
    assert!(tracker.is_empty() && tracker.idle_due.is_empty());
}

#[test]
fn legs_reported_before_their_handshake_deadline_never_enter_the_idle_set() {
    // The defaults: the idle timeout (300 s) is longer than the handshake deadline (30 s).
    let config = TrackerConfig::default();
    let (idle, handshake) = (config.idle_timeout, config.handshake_timeout);
    assert!(idle > handshake);
    let mut tracker = Tracker::new(config);
    let t0 = Instant::now();
    let mut out = Vec::new();
    for leg in 1..=100 {
        tracker.handle(open(leg, ObservedAt::Wire), t0, &mut out);
    }
    for leg in 1..=50 {
        tracker.handle(data(leg, 0, b"GET / HTTP/1.1\r\n"), t0, &mut out);
    }
    assert_eq!(records(&out).len(), 50);
    assert!(tracker.idle_due.is_empty(), "{} idle entries", tracker.idle_due.len());
    out.clear();
    // The silent half outlives its handshake deadline: now it is scheduled, from its last event.
    tracker.tick(t0 + handshake, &mut out);
    assert!(out.is_empty());
    assert_eq!(tracker.idle_due.len(), 50);
    tracker.tick(t0 + idle - Duration::from_millis(1), &mut out);
    assert!(out.is_empty(), "not due before its open plus the idle timeout");
    tracker.tick(t0 + idle, &mut out);
    assert_eq!(records(&out).len(), 50);
    assert!(records(&out).iter().all(|r| r.classification.reason == Some(UnknownReason::NoData)));
    assert_eq!(tracker.stats().legs_idle_expired, 50);
    assert!(tracker.is_empty() && tracker.idle_due.is_empty() && tracker.handshake_due.len() <= 50);
}

#[test]
fn a_decided_one_sided_leg_is_reported_when_its_grace_runs_out() {
    let grace = Duration::from_millis(100);
    let mut tracker = Tracker::new(TrackerConfig { pair_grace: grace, ..TrackerConfig::default() });
    let t0 = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(1, ObservedAt::Client), t0, &mut out);
    tracker.handle(data(1, 0, b"GET / HTTP/1.1\r\n"), t0, &mut out);
    assert!(records(&out).is_empty(), "waits for its peer socket");
    tracker.tick(t0 + grace / 2, &mut out);
    assert!(records(&out).is_empty());
    tracker.tick(t0 + grace, &mut out);
    assert_eq!(records(&out).len(), 1);
    assert!(tracker.grace_due.is_empty());
}

/// The first bytes of a TLS ClientHello record: a handshake begun, nothing decided.
const HELLO_START: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";

#[test]
fn a_client_hello_sent_a_byte_a_second_is_unknown_once_the_handshake_deadline_passes() {
    let handshake_timeout = Duration::from_secs(10);
    let mut tracker = Tracker::new(TrackerConfig { handshake_timeout, ..TrackerConfig::default() });
    let t0 = Instant::now();
    let mut out = Vec::new();
    tracker.handle(open(1, ObservedAt::Wire), t0, &mut out);
    // One byte a second: every byte resets the idle timeout, never the handshake deadline.
    for (second, byte) in HELLO_START.iter().take(10).enumerate() {
        let now = t0 + Duration::from_secs(second as u64);
        tracker.handle(data(1, second as u64, std::slice::from_ref(byte)), now, &mut out);
        tracker.tick(now, &mut out);
    }
    assert!(records(&out).is_empty(), "undecided before the deadline: {out:?}");
    tracker.tick(t0 + handshake_timeout, &mut out);
    let reported = records(&out);
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].classification.security, Security::Unknown);
    assert_eq!(reported[0].classification.reason, Some(UnknownReason::HandshakeTimeout));
    assert_eq!(tracker.stats().legs_handshake_expired, 1);
    assert!(tracker.is_empty() && tracker.handshake_due.is_empty() && tracker.idle_due.is_empty());
    out.clear();
    tracker.handle(data(1, 10, &HELLO_START[10..]), t0 + handshake_timeout, &mut out);
    assert!(out.is_empty(), "a timed-out leg is not reported again");
}

#[test]
fn the_handshake_deadline_spares_silent_and_decided_legs_and_costs_what_falls_due() {
    let handshake_timeout = Duration::from_secs(10);
    let mut tracker = Tracker::new(TrackerConfig { handshake_timeout, ..TrackerConfig::default() });
    let t0 = Instant::now();
    let mut out = Vec::new();
    // Leg 1 stays silent, leg 2 decides, leg 3 starts a ClientHello, leg 4 opens later.
    for leg in 1..=3 {
        tracker.handle(open(leg, ObservedAt::Wire), t0, &mut out);
    }
    tracker.handle(data(2, 0, b"GET / HTTP/1.1\r\n"), t0, &mut out);
    tracker.handle(data(3, 0, HELLO_START), t0, &mut out);
    tracker.handle(open(4, ObservedAt::Wire), t0 + Duration::from_secs(5), &mut out);
    tracker.handle(data(4, 0, HELLO_START), t0 + Duration::from_secs(5), &mut out);
    out.clear();
    tracker.tick(t0 + handshake_timeout, &mut out);
    assert_eq!(records(&out).iter().map(|r| r.leg).collect::<Vec<_>>(), vec![3]);
    // The silent leg waits one more timeout; leg 4's deadline is its own open plus the timeout.
    assert_eq!(tracker.handshake_due.iter().map(|(_, leg)| *leg).collect::<Vec<_>>(), vec![4, 1]);
    out.clear();
    tracker.tick(t0 + Duration::from_secs(15), &mut out);
    assert_eq!(records(&out).iter().map(|r| r.leg).collect::<Vec<_>>(), vec![4]);
    out.clear();
    tracker.handle(Event::Close { leg: 1 }, t0 + Duration::from_secs(16), &mut out);
    assert_eq!(records(&out)[0].classification.reason, Some(UnknownReason::NoData));
    tracker.tick(t0 + Duration::from_secs(30), &mut out);
    assert!(tracker.is_empty() && tracker.handshake_due.is_empty());
    // A deadline past what an Instant can hold never comes, and does not panic.
    let mut never = Tracker::new(TrackerConfig { handshake_timeout: Duration::MAX, ..TrackerConfig::default() });
    never.handle(open(9, ObservedAt::Wire), t0, &mut out);
    assert!(never.handshake_due.is_empty());
}

#[test]
fn a_first_piece_is_classified_where_it_lies_and_the_rest_builds_on_it() {
    let now = Instant::now();
    let classified = |pieces: &[(u64, &[u8])]| {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut out = Vec::new();
        tracker.handle(open(3, ObservedAt::Wire), now, &mut out);
        for &(offset, bytes) in pieces {
            tracker.handle(data(3, offset, bytes), now, &mut out);
        }
        tracker.handle(Event::Close { leg: 3 }, now, &mut out);
        let record = records(&out).first().map(|r| r.classification.clone());
        (record.expect("one record"), tracker.stats().duplicate_data)
    };
    for whole in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03]]
    {
        let (expected, _) = classified(&[(0, whole)]);
        for cut in 1..whole.len() {
            let (head, rest) = whole.split_at(cut);
            let at = cut as u64;
            assert_eq!(classified(&[(0, head), (at, rest)]).0, expected, "cut at {cut}");
            // A first piece that did not decide is held: its copy is a duplicate, as before.
            let (again, duplicates) = classified(&[(0, head), (0, head), (at, rest)]);
            assert_eq!(again, expected, "cut at {cut}, first piece twice");
            assert!(duplicates <= 1, "cut at {cut}: {duplicates} duplicates");
            // Pieces out of order: the first one to come is not the stream's start.
            assert_eq!(classified(&[(at, rest), (0, head)]).0, expected, "cut at {cut}, reversed");
        }
    }
}
