//! A timer tick of the tracker with 100 and with 100,000 legs held and nothing due: the cost
//! must not grow with the legs held (budget in docs/ARCHITECTURE.md: ≤ 50 µs at 100k legs).

use std::{
    hint::black_box,
    time::{Instant, SystemTime},
};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use observer_wire::legs::{Event, ObservedAt, Peer, Tracker, TrackerConfig};

fn held(legs: u64) -> (Tracker, Instant) {
    let mut tracker = Tracker::new(TrackerConfig { max_legs: legs as usize, ..TrackerConfig::default() });
    let now = Instant::now();
    let mut out = Vec::new();
    let peer = |addr: &str| Peer { addr: addr.parse().expect("literal"), process: None };
    for leg in 1..=legs {
        let event = Event::Open {
            leg,
            time: SystemTime::UNIX_EPOCH,
            client: peer("10.0.0.1:40000"),
            server: peer("10.0.0.2:443"),
            observed_at: ObservedAt::Both,
        };
        tracker.handle(event, now, &mut out);
    }
    (tracker, now)
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker_tick");
    for legs in [100u64, 100_000] {
        let (mut tracker, now) = held(legs);
        let mut out = Vec::new();
        group.bench_with_input(BenchmarkId::from_parameter(legs), &legs, |b, _| {
            b.iter(|| {
                tracker.tick(black_box(now), &mut out);
                out.clear();
            });
        });
        assert_eq!(tracker.len() as u64, legs, "nothing was due");
    }
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
