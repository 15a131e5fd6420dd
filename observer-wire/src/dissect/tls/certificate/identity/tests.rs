//! The hand reading of Names and SAN lists against x509-parser's, on generated ones: string
//! types (UTF8, Printable, IA5, BMP, T61), multi-valued RDNs, unknown and large OIDs, long SAN
//! lists with IP, DNS, e-mail, directory and URI names (spiffe:// first, last or absent), each
//! also cut at every byte and changed at every byte.

use x509_parser::{prelude::FromDer, x509::X509Name};

use super::*;
use crate::dissect::tls::certificate::tests::{oracle_spiffe, oracle_subject};

/// A DER element (definite length, short or long form).
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n @ 0..=0x7f => out.push(n as u8),
        n @ 0x80..=0xff => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(content);
    out
}

fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
    der(0x30, &[der(0x06, oid), der(tag, value)].concat())
}

fn name(rdns: &[Vec<Vec<u8>>]) -> Vec<u8> {
    der(0x30, &rdns.iter().map(|rdn| der(0x31, &rdn.concat())).collect::<Vec<_>>().concat())
}

const CN: &[u8] = &[0x55, 0x04, 0x03];
const O: &[u8] = &[0x55, 0x04, 0x0a];

fn names() -> Vec<Vec<u8>> {
    let bmp: Vec<u8> = "Zürich".encode_utf16().flat_map(u16::to_be_bytes).collect();
    vec![
        name(&[vec![attribute(O, 0x0c, b"cluster.local")], vec![attribute(CN, 0x0c, b"client")]]),
        name(&[vec![attribute(CN, 0x13, b"printable"), attribute(O, 0x16, b"ia5 + multi")]]),
        name(&[vec![attribute(&[0x55, 0x04, 0x07], 0x1e, &bmp)], vec![attribute(&[0x55, 0x04, 0x06], 0x13, b"CH")]]),
        name(&[vec![attribute(CN, 0x14, b"t61")], vec![attribute(CN, 0x0c, "ünïcode".as_bytes())]]),
        name(&[vec![attribute(CN, 0x0c, &[0xff, 0xfe])], vec![attribute(CN, 0x04, b"octets")]]),
        // An unknown OID (1.2.3.4), one with a 63-bit arc, DC.
        name(&[vec![attribute(&[0x2a, 0x03, 0x04], 0x0c, b"a")]]),
        name(&[vec![attribute(&[0x2a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], 0x0c, b"big")]]),
        name(&[vec![attribute(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], 0x16, b"example")]]),
        name(&[]),
        name(&(0..40).map(|i| vec![attribute(CN, 0x0c, format!("cn{i}").as_bytes())]).collect::<Vec<_>>()),
    ]
}

fn sans() -> Vec<Vec<u8>> {
    let spiffe = der(0x86, b"spiffe://cluster.local/ns/default/sa/client");
    let dns = |i: usize| der(0x82, format!("host{i}.example").as_bytes());
    let ip4 = der(0x87, &[10, 0, 0, 1]);
    let ip6 = der(0x87, &[0xfd; 16]);
    let email = der(0x81, b"a@example.com");
    let dir = der(0xa4, &name(&[vec![attribute(CN, 0x0c, b"dir")]]));
    let other = der(0xa0, &[der(0x06, &[0x2b, 0x06, 0x01]), der(0xa0, &der(0x0c, b"x"))].concat());
    let registered = der(0x88, &[0x2a, 0x03]);
    let seq = |names: &[Vec<u8>]| der(0x30, &names.concat());
    let mut long: Vec<Vec<u8>> = (0..200).map(dns).collect();
    long.push(spiffe.clone());
    vec![
        seq(std::slice::from_ref(&spiffe)),
        seq(&[dns(1), ip4.clone(), ip6.clone(), email.clone(), spiffe.clone()]),
        seq(&[der(0x86, b"https://example.com/"), spiffe.clone(), der(0x86, b"spiffe://second/")]),
        seq(&[dir, other, registered, ip4, spiffe.clone()]),
        seq(&[dns(2), ip6, email]),
        seq(&long),
        seq(&[der(0x86, &[0xff]), spiffe.clone()]),
        seq(&[]),
    ]
}

