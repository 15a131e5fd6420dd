//! The SSLv2-compatible ClientHello (RFC 5246 Appendix E.2): old clients open with it to offer
//! SSL 3.0 or TLS; the server answers with an ordinary TLS ServerHello.

use super::{TlsError, client_hello::ClientHello};

/// Message type of an SSLv2 CLIENT-HELLO.
const CLIENT_HELLO: u8 = 1;

/// Shortest body: type, version, three lengths.
const MIN_BODY: usize = 9;

/// An SSLv2 record: a 2-byte header with the high bit set and a 15-bit length.
pub fn looks_like(bytes: &[u8]) -> bool {
    match bytes {
        [] => false,
        [b0] => b0 & 0x80 != 0,
        [b0, _] => b0 & 0x80 != 0,
        [b0, _, kind, ..] => b0 & 0x80 != 0 && *kind == CLIENT_HELLO,
    }
}

/// Parse the SSLv2-compatible ClientHello at the start of `bytes`: the hello and its length on
/// the wire, `Ok(None)` if more bytes are needed.
pub fn parse(bytes: &[u8]) -> Result<Option<(ClientHello, usize)>, TlsError> {
    let [b0, b1, rest @ ..] = bytes else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([b0 & 0x7f, *b1]));
    if len < MIN_BODY {
        return Err(TlsError::BadSslv2Hello);
    }
    let Some(body) = rest.get(..len) else {
        return Ok(None);
    };
    let [kind, v0, v1, c0, c1, s0, s1, h0, h1, lists @ ..] = body else {
        return Err(TlsError::BadSslv2Hello);
    };
    let ciphers_len = usize::from(u16::from_be_bytes([*c0, *c1]));
    let session_len = usize::from(u16::from_be_bytes([*s0, *s1]));
    let challenge_len = usize::from(u16::from_be_bytes([*h0, *h1]));
    if *kind != CLIENT_HELLO || ciphers_len % 3 != 0 || ciphers_len + session_len + challenge_len != lists.len() {
        return Err(TlsError::BadSslv2Hello);
    }
    // SSLv2 cipher specs are 3 bytes; those with a zero first byte are TLS cipher suites.
    let ciphers = lists[..ciphers_len]
        .chunks_exact(3)
        .filter(|spec| spec[0] == 0)
        .map(|spec| u16::from_be_bytes([spec[1], spec[2]]))
        .collect();
    let hello =
        ClientHello { legacy_version: u16::from_be_bytes([*v0, *v1]), ciphers, sslv2: true, ..Default::default() };
    Ok(Some((hello, 2 + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Vec<u8> {
        // version 3.1, two cipher specs (one SSLv2-only, one TLS), no session id, 16-byte challenge
        let mut body = vec![1, 3, 1, 0, 6, 0, 0, 0, 16, 0x07, 0x00, 0xc0, 0x00, 0x00, 0x2f];
        body.extend([0xaa; 16]);
        let mut bytes = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        bytes.extend(body);
        bytes
    }

    #[test]
    fn an_sslv2_hello_gives_its_version_and_tls_suites() {
        let bytes = hello();
        assert!(looks_like(&bytes));
        let (h, len) = parse(&bytes).expect("valid").expect("whole");
        assert_eq!(len, bytes.len());
        assert_eq!(h.legacy_version, 0x0301);
        assert_eq!(h.ciphers, vec![0x002f]);
        assert!(parse(&bytes[..10]).expect("valid prefix").is_none());
    }

    #[test]
    fn inconsistent_lengths_are_malformed() {
        let mut bytes = hello();
        bytes[6] = 9; // cipher specs length no longer matches what follows
        assert_eq!(parse(&bytes), Err(TlsError::BadSslv2Hello));
    }
}
