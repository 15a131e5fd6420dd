//! The ServerHello's fixed fields and extensions, read in place with tls-parser 0.12's rules:
//! which messages it rejects (`malformed`), and where it stops reading the extensions (at the
//! first one it does not accept, keeping those before).

use crate::dissect::tls::{client_hello::extensions, handshake::kind};

/// The fixed fields of a ServerHello message.
pub struct Fields<'a> {
    pub legacy_version: u16,
    pub random: &'a [u8],
    pub cipher: u16,
    /// The extensions block, if one is there whole.
    pub extensions: Option<&'a [u8]>,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// `None` where tls-parser fails: not a ServerHello, a version other than SSL 3.0 to TLS 1.2
/// on the wire (TLS 1.3 sends 1.2 here), a cut field, a session id over 32 bytes.
pub fn fixed_fields(message: &[u8]) -> Option<Fields<'_>> {
    let [message_kind, l0, l1, l2, rest @ ..] = message else {
        return None;
    };
    let len = usize::from(*l0) << 16 | usize::from(*l1) << 8 | usize::from(*l2);
    let body = rest.get(..len)?;
    if *message_kind != kind::SERVER_HELLO {
        return None;
    }
    let legacy_version = u16_at(body, 0)?;
    if !(0x0300..=0x0303).contains(&legacy_version) {
        return None;
    }
    let random = body.get(2..34)?;
    let session_id = usize::from(*body.get(34)?);
    if session_id > 32 {
        return None;
    }
    let at = 35 + session_id;
    let cipher = u16_at(body, at)?;
    body.get(at + 2)?; // compression method
    let at = at + 3;
    // SSL 3.0 has no extensions; otherwise an optional, u16-prefixed block.
    let extensions = if legacy_version == 0x0300 {
        None
    } else {
        u16_at(body, at).and_then(|n| body.get(at + 2..at + 2 + usize::from(n)))
    };
    Some(Fields { legacy_version, random, cipher, extensions })
}

/// The extensions (type, body) in order, up to the first that is cut or that tls-parser's
/// ServerHello reader rejects.
pub fn accepted_extensions(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let kind = u16_at(bytes, 0)?;
        let len = usize::from(u16_at(bytes, 2)?);
        let body = bytes.get(4..4 + len)?;
        if !accepted(kind, body) {
            return None;
        }
        bytes = &bytes[4 + len..];
        Some((kind, body))
    })
}

/// Whether tls-parser's `parse_tls_server_hello_extension` accepts this body for this type.
fn accepted(kind: u16, body: &[u8]) -> bool {
    let u8_prefixed = || body.first().is_some_and(|len| usize::from(*len) < body.len());
    let u16_prefixed = || u16_at(body, 0).is_some_and(|len| usize::from(len) + 2 <= body.len());
    match kind {
        _ if kind & 0x0f0f == 0x0a0a => true,
        // server_name: empty, or a list that is all there (its entries are read until one is cut).
        0 => body.is_empty() || u16_prefixed(),
        1 | 15 => !body.is_empty(),
        11 | 0xff01 => u8_prefixed(),
        13 => extensions::signature_algorithms(body).is_some(),
        // ALPN: a list that is all there, read the same way.
        16 => u16_prefixed(),
        21 | 23 | 13172 => body.is_empty(),
        28 => body.len() >= 2,
        42 => extensions::early_data(body).is_some(),
        // supported_versions: 2 bytes, or a length byte and an even number of bytes.
        43 => body.len() == 2 || body.len() % 2 == 1,
        // status_request, signed_certificate_timestamp, session_ticket, pre_shared_key, cookie,
        // key_share and every type tls-parser does not know: any body.
        _ => true,
    }
}

/// The first version of a supported_versions body tls-parser accepted: the body itself when
/// it is 2 bytes, else after its length byte.
pub fn first_version(body: &[u8]) -> Option<u16> {
    if body.len() == 2 { u16_at(body, 0) } else { u16_at(body, 1) }
}

/// The first protocol of an ALPN body tls-parser accepted.
pub fn first_protocol(body: &[u8]) -> Option<&[u8]> {
    let list = body.get(2..2 + usize::from(u16_at(body, 0)?))?;
    let len = usize::from(*list.first()?);
    list.get(1..1 + len)
}
