//! Leg identification and verdicts, one test per rule and per deviation kind, on the mesh
//! fixture (`policy/testdata/mesh.yaml`).

use std::{net::SocketAddr, time::SystemTime};

use super::*;
use crate::{
    classify::{Classification, ClientCert, Protocol, Security, TlsDetails, UnknownReason},
    flows::{LegRecord, ObservedAt, Peer, Process},
    policy::{Snapshot, tests_support::fixture},
};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn peer(text: &str, process: Option<(u32, &str)>) -> Peer {
    Peer {
        addr: addr(text),
        process: process.map(|(uid, comm)| Process { pid: 1, uid, comm: comm.to_owned(), cgroup_id: 0 }),
    }
}

fn plaintext() -> Classification {
    Classification { security: Security::Plaintext, protocol: Protocol::Http1, reason: None, tls: None }
}

fn tls(version: &str, cert: ClientCert, sni: Option<&str>) -> Classification {
    let security = if cert == ClientCert::Presented { Security::Mtls } else { Security::Tls };
    Classification {
        security,
        protocol: Protocol::Tls,
        reason: None,
        tls: Some(TlsDetails {
            version: Some(version.to_owned()),
            sni: sni.map(str::to_owned),
            client_cert: Some(cert),
            ..TlsDetails::default()
        }),
    }
}

fn mtls() -> Classification {
    tls("1.3", ClientCert::Presented, Some("outbound_.8080_._.b.default.svc.cluster.local"))
}

fn record(client: Peer, server: Peer, classification: Classification) -> LegRecord {
    LegRecord { leg: 1, time: SystemTime::UNIX_EPOCH, client, server, observed_at: ObservedAt::Both, classification }
}

const APP: Option<(u32, &str)> = Some((1000, "curl"));
const PROXY: Option<(u32, &str)> = Some((1337, "envoy"));

fn assessed(s: &Snapshot, client: Peer, server: Peer, c: Classification) -> (Leg, Status, Option<DeviationKind>, Option<String>, Option<Expected>) {
    let a = assess(&record(client, server, c), s);
    (a.leg, a.verdict.status, a.verdict.kind, a.verdict.policy, a.verdict.expected)
}

#[test]
fn legs_are_identified_per_design() {
    let s = fixture("mesh.yaml");
    let cases: [(Peer, Peer, Leg); 13] = [
        (peer("10.88.0.10:40000", None), peer("10.88.0.20:15008", None), Leg::Hbone),
        (peer("127.0.0.6:40000", PROXY), peer("127.0.0.1:8080", APP), Leg::LocalInbound),
        (peer("[::6]:40000", PROXY), peer("[::1]:8080", APP), Leg::LocalInbound),
        (peer("10.88.0.10:40000", None), peer("127.0.0.1:15001", PROXY), Leg::LocalOutbound),
        // The app's socket sees the original destination; the sidecar is in its own pod.
        (peer("10.88.0.10:40000", APP), peer("10.88.0.20:8080", None), Leg::LocalOutbound),
        (peer("10.88.0.10:40001", PROXY), peer("10.88.0.20:8080", None), Leg::ExternalOutbound),
        (peer("10.88.0.10:40001", Some((0, "envoy"))), peer("93.184.216.34:443", None), Leg::ExternalOutbound),
        (peer("10.88.0.30:40002", APP), peer("10.88.0.20:8080", None), Leg::ExternalInbound),
        (peer("10.88.0.30:40002", None), peer("10.88.0.20:15006", PROXY), Leg::ExternalInbound),
        (peer("203.0.113.9:5000", None), peer("10.88.0.50:8443", PROXY), Leg::GatewayDownstream),
        (peer("10.88.0.50:5000", PROXY), peer("10.88.0.20:8080", None), Leg::GatewayUpstream),
        (peer("10.88.0.30:40003", APP), peer("93.184.216.34:443", None), Leg::Direct),
        (peer("198.51.100.1:1", None), peer("198.51.100.2:2", None), Leg::Unknown),
    ];
    for (client, server, want) in cases {
        let label = format!("{} -> {}", client.addr, server.addr);
        let facts = LegFacts::gather(&record(client, server, plaintext()), &s);
        assert_eq!(identify_leg(&facts), want, "{label}");
    }
}

#[test]
fn healthy_mesh_path_has_no_deviation() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.10:40001", PROXY), peer("10.88.0.20:8080", None), mtls());
    assert_eq!(out, (Leg::ExternalOutbound, Status::Ok, None, Some("PeerAuthentication/default/b-strict".to_owned()), Some(Expected::Mtls)));
    let local_in = assessed(&s, peer("127.0.0.6:4", PROXY), peer("127.0.0.1:8080", APP), plaintext());
    assert_eq!((local_in.0, local_in.1, local_in.2), (Leg::LocalInbound, Status::Ok, None));
    let local_out = assessed(&s, peer("10.88.0.10:5", APP), peer("10.88.0.20:8080", None), plaintext());
    assert_eq!((local_out.0, local_out.1, local_out.2), (Leg::LocalOutbound, Status::Ok, None));
}

