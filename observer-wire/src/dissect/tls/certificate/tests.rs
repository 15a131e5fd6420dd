//! The identity read from a leaf framed by hand against x509-parser's whole-certificate parse,
//! which it replaced: the same subject and SPIFFE ID for the fixtures' client certificates, and,
//! changed at any byte, never a subject or an ID the whole parse would not have given.

use x509_parser::{certificate::X509CertificateParser, nom::Parser as _, oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME};

use super::*;
use crate::dissect::tls::{handshake, records};

/// The identity as x509-parser's whole-certificate parse gives it (the code before).
fn reference(der: &[u8]) -> Identity {
    let mut identity = Identity::default();
    let mut parser = X509CertificateParser::new().with_deep_parse_extensions(false);
    if let Ok((_, x509)) = parser.parse(der) {
        identity.subject = Some(subject_string(x509.subject()));
        let san = x509
            .iter_extensions()
            .find(|e| e.oid == OID_X509_EXT_SUBJECT_ALT_NAME)
            .and_then(|e| SubjectAlternativeName::from_der(e.value).ok());
        if let Some((_, san)) = san {
            identity.spiffe_id = san.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
                _ => None,
            });
        }
    }
    identity
}

/// The leaf certificates TLS 1.2 clients sent in the fixtures.
fn fixture_leaves() -> Vec<Vec<u8>> {
    use crate::legs::{Direction, Reassembly};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut leaves = Vec::new();
    for name in ["tls12-rsa-mtls.pcap", "curl-nginx-tls12-mtls.pcap"] {
        for leg in crate::pcap::leg_pieces(&dir.join(name)).expect("fixture reads") {
            let mut client = Reassembly::default();
            for p in leg.pieces.iter().filter(|p| p.direction == Direction::ClientToServer) {
                client.insert(p.offset, &p.bytes);
            }
            let scanned = records::scan(client.bytes());
            let (joined, _) = handshake::join(&scanned.records, 0);
            let messages = handshake::split(&joined).expect("client handshake frames");
            for m in messages.whole.iter().filter(|m| m.kind == handshake::kind::CERTIFICATE) {
                leaves.extend(read(m.body()).and_then(|c| c.leaf));
            }
        }
    }
    assert!(leaves.len() >= 2, "the TLS 1.2 mTLS fixtures hold client certificates");
    leaves
}

fn identity(der: &[u8]) -> Identity {
    ClientCertificate { chain_len: der.len() + 3, leaf: Some(der.to_vec()) }.identity()
}

#[test]
fn the_framed_leaf_names_what_the_whole_parse_names() {
    for leaf in fixture_leaves() {
        let expected = reference(&leaf);
        assert!(expected.subject.is_some() && expected.spiffe_id.is_some(), "fixture leaves name a SPIFFE ID");
        assert_eq!(identity(&leaf), expected);
        for at in 0..leaf.len() {
            for value in [0x00, 0xff, leaf[at] ^ 0x80, leaf[at].wrapping_add(1)] {
                let mut changed = leaf.clone();
                changed[at] = value;
                let (ours, whole) = (identity(&changed), reference(&changed));
                // Bytes only framed here (validity, key, signature) may break the whole parse and
                // not this one; what is reported is then still what those bytes say.
                if whole.subject.is_some() {
                    assert_eq!(
                        ours,
                        whole,
                        "leaf changed at {at} to {value:#04x}: {:02x?}",
                        &leaf[at.saturating_sub(12)..(at + 8).min(leaf.len())]
                    );
                }
                if ours.subject.is_some() && whole.subject.is_none() {
                    assert_eq!(ours, identity_of_subject_and_san(&changed), "leaf changed at {at}");
                }
            }
        }
        for len in 0..leaf.len() {
            assert_eq!(identity(&leaf[..len]), Identity::default(), "a leaf cut at {len} names nobody");
        }
    }
}

/// The identity from the subject and SAN as x509-parser reads them on their own.
fn identity_of_subject_and_san(der: &[u8]) -> Identity {
    let parts = der::leaf_parts(der).expect("framed");
    let (_, subject) = X509Name::from_der(parts.subject).expect("subject parses");
    let spiffe_id =
        parts.subject_alt_name.and_then(|value| SubjectAlternativeName::from_der(value).ok()).and_then(|(_, san)| {
            san.general_names.iter().find_map(|name| match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
                _ => None,
            })
        });
    Identity { subject: Some(subject_string(&subject)), spiffe_id }
}

#[test]
fn an_empty_list_and_a_cut_list_are_read_from_the_length() {
    assert_eq!(read(&[0, 0, 0]).map(|c| c.chain_len), Some(0));
    assert!(!read(&[0, 0, 9, 0, 0, 6, 1]).expect("length present").leaf_whole());
    let cut = read(&[0, 4, 0, 0, 3, 0xff, 0x30]).expect("length present");
    assert_eq!(cut.chain_len, 1024);
    assert_eq!(cut.identity(), Identity::default());
    assert_eq!(read(&[0, 4]), None);
}
