//! The pipeline on real captures: the same records as the tracker and the verdict step run by
//! hand, the source told about every reported leg, and the policy in force at delivery applied.

use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use observer_mesh::{Mesh, load_str, verdict};
use observer_pipeline::{ConnectionRecord, Pipeline};
use observer_wire::{
    classify::UnknownReason,
    legs::{Direction, Event, LegId, ObservedAt, Peer, SourceControl, TrackerConfig},
    pcap::{CaptureSource, Replay},
};

const STRICT: &str = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: shop
  labels: {app: server, security.istio.io/tlsMode: istio}
  annotations: {sidecar.istio.io/status: '{\"containers\":[\"istio-proxy\"]}'}
spec:
  serviceAccountName: server
  containers:
  - name: app
  - name: istio-proxy
status: {podIP: 10.1.0.2, phase: Running}
";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../observer-wire/tests/fixtures").join(name)
}

fn strict() -> Mesh {
    load_str(Path::new("strict.yaml"), STRICT).expect("policy loads")
}

fn through_pipeline(files: &[&str], mesh: &Mesh) -> Vec<ConnectionRecord> {
    let mut records = Vec::new();
    let mut sink = |r: &ConnectionRecord| records.push(r.clone());
    let mut pipeline = Pipeline::new(TrackerConfig::default(), "node-1".to_owned());
    let mut source = CaptureSource::new(TrackerConfig::default().max_legs);
    for file in files {
        source.file(&fixture(file), &mut pipeline.bind(mesh, &mut sink)).expect("fixture replays");
    }
    pipeline.finish(UnknownReason::CaptureEnded);
    pipeline.deliver(mesh, &mut (), &mut sink);
    assert_eq!(pipeline.records() as usize, records.len());
    records
}

#[test]
fn the_pipeline_gives_the_records_of_the_tracker_and_the_verdict_run_by_hand() {
    let mesh = strict();
    let files = ["curl-nginx-tls13-h2.pcap", "python-http1.pcap", "tls13-ecdsa-mtls.pcap", "postgres-ssl.pcap"];
    let piped = through_pipeline(&files, &mesh);
    let mut by_hand = Vec::new();
    let mut replay = Replay::new(TrackerConfig::default());
    let mut keep = |leg| by_hand.push(ConnectionRecord::new(&leg, &verdict::assess(&leg, &mesh), "node-1"));
    for file in files {
        replay.file(&fixture(file), &mut keep).expect("fixture replays");
    }
    replay.finish(&mut keep);
    assert!(piped.len() >= files.len(), "every capture holds a leg: {}", piped.len());
    assert_eq!(piped, by_hand);
    assert!(piped.iter().any(|r| r.security == observer_wire::classify::Security::Plaintext));
    assert!(piped.iter().any(|r| r.security == observer_wire::classify::Security::Mtls));
}

/// A live-like source that records what the pipeline tells it.
#[derive(Default)]
struct Told {
    stopped: Vec<LegId>,
    reported: Vec<LegId>,
}

impl SourceControl for Told {
    fn stop_sampling(&mut self, leg: LegId) {
        self.stopped.push(leg);
    }

    fn reported(&mut self, leg: LegId) {
        self.reported.push(leg);
    }
}

#[test]
fn the_source_is_told_what_to_stop_and_what_left_and_the_policy_of_the_moment_applies() {
    let now = Instant::now();
    let peer = |a: &str| Peer { addr: a.parse().expect("literal"), process: None };
    let open = |leg| Event::Open {
        leg,
        time: SystemTime::UNIX_EPOCH,
        client: peer("10.1.0.1:40000"),
        server: peer("10.1.0.2:8080"),
        observed_at: ObservedAt::Both,
    };
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut pipeline = Pipeline::new(TrackerConfig::default(), "node-1".to_owned());
    let mut told = Told::default();
    let mut records = Vec::new();

    pipeline.event(open(7), now);
    pipeline.event(Event::Data { leg: 7, direction: Direction::ClientToServer, offset: 0, bytes: request }, now);
    let permissive = Mesh::default();
    pipeline.deliver(&permissive, &mut told, &mut |r: &ConnectionRecord| records.push(r.clone()));
    assert_eq!(told.stopped, [7], "a decided leg's sampling may stop");
    assert_eq!(told.reported, [7], "a leg seen from both ends is reported once decided");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].verdict.status, verdict::Status::Ok);

    // The next leg is delivered after the policy changed to STRICT: it is judged by STRICT.
    pipeline.event(open(8), now);
    pipeline.event(Event::Data { leg: 8, direction: Direction::ClientToServer, offset: 0, bytes: request }, now);
    pipeline.deliver(&strict(), &mut told, &mut |r: &ConnectionRecord| records.push(r.clone()));
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].verdict.status, verdict::Status::Deviation);
    assert_eq!(records[1].conn_id, "c:8");

    // What is still open at the end is reported with the reason the source ended.
    pipeline.event(open(9), now);
    pipeline.finish(UnknownReason::ObserverStopped);
    pipeline.deliver(&permissive, &mut told, &mut |r: &ConnectionRecord| records.push(r.clone()));
    assert_eq!(records.len(), 3);
    assert_eq!(records[2].reason, Some(UnknownReason::ObserverStopped));
    assert_eq!(told.reported, [7, 8, 9]);
    assert!(pipeline.is_empty());
}
