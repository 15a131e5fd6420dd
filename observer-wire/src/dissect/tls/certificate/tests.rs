//! The identity read from a leaf by hand against x509-parser's whole-certificate parse, which
//! it replaced: the same subject and SPIFFE ID for the fixtures' client certificates, and,
//! changed at any byte or cut anywhere, never a subject or an ID x509-parser would not give.

use x509_parser::{
    certificate::X509CertificateParser,
    extensions::{GeneralName, SubjectAlternativeName},
    nom::Parser as _,
    oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME,
    prelude::FromDer,
    x509::X509Name,
};

use super::*;
use crate::dissect::tls::{handshake, records};

/// The subject as the observer printed it from x509-parser's reading (the code before).
pub(in crate::dissect::tls::certificate) fn oracle_subject(name: &X509Name<'_>) -> String {
    const NAMES: [(&[u8], &str); 9] = [
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x05], "serialNumber"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], "DC"),
        (&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01], "Email"),
    ];
    let mut out = String::new();
    for rdn in name.iter_rdn() {
        for (i, attr) in rdn.iter().enumerate() {
            out.push_str(match (out.is_empty(), i) {
                (true, _) => "",
                (false, 0) => ", ",
                (false, _) => " + ",
            });
            let oid = attr.attr_type();
            match NAMES.iter().find(|(bytes, _)| *bytes == oid.as_bytes()) {
                Some((_, short)) => out.push_str(short),
                None => out.push_str(&oid.to_id_string()),
            }
            out.push('=');
            match attr.as_str() {
                Ok(value) => out.push_str(value),
                Err(_) => out.push_str("#<binary>"),
            }
        }
    }
    out
}

/// The first SPIFFE URI of a SAN value as x509-parser reads it; `Err` if it does not read.
pub(in crate::dissect::tls::certificate) fn oracle_spiffe(san: &[u8]) -> Result<Option<String>, ()> {
    let (_, san) = SubjectAlternativeName::from_der(san).map_err(|_| ())?;
    Ok(san.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
        _ => None,
    }))
}

/// The identity as x509-parser's whole-certificate parse gives it (the code before).
fn reference(der: &[u8]) -> Identity {
    let mut identity = Identity::default();
    let mut parser = X509CertificateParser::new().with_deep_parse_extensions(false);
    if let Ok((_, x509)) = parser.parse(der) {
        identity.subject = Some(oracle_subject(x509.subject()));
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
                let body = m.body();
                let len = usize::from(body[3]) << 16 | usize::from(body[4]) << 8 | usize::from(body[5]);
                leaves.push(body[6..6 + len].to_vec());
            }
        }
    }
    assert!(leaves.len() >= 2, "the TLS 1.2 mTLS fixtures hold client certificates");
    leaves
}

fn identity(der: &[u8]) -> Identity {
    Identity::of_leaf(der)
}

#[test]
fn the_framed_leaf_names_what_the_whole_parse_names() {
    for leaf in fixture_leaves() {
        let expected = reference(&leaf);
        assert!(expected.subject.is_some() && expected.spiffe_id.is_some(), "fixture leaves name a SPIFFE ID");
        assert_eq!(identity(&leaf), expected);
        let original = identity_of_subject_and_san(&leaf);
        let structure = identity_structure(&leaf);
        for at in 0..leaf.len() {
            for value in [0x00, 0xff, leaf[at] ^ 0x80, leaf[at].wrapping_add(1)] {
                let mut changed = leaf.clone();
                changed[at] = value;
                let ours = identity(&changed);
                // Bytes only framed here (validity, key, signature) may break the whole parse and
                // not this one; the subject and SAN are then still read as x509-parser reads them.
                let Some(parts) = der::leaf_parts(&changed) else {
                    assert_eq!(ours, Identity::default());
                    continue;
                };
                let oracle = Identity {
                    subject: X509Name::from_der(parts.subject).ok().map(|(_, name)| oracle_subject(&name)),
                    spiffe_id: parts.subject_alt_name.and_then(|san| oracle_spiffe(san).ok().flatten()),
                };
                let context = || format!("leaf changed at {at} from {:#04x} to {value:#04x}", leaf[at]);
                // Refused where x509-parser reads: only a change to the structure (x509-parser
                // compares tag numbers only, takes any tag for an attribute's OID, ignores bytes
                // left inside an attribute, prints malformed OIDs), or a broken part x509-parser
                // stops before, reporting less than the leaf says. The text never.
                let refusable = |original: &Option<String>, read: &Option<String>| {
                    structure.contains(&at)
                        || read
                            .as_ref()
                            .zip(original.as_ref())
                            .is_some_and(|(read, all)| all.starts_with(read.as_str()) && read != all)
                };
                match (&ours.subject, &oracle.subject) {
                    (Some(_), _) => assert_eq!(ours.subject, oracle.subject, "{}", context()),
                    (None, read) => {
                        assert!(read.is_none() || refusable(&original.subject, read), "{}: {read:?}", context())
                    }
                }
                match (&ours.spiffe_id, &oracle.spiffe_id) {
                    (Some(_), _) => assert_eq!(ours.spiffe_id, oracle.spiffe_id, "{}", context()),
                    (None, read) => {
                        assert!(read.is_none() || refusable(&original.spiffe_id, read), "{}: {read:?}", context())
                    }
                }
            }
        }
        for len in 0..leaf.len() {
            assert_eq!(identity(&leaf[..len]), Identity::default(), "a leaf cut at {len} names nobody");
        }
    }
}

/// Offsets in the leaf of the structure of its subject and SAN (every header byte, nested
/// elements included, and every OID byte), as opposed to the text of their values.
fn identity_structure(leaf: &[u8]) -> Vec<usize> {
    fn walk(bytes: &[u8], base: usize, out: &mut Vec<usize>) {
        let mut at = 0;
        while let Some((tag, len, rest)) = der::header(&bytes[at..]) {
            let content = bytes.len() - rest.len();
            let Some(inside) = rest.get(..len) else { return };
            out.extend(base + at..base + content);
            if tag == 0x06 {
                out.extend(base + content..base + content + len);
            } else if tag & 0x20 != 0 {
                walk(inside, base + content, out);
            }
            at = content + len;
        }
    }
    let parts = der::leaf_parts(leaf).expect("framed");
    let offset = |part: &[u8]| part.as_ptr() as usize - leaf.as_ptr() as usize;
    let mut structure = Vec::new();
    walk(parts.subject, offset(parts.subject), &mut structure);
    if let Some(san) = parts.subject_alt_name {
        walk(san, offset(san), &mut structure);
    }
    structure
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
    Identity { subject: Some(oracle_subject(&subject)), spiffe_id }
}

#[test]
fn an_empty_list_and_a_cut_list_are_read_from_the_length() {
    assert_eq!(read(&[0, 0, 0]).map(|c| c.chain_len), Some(0));
    assert!(!read(&[0, 0, 9, 0, 0, 6, 1]).expect("length present").leaf_whole());
    let cut = read(&[0, 4, 0, 0, 3, 0xff, 0x30]).expect("length present");
    assert_eq!(cut.chain_len, 1024);
    assert_eq!(cut.leaf, None);
    assert_eq!(read(&[0, 4]), None);
}
