//! From sockets to legs. The kernel reports sockets (by cookie); a leg is a TCP connection, seen
//! from one socket or, when both ends live on this node, from two. This table joins the two
//! sockets of a local connection, maps each socket's egress/ingress onto the leg's
//! client-to-server/server-to-client streams, and turns kernel events into [`legs::Event`]s.
//!
//! Pairing is the kernel's (`observer-ebpf`, sock_ops): the socket that reaches ESTABLISHED
//! second finds the first in its `PEERS` map and its open event names the first's cookie. The
//! key the kernel pairs on (the client's local address is the server's remote address, loopback
//! scoped to its network namespace) holds across namespaces and behind Istio's REDIRECT. Here
//! the join is one lookup by cookie; the two opens may arrive in either order (two CPUs).

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use foldhash::HashMap;
use observer_common::{OpenEvent, SAMPLE_BUDGET, conn_flags, direction, role};
use observer_wire::legs::{self, Direction, IdMap, LegId, ObservedAt, Peer, Process, Side, StreamEnd};

use super::events::{self, KernelEvent};

/// Most sockets held. The kernel tracks at most `MAX_CONNECTIONS` and forgets the oldest silently
/// (LRU), so a socket whose close never came would otherwise stay here forever; past this bound the
/// oldest are evicted and counted.
pub const MAX_SOCKETS: usize = 2 * observer_common::MAX_CONNECTIONS as usize;

/// Most process names cached.
const MAX_COMMS: usize = 4096;

/// Most sockets held whose open named a peer not seen yet. Its open is normally the next
/// events away; one that never comes (its own open was lost) must not stay forever.
const MAX_EARLY: usize = 4096;

struct SocketEntry {
    leg: LegId,
    closed_at: Option<Instant>,
    /// The kernel's time of the open, for evicting the oldest past `MAX_SOCKETS`.
    opened_ns: u64,
    side: Side,
}

/// A leg's sockets: one, or two when both ends are on this node (a third cannot join: pairing
/// takes the waiting socket out of its index). Inline, so a leg costs no allocation of its own.
#[derive(Default)]
struct Cookies {
    slots: [u64; 2],
    len: u8,
}

impl Cookies {
    fn push(&mut self, cookie: u64) {
        if let Some(slot) = self.slots.get_mut(usize::from(self.len)) {
            *slot = cookie;
            self.len += 1;
        }
    }

    fn remove(&mut self, cookie: u64) {
        if let Some(i) = self.as_slice().iter().position(|c| *c == cookie) {
            self.slots.copy_within(i + 1.., i);
            self.len -= 1;
        }
    }

    fn as_slice(&self) -> &[u64] {
        &self.slots[..usize::from(self.len)]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[derive(Default)]
struct LegSockets {
    cookies: Cookies,
    open: usize,
    /// The tracker reported the leg: later events of its sockets are dropped here.
    reported: bool,
    /// The kernel evicted a socket's table entry: its later bytes were not sampled, so the leg
    /// is never told it closed (which would make what was seen look complete).
    evicted: bool,
}

/// Counters of kernel events that could not be attributed; exported as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Samples of a socket whose open was not seen (lost, or opened before the observer started).
    pub orphan_samples: u64,
    /// Closes of a socket whose open was not seen.
    pub orphan_closes: u64,
    /// Records the decoder rejected.
    pub undecodable: u64,
    /// Sockets forgotten because `MAX_SOCKETS` were held (their close was never seen).
    pub evicted: u64,
    /// Sample records received, by where the kernel took them. When both sockets of a leg are
    /// on this node the kernel samples only egress: ingress samples come from remote peers.
    pub egress_samples: u64,
    pub ingress_samples: u64,
    /// Sockets whose open named a peer that never arrived (so the two ends, if the peer's open
    /// came later still, are reported as two legs).
    pub early_forgotten: u64,
}

/// The sockets of the open legs.
pub struct Sockets {
    sockets: IdMap<SocketEntry>,
    legs: IdMap<LegSockets>,
    /// Sockets whose open named a peer whose own open has not arrived yet, by that peer's
    /// cookie, with when they came (forgotten after `closed_retention`).
    early: IdMap<(u64, Instant)>,
    /// Process names by their kernel bytes: one allocation per name, not per socket.
    /// (The 16 bytes as one integer: compared in a register, not by `memcmp`.)
    comms: HashMap<u128, Arc<str>>,
    /// Wall clock minus the monotonic clock, to date kernel timestamps.
    boot_wall: SystemTime,
    /// How long a closed socket stays pairable: its peer's open may still be in flight. Past the
    /// tracker's pairing grace a late peer could not join the leg anyway (it was reported alone),
    /// so holding sockets longer only makes every table bigger.
    closed_retention: Duration,
    stats: SocketStats,
    /// Closed sockets in the order they closed: a tick forgets those past the retention
    /// from the front, so it costs what expires, not what is held.
    closed: VecDeque<(Instant, u64)>,
}

impl Sockets {
    /// `boot_wall`: the wall-clock time at which CLOCK_MONOTONIC was zero; `closed_retention`:
    /// how long a closed socket is kept for its peer (the tracker's pairing grace and a margin).
    pub fn new(boot_wall: SystemTime, closed_retention: Duration) -> Self {
        Self {
            sockets: legs::id_map(),
            legs: legs::id_map(),
            early: legs::id_map(),
            comms: HashMap::default(),
            boot_wall,
            closed_retention,
            stats: SocketStats::default(),
            closed: VecDeque::new(),
        }
    }

