//! The tracker between a source and what consumes finished legs, with the two ways its outputs
//! flow: back to the source (stop sampling a decided leg, forget a reported one) and on to a
//! [`LegSink`]. Live capture and pcap replay both feed a [`Flow`] through the [`Legs`] interface,
//! so everything after the source is the same code.

use std::time::Instant;

use super::{Event, LegId, LegRecord, Output, Tracker, TrackerConfig, TrackerStats};
use crate::classify::UnknownReason;

/// What the tracker's outputs tell the source of the events.
pub trait SourceControl {
    /// The leg's classification is final: its bytes need not be sampled any more.
    fn stop_sampling(&mut self, leg: LegId);
    /// The leg was reported and left the tracker: its later events are noise.
    fn reported(&mut self, leg: LegId);
}

/// A source that needs no feedback (tests, tools).
impl SourceControl for () {
    fn stop_sampling(&mut self, _: LegId) {}
    fn reported(&mut self, _: LegId) {}
}

/// Where finished legs go.
pub trait LegSink {
    fn leg(&mut self, leg: LegRecord);
}

impl<F: FnMut(LegRecord)> LegSink for F {
    fn leg(&mut self, leg: LegRecord) {
        self(leg);
    }
}

/// What a source feeds: events as they come, a tick as time passes, and a delivery point after
/// each batch (a ring buffer drain, a frame) where what the events decided is handed on.
pub trait Legs {
    fn event(&mut self, event: Event<'_>, now: Instant);
    fn tick(&mut self, now: Instant);
    fn deliver(&mut self, source: &mut dyn SourceControl);
}

/// The tracker and its pending outputs.
pub struct Flow {
    tracker: Tracker,
    outputs: Vec<Output>,
}

impl Flow {
    pub fn new(config: TrackerConfig) -> Self {
        Self { tracker: Tracker::new(config), outputs: Vec::new() }
    }

    pub fn event(&mut self, event: Event<'_>, now: Instant) {
        self.tracker.handle(event, now, &mut self.outputs);
    }

    /// Report the legs whose deadlines passed (delivered at the next [`Flow::deliver`]).
    pub fn tick(&mut self, now: Instant) {
        self.tracker.tick(now, &mut self.outputs);
    }

    /// The source ends: every leg still held is reported, the undecided ones `unknown` with `reason`.
    pub fn finish(&mut self, reason: UnknownReason) {
        self.tracker.flush(reason, &mut self.outputs);
    }

    /// Route what is pending: sampling stops and reported legs to the source, legs to `sink`.
    pub fn deliver(&mut self, source: &mut dyn SourceControl, sink: &mut dyn LegSink) {
        for output in self.outputs.drain(..) {
            match output {
                Output::StopSampling(leg) => source.stop_sampling(leg),
                Output::Record(leg) => {
                    source.reported(leg.leg);
                    sink.leg(leg);
                }
            }
        }
    }

    pub fn stats(&self) -> TrackerStats {
        self.tracker.stats()
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// This flow as the [`Legs`] a source feeds, its legs going to `sink`.
    pub fn into_sink<'a>(&'a mut self, sink: &'a mut dyn LegSink) -> Bound<'a> {
        Bound { flow: self, sink }
    }
}

/// A [`Flow`] with the sink its legs go to.
pub struct Bound<'a> {
    flow: &'a mut Flow,
    sink: &'a mut dyn LegSink,
}

impl Legs for Bound<'_> {
    fn event(&mut self, event: Event<'_>, now: Instant) {
        self.flow.event(event, now);
    }

    fn tick(&mut self, now: Instant) {
        self.flow.tick(now);
    }

    fn deliver(&mut self, source: &mut dyn SourceControl) {
        self.flow.deliver(source, self.sink);
    }
}
