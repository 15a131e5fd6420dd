//! Owners of the TCP listeners that existed before the observer started.
//!
//! The kernel side learns a listener's owner when it binds; a server that bound before the
//! programs were attached would leave its accepted sockets without an owner. At start-up this
//! walks /proc once: every process's socket inodes, every network namespace's listening sockets
//! (`/proc/PID/net/tcp{,6}`, read once per namespace: a node's host table can hold tens of
//! thousands of TIME_WAIT rows, and every process of the namespace shows the same one), and each
//! namespace's cookie (`SO_NETNS_COOKIE` on a socket made
//! inside it), and fills the same `LISTENERS` map the kernel fills at bind time.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::fd::AsRawFd as _,
    path::Path,
};

use observer_common::{COMM_LEN, ListenerKey, Owner};

/// `SO_NETNS_COOKIE` (Linux 5.14).
const SO_NETNS_COOKIE: libc::c_int = 71;
/// `TCP_LISTEN` in /proc/net/tcp's `st` column.
const TCP_LISTEN: &str = "0A";

/// A listening socket found in /proc, with the process that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub key: ListenerKey,
    pub owner: Owner,
}

/// Every listener of every process, as far as /proc shows them. Processes that vanish or cannot be
/// read are skipped: this is a best effort that only improves attribution.
pub fn scan(cgroup_root: &Path) -> Vec<Listener> {
    let mut cookies: HashMap<u64, Option<u64>> = HashMap::new();
    let mut found = Vec::new();
    let mut seen: HashSet<(u64, u32)> = HashSet::new();
    // (port, inode) of each namespace's listening sockets, by the namespace's inode.
    let mut listening: HashMap<u64, Vec<(u32, u64)>> = HashMap::new();
    let Ok(proc_dir) = fs::read_dir("/proc") else { return found };
    for entry in proc_dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let inodes = socket_inodes(pid);
        if inodes.is_empty() {
            continue;
        }
        let Ok(netns_inode) =
            fs::metadata(format!("/proc/{pid}/ns/net")).map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        else {
            continue;
        };
        let rows = listening.entry(netns_inode).or_insert_with(|| listen_rows(pid));
        let ports: Vec<u32> = rows.iter().filter(|(_, inode)| inodes.contains(inode)).map(|&(port, _)| port).collect();
        if ports.is_empty() {
            continue;
        }
        let Some(netns_cookie) = *cookies.entry(netns_inode).or_insert_with(|| netns_cookie(pid)) else { continue };
        let Some(owner) = owner(pid, cgroup_root) else { continue };
        for port in ports {
            if seen.insert((netns_cookie, port)) {
                found.push(Listener { key: ListenerKey { netns_cookie, port, _pad: 0 }, owner });
            }
        }
    }
    found
}

/// Inodes of the sockets a process holds open.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return HashSet::new() };
    fds.flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// (local port, inode) of the listening TCP sockets in a process's network namespace.
fn listen_rows(pid: u32) -> Vec<(u32, u64)> {
    let mut rows = Vec::new();
    for file in ["tcp", "tcp6"] {
        let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) else { continue };
        rows.extend(parse_listeners(&table));
    }
    rows
}

/// (local port, inode) of each LISTEN row of a /proc/net/tcp{,6} table.
fn parse_listeners(table: &str) -> impl Iterator<Item = (u32, u64)> + '_ {
    table.lines().skip(1).filter_map(|line| {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let mut fields = line.split_whitespace();
        let local = fields.nth(1)?;
        if fields.nth(1)? != TCP_LISTEN {
            return None;
        }
        let port = u32::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
        let inode = fields.nth(5)?.parse().ok()?;
        Some((port, inode))
    })
}

/// The cookie of a process's network namespace: a socket made inside it, asked for its cookie.
/// Runs on a short-lived thread, since `setns` changes the calling thread's namespace.
fn netns_cookie(pid: u32) -> Option<u64> {
    let ns = fs::File::open(format!("/proc/{pid}/ns/net")).ok()?;
    std::thread::spawn(move || {
        // SAFETY: plain syscalls on descriptors this thread owns; the thread ends right after.
        unsafe {
            if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return None;
            }
            let sock = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if sock < 0 {
                return None;
            }
            let mut cookie: u64 = 0;
            let mut len = size_of::<u64>() as libc::socklen_t;
            let rc = libc::getsockopt(sock, libc::SOL_SOCKET, SO_NETNS_COOKIE, (&raw mut cookie).cast(), &mut len);
            libc::close(sock);
            (rc == 0).then_some(cookie)
        }
    })
    .join()
    .ok()
    .flatten()
}

/// pid, uid, gid, comm and cgroup v2 id of a process.
fn owner(pid: u32, cgroup_root: &Path) -> Option<Owner> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let id = |field: &str| -> Option<u32> {
        status.lines().find_map(|l| l.strip_prefix(field))?.split_whitespace().nth(1)?.parse().ok()
    };
    let comm_text = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let mut comm = [0u8; COMM_LEN];
    let name = comm_text.trim_end_matches('\n').as_bytes();
    let n = name.len().min(COMM_LEN - 1);
    comm[..n].copy_from_slice(&name[..n]);
    Some(Owner { pid, uid: id("Uid:")?, gid: id("Gid:")?, known: 1, cgroup_id: cgroup_id(pid, cgroup_root), comm })
}

/// The cgroup v2 id is the inode number of the process's cgroup directory.
fn cgroup_id(pid: u32, cgroup_root: &Path) -> u64 {
    let Ok(cgroups) = fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return 0 };
    let Some(path) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) else { return 0 };
    let dir = cgroup_root.join(path.trim_start_matches('/'));
    fs::metadata(dir).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_rows_are_found_in_a_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 123457 1 0000000000000000 100 0 0 10 0
   2: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1337        0 99 1";
        let rows: Vec<_> = parse_listeners(table).collect();
        assert_eq!(rows, vec![(8080, 123_456), (8443, 99)]);
        assert_eq!(parse_listeners("header only").count(), 0);
        assert_eq!(parse_listeners("h\n garbage 0A").count(), 0);
    }

    #[test]
    fn this_process_sees_its_own_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = u32::from(listener.local_addr().expect("addr").port());
        let cgroup_root = super::super::find_cgroup2().unwrap_or_default();
        let me = std::process::id();
        let mine: Vec<_> = scan(&cgroup_root).into_iter().filter(|l| l.owner.pid == me).collect();
        assert!(mine.iter().any(|l| l.key.port == port), "listener on {port} not found in {mine:?}");
    }
}
