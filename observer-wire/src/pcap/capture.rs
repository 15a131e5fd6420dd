//! Reading pcap and pcapng files frame by frame (pcap-parser), with each frame's link type and
//! time. A file that cannot be read at all is an error naming it; a cut-short last block is not.

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    time::{Duration, SystemTime},
};

use pcap_parser::{PcapBlockOwned, PcapError, pcapng::Block};

use super::ReplayError;
use crate::regular_file::{OpenError, open_regular};

/// The reader's first buffer; it grows (up to `MAX_BUFFER`) when a block does not fit. Small
/// enough to stay in the cache between the read that fills it and the parsing (and to page in
/// once: a fresh buffer is a page fault per 4 KiB), large enough for few reads.
const BUFFER: usize = 256 << 10;
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
    /// Packet blocks whose timestamp is no time a record can carry (an invalid `if_tsresol`,
    /// an offset or value before 1970 or after the year 9999): counted and skipped.
    pub bad_timestamps: u64,
}

struct Interface {
    link: i32,
    /// Units per second of this interface's timestamps; `None` for an invalid `if_tsresol`.
    resolution: Option<u64>,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset: i64,
}

impl Interface {
    /// The time of a packet of this interface, if the file's numbers make one.
    fn time(&self, high: u32, low: u32) -> Option<SystemTime> {
        let resolution = self.resolution?;
        let ticks = u64::from(high) << 32 | u64::from(low);
        let secs = i64::try_from(ticks / resolution).ok()?.checked_add(self.offset)?;
        let secs = u64::try_from(secs).ok().filter(|s| *s <= MAX_SECONDS)?;
        let nanos = u128::from(ticks % resolution) * 1_000_000_000 / u128::from(resolution);
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs) + Duration::from_nanos(u64::try_from(nanos).ok()?))
    }
}

/// 9999-12-31T23:59:59Z: the last second an RFC 3339 record can name. A packet dated before
/// 1970 or after this is damage, whatever the file's numbers say.
const MAX_SECONDS: u64 = 253_402_300_799;

/// Units per second of an `if_tsresol` option: 10^n, or 2^n when the top bit is set.
fn resolution(tsresol: u8) -> Option<u64> {
    let exponent = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 { 10u64.checked_pow(exponent) } else { 1u64.checked_shl(exponent).filter(|_| exponent < 64) }
}

/// Largest record a legacy pcap may hold: the largest snap length tools write.
const MAX_RECORD: u32 = 256 * 1024;

/// A legacy record header at `data` announcing more bytes than any packet: the file is damaged
/// there, not cut short (reading on would silently lose every packet after it).
fn oversized_record(data: &[u8], big_endian: bool) -> bool {
    let Some(&[a, b, c, d]) = data.get(8..12) else { return false };
    let caplen = if big_endian { u32::from_be_bytes([a, b, c, d]) } else { u32::from_le_bytes([a, b, c, d]) };
    caplen > MAX_RECORD
}

/// Bytes every pcapng block has besides its body: type, total length, and the length again.
const PCAPNG_BLOCK_FRAME: u32 = 12;

/// Whether the pcapng block at the start of `data` announces a total length shorter than its
/// own framing; `big_endian` is the section's byte order, updated when `data` starts a new
/// section. pcap-parser subtracts the framing from that length unchecked (an overflow: a panic
/// with overflow checks, else a 4 GiB block the file ends inside), so such a block is reported
/// as damage before it is handed over.
fn undersized_block(data: &[u8], big_endian: &mut bool) -> bool {
    let Some(&[t0, t1, t2, t3, l0, l1, l2, l3]) = data.get(..8) else { return false };
    if [t0, t1, t2, t3] == [0x0a, 0x0d, 0x0d, 0x0a] {
        // A section header: its byte-order magic says how to read every length in it.
        match data.get(8..12) {
            Some([0x1a, 0x2b, 0x3c, 0x4d]) => *big_endian = true,
            Some([0x4d, 0x3c, 0x2b, 0x1a]) => *big_endian = false,
            _ => return false, // not a section pcap-parser reads; it reports it
        }
    }
    let len = if *big_endian { u32::from_be_bytes([l0, l1, l2, l3]) } else { u32::from_le_bytes([l0, l1, l2, l3]) };
    len < PCAPNG_BLOCK_FRAME
}

