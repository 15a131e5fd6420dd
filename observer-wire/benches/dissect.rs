//! Dissect + classify per handshake (budget in docs/ARCHITECTURE.md), over the legs of the real
//! fixtures. `final`: one call with both directions whole (what a replay of a closed leg costs
//! at least); `incremental`: one call per captured segment until the answer, on one
//! `Classifier` made for the leg, as the tracker does live, which is the real per-handshake cost.
//! JA4's hashed parts are remembered per ClientHello shape, so from the second iteration on both
//! measure a shape already seen (what a node mostly sees); `incremental_cold` forgets the shapes
//! before each iteration: the cost of a shape seen for the first time.

use std::{hint::black_box, path::Path};

use criterion::{Criterion, criterion_group, criterion_main};
use observer_wire::{
    classify::{Classifier, Input, Progress, StreamEnd, classify},
    dissect::tls::ja4,
    legs::{Direction, Reassembly},
    pcap::{LegPieces, leg_pieces},
};

fn legs(file: &str) -> Vec<LegPieces> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file);
    leg_pieces(&path).expect("fixture reads")
}

fn whole(leg: &LegPieces) -> (Vec<u8>, Vec<u8>) {
    let (mut client, mut server) = (Reassembly::default(), Reassembly::default());
    for p in &leg.pieces {
        match p.direction {
            Direction::ClientToServer => client.insert(p.offset, &p.bytes),
            Direction::ServerToClient => server.insert(p.offset, &p.bytes),
        }
    }
    (client.bytes().to_vec(), server.bytes().to_vec())
}

fn input<'a>(client: &'a [u8], server: &'a [u8], end: StreamEnd) -> Input<'a> {
    Input { client, server, client_end: end, server_end: end, client_gap: false, server_gap: false }
}

/// Prefix lengths (client, server) after each captured piece until the classifier decides.
fn steps(leg: &LegPieces) -> Vec<(usize, usize)> {
    let (client, server) = whole(leg);
    let (mut c, mut s) = (Reassembly::default(), Reassembly::default());
    let mut steps = Vec::new();
    for p in &leg.pieces {
        match p.direction {
            Direction::ClientToServer => c.insert(p.offset, &p.bytes),
            Direction::ServerToClient => s.insert(p.offset, &p.bytes),
        }
        steps.push((c.bytes().len(), s.bytes().len()));
        let (cl, sl) = (c.bytes().len(), s.bytes().len());
        if let Progress::Done(_) = classify(&input(&client[..cl], &server[..sl], StreamEnd::Open)) {
            break;
        }
    }
    steps
}

const CASES: &[(&str, &str)] = &[
    ("tls13_mtls", "tls13-ecdsa-mtls.pcap"),
    ("tls13_no_client_cert", "tls13-rsa-no-client-cert.pcap"),
    ("tls13_istio_alpn_haproxy", "haproxy-istio-mtls.pcap"),
    ("tls12_mtls_x509", "tls12-rsa-mtls.pcap"),
    ("tls12_no_client_cert", "tls12-ecdsa-no-client-cert.pcap"),
    ("postgres_starttls", "postgres-ssl.pcap"),
    ("http1", "python-http1.pcap"),
];

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dissect_classify");
    for (name, file) in CASES {
        // The last leg of the file (HAProxy's file: the mTLS leg after the plaintext one).
        let leg = legs(file).pop().expect("a leg");
        let (client, server) = whole(&leg);
        group.bench_function(format!("{name}/final"), |b| {
            b.iter(|| classify(black_box(&input(&client, &server, StreamEnd::Closed))))
        });
        let steps = steps(&leg);
        let handshake = || {
            let mut classifier = Classifier::default();
            for &(cl, sl) in &steps {
                black_box(classifier.classify(black_box(&input(&client[..cl], &server[..sl], StreamEnd::Open))));
            }
        };
        group.bench_function(format!("{name}/incremental"), |b| b.iter(handshake));
        // Forgetting bumps a counter (a few ns, timed with the handshake): no slot is touched,
        // so the caches of the CPU stay as warm as a live node's.
        group.bench_function(format!("{name}/incremental_cold"), |b| {
            b.iter(|| {
                ja4::forget_shapes();
                handshake()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