#[test]
fn plaintext_to_strict_workload_is_unexpected_plaintext_naming_the_policy() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:40002", APP), peer("10.88.0.20:8080", None), plaintext());
    assert_eq!(
        out,
        (Leg::ExternalInbound, Status::Deviation, Some(DeviationKind::UnexpectedPlaintext), Some("PeerAuthentication/default/b-strict".to_owned()), Some(Expected::Mtls))
    );
}

#[test]
fn plaintext_to_permissive_workload_would_break_under_strict_and_is_ok() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:40002", APP), peer("10.88.0.40:8080", None), plaintext());
    assert_eq!(out, (Leg::ExternalInbound, Status::Ok, Some(DeviationKind::WouldBreakUnderStrict), Some("default".to_owned()), Some(Expected::Any)));
    // mTLS clients of the same workload are simply ok.
    let ok = assessed(&s, peer("10.88.0.10:40001", PROXY), peer("10.88.0.40:8080", None), mtls());
    assert_eq!((ok.1, ok.2), (Status::Ok, None));
}

#[test]
fn tls_without_client_certificate_to_strict_workload_is_missing_client_cert() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.20:8080", None), tls("1.3", ClientCert::NotRequested, None));
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::MissingClientCert)));
    // A resumed session carries no certificate: not a deviation.
    let resumed = assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.20:8080", None), tls("1.3", ClientCert::Resumed, None));
    assert_eq!((resumed.1, resumed.2), (Status::Ok, None));
}

#[test]
fn tls_to_disable_workload_is_unexpected_tls() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.60:9000", None), tls("1.3", ClientCert::NotRequested, None));
    assert_eq!(out, (Leg::ExternalInbound, Status::Deviation, Some(DeviationKind::UnexpectedTls), Some("PeerAuthentication/default/d-plaintext".to_owned()), Some(Expected::Plaintext)));
}

#[test]
fn application_tls_through_an_originating_sidecar_is_double_tls() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.10:1", APP), peer("10.96.0.60:8443", None), tls("1.3", ClientCert::NotRequested, Some("secure")));
    assert_eq!((out.0, out.1, out.2, out.3.as_deref()), (Leg::LocalOutbound, Status::Deviation, Some(DeviationKind::DoubleTls), Some("DestinationRule/default/secure-origination")));
    // Plaintext for the sidecar to originate TLS on is the intended use, even to 8443.
    let ok = assessed(&s, peer("10.88.0.10:1", APP), peer("10.96.0.60:8443", None), plaintext());
    assert_eq!((ok.1, ok.2), (Status::Ok, None));
}

#[test]
fn tls_to_an_http_named_service_port_is_tls_on_plaintext_port() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.10:1", APP), peer("10.96.0.20:80", None), tls("1.3", ClientCert::NotRequested, None));
    assert_eq!((out.0, out.1, out.2), (Leg::LocalOutbound, Status::Deviation, Some(DeviationKind::TlsOnPlaintextPort)));
}

#[test]
fn plaintext_to_a_well_known_tls_port_is_a_deviation_by_default() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("93.184.216.34:443", None), plaintext());
    assert_eq!(out, (Leg::Direct, Status::Deviation, Some(DeviationKind::PlaintextOnTlsPort), Some("default".to_owned()), Some(Expected::Tls)));
    let empty = Snapshot::default();
    let out = assessed(&empty, peer("10.0.0.1:1", None), peer("10.0.0.2:6443", None), plaintext());
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::PlaintextOnTlsPort)));
}

#[test]
fn tls_below_1_2_is_weak_by_default() {
    let empty = Snapshot::default();
    let out = assessed(&empty, peer("10.0.0.1:1", None), peer("10.0.0.2:443", None), tls("1.1", ClientCert::NotRequested, None));
    assert_eq!((out.1, out.2, out.3.as_deref()), (Status::Deviation, Some(DeviationKind::WeakTlsVersion), Some("default")));
    let ok = assessed(&empty, peer("10.0.0.1:1", None), peer("10.0.0.2:443", None), tls("1.2", ClientCert::NotRequested, None));
    assert_eq!((ok.1, ok.2), (Status::Ok, None));
}

