//! For the hello readers' tests: one direction of every fixture leg, reassembled and starting at
//! its first TLS handshake record (past an in-protocol upgrade it is not at byte 0).

use crate::legs::{Direction, Reassembly};

pub fn fixture_streams(direction: Direction) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut streams = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures folder") {
        let path = entry.expect("fixture entry").path();
        if !path.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
            continue;
        }
        for leg in crate::pcap::leg_pieces(&path).expect("fixture reads") {
            let mut stream = Reassembly::default();
            for p in leg.pieces.iter().filter(|p| p.direction == direction) {
                stream.insert(p.offset, &p.bytes);
            }
            let bytes = stream.bytes();
            if let Some(start) = (0..bytes.len()).find(|&at| bytes[at..].starts_with(&[22, 3])) {
                streams.push(bytes[start..].to_vec());
            }
        }
    }
    streams
}
