//! Decisions of `classify` on hand-made inputs; the real-capture fixtures are in tests/.

use super::*;

fn input<'a>(client: &'a [u8], server: &'a [u8], ended: bool) -> Input<'a> {
    let end = if ended { StreamEnd::Closed } else { StreamEnd::Open };
    Input { client, server, client_end: end, server_end: end, client_gap: false, server_gap: false }
}

fn done(p: Progress) -> Classification {
    match p {
        Progress::Done(c) => c,
        Progress::NeedMore => panic!("expected a decision"),
    }
}

#[test]
fn nothing_seen_waits_then_is_no_data() {
    assert_eq!(classify(&input(b"", b"", false)), Progress::NeedMore);
    assert_eq!(done(classify(&input(b"", b"", true))).reason, Some(UnknownReason::NoData));
}

#[test]
fn plaintext_http_is_decided_from_the_request_line() {
    let c = done(classify(&input(b"GET / HTTP/1.1\r\n", b"", false)));
    assert_eq!((c.security, c.protocol, c.tls), (Security::Plaintext, Protocol::Http1, None));
}

#[test]
fn garbage_is_unknown_and_says_why() {
    let c = done(classify(&input(&[0x00, 0xff, 0x13, 0x37, 0x42], b"", false)));
    assert_eq!(c.security, Security::Unknown);
    assert_eq!(c.reason, Some(UnknownReason::UnrecognisedProtocol));
    // A handshake record whose message is not a ClientHello.
    let c = done(classify(&input(&[22, 3, 1, 0, 4, 2, 0, 0, 0], b"", false)));
    assert_eq!((c.security, c.protocol), (Security::Unknown, Protocol::Tls));
    assert_eq!(c.reason, Some(UnknownReason::Malformed));
}

#[test]
fn a_cut_client_hello_is_truncated_or_budget_exhausted() {
    let cut = [22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3];
    assert_eq!(classify(&input(&cut, b"", false)), Progress::NeedMore);
    let c = done(classify(&input(&cut, b"", true)));
    assert_eq!((c.protocol, c.reason), (Protocol::Tls, Some(UnknownReason::Truncated)));
    let mut budget = input(&cut, b"", false);
    budget.client_end = StreamEnd::BudgetSpent;
    budget.server_end = StreamEnd::Closed;
    assert_eq!(done(classify(&budget)).reason, Some(UnknownReason::BudgetExhausted));
}

/// The legs of a fixture as whole (client, server) byte streams.
fn fixture(name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    use crate::legs::{Direction, Reassembly};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    crate::pcap::leg_pieces(&path)
        .expect("fixture reads")
        .iter()
        .map(|leg| {
            let (mut c, mut s) = (Reassembly::default(), Reassembly::default());
            for p in &leg.pieces {
                match p.direction {
                    Direction::ClientToServer => c.insert(p.offset, &p.bytes),
                    Direction::ServerToClient => s.insert(p.offset, &p.bytes),
                }
            }
            (c.bytes().to_vec(), s.bytes().to_vec())
        })
        .collect()
}

/// Length of the TLS records at the start of `bytes` up to and including record `n`.
fn records_len(bytes: &[u8], n: usize) -> usize {
    let mut at = 0;
    for _ in 0..n {
        at += 5 + usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
    }
    at
}

#[test]
fn istio_alpn_is_the_fallback_when_the_flight_is_cut_off() {
    let legs = fixture("haproxy-istio-mtls.pcap");
    let (client, server) = &legs[1];
    // ClientHello and ChangeCipherSpec only: the encrypted flight was never sampled.
    let cut = &client[..records_len(client, 2)];
    let budget = Input {
        client: cut,
        server,
        client_end: StreamEnd::BudgetSpent,
        server_end: StreamEnd::Closed,
        client_gap: false,
        server_gap: false,
    };
    let c = done(classify(&budget));
    let tls = c.tls.expect("tls details");
    assert_eq!(c.security, Security::Mtls);
    assert_eq!(c.reason, Some(UnknownReason::BudgetExhausted));
    assert_eq!(tls.evidence, Some(Evidence::IstioAlpn));
    // The same cut without Istio's ALPN decides nothing: unknown, with the reason.
    let legs = fixture("tls13-rsa-no-client-cert.pcap");
    let (client, server) = &legs[0];
    let cut = &client[..records_len(client, 2)];
    let c = done(classify(&Input { client: cut, server, ..budget }));
    assert_eq!((c.security, c.protocol), (Security::Unknown, Protocol::Tls));
    assert_eq!(c.reason, Some(UnknownReason::BudgetExhausted));
    assert_eq!(c.tls.and_then(|t| t.client_cert), Some(ClientCert::Unknown));
}

#[test]
fn a_server_alert_is_a_failed_handshake() {
    let legs = fixture("tls13-rsa-no-client-cert.pcap");
    let client = &legs[0].0[..records_len(&legs[0].0, 1)];
    let alert = [21, 3, 3, 0, 2, 2, 40];
    let c = done(classify(&input(client, &alert, false)));
    assert_eq!(c.security, Security::Unknown);
    assert_eq!(c.reason, Some(UnknownReason::HandshakeFailed));
    assert_eq!(c.tls.and_then(|t| t.sni), Some("server.fixture.test".to_owned()));
}

