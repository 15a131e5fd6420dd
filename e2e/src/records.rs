//! The observer's JSON records (docs/OUTPUT.md) as `serde_json::Value`s, with filters that pick out a
//! test's own connections (the observer sees every connection on the machine, other tests'
//! included) and assertions whose failure messages show every record seen.

use std::net::{IpAddr, SocketAddr};

use anyhow::bail;
use serde_json::Value;

/// The value at a JSON pointer (`/client/ip`), or null.
pub fn at<'a>(record: &'a Value, pointer: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    record.pointer(pointer).unwrap_or(&NULL)
}

/// The string at a JSON pointer, if it is one.
pub fn str_at<'a>(record: &'a Value, pointer: &str) -> Option<&'a str> {
    at(record, pointer).as_str()
}

/// The address of `client` or `server` in a record, parsed (so `::ffff:a.b.c.d` and `a.b.c.d`,
/// or differently written IPv6, compare equal after canonicalisation).
pub fn endpoint(record: &Value, side: &str) -> Option<SocketAddr> {
    let ip: IpAddr = str_at(record, &format!("/{side}/ip"))?.parse().ok()?;
    let port = u16::try_from(at(record, &format!("/{side}/port")).as_u64()?).ok()?;
    Some(SocketAddr::new(ip.to_canonical(), port))
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Records of one observer run.
#[derive(Debug, Clone, Default)]
pub struct Records {
    records: Vec<Value>,
}

impl Records {
    pub fn new(records: Vec<Value>) -> Self {
        Self { records }
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Value> {
        self.records.iter()
    }

    pub fn all(&self) -> &[Value] {
        &self.records
    }

    /// The first `n` records.
    pub fn first(&self, n: usize) -> Records {
        Records::new(self.records.iter().take(n).cloned().collect())
    }

    /// Records matching a predicate.
    pub fn filter(&self, keep: impl Fn(&Value) -> bool) -> Records {
        Records::new(self.records.iter().filter(|r| keep(r)).cloned().collect())
    }

    /// Records whose server is `server` (the socket's own view: the original destination).
    pub fn to_server(&self, server: SocketAddr) -> Records {
        let server = canonical(server);
        self.filter(|r| endpoint(r, "server") == Some(server))
    }

    /// Records from client address `client_ip` to `server`.
    pub fn between(&self, client_ip: IpAddr, server: SocketAddr) -> Records {
        let client_ip = client_ip.to_canonical();
        self.to_server(server).filter(|r| endpoint(r, "client").is_some_and(|c| c.ip() == client_ip))
    }

    /// Records touching any of `ips` on either end (a test's own pods).
    pub fn involving(&self, ips: &[IpAddr]) -> Records {
        let ips: Vec<IpAddr> = ips.iter().map(|ip| ip.to_canonical()).collect();
        self.filter(|r| {
            ["client", "server"].iter().any(|side| endpoint(r, side).is_some_and(|a| ips.contains(&a.ip())))
        })
    }

    /// Records whose client or server process has this PID.
    pub fn with_pid(&self, pid: u32) -> Records {
        self.filter(|r| {
            ["/client/process/pid", "/server/process/pid"].iter().any(|p| at(r, p).as_u64() == Some(u64::from(pid)))
        })
    }

    /// The only record; fails showing `context` and every record otherwise.
    pub fn exactly_one(&self, context: &str) -> anyhow::Result<&Value> {
        match self.records.as_slice() {
            [one] => Ok(one),
            _ => bail!("{context}: expected exactly one record, got {}\n{self}", self.len()),
        }
    }
}

impl std::fmt::Display for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.records.is_empty() {
            return writeln!(f, "  (no records)");
        }
        for record in &self.records {
            writeln!(f, "  {record}")?;
        }
        Ok(())
    }
}

/// Fails unless `record[pointer] == expected`, showing the record.
pub fn expect_eq(record: &Value, pointer: &str, expected: impl Into<Value>) -> anyhow::Result<()> {
    let expected = expected.into();
    let actual = at(record, pointer);
    if *actual != expected {
        bail!("{pointer}: expected {expected}, got {actual}\n  in {record}");
    }
    Ok(())
}

/// Collects every failed expectation instead of stopping at the first, so one run of a slow
/// end-to-end test shows everything that is wrong.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failure unless `result` is Ok.
    pub fn check(&mut self, label: &str, result: anyhow::Result<()>) {
        if let Err(error) = result {
            self.failures.push(format!("[{label}] {error:#}"));
        }
    }

    /// `record[pointer] == expected`.
    pub fn eq(&mut self, label: &str, record: &Value, pointer: &str, expected: impl Into<Value>) {
        self.check(label, expect_eq(record, pointer, expected));
    }

    /// Fails with every recorded failure.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.failures.is_empty() {
            Ok(())
        } else {
            bail!("{} failed expectation(s):\n{}", self.failures.len(), self.failures.join("\n"))
        }
    }
}
