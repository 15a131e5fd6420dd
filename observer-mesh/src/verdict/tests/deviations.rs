//! One test per deviation kind, plus the PERMISSIVE, Expectation, unknown-security and
//! auto mTLS behaviours and the identities of both ends.

use observer_wire::classify::{Classification, ClientCert, UnknownReason};

use super::{super::*, *};
use crate::policy::tests::fixture;

#[test]
fn plaintext_to_strict_workload_is_unexpected_plaintext_naming_the_policy() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:40002", APP), peer("10.88.0.20:8080", None), plaintext());
    assert_eq!(
        out,
        (
            LegKind::ExternalInbound,
            Status::Deviation,
            Some(DeviationKind::UnexpectedPlaintext),
            Some("PeerAuthentication/default/b-strict".to_owned()),
            Some(RequiredSecurity::Mtls)
        )
    );
}

#[test]
fn plaintext_to_permissive_workload_would_break_under_strict_and_is_ok() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:40002", APP), peer("10.88.0.40:8080", None), plaintext());
    assert_eq!(
        out,
        (
            LegKind::ExternalInbound,
            Status::Ok,
            Some(DeviationKind::WouldBreakUnderStrict),
            Some("default".to_owned()),
            Some(RequiredSecurity::Any)
        )
    );
    // mTLS clients of the same workload are simply ok.
    let ok = assessed(&s, peer("10.88.0.10:40001", PROXY), peer("10.88.0.40:8080", None), mtls());
    assert_eq!((ok.1, ok.2), (Status::Ok, None));
}

#[test]
fn tls_without_client_certificate_to_strict_workload_is_missing_client_cert() {
    let s = fixture("mesh.yaml");
    let out = assessed(
        &s,
        peer("10.88.0.30:1", APP),
        peer("10.88.0.20:8080", None),
        tls("1.3", ClientCert::NotRequested, None),
    );
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::MissingClientCert)));
    // A resumed session carries no certificate: not a deviation.
    let resumed =
        assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.20:8080", None), tls("1.3", ClientCert::Resumed, None));
    assert_eq!((resumed.1, resumed.2), (Status::Ok, None));
}

#[test]
fn tls_to_disable_workload_is_unexpected_tls() {
    let s = fixture("mesh.yaml");
    let out = assessed(
        &s,
        peer("10.88.0.30:1", APP),
        peer("10.88.0.60:9000", None),
        tls("1.3", ClientCert::NotRequested, None),
    );
    assert_eq!(
        out,
        (
            LegKind::ExternalInbound,
            Status::Deviation,
            Some(DeviationKind::UnexpectedTls),
            Some("PeerAuthentication/default/d-plaintext".to_owned()),
            Some(RequiredSecurity::Plaintext)
        )
    );
}

#[test]
fn application_tls_through_an_originating_sidecar_is_double_tls() {
    let s = fixture("mesh.yaml");
    let out = assessed(
        &s,
        peer("10.88.0.10:1", APP),
        peer("10.96.0.60:8443", None),
        tls("1.3", ClientCert::NotRequested, Some("secure")),
    );
    assert_eq!(
        (out.0, out.1, out.2, out.3.as_deref()),
        (
            LegKind::LocalOutbound,
            Status::Deviation,
            Some(DeviationKind::DoubleTls),
            Some("DestinationRule/default/secure-origination")
        )
    );
    // Plaintext for the sidecar to originate TLS on is the intended use, even to 8443.
    let ok = assessed(&s, peer("10.88.0.10:1", APP), peer("10.96.0.60:8443", None), plaintext());
    assert_eq!((ok.1, ok.2), (Status::Ok, None));
}

#[test]
fn tls_to_an_http_named_service_port_is_tls_on_plaintext_port() {
    let s = fixture("mesh.yaml");
    let out = assessed(
        &s,
        peer("10.88.0.10:1", APP),
        peer("10.96.0.20:80", None),
        tls("1.3", ClientCert::NotRequested, None),
    );
    assert_eq!(
        (out.0, out.1, out.2),
        (LegKind::LocalOutbound, Status::Deviation, Some(DeviationKind::TlsOnPlaintextPort))
    );
}

