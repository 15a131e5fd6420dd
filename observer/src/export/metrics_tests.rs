//! The per-leg counters through the real SDK and the Prometheus reader.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use super::*;
use observer_wire::{
    classify::{Classification, Protocol, Security},
    legs::{LegRecord, ObservedAt, Peer},
};

use crate::export::telemetry::{OtlpProtocol, Telemetry, TelemetryConfig};

fn telemetry(limit: usize) -> Telemetry {
    Telemetry::new(&TelemetryConfig {
        prometheus: true,
        otlp_endpoint: None,
        otlp_protocol: OtlpProtocol::Grpc,
        export_interval: None,
        cardinality_limit: limit,
        node: "n".to_owned(),
    })
    .expect("telemetry")
}

pub(crate) fn record(server_port: u16) -> ConnectionRecord {
    let client: SocketAddr = "10.0.0.1:40000".parse().expect("address");
    let server: SocketAddr = format!("10.0.0.2:{server_port}").parse().expect("address");
    let leg = LegRecord {
        leg: 1,
        time: SystemTime::UNIX_EPOCH,
        client: Peer { addr: client, process: None },
        server: Peer { addr: server, process: None },
        observed_at: ObservedAt::Wire,
        classification: Classification {
            security: Security::Plaintext,
            protocol: Protocol::Http1,
            reason: None,
            tls: None,
        },
    };
    let mut r = ConnectionRecord::unassessed(&leg, "n");
    r.server.workload = Some("prod/api-7d4b9c8f5d-x2x9z".to_owned());
    r.server.owner = Some(Arc::new(Owner { namespace: "prod".into(), kind: "Deployment".into(), name: "api".into() }));
    r
}

#[test]
fn legs_are_counted_by_bounded_attributes() {
    let telemetry = telemetry(100);
    let mut metrics = LegMetrics::new(&telemetry.meter(), 100);
    metrics.record(&record(8080));
    metrics.record(&record(8080));
    let mut unknown = record(8080);
    unknown.reason = Some(UnknownReason::Truncated);
    metrics.record(&unknown);
    let text = telemetry.scrape();
    let line = text.lines().find(|l| l.starts_with("observer_connections_total{")).expect(&text);
    for label in [
        "k8s_dst_owner_name=\"api\"",
        "k8s_dst_owner_type=\"Deployment\"",
        "k8s_dst_namespace=\"prod\"",
        "observer_connection_security=\"plaintext\"",
        "network_protocol_name=\"http\"",
        "network_protocol_version=\"1.1\"",
        "network_type=\"ipv4\"",
        "server_port=\"8080\"",
        "observer_verdict=\"unevaluated\"",
        "observer_observed_at=\"wire\"",
    ] {
        assert!(line.contains(label), "{label} in {line}");
    }
    assert!(line.ends_with(" 3"), "{line}");
    assert!(text.contains("observer_dissect_errors_total{error_type=\"truncated\"} 1"), "{text}");
    assert!(!text.contains("x2x9z") && !text.contains("10.0.0.1") && !text.contains("40000"), "{text}");
}

#[test]
fn the_policy_that_judged_a_leg_and_its_requirement_are_labels() {
    let telemetry = telemetry(100);
    let mut metrics = LegMetrics::new(&telemetry.meter(), 100);
    let mut judged = record(8080);
    judged.observed_at = ObservedAt::Server;
    judged.leg = LegKind::Direct;
    judged.verdict.status = Status::Ok;
    judged.verdict.expected = Some(RequiredSecurity::Any);
    judged.verdict.kind = Some(DeviationKind::WouldBreakUnderStrict);
    judged.verdict.policy = Some("PeerAuthentication/prod/api".into());
    metrics.record(&judged);
    let text = telemetry.scrape();
    let line = text.lines().find(|l| l.starts_with("observer_connections_total{")).expect(&text);
    for label in [
        "observer_observed_at=\"server\"",
        "observer_verdict_expected=\"any\"",
        "observer_policy=\"PeerAuthentication/prod/api\"",
    ] {
        assert!(line.contains(label), "{label} in {line}");
    }
    let line = text.lines().find(|l| l.starts_with("observer_policy_deviations_total{")).expect(&text);
    assert!(line.contains("observer_observed_at=\"server\"") && line.ends_with(" 1"), "{line}");
    assert!(line.contains("observer_leg=\"direct\""), "{line}");
}

#[test]
fn attribute_sets_past_the_limit_overflow_and_are_counted() {
    let telemetry = telemetry(3);
    let mut metrics = LegMetrics::new(&telemetry.meter(), 3);
    for port in [1, 2, 3, 4, 5, 1] {
        metrics.record(&record(port));
    }
    let text = telemetry.scrape();
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("observer_connections_total{")).collect();
    assert_eq!(series.len(), 3, "two bound sets and the overflow: {series:?}");
    assert!(series.iter().any(|l| l.contains("otel_metric_overflow=\"true\"") && l.ends_with(" 3")), "{series:?}");
    assert!(series.iter().any(|l| l.contains("server_port=\"1\"") && l.ends_with(" 2")), "{series:?}");
    assert!(text.contains("observer_metrics_overflow_total{observer_metric=\"observer.connections\"} 3"), "{text}");
}
