//! The pcap/pcapng replay source: reads captures, rebuilds TCP connections, and feeds the same
//! [`Tracker`] as the live capture ("same code after the source"). Legs are `observed_at: wire`.

mod capture;
pub mod packet;
mod pieces;
mod tcp;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

pub use pieces::{LegPieces, Piece, frames, leg_pieces};
pub use tcp::{MAX_CONNECTIONS, TcpStats};

use crate::legs::{self, Event, Flow, LegId, LegRecord, Legs, TrackerConfig, TrackerStats};
use crate::printable::Escaped;
use packet::FrameError;

/// Capture time between two calls of [`Tracker::tick`] (idle legs expire in capture time).
const TICK_EVERY: Duration = Duration::from_secs(1);

/// Why a capture file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The file could not be opened.
    #[error("{}: cannot open: {source}", Escaped(&path.to_string_lossy()))]
    Open { path: PathBuf, source: std::io::Error },
    /// The path is a directory, device, FIFO or socket (a FIFO is refused, not waited on).
    #[error("{}: {kind}, not a capture file", Escaped(&path.to_string_lossy()))]
    NotRegular { path: PathBuf, kind: crate::regular_file::FileKind },
    /// The file is empty.
    #[error("{}: empty file, not a capture", Escaped(&path.to_string_lossy()))]
    Empty { path: PathBuf },
    /// The file starts as a capture but ends inside its first header.
    #[error("{}: {format} file cut short in its first header", Escaped(&path.to_string_lossy()))]
    CutInHeader { path: PathBuf, format: capture::Magic },
    /// The file is neither pcap nor pcapng.
    #[error("{}: not a pcap or pcapng file", Escaped(&path.to_string_lossy()))]
    NotACapture { path: PathBuf },
    /// Reading failed.
    #[error("{}: read error", Escaped(&path.to_string_lossy()))]
    Read { path: PathBuf },
    /// A block in the middle of the file is damaged beyond resynchronisation.
    #[error("{}: corrupt capture after byte {offset}: {what}", Escaped(&path.to_string_lossy()))]
    Corrupt { path: PathBuf, offset: usize, what: &'static str },
}

/// What a replay read and skipped; reported on stderr at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Files read to their end.
    pub files: u64,
    pub frames: u64,
    pub tcp_segments: u64,
    /// Frames with cut-short or inconsistent headers: counted and skipped.
    pub damaged: u64,
    /// TCP segments whose payload the capture cut short (snap length).
    pub truncated_payloads: u64,
    /// IP fragments (not reassembled).
    pub fragments: u64,
    pub not_tcp: u64,
    pub unsupported_link: u64,
    /// Files whose last block was cut short.
    pub truncated_files: u64,
    /// Packet blocks for interfaces the file did not describe.
    pub orphan_packets: u64,
    /// Packets whose timestamp makes no time (or jumps past what the clock can hold).
    pub bad_timestamps: u64,
    pub tcp: TcpStats,
}

/// The capture files as a source of [`Event`]s: frames decoded, TCP connections rebuilt, capture
/// time mapped onto a monotonic clock. What it feeds (a [`Legs`]) decides what becomes of them.
pub struct CaptureSource {
    /// Most TCP connections held at once.
    connection_limit: usize,
    stats: ReplayStats,
    next_leg: u64,
    /// Capture time mapped onto the tracker's monotonic clock.
    origin: Option<(SystemTime, Instant)>,
    now: Instant,
    last_tick: Instant,
    /// The event buffer between frames (each frame's events borrow its payload).
    spare: Vec<Event<'static>>,
}

impl CaptureSource {
    /// A source for a tracker holding at most `max_legs` legs.
    pub fn new(max_legs: usize) -> Self {
        let now = Instant::now();
        // The TCP table only needs room for the legs the tracker can hold, and as many again
        // closed or dropped ones swallowing their late segments: more would be memory spent on
        // connections whose legs are not kept anyway.
        let connection_limit = max_legs.saturating_mul(2).clamp(1024, MAX_CONNECTIONS);
        Self {
            connection_limit,
            stats: ReplayStats::default(),
            next_leg: 1,
            origin: None,
            now,
            last_tick: now,
            spare: Vec::new(),
        }
    }

    /// What was read and skipped so far.
    pub fn stats(&self) -> ReplayStats {
        self.stats
    }

    /// Replay one file into `legs`. Connections still open at the end of the file are closed (a
    /// later file is another capture).
    pub fn file(&mut self, path: &Path, legs: &mut dyn Legs) -> Result<(), ReplayError> {
        self.replay(path, None, legs)
    }

    /// Replay a capture held in memory (`name` stands for its file in errors): the fuzz target
    /// and tests feed bytes through the same path as files.
    pub fn bytes(&mut self, name: &Path, bytes: &[u8], legs: &mut dyn Legs) -> Result<(), ReplayError> {
        self.replay(name, Some(bytes), legs)
    }

