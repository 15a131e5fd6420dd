//! `observer replay` as users run it on crafted captures: legs beyond `--max-legs` are counted
//! and make the exit status non-zero; a directory or device is named, not "read error".

#[path = "../../observer-wire/tests/common/mod.rs"]
mod common;

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use common::*;

/// Runs `observer replay ARGS` with a deadline: (exit code, stdout, stderr).
fn replay(args: Vec<String>) -> (Option<i32>, String, String) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_observer"))
            .arg("replay")
            .args(&args)
            .env("RUST_LOG", "info")
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