#[test]
fn an_sslv2_compatible_hello_is_tls_without_a_fingerprint() {
    let mut body = vec![1, 3, 1, 0, 3, 0, 0, 0, 16, 0x00, 0x00, 0x2f];
    body.extend([0xaa; 16]);
    let mut hello = vec![0x80, body.len() as u8];
    hello.extend(body);
    assert_eq!(classify(&input(&hello[..5], b"", false)), Progress::NeedMore);
    let c = done(classify(&input(&hello, b"", true)));
    let tls = c.tls.expect("tls details");
    assert_eq!((c.security, c.protocol), (Security::Unknown, Protocol::Tls));
    assert_eq!(tls.version.as_deref(), Some("1.0"));
    assert_eq!(tls.ja4, None);
}

#[test]
fn postgres_refusing_ssl_is_plaintext_postgres() {
    let c = done(classify(&input(&[0, 0, 0, 8, 4, 210, 22, 47], b"N", false)));
    assert_eq!((c.security, c.protocol), (Security::Plaintext, Protocol::Postgres));
}

#[test]
fn a_second_client_hello_without_change_cipher_spec_is_found() {
    let legs = fixture("tls13-hello-retry.pcap");
    let (client, server) = &legs[0];
    let with_ccs = done(classify(&input(client, server, true)));
    assert_eq!(with_ccs.tls.as_ref().map(|t| t.hello_retry), Some(true));
    // Drop the client's ChangeCipherSpec records (content type 20): a client without
    // middlebox compatibility mode sends ClientHello, ClientHello, then encrypted records.
    let mut without = Vec::new();
    let mut at = 0;
    while at + 5 <= client.len() {
        let end = (at + 5 + usize::from(u16::from_be_bytes([client[at + 3], client[at + 4]]))).min(client.len());
        if client[at] != 20 {
            without.extend_from_slice(&client[at..end]);
        }
        at = end;
    }
    assert!(without.len() < client.len());
    assert_eq!(done(classify(&input(&without, server, true))), with_ccs);
}

#[test]
fn reason_names_are_the_json_spellings() {
    use UnknownReason::*;
    for reason in [
        NoData,
        Truncated,
        Malformed,
        BudgetExhausted,
        UnrecognisedProtocol,
        CaptureGap,
        ObserverStopped,
        CaptureEnded,
        Inconclusive,
        HandshakeFailed,
        HandshakeTimeout,
    ] {
        assert_eq!(serde_json::to_value(reason).ok(), Some(serde_json::Value::from(reason.name())), "{reason:?}");
    }
}

#[test]
fn istio_alpn_without_a_server_hello_is_never_mtls() {
    let legs = fixture("haproxy-istio-mtls.pcap");
    let client = &legs[1].0[..records_len(&legs[1].0, 1)];
    // Answered by a reset, by silence until the capture ended, or by plaintext.
    let reset = input(client, b"", true);
    let silence = Input { server_end: StreamEnd::Closed, ..input(client, b"", false) };
    let plaintext = input(client, b"HTTP/1.1 400 Bad Request\r\n\r\n", true);
    for (name, leg) in [("reset", reset), ("silence", silence), ("plaintext", plaintext)] {
        let c = done(classify(&leg));
        let tls = c.tls.expect("tls details");
        assert_eq!(c.security, Security::Unknown, "{name}");
        assert!(c.reason.is_some(), "{name}");
        assert_eq!(tls.client_cert, Some(ClientCert::Unknown), "{name}");
        assert_eq!(tls.evidence, Some(Evidence::ClientHello), "{name}");
        assert!(tls.alpn_offered.iter().any(|p| p.starts_with("istio")), "{name}");
    }
}

/// Every leg of every fixture, offered to one [`Classifier`] a byte more of each direction at a
/// time, answers exactly what a fresh [`classify`] answers for the same bytes, every time.
#[test]
fn a_classifier_fed_segment_by_segment_answers_what_classify_answers() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut legs = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures folder") {
        let name = entry.expect("fixture entry").file_name().into_string().expect("UTF-8 name");
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
        for (client, server) in fixture(&name) {
            let mut classifier = Classifier::default();
            for n in 0..=client.len().max(server.len()) {
                let step = input(&client[..n.min(client.len())], &server[..n.min(server.len())], false);
                assert_eq!(classifier.classify(&step), classify(&step), "{name}: {n} bytes of each direction");
            }
            let whole = input(&client, &server, true);
            assert_eq!(classifier.classify(&whole), classify(&whole), "{name}: the whole leg");
            legs += 1;
        }
    }
    assert!(legs >= 20, "only {legs} legs in the fixtures");
}

/// What a classifier keeps is used only for the bytes it came from: offered another leg's
/// bytes, or a ServerHello changed in place, it answers what a fresh classification answers.
#[test]
fn a_classifier_offered_other_bytes_does_not_reuse_what_it_kept() {
    let legs: Vec<_> = ["tls13-ecdsa-mtls.pcap", "tls12-rsa-mtls.pcap", "tls13-hello-retry.pcap"]
        .iter()
        .flat_map(|name| fixture(name))
        .collect();
    let mut classifier = Classifier::default();
    for (client, server) in legs.iter().chain(legs.iter().rev()) {
        let step = input(client, server, false);
        assert_eq!(classifier.classify(&step), classify(&step));
        // The ServerHello's cipher suite (after the 5-byte record header, 4-byte message header,
        // version, random and session id) changed: parsed again, not taken from what was kept.
        let mut changed = server.clone();
        let at = 5 + 4 + 2 + 32 + 1 + usize::from(server[5 + 4 + 2 + 32]);
        changed[at + 1] ^= 0x01;
        let step = input(client, &changed, false);
        assert_eq!(classifier.classify(&step), classify(&step));
    }
}
