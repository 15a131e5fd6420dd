//! Recording a leg into the metrics allocates nothing once its attribute set has been seen:
//! a counting global allocator watches 10,000 records of a warm mix.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use observer::export::{
    ConnectionRecord,
    metrics::LegMetrics,
    telemetry::{OtlpProtocol, Telemetry, TelemetryConfig},
};
use observer_mesh::{
    inventory::Owner,
    verdict::{DeviationKind, Status},
};
use observer_wire::{
    classify::{Classification, Protocol, Security},
    legs::{LegRecord, ObservedAt, Peer},
};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn record(i: u16) -> ConnectionRecord {
    let addr = format!("10.0.0.{}:{}", i % 4, 8000 + i % 8).parse().expect("address");
    let leg = LegRecord {
        leg: u64::from(i),
        time: std::time::SystemTime::UNIX_EPOCH,
        client: Peer { addr, process: None },
        server: Peer { addr, process: None },
        observed_at: ObservedAt::Both,
        classification: Classification {
            security: Security::Plaintext,
            protocol: Protocol::Http1,
            reason: None,
            tls: None,
        },
    };
    let mut r = ConnectionRecord::unassessed(&leg, "node");
    let owner = Arc::new(Owner { namespace: "prod".into(), kind: "Deployment".into(), name: format!("w{}", i % 4) });
    r.server.owner = Some(owner);
    if i.is_multiple_of(2) {
        r.verdict.status = Status::Deviation;
        r.verdict.kind = Some(DeviationKind::UnexpectedPlaintext);
        r.verdict.policy = Some("PeerAuthentication/prod/strict".into());
    }
    r
}

#[test]
fn a_warm_leg_is_recorded_without_allocating() {
    let telemetry = Telemetry::new(&TelemetryConfig {
        prometheus: true,
        otlp_endpoint: None,
        otlp_protocol: OtlpProtocol::Grpc,
        export_interval: None,
        cardinality_limit: 2000,
        node: "node".to_owned(),
    })
    .expect("telemetry");
    let mut metrics = LegMetrics::new(&telemetry.meter(), 2000);
    let records: Vec<ConnectionRecord> = (0..32).map(record).collect();
    // Twice: the first pass binds, the second meets any lazily initialised state.
    for r in records.iter().chain(&records) {
        metrics.record(r);
    }
    COUNTING.store(true, Ordering::Relaxed);
    for i in 0..10_000 {
        metrics.record(&records[i % records.len()]);
    }
    COUNTING.store(false, Ordering::Relaxed);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let text = telemetry.scrape();
    assert_eq!(allocations, 0, "allocations while recording warm legs");
    assert!(text.contains("observer_policy_deviations_total{"), "{text}");
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("observer_connections_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 10_064.0, "every leg counted");
}
