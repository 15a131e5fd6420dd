//! Every fixture (real captures from real peers, recorded by fixtures/make-fixtures.sh) replayed
//! through the replay source and the whole pipeline; the JSON records must hold the fields that
//! fixtures/expected.json lists for each leg, in order.

use std::path::{Path, PathBuf};

use observer::{
    export::ConnectionRecord,
    flows::TrackerConfig,
    replay::{Replay, ReplayError},
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn replay(path: &Path) -> Vec<Value> {
    let mut records = Vec::new();
    let mut replay = Replay::new(TrackerConfig::default());
    let mut sink = |leg: observer::flows::LegRecord| {
        let record = ConnectionRecord::from_leg(&leg, "test-node");
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
