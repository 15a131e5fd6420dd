//! Crafted capture files for the hostile-input tests: IPv4/TCP frames on the raw-IP link type,
//! written as legacy pcap or as pcapng with chosen interface options.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::path::{Path, PathBuf};

/// LINKTYPE_RAW: frames start at the IP header.
pub const RAW: u16 = 101;

pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const PSH: u8 = 0x08;
pub const FIN: u8 = 0x01;
pub const RST: u8 = 0x04;

/// One TCP segment in an IPv4 packet (checksums are not verified by the replay).
pub fn tcp(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 20 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0];
    p.extend(src.0);
    p.extend(dst.0);
    p.extend(src.1.to_be_bytes());
    p.extend(dst.1.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(ack.to_be_bytes());
    p.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A legacy little-endian microsecond pcap of `(seconds, frame)` records.
pub fn pcap(records: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    f.extend(65535u32.to_le_bytes());
    f.extend(u32::from(RAW).to_le_bytes());
    for (secs, frame) in records {
        f.extend(secs.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend((frame.len() as u32).to_le_bytes());
        f.extend((frame.len() as u32).to_le_bytes());
        f.extend(frame);
    }
    f
}

/// A pcapng block: type, body padded to 32 bits, lengths.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (12 + body.len()) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

pub fn section_header() -> Vec<u8> {
    let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    body.extend([1, 0, 0, 0]);
    body.extend((-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &body)
}

/// An interface description with optional `if_tsresol` and `if_tsoffset`.
pub fn interface(tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
    let mut body = RAW.to_le_bytes().to_vec();
    body.extend([0, 0]);
    body.extend(65535u32.to_le_bytes());
    if let Some(r) = tsresol {
        body.extend([9, 0, 1, 0, r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        body.extend([14, 0, 8, 0]);
        body.extend(o.to_le_bytes());
    }
    if tsresol.is_some() || tsoffset.is_some() {
        body.extend([0, 0, 0, 0]);
    }
    block(1, &body)
}

/// An enhanced packet block of interface 0 at `ticks` of the interface's resolution.
pub fn packet(ticks: u64, frame: &[u8]) -> Vec<u8> {
    let mut body = 0u32.to_le_bytes().to_vec();
    body.extend(((ticks >> 32) as u32).to_le_bytes());
    body.extend((ticks as u32).to_le_bytes());
    body.extend((frame.len() as u32).to_le_bytes());
    body.extend((frame.len() as u32).to_le_bytes());
    body.extend(frame);
    block(6, &body)
}

/// A client at 10.0.0.1:40000 sending `payload` to 10.0.0.2:port after a full handshake.
pub fn connection(port: u16, payload: &[u8]) -> Vec<Vec<u8>> {
    let (c, s) = (([10, 0, 0, 1], 40000), ([10, 0, 0, 2], port));
    vec![
        tcp(c, s, 100, 0, SYN, b""),
        tcp(s, c, 500, 101, SYN | ACK, b""),
        tcp(c, s, 101, 501, ACK | PSH, payload),
        tcp(c, s, 101 + payload.len() as u32, 501, FIN | ACK, b""),
        tcp(s, c, 501, 102 + payload.len() as u32, FIN | ACK, b""),
    ]
}

/// A scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("observer-wire-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write capture");
    path
}
