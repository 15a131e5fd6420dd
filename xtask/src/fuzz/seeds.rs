//! The seeds of each fuzz target's corpus, made from the project's real fixtures in the
//! target's own input format: a fuzzer that starts from real handshakes, captures and
//! manifests reaches the deep states of each parser in seconds instead of hours.
//!
//! Seeds are derived, not tracked: the fixtures are the source of truth, and a fixture added
//! later seeds the next run by itself. They are written under content-addressed names, so a
//! rerun rewrites the same files and libFuzzer's own additions stay next to them.

use std::{
    collections::hash_map::DefaultHasher,
    fs,
    hash::{Hash as _, Hasher as _},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use observer_wire::{
    legs::Direction,
    pcap::{self, LegPieces},
};

use crate::cmd;

/// Bytes per direction in a `dissect` seed: the live sampler's budget, all the classifier sees.
const SAMPLE_BYTES: usize = 4096;
/// A `pipeline` segment carries at most 255 bytes (its length is one byte).
const SEGMENT_BYTES: usize = 255;
/// Frames seeded per capture for `packet`: the link, IP and TCP headers repeat after these.
const FRAMES_PER_CAPTURE: usize = 16;

/// The capture fixtures (pcap and pcapng), sorted.
fn captures() -> Result<Vec<PathBuf>> {
    let dir = cmd::workspace().join("observer-wire/tests/fixtures");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    Ok(files)
}

/// Every YAML file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

/// The seeds of `target`, each as bytes in that target's input format.
pub fn seeds(target: &str) -> Result<Vec<Vec<u8>>> {
    let mut seeds = Vec::new();
    match target {
        // Both read whole capture files: `records` through the daemon's pipeline.
        "capture" | "records" => {
            for file in captures()? {
                seeds.push(fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
            }
        }
        "packet" => {
            for file in captures()? {
                let frames = pcap::frames(&file).with_context(|| format!("reading frames of {}", file.display()))?;
                seeds.extend(frames.into_iter().take(FRAMES_PER_CAPTURE).map(|(_, data)| data));
            }
        }
        "dissect" | "pipeline" => {
            for file in captures()? {
                let legs = pcap::leg_pieces(&file).with_context(|| format!("reading legs of {}", file.display()))?;
                for leg in &legs {
                    seeds.push(if target == "dissect" { dissect_seed(leg) } else { pipeline_seed(leg) });
                }
            }
        }
        "policy" => {
            let mut files = Vec::new();
            yaml_files(&cmd::workspace().join("observer-mesh/testdata"), &mut files)?;
            for file in files {
                seeds.push(fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
            }
        }
        other => anyhow::bail!("no seeds for fuzz target {other:?}"),
    }
    Ok(seeds)
}

/// Writes the seeds of `target` into `corpus` (made if missing); returns how many.
pub fn write(target: &str, corpus: &Path) -> Result<usize> {
    fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = seeds(target)?;
    for seed in &seeds {
        let mut hasher = DefaultHasher::new();
        seed.hash(&mut hasher);
        let path = corpus.join(format!("seed-{:016x}", hasher.finish()));
        fs::write(&path, seed).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// One direction's bytes as the tracker reassembles them: pieces in stream order, the
/// contiguous prefix only, at most [`SAMPLE_BYTES`].
fn stream(leg: &LegPieces, direction: Direction) -> Vec<u8> {
    let mut pieces: Vec<_> = leg.pieces.iter().filter(|p| p.direction == direction).collect();
    pieces.sort_by_key(|p| p.offset);
    let mut bytes = Vec::new();
    for piece in pieces {
        let Ok(offset) = usize::try_from(piece.offset) else { break };
        if offset > bytes.len() {
            break; // a hole: what follows it is not part of the prefix
        }
        let skip = bytes.len() - offset;
        bytes.extend_from_slice(piece.bytes.get(skip..).unwrap_or_default());
        if bytes.len() >= SAMPLE_BYTES {
            break;
        }
    }
    bytes.truncate(SAMPLE_BYTES);
    bytes
}

/// `dissect`'s input: [split hi, split lo, ends, client bytes, server bytes], both directions
/// closed (the target then requires a decision).
fn dissect_seed(leg: &LegPieces) -> Vec<u8> {
    let client = stream(leg, Direction::ClientToServer);
    let server = stream(leg, Direction::ServerToClient);
    let split = u16::try_from(client.len()).unwrap_or(u16::MAX);
    let mut seed = Vec::with_capacity(3 + client.len() + server.len());
    seed.extend_from_slice(&split.to_be_bytes());
    seed.push(0b0101); // client Closed, server Closed, no gaps
    seed.extend_from_slice(&client);
    seed.extend_from_slice(&server);
    seed
}

/// `pipeline`'s input: the leg observed on the wire, its pieces in capture order as Data
/// segments of at most 255 bytes, then both directions closed and the leg closed.
fn pipeline_seed(leg: &LegPieces) -> Vec<u8> {
    let mut seed = vec![0]; // ObservedAt::Wire
    let mut segment = |flags: u8, offset: u16, bytes: &[u8]| {
        seed.push(flags);
        seed.extend_from_slice(&offset.to_be_bytes());
        seed.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
        seed.extend_from_slice(bytes);
    };
    for piece in &leg.pieces {
        let direction = u8::from(piece.direction == Direction::ServerToClient);
        for (i, chunk) in piece.bytes.chunks(SEGMENT_BYTES).enumerate() {
            // Offsets past 64 KiB do not fit the unshifted format; they are past the
            // reassembly cap anyway.
            let Ok(offset) = u16::try_from(piece.offset + (i * SEGMENT_BYTES) as u64) else { break };
            segment(direction, offset, chunk);
        }
    }
    segment(3 << 3, 0, &[]); // client direction closed
    segment(3 << 3 | 1, 0, &[]); // server direction closed
    segment(4 << 3, 0, &[]); // leg closed
    seed
}
