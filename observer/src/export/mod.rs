//! Output of finished legs: the JSON line contract (docs/OUTPUT.md), a table for people, and the
//! OpenTelemetry metrics (pushed over OTLP, scraped by Prometheus).

pub mod attributes;
pub mod health;
pub mod metrics;
mod record;
pub mod serve;
mod table;
pub mod telemetry;

pub use record::{ConnectionRecord, EndpointRecord, rfc3339_millis};
pub use table::Table;

use std::io::Write;

/// How legs are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// Aligned columns for a terminal.
    Table,
}

/// Writes records in the chosen format. Records are not flushed one by one: the caller flushes
/// when it goes idle and at the end (a write and a flush per record cost more than the record).
pub struct Printer<W: Write> {
    format: Format,
    table: Table,
    out: W,
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W) -> Self {
        Self { format, table: Table::default(), out }
    }

    pub fn print(&mut self, record: &ConnectionRecord) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")?;
            }
            Format::Table => self.table.write_row(&mut self.out, record)?,
        }
        Ok(())
    }

    /// Push what is buffered to the output.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
