//! Reassembly + tracker + classification: arbitrary segments (out of order, overlapping,
//! duplicated, past the cap) of one leg fed as `legs::Event`s, with the other socket joining
//! (as the live source reports a local connection) and time passing (pairing grace, idle
//! timeout). Must never panic, and the leg must be reported exactly once (when decided, when
//! its time ran out, or at flush).
//! Input: [observed at, then a sequence of [flags, offset hi, offset lo, len, bytes(len)...]].
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use observer_wire::{
    classify::{StreamEnd, UnknownReason},
    legs::{Direction, Event, ObservedAt, Output, Peer, Process, Side, Tracker, TrackerConfig},
};

fuzz_target!(|data: &[u8]| {
    let [seen, rest @ ..] = data else {
        return;
    };
    let mut rest = rest;
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut now = Instant::now();
    let mut out = Vec::new();
    let peer = |addr: &str| Peer { addr: addr.parse().expect("literal"), process: None };
    let observed_at = match seen & 3 {
        0 => ObservedAt::Wire,
        1 => ObservedAt::Client,
        2 => ObservedAt::Server,
        _ => ObservedAt::Both,
    };
    tracker.handle(
        Event::Open {
            leg: 1,
            time: SystemTime::UNIX_EPOCH,
            client: peer("127.0.0.1:40000"),
            server: peer("127.0.0.1:443"),
            observed_at,
        },
        now,
        &mut out,
    );
    while let [flags, hi, lo, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let direction = if flags & 1 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
        let word = u64::from(*hi) << 8 | u64::from(*lo);
        // Offsets up to 64 KiB x 8: beyond the reassembly cap too.
        let offset = word << (flags >> 1 & 3);
        let event = match flags >> 3 & 7 {
            0..=2 => Event::Data { leg: 1, direction, offset, bytes },
            3 => Event::DirectionEnd {
                leg: 1,
                direction,
                end: if flags & 0x40 == 0 { StreamEnd::Closed } else { StreamEnd::BudgetSpent },
            },
            4 => Event::Close { leg: 1 },
            5 => {
                // The other socket of the leg, from its own point of view (a REDIRECT may
                // change the server address it names).
                let side = if flags & 1 == 0 { Side::Client } else { Side::Server };
                let process = (flags & 0x40 != 0).then(|| Process {
                    pid: u32::from(*hi),
                    uid: u32::from(*lo),
                    comm: String::from_utf8_lossy(bytes).into(),
                    cgroup_id: 0,
                });
                let port = 1024 + (word & 0x7fff) as u16;
                let local = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let remote = std::net::SocketAddr::from(([127, 0, 0, 6], 15006));
                Event::Joined { leg: 1, side, process, local, remote }
            }
            _ => {
                // Time passes (milliseconds up to about 18 minutes: past the pairing grace and
                // the idle timeout).
                now += Duration::from_millis(word * 16);
                tracker.tick(now, &mut out);
                continue;
            }
        };
        tracker.handle(event, now, &mut out);
    }
    tracker.flush(UnknownReason::CaptureEnded, &mut out);
    let records = out.iter().filter(|o| matches!(o, Output::Record(_))).count();
    assert_eq!(records, 1, "a leg is reported exactly once");
});
