//! TCP connections rebuilt from segments, turned into the pipeline's [`Event`]s.
//!
//! The client is the SYN sender (the SYN-ACK receiver if only the SYN-ACK was captured); stream
//! offsets count from ISN+1. A connection whose handshake was not captured is joined at its first
//! segment with payload: the endpoint with the higher port is taken as the client (ephemeral
//! ports are high), and each direction's offsets count from the first sequence number seen in it,
//! so its bytes may begin mid-stream and classify as unknown.

use std::{
    collections::{VecDeque, hash_map::Entry},
    net::{IpAddr, SocketAddr},
    time::SystemTime,
};

// Randomly seeded per table: the 5-tuples come from the capture, so whoever made it picks the
// keys, and a fixed hash would let them pile every connection into one bucket.
use foldhash::{HashMap, HashSet};

use super::packet::{Segment, flags};
use crate::legs::{Direction, Event, LegId, MAX_STREAM_BYTES, ObservedAt, Peer, StreamEnd};

/// Most connections held at once (open, and closed ones kept to swallow their late segments);
/// a replay holds twice its tracker's `max_legs`, within this. When full, the oldest is let go
/// in O(1): a closed one silently, an open one closed and counted (`TcpStats::evicted`); its leg
/// is reported with what it had.
pub const MAX_CONNECTIONS: usize = 1 << 20;

/// Sequence distances beyond this are behind the stream start (u32 wrap-around arithmetic).
const MAX_FORWARD: u32 = 1 << 31;

/// One end of a connection as a key: the address as a number (an IPv4 address in the low 32
/// bits) and the port. Half the size of a `SocketAddr`, which holds an IPv6 flow label and scope
/// the decoder never sets: the table of every connection of a capture is paged in as it grows.
/// Ordered and hashed as whole words: a byte array's order is a `memcmp` call, and its derived
/// hash feeds every byte apart (hashing and ordering the two ends are most of a segment's work).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct End {
    ip: u128,
    port: u16,
}

impl End {
    fn of(addr: SocketAddr) -> Self {
        let ip = match addr.ip() {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6),
        };
        Self { ip, port: addr.port() }
    }
}

/// The two ends of a connection, in a fixed order, and their address family (an IPv4 end and
/// the IPv6 address of the same number are two ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey {
    first: End,
    second: End,
    v6: bool,
}

impl FlowKey {
    /// The key of a segment from `src` to `dst`, and whether `src` is its first end.
    fn new(src: SocketAddr, dst: SocketAddr) -> (Self, bool) {
        let (a, b) = (End::of(src), End::of(dst));
        let v6 = src.is_ipv6();
        if a <= b { (Self { first: a, second: b, v6 }, true) } else { (Self { first: b, second: a, v6 }, false) }
    }
}

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        if self.v6 {
            for end in [self.first, self.second] {
                state.write_u128(end.ip);
                state.write_u16(end.port);
            }
        } else {
            // An IPv4 end's address and port in one word each.
            state.write_u64((self.first.ip as u64) << 16 | u64::from(self.first.port));
            state.write_u64((self.second.ip as u64) << 16 | u64::from(self.second.port));
        }
    }
}

struct Connection {
    leg: LegId,
    /// Whether the client is the key's first end.
    client_first: bool,
    /// Sequence number of the first payload byte, per direction.
    client_base: Option<u32>,
    server_base: Option<u32>,
    client_fin: bool,
    server_fin: bool,
    closed: bool,
}

/// Counters of the rebuilding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    pub connections: u64,
    /// Connections joined without their handshake.
    pub midstream: u64,
    /// Open connections let go, oldest first, because `MAX_CONNECTIONS` were held: their legs
    /// are reported with what they had, later segments start a new (mid-stream) connection.
    pub evicted: u64,
}

/// The connections of one capture.
pub struct Connections {
    table: HashMap<FlowKey, Connection>,
    /// Keys in the order their connections were made, with the leg made then: the eviction
    /// order. An entry whose key now holds another leg (reused) is stale and skipped.
    order: VecDeque<(FlowKey, LegId)>,
    /// Most connections held.
    limit: usize,
    /// Entries of `order` looked at while evicting (the work eviction costs).
    eviction_steps: u64,
    /// Legs whose classification is final: their later bytes are not delivered (as live).
    stopped: HashSet<LegId>,
    /// Legs the tracker has reported: nothing more about them is delivered.
    gone: HashSet<LegId>,
    /// The legs one segment closed (a scratch buffer kept between segments).
    closed: Vec<LegId>,
    next_leg: LegId,
    pub stats: TcpStats,
}

impl Connections {
    /// Legs are numbered from `first_leg` (unique across the files of one replay).
    pub fn new(first_leg: LegId) -> Self {
        Self::with_limit(first_leg, MAX_CONNECTIONS)
    }