#[test]
fn plaintext_to_a_well_known_tls_port_is_a_deviation_by_default() {
    let s = fixture("mesh.yaml");
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("93.184.216.34:443", None), plaintext());
    assert_eq!(
        out,
        (
            LegKind::Direct,
            Status::Deviation,
            Some(DeviationKind::PlaintextOnTlsPort),
            Some("default".to_owned()),
            Some(RequiredSecurity::Tls)
        )
    );
    let empty = Mesh::default();
    let out = assessed(&empty, peer("10.0.0.1:1", None), peer("10.0.0.2:6443", None), plaintext());
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::PlaintextOnTlsPort)));
}

#[test]
fn tls_below_1_2_is_weak_by_default() {
    let empty = Mesh::default();
    let out = assessed(
        &empty,
        peer("10.0.0.1:1", None),
        peer("10.0.0.2:443", None),
        tls("1.1", ClientCert::NotRequested, None),
    );
    assert_eq!(
        (out.1, out.2, out.3.as_deref()),
        (Status::Deviation, Some(DeviationKind::WeakTlsVersion), Some("default"))
    );
    let ok = assessed(
        &empty,
        peer("10.0.0.1:1", None),
        peer("10.0.0.2:443", None),
        tls("1.2", ClientCert::NotRequested, None),
    );
    assert_eq!((ok.1, ok.2), (Status::Ok, None));
}

#[test]
fn gateway_downstream_follows_the_gateway_server_tls_mode() {
    let s = fixture("mesh.yaml");
    let client = || peer("203.0.113.9:5000", None);
    let out = assessed(
        &s,
        client(),
        peer("10.88.0.50:8443", PROXY),
        tls("1.3", ClientCert::NotRequested, Some("shop.example.com")),
    );
    assert_eq!(
        out,
        (
            LegKind::GatewayDownstream,
            Status::Ok,
            None,
            Some("Gateway/istio-system/public".to_owned()),
            Some(RequiredSecurity::Tls)
        )
    );
    let out = assessed(&s, client(), peer("10.88.0.50:8443", PROXY), plaintext());
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext)));
    let out = assessed(&s, client(), peer("10.88.0.50:8080", PROXY), plaintext());
    assert_eq!((out.1, out.4), (Status::Ok, Some(RequiredSecurity::Plaintext)));
}

#[test]
fn expectation_rules_apply_where_istio_says_nothing() {
    let s = fixture("mesh.yaml");
    let db = || peer("10.88.1.10:5432", None);
    let policy = Some("Expectation/payments/db-tls".to_owned());
    let out = assessed(&s, peer("10.88.0.30:1", APP), db(), plaintext());
    assert_eq!(
        (out.1, out.2, out.3.clone()),
        (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext), policy.clone())
    );
    // The rule asks for TLS 1.3.
    let out = assessed(&s, peer("10.88.0.30:1", APP), db(), tls("1.2", ClientCert::NotRequested, None));
    assert_eq!((out.1, out.2, out.3.clone()), (Status::Deviation, Some(DeviationKind::WeakTlsVersion), policy.clone()));
    let out = assessed(&s, peer("10.88.0.30:1", APP), db(), tls("1.3", ClientCert::NotRequested, None));
    assert_eq!((out.1, out.2, out.3.clone()), (Status::Ok, None, policy.clone()));
    // allowPlaintext: metrics scraping from monitoring.
    let out = assessed(&s, peer("10.88.2.10:1", None), peer("10.88.1.10:9187", None), plaintext());
    assert_eq!((out.1, out.2, out.3, out.4), (Status::Ok, None, policy, Some(RequiredSecurity::Plaintext)));
}

#[test]
fn unknown_security_is_unevaluated_with_the_expectation() {
    let s = fixture("mesh.yaml");
    let out = assessed(
        &s,
        peer("10.88.0.30:1", APP),
        peer("10.88.0.20:8080", None),
        Classification::unknown(UnknownReason::Truncated),
    );
    assert_eq!((out.1, out.2, out.4), (Status::Unevaluated, None, Some(RequiredSecurity::Mtls)));
}