/// The capture format a file's first bytes announce, when they announce one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Magic {
    #[error("pcap")]
    Pcap,
    #[error("pcapng")]
    Pcapng,
}

impl Magic {
    fn of(head: &[u8]) -> Option<Self> {
        match head.get(..4)? {
            [0x0a, 0x0d, 0x0d, 0x0a] => Some(Self::Pcapng),
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x34, 0xcd, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xcd, 0x34] => Some(Self::Pcap),
            _ => None,
        }
    }
}

/// Call `frame` for every packet in the file at `path`.
pub fn read(path: &Path, frame: impl FnMut(Frame<'_>)) -> Result<FileEnd, ReplayError> {
    let file = open_regular(path).map_err(|e| match e {
        OpenError::NotRegular(kind) => ReplayError::NotRegular { path: path.to_owned(), kind },
        OpenError::Io(source) => ReplayError::Open { path: path.to_owned(), source },
    })?;
    read_from(path, file, frame)
}

/// Call `frame` for every packet of the capture `source` holds (`path` names it in errors).
pub fn read_from(path: &Path, source: impl Read, mut frame: impl FnMut(Frame<'_>)) -> Result<FileEnd, ReplayError> {
    let mut file = BufReader::new(source);
    let magic = match file.fill_buf() {
        Ok(head) => Magic::of(head),
        Err(_) => return Err(ReplayError::Read { path: path.to_owned() }),
    };
    let mut reader = match pcap_parser::create_reader(BUFFER, file) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(ReplayError::Empty { path: path.to_owned() });
        }
        Err(PcapError::ReadError) => {
            return Err(ReplayError::Read { path: path.to_owned() });
        }
        Err(_) => {
            return Err(match magic {
                Some(format) => ReplayError::CutInHeader { path: path.to_owned(), format },
                None => ReplayError::NotACapture { path: path.to_owned() },
            });
        }
    };
    let mut end = FileEnd::default();
    let mut legacy: Option<(i32, bool, bool)> = None; // link type, nanosecond timestamps, big-endian
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut size = BUFFER;
    let mut big_endian = false;
    loop {
        if magic == Some(Magic::Pcapng) && undersized_block(reader.data(), &mut big_endian) {
            return Err(corrupt(path, reader.consumed(), "a block shorter than its own header"));
        }
        match reader.next() {
            Ok((consumed, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        legacy = Some((header.network.0, header.is_nanosecond_precision(), header.is_bigendian()));
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        if let Some((link, nanos, _)) = legacy {
                            // Seconds are u32 and the fraction at most ~4295 s: always representable.
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
                        resolution: resolution(idb.if_tsresol),
                        offset: idb.ts_offset(),
                    }),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => match interfaces.get(epb.if_id as usize) {
                        Some(interface) => match interface.time(epb.ts_high, epb.ts_low) {
                            Some(time) => {
                                let len = (epb.caplen as usize).min(epb.data.len());
                                frame(Frame { link: interface.link, time, data: &epb.data[..len] });
                            }
                            None => end.bad_timestamps += 1,
                        },
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
                // Not `consume`: it moves the unread half of the buffer to its front every half
                // buffer (a copy of the whole file); `refill` moves only the unread tail.
                reader.consume_noshift(consumed);
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
                if let Some((_, _, big_endian)) = legacy
                    && oversized_record(reader.data(), big_endian)
                {
                    return Err(corrupt(path, reader.consumed(), "a record longer than any packet"));
                }
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