    /// Holding at most `limit` connections.
    pub fn with_limit(first_leg: LegId, limit: usize) -> Self {
        Self {
            table: HashMap::default(),
            order: VecDeque::new(),
            limit: limit.max(1),
            eviction_steps: 0,
            stopped: HashSet::default(),
            gone: HashSet::default(),
            closed: Vec::new(),
            next_leg: first_leg,
            stats: TcpStats::default(),
        }
    }

    /// Let the oldest connection go; amortised O(1): each `order` entry is looked at once.
    fn evict_oldest(&mut self, events: &mut Vec<Event<'_>>) {
        while let Some((key, leg)) = self.order.pop_front() {
            self.eviction_steps += 1;
            if self.table.get(&key).is_some_and(|c| c.leg == leg) {
                if let Some(old) = self.table.remove(&key) {
                    if !old.closed {
                        self.stats.evicted += 1;
                    }
                    self.close(old, events);
                }
                return;
            }
        }
    }

    /// The next unused leg id.
    pub fn next_leg(&self) -> LegId {
        self.next_leg
    }

    /// Sampling of `leg` may stop: its later payload is not delivered.
    pub fn stop_sampling(&mut self, leg: LegId) {
        self.stopped.insert(leg);
    }

    /// `leg` was reported and left the tracker: its later segments produce no events.
    pub fn reported(&mut self, leg: LegId) {
        self.gone.insert(leg);
    }

    /// Apply one segment; the events it produces are appended to `events`.
    pub fn segment<'a>(&mut self, s: &Segment<'a>, time: SystemTime, events: &mut Vec<Event<'a>>) {
        let start = events.len();
        self.apply(s, time, events);
        if self.gone.is_empty() || events.len() == start {
            return;
        }
        // The events of reported legs are dropped. A closed, reported leg is never referred to
        // again: it is forgotten once this segment's events are filtered.
        let (gone, closed) = (&self.gone, &mut self.closed);
        let mut index = 0;
        events.retain(|e| {
            index += 1;
            if index <= start {
                return true;
            }
            if let Event::Close { leg } = e {
                closed.push(*leg);
            }
            !gone.contains(&event_leg(e))
        });
        for leg in self.closed.drain(..) {
            self.gone.remove(&leg);
        }
    }

    fn apply<'a>(&mut self, s: &Segment<'a>, time: SystemTime, events: &mut Vec<Event<'a>>) {
        let (key, src_first) = FlowKey::new(s.src, s.dst);
        let syn = s.flags & flags::SYN != 0;
        let ack = s.flags & flags::ACK != 0;
        let reused = syn
            && !ack
            && matches!(self.table.get(&key), Some(c)
                if c.closed || (c.client_first == src_first && c.client_base != Some(s.seq.wrapping_add(1))));
        if reused && let Some(old) = self.table.remove(&key) {
            self.close(old, events);
            // Its `order` entry is stale now; drop stale entries before they outnumber live ones.
            if self.order.len() > 2 * self.table.len() + 1024 {
                let table = &self.table;
                self.order.retain(|(k, leg)| table.get(k).is_some_and(|c| c.leg == *leg));
            }
        }
        // One lookup for a segment of a known connection (most of them).
        let conn = match self.table.entry(key) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(_) => {
                let (client, server, client_base, server_base) = if syn && !ack {
                    (s.src, s.dst, Some(s.seq.wrapping_add(1)), None)
                } else if syn {
                    (s.dst, s.src, Some(s.ack), Some(s.seq.wrapping_add(1)))
                } else if !s.payload.is_empty() && s.flags & flags::RST == 0 {
                    self.stats.midstream += 1;
                    if s.src.port() >= s.dst.port() { (s.src, s.dst, None, None) } else { (s.dst, s.src, None, None) }
                } else {
                    return; // a bare ACK, FIN or RST of a connection not seen: nothing to classify
                };
                if self.table.len() >= self.limit {
                    self.evict_oldest(events);
                }
                let leg = self.next_leg;
                self.next_leg += 1;
                self.stats.connections += 1;
                self.order.push_back((key, leg));
                events.push(Event::Open {
                    leg,
                    time,
                    client: Peer { addr: client, process: None },
                    server: Peer { addr: server, process: None },
                    observed_at: ObservedAt::Wire,
                });
                self.table
                    .entry(key)
                    .insert_entry(Connection {
                        leg,
                        client_first: (client == s.src) == src_first,
                        client_base,
                        server_base,
                        client_fin: false,
                        server_fin: false,
                        closed: false,
                    })
                    .into_mut()
            }
        };
        if conn.closed {
            return;
        }
        let from_client = src_first == conn.client_first;
        let direction = if from_client { Direction::ClientToServer } else { Direction::ServerToClient };
        if syn && ack && !from_client && conn.server_base.is_none() {
            conn.server_base = Some(s.seq.wrapping_add(1));
        }
        // Payload (a SYN's, with TCP Fast Open, starts after the SYN's sequence number).
        let data_seq = if syn { s.seq.wrapping_add(1) } else { s.seq };
        if !s.payload.is_empty() && !self.stopped.contains(&conn.leg) {
            let base = if from_client { &mut conn.client_base } else { &mut conn.server_base };
            let base = *base.get_or_insert(data_seq);
            let distance = data_seq.wrapping_sub(base);
            if distance < MAX_FORWARD {
                let offset = u64::from(distance);
                // Keep at most one byte past the tracker's cap: enough to mark the overflow.
                let room = (MAX_STREAM_BYTES as u64 + 1).saturating_sub(offset);
                let keep = s.payload.len().min(usize::try_from(room).unwrap_or(usize::MAX));
                if keep > 0 {
                    events.push(Event::Data { leg: conn.leg, direction, offset, bytes: &s.payload[..keep] });
                }
            }
        }
        if s.flags & flags::RST != 0 {
            conn.closed = true;
            let leg = conn.leg;
            self.stopped.remove(&leg);
            events.push(Event::Close { leg });
            return;
        }
        if s.flags & flags::FIN != 0 {
            let (fin, other) = if from_client {
                (&mut conn.client_fin, conn.server_fin)
            } else {
                (&mut conn.server_fin, conn.client_fin)
            };
            if !*fin {
                *fin = true;
                let leg = conn.leg;
                if other {
                    conn.closed = true;
                    self.stopped.remove(&leg);
                    events.push(Event::Close { leg });
                } else {
                    events.push(Event::DirectionEnd { leg, direction, end: StreamEnd::Closed });
                }
            }
        }
    }

    fn close(&mut self, conn: Connection, events: &mut Vec<Event<'_>>) {
        self.close_leg(conn.leg, conn.closed, events);
    }

    /// Let the connection of `leg` go; `closed`: its close was already delivered.
    fn close_leg(&mut self, leg: LegId, closed: bool, events: &mut Vec<Event<'_>>) {
        if self.gone.remove(&leg) {
            self.stopped.remove(&leg);
            return;
        }
        self.stopped.remove(&leg);
        if !closed {
            events.push(Event::Close { leg });
        }
    }

    /// The capture ended: close every connection still open.
    pub fn finish(&mut self, events: &mut Vec<Event<'_>>) {
        self.order.clear();
        // Only what closing needs: the whole connections would be twice the memory to page in.
        let mut open: Vec<(LegId, bool)> = self.table.drain().map(|(_, c)| (c.leg, c.closed)).collect();
        open.sort_unstable_by_key(|&(leg, _)| leg);
        for (leg, closed) in open {
            self.close_leg(leg, closed, events);
        }
        self.stopped.clear();
        self.gone.clear();
    }
}

