//! What the edge table costs the run loop per record: a record of an edge already held (the
//! common case) and a record of a new edge into a full table (an eviction), at 10k edges.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use observer::edges::{EdgeTable, Observation, observation::EndView};

const EDGES: usize = 10_000;

fn observation<'a>(client_ip: &'a str) -> Observation<'a> {
    Observation {
        time: "2026-11-26T14:00:00.123Z",
        node: "node-1",
        conn_id: "c:1f",
        client: EndView { ip: client_ip, port: 40_000, workload: None, process: Some("curl") },
        server: EndView { ip: "10.1.0.1", port: 8080, workload: Some("prod/api-7d9f"), process: None },
        leg: "external_inbound",
        security: "plaintext",
        client_cert: None,
        status: "ok",
        kind: Some("would_break_under_strict"),
        expected: Some("any"),
        policy: Some("PeerAuthentication/prod/api"),
    }
}

fn bench(c: &mut Criterion) {
    let ips: Vec<String> =
        (0..EDGES as u32 * 2).map(|i| std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()).collect();
    let mut table = EdgeTable::new(EDGES);
    for ip in &ips[..EDGES] {
        table.observe(&observation(ip));
    }
    let mut i = 0;
    c.bench_function("edges/record_held_edge_10k", |b| {
        b.iter(|| {
            i = (i + 1) % EDGES;
            table.observe(black_box(&observation(&ips[i])));
        })
    });
    let mut j = 0;
    c.bench_function("edges/record_new_edge_evicting_10k", |b| {
        b.iter(|| {
            j = (j + 1) % ips.len();
            table.observe(black_box(&observation(&ips[j])));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
