//! What a test expects the observer to report about connections it made, and the check that
//! each was reported exactly once with the right ends, processes and sides. Records of the same
//! path (client IP -> server address) are matched by the client's PID, so a test can make
//! several connections over one path (and other tests' traffic on the machine is ignored).

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
};

use serde_json::Value;

use crate::records::{Checks, Records, at, endpoint, str_at};

/// One connection a test made, and what the observer must say about it.
#[derive(Debug, Clone)]
pub struct ExpectedConn {
    /// Names the connection in failure messages (`tls1.3+cert/ipv6`).
    pub label: String,
    pub client_ip: IpAddr,
    /// The client's own port when the client told us (curl's `%{local_port}`).
    pub client_port: Option<u16>,
    pub client_pid: u32,
    pub client_comm: String,
    pub server: SocketAddr,
    pub server_pid: u32,
    pub server_comm: String,
    /// `both` when both ends run on this machine.
    pub observed_at: String,
    /// Extra field expectations, JSON pointer -> value (`/tls/sni`, `/security`, ...).
    pub fields: Vec<(String, Value)>,
}

impl ExpectedConn {
    /// A connection with both ends on this machine (`observed_at: both`), each end named by its
    /// process; the client's port is not known in advance.
    pub fn both(
        label: impl Into<String>,
        client_ip: IpAddr,
        client_pid: u32,
        client_comm: &str,
        server: SocketAddr,
        server_pid: u32,
        server_comm: &str,
    ) -> Self {
        Self {
            label: label.into(),
            client_ip,
            client_port: None,
            client_pid,
            client_comm: client_comm.into(),
            server,
            server_pid,
            server_comm: server_comm.into(),
            observed_at: "both".into(),
            fields: Vec::new(),
        }
    }

    /// Adds a field expectation.
    pub fn field(mut self, pointer: &str, value: impl Into<Value>) -> Self {
        self.fields.push((pointer.to_owned(), value.into()));
        self
    }

    fn path(&self) -> (IpAddr, SocketAddr) {
        (self.client_ip.to_canonical(), SocketAddr::new(self.server.ip().to_canonical(), self.server.port()))
    }
}

/// Checks every expected connection against the records (all failures collected in `checks`):
/// per path, as many records as connections made, one per client PID, none for another of the
/// test's processes; then per connection (found by client PID, and client port when known)
/// the addresses, ports, processes, side and `fields`.
/// Returns the record matched to each expected connection (`None` when missing).
pub fn check_connections<'r>(
    records: &'r Records,
    expected: &[ExpectedConn],
    checks: &mut Checks,
) -> Vec<Option<&'r Value>> {
    let mut by_path: BTreeMap<(IpAddr, SocketAddr), Vec<&ExpectedConn>> = BTreeMap::new();
    for e in expected {
        by_path.entry(e.path()).or_default().push(e);
    }
    for ((client_ip, server), conns) in &by_path {
        let on_path = records.between(*client_ip, *server);
        let pids: Vec<u32> = conns.iter().map(|c| c.client_pid).collect();
        // Another machine-wide process could use the same path (loopback in another netns):
        // keep the records that belong to our processes by either end.
        let ours = on_path.filter(|r| {
            let cpid = at(r, "/client/process/pid").as_u64();
            let spid = at(r, "/server/process/pid").as_u64();
            cpid.is_some_and(|p| pids.iter().any(|&q| u64::from(q) == p))
                || spid.is_some_and(|p| conns.iter().any(|c| u64::from(c.server_pid) == p))
        });
        if ours.len() != conns.len() {
            let shown = if on_path.is_empty() {
                let near = records.involving(&[*client_ip, server.ip()]);
                format!(
                    "none; of {} records in all, {} touch these addresses:\n{}",
                    records.len(),
                    near.len(),
                    near.first(20)
                )
            } else {
                on_path.to_string()
            };
            checks.check(
                &format!("{client_ip} -> {server}"),
                Err(anyhow::anyhow!(
                    "{} connection(s) made ({}), {} record(s) of ours on this path; all records on it: {shown}",
                    conns.len(),
                    conns.iter().map(|c| c.label.as_str()).collect::<Vec<_>>().join(", "),
                    ours.len()
                )),
            );
        }
    }
    expected
        .iter()
        .map(|e| {
            let (client_ip, server) = e.path();
            let mine = records.between(client_ip, server).filter(|r| {
                at(r, "/client/process/pid").as_u64() == Some(u64::from(e.client_pid))
                    && e.client_port.is_none_or(|p| at(r, "/client/port").as_u64() == Some(u64::from(p)))
            });
            let what = match e.client_port {
                Some(port) => format!("client pid {} port {port}", e.client_pid),
                None => format!("client pid {}", e.client_pid),
            };
            match mine.exactly_one(&what) {
                Ok(record) => {
                    check_one(e, record, checks);
                    records.iter().find(|r| *r == record)
                }
                Err(error) => {
                    checks.check(&e.label, Err(error));
                    None
                }
            }
        })
        .collect()
}

fn check_one(e: &ExpectedConn, r: &Value, checks: &mut Checks) {
    let label = e.label.as_str();
    if let Some(port) = e.client_port {
        let client = endpoint(r, "client");
        if client.map(|c| c.port()) != Some(port) {
            checks.check(label, Err(anyhow::anyhow!("client port: expected {port}, got {client:?}\n  in {r}")));
        }
    } else if at(r, "/client/port").as_u64().is_none_or(|p| p == 0) {
        checks.check(label, Err(anyhow::anyhow!("client port missing\n  in {r}")));
    }
    checks.eq(label, r, "/client/process/comm", e.client_comm.as_str());
    checks.eq(label, r, "/server/process/pid", e.server_pid);
    checks.eq(label, r, "/server/process/comm", e.server_comm.as_str());
    checks.eq(label, r, "/observed_at", e.observed_at.as_str());
    if !str_at(r, "/time").is_some_and(is_rfc3339_millis_utc) {
        checks.check(label, Err(anyhow::anyhow!("time is not RFC 3339 UTC with milliseconds\n  in {r}")));
    }
    if str_at(r, "/node").is_none_or(str::is_empty) {
        checks.check(label, Err(anyhow::anyhow!("node missing\n  in {r}")));
    }
    if at(r, "/conn_id").as_str().is_none_or(str::is_empty) {
        checks.check(label, Err(anyhow::anyhow!("conn_id missing\n  in {r}")));
    }
    for (pointer, value) in &e.fields {
        checks.eq(label, r, pointer, value.clone());
    }
}

/// `2026-11-26T14:00:00.123Z`: the shape docs/OUTPUT.md promises.
pub fn is_rfc3339_millis_utc(time: &str) -> bool {
    let b = time.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 24
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'.'
        && digits(20..23)
        && b[23] == b'Z'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_times_must_be_utc_with_millis() {
        assert!(is_rfc3339_millis_utc("2026-11-26T14:00:00.123Z"));
        assert!(!is_rfc3339_millis_utc("2026-11-26T14:00:00Z"));
        assert!(!is_rfc3339_millis_utc("2026-11-26T14:00:00.123+00:00"));
        assert!(!is_rfc3339_millis_utc("2026-11-26 14:00:00.123Z"));
    }
}
