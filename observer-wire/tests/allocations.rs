//! Heap allocations of one handshake's classification, call by call as the tracker makes them
//! (one `Classifier` per leg, one call per captured segment until the answer), counted by a
//! counting allocator. The answer owns what it reports from the wire (SNI, ALPN, JA4); names
//! from static tables (version, cipher suite, key share groups) are borrowed, never copied.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    path::Path,
};

use observer_wire::{
    classify::{Classifier, Input, Progress, StreamEnd},
    legs::{Direction, Reassembly},
    pcap::leg_pieces,
};

thread_local! {
    /// Sizes of the allocations this thread made while counting; `None` when not counting.
    static COUNTING: Cell<Option<(usize, [usize; 64])>> = const { Cell::new(None) };
}

struct Counting;

// SAFETY: every call is passed to `System` unchanged; the counter is a thread-local `Cell`
// that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = COUNTING.try_with(|counting| {
            if let Some((n, mut sizes)) = counting.get() {
                if let Some(size) = sizes.get_mut(n) {
                    *size = layout.size();
                }
                counting.set(Some((n + 1, sizes)));
            }
        });
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The allocations (their sizes) of the calls that classify the last leg of `file`.
fn allocations(file: &str) -> Vec<usize> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    let leg = leg_pieces(&path).expect("fixture reads").pop().expect("a leg");
    let (mut client, mut server) = (Reassembly::default(), Reassembly::default());
    let mut classifier = Classifier::default();
    let mut sizes = Vec::new();
    for piece in &leg.pieces {
        match piece.direction {
            Direction::ClientToServer => client.insert(piece.offset, &piece.bytes),
            Direction::ServerToClient => server.insert(piece.offset, &piece.bytes),
        }
        let input = Input {
            client: client.bytes(),
            server: server.bytes(),
            client_end: StreamEnd::Open,
            server_end: StreamEnd::Open,
            client_gap: false,
            server_gap: false,
        };
        COUNTING.with(|counting| counting.set(Some((0, [0; 64]))));
        let progress = classifier.classify(&input);
        let (n, made) = COUNTING.with(|counting| counting.take()).expect("counting");
        sizes.extend_from_slice(&made[..n.min(64)]);
        sizes.extend(std::iter::repeat_n(0, n.saturating_sub(64)));
        if let Progress::Done(answer) = progress {
            drop(answer);
            return sizes;
        }
    }
    panic!("{file}: the last leg never decided");
}

/// At most this many allocations per handshake, the JA4 table already made (it is made once per
/// thread), as measured when the names from static tables stopped being copied: the answer's
/// box, its JA4, SNI, ALPN and key-share lists, the certificate's names under TLS 1.2, and what
/// the reading of the handshake keeps between calls. A version, cipher suite or group name
/// copied into the answer again would exceed them; a failure prints the sizes to tell which.
#[test]
fn a_handshake_allocates_only_for_what_the_wire_said() {
    let expected = [
        ("tls13-ecdsa-mtls.pcap", 6),
        ("tls13-rsa-no-client-cert.pcap", 6),
        ("haproxy-istio-mtls.pcap", 11),
        ("tls12-rsa-mtls.pcap", 7),
        ("tls12-ecdsa-no-client-cert.pcap", 5),
        ("postgres-ssl.pcap", 6),
    ];
    // Makes this thread's JA4 table, so that no count below includes it.
    allocations(expected[0].0);
    for (file, most) in expected {
        let sizes = allocations(file);
        assert!(sizes.len() <= most, "{file}: {} allocations, at most {most} expected (sizes {sizes:?})", sizes.len());
        assert!(sizes.len() >= 3, "{file}: the answer is counted (sizes {sizes:?})");
    }
}
