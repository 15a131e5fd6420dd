//! Policy paths an attacker (or a typo) can hand the loader: devices, FIFOs, files larger than
//! the bound, links to devices and to directories, link loops. Each is an error naming the file,
//! never a hang, an unbounded read or a silent skip.

use std::{
    path::{Path, PathBuf},
    sync::mpsc,
    time::Duration,
};

use observer_mesh::{Mesh, load::LoadErrors, load_paths, load_paths_requiring_manifests};

/// A scratch folder of this test, removed first if a previous run left it.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("observer-mesh-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// `load_paths` on a thread with a deadline: a blocking open would otherwise hang the suite.
fn load_within_deadline(paths: Vec<PathBuf>) -> Result<Mesh, LoadErrors> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_paths(&paths));
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("loading returns within the deadline")
}

fn errors(result: Result<Mesh, LoadErrors>) -> String {
    match result {
        Ok(mesh) => panic!("loaded {:?}", mesh.files),
        Err(errors) => errors.to_string(),
    }
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", path.display());
}

const PEER_AUTHENTICATION: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: strict, namespace: web}\nspec:\n  mtls: {mode: STRICT}\n";

#[test]
fn devices_are_refused_not_read_until_memory_runs_out() {
    let text = errors(load_within_deadline(vec!["/dev/zero".into()]));
    assert!(text.contains("/dev/zero") && text.contains("character device"), "{text}");
    let dir = scratch("device-link");
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).expect("link");
    let text = errors(load_within_deadline(vec![dir.clone()]));
    assert!(text.contains("zero.yaml") && text.contains("character device"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn fifos_are_refused_without_blocking() {
    let dir = scratch("fifo");
    mkfifo(&dir.join("policy.yaml"));
    let text = errors(load_within_deadline(vec![dir.join("policy.yaml")]));
    assert!(text.contains("FIFO"), "{text}");
    let text = errors(load_within_deadline(vec![dir.clone()]));
    assert!(text.contains("policy.yaml") && text.contains("FIFO"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn the_read_itself_is_capped() {
    let dir = scratch("large");
    let file = dir.join("large.yaml");
    // Sparse: the bound must stop the read, not the size the file claims (a /proc file claims 0).
    std::fs::File::create(&file).and_then(|f| f.set_len(observer_mesh::manifest::MAX_FILE_BYTES + 1)).expect("sparse");
    let text = errors(load_within_deadline(vec![file]));
    assert!(text.contains("larger than"), "{text}");
    // A regular /proc file reports size 0 and is read (capped) as text: an error, within the deadline.
    let text = errors(load_within_deadline(vec!["/proc/self/mountinfo".into()]));
    assert!(text.contains("mountinfo"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn linked_subdirectories_are_read_and_loops_end() {
    let dir = scratch("linked");
    let real = scratch("linked-target");
    std::fs::write(real.join("broken.yaml"), "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: x, namespace: web}\nspec:\n  mtls: {mode: STRIKT}\n").expect("write");
    std::os::unix::fs::symlink(&real, dir.join("more")).expect("link");
    // A loop back to the top folder, and a second link to the same target.
    std::os::unix::fs::symlink(&dir, real.join("up")).expect("loop");
    std::os::unix::fs::symlink(&real, dir.join("again")).expect("link");
    let text = errors(load_within_deadline(vec![dir.clone()]));
    assert!(text.contains("STRIKT"), "the manifest behind the link is read: {text}");
    assert_eq!(text.matches("STRIKT").count(), 1, "read once: {text}");
    // A link leading nowhere is an error, not a skip.
    std::fs::remove_dir_all(dir.join("more")).ok();
    std::fs::remove_file(dir.join("more")).ok();
    std::fs::remove_file(dir.join("again")).expect("unlink");
    std::fs::write(dir.join("ok.yaml"), PEER_AUTHENTICATION).expect("write");
    std::os::unix::fs::symlink(dir.join("missing"), dir.join("gone")).expect("link");
    let text = errors(load_within_deadline(vec![dir.clone()]));
    assert!(text.contains("gone") && text.contains("broken link"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    std::fs::remove_dir_all(&real).expect("cleanup");
}

#[test]
fn a_file_named_twice_is_read_once() {
    let dir = scratch("twice");
    let file = dir.join("strict.yaml");
    std::fs::write(&file, PEER_AUTHENTICATION).expect("write");
    std::os::unix::fs::symlink(&file, dir.join("link.yaml")).expect("link");
    let mesh = load_within_deadline(vec![file.clone(), file.clone(), dir.clone(), dir.join("link.yaml")])
        .unwrap_or_else(|e| panic!("not a duplicate of itself: {e}"));
    assert_eq!(mesh.files, vec![file]);
    // Two different files defining the same object still are duplicates.
    std::fs::write(dir.join("copy.yaml"), PEER_AUTHENTICATION).expect("write");
    let text = errors(load_within_deadline(vec![dir.clone()]));
    assert!(text.contains("is also defined at"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn a_folder_without_manifests_is_an_error_for_check() {
    let dir = scratch("empty");
    std::fs::write(dir.join("README.md"), "not a manifest").expect("write");
    assert!(load_paths(std::slice::from_ref(&dir)).is_ok(), "run: an empty folder is no policy, not an error");
    let text = match load_paths_requiring_manifests(std::slice::from_ref(&dir)) {
        Ok(_) => panic!("a folder without manifests checked as clean"),
        Err(errors) => errors.to_string(),
    };
    assert!(text.contains("no manifests"), "{text}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
