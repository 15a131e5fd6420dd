//! The replay's pipeline on a thread of its own: the reading thread decodes frames and rebuilds
//! TCP connections, this one reassembles, classifies, judges and builds the records, so the two
//! halves of a replay run on two cores instead of in turn.
//!
//! The events cross in batches, each owning a copy of its payload bytes. The pipeline sees them
//! in the order the source made them, so its records come out in the same order as without the
//! thread. What the pipeline tells the source (stop sampling a decided leg, forget a reported
//! one) is not sent back: it would arrive a batch late, so it could not make the output the same
//! as when it arrives at once, only spare the reading thread some copies. The later events of
//! such a leg reach the tracker, which does nothing with them but count them
//! (`events_for_unknown_legs`): every leg of a capture is reported when it decides, not held.

use std::{io, sync::mpsc, thread, time::Instant};

use observer_mesh::load::Mesh;
use observer_pipeline::Pipeline;
use observer_wire::{
    classify::UnknownReason,
    legs::{Direction, Event, LegId, Legs, MAX_STREAM_BYTES, SourceControl, StreamEnd, TrackerStats},
};

use super::output_thread::OutputThread;

/// Steps handed over at once: few hand-overs (each may wake the thread), and a batch that stays
/// in the cache between the two threads (a step is 32 bytes).
const BATCH_STEPS: usize = 1024;
/// Payload bytes a batch holds before it is handed over (one frame's may take it past this).
const BATCH_BYTES: usize = 128 << 10;
/// Batches waiting for the thread at most (about 1 MiB of payload); past it the reading thread
/// waits for the pipeline.
const IN_FLIGHT: usize = 8;

/// One step of the source, as the pipeline is to take it: small, since every event of a
/// replay crosses as one (the opens, large and one per connection, wait in `Batch::opens`).
enum Step {
    /// The capture time of the steps that follow.
    Now(Instant),
    /// Capture time passed: the pipeline's timers run.
    Tick,
    /// The next event of `Batch::opens` (an `Open` or a `Joined`).
    Open,
    /// Payload of `leg`; its bytes are `Batch::payload[start..start + len]`.
    Data {
        leg: LegId,
        offset: u64,
        start: u32,
        len: u32,
        direction: Direction,
    },
    DirectionEnd {
        leg: LegId,
        direction: Direction,
        end: StreamEnd,
    },
    Close {
        leg: LegId,
    },
}

/// Steps in source order, and what they refer to.
#[derive(Default)]
struct Batch {
    steps: Vec<Step>,
    opens: Vec<Event<'static>>,
    payload: Vec<u8>,
}

impl Batch {
    fn with_capacity() -> Self {
        Self {
            steps: Vec::with_capacity(BATCH_STEPS),
            opens: Vec::new(),
            payload: Vec::with_capacity(BATCH_BYTES + MAX_STREAM_BYTES),
        }
    }

    /// Feed the steps to `pipeline`, emptying the batch.
    fn replay(&mut self, pipeline: &mut Pipeline, now: &mut Instant) {
        let mut opens = self.opens.drain(..);
        for step in self.steps.drain(..) {
            match step {
                Step::Now(at) => *now = at,
                Step::Tick => pipeline.tick(*now),
                Step::Open => {
                    if let Some(event) = opens.next() {
                        pipeline.event(event, *now);
                    }
                }
                Step::Data { leg, offset, start, len, direction } => {
                    let (start, len) = (start as usize, len as usize);
                    let bytes = &self.payload[start..start + len];
                    pipeline.event(Event::Data { leg, direction, offset, bytes }, *now);
                }
                Step::DirectionEnd { leg, direction, end } => {
                    pipeline.event(Event::DirectionEnd { leg, direction, end }, *now);
                }
                Step::Close { leg } => pipeline.event(Event::Close { leg }, *now),
            }
        }
        self.payload.clear();
    }
}

/// What the pipeline thread hands back when the source is done.
pub struct Finished {
    pub tracker: TrackerStats,
    /// The first error writing the records met.
    pub output: io::Result<()>,
}

