//! The table of open legs: reassembly per direction, classification after each change, and the
//! decision of when a leg is reported.

use std::{
    collections::{BTreeSet, VecDeque},
    time::{Duration, Instant},
};

use super::ids::IdMap;

use super::{Direction, Event, LegId, LegRecord, MAX_STREAM_BYTES, ObservedAt, Output, Peer, Reassembly, Side};
use crate::classify::{Classification, Classifier, Input, Progress, StreamEnd, UnknownReason};

/// Limits and timings of the tracker.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Legs held at once; opens beyond this are dropped and counted.
    pub max_legs: usize,
    /// How long a leg seen from one socket only waits for its peer socket before it is reported:
    /// the two sockets of a local connection open microseconds apart, on different CPUs, and their
    /// events can reach userspace in either order.
    pub pair_grace: Duration,
    /// A leg without any event for this long is reported with what it has (its close was lost or
    /// it idles without sending).
    pub idle_timeout: Duration,
    /// A leg that has sent bytes but is still undecided this long after its open is reported
    /// `unknown` with `handshake_timeout`: a peer that dribbles its ClientHello (or never
    /// finishes it) resets the idle timeout with every byte.
    pub handshake_timeout: Duration,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            max_legs: 100_000,
            pair_grace: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of what the tracker could not keep; exported as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Opens dropped because `max_legs` legs were held.
    pub legs_dropped_full: u64,
    /// Events for legs the tracker does not hold (already reported, or never opened).
    pub events_for_unknown_legs: u64,
    /// Legs reported because of the idle timeout.
    pub legs_idle_expired: u64,
    /// Legs reported because their handshake did not decide within `handshake_timeout`.
    pub legs_handshake_expired: u64,
    /// Payload pieces that added nothing (a retransmission, or the same bytes seen at a second
    /// socket: live, each direction of a local leg should be sampled once, at its sender).
    pub duplicate_data: u64,
}

struct LegState {
    opened: Instant,
    /// This leg's entry in `Tracker::idle_due`, once it has one (see [`Tracker`]).
    idle_due: Option<Instant>,
    last_event: Instant,
    record: LegRecord,
    client: Reassembly,
    server: Reassembly,
    client_end: StreamEnd,
    server_end: StreamEnd,
    closed: bool,
    decided: Option<Classification>,
    /// What the classification of this leg's bytes so far has parsed.
    classifier: Classifier,
}

impl LegState {
    fn end(&self, direction: Direction) -> StreamEnd {
        let (end, stream) = match direction {
            Direction::ClientToServer => (self.client_end, &self.client),
            Direction::ServerToClient => (self.server_end, &self.server),
        };
        if self.closed {
            StreamEnd::Closed
        } else if stream.overflowed() {
            StreamEnd::BudgetSpent
        } else {
            end
        }
    }

    fn classify(&mut self) -> Progress {
        let input = Input {
            client: self.client.bytes(),
            server: self.server.bytes(),
            client_end: self.end(Direction::ClientToServer),
            server_end: self.end(Direction::ServerToClient),
            client_gap: self.client.has_gap(),
            server_gap: self.server.has_gap(),
        };
        self.classifier.classify(&input)
    }

    /// Whether `direction` holds nothing yet: its first piece from offset 0 is then exactly what
    /// the stream would hold after taking it.
    fn untouched(&self, direction: Direction) -> bool {
        let stream = match direction {
            Direction::ClientToServer => &self.client,
            Direction::ServerToClient => &self.server,
        };
        stream.bytes().is_empty() && !stream.has_gap() && !stream.overflowed()
    }

    /// Classifies as if `first`, the first piece of an [`untouched`](Self::untouched)
    /// `direction`, were already held: the same input the stream would give after taking it.
    fn classify_first(&mut self, direction: Direction, first: &[u8]) -> Progress {
        let (client, server) = match direction {
            Direction::ClientToServer => (first, self.server.bytes()),
            Direction::ServerToClient => (self.client.bytes(), first),
        };
        let input = Input {
            client,
            server,
            client_end: self.end(Direction::ClientToServer),
            server_end: self.end(Direction::ServerToClient),
            client_gap: self.client.has_gap(),
            server_gap: self.server.has_gap(),
        };
        self.classifier.classify(&input)
    }

    /// Single-sided live legs wait for their peer socket, up to the grace period.
    fn ready(&self, now: Instant, grace: Duration) -> bool {
        self.decided.is_some()
            && (matches!(self.record.observed_at, ObservedAt::Both | ObservedAt::Wire)
                || now.saturating_duration_since(self.opened) >= grace)
    }
}

