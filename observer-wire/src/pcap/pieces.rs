//! The payload pieces of every connection in a capture, in arrival order, without classifying:
//! the raw material of the every-prefix tests, the benchmarks and the fuzz corpus.

use std::{collections::BTreeMap, path::Path};

use super::{ReplayError, capture, packet, tcp};
use crate::legs::{Direction, Event, LegId};

/// One payload piece of a leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub direction: Direction,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// The pieces of one leg, in the order the capture holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegPieces {
    pub leg: LegId,
    pub pieces: Vec<Piece>,
}

/// Every leg of the capture at `path` with its payload pieces (each direction capped at the
/// tracker's `MAX_STREAM_BYTES`, as the replay delivers them).
pub fn leg_pieces(path: &Path) -> Result<Vec<LegPieces>, ReplayError> {
    let mut connections = tcp::Connections::new(1);
    let mut legs: BTreeMap<LegId, LegPieces> = BTreeMap::new();
    capture::read(path, |frame| {
        let mut events = Vec::new();
        if let Ok(segment) = packet::decode(frame.link, frame.data) {
            connections.segment(&segment, frame.time, &mut events);
        }
        for event in events.drain(..) {
            match event {
                Event::Open { leg, .. } => {
                    legs.insert(leg, LegPieces { leg, pieces: Vec::new() });
                }
                Event::Data { leg, direction, offset, bytes } => {
                    if let Some(l) = legs.get_mut(&leg) {
                        l.pieces.push(Piece { direction, offset, bytes: bytes.to_vec() });
                    }
                }
                _ => {}
            }
        }
    })?;
    Ok(legs.into_values().collect())
}

/// Every frame of the capture at `path` as it is on the wire (link header included), with its
/// link type: the seeds of the frame decoder's fuzz corpus.
pub fn frames(path: &Path) -> Result<Vec<(i32, Vec<u8>)>, ReplayError> {
    let mut frames = Vec::new();
    capture::read(path, |frame| frames.push((frame.link, frame.data.to_vec())))?;
    Ok(frames)
}
