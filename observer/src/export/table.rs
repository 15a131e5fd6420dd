//! A readable live view: one aligned row per leg, a header every screenful.

use std::io::Write;

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
            .filter_map(|e| e.process.as_ref().map(|p| format!("{}({})", p.comm, p.pid)))
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
            tls.and_then(|t| t.client_cert.as_ref()).map_or_else(|| "-".to_owned(), |c| json_name(c)),
            truncate(tls.and_then(|t| t.sni.as_deref()).unwrap_or("-"), 28),
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
        fn name(&self) -> String;
    }

    impl<T: serde::Serialize> Name for T {
        fn name(&self) -> String {
            match serde_json::to_value(self) {
                Ok(serde_json::Value::String(s)) => s,
                _ => "?".to_owned(),
            }
        }
    }
}
