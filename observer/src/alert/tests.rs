//! Alert state: one alert per key, re-sent while firing, resolved after the quiet period,
//! and a full queue that drops (counted) instead of waiting.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use super::*;
use observer_mesh::{
    inventory::Owner,
    verdict::{DeviationKind, Verdict},
};
use observer_wire::{
    classify::{Classification, Protocol, Security},
    legs::{LegRecord, ObservedAt, Peer},
};

fn deviation(client_port: u16) -> ConnectionRecord {
    let client: SocketAddr = format!("10.0.0.1:{client_port}").parse().expect("address");
    let server: SocketAddr = "10.0.0.2:8080".parse().expect("address");
    let leg = LegRecord {
        leg: u64::from(client_port),
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
    let mut r = ConnectionRecord::unassessed(&leg, "node-1");
    let owner =
        |name: &str| Some(Arc::new(Owner { namespace: "prod".into(), kind: "Deployment".into(), name: name.into() }));
    r.client.owner = owner("legacy");
    r.server.owner = owner("api");
    r.verdict = Verdict {
        status: Status::Deviation,
        expected: Some(observer_mesh::verdict::RequiredSecurity::Mtls),
        kind: Some(DeviationKind::UnexpectedPlaintext),
        policy: Some("PeerAuthentication/prod/strict".into()),
        reason: Some("STRICT".into()),
    };
    r
}

#[test]
fn one_alert_per_key_resent_while_firing_and_resolved_when_quiet() {
    let (sender, rx) = Sender::to_channel(16);
    let resolve = Duration::from_secs(3);
    let mut alerts = Alerts::new(sender, resolve);
    let t0 = Instant::now();
    for port in 40000..40010 {
        alerts.on_record(&deviation(port), t0);
    }
    let first = rx.try_recv().expect("fired");
    assert!(rx.try_recv().is_err(), "ten connections of one key are one alert");
    assert_eq!(alerts.len(), 1);
    let labels = &first[0]["labels"];
    assert_eq!(labels["alertname"], "ObserverDeviation");
    assert_eq!(labels["kind"], "unexpected_plaintext");
    assert_eq!(labels["client_workload"], "legacy");
    assert_eq!(labels["server_workload"], "api");
    assert_eq!(labels["server_port"], "8080");
    assert_eq!(labels["severity"], "critical");
    assert!(first[0]["annotations"]["example_connection"].as_str().is_some_and(|s| s.contains("10.0.0.1:40000")));

    alerts.tick(t0 + resend_interval(resolve) / 2);
    assert!(rx.try_recv().is_err(), "not re-sent before its interval");
    alerts.on_record(&deviation(41000), t0 + Duration::from_secs(2));
    alerts.tick(t0 + Duration::from_millis(2100));
    let resent = rx.try_recv().expect("re-sent while firing");
    assert_eq!(resent[0]["labels"], first[0]["labels"]);
    assert_eq!(resent[0]["startsAt"], first[0]["startsAt"]);

    alerts.tick(t0 + Duration::from_secs(5));
    let resolved = rx.try_recv().expect("resolved after 3 s quiet");
    assert_eq!(resolved[0]["labels"], first[0]["labels"]);
    assert!(resolved[0]["endsAt"].as_str() <= Some(crate::export::rfc3339_millis(SystemTime::now()).as_str()));
    assert!(alerts.is_empty());
}

#[test]
fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let (sender, _rx) = Sender::to_channel(1);
    let mut alerts = Alerts::new(sender, Duration::from_secs(60));
    let now = Instant::now();
    for port in [1, 2, 3] {
        let mut r = deviation(40000);
        r.server.port = port;
        alerts.on_record(&r, now);
    }
    let failures = alerts.stats().failures();
    assert_eq!(failures.iter().find(|(name, _)| *name == "queue_full"), Some(&("queue_full", 2)));
}

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert!(parse_duration("0s").is_err());
    assert!(parse_duration("5 parsecs").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("99999999999999999999999h").is_err());
}
