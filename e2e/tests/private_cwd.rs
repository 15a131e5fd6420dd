//! The helpers that run as another user (HAProxy sidecars as uid 1337, PostgreSQL as
//! `postgres`) work when the test itself runs from a folder only root can enter, as from a
//! checkout under root's 0700 home: HAProxy fails at start-up when it cannot return to its
//! working directory, so every helper is started from `/`, with its files in world-readable
//! places.
//!
//! Its own test binary: it changes the process's working directory.

use std::{fs, os::unix::fs::PermissionsExt};

use observer_e2e::{
    Mesh, Sidecar, TempDir, Topology,
    peers::Curl,
    pki::{KeyType, Pki},
    postgres::{Postgres, psql},
    require_root,
};

const PG_PORT: u16 = 55437;

#[test]
fn helpers_run_as_other_users_start_from_a_private_working_directory() {
    if !require_root() {
        return;
    }
    let private = TempDir::new("private-cwd").expect("temp dir");
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    std::env::set_current_dir(private.path()).expect("cd into the private folder");

    let mesh = Mesh::builder().pod("pod-a", Sidecar::Strict).pod("pod-b", Sidecar::Strict).build().expect("mesh");
    let b = mesh.pod("pod-b").ipv4();
    let through_mesh = Curl::http(mesh.pod("pod-a").ns(), b.into(), mesh.app_port()).run().expect("curl");
    assert_eq!(through_mesh.http_code, 200, "through both sidecars: {through_mesh}");

    let pki = Pki::new().expect("pki");
    let leaf = pki.issue("pg", KeyType::EcdsaP256, &["pg.e2e.test"], None).expect("cert");
    drop(mesh);
    let topo = Topology::builder().pod("a").pod("b").build().expect("topology");
    let (a, b) = (topo.pod("a"), topo.pod("b"));
    let _pg = Postgres::start(b.ns(), PG_PORT, &leaf).expect("postgres");
    let run = psql(a.ns(), &b.ipv4().to_string(), PG_PORT, "require").expect("psql");
    run.expect_success().expect("psql over TLS");

    std::env::set_current_dir("/").expect("cd /");
}
