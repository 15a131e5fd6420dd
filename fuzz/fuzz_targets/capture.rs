//! Capture files (pcap, pcapng) of arbitrary bytes through the whole replay: block framing,
//! timestamps and interface options, frame decoding, TCP rebuilding, the tracker and classify.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use observer_wire::{legs::TrackerConfig, pcap::Replay};

fuzz_target!(|data: &[u8]| {
    let mut replay = Replay::new(TrackerConfig { max_legs: 64, ..TrackerConfig::default() });
    let mut legs = 0usize;
    // A damaged file is an error naming it, never a panic.
    let _ = replay.bytes(Path::new("fuzz.pcap"), data, &mut |_| legs += 1);
    let (stats, _) = replay.finish(&mut |_| legs += 1);
    assert!(stats.frames as usize <= data.len());
});
