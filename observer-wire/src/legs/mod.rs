//! Connection legs as the pipeline sees them, independent of where the bytes came from.
//!
//! A source (live capture or pcap replay) turns what it sees into [`Event`]s keyed by a [`LegId`];
//! the [`Tracker`] reassembles each direction, asks the classifier after every change, and hands
//! back [`Output`]s: when sampling of a leg may stop, and the finished [`LegRecord`]s.

mod flow;
mod ids;
mod reassembly;
mod tracker;

use std::{net::SocketAddr, time::SystemTime};

pub use flow::{Bound, Flow, LegSink, Legs, SourceControl};
pub use ids::{IdHasher, IdMap, id_map};
pub use reassembly::{MAX_PENDING_BYTES, MAX_PENDING_PIECES, MAX_STREAM_BYTES, Reassembly};
pub use tracker::{Tracker, TrackerConfig, TrackerStats};

use crate::classify::Classification;
pub use crate::stream::{Direction, StreamEnd};

/// Identity of a leg within one source (the socket cookie live, a counter in a replay).
pub type LegId = u64;

/// One end of a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// Where the observer saw the leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservedAt {
    /// The client socket is on this node, the server's is not (or not yet seen).
    Client,
    /// The server socket is on this node, the client's is not (or not yet seen).
    Server,
    /// Both sockets are on this node.
    Both,
    /// Seen in a packet capture, not from a socket.
    Wire,
}

/// The process owning a socket on this node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Process {
    pub pid: u32,
    pub uid: u32,
    /// Shared: the same few process names open most sockets, and a leg's record copies it.
    pub comm: std::sync::Arc<str>,
    /// cgroup v2 id (maps to a pod's container in a cluster).
    #[serde(skip)]
    pub cgroup_id: u64,
}

/// One end of a leg: its address as its own socket sees it, and its process when local.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    pub process: Option<Process>,
}

/// What a source reports. Payload is borrowed from the source (the ring buffer record live, the
/// frame in a replay): the tracker copies it once, into the leg's reassembly.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// A leg begins (its first socket reached ESTABLISHED, or a SYN was seen in a capture).
    Open { leg: LegId, time: SystemTime, client: Peer, server: Peer, observed_at: ObservedAt },
    /// The other end's socket of a leg is also on this node. `local` and `remote` are that
    /// socket's own addresses: a joining client's view replaces the leg's addresses, since the
    /// client socket holds the original destination behind a REDIRECT.
    Joined { leg: LegId, side: Side, process: Option<Process>, local: SocketAddr, remote: SocketAddr },
    /// Payload bytes starting at `offset` in the direction's stream.
    Data { leg: LegId, direction: Direction, offset: u64, bytes: &'a [u8] },
    /// No more bytes of this direction will be delivered (the sampling budget is spent).
    DirectionEnd { leg: LegId, direction: Direction, end: StreamEnd },
    /// The leg closed.
    Close { leg: LegId },
}

/// `events`, emptied, as a buffer for events that borrow something else: a source keeps one
/// allocation for its batches although each batch borrows a different buffer.
pub fn recycle<'b>(mut events: Vec<Event<'_>>) -> Vec<Event<'b>> {
    events.clear();
    // Collecting an emptied vector into one of the same layout reuses its allocation.
    events.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

/// A finished leg.
#[derive(Clone, Debug, PartialEq)]
pub struct LegRecord {
    pub leg: LegId,
    /// When the leg opened.
    pub time: SystemTime,
    pub client: Peer,
    pub server: Peer,
    pub observed_at: ObservedAt,
    pub classification: Classification,
}

/// What the tracker hands back.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The classification is final: the source may stop sampling this leg.
    StopSampling(LegId),
    /// A leg is finished and leaves the tracker.
    Record(LegRecord),
}