    pub fn stats(&self) -> SocketStats {
        self.stats
    }

    /// Sockets currently known.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Decode a ring buffer record and translate it; the events, which borrow the record's
    /// payload, go to `emit`.
    pub fn on_record<'a>(&mut self, record: &'a [u8], now: Instant, emit: &mut impl FnMut(legs::Event<'a>)) {
        match events::decode(record) {
            Ok(event) => self.on_event(event, now, emit),
            Err(error) => {
                self.stats.undecodable += 1;
                tracing::debug!(%error, "undecodable ring buffer record");
            }
        }
    }

    pub fn on_event<'a>(&mut self, event: KernelEvent<'a>, now: Instant, emit: &mut impl FnMut(legs::Event<'a>)) {
        match event {
            KernelEvent::Open(open) => self.on_open(&open, now, emit),
            KernelEvent::Sample { cookie, direction, offset, data, .. } => {
                if direction == direction::EGRESS {
                    self.stats.egress_samples += 1;
                } else {
                    self.stats.ingress_samples += 1;
                }
                let Some(entry) = self.sockets.get(&cookie) else {
                    self.stats.orphan_samples += 1;
                    return;
                };
                if self.legs.get(&entry.leg).is_none_or(|l| l.reported) {
                    return;
                }
                let sent = direction == direction::EGRESS;
                let dir = match (entry.side, sent) {
                    (Side::Client, true) | (Side::Server, false) => Direction::ClientToServer,
                    (Side::Client, false) | (Side::Server, true) => Direction::ServerToClient,
                };
                let leg = entry.leg;
                let end = u64::from(offset) + data.len() as u64;
                emit(legs::Event::Data { leg, direction: dir, offset: u64::from(offset), bytes: data });
                if end >= u64::from(SAMPLE_BUDGET) {
                    emit(legs::Event::DirectionEnd { leg, direction: dir, end: StreamEnd::BudgetSpent });
                }
            }
            KernelEvent::Close(close) => {
                let Some(entry) = self.sockets.get_mut(&close.header.cookie) else {
                    self.stats.orphan_closes += 1;
                    return;
                };
                if entry.closed_at.is_some() {
                    return;
                }
                entry.closed_at = Some(now);
                let cookie = close.header.cookie;
                let leg = entry.leg;
                let mut complete = None;
                if let Some(sockets) = self.legs.get_mut(&leg) {
                    sockets.open = sockets.open.saturating_sub(1);
                    if close.flags & conn_flags::EVICTED != 0 && !sockets.reported && !sockets.evicted {
                        // Both directions end unseen: the classifier decides from what came
                        // before, else `unknown`, never from a stream it takes for complete.
                        sockets.evicted = true;
                        for direction in [Direction::ClientToServer, Direction::ServerToClient] {
                            emit(legs::Event::DirectionEnd { leg, direction, end: StreamEnd::BudgetSpent });
                        }
                    }
                    if sockets.open == 0 && !sockets.reported && !sockets.evicted {
                        emit(legs::Event::Close { leg });
                    }
                    // Both ends joined and both closed: no third socket can join and neither
                    // sends again, so nothing is left to pair with. Held on, they would only
                    // make the tables (and every first touch of a new socket) bigger.
                    complete = (sockets.open == 0 && sockets.cookies.len == 2).then_some(sockets.cookies.slots);
                }
                if let Some([a, b]) = complete {
                    self.forget(a);
                    self.forget(b);
                } else {
                    self.closed.push_back((now, cookie));
                }
            }
        }
    }