/// Open legs, keyed by [`LegId`].
///
/// The deadlines live in timer queues, so a [`Tracker::tick`] costs what falls due, not what is
/// held: pairing graces in a FIFO (every leg gets the same grace, from its open, and opens come
/// in time order), handshake deadlines in another FIFO for the same reason (a silent leg is put
/// back one timeout later, still in order), idle timeouts in an ordered set checked against the
/// leg's latest event when they come up (a leg that got events since is put back at its new
/// deadline; a reported leg takes its entry out). A leg enters that set only when its first
/// handshake deadline passes and it is still held (or at its open, when the idle timeout is the
/// shorter one): the legs of a busy node are reported within milliseconds and never pay for it.
pub struct Tracker {
    config: TrackerConfig,
    legs: IdMap<LegState>,
    stats: TrackerStats,
    grace_due: VecDeque<(Instant, LegId)>,
    handshake_due: VecDeque<(Instant, LegId)>,
    idle_due: BTreeSet<(Instant, LegId)>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            legs: IdMap::default(),
            stats: TrackerStats::default(),
            grace_due: VecDeque::new(),
            handshake_due: VecDeque::new(),
            idle_due: BTreeSet::new(),
        }
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Legs currently held.
    pub fn len(&self) -> usize {
        self.legs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.legs.is_empty()
    }

    /// Apply one event; what it produces is appended to `out`.
    pub fn handle(&mut self, event: Event<'_>, now: Instant, out: &mut Vec<Output>) {
        // Whether the classifier's input may have changed. A live leg seen from both ends gets
        // every segment twice (the client's egress and the server's ingress): the copy changes
        // nothing and is not classified again.
        let mut changed = true;
        let leg = match event {
            Event::Open { leg, time, client, server, observed_at } => {
                if self.legs.contains_key(&leg) {
                    return;
                }
                if self.legs.len() >= self.config.max_legs {
                    self.stats.legs_dropped_full += 1;
                    out.push(Output::StopSampling(leg));
                    return;
                }
                let record = LegRecord {
                    leg,
                    time,
                    client,
                    server,
                    observed_at,
                    classification: Classification::unknown(UnknownReason::NoData),
                };
                self.legs.insert(
                    leg,
                    LegState {
                        opened: now,
                        idle_due: None,
                        last_event: now,
                        record,
                        client: Reassembly::default(),
                        server: Reassembly::default(),
                        client_end: StreamEnd::Open,
                        server_end: StreamEnd::Open,
                        closed: false,
                        decided: None,
                        classifier: Classifier::default(),
                    },
                );
                if !matches!(observed_at, ObservedAt::Both | ObservedAt::Wire) {
                    self.grace_due.push_back((now + self.config.pair_grace, leg));
                }
                // A timeout too large to add to an instant never comes.
                let handshake_due = now.checked_add(self.config.handshake_timeout);
                if let Some(due) = handshake_due {
                    self.handshake_due.push_back((due, leg));
                }
                // The idle deadline is scheduled when the handshake deadline passes with the leg
                // still held (nearly every leg is reported long before), unless it can come first.
                if handshake_due.is_none() || self.config.idle_timeout <= self.config.handshake_timeout {
                    self.schedule_idle(leg);
                }
                leg
            }
            Event::Joined { leg, side, process, local, remote } => {
                let Some(state) = self.state(leg) else { return };
                let record = &mut state.record;
                if side == Side::Client {
                    record.client.addr = local;
                    record.server.addr = remote;
                }
                let peer: &mut Peer = match side {
                    Side::Client => &mut record.client,
                    Side::Server => &mut record.server,
                };
                if peer.process.is_none() {
                    peer.process = process;
                }
                state.record.observed_at = ObservedAt::Both;
                leg
            }
            Event::Data { leg, direction, offset, bytes } => {
                let Some(state) = self.state(leg) else { return };
                // A direction's first piece is classified where it lies (the ring buffer, the
                // capture's buffer): most legs decide on it, and then their bytes are never copied.
                if offset == 0
                    && state.decided.is_none()
                    && !bytes.is_empty()
                    && bytes.len() <= MAX_STREAM_BYTES
                    && state.untouched(direction)
                {
                    let progress = state.classify_first(direction, bytes);
                    if let Progress::Done(classification) = progress {
                        state.decided = Some(classification);
                        out.push(Output::StopSampling(leg));
                    } else {
                        let stream = match direction {
                            Direction::ClientToServer => &mut state.client,
                            Direction::ServerToClient => &mut state.server,
                        };
                        stream.insert(offset, bytes);
                    }
                    // Classified already, on the input the stream now gives.
                    changed = false;
                    leg
                } else {
                    let stream = match direction {
                        Direction::ClientToServer => &mut state.client,
                        Direction::ServerToClient => &mut state.server,
                    };
                    let before = (stream.bytes().len(), stream.has_gap(), stream.overflowed());
                    stream.insert(offset, bytes);
                    changed = before != (stream.bytes().len(), stream.has_gap(), stream.overflowed());
                    self.stats.duplicate_data += u64::from(!changed);
                    leg
                }
            }
            Event::DirectionEnd { leg, direction, end } => {
                let Some(state) = self.state(leg) else { return };
                match direction {
                    Direction::ClientToServer => state.client_end = end,
                    Direction::ServerToClient => state.server_end = end,
                }
                leg
            }
            Event::Close { leg } => {
                let Some(state) = self.state(leg) else { return };
                state.closed = true;
                leg
            }
        };
        let grace = self.config.pair_grace;
        let Some(state) = self.legs.get_mut(&leg) else {
            return;
        };
        state.last_event = now;
        if changed
            && state.decided.is_none()
            && let Progress::Done(classification) = state.classify()
        {
            state.decided = Some(classification);
            out.push(Output::StopSampling(leg));
        }
        if state.ready(now, grace) {
            self.report(leg, out);
        }
    }

    fn state(&mut self, leg: LegId) -> Option<&mut LegState> {
        let state = self.legs.get_mut(&leg);
        if state.is_none() {
            self.stats.events_for_unknown_legs += 1;
        }
        state
    }

    fn report(&mut self, leg: LegId, out: &mut Vec<Output>) {
        if let Some(mut state) = self.legs.remove(&leg) {
            if let Some(due) = state.idle_due {
                self.idle_due.remove(&(due, leg));
            }
            if let Some(classification) = state.decided.take() {
                state.record.classification = classification;
            }
            out.push(Output::Record(state.record));
        }
    }

    /// Report legs whose pairing grace, handshake deadline or idle timeout has run out. Call periodically; the cost
    /// is that of the deadlines that fell due.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let grace = self.config.pair_grace;
        while let Some(&(due, leg)) = self.grace_due.front() {
            if due > now {
                break;
            }
            self.grace_due.pop_front();
            // Undecided legs are reported when they decide (their grace is over by then).
            if self.legs.get(&leg).is_some_and(|state| state.ready(now, grace)) {
                self.report(leg, out);
            }
        }
        self.expire_handshakes(now, out);
        let idle = self.config.idle_timeout;
        while let Some(&(due, leg)) = self.idle_due.first() {
            if due > now {
                break;
            }
            self.idle_due.pop_first();
            let Some(state) = self.legs.get_mut(&leg) else { continue };
            // A timeout too large to add to an instant never comes.
            let Some(deadline) = state.last_event.checked_add(idle) else { continue };
            if deadline > now {
                state.idle_due = Some(deadline);
                self.idle_due.insert((deadline, leg));
                continue;
            }
            // Idle without its close: what came is all there is.
            if state.decided.is_none() {
                state.decided = Some(final_classification(state, UnknownReason::NoData, UnknownReason::Truncated));
            }
            self.stats.legs_idle_expired += 1;
            self.report(leg, out);
        }
    }

    /// Report the legs whose handshake deadline passed undecided after they sent something; a
    /// leg that sent nothing yet is not in a handshake and waits one more timeout (its close or
    /// the idle timeout reports it `no_data`). The leg's entry is dropped when it is reported.
    fn expire_handshakes(&mut self, now: Instant, out: &mut Vec<Output>) {
        let timeout = self.config.handshake_timeout;
        while let Some(&(due, leg)) = self.handshake_due.front() {
            if due > now {
                break;
            }
            self.handshake_due.pop_front();
            let Some(state) = self.legs.get_mut(&leg) else { continue };
            let unscheduled = state.idle_due.is_none();
            if state.decided.is_some() {
                if unscheduled {
                    self.schedule_idle(leg);
                }
                continue;
            }
            if state.client.bytes().is_empty() && state.server.bytes().is_empty() {
                // Later than every entry queued so far: they were queued at earlier instants.
                if let Some(due) = now.checked_add(timeout) {
                    self.handshake_due.push_back((due, leg));
                }
                if unscheduled {
                    self.schedule_idle(leg);
                }
                continue;
            }
            state.decided = Some(Classification::unknown(UnknownReason::HandshakeTimeout));
            self.stats.legs_handshake_expired += 1;
            self.report(leg, out);
        }
    }

    /// Puts a held leg's idle deadline (its latest event plus the idle timeout) in `idle_due`.
    fn schedule_idle(&mut self, leg: LegId) {
        if let Some(state) = self.legs.get_mut(&leg)
            && let Some(due) = state.last_event.checked_add(self.config.idle_timeout)
        {
            state.idle_due = Some(due);
            self.idle_due.insert((due, leg));
        }
    }

    /// Report every leg still held: the source ends (the observer stops, or a capture file
    /// ends). Undecided legs still open are `unknown` with `reason`.
    pub fn flush(&mut self, reason: UnknownReason, out: &mut Vec<Output>) {
        let legs: Vec<LegId> = self.legs.keys().copied().collect();
        self.grace_due.clear();
        self.handshake_due.clear();
        self.idle_due.clear();
        for leg in legs {
            if let Some(state) = self.legs.get_mut(&leg)
                && state.decided.is_none()
            {
                // Still open: whatever it would have sent next will not be seen.
                state.decided = Some(final_classification(state, reason, reason));
            }
            self.report(leg, out);
        }
    }
}

/// The classification of a leg that will get no more bytes: what the bytes decide, else
/// `if_empty` when it sent nothing, `if_partial` when what it sent did not decide.
fn final_classification(state: &mut LegState, if_empty: UnknownReason, if_partial: UnknownReason) -> Classification {
    match state.classify() {
        Progress::Done(classification) => classification,
        Progress::NeedMore if state.client.bytes().is_empty() && state.server.bytes().is_empty() => {
            Classification::unknown(if_empty)
        }
        Progress::NeedMore => Classification::unknown(if_partial),
    }
}

#[cfg(test)]
mod tests;
