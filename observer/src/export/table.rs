//! A readable live view: one aligned row per leg, a header every screenful. Every value from
//! the wire or a process (SNI, process names) is escaped: a row is one line of printable text.

use std::io::Write;

use observer_wire::printable::escaped;

use super::ConnectionRecord;

/// Rows between repeated headers.
const HEADER_EVERY: usize = 40;

#[derive(Default)]
pub struct Table {
    rows: usize,
}

impl Table {
    pub fn write_row<W: Write>(&mut self, out: &mut W, r: &ConnectionRecord) -> std::io::Result<()> {
        #[expect(clippy::write_literal, reason = "the header shares the row format string, so columns line up")]
        if self.rows.is_multiple_of(HEADER_EVERY) {
            writeln!(
                out,
                "{:<12} {:<24} {:<24} {:<6} {:<10} {:<8} {:<5} {:<14} {:<28} {}",
                "TIME", "CLIENT", "SERVER", "SEEN", "SECURITY", "PROTO", "TLS", "CLIENT-CERT", "SNI", "PROCESS"
            )?;
        }
        self.rows += 1;
        let tls = r.tls.as_ref();
        let json_name = |v: &dyn erased::Name| v.name();
        let process = [&r.client, &r.server]
            .iter()
            .filter_map(|e| e.process.as_ref().map(|p| format!("{}({})", escaped(&p.comm), p.pid)))
            .collect::<Vec<_>>()
            .join(">");
        writeln!(
            out,
            "{:<12} {:<24} {:<24} {:<6} {:<10} {:<8} {:<5} {:<14} {:<28} {}",
            r.time.get(11..23).unwrap_or(&r.time),
            endpoint(&r.client.ip, r.client.port),
            endpoint(&r.server.ip, r.server.port),
            json_name(&r.observed_at),
            json_name(&r.security),
            json_name(&r.protocol),
            tls.and_then(|t| t.version.as_deref()).unwrap_or("-"),
            tls.and_then(|t| t.client_cert.as_ref()).map_or("-", |c| json_name(c)),
            truncate(&escaped(tls.and_then(|t| t.sni.as_deref()).unwrap_or("-")), 28),
            process,
        )
    }
}

fn endpoint(ip: &str, port: u16) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { s.chars().take(max - 1).chain(['…']).collect() }
}

mod erased {
    /// The JSON spelling of a unit enum value, so the table and the JSON agree.
    pub trait Name {
        fn name(&self) -> &'static str;
    }

    impl<T: serde::Serialize> Name for T {
        fn name(&self) -> &'static str {
            observer_wire::names::unit_name(self).unwrap_or("?")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use observer_wire::{
        classify::{Classification, Protocol, Security, TlsDetails},
        legs::{LegRecord, ObservedAt, Peer, Process},
    };

    use super::*;

    #[test]
    fn an_sni_or_process_name_cannot_rewrite_the_terminal() {
        // Move up a row, erase it, print a clean mTLS row in its place; then split the row.
        let sni = "x\x1b[1A\x1b[2K12:00:00.000 10.0.0.1:1 10.0.0.2:443 client mtls\nfake\u{202e}";
        let leg = LegRecord {
            leg: 1,
            time: SystemTime::UNIX_EPOCH,
            client: Peer {
                addr: "10.0.0.1:40000".parse().expect("address"),
                process: Some(Process { pid: 7, uid: 0, comm: "cu\rrl\x07".into(), cgroup_id: 0 }),
            },
            server: Peer { addr: "10.0.0.2:443".parse().expect("address"), process: None },
            observed_at: ObservedAt::Client,
            classification: Classification {
                security: Security::Plaintext,
                protocol: Protocol::Tls,
                reason: None,
                tls: Some(Box::new(TlsDetails { sni: Some(sni.to_owned()), ..Default::default() })),
            },
        };
        let mut out = Vec::new();
        Table::default().write_row(&mut out, &ConnectionRecord::unassessed(&leg, "node")).expect("write");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.lines().count(), 2, "header and one row: {text:?}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n' || c == '\u{202e}'), "{text:?}");
        assert!(text.contains("x\\x1b[1A\\x1b[2K12:00:00.000"), "{text}");
        assert!(text.contains("cu\\rrl\\x07(7)"), "{text}");
    }
}
