//! `observer replay` as users run it on crafted captures: legs beyond `--max-legs` are counted
//! and make the exit status non-zero; a directory or device is named, not "read error"; the
//! records of a capture far larger than one hand-over between the replay's threads are those of
//! the one-thread pipeline, in the same order.

#[path = "../../observer-wire/tests/common/mod.rs"]
mod common;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::*;
use observer_mesh::Mesh;
use observer_pipeline::{ConnectionRecord, Pipeline};
use observer_wire::{classify::UnknownReason, legs::TrackerConfig, pcap::CaptureSource};
use serde_json::Value;

const NODE: &str = "replay-test-node";

/// Runs `observer replay ARGS` with a deadline: (exit code, stdout, stderr).
fn replay(args: Vec<String>) -> (Option<i32>, String, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_observer"))
            .arg("replay")
            .args(&args)
            .env("RUST_LOG", "info")
            .env("NODE_NAME", NODE)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running observer: {e}"));
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        let _ = tx.send((output.status.code(), text(output.stdout), text(output.stderr)));
    });
    rx.recv_timeout(Duration::from_secs(60)).expect("observer replay ends within the deadline")
}

/// Three connections that never finish their handshake (a SYN each), all open at the end.
fn three_open(dir: &std::path::Path) -> PathBuf {
    let records: Vec<(u32, Vec<u8>)> = (0..3u8)
        .map(|i| (1, tcp(([10, 0, 0, 1], 40000 + u16::from(i)), ([10, 0, 0, 2], 443), 7, 0, SYN, b"")))
        .collect();
    write(dir, "open.pcap", &pcap(&records))
}

#[test]
fn legs_beyond_max_legs_are_reported_and_fail_the_run() {
    let dir = scratch("replay-max-legs");
    let file = three_open(&dir).display().to_string();
    let (code, out, err) = replay(vec![file.clone()]);
    assert_eq!((code, out.lines().count()), (Some(0), 3), "{err}");
    let (code, out, err) = replay(vec!["--max-legs".into(), "2".into(), file]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(err.contains("legs_dropped=1") && err.contains("--max-legs"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_directory_is_named_as_such() {
    let dir = scratch("replay-dir");
    let (code, _, err) = replay(vec![dir.display().to_string(), "/dev/null".into()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("a directory, not a capture file"), "{err}");
    assert!(err.contains("/dev/null: a character device, not a capture file"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `copies` copies of a real mTLS handshake (the raw-IP fixture), each from its own client
/// address, fifty at a time with their segments interleaved (so legs overlap and finish in an
/// order their segments decide), a second of capture time per group (the tracker's timers run),
/// and `open` SYNs never answered (reported when the capture ends).
fn interleaved_handshakes(dir: &std::path::Path, copies: u32, open: u16) -> PathBuf {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../observer-wire/tests/fixtures");
    let frames = observer_wire::pcap::frames(&fixture.join("tls13-rawip-mtls.pcap")).expect("fixture frames");
    let client_port = 43372u16.to_be_bytes();
    let mut records = Vec::new();
    for group in 0..copies.div_ceil(50) {
        let members: Vec<u32> = (group * 50..copies.min(group * 50 + 50)).collect();
        for (_, frame) in &frames {
            for &i in &members {
                let mut frame = frame.clone();
                let [_, a, b, c] = i.to_be_bytes();
                let ihl = usize::from(frame[0] & 0x0f) * 4;
                let at = if frame[ihl..ihl + 2] == client_port { 12 } else { 16 };
                frame[at..at + 4].copy_from_slice(&[10, a, b, c]);
                records.push((group, frame));
            }
        }
    }
    for i in 0..open {
        records.push((copies, tcp(([10, 200, 0, 1], 50000 + i), ([10, 0, 0, 2], 443), 7, 0, SYN, b"")));
    }
    write(dir, "interleaved.pcap", &pcap(&records))
}

/// The records of the one-thread pipeline (the library the fuzz target drives) for `file`, as
/// JSON values.
fn one_thread_records(file: &std::path::Path, max_legs: usize) -> Vec<Value> {
    let mesh = Mesh::default();
    let mut pipeline = Pipeline::new(TrackerConfig { max_legs, ..TrackerConfig::default() }, NODE.to_owned());
    let mut source = CaptureSource::new(max_legs);
    let mut records = Vec::new();
    let mut sink = |record: &ConnectionRecord| records.push(serde_json::to_value(record).expect("serialises"));
    source.file(file, &mut pipeline.bind(&mesh, &mut sink)).expect("the capture replays");
    pipeline.finish(UnknownReason::CaptureEnded);
    pipeline.deliver(&mesh, &mut (), &mut sink);
    records
}

#[test]
fn the_records_of_many_hand_overs_are_the_one_thread_pipelines_in_order() {
    let dir = scratch("replay-threads");
    let file = interleaved_handshakes(&dir, 3000, 40);
    // Every leg, then a tracker that holds 30 of each group's 50 (the others dropped, counted).
    for (max_legs, code, legs) in [(100_000usize, 0, 3040), (30, 1, 60 * 30 + 30)] {
        let (got_code, out, err) = replay(vec!["--max-legs".into(), max_legs.to_string(), file.display().to_string()]);
        assert_eq!(got_code, Some(code), "--max-legs {max_legs}: {err}");
        let got: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
        let want = one_thread_records(&file, max_legs);
        assert_eq!((got.len(), want.len()), (legs, legs), "--max-legs {max_legs}: {err}");
        for (i, (got, want)) in got.iter().zip(&want).enumerate() {
            assert_eq!(got, want, "--max-legs {max_legs}: record {i} differs");
        }
        let mtls = got.iter().filter(|r| r["security"] == "mtls").count();
        assert_eq!(mtls, legs - if code == 0 { 40 } else { 30 }, "mTLS legs");
        assert_eq!(err.contains(&format!("legs_dropped={}", 3040 - legs)), code == 1, "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
