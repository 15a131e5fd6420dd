//! Every fixture (real captures from real peers, recorded by fixtures/make-fixtures.sh) replayed
//! through the replay source and the whole pipeline; the JSON records must hold the fields that
//! fixtures/expected.json lists for each leg, in order.

use std::path::{Path, PathBuf};

use observer::export::ConnectionRecord;
use observer_wire::{
    legs::TrackerConfig,
    pcap::{Replay, ReplayError},
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../observer-wire/tests/fixtures")
}

fn replay(path: &Path) -> Vec<Value> {
    let mut records = Vec::new();
    let mut replay = Replay::new(TrackerConfig::default());
    let mut sink = |leg: observer_wire::legs::LegRecord| {
        let record = ConnectionRecord::unassessed(&leg, "test-node");
        records.push(serde_json::to_value(record).expect("records serialise"));
    };
    replay.file(path, &mut sink).expect("fixture replays");
    let (stats, _) = replay.finish(&mut sink);
    assert_eq!(stats.damaged, 0, "{}: damaged frames", path.display());
    records
}

/// `expected` is a subset of `actual`: every key it has, with the same value (objects recursively).
fn contains(actual: &Value, expected: &Value) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, want) in e {
                let got = a.get(key).unwrap_or(&Value::Null);
                contains(got, want).map_err(|m| format!("{key}.{m}"))?;
            }
            Ok(())
        }
        _ if actual == expected => Ok(()),
        _ => Err(format!(" is {actual}, expected {expected}")),
    }
}

#[test]
fn every_fixture_classifies_as_expected() {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    let expected: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("valid JSON");
    let mut failures = Vec::new();
    for (file, legs) in &expected {
        let records = replay(&fixtures().join(file));
        let legs = legs.as_array().expect("a list of legs per file");
        if records.len() != legs.len() {
            failures.push(format!("{file}: {} legs, expected {}", records.len(), legs.len()));
            continue;
        }
        for (i, (record, want)) in records.iter().zip(legs).enumerate() {
            if let Err(m) = contains(record, want) {
                failures.push(format!("{file} leg {i}: {m}\n  record: {record}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_capture_in_the_fixture_directory_has_expectations() {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    let expected: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("valid JSON");
    for entry in std::fs::read_dir(fixtures()).expect("fixture dir") {
        let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".pcap") || name.ends_with(".pcapng") {
            assert!(expected.contains_key(&name), "{name} has no entry in expected.json");
        }
    }
}

#[test]
fn unreadable_files_are_errors_naming_the_file() {
    let mut replay = Replay::new(TrackerConfig::default());
    let mut sink = |_| {};
    let missing = fixtures().join("no-such-file.pcap");
    let error = replay.file(&missing, &mut sink).expect_err("missing file");
    assert!(matches!(error, ReplayError::Open { .. }));
    assert!(error.to_string().contains("no-such-file.pcap"), "{error}");

    let dir = std::env::temp_dir().join(format!("observer-replay-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let text = dir.join("notes.pcap");
    std::fs::write(&text, b"this is not a capture file at all, just text").expect("write");
    let error = replay.file(&text, &mut sink).expect_err("text file");
    assert!(error.to_string().contains("notes.pcap") && error.to_string().contains("not a pcap"), "{error}");
    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(replay.file(&empty, &mut sink), Err(ReplayError::Empty { .. })));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_capture_cut_short_replays_what_it_holds() {
    let whole = std::fs::read(fixtures().join("tls12-rsa-mtls.pcap")).expect("fixture");
    let dir = std::env::temp_dir().join(format!("observer-replay-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 7]).expect("write");
    let mut replay = Replay::new(TrackerConfig::default());
    let mut count = 0;
    replay.file(&cut, &mut |_| count += 1).expect("a cut file still replays");
    let (stats, _) = replay.finish(&mut |_| count += 1);
    assert_eq!(stats.truncated_files, 1);
    assert_eq!(count, 1);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// The frames of a little-endian Ethernet pcap, and its file header.
fn frames(pcap: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        frames.push(pcap[at..at + 16 + incl].to_vec());
        at += 16 + incl;
    }
    (pcap[..24].to_vec(), frames)
}

fn write_pcap(name: &str, header: &[u8], frames: &[Vec<u8>]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("observer-replay-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.pcap"));
    std::fs::write(&path, [header.to_vec(), frames.concat()].concat()).expect("write");
    path
}

/// TCP flags of an Ethernet + IPv4 frame (with its 16-byte pcap record header).
fn tcp_flags(frame: &[u8]) -> u8 {
    let ip = 16 + 14;
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    frame[ip + ihl + 13]
}

#[test]
fn a_capture_without_the_handshake_joins_mid_stream() {
    let pcap = std::fs::read(fixtures().join("tls13-ecdsa-mtls.pcap")).expect("fixture");
    let (header, frames) = frames(&pcap);
    let without_syn: Vec<Vec<u8>> = frames.into_iter().filter(|f| tcp_flags(f) & 0x02 == 0).collect();
    let path = write_pcap("midstream", &header, &without_syn);
    let records = replay(&path);
    assert_eq!(records.len(), 1);
    // The higher port is taken as the client, and the bytes still start at the ClientHello.
    assert_eq!(records[0]["server"]["port"], 4433);
    assert_eq!(records[0]["security"], "mtls");
    std::fs::remove_dir_all(path.parent().expect("dir")).expect("cleanup");
}

#[test]
fn damaged_packets_are_counted_and_skipped() {
    let pcap = std::fs::read(fixtures().join("tls12-ecdsa-no-client-cert.pcap")).expect("fixture");
    let (header, mut frames) = frames(&pcap);
    // Cut the last frame (a bare ACK or FIN) inside its TCP header.
    let last = frames.last_mut().expect("frames");
    last.truncate(16 + 14 + 20 + 8);
    let len = (last.len() - 16) as u32;
    last[8..12].copy_from_slice(&len.to_le_bytes());
    let path = write_pcap("damaged", &header, &frames);
    let mut replay = Replay::new(TrackerConfig::default());
    let mut records = Vec::new();
    replay.file(&path, &mut |leg| records.push(leg)).expect("replays");
    let (stats, _) = replay.finish(&mut |leg| records.push(leg));
    assert_eq!(stats.damaged, 1);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].classification.security, observer_wire::classify::Security::Tls);
    std::fs::remove_dir_all(path.parent().expect("dir")).expect("cleanup");
}
