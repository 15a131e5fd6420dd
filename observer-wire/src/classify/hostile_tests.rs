//! ClientHellos crafted to lose or bend facts: long ALPN lists, many extensions, a hello cut in
//! half, duplicated extensions. What the bytes hold is reported, and nothing more.

use super::*;

fn ext(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut e = kind.to_be_bytes().to_vec();
    e.extend((body.len() as u16).to_be_bytes());
    e.extend_from_slice(body);
    e
}

fn sni(name: &str) -> Vec<u8> {
    let mut entry = vec![0];
    entry.extend((name.len() as u16).to_be_bytes());
    entry.extend(name.as_bytes());
    let mut body = (entry.len() as u16).to_be_bytes().to_vec();
    body.extend(entry);
    ext(0, &body)
}

fn alpn(names: &[String]) -> Vec<u8> {
    let mut list = Vec::new();
    for n in names {
        list.push(n.len() as u8);
        list.extend(n.as_bytes());
    }
    let mut body = (list.len() as u16).to_be_bytes().to_vec();
    body.extend(list);
    ext(16, &body)
}

/// A TLS 1.2 ClientHello record with these extensions.
fn client_hello(extensions: &[Vec<u8>]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([7u8; 32]);
    body.push(0); // session id
    body.extend([0, 4, 0x13, 0x01, 0xc0, 0x2f]);
    body.extend([1, 0]); // compression
    let exts: Vec<u8> = extensions.concat();
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(exts);
    let mut message = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    message.extend(body);
    let mut record = vec![22, 3, 1];
    record.extend((message.len() as u16).to_be_bytes());
    record.extend(message);
    record
}

fn ended<'a>(client: &'a [u8], server: &'a [u8]) -> Input<'a> {
    Input {
        client,
        server,
        client_end: StreamEnd::Closed,
        server_end: StreamEnd::Closed,
        client_gap: false,
        server_gap: false,
    }
}

fn decided(input: &Input<'_>) -> Classification {
    match classify(input) {
        Progress::Done(c) => c,
        Progress::NeedMore => panic!("expected a decision"),
    }
}

#[test]
fn every_offered_alpn_is_reported() {
    let names: Vec<String> = (0..72).map(|i| format!("proto-{i}")).collect();
    let hello = client_hello(&[sni("many.example"), alpn(&names)]);
    let c = decided(&ended(&hello, b""));
    assert_eq!(c.tls.expect("tls").alpn_offered, names);
}

#[test]
fn a_client_hello_cut_in_half_reports_what_arrived() {
    // The SNI and ALPN come first; padding makes the hello long, and the stream ends inside it.
    let names = vec!["istio-peer-exchange".to_owned(), "istio".to_owned()];
    let hello = client_hello(&[sni("half.example"), alpn(&names), ext(21, &[0; 600])]);
    let cut = &hello[..hello.len() / 2];
    let c = decided(&ended(cut, b""));
    assert_eq!((c.security, c.protocol, c.reason), (Security::Unknown, Protocol::Tls, Some(UnknownReason::Truncated)));
    let tls = c.tls.expect("tls details");
    assert_eq!(tls.sni.as_deref(), Some("half.example"));
    assert_eq!(tls.alpn_offered, names);
    assert_eq!((tls.ja4, tls.client_cert), (None, Some(ClientCert::Unknown)));
    // Cut inside the fixed fields: nothing to report, still truncated.
    let c = decided(&ended(&hello[..20], b""));
    assert_eq!(c.reason, Some(UnknownReason::Truncated));
    assert_eq!(c.tls.and_then(|t| t.sni), None);
}

#[test]
fn duplicate_extensions_are_said_and_the_first_copy_counts() {
    let hello = client_hello(&[sni("first.example"), alpn(&["h2".to_owned()]), sni("second.example")]);
    let c = decided(&ended(&hello, b""));
    let tls = c.tls.expect("tls details");
    assert_eq!(tls.sni.as_deref(), Some("first.example"));
    assert_eq!(tls.duplicate_extensions, vec![0]);
    let json = serde_json::to_value(&tls).expect("serialises");
    assert_eq!(json["duplicate_extensions"], serde_json::json!([0]));
}

#[test]
fn an_upgraded_leg_names_its_application_protocol() {
    // PostgreSQL SSLRequest answered `S`, then TLS: protocol postgres, starttls postgres.
    let mut client = vec![0, 0, 0, 8, 4, 210, 22, 47];
    client.extend(client_hello(&[sni("db.example")]));
    let c = decided(&ended(&client, b"S"));
    assert_eq!(c.protocol, Protocol::Postgres);
    assert_eq!(c.tls.and_then(|t| t.starttls), Some(Protocol::Postgres));
}
