//! `observer check` as users run it: the binary on fixture directories, its output lines and
//! exit codes (0 clean, 1 findings, 2 invalid input).

use std::{path::PathBuf, process::Command};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../observer-mesh/testdata").join(name)
}

fn check(paths: &[PathBuf]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_observer"))
        .arg("check")
        .args(paths)
        .env("RUST_LOG", "off")
        .output()
        .unwrap_or_else(|e| panic!("running observer: {e}"));
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

#[test]
fn findings_exit_1_with_one_line_each() {
    let (code, out, err) = check(&[testdata("check/mistakes")]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(out.lines().count(), 9, "{out}");
    for line in out.lines() {
        let mut parts = line.splitn(3, ": ");
        let at = parts.next().unwrap_or("");
        let (file, number) = at.rsplit_once(':').unwrap_or(("", ""));
        assert!(file.ends_with(".yaml") && number.parse::<u32>().is_ok(), "not file:line: {line}");
        assert!(parts.next().is_some_and(|kind| kind.chars().all(|c| c.is_ascii_lowercase() || c == '_')), "{line}");
    }
}

#[test]
fn clean_manifests_exit_0() {
    let (code, out, err) = check(&[testdata("check/clean")]);
    assert_eq!((code, out.as_str()), (Some(0), ""), "{err}");
}

#[test]
fn invalid_manifests_exit_2_with_every_error() {
    let (code, out, err) = check(&[testdata("invalid")]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    assert!(err.contains("broken.yaml:6: PeerAuthentication: unknown mTLS mode \"STRIKT\""), "{err}");
    assert!(err.contains("second.yaml:11: Expectation: unknown security \"encrypted\""), "{err}");
}

#[test]
fn a_list_with_several_bad_items_names_each() {
    let (code, out, err) = check(&[testdata("invalid-list")]);
    assert_eq!((code, out.as_str()), (Some(2), ""), "{err}");
    for needle in [
        "list.yaml:17: items[1].spec.mtls.mode: expected",
        "list.yaml:25: items[2].metadata.labels[0]: expected",
        "list.yaml:35: items[3].spec.trafficPolicy.portLevelSettings[0].port.number: invalid u32",
        "list.yaml:37: items[3].spec.trafficPolicy.tls[0]: expected",
        "list.yaml:42: items[4].spec.ports: expected",
        "list.yaml:47: PeerAuthentication: unknown mTLS mode \"STRIKT\"",
        "observer check: 6 error(s)",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
}
