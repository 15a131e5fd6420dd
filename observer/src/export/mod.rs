//! Output of finished legs: the JSON line contract (docs/OUTPUT.md), a table for people, and the
//! OpenTelemetry metrics (pushed over OTLP, scraped by Prometheus).

pub mod attributes;
pub mod health;
pub mod metrics;
pub mod serve;
mod table;
pub mod telemetry;

pub use observer_pipeline::{ConnectionRecord, EndpointRecord, rfc3339_millis};
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
/// As a pipeline [`Sink`](observer_pipeline::Sink) it stops at the first write error and keeps it
/// for the caller ([`Printer::take_error`]).
pub struct Printer<W: Write> {
    format: Format,
    table: Table,
    out: W,
    error: Option<std::io::Error>,
    /// One record's JSON line, built whole and written in one call.
    line: Vec<u8>,
}

impl<W: Write> Printer<W> {
    pub fn new(format: Format, out: W) -> Self {
        Self { format, table: Table::default(), out, error: None, line: Vec::with_capacity(1024) }
    }

    /// The first write error a record met as a sink, if any (later records were not written).
    pub fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    pub fn print(&mut self, record: &ConnectionRecord) -> std::io::Result<()> {
        match self.format {
            Format::Json => {
                self.line.clear();
                record.write_json(&mut self.line);
                self.line.push(b'\n');
                self.out.write_all(&self.line)?;
            }
            Format::Table => self.table.write_row(&mut self.out, record)?,
        }
        Ok(())
    }

    /// Push what is buffered to the output.
    ///
    /// A record's earlier write error comes first.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.error.take() {
            Some(error) => Err(error),
            None => self.out.flush(),
        }
    }
}

impl<W: Write> observer_pipeline::Sink for Printer<W> {
    fn record(&mut self, record: &ConnectionRecord) {
        if self.error.is_none()
            && let Err(error) = self.print(record)
        {
            self.error = Some(error);
        }
    }
}
