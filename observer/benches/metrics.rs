//! Recording a finished leg into the metrics (budget: <= 300 ns, no allocation in steady state),
//! through the real SDK with the Prometheus reader attached: a mix of 64 attribute sets (ports,
//! workloads, TLS and plaintext, one in four a deviation), each already seen once.

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
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
    classify::{Classification, ClientCert, Protocol, Security},
    legs::{LegRecord, ObservedAt, Peer},
};

fn records() -> Vec<ConnectionRecord> {
    (0..64u16)
        .map(|i| {
            let client = format!("10.0.{}.1:{}", i % 8, 40000 + i).parse().expect("address");
            let server = format!("10.1.0.{}:{}", i % 8, 8000 + i % 16).parse().expect("address");
            let tls = i.is_multiple_of(2);
            let leg = LegRecord {
                leg: u64::from(i),
                time: std::time::SystemTime::UNIX_EPOCH,
                client: Peer { addr: client, process: None },
                server: Peer { addr: server, process: None },
                observed_at: ObservedAt::Both,
                classification: Classification {
                    security: if tls { Security::Mtls } else { Security::Plaintext },
                    protocol: if tls { Protocol::Tls } else { Protocol::Http1 },
                    reason: None,
                    tls: None,
                },
            };
            let mut r = ConnectionRecord::unassessed(&leg, "node");
            if tls {
                r.tls = Some(Box::new(observer_wire::classify::TlsDetails {
                    version: Some("1.3".into()),
                    client_cert: Some(ClientCert::Presented),
                    ..Default::default()
                }));
            }
            let owner = |kind: &str, name: String| {
                Some(Arc::new(Owner { namespace: "prod".to_owned(), kind: kind.to_owned(), name }))
            };
            r.client.owner = owner("Deployment", format!("client-{}", i % 8));
            r.server.owner = owner("StatefulSet", format!("server-{}", i % 8));
            if i % 4 == 1 {
                r.verdict.status = Status::Deviation;
                r.verdict.kind = Some(DeviationKind::UnexpectedPlaintext);
                r.verdict.policy = Some("PeerAuthentication/prod/strict".into());
            } else {
                r.verdict.status = Status::Ok;
            }
            r
        })
        .collect()
}

fn record_leg(c: &mut Criterion) {
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
    let records = records();
    for r in &records {
        metrics.record(r);
    }
    let mut i = 0;
    c.bench_function("metrics/record_finished_leg", |b| {
        b.iter(|| {
            metrics.record(black_box(&records[i % records.len()]));
            i += 1;
        })
    });
    black_box(telemetry.scrape());
}

criterion_group!(benches, record_leg);
criterion_main!(benches);
