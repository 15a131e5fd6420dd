//! What the deploy tests share: the deploy folder, and the metrics and labels the observer
//! exports (from a real exposition of the SDK, every instrument holding a value).

#![allow(dead_code, reason = "each test file uses a part of it")]

use std::{collections::BTreeSet, path::PathBuf};

use observer::export::{
    ConnectionRecord, health,
    metrics::{LegMetrics, ProgramRun, Snapshot},
    telemetry::{OtlpProtocol, Telemetry, TelemetryConfig},
};
use observer_mesh::{
    inventory::Owner,
    verdict::{DeviationKind, Status},
};
use observer_wire::{
    classify::{Classification, ClientCert, Protocol, Security, TlsDetails},
    legs::{LegRecord, ObservedAt, Peer},
};

/// The repository's deploy/ folder.
pub fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The Prometheus exposition with every instrument holding a value.
pub fn exposition() -> String {
    let telemetry = Telemetry::new(&TelemetryConfig {
        prometheus: true,
        otlp_endpoint: None,
        otlp_protocol: OtlpProtocol::Grpc,
        export_interval: None,
        cardinality_limit: 100,
        node: "n".to_owned(),
    })
    .expect("telemetry");
    let meter = telemetry.meter();
    let snapshot = health::SharedSnapshot::default();
    *snapshot.lock().expect("snapshot") = Snapshot {
        lost: vec![("sample_reserve".to_owned(), 1)],
        programs: vec![ProgramRun { program: "observer_skb_egress".to_owned(), run_time_ns: 1, run_count: 1 }],
        watch_errors: vec![("pods", 1)],
        alert_failures: vec![("unreachable", 1)],
        ..Snapshot::default()
    };
    health::register(&meter, &snapshot, Default::default());
    let mut metrics = LegMetrics::new(&meter, 100);
    let addr = "10.0.0.1:80".parse().expect("address");
    let leg = LegRecord {
        leg: 1,
        time: std::time::SystemTime::UNIX_EPOCH,
        client: Peer { addr, process: None },
        server: Peer { addr, process: None },
        observed_at: ObservedAt::Wire,
        classification: Classification {
            security: Security::Plaintext,
            protocol: Protocol::Http1,
            reason: Some(observer_wire::classify::UnknownReason::Truncated),
            tls: None,
        },
    };
    let mut record = ConnectionRecord::unassessed(&leg, "n");
    record.verdict.status = Status::Deviation;
    record.verdict.kind = Some(DeviationKind::UnexpectedPlaintext);
    record.verdict.policy = Some("PeerAuthentication/prod/strict".into());
    let owner = |name: &str| {
        Some(std::sync::Arc::new(Owner { namespace: "prod".into(), kind: "Deployment".into(), name: name.into() }))
    };
    record.client.owner = owner("legacy");
    record.server.owner = owner("api");
    metrics.record(&record);
    // A mutual TLS leg: the TLS attributes (version, client certificate).
    let tls =
        TlsDetails { version: Some("1.3".into()), client_cert: Some(ClientCert::Presented), ..TlsDetails::default() };
    let leg = LegRecord {
        classification: Classification {
            security: Security::Mtls,
            protocol: Protocol::Http2,
            reason: None,
            tls: Some(Box::new(tls)),
        },
        ..leg
    };
    let mut record = ConnectionRecord::unassessed(&leg, "n");
    record.client.owner = owner("web");
    record.server.owner = owner("api");
    metrics.record(&record);
    let text = telemetry.scrape();
    telemetry.shutdown();
    text
}

/// The metric names the exposition declares, and the label names of its series with the ones
/// Prometheus adds.
pub fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let text = exposition();
    let metrics: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    let mut labels: BTreeSet<String> = ["instance", "job"].map(str::to_owned).into();
    for series in text.lines().filter(|l| !l.starts_with('#')) {
        let inside = series.split_once('{').and_then(|(_, rest)| rest.rsplit_once('}')).map_or("", |(l, _)| l);
        labels.extend(
            inside.split("\",").filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.trim_matches(',').to_owned()),
        );
    }
    (metrics, labels)
}
