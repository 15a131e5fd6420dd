//! The hand-written ServerHello reader against tls-parser, which it replaced: on the
//! ServerHellos (and HelloRetryRequests) of every fixture, cut at every length and changed at
//! every byte, both accept and reject the same messages and read the same facts.

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_message_handshake, parse_tls_server_hello_extensions,
};

use super::*;
use crate::dissect::tls::{handshake, records};

/// The ServerHello as tls-parser reads it (the implementation before the hand-written one).
fn reference(message: &Message<'_>) -> Result<ServerHello, TlsError> {
    let malformed = || TlsError::Malformed { kind: message.kind };
    let sh = match parse_tls_message_handshake(message.bytes) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) => sh,
        _ => return Err(malformed()),
    };
    let mut hello = ServerHello {
        legacy_version: sh.version.0,
        cipher: sh.cipher.0,
        hello_retry: sh.random == HELLO_RETRY_RANDOM,
        ..Default::default()
    };
    let Some(ext_bytes) = sh.ext else {
        return Ok(hello);
    };
    let (_, extensions) = parse_tls_server_hello_extensions(ext_bytes).map_err(|_| malformed())?;
    for extension in &extensions {
        match extension {
            TlsExtension::SupportedVersions(versions) => hello.selected_version = versions.first().map(|v| v.0),
            TlsExtension::ALPN(protocols) => hello.alpn = protocols.first().map(|p| name_string(p)),
            TlsExtension::PreSharedKey(_) => hello.psk = true,
            TlsExtension::KeyShare([g0, g1, ..]) => hello.key_share_group = Some(u16::from_be_bytes([*g0, *g1])),
            _ => {}
        }
    }
    Ok(hello)
}

/// The ServerHello messages at the start of every fixture leg's server stream (both, after a
/// HelloRetryRequest in the same run).
fn fixture_hellos() -> Vec<Vec<u8>> {
    let mut hellos = Vec::new();
    for stream in super::super::test_streams::fixture_streams(crate::legs::Direction::ServerToClient) {
        let scanned = records::scan(&stream);
        let mut at = 0;
        while at < scanned.records.len() {
            let (joined, next) = handshake::join(&scanned.records, at);
            if let Ok(messages) = handshake::split(&joined) {
                let kept = messages.whole.iter().filter(|m| m.kind == handshake::kind::SERVER_HELLO);
                hellos.extend(kept.map(|m| m.bytes.to_vec()));
            }
            at = next + 1;
        }
    }
    assert!(hellos.len() >= 20, "the fixtures hold many ServerHellos, found {}", hellos.len());
    hellos
}

fn same(bytes: &[u8]) {
    let message = Message { kind: handshake::kind::SERVER_HELLO, bytes };
    assert_eq!(ServerHello::parse(&message), reference(&message), "ServerHello {bytes:02x?}");
}

#[test]
fn the_hand_written_reader_agrees_with_tls_parser_on_every_cut_and_change() {
    let hellos = fixture_hellos();
    assert!(hellos.iter().any(|h| h[4 + 2..4 + 34] == HELLO_RETRY_RANDOM), "a HelloRetryRequest among them");
    for hello in hellos {
        same(&hello);
        for len in 0..hello.len() - 4 {
            let mut cut = hello[..4 + len].to_vec();
            cut[1..4].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
            same(&cut);
        }
        for at in 0..hello.len() {
            for value in [0x00, 0x01, hello[at] ^ 0xff, hello[at].wrapping_add(1), hello[at].wrapping_sub(1)] {
                let mut changed = hello.clone();
                changed[at] = value;
                same(&changed);
            }
        }
    }
}

/// A TLS 1.2-framed ServerHello message with these extension frames.
fn server_hello_with(extensions: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![3, 3];
    body.extend([9u8; 32]);
    body.extend([0, 0x13, 0x01, 0]); // no session id, TLS_AES_128_GCM_SHA256, no compression
    let mut block = Vec::new();
    for (kind, data) in extensions {
        block.extend(kind.to_be_bytes());
        block.extend((data.len() as u16).to_be_bytes());
        block.extend_from_slice(data);
    }
    body.extend((block.len() as u16).to_be_bytes());
    body.extend(block);
    let mut message = vec![2, 0, (body.len() >> 8) as u8, body.len() as u8];
    message.extend(body);
    message
}

#[test]
fn extension_bodies_tls_parser_rejects_end_the_reading_there() {
    let psk: (u16, &[u8]) = (41, &[0, 0]);
    for body in [&[][..], &[2], &[2, 3], &[2, 3, 4], &[2, 3, 4, 5], &[4, 3, 4, 3, 3]] {
        same(&server_hello_with(&[(43, body), psk]));
    }
    for body in [&[][..], &[0], &[0, 0], &[0, 3, 2, b'h', b'2'], &[0, 2, 2, b'h'], &[0, 9, 2, b'h', b'2']] {
        same(&server_hello_with(&[(16, body), psk]));
    }
    for (kind, body) in [(51, &[0x00][..]), (21, &[1]), (23, &[]), (13172, &[0]), (28, &[1]), (42, &[0, 0]), (0, &[0])]
    {
        same(&server_hello_with(&[(kind, body), psk, (43, &[3, 4])]));
    }
}