#[test]
fn gateway_downstream_follows_the_gateway_server_tls_mode() {
    let s = fixture("mesh.yaml");
    let client = || peer("203.0.113.9:5000", None);
    let out = assessed(&s, client(), peer("10.88.0.50:8443", PROXY), tls("1.3", ClientCert::NotRequested, Some("shop.example.com")));
    assert_eq!(out, (Leg::GatewayDownstream, Status::Ok, None, Some("Gateway/istio-system/public".to_owned()), Some(Expected::Tls)));
    let out = assessed(&s, client(), peer("10.88.0.50:8443", PROXY), plaintext());
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext)));
    let out = assessed(&s, client(), peer("10.88.0.50:8080", PROXY), plaintext());
    assert_eq!((out.1, out.4), (Status::Ok, Some(Expected::Plaintext)));
}

#[test]
fn expectation_rules_apply_where_istio_says_nothing() {
    let s = fixture("mesh.yaml");
    let db = || peer("10.88.1.10:5432", None);
    let policy = Some("Expectation/payments/db-tls".to_owned());
    let out = assessed(&s, peer("10.88.0.30:1", APP), db(), plaintext());
    assert_eq!((out.1, out.2, out.3.clone()), (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext), policy.clone()));
    // The rule asks for TLS 1.3.
    let out = assessed(&s, peer("10.88.0.30:1", APP), db(), tls("1.2", ClientCert::NotRequested, None));
    assert_eq!((out.1, out.2, out.3.clone()), (Status::Deviation, Some(DeviationKind::WeakTlsVersion), policy.clone()));
    let out = assessed(&s, peer("10.88.0.30:1", APP), db(), tls("1.3", ClientCert::NotRequested, None));
    assert_eq!((out.1, out.2, out.3.clone()), (Status::Ok, None, policy.clone()));
    // allowPlaintext: metrics scraping from monitoring.
    let out = assessed(&s, peer("10.88.2.10:1", None), peer("10.88.1.10:9187", None), plaintext());
    assert_eq!((out.1, out.2, out.3, out.4), (Status::Ok, None, policy, Some(Expected::Plaintext)));
}

#[test]
fn unknown_security_is_unevaluated_with_the_expectation() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.20:8080", None), Classification::unknown(UnknownReason::Truncated));
    assert_eq!((out.1, out.2, out.4), (Status::Unevaluated, None, Some(Expected::Mtls)));
}

#[test]
fn auto_mtls_expects_mtls_only_to_istio_endpoints() {
    let s = fixture("mesh.yaml");
    // Sidecar to a pod without the tlsMode label: sent as-is, plaintext is fine.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.30:8080", None), plaintext());
    assert_eq!((out.0, out.1, out.2, out.4), (Leg::ExternalOutbound, Status::Ok, None, Some(Expected::Any)));
    // To pod-c (tlsMode=istio, PERMISSIVE): auto mTLS means mTLS, plaintext is a deviation.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.40:8080", None), plaintext());
    assert_eq!((out.1, out.2, out.4), (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext), Some(Expected::Mtls)));
    // pod-d's workload DISABLE is ignored by auto mTLS: the client still sends mTLS.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.60:9000", None), mtls());
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::UnexpectedTls)), "the server accepts plaintext only");
}

#[test]
fn istio_sni_names_host_port_and_subset() {
    assert_eq!(parse_istio_sni("outbound_.9080_.v2_.reviews.prod.svc.cluster.local"), Some((9080, Some("v2".to_owned()), "reviews.prod.svc.cluster.local".to_owned())));
    assert_eq!(parse_istio_sni("outbound_.80_._.b.default.svc.cluster.local"), Some((80, None, "b.default.svc.cluster.local".to_owned())));
    assert_eq!(parse_istio_sni("example.com"), None);
}

#[test]
fn enrich_fills_workloads_identities_leg_and_verdict() {
    let s = fixture("mesh.yaml");
    let leg = record(peer("10.88.0.30:40002", APP), peer("10.88.0.20:8080", None), plaintext());
    let mut rec = crate::export::ConnectionRecord::from_leg(&leg, "node-1");
    enrich(&mut rec, &leg, &s);
    let json = serde_json::to_value(&rec).unwrap_or_default();
    assert_eq!(json["client"]["workload"], "default/legacy");
    assert_eq!(json["client"]["identity"], serde_json::Value::Null);
    assert_eq!(json["server"]["workload"], "default/pod-b");
    assert_eq!(json["server"]["identity"], "spiffe://cluster.local/ns/default/sa/b");
    assert_eq!(json["leg"], "external_inbound");
    assert_eq!(json["verdict"]["status"], "deviation");
    assert_eq!(json["verdict"]["kind"], "unexpected_plaintext");
    assert_eq!(json["verdict"]["expected"], "mtls");
    assert_eq!(json["verdict"]["policy"], "PeerAuthentication/default/b-strict");
}
