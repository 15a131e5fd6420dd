//! The bounded edge table: one [`Edge`] per (client, server, server port), updated in O(1) per
//! record, the least recently seen edge evicted (and counted) when a new one would exceed
//! `max_edges`. Recency is a doubly linked list threaded through a slab, indexed by a hash map.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{Observation, model::*};

/// Longest name kept (workload, process, policy): longer ones are cut at a char boundary.
pub const MAX_NAME: usize = 253;
/// Most distinct `client_cert` values or deviation kinds kept per edge (both are small enums).
const MAX_KINDS: usize = 16;
const NIL: u32 = u32::MAX;

/// Who an edge is between: a workload of the inventory, else an address (and, for a client,
/// its process name when its socket was on this node).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Party {
    Workload(String),
    Outside { ip: String, process: Option<String> },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EdgeKey {
    client: Party,
    server: Party,
    port: u16,
}

struct Slot {
    key: EdgeKey,
    edge: Edge,
    prev: u32,
    next: u32,
}

/// The counters of the table itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStats {
    /// Records aggregated into edges.
    pub records: u64,
    /// Legs inside one pod (`local_inbound`, `local_outbound`): not edges between workloads.
    pub in_pod_legs: u64,
    /// Edges dropped to stay within `max_edges`, least recently seen first.
    pub evicted: u64,
    pub max_edges: u64,
}

/// The edges seen so far, bounded.
pub struct EdgeTable {
    index: HashMap<EdgeKey, u32, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    /// Most recently seen.
    head: u32,
    /// Least recently seen: evicted first.
    tail: u32,
    max_edges: usize,
    stats: TableStats,
    first_seen: Option<String>,
    last_seen: Option<String>,
}

