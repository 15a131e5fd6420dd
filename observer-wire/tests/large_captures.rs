//! Captures several times the size of the reader's buffer: every frame is read, in pcap and in
//! pcapng, and a file is cut short only where it really ends inside a record (the reader refills
//! its buffer many times, and a refill that meets the end of the file is not a cut).

mod common;

use std::path::Path;

use common::*;
use observer_wire::{
    classify::Protocol,
    legs::{LegRecord, TrackerConfig},
    pcap::{Replay, ReplayError, ReplayStats},
};

/// Connections in a capture: about 3 MiB with [`payload`], three times the reader's 1 MiB buffer.
const CONNECTIONS: u16 = 3000;

/// A request large enough to make the capture span several buffers.
fn payload() -> Vec<u8> {
    let mut request = b"GET /".to_vec();
    request.extend(std::iter::repeat_n(b'a', 900));
    request.extend(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    request
}

/// Every connection's frames, each a separate connection (its own server port).
fn frames() -> Vec<Vec<u8>> {
    let payload = payload();
    (0..CONNECTIONS).flat_map(|n| connection(1000 + n, &payload)).collect()
}

fn replay(path: &Path) -> (Vec<LegRecord>, Result<(), ReplayError>, ReplayStats) {
    let mut records = Vec::new();
    let mut replay = Replay::new(TrackerConfig::default());
    let result = replay.file(path, &mut |leg| records.push(leg));
    let (stats, _) = replay.finish(&mut |leg| records.push(leg));
    (records, result, stats)
}

#[test]
fn every_frame_of_a_capture_larger_than_the_buffer_is_read() {
    let dir = scratch("large");
    let frames = frames();
    let legacy = pcap(&frames.iter().map(|f| (1, f.clone())).collect::<Vec<_>>());
    let mut ng = section_header();
    ng.extend(interface(None, None));
    for frame in &frames {
        ng.extend(packet(1_000_000, frame));
    }
    for (name, file) in [("large.pcap", legacy), ("large.pcapng", ng)] {
        assert!(file.len() > 3 << 20, "{name}: {} bytes", file.len());
        let (records, result, stats) = replay(&write(&dir, name, &file));
        assert!(result.is_ok(), "{name}: {result:?}");
        assert_eq!(stats.frames, frames.len() as u64, "{name}");
        assert_eq!(stats.truncated_files, 0, "{name}: read whole, not cut");
        assert_eq!(records.len(), usize::from(CONNECTIONS), "{name}: one record per leg");
        assert!(records.iter().all(|r| r.classification.protocol == Protocol::Http1), "{name}");
    }
}

#[test]
fn a_large_capture_cut_inside_a_record_is_read_up_to_the_cut() {
    let dir = scratch("large-cut");
    let frames = frames();
    let file = pcap(&frames.iter().map(|f| (1, f.clone())).collect::<Vec<_>>());
    // Past two buffers: the record boundary after `whole` records, then half a record header.
    let whole = frames.len() * 3 / 4;
    let boundary = 24 + frames[..whole].iter().map(|f| 16 + f.len()).sum::<usize>();
    assert!(boundary > 2 << 20);
    let (_, result, stats) = replay(&write(&dir, "cut.pcap", &file[..boundary + 8]));
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(stats.frames, whole as u64);
    assert_eq!(stats.truncated_files, 1);
    // Cut exactly at that boundary, the file is whole.
    let (_, result, stats) = replay(&write(&dir, "boundary.pcap", &file[..boundary]));
    assert!(result.is_ok(), "{result:?}");
    assert_eq!((stats.frames, stats.truncated_files), (whole as u64, 0));
}
