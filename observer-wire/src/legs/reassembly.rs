//! Reassembly of one direction's sampled bytes by stream offset.
//!
//! Samples arrive as (offset, bytes) pieces: in order, out of order, duplicated (retransmits, or
//! the same bytes seen by both sockets of a local connection) or overlapping. The reassembler keeps
//! the contiguous prefix from offset 0, holds later pieces until the hole before them fills, and
//! never grows past its cap.

/// Most bytes kept per direction: the kernel samples at most `SAMPLE_BUDGET` (4 KiB); a pcap
/// can hold more, and a ClientHello with a post-quantum key share plus the second flight fits well
/// within 16 KiB.
pub const MAX_STREAM_BYTES: usize = 16 * 1024;

/// Most out-of-order pieces held while waiting for a hole to fill.
pub const MAX_PENDING_PIECES: usize = 64;

/// Most out-of-order bytes held per direction: the kernel's sampling budget (`SAMPLE_BUDGET`,
/// 4 KiB), all a live leg can deliver past a hole. Without it, 64 overlapping pieces of up to
/// `MAX_STREAM_BYTES` each could hold a megabyte per direction of one crafted connection.
pub const MAX_PENDING_BYTES: usize = 4096;

/// One direction of a leg.
#[derive(Clone, Debug, Default)]
pub struct Reassembly {
    contiguous: Vec<u8>,
    /// Pieces starting past the contiguous end, sorted by offset.
    pending: Vec<(u64, Vec<u8>)>,
    /// Bytes offered at or past the cap (not kept).
    overflowed: bool,
    /// Pieces dropped because too many (or too many bytes) were pending.
    dropped_pieces: u64,
    /// Bytes held in `pending`.
    pending_bytes: usize,
}

impl Reassembly {
    /// Add the bytes that start at `offset` in the stream.
    pub fn insert(&mut self, offset: u64, bytes: &[u8]) {
        let end = offset.saturating_add(bytes.len() as u64);
        let cap = MAX_STREAM_BYTES as u64;
        if end > cap {
            self.overflowed = true;
        }
        let end = end.min(cap);
        if offset >= end {
            return;
        }
        let bytes = &bytes[..(end - offset) as usize];
        let have = self.contiguous.len() as u64;
        if end <= have {
            return; // all seen already
        }
        if offset <= have {
            self.contiguous.extend_from_slice(&bytes[(have - offset) as usize..]);
            self.drain_pending();
        } else if self.pending.len() < MAX_PENDING_PIECES && self.pending_bytes + bytes.len() <= MAX_PENDING_BYTES {
            let at = self.pending.partition_point(|(o, _)| *o <= offset);
            self.pending_bytes += bytes.len();
            self.pending.insert(at, (offset, bytes.to_vec()));
        } else {
            self.dropped_pieces += 1;
        }
    }

    fn drain_pending(&mut self) {
        while let Some((offset, _)) = self.pending.first() {
            let have = self.contiguous.len() as u64;
            if *offset > have {
                break;
            }
            let (offset, piece) = self.pending.remove(0);
            self.pending_bytes -= piece.len();
            let end = offset + piece.len() as u64;
            if end > have {
                self.contiguous.extend_from_slice(&piece[(have - offset) as usize..]);
            }
        }
    }

    /// The bytes from offset 0 without a hole.
    pub fn bytes(&self) -> &[u8] {
        &self.contiguous
    }

    /// Bytes were seen past a hole that has not been filled.
    pub fn has_gap(&self) -> bool {
        !self.pending.is_empty() || self.dropped_pieces > 0
    }

    /// Bytes were offered past `MAX_STREAM_BYTES` and not kept.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Bytes held out of order, waiting for a hole to fill (at most [`MAX_PENDING_BYTES`]).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Out-of-order pieces dropped because too many were pending.
    pub fn dropped_pieces(&self) -> u64 {
        self.dropped_pieces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(pieces: &[(u64, &[u8])]) -> Reassembly {
        let mut r = Reassembly::default();
        for (offset, bytes) in pieces {
            r.insert(*offset, bytes);
        }
        r
    }

    #[test]
    fn in_order_pieces_concatenate() {
        let r = assemble(&[(0, b"hello "), (6, b"world")]);
        assert_eq!(r.bytes(), b"hello world");
        assert!(!r.has_gap());
    }

    #[test]
    fn out_of_order_pieces_wait_for_the_hole() {
        let mut r = assemble(&[(6, b"world"), (11, b"!")]);
        assert_eq!(r.bytes(), b"");
        assert!(r.has_gap());
        r.insert(0, b"hello ");
        assert_eq!(r.bytes(), b"hello world!");
        assert!(!r.has_gap());
    }

    #[test]
    fn duplicates_and_retransmits_change_nothing() {
        let r = assemble(&[(0, b"abc"), (0, b"abc"), (1, b"bc"), (3, b"def"), (3, b"def")]);
        assert_eq!(r.bytes(), b"abcdef");
    }

    #[test]
    fn overlaps_keep_the_first_copy_and_extend() {
        let r = assemble(&[(0, b"abcd"), (2, b"XXef"), (8, b"ij"), (5, b"fgh")]);
        assert_eq!(r.bytes(), b"abcdefghij");
    }

    #[test]
    fn the_cap_bounds_what_is_kept() {
        let big = vec![7u8; MAX_STREAM_BYTES + 100];
        let r = assemble(&[(0, &big)]);
        assert_eq!(r.bytes().len(), MAX_STREAM_BYTES);
        assert!(r.overflowed());
        let r = assemble(&[(MAX_STREAM_BYTES as u64 + 5, b"late")]);
        assert_eq!(r.bytes(), b"");
        assert!(r.overflowed());
    }

    #[test]
    fn out_of_order_bytes_are_bounded_by_the_sampling_budget() {
        // Overlapping pieces of 16 KiB each past a one-byte hole: once held, a megabyte.
        let mut r = Reassembly::default();
        let big = vec![1u8; MAX_STREAM_BYTES];
        for i in 0..MAX_PENDING_PIECES as u64 {
            r.insert(1 + i, &big);
        }
        assert!(r.pending_bytes() <= MAX_PENDING_BYTES, "{}", r.pending_bytes());
        assert_eq!(r.dropped_pieces(), MAX_PENDING_PIECES as u64);
        // Small pieces up to the budget are held and drained when the hole fills.
        let mut r = Reassembly::default();
        for i in 0..4u64 {
            r.insert(1 + i * 1000, &[2u8; 1000]);
        }
        assert_eq!((r.pending_bytes(), r.dropped_pieces()), (4000, 0));
        r.insert(0, b"x");
        assert_eq!((r.bytes().len(), r.pending_bytes(), r.has_gap()), (4001, 0, false));
    }

    #[test]
    fn the_pending_bound_is_the_kernel_budget() {
        assert_eq!(MAX_PENDING_BYTES, observer_common::SAMPLE_BUDGET as usize);
    }

    #[test]
    fn too_many_pending_pieces_are_counted_not_kept() {
        let mut r = Reassembly::default();
        for i in 0..(MAX_PENDING_PIECES as u64 + 3) {
            r.insert(10 + i * 2, b"x");
        }
        assert_eq!(r.dropped_pieces(), 3);
        assert!(r.has_gap());
    }
}
