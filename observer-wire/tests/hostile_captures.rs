//! Capture files crafted to break the replay: impossible timestamps, binary time resolutions,
//! oversized records, files cut in their first header, directories and FIFOs. Each is counted
//! and skipped or reported naming the file; none panics, hangs or ends the replay of later files.

mod common;

use std::{path::PathBuf, sync::mpsc, time::Duration};

use common::*;
use observer_wire::{
    legs::{LegRecord, TrackerConfig},
    pcap::{Replay, ReplayError, ReplayStats},
};

const HTTP: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Replays `files` in order on a thread with a deadline: the records, each file's result, the stats.
fn replay(files: Vec<PathBuf>) -> (Vec<LegRecord>, Vec<Result<(), ReplayError>>, ReplayStats) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut records = Vec::new();
        let mut replay = Replay::new(TrackerConfig::default());
        let results = files.iter().map(|f| replay.file(f, &mut |leg| records.push(leg))).collect();
        let (stats, _) = replay.finish(&mut |leg| records.push(leg));
        let _ = tx.send((records, results, stats));
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("the replay ends, without a panic, within the deadline")
}

fn pcapng(tsresol: Option<u8>, tsoffset: Option<i64>, packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut f = section_header();
    f.extend(interface(tsresol, tsoffset));
    for (ticks, frame) in packets {
        f.extend(packet(*ticks, frame));
    }
    f
}

fn at(ticks: u64, frames: Vec<Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
    frames.into_iter().map(|f| (ticks, f)).collect()
}

#[test]
fn impossible_pcapng_timestamps_are_counted_not_fatal() {
    let dir = scratch("timestamps");
    // 1-second resolution and the largest timestamp; an offset of i64::MAX; a jump of ~i64::MAX s.
    let huge = write(&dir, "huge.pcapng", &pcapng(Some(0), None, &at(u64::MAX, connection(80, HTTP))));
    let offset = write(&dir, "offset.pcapng", &pcapng(None, Some(i64::MAX), &at(1, connection(80, HTTP))));
    let mut jump = at(1_700_000_000, connection(81, HTTP));
    jump.insert(2, (i64::MAX as u64, tcp(([10, 0, 0, 9], 1), ([10, 0, 0, 8], 2), 1, 0, SYN, b"")));
    let jump = write(&dir, "jump.pcapng", &pcapng(Some(0), None, &jump));
    let later = write(
        &dir,
        "later.pcap",
        &pcap(&connection(80, HTTP).into_iter().map(|f| (1_700_000_000, f)).collect::<Vec<_>>()),
    );
    let (records, results, stats) = replay(vec![huge, offset, jump, later]);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(stats.files, 4);
    assert_eq!(stats.bad_timestamps, 5 + 5 + 1, "{stats:?}");
    // The jump file's connection and the later file's are both read.
    assert_eq!(records.len(), 2, "{records:?}");
}

#[test]
fn a_binary_time_resolution_is_read_as_a_power_of_two() {
    let dir = scratch("tsresol");
    let seconds = 1_700_000_000u64;
    let file = write(&dir, "binary.pcapng", &pcapng(Some(0x80 | 30), None, &at(seconds << 30, connection(80, HTTP))));
    let (records, results, stats) = replay(vec![file]);
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(stats.bad_timestamps, 0);
    let time = records[0].time.duration_since(std::time::UNIX_EPOCH).expect("after the epoch");
    assert_eq!(time, Duration::from_secs(seconds));
    // An exponent no u64 can hold is damage, counted.
    let file = write(&dir, "invalid.pcapng", &pcapng(Some(0x80 | 64), None, &at(1, connection(80, HTTP))));
    let (records, _, stats) = replay(vec![file]);
    assert_eq!((records.len(), stats.bad_timestamps), (0, 5));
}

#[test]
fn a_file_cut_in_its_first_block_is_named_so() {
    let dir = scratch("cut-header");
    let whole = pcapng(None, None, &at(1, connection(80, HTTP)));
    let ng = write(&dir, "cut.pcapng", &whole[..10]);
    let legacy = write(&dir, "cut.pcap", &pcap(&[])[..12]);
    let garbage = write(&dir, "garbage.pcap", b"this is not a capture file at all");
    let (_, results, _) = replay(vec![ng, legacy, garbage]);
    let messages: Vec<String> =
        results.iter().map(|r| r.as_ref().err().map(ToString::to_string).unwrap_or_default()).collect();
    assert!(messages[0].contains("pcapng file cut short in its first header"), "{messages:?}");
    assert!(messages[1].contains("pcap file cut short in its first header"), "{messages:?}");
    assert!(messages[2].contains("not a pcap or pcapng file"), "{messages:?}");
}

