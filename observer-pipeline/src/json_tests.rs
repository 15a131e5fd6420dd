//! The direct writer against serde_json on the derived `Serialize`: byte for byte.

use std::time::{Duration, SystemTime};

use observer_mesh::{
    policy::RequiredSecurity,
    verdict::{Assessment, DeviationKind, EndIdentity, LegKind, Status, Verdict},
};
use observer_wire::{
    classify::{Classification, ClientCert, Evidence, Protocol, Security, TlsDetails, UnknownReason},
    legs::{LegRecord, ObservedAt, Peer, Process},
};

use crate::ConnectionRecord;

fn same_as_serde(record: &ConnectionRecord) {
    let mut ours = Vec::new();
    record.write_json(&mut ours);
    let theirs = serde_json::to_vec(record).expect("serde_json writes the record");
    assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
}

fn leg(client: &str, server: &str, classification: Classification) -> LegRecord {
    LegRecord {
        leg: 0x1234_5678_9abc,
        time: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_701_600_123),
        client: Peer {
            addr: client.parse().expect("test address"),
            process: Some(Process { pid: 4242, uid: 0, comm: "curl".into(), cgroup_id: 9 }),
        },
        server: Peer { addr: server.parse().expect("test address"), process: None },
        observed_at: ObservedAt::Client,
        classification,
    }
}

/// Strings a peer or a manifest chooses: every escape JSON has, controls, DEL, non-ASCII.
const HOSTILE: &[&str] = &[
    "",
    "plain",
    "quote\" backslash\\ slash/",
    "\n\r\t\u{8}\u{c}",
    "\u{0}\u{1}\u{1f}\u{7f}",
    "x\u{1b}[2K\u{202e}é漢🦀",
    "\\\"\\\"",
];

#[test]
fn plaintext_and_unknown_records_match_serde() {
    let plain = Classification { security: Security::Plaintext, protocol: Protocol::Http1, reason: None, tls: None };
    same_as_serde(&ConnectionRecord::unassessed(&leg("10.0.0.1:40000", "10.0.0.2:8080", plain), "node-1"));
    for reason in [UnknownReason::NoData, UnknownReason::Truncated, UnknownReason::HandshakeTimeout] {
        let unknown = Classification::unknown(reason);
        same_as_serde(&ConnectionRecord::unassessed(&leg("[fd00::1]:1", "[::ffff:10.0.0.9]:65535", unknown), ""));
    }
}

#[test]
fn tls_records_with_every_field_match_serde() {
    for (i, text) in HOSTILE.iter().enumerate() {
        let s = || Some((*text).to_owned());
        let details = TlsDetails {
            version: Some("1.3".into()),
            sni: s(),
            alpn_offered: vec!["h2".into(), (*text).into()],
            alpn_selected: s(),
            cipher: Some("TLS_AES_128_GCM_SHA256".into()),
            ja4: s(),
            client_cert: Some([ClientCert::Presented, ClientCert::Resumed][i % 2]),
            evidence: Some([Evidence::Tls12Certificate, Evidence::IstioAlpn][i % 2]),
            starttls: (i % 2 == 0).then_some(Protocol::Postgres),
            client_cert_subject: s(),
            client_spiffe_id: s(),
            key_share_groups: vec!["X25519MLKEM768".into(), (*text).into()],
            hello_retry: i % 2 == 1,
            duplicate_extensions: vec![0, 16, 65535],
        };
        let classification = Classification {
            security: Security::Mtls,
            protocol: Protocol::Tls,
            reason: Some(UnknownReason::CaptureGap),
            tls: Some(Box::new(details)),
        };
        let end = |name: &str| EndIdentity {
            workload: Some(format!("ns/{name}{text}")),
            identity: Some(format!("spiffe://cluster.local/ns/ns/sa/{text}")),
            owner: None,
        };
        let assessment = Assessment {
            leg: LegKind::LocalInbound,
            verdict: Verdict {
                status: Status::Deviation,
                expected: Some(RequiredSecurity::Mtls),
                kind: Some(DeviationKind::WouldBreakUnderStrict),
                policy: s().map(Into::into),
                reason: s().map(Into::into),
            },
            client: end("a"),
            server: end("b"),
        };
        let mut record =
            ConnectionRecord::from_parts(leg("127.0.0.1:1", "127.0.0.1:2", classification), assessment, text);
        same_as_serde(&record);
        if let Some(process) = record.client.process.as_mut() {
            process.comm = (*text).into();
            process.pid = u32::MAX;
            process.uid = u32::MAX;
        }
        same_as_serde(&record);
    }
}

#[test]
fn empty_tls_details_match_serde() {
    let classification = Classification {
        security: Security::Unknown,
        protocol: Protocol::Tls,
        reason: Some(UnknownReason::Malformed),
        tls: Some(Box::default()),
    };
    same_as_serde(&ConnectionRecord::unassessed(&leg("10.0.0.1:0", "10.0.0.2:443", classification), "n"));
}

#[test]
fn every_byte_escapes_as_serde_escapes_it() {
    let all: String = (0u8..=0x7f).map(char::from).collect();
    let mut ours = Vec::new();
    super::string(&mut ours, &all);
    assert_eq!(ours, serde_json::to_vec(&all).expect("serde_json writes a string"));
    for n in [0u64, 7, 10, 65_535, u64::from(u32::MAX), u64::MAX] {
        let mut ours = Vec::new();
        super::number(&mut ours, n);
        assert_eq!(ours, n.to_string().into_bytes());
    }
}