    fn replay(&mut self, path: &Path, bytes: Option<&[u8]>, legs: &mut dyn Legs) -> Result<(), ReplayError> {
        let mut connections = tcp::Connections::with_limit(self.next_leg, self.connection_limit);
        let mut stats = self.stats;
        let each_frame = |frame: capture::Frame<'_>| {
            stats.frames += 1;
            let segment = match packet::decode(frame.link, frame.data) {
                Ok(s) => s,
                Err(FrameError::NotTcp) => {
                    stats.not_tcp += 1;
                    return;
                }
                Err(FrameError::Fragment) => {
                    stats.fragments += 1;
                    return;
                }
                Err(FrameError::UnsupportedLink(_)) => {
                    stats.unsupported_link += 1;
                    return;
                }
                Err(FrameError::Damaged { .. }) => {
                    stats.damaged += 1;
                    return;
                }
            };
            stats.tcp_segments += 1;
            stats.truncated_payloads += u64::from(segment.truncated);
            let Some(now) = self.clock(frame.time) else {
                stats.bad_timestamps += 1;
                return;
            };
            let mut events = reuse(std::mem::take(&mut self.spare));
            connections.segment(&segment, frame.time, &mut events);
            // Most segments (bare ACKs, payload of decided legs) make no event: nothing to feed.
            self.spare = if events.is_empty() { reuse(events) } else { feed(events, now, &mut connections, legs) };
            if now.saturating_duration_since(self.last_tick) >= TICK_EVERY {
                self.last_tick = now;
                legs.tick(now);
                legs.deliver(&mut connections);
            }
        };
        let result = match bytes {
            Some(bytes) => capture::read_from(path, bytes, each_frame),
            None => capture::read(path, each_frame),
        };
        let mut events = reuse(std::mem::take(&mut self.spare));
        connections.finish(&mut events);
        self.spare = feed(events, self.now, &mut connections, legs);
        stats.tcp = add_tcp(stats.tcp, connections.stats);
        self.next_leg = connections.next_leg();
        match result {
            Ok(end) => {
                stats.files += 1;
                stats.truncated_files += u64::from(end.truncated);
                stats.orphan_packets += end.orphan_packets;
                stats.bad_timestamps += end.bad_timestamps;
                self.stats = stats;
                Ok(())
            }
            Err(e) => {
                self.stats = stats;
                Err(e)
            }
        }
    }

    /// Capture time on the tracker's clock; `None` when the jump from the first packet is more
    /// than the clock can hold.
    fn clock(&mut self, time: SystemTime) -> Option<Instant> {
        let (t0, i0) = *self.origin.get_or_insert((time, self.now));
        let at = i0.checked_add(time.duration_since(t0).unwrap_or_default())?;
        self.now = self.now.max(at);
        Some(self.now)
    }
}

/// One frame's events into `legs`, then what they decided handed on; the emptied buffer back.
fn feed(
    mut events: Vec<Event<'_>>,
    now: Instant,
    connections: &mut tcp::Connections,
    legs: &mut dyn Legs,
) -> Vec<Event<'static>> {
    for event in events.drain(..) {
        legs.event(event, now);
    }
    legs.deliver(connections);
    reuse(events)
}

/// [`legs::recycle`], inlined: it runs twice for every frame, and called across code units it
/// cost more than the frame's decoding.
#[inline(always)]
fn reuse<'b>(mut events: Vec<Event<'_>>) -> Vec<Event<'b>> {
    events.clear();
    // Collecting an emptied vector into one of the same layout reuses its allocation.
    events.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

impl legs::SourceControl for tcp::Connections {
    fn stop_sampling(&mut self, leg: LegId) {
        tcp::Connections::stop_sampling(self, leg);
    }

    fn reported(&mut self, leg: LegId) {
        tcp::Connections::reported(self, leg);
    }
}

/// A replay of one or more capture files into one tracker, each finished leg handed to a
/// callback: the [`CaptureSource`] and a [`Flow`] together, for tools and tests.
pub struct Replay {
    source: CaptureSource,
    flow: Flow,
}

impl Replay {
    pub fn new(config: TrackerConfig) -> Self {
        Self { source: CaptureSource::new(config.max_legs), flow: Flow::new(config) }
    }

    /// Replay one file; every leg that finishes is passed to `record`.
    pub fn file(&mut self, path: &Path, mut record: &mut dyn FnMut(LegRecord)) -> Result<(), ReplayError> {
        self.source.file(path, &mut self.flow.into_sink(&mut record))
    }

    /// Replay a capture held in memory (`name` stands for its file in errors).
    pub fn bytes(
        &mut self,
        name: &Path,
        bytes: &[u8],
        mut record: &mut dyn FnMut(LegRecord),
    ) -> Result<(), ReplayError> {
        self.source.bytes(name, bytes, &mut self.flow.into_sink(&mut record))
    }

    /// Report what is left (legs whose classification never completed) and the counters.
    pub fn finish(mut self, mut record: &mut dyn FnMut(LegRecord)) -> (ReplayStats, TrackerStats) {
        self.flow.finish(crate::classify::UnknownReason::CaptureEnded);
        self.flow.deliver(&mut (), &mut record);
        (self.source.stats(), self.flow.stats())
    }
}

fn add_tcp(a: TcpStats, b: TcpStats) -> TcpStats {
    TcpStats {
        connections: a.connections + b.connections,
        midstream: a.midstream + b.midstream,
        evicted: a.evicted + b.evicted,
    }
}