#[test]
fn a_record_longer_than_any_packet_is_corruption_not_a_cut() {
    let dir = scratch("caplen");
    let mut records: Vec<(u32, Vec<u8>)> = connection(80, HTTP).into_iter().map(|f| (1, f)).collect();
    records.truncate(2);
    let mut file = pcap(&records);
    // A record claiming 0xffffffff bytes, then valid packets.
    file.extend([1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for (secs, frame) in connection(81, HTTP).into_iter().map(|f| (1u32, f)) {
        file.extend(pcap(&[(secs, frame)])[24..].iter());
    }
    let path = write(&dir, "caplen.pcap", &file);
    let (_, results, stats) = replay(vec![path]);
    let message = results[0].as_ref().err().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("corrupt capture after byte") && message.contains("longer than any packet"), "{message}");
    assert_eq!(stats.truncated_files, 0);
}

/// Found by the `capture` fuzz target: a section header (written by editcap), then a Process
/// Information Block whose total length (8) is shorter than the 12 bytes of any block's framing.
/// pcap-parser subtracted the framing unchecked: an overflow panic with overflow checks on;
/// without them the file read as cut short there, the blocks after it silently lost.
const UNDERSIZED_BLOCK: &[u8] = &[
    0x0a, 0x0d, 0x0d, 0x0a, 0x6c, 0x00, 0x00, 0x00, 0x4d, 0x3c, 0x2b, 0x1a, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
    0xff, 0x25, 0xff, 0xff, 0xff, 0x04, 0x00, 0x45, 0x00, 0x45, 0x64, 0x69, 0x74, 0x63, 0x61, 0x70, 0x20, 0x28, 0x57,
    0x69, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x33, 0x2e, 0x30, 0x2e, 0x31, 0x37, 0x20, 0x28, 0x47,
    0x69, 0x74, 0x20, 0x76, 0x34, 0x2e, 0x30, 0x2e, 0x31, 0x34, 0x20, 0x70, 0x61, 0x63, 0x6b, 0x61, 0x67, 0x9b, 0x9b,
    0xdf, 0xa1, 0x73, 0x20, 0x34, 0x2e, 0x30, 0x2e, 0x31, 0x37, 0x2d, 0x30, 0x2b, 0x64, 0x65, 0x62, 0x31, 0x32, 0x75,
    0x3b, 0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x80, 0x08, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x2e, 0x5f, 0xed, 0xee, 0xee, 0x6e, 0xee, 0xee, 0xee, 0xee, 0xee, 0x9d, 0xcc,
    0xb7, 0x87, 0x88, 0xfc, 0x04, 0xf2, 0x02,
];

#[test]
fn a_pcapng_block_shorter_than_its_framing_is_corruption_not_a_panic() {
    let dir = scratch("undersized");
    // The fuzzer's input, and the same block in a big-endian section.
    let found = write(&dir, "found.pcapng", UNDERSIZED_BLOCK);
    let mut big = be_block(&section_header());
    big.extend([0x80, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 8]);
    let big = write(&dir, "big-endian.pcapng", &big);
    let later = write(&dir, "later.pcapng", &pcapng(None, None, &at(1, connection(80, HTTP))));
    let (records, results, _) = replay(vec![found, big, later]);
    for result in &results[..2] {
        let message = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        assert!(
            message.contains("corrupt capture after byte") && message.contains("shorter than its own header"),
            "{message}"
        );
    }
    assert!(results[2].is_ok(), "{results:?}");
    assert_eq!(records.len(), 1, "the file after the damaged ones is replayed");
}

/// A little-endian section header of [`common`] rewritten big-endian: its type, lengths and
/// byte-order magic (the version and section length read the same either way here).
fn be_block(block: &[u8]) -> Vec<u8> {
    let mut out = block.to_vec();
    let n = out.len();
    for range in [0..4, 4..8, n - 4..n] {
        out[range].reverse();
    }
    out[8..12].reverse();
    out
}

#[test]
fn directories_devices_and_fifos_are_named_not_read() {
    let dir = scratch("not-files");
    let fifo = dir.join("capture.pcap");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let (_, results, _) = replay(vec![dir.clone(), "/dev/zero".into(), fifo]);
    let messages: Vec<String> =
        results.iter().map(|r| r.as_ref().err().map(ToString::to_string).unwrap_or_default()).collect();
    assert!(messages[0].ends_with("a directory, not a capture file"), "{messages:?}");
    assert!(messages[1].ends_with("a character device, not a capture file"), "{messages:?}");
    assert!(messages[2].ends_with("a FIFO, not a capture file"), "{messages:?}");
}
