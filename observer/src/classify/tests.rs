//! Decisions of `classify` on hand-made inputs; the real-capture fixtures are in tests/.

use super::*;

fn input<'a>(client: &'a [u8], server: &'a [u8], ended: bool) -> Input<'a> {
    let end = if ended { StreamEnd::Closed } else { StreamEnd::Open };
    Input {
        client,
        server,
        client_end: end,
        server_end: end,
        client_gap: false,
        server_gap: false,
    }
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