#[test]
fn auto_mtls_expects_mtls_only_to_istio_endpoints() {
    let s = fixture("mesh.yaml");
    // Sidecar to a pod without the tlsMode label: sent as-is, plaintext is fine.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.30:8080", None), plaintext());
    assert_eq!(
        (out.0, out.1, out.2, out.4),
        (LegKind::ExternalOutbound, Status::Ok, None, Some(RequiredSecurity::Any))
    );
    // To pod-c (tlsMode=istio, PERMISSIVE): auto mTLS means mTLS, plaintext is a deviation.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.40:8080", None), plaintext());
    assert_eq!(
        (out.1, out.2, out.4),
        (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext), Some(RequiredSecurity::Mtls))
    );
    // pod-d's workload DISABLE is ignored by auto mTLS: the client still sends mTLS.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.60:9000", None), mtls());
    assert_eq!(
        (out.1, out.2),
        (Status::Deviation, Some(DeviationKind::UnexpectedTls)),
        "the server accepts plaintext only"
    );
}

#[test]
fn istio_sni_names_host_port_and_subset() {
    assert_eq!(
        parse_istio_sni("outbound_.9080_.v2_.reviews.prod.svc.cluster.local"),
        Some((9080, Some("v2".to_owned()), "reviews.prod.svc.cluster.local".to_owned()))
    );
    assert_eq!(
        parse_istio_sni("outbound_.80_._.b.default.svc.cluster.local"),
        Some((80, None, "b.default.svc.cluster.local".to_owned()))
    );
    assert_eq!(parse_istio_sni("example.com"), None);
}

#[test]
fn assessment_names_workloads_identities_leg_and_verdict() {
    let s = fixture("mesh.yaml");
    let leg = record(peer("10.88.0.30:40002", APP), peer("10.88.0.20:8080", None), plaintext());
    let a = assess(&leg, &s);
    assert_eq!((a.client.workload.as_deref(), a.client.identity.as_deref()), (Some("default/legacy"), None));
    assert_eq!(
        (a.server.workload.as_deref(), a.server.identity.as_deref()),
        (Some("default/pod-b"), Some("spiffe://cluster.local/ns/default/sa/b"))
    );
    assert_eq!(a.leg, LegKind::ExternalInbound);
    assert_eq!(a.verdict.status, Status::Deviation);
    assert_eq!(a.verdict.kind, Some(DeviationKind::UnexpectedPlaintext));
    assert_eq!(a.verdict.expected, Some(RequiredSecurity::Mtls));
    assert_eq!(a.verdict.policy.as_deref(), Some("PeerAuthentication/default/b-strict"));
}

#[test]
fn port_level_keys_are_the_container_ports_the_socket_sees() {
    let s = fixture("mesh.yaml");
    // Service port 8080 targets container port 9000, which is PERMISSIVE at port level; the
    // socket of an inbound leg sees the container port.
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.20:9000", None), plaintext());
    assert_eq!((out.1, out.2), (Status::Ok, Some(DeviationKind::WouldBreakUnderStrict)));
    let out = assessed(&s, peer("10.88.0.30:1", APP), peer("10.88.0.20:8080", None), plaintext());
    assert_eq!((out.1, out.2), (Status::Deviation, Some(DeviationKind::UnexpectedPlaintext)));
}

#[test]
fn without_auto_mtls_a_sidecar_sends_as_is() {
    let mut s = fixture("mesh.yaml");
    s.policy.mesh.auto_mtls = false;
    // To pod-c (tlsMode=istio, PERMISSIVE): no DestinationRule tls, no auto mTLS: plaintext is ok
    // for the client side; the PERMISSIVE server notes it would break under STRICT.
    let out = assessed(&s, peer("10.88.0.10:1", PROXY), peer("10.88.0.40:8080", None), plaintext());
    assert_eq!((out.1, out.2), (Status::Ok, Some(DeviationKind::WouldBreakUnderStrict)));
}
