//! One pipeline for the live capture and the replay:
//!
//! ```text
//! source ──events──▶ Flow (tracker: reassembly, classification) ──legs──▶ assess (mesh policy)
//!    ▲                    │                                                   │
//!    └── stop sampling ───┘                                 ConnectionRecord ─┴─▶ sinks
//! ```
//!
//! A source (the live socket table, a capture file) turns what it sees into
//! [`observer_wire::legs::Event`]s; the [`Pipeline`] owns the tracker, tells the source what it
//! may stop sampling, judges every finished leg against the mesh and builds its record once, in
//! one step, for every [`Sink`] (the JSON/table printer, metrics, alerts, the edge table).

mod json;
mod record;

use std::time::Instant;

use observer_mesh::{load::Mesh, verdict};
use observer_wire::{
    classify::UnknownReason,
    legs::{Event, Flow, LegRecord, LegSink, Legs, SourceControl, TrackerConfig, TrackerStats},
};

pub use record::{ConnectionRecord, EndpointRecord, rfc3339_millis};

/// Where records go.
pub trait Sink {
    fn record(&mut self, record: &ConnectionRecord);

    /// The same, the record given away: the pipeline builds each record once and drops it
    /// after this call, so a sink that hands records on (to another thread) takes them without
    /// a copy. By default, [`Sink::record`].
    fn record_owned(&mut self, record: ConnectionRecord) {
        self.record(&record);
    }
}

impl<F: FnMut(&ConnectionRecord)> Sink for F {
    fn record(&mut self, record: &ConnectionRecord) {
        self(record);
    }
}

/// Sources' events in, records out.
pub struct Pipeline {
    flow: Flow,
    node: String,
    records: u64,
}

impl Pipeline {
    /// `node`: the node name every record carries.
    pub fn new(config: TrackerConfig, node: String) -> Self {
        Self { flow: Flow::new(config), node, records: 0 }
    }

    pub fn event(&mut self, event: Event<'_>, now: Instant) {
        self.flow.event(event, now);
    }

    /// Let the legs whose deadlines passed go (delivered at the next [`Pipeline::deliver`]).
    pub fn tick(&mut self, now: Instant) {
        self.flow.tick(now);
    }

    /// The source ends: every leg still held goes, the undecided ones `unknown` with `reason`.
    pub fn finish(&mut self, reason: UnknownReason) {
        self.flow.finish(reason);
    }

    /// Hand on what the events decided: sampling stops to the source, each finished leg judged
    /// against `mesh` and its record to `sink`.
    pub fn deliver(&mut self, mesh: &Mesh, source: &mut dyn SourceControl, sink: &mut dyn Sink) {
        let mut assess = Assess { mesh, node: &self.node, sink, records: &mut self.records };
        self.flow.deliver(source, &mut assess);
    }

    /// This pipeline as what a source that drives itself (a capture file) feeds.
    pub fn bind<'a>(&'a mut self, mesh: &'a Mesh, sink: &'a mut dyn Sink) -> Bound<'a> {
        Bound { flow: &mut self.flow, assess: Assess { mesh, node: &self.node, sink, records: &mut self.records } }
    }

    /// Records built so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn stats(&self) -> TrackerStats {
        self.flow.stats()
    }

    /// Legs held.
    pub fn len(&self) -> usize {
        self.flow.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flow.is_empty()
    }
}

/// The step after the tracker: a leg judged, its record built, handed to the sink.
struct Assess<'a> {
    mesh: &'a Mesh,
    node: &'a str,
    sink: &'a mut dyn Sink,
    records: &'a mut u64,
}

impl LegSink for Assess<'_> {
    fn leg(&mut self, leg: LegRecord) {
        let assessment = verdict::assess(&leg, self.mesh);
        *self.records += 1;
        self.sink.record_owned(ConnectionRecord::from_parts(leg, assessment, self.node));
    }
}

/// A [`Pipeline`] with the policy and sink of one run of a source.
pub struct Bound<'a> {
    flow: &'a mut Flow,
    assess: Assess<'a>,
}

impl Legs for Bound<'_> {
    fn event(&mut self, event: Event<'_>, now: Instant) {
        self.flow.event(event, now);
    }

    fn tick(&mut self, now: Instant) {
        self.flow.tick(now);
    }

    fn deliver(&mut self, source: &mut dyn SourceControl) {
        self.flow.deliver(source, &mut self.assess);
    }
}
