//! Standard output written by a thread of its own: `observer replay` hands over full buffers and
//! goes on classifying while the writes (and a slow reader at the other end of a pipe) take
//! their time, instead of stopping at every full pipe.

use std::{
    io::{self, Write},
    sync::mpsc,
    thread,
};

/// Bytes handed over at once: few hand-overs, and writes as large as a pipe takes.
const CHUNK: usize = 256 * 1024;
/// Chunks waiting for the writer at most: what a slow reader can make a replay hold (4 MiB);
/// past it the replay waits for the reader, as it would without the thread.
const IN_FLIGHT: usize = 16;

/// A [`Write`] to standard output through a writer thread; [`OutputThread::finish`] waits for
/// everything to be written and returns the first write error.
pub struct OutputThread {
    buffer: Vec<u8>,
    chunks: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Chunks the writer has written, emptied, to be filled again: a fresh 256 KiB buffer is
    /// fresh pages to fault in, and the allocator hands such sizes back to the kernel on free.
    written: mpsc::Receiver<Vec<u8>>,
    writer: Option<thread::JoinHandle<io::Result<()>>>,
}

impl OutputThread {
    /// Start the writer thread.
    pub fn start() -> io::Result<Self> {
        let (chunks, received) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        // Unbounded, but it never holds more than the chunks in existence (`IN_FLIGHT` + 2).
        let (give_back, written) = mpsc::channel();
        let writer = thread::Builder::new().name("output".to_owned()).spawn(move || {
            let mut out = io::stdout().lock();
            for mut chunk in received {
                out.write_all(&chunk)?;
                chunk.clear();
                let _ = give_back.send(chunk);
            }
            out.flush()
        })?;
        Ok(Self { buffer: Vec::with_capacity(CHUNK), chunks: Some(chunks), written, writer: Some(writer) })
    }

    /// Hand the buffered bytes to the writer; when it has stopped, its error.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let next = self.written.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buffer, next);
        match &self.chunks {
            Some(chunks) if chunks.send(chunk).is_ok() => Ok(()),
            // The writer hung up: it met an error (returned here) or was already finished.
            _ => self.join(),
        }
    }

    /// Wait for the writer to end; its error, or a closed-stream error when it ended before.
    fn join(&mut self) -> io::Result<()> {
        self.chunks = None;
        match self.writer.take() {
            Some(writer) => match writer.join() {
                Ok(result) => result,
                Err(_) => Err(io::Error::other("the output thread panicked")),
            },
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "output already finished")),
        }
    }

    /// Write what is buffered, wait until the writer has written everything, and return the
    /// first error it met.
    pub fn finish(mut self) -> io::Result<()> {
        self.hand_over()?;
        self.join()
    }
}

impl Write for OutputThread {
    // The serializer writes a record a few bytes at a time: these stay inlined appends.
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Handed over before it would outgrow its capacity (a reallocation, and a copy).
        if self.buffer.len() + bytes.len() > CHUNK {
            self.hand_over()?;
        }
        self.buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Hands the buffered bytes to the writer thread without waiting for them to be written
    /// ([`OutputThread::finish`] waits).
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

impl Drop for OutputThread {
    /// Unfinished (an error path): what was handed over is still written before the thread ends.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.hand_over();
            let _ = self.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_written_after_the_writer_stopped_return_an_error_not_a_hang() {
        let mut output = OutputThread::start().expect("thread");
        output.join().expect("a writer with nothing to write ends cleanly");
        output.write_all(&vec![b'x'; CHUNK]).expect("a chunk is buffered");
        output.write_all(b"x").expect_err("the full chunk has no writer any more");
        assert_eq!(output.finish().expect_err("finished twice").kind(), io::ErrorKind::BrokenPipe);
    }
}
