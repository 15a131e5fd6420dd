//! A real PostgreSQL server as a peer (Debian's postgresql package): a throwaway cluster made
//! with initdb in a temporary directory, run as the `postgres` user inside a namespace, with
//! `ssl = on` and trust authentication, so that `psql` can speak plaintext or upgrade with
//! SSLRequest (the in-protocol STARTTLS the observer follows).

use std::{os::unix::fs::PermissionsExt, path::PathBuf, process::Command};

use anyhow::{Context, bail};

use crate::{
    cmd,
    pki::Leaf,
    process::{Child, ClientRun, Spawn},
    tempdir::TempDir,
};

/// A running PostgreSQL server.
#[derive(Debug)]
pub struct Postgres {
    pub child: Child,
    pub port: u16,
    _dir: TempDir,
}

/// The newest installed server's bin directory (`/usr/lib/postgresql/<major>/bin`).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut majors: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL server not installed (/usr/lib/postgresql)")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    majors.sort_unstable();
    let major = majors.last().context("no PostgreSQL server version installed")?;
    Ok(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")))
}

fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let id = |flag: &str| -> anyhow::Result<u32> {
        let out = cmd::run("id", [flag, user])?;
        String::from_utf8_lossy(&out.stdout).trim().parse().context("id printed no number")
    };
    Ok((id("-u")?, id("-g")?))
}

impl Postgres {
    /// initdb, then `postgres` listening on `[::]` and 0.0.0.0 `port` in `ns` with the leaf as
    /// its server certificate; waits until it listens.
    pub fn start(ns: &str, port: u16, leaf: &Leaf) -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let (uid, gid) = user_ids("postgres")?;
        let dir = TempDir::new("pg")?;
        let data = dir.join("data");
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).context("chown for postgres")?;
        // The server refuses a key readable by others: its own copies, 0600, owned by postgres.
        let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::copy(&leaf.cert, &crt).context("copy certificate")?;
        std::fs::copy(&leaf.key, &key).context("copy key")?;
        for path in [&crt, &key] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).context("chown certificate")?;
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).context("chmod key")?;
        let initdb = Command::new("setpriv")
            .args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            // Not from the test's working directory, which `postgres` may not enter.
            .current_dir("/")
            .output()
            .context("run initdb")?;
        if !initdb.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&initdb.stderr));
        }
        // Trust every client over TCP too (initdb -A trust covers only local and 127.0.0.1/::1).
        let hba = data.join("pg_hba.conf");
        std::fs::write(&hba, "local all all trust\nhost all all all trust\n").context("write pg_hba.conf")?;
        std::os::unix::fs::chown(&hba, Some(uid), Some(gid)).context("chown pg_hba.conf")?;
        let setting = |k: &str, v: String| ["-c".to_owned(), format!("{k}={v}")];
        let mut child = Spawn::new(ns, &bin.join("postgres").to_string_lossy())
            .user(uid, gid)
            .arg("-D")
            .arg(data.to_string_lossy())
            .args(setting("listen_addresses", "*".into()))
            .args(setting("port", port.to_string()))
            .args(setting("unix_socket_directories", dir.path().to_string_lossy().into_owned()))
            .args(setting("ssl", "on".into()))
            .args(setting("ssl_cert_file", crt.to_string_lossy().into_owned()))
            .args(setting("ssl_key_file", key.to_string_lossy().into_owned()))
            .start()?;
        child.wait_listening(port)?;
        Ok(Self { child, port, _dir: dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// `psql` running `select 1` against `host:port` with the given libpq `sslmode` (`disable`:
/// plaintext; `require`: SSLRequest, then TLS; `prefer` falls back to plaintext when refused).
pub fn psql(ns: &str, host: &str, port: u16, sslmode: &str) -> anyhow::Result<ClientRun> {
    let conninfo = format!(
        "host={host} port={port} user=postgres dbname=postgres sslmode={sslmode} gssencmode=disable connect_timeout=10"
    );
    Spawn::new(ns, "psql").args(["-X", "-A", "-t", "-c", "select 1", &conninfo]).run()
}
