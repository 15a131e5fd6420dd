//! The hand-written ClientHello reader against tls-parser, which it replaced on the hot path:
//! on the ClientHellos of every fixture, cut at every length and changed at every byte, both
//! must accept and reject the same messages and read the same facts.

use tls_parser::{SNIType, TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_message_handshake};

use super::*;
use crate::dissect::tls::{handshake, ja4, records};

/// The ClientHello as tls-parser reads it (the implementation before the hand-written one).
fn reference(message: &Message<'_>) -> Result<ClientHello, TlsError> {
    let malformed = || TlsError::Malformed { kind: message.kind };
    let ch = match parse_tls_message_handshake(message.bytes) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) => ch,
        _ => return Err(malformed()),
    };
    let mut hello = ClientHello {
        legacy_version: ch.version.0,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        ..Default::default()
    };
    let Some(ext_bytes) = ch.ext else {
        return Ok(hello);
    };
    let frames = extension_frames(ext_bytes);
    if frames.whole != ext_bytes.len() {
        return Err(malformed());
    }
    hello.extensions = frames.list.iter().map(|(kind, _)| *kind).collect();
    hello.duplicate_extensions.clone_from(&frames.duplicates);
    for (i, (kind, frame)) in frames.list.iter().enumerate() {
        if frames.list[..i].iter().any(|(k, _)| k == kind) {
            continue;
        }
        let (_, extension) = tls_parser::parse_tls_client_hello_extension(frame).map_err(|_| malformed())?;
        match &extension {
            TlsExtension::SNI(names) => {
                hello.sni =
                    names.iter().find(|(kind, _)| *kind == SNIType::HostName).map(|(_, name)| name_string(name));
            }
            TlsExtension::ALPN(protocols) => hello.alpn = protocols.iter().map(|p| name_string(p)).collect(),
            TlsExtension::SupportedVersions(versions) => {
                hello.supported_versions = versions.iter().map(|v| v.0).filter(|v| !is_grease(*v)).collect();
            }
            TlsExtension::EllipticCurves(groups) => {
                hello.groups = groups.iter().map(|g| g.0).filter(|g| !is_grease(*g)).collect();
            }
            TlsExtension::SignatureAlgorithms(algorithms) => hello.signature_algorithms.clone_from(algorithms),
            TlsExtension::KeyShare(shares) => {
                hello.key_share_groups = key_share_groups(shares).ok_or_else(malformed)?
            }
            TlsExtension::PreSharedKey(_) => hello.offers_psk = true,
            TlsExtension::EarlyData(_) => hello.offers_early_data = true,
            _ => {}
        }
    }
    Ok(hello)
}

/// The first ClientHello message of every TLS leg of every fixture.
fn fixture_hellos() -> Vec<Vec<u8>> {
    let mut hellos = Vec::new();
    for stream in super::super::test_streams::fixture_streams(crate::legs::Direction::ClientToServer) {
        let scanned = records::scan(&stream);
        let (joined, _) = handshake::join(&scanned.records, 0);
        if let Ok(messages) = handshake::split(&joined)
            && let Some(first) = messages.whole.first().filter(|m| m.kind == handshake::kind::CLIENT_HELLO)
        {
            hellos.push(first.bytes.to_vec());
        }
    }
    assert!(hellos.len() >= 20, "the fixtures hold many ClientHellos, found {}", hellos.len());
    hellos
}

fn same(bytes: &[u8]) {
    let message = Message { kind: handshake::kind::CLIENT_HELLO, bytes };
    let parsed = ClientHello::parse(&message);
    assert_eq!(parsed, reference(&message), "ClientHello {bytes:02x?}");
    // The fingerprint read in place is the fingerprint of the owned reading.
    if let Ok(hello) = parsed {
        let view = HelloView::parse(bytes).expect("parsed once, parses again");
        assert_eq!(ja4::ja4_of(&view), ja4::ja4(&hello), "JA4 of ClientHello {bytes:02x?}");
    }
}

#[test]
fn the_hand_written_reader_agrees_with_tls_parser_on_every_cut_and_change() {
    for hello in fixture_hellos() {
        same(&hello);
        // Cut at every length, the header saying so (lists and extensions end early).
        for len in 0..hello.len() - 4 {
            let mut cut = hello[..4 + len].to_vec();
            cut[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
            same(&cut);
        }
        // Every byte after the header changed in three ways: lengths grow, shrink, or break.
        for at in 4..hello.len() {
            for value in [0x00, 0x01, hello[at] ^ 0xff, hello[at].wrapping_add(1), hello[at].wrapping_sub(1)] {
                let mut changed = hello.clone();
                changed[at] = value;
                same(&changed);
            }
        }
    }
}

#[test]
fn key_shares_list_their_groups_without_grease() {
    // GREASE share with a 1-byte key, X25519MLKEM768 and x25519 with empty keys: 13 bytes.
    let entries = [0x0a, 0x0a, 0, 1, 0, 0x11, 0xec, 0, 0, 0, 0x1d, 0, 0];
    let body = [&[0u8, 13][..], &entries[..]].concat();
    assert_eq!(key_share_groups(&body), Some(vec![0x11ec, 0x001d]));
    let wrong_length = [&[0u8, 12][..], &entries[..]].concat();
    assert_eq!(key_share_groups(&wrong_length), None);
    assert_eq!(key_share_groups(&[0, 3, 0, 0x1d, 0]), None);
}

#[test]
fn extension_frames_stop_at_a_cut_and_name_duplicates() {
    let types = |f: &Frames<'_>| f.list.iter().map(|(k, _)| *k).collect::<Vec<_>>();
    let frames = extension_frames(&[0, 0, 0, 0, 0, 16, 0, 1, 9]);
    assert_eq!((types(&frames), frames.whole), (vec![0, 16], 9));
    assert_eq!(extension_frames(&[0, 0, 0, 5, 1]).whole, 0);
    assert_eq!(extension_frames(&[0, 0, 0]).whole, 0);
    let frames = extension_frames(&[0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!((types(&frames), frames.duplicates), (vec![0, 16, 0, 0], vec![0]));
}
