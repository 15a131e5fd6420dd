//! Classification of arbitrary bytes in both directions, with every combination of stream ends:
//! must never panic, and a `Done` answer must not change when the same bytes are offered again.
//! Input: [split hi, split lo, ends, bytes...]; client = bytes[..split], server = bytes[split..].
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer_wire::classify::{Input, Progress, StreamEnd, classify};

fn end(bits: u8) -> StreamEnd {
    match bits & 3 {
        0 => StreamEnd::Open,
        1 => StreamEnd::Closed,
        _ => StreamEnd::BudgetSpent,
    }
}

fuzz_target!(|data: &[u8]| {
    let [hi, lo, ends, bytes @ ..] = data else {
        return;
    };
    let split = (usize::from(*hi) << 8 | usize::from(*lo)).min(bytes.len());
    let (client, server) = bytes.split_at(split);
    let input = Input {
        client,
        server,
        client_end: end(*ends),
        server_end: end(*ends >> 2),
        client_gap: ends & 0x10 != 0,
        server_gap: ends & 0x20 != 0,
    };
    let first = classify(&input);
    if input.client_end != StreamEnd::Open && input.server_end != StreamEnd::Open {
        assert!(matches!(first, Progress::Done(_)), "ended streams must decide");
    }
    assert_eq!(first, classify(&input));
});
