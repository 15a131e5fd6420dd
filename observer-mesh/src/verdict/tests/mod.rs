//! Leg identification and verdicts, one test per rule and per deviation kind, on the mesh
//! fixture (`testdata/mesh.yaml`). The deviation kinds are in `deviations`.

mod deviations;

use std::{net::SocketAddr, time::SystemTime};

use observer_wire::{
    classify::{Classification, ClientCert, Protocol, Security, TlsDetails},
    legs::{LegRecord, ObservedAt, Peer, Process},
};

use super::*;
use crate::{Mesh, policy::tests::fixture};

pub(super) fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

pub(super) fn peer(text: &str, process: Option<(u32, &str)>) -> Peer {
    Peer {
        addr: addr(text),
        process: process.map(|(uid, comm)| Process { pid: 1, uid, comm: comm.into(), cgroup_id: 0 }),
    }
}

pub(super) fn plaintext() -> Classification {
    Classification { security: Security::Plaintext, protocol: Protocol::Http1, reason: None, tls: None }
}

pub(super) fn tls(version: &str, cert: ClientCert, sni: Option<&str>) -> Classification {
    let security = if cert == ClientCert::Presented { Security::Mtls } else { Security::Tls };
    Classification {
        security,
        protocol: Protocol::Tls,
        reason: None,
        tls: Some(Box::new(TlsDetails {
            version: Some(version.to_owned().into()),
            sni: sni.map(str::to_owned),
            client_cert: Some(cert),
            ..TlsDetails::default()
        })),
    }
}

pub(super) fn mtls() -> Classification {
    tls("1.3", ClientCert::Presented, Some("outbound_.8080_._.b.default.svc.cluster.local"))
}

pub(super) fn record(client: Peer, server: Peer, classification: Classification) -> LegRecord {
    LegRecord { leg: 1, time: SystemTime::UNIX_EPOCH, client, server, observed_at: ObservedAt::Both, classification }
}

pub(super) const APP: Option<(u32, &str)> = Some((1000, "curl"));
pub(super) const PROXY: Option<(u32, &str)> = Some((1337, "envoy"));

pub(super) fn assessed(
    s: &Mesh,
    client: Peer,
    server: Peer,
    c: Classification,
) -> (LegKind, Status, Option<DeviationKind>, Option<String>, Option<RequiredSecurity>) {
    let a = assess(&record(client, server, c), s);
    (a.leg, a.verdict.status, a.verdict.kind, a.verdict.policy.as_deref().map(str::to_owned), a.verdict.expected)
}

#[test]
fn legs_are_identified_per_design() {
    let s = fixture("mesh.yaml");
    let cases: [(Peer, Peer, LegKind); 15] = [
        (peer("10.88.0.10:40000", None), peer("10.88.0.20:15008", None), LegKind::Hbone),
        (peer("127.0.0.6:40000", PROXY), peer("127.0.0.1:8080", APP), LegKind::LocalInbound),
        (peer("[::6]:40000", PROXY), peer("[::1]:8080", APP), LegKind::LocalInbound),
        (peer("10.88.0.10:40000", None), peer("127.0.0.1:15001", PROXY), LegKind::LocalOutbound),
        // The app's socket sees the original destination; the sidecar is in its own pod.
        (peer("10.88.0.10:40000", APP), peer("10.88.0.20:8080", None), LegKind::LocalOutbound),
        // The app bypassed its sidecar (e.g. over IPv6, which the capture rules miss): the server
        // socket is another pod's app, not a proxy.
        (peer("10.88.0.10:40000", APP), peer("10.88.0.30:8080", APP), LegKind::Direct),
        (peer("10.88.0.10:40000", APP), peer("10.88.0.20:8080", APP), LegKind::ExternalInbound),
        (peer("10.88.0.10:40001", PROXY), peer("10.88.0.20:8080", None), LegKind::ExternalOutbound),
        (peer("10.88.0.10:40001", Some((0, "envoy"))), peer("93.184.216.34:443", None), LegKind::ExternalOutbound),
        (peer("10.88.0.30:40002", APP), peer("10.88.0.20:8080", None), LegKind::ExternalInbound),
        (peer("10.88.0.30:40002", None), peer("10.88.0.20:15006", PROXY), LegKind::ExternalInbound),
        (peer("203.0.113.9:5000", None), peer("10.88.0.50:8443", PROXY), LegKind::GatewayDownstream),
        (peer("10.88.0.50:5000", PROXY), peer("10.88.0.20:8080", None), LegKind::GatewayUpstream),
        (peer("10.88.0.30:40003", APP), peer("93.184.216.34:443", None), LegKind::Direct),
        (peer("198.51.100.1:1", None), peer("198.51.100.2:2", None), LegKind::Unknown),
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
    assert_eq!(
        out,
        (
            LegKind::ExternalOutbound,
            Status::Ok,
            None,
            Some("PeerAuthentication/default/b-strict".to_owned()),
            Some(RequiredSecurity::Mtls)
        )
    );
    let local_in = assessed(&s, peer("127.0.0.6:4", PROXY), peer("127.0.0.1:8080", APP), plaintext());
    assert_eq!((local_in.0, local_in.1, local_in.2), (LegKind::LocalInbound, Status::Ok, None));
    let local_out = assessed(&s, peer("10.88.0.10:5", APP), peer("10.88.0.20:8080", None), plaintext());
    assert_eq!((local_out.0, local_out.1, local_out.2), (LegKind::LocalOutbound, Status::Ok, None));
}
