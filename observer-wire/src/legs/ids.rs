//! Tables keyed by ids the observer or the kernel hands out (socket cookies, leg ids), never by
//! values a peer picks: those stay on the keyed hasher (5-tuples in replay, addresses).
//!
//! Such ids come in runs: the kernel gives each CPU a batch of consecutive socket cookies, and
//! replay numbers legs in order. A general hasher scatters a run over the whole table, so every
//! insert and every lookup of a recent socket touches a cold cache line; profiling the daemon
//! under a new-connection load put the socket and leg tables' first touches at a fifth of its
//! time. This hasher keeps a run's ids in neighbouring slots (the position is the id, shifted
//! by a mix of its batch so that two CPUs' runs do not land on the same slots) and takes the
//! 7 tag bits the table compares first from a full mix of the id.

use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by an id (see the module documentation).
pub type IdMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A new, empty [`IdMap`].
pub fn id_map<V>() -> IdMap<V> {
    IdMap::default()
}

/// The hasher behind [`IdMap`]: for `u64` keys only.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

/// A kernel cookie batch is 4096 ids.
const RUN_BITS: u32 = 12;
const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for u64 keys; kept correct (if slow) for any other use.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(MIX);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }

    fn finish(&self) -> u64 {
        let id = self.0;
        let position = id.wrapping_add((id >> RUN_BITS).wrapping_mul(MIX) >> RUN_BITS);
        let tag = id.wrapping_mul(MIX) & (0x7f << 57);
        (position & !(0x7f << 57)) | tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn neighbouring_ids_land_in_neighbouring_slots_and_runs_apart() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let h = |id: u64| build.hash_one(id) & 0xffff;
        assert_eq!(h(1001), h(1000) + 1);
        // Two CPUs' batches, 4096 apart, do not share their slots.
        assert_ne!(h(8192) & 0xfff, h(4096) & 0xfff);
        let mut map = id_map();
        for id in (0..20_000u64).chain(1 << 40..(1 << 40) + 100) {
            map.insert(id, id * 2);
        }
        assert_eq!(map.get(&19_999), Some(&39_998));
        assert_eq!(map.get(&((1 << 40) + 5)), Some(&(((1 << 40) + 5) * 2)));
        assert_eq!(map.len(), 20_100);
    }
}