/// The [`Legs`] a [`CaptureSource`](observer_wire::pcap::CaptureSource) feeds: every event
/// copied into the batch handed to the pipeline's thread.
pub struct TrackerThread<'scope> {
    batch: Batch,
    /// The capture time of the last `Step::Now` of the batch.
    now: Option<Instant>,
    batches: Option<mpsc::SyncSender<Batch>>,
    /// Batches the thread is done with, emptied, to be filled again (no allocation per batch).
    spent: mpsc::Receiver<Batch>,
    thread: thread::ScopedJoinHandle<'scope, Finished>,
}

impl<'scope> TrackerThread<'scope> {
    /// Start `pipeline` on a thread of `scope`, judging legs against `mesh` and printing the
    /// records on `output`.
    pub fn start<'env>(
        scope: &'scope thread::Scope<'scope, 'env>,
        mut pipeline: Pipeline,
        mesh: &'scope Mesh,
        mut output: OutputThread,
    ) -> io::Result<Self> {
        let (batches, received) = mpsc::sync_channel::<Batch>(IN_FLIGHT);
        // Unbounded, but it never holds more than the batches in existence (`IN_FLIGHT` + 3):
        // one is taken back at every hand-over, and a new one made only when none came back.
        let (give_back, spent) = mpsc::channel();
        let thread = thread::Builder::new().name("pipeline".to_owned()).spawn_scoped(scope, move || {
            let mut now = Instant::now();
            for mut batch in received {
                batch.replay(&mut pipeline, &mut now);
                pipeline.deliver(mesh, &mut (), &mut output);
                let _ = give_back.send(batch);
            }
            pipeline.finish(UnknownReason::CaptureEnded);
            pipeline.deliver(mesh, &mut (), &mut output);
            Finished { tracker: pipeline.stats(), output: output.finish() }
        })?;
        Ok(Self { batch: Batch::with_capacity(), now: None, batches: Some(batches), spent, thread })
    }

    fn push(&mut self, step: Step, now: Instant) {
        if self.now != Some(now) {
            self.now = Some(now);
            self.batch.steps.push(Step::Now(now));
        }
        self.batch.steps.push(step);
        if self.batch.steps.len() >= BATCH_STEPS || self.batch.payload.len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        if self.batch.steps.is_empty() {
            return;
        }
        let next = self.spent.try_recv().unwrap_or_else(|_| Batch::with_capacity());
        let batch = std::mem::replace(&mut self.batch, next);
        // Every batch starts with its time.
        self.now = None;
        // A thread that stopped (it panicked) takes nothing more; `finish` reports it.
        if let Some(batches) = &self.batches
            && batches.send(batch).is_err()
        {
            self.batches = None;
        }
    }

    /// Hand over what is left and wait for the pipeline to report every leg still held and for
    /// its records to be written.
    pub fn finish(mut self) -> io::Result<Finished> {
        self.hand_over();
        self.batches = None;
        self.thread.join().map_err(|_| io::Error::other("the pipeline thread panicked"))
    }
}

impl Legs for TrackerThread<'_> {
    fn event(&mut self, event: Event<'_>, now: Instant) {
        let step = match event {
            Event::Data { leg, direction, offset, bytes } => {
                let start = self.batch.payload.len();
                self.batch.payload.extend_from_slice(bytes);
                // A frame's payload is far below 4 GiB (the reader takes no block beyond 16 MiB).
                let (Ok(start), Ok(len)) = (u32::try_from(start), u32::try_from(bytes.len())) else {
                    self.batch.payload.truncate(start);
                    return;
                };
                Step::Data { leg, offset, start, len, direction }
            }
            Event::DirectionEnd { leg, direction, end } => Step::DirectionEnd { leg, direction, end },
            Event::Close { leg } => Step::Close { leg },
            Event::Open { leg, time, client, server, observed_at } => {
                self.batch.opens.push(Event::Open { leg, time, client, server, observed_at });
                Step::Open
            }
            Event::Joined { leg, side, process, local, remote } => {
                self.batch.opens.push(Event::Joined { leg, side, process, local, remote });
                Step::Open
            }
        };
        self.push(step, now);
    }

    fn tick(&mut self, now: Instant) {
        self.push(Step::Tick, now);
    }

    /// Nothing to hand on here: the records are the thread's, and the source is told nothing
    /// (see the module's documentation).
    fn deliver(&mut self, _: &mut dyn SourceControl) {}
}
