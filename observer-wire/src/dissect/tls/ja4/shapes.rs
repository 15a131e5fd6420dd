//! The two hashed parts of JA4 remembered per ClientHello shape. Clients of one TLS library
//! send the same cipher, extension and signature-algorithm lists connection after connection,
//! so a node sees few shapes, and hashing them again (two SHA-256 runs and two sorts) was most
//! of a handshake's classification cost.
//!
//! A small direct-mapped table per thread (the tracker classifies on one thread; `thread_local!`
//! keeps the callers' API as it was). Each entry holds the whole key, compared on every hit: a
//! client choosing its lists so that they land on another shape's slot only evicts it, it never
//! gets that shape's hashes. Keys longer than [`KEY_UNITS`] are not remembered (hashed every
//! time, as before). Memory: [`ENTRIES`] entries of 288 bytes, 72 KiB per thread that
//! fingerprints a ClientHello, allocated on its first one and never grown.

use std::{cell::RefCell, hash::BuildHasher};

use foldhash::fast::RandomState;

/// Slots of the table. Few shapes are live on a node (one or two per client library and
/// version); 256 leaves room for a fleet's worth while a table fits in L2.
pub(super) const ENTRIES: usize = 256;

/// Longest key remembered, in 16-bit units: the two counts, then the cipher suites, the
/// extensions and the signature algorithms. Common clients need 40 to 70 (OpenSSL's default
/// offer is the longest seen here); a longer offer is hashed every time.
pub(super) const KEY_UNITS: usize = 128;

/// The first 12 hex digits of each of the two hashes.
pub(super) type Hashes = [[u8; 12]; 2];

/// The exact inputs of JA4's two hashed parts, before sorting: the cipher suites (GREASE
/// removed) and the extension types (GREASE, SNI and ALPN removed), each preceded by its
/// count so that no two different inputs share a key, then the signature algorithms.
#[derive(Clone, Copy)]
pub(super) struct Key {
    len: usize,
    units: [u16; KEY_UNITS],
}

impl Key {
    /// The key of these lists, or `None` when it is longer than [`KEY_UNITS`].
    pub(super) fn of(
        ciphers: &[u16],
        extensions: &[u16],
        signature_algorithms: impl Iterator<Item = u16>,
    ) -> Option<Self> {
        let mut key = Self { len: 0, units: [0; KEY_UNITS] };
        for list in [ciphers, extensions] {
            let count = u16::try_from(list.len()).ok()?;
            key.units.get_mut(key.len)?.clone_from(&count);
            key.units.get_mut(key.len + 1..key.len + 1 + list.len())?.copy_from_slice(list);
            key.len += 1 + list.len();
        }
        for value in signature_algorithms {
            key.units.get_mut(key.len)?.clone_from(&value);
            key.len += 1;
        }
        Some(key)
    }

    fn units(&self) -> &[u16] {
        &self.units[..self.len]
    }
}

/// One slot; empty when `len == 0` (a key always holds its two counts) or when it was filled
/// before the table's last [`forget`].
#[derive(Clone, Copy)]
pub(super) struct Entry {
    generation: u32,
    len: u16,
    units: [u16; KEY_UNITS],
    hashes: Hashes,
}

impl Entry {
    const EMPTY: Self = Self { generation: 0, len: 0, units: [0; KEY_UNITS], hashes: [[0; 12]; 2] };
}

/// A thread's table and the seed of its slot index (random per thread, so that which lists
/// share a slot cannot be planned from outside).
pub(super) struct Shapes {
    entries: Box<[Entry]>,
    seed: RandomState,
    /// Bumped by [`forget`]: forgetting touches no slot, so a bench that forgets before every
    /// handshake measures the handshake, not the clearing of 72 KiB.
    generation: u32,
}

impl Shapes {
    fn new() -> Self {
        Self { entries: vec![Entry::EMPTY; ENTRIES].into_boxed_slice(), seed: RandomState::default(), generation: 1 }
    }

    /// The slot a key maps to.
    pub(super) fn slot(&mut self, key: &Key) -> &mut Entry {
        let index = self.seed.hash_one(key.units()) as usize % ENTRIES;
        &mut self.entries[index]
    }

    /// The remembered hashes of `key`, if its slot holds exactly this key.
    fn get(&mut self, key: &Key) -> Option<Hashes> {
        let generation = self.generation;
        let entry = self.slot(key);
        let same = entry.generation == generation && usize::from(entry.len) == key.len;
        (same && entry.units[..key.len] == *key.units()).then_some(entry.hashes)
    }

    /// Remembers `hashes` for `key` in its slot, in place of what the slot held.
    fn insert(&mut self, key: &Key, hashes: Hashes) {
        // A key's length fits in u16: `KEY_UNITS` is far below 65536.
        // Only the key's units are copied, not the whole entry: a miss stays close to the cost
        // of hashing without the table.
        let generation = self.generation;
        let entry = self.slot(key);
        entry.units[..key.len].copy_from_slice(key.units());
        entry.len = key.len as u16;
        entry.hashes = hashes;
        entry.generation = generation;
    }
}

thread_local! {
    static SHAPES: RefCell<Option<Shapes>> = const { RefCell::new(None) };
}

/// The hashes of `key` through this thread's table, or `compute`'s alone without a key (too
/// long) or a table (the thread is ending).
pub(super) fn hashes(key: Option<&Key>, compute: impl FnOnce() -> Hashes) -> Hashes {
    let Some(key) = key else { return compute() };
    if let Some(hashes) = with_table(|shapes| shapes.get(key)).flatten() {
        return hashes;
    }
    let hashes = compute();
    with_table(|shapes| shapes.insert(key, hashes));
    hashes
}

/// Runs `f` on this thread's table, made on first use; `None` once the thread's storage is
/// being torn down (or, never in practice, while the table is in use further up the stack).
pub(super) fn with_table<T>(f: impl FnOnce(&mut Shapes) -> T) -> Option<T> {
    SHAPES
        .try_with(|shapes| shapes.try_borrow_mut().ok().map(|mut shapes| f(shapes.get_or_insert_with(Shapes::new))))
        .ok()
        .flatten()
}

#[cfg(test)]
impl Shapes {
    /// Every non-empty slot's key.
    pub(super) fn keys(&self) -> Vec<Vec<u16>> {
        let live = |e: &&Entry| e.len > 0 && e.generation == self.generation;
        self.entries.iter().filter(live).map(|e| e.units[..usize::from(e.len)].to_vec()).collect()
    }
}

#[cfg(test)]
impl Shapes {
    /// Replaces the slot of `key` with `units` as its key and `hashes` as its answer.
    pub(super) fn plant(&mut self, key: &Key, units: &[u16], hashes: Hashes) {
        let generation = self.generation;
        let entry = self.slot(key);
        entry.units[..units.len()].copy_from_slice(units);
        entry.len = units.len() as u16;
        entry.hashes = hashes;
        entry.generation = generation;
    }
}

/// Forgets every shape this thread remembered, so that the next fingerprints are computed
/// whole: what the benches use to measure the cost of a shape seen for the first time.
pub fn forget() {
    // A wrapped generation revives nothing wrong: every slot's hashes are those of its own key.
    with_table(|shapes| shapes.generation = shapes.generation.wrapping_add(1));
}

#[cfg(test)]
mod tests;
