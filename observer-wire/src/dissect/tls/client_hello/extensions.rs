//! The ClientHello's fixed fields and the bodies of the extensions the classification reads,
//! decoded without building intermediate vectors. Each reader accepts and rejects what
//! tls-parser 0.12 does for the same bytes (a rejected ClientHello is `malformed`, and that
//! must not depend on which parser read it); `None` is a rejection. Like tls-parser, a reader
//! ignores bytes after the list it reads.

/// The fixed fields of a ClientHello message (`message`: header included).
pub struct Fields<'a> {
    pub legacy_version: u16,
    /// The cipher suite bytes (an even number).
    pub ciphers: &'a [u8],
    /// The extensions block, if one is there whole.
    pub extensions: Option<&'a [u8]>,
}

/// A cursor over untrusted bytes.
#[derive(Clone)]
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A u16 length, then that many bytes.
    fn u16_prefixed(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }
}

/// Version, cipher suites and extensions of a ClientHello handshake message; `None` where
/// tls-parser fails: a cut field, a session id over 32 bytes, an odd cipher list. A missing or
/// overlong extensions block is no extensions (tls-parser reads it as optional).
pub fn fixed_fields(message: &[u8]) -> Option<Fields<'_>> {
    let mut header = Reader(message);
    let kind = header.u8()?;
    let len = header.take(3)?;
    let len = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
    if kind != super::super::handshake::kind::CLIENT_HELLO {
        return None;
    }
    let mut r = Reader(header.take(len)?);
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    let session_id = r.u8()?;
    if session_id > 32 {
        return None;
    }
    r.take(usize::from(session_id))?;
    let cipher_len = usize::from(r.u16()?);
    if cipher_len % 2 == 1 {
        return None;
    }
    let ciphers = r.take(cipher_len)?;
    let compression_len = r.u8()?;
    r.take(usize::from(compression_len))?;
    let extensions = r.u16_prefixed();
    Some(Fields { legacy_version, ciphers, extensions })
}

/// Big-endian u16 values of `bytes`, without a vector (a trailing odd byte is not one).
pub fn u16s(bytes: &[u8]) -> impl Iterator<Item = u16> + Clone + '_ {
    bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// server_name (RFC 6066 §3): the first host_name entry. An empty body is allowed (no name);
/// entries are read until one is cut.
pub fn sni(body: &[u8]) -> Option<Option<&[u8]>> {
    if body.is_empty() {
        return Some(None);
    }
    let mut list = Reader(Reader(body).u16_prefixed()?);
    while let Some(kind) = list.u8() {
        let Some(name) = list.u16_prefixed() else { break };
        if kind == 0 {
            return Some(Some(name));
        }
    }
    Some(None)
}

/// application_layer_protocol_negotiation: the protocol name list (read with [`alpn_names`]).
pub fn alpn(body: &[u8]) -> Option<&[u8]> {
    Reader(body).u16_prefixed()
}

/// The names of an ALPN protocol name list, read until one is cut.
pub fn alpn_names(list: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    let mut list = Reader(list);
    std::iter::from_fn(move || {
        let len = list.u8()?;
        list.take(usize::from(len))
    })
}

/// supported_versions as tls-parser reads it: a 2-byte body is one version, otherwise a length
/// byte (not checked) and an even number of bytes of versions. The version bytes.
pub fn supported_versions(body: &[u8]) -> Option<&[u8]> {
    if body.len() == 2 {
        return Some(body);
    }
    let versions = body.get(1..)?;
    (versions.len() % 2 == 0).then_some(versions)
}

/// supported_groups: a u16-prefixed list of an even number of bytes.
pub fn supported_groups(body: &[u8]) -> Option<&[u8]> {
    let groups = Reader(body).u16_prefixed()?;
    (groups.len() % 2 == 0).then_some(groups)
}

/// signature_algorithms: a u16-prefixed list (a trailing odd byte is ignored).
pub fn signature_algorithms(body: &[u8]) -> Option<&[u8]> {
    Reader(body).u16_prefixed()
}

/// A ClientHello key_share extension body (RFC 8446 §4.2.8): a u16 list length, then (group
/// u16, key length u16, key) entries, every one whole. The entries' bytes (read with
/// [`key_share_groups`]).
pub fn key_shares(bytes: &[u8]) -> Option<&[u8]> {
    let [l0, l1, list @ ..] = bytes else {
        return None;
    };
    if usize::from(u16::from_be_bytes([*l0, *l1])) != list.len() {
        return None;
    }
    let mut rest = list;
    while !rest.is_empty() {
        let [_, _, k0, k1, tail @ ..] = rest else {
            return None;
        };
        rest = tail.get(usize::from(u16::from_be_bytes([*k0, *k1]))..)?;
    }
    Some(list)
}

/// The groups of key share entries [`key_shares`] accepted, GREASE included.
pub fn key_share_groups(mut entries: &[u8]) -> impl Iterator<Item = u16> + '_ {
    std::iter::from_fn(move || {
        let [g0, g1, k0, k1, tail @ ..] = entries else {
            return None;
        };
        entries = tail.get(usize::from(u16::from_be_bytes([*k0, *k1]))..).unwrap_or_default();
        Some(u16::from_be_bytes([*g0, *g1]))
    })
}

/// early_data: empty, or (in a NewSessionTicket's form) at least a u32.
pub fn early_data(body: &[u8]) -> Option<()> {
    (body.is_empty() || body.len() >= 4).then_some(())
}

/// Whether tls-parser accepts the body of an extension the classification does not read, for
/// the types common in real ClientHellos; `None`: ask tls-parser.
pub fn other_accepted(kind: u16, body: &[u8]) -> Option<bool> {
    let u8_prefixed = || body.first().is_some_and(|len| usize::from(*len) < body.len());
    Some(match kind {
        // tls-parser's GREASE test (both nibbles `a`, the bytes need not match).
        _ if kind & 0x0f0f == 0x0a0a => true,
        // status_request, signed_certificate_timestamp, padding, session_ticket: any body.
        5 | 18 | 21 | 35 => true,
        // ec_point_formats, psk_key_exchange_modes, renegotiation_info: a u8-prefixed list.
        11 | 45 | 0xff01 => u8_prefixed(),
        // encrypt_then_mac, extended_master_secret, post_handshake_auth: empty.
        22 | 23 | 49 => body.is_empty(),
        // record_size_limit: a u16.
        28 => body.len() >= 2,
        // max_fragment_length, heartbeat, cookie, oid_filters, next_protocol_negotiation,
        // encrypted_server_name: rare, checked by tls-parser itself.
        1 | 15 | 44 | 48 | 13172 | 0xffce => return None,
        // Types tls-parser does not know are accepted as they are.
        _ => true,
    })
}
