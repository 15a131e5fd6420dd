//! Reading pcap and pcapng files frame by frame (pcap-parser), with each frame's link type and
//! time. A file that cannot be read at all is an error naming it; a cut-short last block is not.

use std::{
    fs::File,
    io::BufReader,
    path::Path,
    time::{Duration, SystemTime},
};

use pcap_parser::{PcapBlockOwned, PcapError, pcapng::Block};

use super::ReplayError;

/// The reader's first buffer; it grows (up to `MAX_BUFFER`) when a block does not fit.
const BUFFER: usize = 1 << 20;
/// Largest block accepted: pcapng allows 4 GiB blocks, but no packet is larger than 256 KiB
/// (the largest snap length tools write) and a bigger block means a damaged file.
const MAX_BUFFER: usize = 16 << 20;

/// One captured frame.
pub struct Frame<'a> {
    pub link: i32,
    pub time: SystemTime,
    pub data: &'a [u8],
}

/// How reading a file ended, when it did not fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileEnd {
    /// The last block was cut short (the capture was still being written, or copied partly).
    pub truncated: bool,
    /// Packet blocks naming an interface the file never described.
    pub orphan_packets: u64,
}

struct Interface {
    link: i32,
    /// Units per second of this interface's timestamps.
    resolution: u64,
    offset: i64,
}

/// Call `frame` for every packet in the file at `path`.
pub fn read(path: &Path, mut frame: impl FnMut(Frame<'_>)) -> Result<FileEnd, ReplayError> {
    let file = File::open(path).map_err(|source| ReplayError::Open { path: path.to_owned(), source })?;
    let mut reader = match pcap_parser::create_reader(BUFFER, BufReader::new(file)) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(ReplayError::Empty { path: path.to_owned() });
        }
        Err(PcapError::ReadError) => {
            return Err(ReplayError::Read { path: path.to_owned() });
        }
        Err(_) => {
            return Err(ReplayError::NotACapture { path: path.to_owned() });
        }
    };
    let mut end = FileEnd::default();
    let mut legacy: Option<(i32, bool)> = None; // link type, nanosecond timestamps
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut size = BUFFER;
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        legacy = Some((header.network.0, header.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        if let Some((link, nanos)) = legacy {
                            let sub = u64::from(packet.ts_usec) * if nanos { 1 } else { 1000 };
                            let time = SystemTime::UNIX_EPOCH
                                + Duration::from_secs(u64::from(packet.ts_sec))
                                + Duration::from_nanos(sub);
                            let len = (packet.caplen as usize).min(packet.data.len());
                            frame(Frame { link, time, data: &packet.data[..len] });
                        }
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => interfaces.push(Interface {
                        link: idb.linktype.0,
                        resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                        offset: idb.ts_offset(),
                    }),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => match interfaces.get(epb.if_id as usize) {
                        Some(interface) => {
                            let ticks = u64::from(epb.ts_high) << 32 | u64::from(epb.ts_low);
                            let secs = ticks / interface.resolution;
                            let frac = ticks % interface.resolution;
                            let nanos = u128::from(frac) * 1_000_000_000 / u128::from(interface.resolution);
                            let base = SystemTime::UNIX_EPOCH
                                + Duration::from_secs(secs.saturating_add_signed(interface.offset))
                                + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0));
                            let len = (epb.caplen as usize).min(epb.data.len());
                            frame(Frame { link: interface.link, time: base, data: &epb.data[..len] });
                        }
                        None => end.orphan_packets += 1,
                    },
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                        // No timestamp in a simple packet block.
                        Some(interface) => {
                            frame(Frame { link: interface.link, time: SystemTime::UNIX_EPOCH, data: spb.data })
                        }
                        None => end.orphan_packets += 1,
                    },
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(consumed);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                reader.refill().map_err(|_| ReplayError::Read { path: path.to_owned() })?;
            }
            Err(PcapError::BufferTooSmall) if size < MAX_BUFFER => {
                size *= 2;
                if !reader.grow(size) {
                    return Err(corrupt(path, reader.consumed(), "a block larger than any packet"));
                }
                reader.refill().map_err(|_| ReplayError::Read { path: path.to_owned() })?;
            }
            Err(PcapError::BufferTooSmall) => {
                return Err(corrupt(path, reader.consumed(), "a block larger than any packet"));
            }
            Err(PcapError::UnexpectedEof) => {
                end.truncated = true;
                break;
            }
            Err(PcapError::ReadError) => {
                return Err(ReplayError::Read { path: path.to_owned() });
            }
            Err(_) => {
                return Err(corrupt(path, reader.consumed(), "a block that does not parse"));
            }
        }
    }
    Ok(end)
}

fn corrupt(path: &Path, offset: usize, what: &'static str) -> ReplayError {
    ReplayError::Corrupt { path: path.to_owned(), offset, what }
}
