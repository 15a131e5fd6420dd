//! The edge map and the STRICT-readiness answer (issue 11): an [`EdgeTable`] aggregates the
//! same [`ConnectionRecord`](crate::export::ConnectionRecord)s as the JSON output into one
//! entry per (client, server, server port), bounded by `--max-edges`; [`api`] serves it on the
//! metrics listener as `/v1/edges` and `/v1/readiness`; `observer edges` and
//! `observer readiness` (cli/edges.rs) read it from a daemon, JSON lines or captures, or build
//! it from the metrics a Prometheus scraped of every node's daemon.
//!
//! - [`observation`]: the fields read from a record or a JSON line;
//! - [`table`]: the bounded table (LRU eviction, O(1) per record);
//! - [`model`]: the snapshot served and read back, and its filters;
//! - [`readiness`]: the answer for a namespace or workload;
//! - [`render`]: table, Graphviz and text for people (names escaped);
//! - [`api`]: the HTTP routes and their query validation;
//! - [`prometheus`]: the same snapshot from the exported metrics of every node, with PromQL.

pub mod api;
pub mod model;
pub mod observation;
pub mod prometheus;
pub mod readiness;
pub mod render;
mod table;

use std::{
    io::BufRead,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
};

pub use model::{Edge, End, Filter, SecurityMix, Snapshot};
pub use observation::{Observation, RecordLine};
pub use readiness::{Readiness, Target};
pub use table::{EdgeTable, MAX_NAME, TableStats, cut};

/// Default `--max-edges`.
pub const DEFAULT_MAX_EDGES: usize = 10_000;
/// Longest JSON line read; a longer one is skipped and counted.
pub const MAX_LINE: usize = 1 << 20;

/// `--max-edges`, for `observer run`.
#[derive(clap::Args, Debug, Clone)]
pub struct EdgeArgs {
    /// Most client → server edges held for /v1/edges and /v1/readiness (on --metrics-addr);
    /// the least recently seen is evicted (and counted) beyond it.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EDGES)]
    pub max_edges: usize,
}

impl EdgeArgs {
    /// Size the daemon's table (call before the first record). Without a listener to serve it
    /// (`served` false) nothing reads the table, and records are not aggregated.
    pub fn install(&self, served: bool) {
        if let Ok(mut table) = shared().lock() {
            *table = EdgeTable::new(self.max_edges);
        }
        ENABLED.store(served, Ordering::Relaxed);
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// The daemon's table: fed by the run loop, read by the metrics listener.
pub fn shared() -> &'static Mutex<EdgeTable> {
    static TABLE: OnceLock<Mutex<EdgeTable>> = OnceLock::new();
    TABLE.get_or_init(|| Mutex::new(EdgeTable::new(DEFAULT_MAX_EDGES)))
}

/// The sink the run loop calls once per record.
pub fn record(record: &crate::export::ConnectionRecord) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Ok(mut table) = shared().lock() {
        table.record(record);
    }
}

/// What reading JSON lines skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    pub lines: u64,
    /// Not a JSON record, or longer than [`MAX_LINE`].
    pub skipped: u64,
}

/// Aggregate JSON lines of `observer run` / `observer replay` output into `table`. A line that
/// is not a record is skipped and counted, never trusted; lines are read with bounded memory.
pub fn read_lines(mut input: impl BufRead, table: &mut EdgeTable) -> std::io::Result<LineStats> {
    let mut stats = LineStats::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        let (n, complete) = read_bounded_line(&mut input, &mut line)?;
        if n == 0 {
            return Ok(stats);
        }
        stats.lines += 1;
        if !complete {
            stats.skipped += 1;
            continue;
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            stats.lines -= 1;
            continue;
        }
        match serde_json::from_slice::<RecordLine>(text) {
            Ok(record) if record.is_record() => table.observe(&record.observation()),
            _ => stats.skipped += 1,
        }
    }
}

/// Read up to a newline, keeping at most [`MAX_LINE`] bytes (the rest of a longer line is
/// consumed and dropped). Returns the bytes consumed and whether the line was kept whole.
fn read_bounded_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut complete) = (0, true);
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok((consumed, complete));
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if complete && line.len() + take <= MAX_LINE {
            line.extend_from_slice(&buf[..take]);
        } else {
            complete = false;
        }
        input.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, complete));
        }
    }
}

#[cfg(test)]
mod tests;