fn ours_subject(bytes: &[u8]) -> Option<String> {
    subject_string(bytes).ok()
}

fn oracle_name(bytes: &[u8]) -> Option<String> {
    X509Name::from_der(bytes).ok().map(|(_, name)| oracle_subject(&name))
}

#[test]
fn generated_names_read_as_x509_parser_reads_them() {
    for bytes in names() {
        let oracle = oracle_name(&bytes);
        // Every generated Name is well formed: both read it, the same way.
        assert!(oracle.is_some(), "{bytes:02x?}");
        assert_eq!(ours_subject(&bytes), oracle, "{bytes:02x?}");
    }
}

#[test]
fn generated_san_lists_give_the_spiffe_id_x509_parser_gives() {
    for bytes in sans() {
        assert_eq!(spiffe_id(&bytes).ok().map(|id| id.map(str::to_owned)), oracle_spiffe(&bytes).ok(), "{bytes:02x?}");
    }
    let found: Vec<_> = sans().iter().map(|s| spiffe_id(s).ok().flatten().map(str::to_owned)).collect();
    let first = Some("spiffe://cluster.local/ns/default/sa/client".to_owned());
    assert_eq!(found[..6], [first.clone(), first.clone(), first.clone(), first.clone(), None, first]);
    assert_eq!(found[6], None, "a URI that is not UTF-8 fails the whole list");
    assert_eq!(found[7], None);
}

#[test]
fn cut_or_changed_names_and_sans_never_read_other_than_x509_parser() {
    for bytes in names() {
        for len in 0..bytes.len() {
            assert!(subject_string(&bytes[..len]).is_err(), "a Name cut at {len} reads");
        }
        for at in 0..bytes.len() {
            for value in [0x00, 0xff, bytes[at] ^ 0x80, bytes[at].wrapping_add(1), bytes[at] ^ 0x20] {
                let mut changed = bytes.clone();
                changed[at] = value;
                if let Some(ours) = ours_subject(&changed) {
                    assert_eq!(Some(ours), oracle_name(&changed), "Name changed at {at} to {value:#04x}");
                }
            }
        }
    }
    for bytes in sans() {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            if let Ok(Some(id)) = spiffe_id(cut) {
                assert_eq!(oracle_spiffe(cut), Ok(Some(id.to_owned())), "SAN cut at {len}");
            }
        }
        for at in 0..bytes.len() {
            for value in [0x00, 0xff, bytes[at] ^ 0x80, bytes[at].wrapping_add(1), bytes[at] ^ 0x20] {
                let mut changed = bytes.clone();
                changed[at] = value;
                if let Ok(ours) = spiffe_id(&changed) {
                    assert_eq!(
                        oracle_spiffe(&changed),
                        Ok(ours.map(str::to_owned)),
                        "SAN changed at {at} to {value:#04x}"
                    );
                }
            }
        }
    }
}

#[test]
fn errors_say_what_was_expected_and_where() {
    assert_eq!(subject_string(&[0x31, 0x00]), Err(DerError { at: 0, what: "Name SEQUENCE" }));
    let cut = name(&[vec![attribute(CN, 0x0c, b"client")]]);
    assert_eq!(subject_string(&cut[..cut.len() - 1]).map_err(|e| e.at), Err(0));
    assert_eq!(subject_string(&[0x30, 0x02, 0x31, 0x00]), Err(DerError { at: 4, what: "an attribute in the RDN" }));
    assert_eq!(spiffe_id(&[0x30, 0x02, 0x99, 0x00]), Err(DerError { at: 2, what: "a GeneralName tag [0] to [8]" }));
}