fn event_leg(event: &Event) -> LegId {
    match event {
        Event::Open { leg, .. }
        | Event::Joined { leg, .. }
        | Event::Data { leg, .. }
        | Event::DirectionEnd { leg, .. }
        | Event::Close { leg } => *leg,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;

    fn syn(n: u32) -> Segment<'static> {
        let [a, b, c, d] = n.to_be_bytes();
        Segment {
            src: SocketAddr::from((Ipv4Addr::new(10, a, b, c), 1024 + u16::from(d))),
            dst: SocketAddr::from((Ipv4Addr::new(192, 168, 0, 1), 443)),
            seq: 1,
            ack: 0,
            flags: flags::SYN,
            payload: &[],
            truncated: false,
        }
    }

    #[test]
    fn a_full_table_lets_the_oldest_go_in_constant_time() {
        // Never-answered SYNs, ten times the table: every open beyond it evicts the oldest.
        let (limit, total) = (1_000u32, 10_000u32);
        let mut connections = Connections::with_limit(1, limit as usize);
        let mut events = Vec::new();
        for n in 0..total {
            connections.segment(&syn(n), SystemTime::UNIX_EPOCH, &mut events);
            assert!(connections.table.len() <= limit as usize);
        }
        assert_eq!(connections.stats.connections, u64::from(total));
        assert_eq!(connections.stats.evicted, u64::from(total - limit));
        let closed: Vec<LegId> = events
            .iter()
            .filter_map(|e| match e {
                Event::Close { leg } => Some(*leg),
                _ => None,
            })
            .collect();
        // The oldest go first, each closed (and so reported) exactly once.
        assert_eq!(closed, (1..=u64::from(total - limit)).collect::<Vec<_>>());
        // One step per eviction: the work does not grow with the table (a scan would be ~10^7).
        assert!(connections.eviction_steps <= 2 * u64::from(total), "{}", connections.eviction_steps);
    }
}