    fn on_open<'a>(&mut self, open: &OpenEvent, now: Instant, emit: &mut impl FnMut(legs::Event<'a>)) {
        let cookie = open.header.cookie;
        if self.sockets.contains_key(&cookie) {
            return;
        }
        let (local, remote) = events::addresses(open);
        let process = (open.owner.known != 0).then(|| Process {
            pid: open.owner.pid,
            uid: open.owner.uid,
            comm: self.comm(&open.owner.comm),
            cgroup_id: open.owner.cgroup_id,
        });
        let side = if open.role == role::ACTIVE { Side::Client } else { Side::Server };
        // The peer the kernel paired this socket with, or one that named this socket before
        // this socket's own open arrived.
        let peer = match open.peer_cookie {
            0 if self.early.is_empty() => None,
            0 => self.early.remove(&cookie).map(|(peer, _)| peer),
            peer => Some(peer),
        };
        let peer_leg = peer
            .and_then(|peer| self.sockets.get(&peer))
            .filter(|entry| entry.side != side)
            .map(|entry| entry.leg)
            .filter(|leg| self.legs.get(leg).is_some_and(|l| !l.reported && l.cookies.len < 2));

        let leg = if let Some(leg) = peer_leg {
            emit(legs::Event::Joined { leg, side, process, local, remote });
            leg
        } else {
            let time = self.boot_wall + Duration::from_nanos(open.header.ktime_ns);
            let (client, server, observed_at) = match side {
                Side::Client => {
                    (Peer { addr: local, process }, Peer { addr: remote, process: None }, ObservedAt::Client)
                }
                Side::Server => {
                    (Peer { addr: remote, process: None }, Peer { addr: local, process }, ObservedAt::Server)
                }
            };
            emit(legs::Event::Open { leg: cookie, time, client, server, observed_at });
            if open.peer_cookie != 0 && !self.sockets.contains_key(&open.peer_cookie) {
                if self.early.len() >= MAX_EARLY {
                    self.stats.early_forgotten += self.early.len() as u64;
                    self.early.clear();
                }
                self.early.insert(open.peer_cookie, (cookie, now));
            }
            cookie
        };
        let sockets = self.legs.entry(leg).or_default();
        sockets.cookies.push(cookie);
        sockets.open += 1;
        self.sockets.insert(cookie, SocketEntry { leg, side, closed_at: None, opened_ns: open.header.ktime_ns });
    }

    /// The shared name of a process, from the kernel's 16 bytes. The cache is bounded: names
    /// are chosen by whoever runs a process, so it starts over when full.
    fn comm(&mut self, raw: &[u8; 16]) -> Arc<str> {
        let key = u128::from_ne_bytes(*raw);
        if let Some(name) = self.comms.get(&key) {
            return Arc::clone(name);
        }
        if self.comms.len() >= MAX_COMMS {
            self.comms.clear();
        }
        let name: Arc<str> = events::comm(raw).into();
        self.comms.insert(key, Arc::clone(&name));
        name
    }

    /// The sockets of a leg (for telling the kernel to stop sampling them).
    pub fn cookies(&self, leg: LegId) -> &[u64] {
        self.legs.get(&leg).map_or(&[], |l| l.cookies.as_slice())
    }

    /// The sockets of a leg that have not closed.
    pub fn open_cookies(&self, leg: LegId) -> impl Iterator<Item = u64> + '_ {
        self.cookies(leg).iter().copied().filter(|c| self.sockets.get(c).is_some_and(|s| s.closed_at.is_none()))
    }

    /// The tracker reported the leg: drop its sockets' later events.
    pub fn reported(&mut self, leg: LegId) {
        if let Some(sockets) = self.legs.get_mut(&leg) {
            sockets.reported = true;
        }
    }

    /// Forget sockets closed long enough ago, the oldest beyond `MAX_SOCKETS`, legs without
    /// sockets, and early peers whose partner never came.
    pub fn tick(&mut self, now: Instant) {
        while let Some(&(at, cookie)) = self.closed.front() {
            if now.saturating_duration_since(at) < self.closed_retention {
                break;
            }
            self.closed.pop_front();
            self.forget(cookie);
        }
        if self.sockets.len() > MAX_SOCKETS {
            self.evict_oldest();
        }
        if !self.early.is_empty() {
            let retention = self.closed_retention;
            let before = self.early.len();
            self.early.retain(|_, (_, at)| now.saturating_duration_since(*at) < retention);
            self.stats.early_forgotten += (before - self.early.len()) as u64;
        }
    }

    /// Down to 90 % of `MAX_SOCKETS`, oldest first, so that eviction is not repeated on every
    /// tick. One pass over the table, paid only when closes went missing in bulk (each pass
    /// evicts a tenth of the table); the common path keeps no open-order queue.
    fn evict_oldest(&mut self) {
        let excess = self.sockets.len() - MAX_SOCKETS * 9 / 10;
        let mut ages: Vec<(u64, u64)> = self.sockets.iter().map(|(cookie, e)| (e.opened_ns, *cookie)).collect();
        ages.select_nth_unstable(excess - 1);
        for &(_, cookie) in &ages[..excess] {
            if self.forget(cookie) {
                self.stats.evicted += 1;
            }
        }
    }

    /// Drops a socket, and its leg once the leg has no socket left. False if it was not held.
    fn forget(&mut self, cookie: u64) -> bool {
        let Some(entry) = self.sockets.remove(&cookie) else {
            return false;
        };
        if let Some(sockets) = self.legs.get_mut(&entry.leg) {
            sockets.cookies.remove(cookie);
            if sockets.cookies.is_empty() {
                self.legs.remove(&entry.leg);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