impl EdgeTable {
    /// A table holding at most `max_edges` edges (at least one).
    pub fn new(max_edges: usize) -> Self {
        let max_edges = max_edges.clamp(1, NIL as usize - 1);
        Self {
            index: HashMap::default(),
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            max_edges,
            stats: TableStats { max_edges: max_edges as u64, ..TableStats::default() },
            first_seen: None,
            last_seen: None,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Aggregate one record: the sink the daemon and the replay feed.
    pub fn record(&mut self, record: &crate::export::ConnectionRecord) {
        self.observe(&Observation::of(record));
    }

    /// Aggregate one observation (a record, or a JSON line of one).
    pub fn observe(&mut self, o: &Observation<'_>) {
        if matches!(o.leg, "local_inbound" | "local_outbound") {
            self.stats.in_pod_legs += 1;
            return;
        }
        self.stats.records += 1;
        let time = cut(o.time);
        if self.first_seen.as_deref().is_none_or(|t| time < t) {
            self.first_seen = Some(time.to_owned());
        }
        if self.last_seen.as_deref().is_none_or(|t| time > t) {
            self.last_seen = Some(time.to_owned());
        }
        let key = EdgeKey {
            client: match o.client.workload {
                Some(w) => Party::Workload(cut(w).to_owned()),
                None => Party::Outside { ip: cut(o.client.ip).to_owned(), process: o.client.process.map(owned) },
            },
            server: match o.server.workload {
                Some(w) => Party::Workload(cut(w).to_owned()),
                None => Party::Outside { ip: cut(o.server.ip).to_owned(), process: None },
            },
            port: o.server.port,
        };
        let slot = match self.index.get(&key) {
            Some(&slot) => {
                self.unlink(slot);
                slot
            }
            None => self.insert(key, o),
        };
        self.push_front(slot);
        update(&mut self.slots[slot as usize].edge, o);
    }

    /// Every edge, most recently seen first.
    pub fn snapshot(&self) -> Snapshot {
        let mut edges = Vec::with_capacity(self.slots.len());
        let mut at = self.head;
        while at != NIL {
            let slot = &self.slots[at as usize];
            edges.push(slot.edge.clone());
            at = slot.next;
        }
        Snapshot { stats: self.stats, first_seen: self.first_seen.clone(), last_seen: self.last_seen.clone(), edges }
    }

    /// Approximate heap bytes held (the edges, their names and the index).
    pub fn approx_bytes(&self) -> usize {
        // The index: its entry and a control byte per bucket (at most 8/7 buckets per entry).
        let per_slot = (std::mem::size_of::<(EdgeKey, u32)>() + 1) * 8 / 7 + 1;
        // The key repeats the edge's names (in the slot and in the index).
        let names: usize = self.slots.iter().map(|s| s.edge.heap_bytes() * 2).sum();
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.slots.len() * per_slot + names
    }

    fn insert(&mut self, key: EdgeKey, o: &Observation<'_>) -> u32 {
        let edge = Edge::first(o);
        if self.slots.len() < self.max_edges {
            let slot = self.slots.len() as u32;
            self.index.insert(key.clone(), slot);
            self.slots.push(Slot { key, edge, prev: NIL, next: NIL });
            return slot;
        }
        // Reuse the least recently seen slot.
        let slot = self.tail;
        self.unlink(slot);
        self.stats.evicted += 1;
        let old =
            std::mem::replace(&mut self.slots[slot as usize], Slot { key: key.clone(), edge, prev: NIL, next: NIL });
        self.index.remove(&old.key);
        self.index.insert(key, slot);
        slot
    }

    fn unlink(&mut self, slot: u32) {
        let (prev, next) = {
            let s = &self.slots[slot as usize];
            (s.prev, s.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
        let s = &mut self.slots[slot as usize];
        s.prev = NIL;
        s.next = NIL;
    }

    fn push_front(&mut self, slot: u32) {
        let old = self.head;
        {
            let s = &mut self.slots[slot as usize];
            s.prev = NIL;
            s.next = old;
        }
        match old {
            NIL => self.tail = slot,
            h => self.slots[h as usize].prev = slot,
        }
        self.head = slot;
    }
}

impl Edge {
    fn first(o: &Observation<'_>) -> Self {
        Edge {
            client: End {
                workload: o.client.workload.map(owned),
                ip: owned(o.client.ip),
                process: o.client.process.map(owned),
            },
            server: End { workload: o.server.workload.map(owned), ip: owned(o.server.ip), process: None },
            port: o.server.port,
            connections: 0,
            security: SecurityMix::default(),
            client_cert: BTreeMap::new(),
            deviations: BTreeMap::new(),
            would_break_under_strict: 0,
            policy: None,
            mode: None,
            first_seen: owned(o.time),
            last_seen: owned(o.time),
            example: Example::of(o),
        }
    }

    fn heap_bytes(&self) -> usize {
        let s = |v: &Option<String>| v.as_ref().map_or(0, String::capacity);
        s(&self.client.workload)
            + self.client.ip.capacity()
            + s(&self.client.process)
            + s(&self.server.workload)
            + self.server.ip.capacity()
            + s(&self.policy)
            + self.first_seen.capacity()
            + self.last_seen.capacity()
            + self.example.heap_bytes()
            + (self.client_cert.len() + self.deviations.len()) * 64
    }
}

fn update(edge: &mut Edge, o: &Observation<'_>) {
    edge.connections += 1;
    edge.security.add(o.security);
    if o.client.process.is_some() && edge.client.process.as_deref() != o.client.process {
        edge.client.process = o.client.process.map(owned);
    }
    let time = cut(o.time);
    if time < edge.first_seen.as_str() {
        edge.first_seen = time.to_owned();
    }
    if time >= edge.last_seen.as_str() {
        edge.last_seen = time.to_owned();
        // The policy in force is the latest record's.
        if let Some(policy) = o.policy
            && edge.policy.as_deref() != Some(policy)
        {
            edge.policy = Some(cut(policy).to_owned());
        }
        if let Some(mode) = mode_of(o) {
            edge.mode = Some(mode.to_owned());
        }
    }
    bump(&mut edge.client_cert, o.client_cert.unwrap_or("none"));
    match o.kind {
        Some("would_break_under_strict") => edge.would_break_under_strict += 1,
        Some(kind) if o.status == "deviation" => bump(&mut edge.deviations, kind),
        _ => {}
    }
    if !edge.example.notable() && (o.kind.is_some() || o.status == "deviation") {
        edge.example = Example::of(o);
    }
}

/// The PeerAuthentication mode the server's requirement implies, for legs judged against it.
fn mode_of(o: &Observation<'_>) -> Option<&'static str> {
    implied_mode(o.policy, o.leg, o.expected)
}

fn bump(counts: &mut BTreeMap<String, u64>, kind: &str) {
    let kind = cut(kind);
    if let Some(n) = counts.get_mut(kind) {
        *n += 1;
    } else if counts.len() < MAX_KINDS {
        counts.insert(kind.to_owned(), 1);
    } else {
        *counts.entry("other".to_owned()).or_default() += 1;
    }
}

/// `s` cut to [`MAX_NAME`] bytes at a char boundary.
pub fn cut(s: &str) -> &str {
    if s.len() <= MAX_NAME {
        return s;
    }
    let mut end = MAX_NAME;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn owned(s: &str) -> String {
    cut(s).to_owned()
}

impl Example {
    pub(super) fn of(o: &Observation<'_>) -> Self {
        Example {
            conn_id: owned(o.conn_id),
            node: owned(o.node),
            time: owned(o.time),
            leg: owned(o.leg),
            security: owned(o.security),
            verdict: o.kind.or(Some(o.status)).map(owned),
        }
    }

    fn notable(&self) -> bool {
        !matches!(self.verdict.as_deref(), None | Some("ok" | "unevaluated"))
    }

    fn heap_bytes(&self) -> usize {
        self.conn_id.capacity()
            + self.node.capacity()
            + self.time.capacity()
            + self.leg.capacity()
            + self.security.capacity()
            + self.verdict.as_ref().map_or(0, String::capacity)
    }
}
