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

use std::{io, ops::Range, sync::mpsc, thread, time::Instant};

use observer_mesh::load::Mesh;
use observer_pipeline::Pipeline;
use observer_wire::{
    classify::UnknownReason,
    legs::{Event, Legs, SourceControl, TrackerStats},
};

use super::output_thread::OutputThread;

/// Events handed over at once: few hand-overs (each may wake the thread).
const BATCH_EVENTS: usize = 512;
/// Payload bytes a batch holds before it is handed over (one frame's may take it past this).
const BATCH_BYTES: usize = 256 << 10;
/// Batches waiting for the thread at most (a few MiB of payload); past it the reading thread
/// waits for the pipeline.
const IN_FLIGHT: usize = 4;

/// One step of the source, as the pipeline is to take it.
enum Step {
    /// An event, a `Data` one with its bytes in the batch's `payload` and an empty slice here.
    Event { event: Event<'static>, payload: Range<usize>, now: Instant },
    /// Capture time passed.
    Tick(Instant),
}

/// Steps in source order, and the payload bytes their `Data` events carry.
#[derive(Default)]
struct Batch {
    steps: Vec<Step>,
    payload: Vec<u8>,
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
            for mut batch in received {
                for step in batch.steps.drain(..) {
                    match step {
                        Step::Event { event, payload, now } => {
                            let event = match event {
                                Event::Data { leg, direction, offset, .. } => {
                                    Event::Data { leg, direction, offset, bytes: &batch.payload[payload] }
                                }
                                other => other,
                            };
                            pipeline.event(event, now);
                        }
                        Step::Tick(now) => pipeline.tick(now),
                    }
                }
                pipeline.deliver(mesh, &mut (), &mut output);
                batch.payload.clear();
                let _ = give_back.send(batch);
            }
            pipeline.finish(UnknownReason::CaptureEnded);
            pipeline.deliver(mesh, &mut (), &mut output);
            Finished { tracker: pipeline.stats(), output: output.finish() }
        })?;
        Ok(Self { batch: Batch::default(), batches: Some(batches), spent, thread })
    }

    fn push(&mut self, step: Step) {
        self.batch.steps.push(step);
        if self.batch.steps.len() >= BATCH_EVENTS || self.batch.payload.len() >= BATCH_BYTES {
            self.hand_over();
        }
    }

    fn hand_over(&mut self) {
        if self.batch.steps.is_empty() {
            return;
        }
        let next = self.spent.try_recv().unwrap_or_else(|_| Batch {
            steps: Vec::with_capacity(BATCH_EVENTS),
            payload: Vec::with_capacity(BATCH_BYTES),
        });
        let batch = std::mem::replace(&mut self.batch, next);
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
                let event = Event::Data { leg, direction, offset, bytes: &[] };
                Step::Event { event, payload: start..self.batch.payload.len(), now }
            }
            Event::Open { leg, time, client, server, observed_at } => {
                Step::Event { event: Event::Open { leg, time, client, server, observed_at }, payload: 0..0, now }
            }
            Event::Joined { leg, side, process, local, remote } => {
                Step::Event { event: Event::Joined { leg, side, process, local, remote }, payload: 0..0, now }
            }
            Event::DirectionEnd { leg, direction, end } => {
                Step::Event { event: Event::DirectionEnd { leg, direction, end }, payload: 0..0, now }
            }
            Event::Close { leg } => Step::Event { event: Event::Close { leg }, payload: 0..0, now },
        };
        self.push(step);
    }

    fn tick(&mut self, now: Instant) {
        self.push(Step::Tick(now));
    }

    /// Nothing to hand on here: the records are the thread's, and the source is told nothing
    /// (see the module's documentation).
    fn deliver(&mut self, _: &mut dyn SourceControl) {}
}
