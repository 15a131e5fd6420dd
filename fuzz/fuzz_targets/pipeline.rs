//! Reassembly + tracker + classification: arbitrary segments (out of order, overlapping,
//! duplicated, past the cap) of one leg fed as `legs::Event`s. Must never panic, and the leg
//! must be reported exactly once (when decided or at flush).
//! Input: a sequence of [flags, offset hi, offset lo, len, bytes(len)...] segments.
#![no_main]

use std::time::{Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use observer_wire::{
    classify::{StreamEnd, UnknownReason},
    legs::{Direction, Event, ObservedAt, Output, Peer, Tracker, TrackerConfig},
};

fuzz_target!(|data: &[u8]| {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let now = Instant::now();
    let mut out = Vec::new();
    let peer = |addr: &str| Peer { addr: addr.parse().expect("literal"), process: None };
    tracker.handle(
        Event::Open {
            leg: 1,
            time: SystemTime::UNIX_EPOCH,
            client: peer("127.0.0.1:40000"),
            server: peer("127.0.0.1:443"),
            observed_at: ObservedAt::Wire,
        },
        now,
        &mut out,
    );
    let mut rest = data;
    while let [flags, hi, lo, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let direction = if flags & 1 == 0 { Direction::ClientToServer } else { Direction::ServerToClient };
        // Offsets up to 64 KiB x 4: beyond the reassembly cap too.
        let offset = (u64::from(*hi) << 8 | u64::from(*lo)) << (flags >> 1 & 3);
        let event = match flags >> 3 & 3 {
            0 | 1 => Event::Data { leg: 1, direction, offset, bytes },
            2 => Event::DirectionEnd {
                leg: 1,
                direction,
                end: if flags & 0x20 == 0 { StreamEnd::Closed } else { StreamEnd::BudgetSpent },
            },
            _ => Event::Close { leg: 1 },
        };
        tracker.handle(event, now, &mut out);
    }
    tracker.flush(UnknownReason::CaptureEnded, &mut out);
    let records = out.iter().filter(|o| matches!(o, Output::Record(_))).count();
    assert_eq!(records, 1, "a leg is reported exactly once");
});
