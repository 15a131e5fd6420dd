//! Records printed by a thread of its own: `observer replay` hands over each record as the
//! pipeline builds it and goes on reading and classifying while the other core serializes the
//! records (JSON or table rows) and writes them, a slow reader at the other end of a pipe
//! included, instead of doing both in turn.

use std::{
    io::{self, BufWriter},
    os::fd::AsFd as _,
    sync::mpsc,
    thread,
};

use observer_pipeline::{ConnectionRecord, Sink};

use crate::export::{Format, Printer};

/// Records handed over at once: few hand-overs (each may wake the thread).
const BATCH: usize = 128;
/// Batches waiting for the thread at most: what a slow reader can make a replay hold (1024
/// records, a few MiB); past it the replay waits for the reader, as it would without the thread.
const IN_FLIGHT: usize = 8;
/// Bytes written to standard output at once: few writes, as large as a pipe takes.
const CHUNK: usize = 256 * 1024;

/// A [`Sink`] printing records in `format` on standard output from another thread;
/// [`OutputThread::finish`] waits for everything to be written and returns the first error.
pub struct OutputThread {
    batch: Vec<ConnectionRecord>,
    batches: Option<mpsc::SyncSender<Vec<ConnectionRecord>>>,
    /// Batches printed, records and all, given back to be dropped here and the vectors filled
    /// again: a record freed by the thread that allocated it goes back to that thread's cache,
    /// freed by the printing thread it makes every later allocation here take the slow path.
    printed: mpsc::Receiver<Vec<ConnectionRecord>>,
    /// The records of a printed batch, one dropped for each record handed in: freed a batch at
    /// once, they overflow the allocator's per-thread cache and the next large allocation
    /// stops to consolidate them.
    spent: Vec<ConnectionRecord>,
    printer: Option<thread::JoinHandle<io::Result<()>>>,
}

impl OutputThread {
    /// Start the printing thread.
    pub fn start(format: Format) -> io::Result<Self> {
        // Written through a descriptor of its own: standard output's line buffer would split
        // every chunk at its last newline into two writes.
        let stdout = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let (batches, received) = mpsc::sync_channel::<Vec<ConnectionRecord>>(IN_FLIGHT);
        // Unbounded, but it never holds more than the batches in existence (`IN_FLIGHT` + 3):
        // one is taken back at every hand-over, and a new one made only when none came back.
        let (give_back, printed) = mpsc::channel();
        let printer = thread::Builder::new().name("output".to_owned()).spawn(move || {
            let mut printer = Printer::new(format, BufWriter::with_capacity(CHUNK, stdout));
            for batch in received {
                for record in &batch {
                    printer.print(record)?;
                }
                let _ = give_back.send(batch);
            }
            printer.flush()
        })?;
        Ok(Self {
            batch: Vec::with_capacity(BATCH),
            batches: Some(batches),
            printed,
            spent: Vec::new(),
            printer: Some(printer),
        })
    }

    /// Hand the batch to the thread. When the thread has stopped (a write error) the records
    /// are dropped: the error comes out of [`OutputThread::finish`].
    fn hand_over(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        // The spent batch's vector, once its records are all dropped (a batch's worth of records
        // ago: always, but for the first batches and a printing thread that fell behind).
        self.spent.clear();
        let next = match std::mem::take(&mut self.spent) {
            emptied if emptied.capacity() >= BATCH => emptied,
            _ => Vec::with_capacity(BATCH),
        };
        let batch = std::mem::replace(&mut self.batch, next);
        if let Some(batches) = &self.batches
            && batches.send(batch).is_err()
        {
            self.batches = None;
        }
        if let Ok(printed) = self.printed.try_recv() {
            self.spent = printed;
        }
    }

    /// Hand over what is left, wait until the thread has written everything, and return the
    /// first error it met.
    pub fn finish(mut self) -> io::Result<()> {
        self.hand_over();
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        self.batches = None;
        match self.printer.take() {
            Some(printer) => match printer.join() {
                Ok(result) => result,
                Err(_) => Err(io::Error::other("the output thread panicked")),
            },
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "output already finished")),
        }
    }
}

impl Sink for OutputThread {
    fn record(&mut self, record: &ConnectionRecord) {
        self.record_owned(record.clone());
    }

    fn record_owned(&mut self, record: ConnectionRecord) {
        drop(self.spent.pop());
        self.batch.push(record);
        if self.batch.len() >= BATCH {
            self.hand_over();
        }
    }
}

impl Drop for OutputThread {
    /// Unfinished (an error path): what was handed over is still written before the thread ends.
    fn drop(&mut self) {
        if self.printer.is_some() {
            self.hand_over();
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use observer_wire::{
        classify::{Classification, Protocol, Security},
        legs::{LegRecord, ObservedAt, Peer},
    };

    use super::*;

    fn record() -> ConnectionRecord {
        let peer = |addr: &str| Peer { addr: addr.parse().expect("address"), process: None };
        let leg = LegRecord {
            leg: 1,
            time: SystemTime::UNIX_EPOCH,
            client: peer("10.0.0.1:40000"),
            server: peer("10.0.0.2:443"),
            observed_at: ObservedAt::Wire,
            classification: Classification {
                security: Security::Plaintext,
                protocol: Protocol::Unknown,
                reason: None,
                tls: None,
            },
        };
        ConnectionRecord::unassessed(&leg, "node")
    }

    #[test]
    fn records_handed_over_after_the_thread_stopped_are_an_error_not_a_hang() {
        let mut output = OutputThread::start(Format::Json).expect("thread");
        output.join().expect("a thread with nothing to print ends cleanly");
        // More than the channel holds: a send that waited for the stopped thread would hang.
        for _ in 0..BATCH * (IN_FLIGHT + 2) {
            output.record_owned(record());
        }
        assert_eq!(output.finish().expect_err("finished twice").kind(), io::ErrorKind::BrokenPipe);
    }
}
