//! The ClientHello: versions, SNI, ALPN, cipher suites, groups and key shares, and the raw
//! extension order JA4 needs. Parsed with tls-parser; the key_share list is walked here. A
//! ClientHello cut short still yields what its whole extensions say ([`ClientHello::parse_partial`]).
//!
//! Lists are kept whole: a ClientHello is at most `MAX_HANDSHAKE_BYTES` (16 KiB) of sample, so
//! no list can outgrow it, and a list cut at a count would give a wrong fingerprint and a wrong
//! offered-ALPN list.

pub(super) mod extensions;

use tls_parser::parse_tls_client_hello_extension;

use super::{TlsError, handshake::Message, is_grease};
use extensions::{fixed_fields, u16_list};

/// Longest SNI or ALPN name kept (a DNS name is at most 253 bytes, an ALPN name 255).
pub const MAX_NAME_LEN: usize = 255;

/// Extension types that matter here (IANA TLS ExtensionType registry).
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const KEY_SHARE: u16 = 51;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const EARLY_DATA: u16 = 42;
}

/// What a ClientHello offers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// `legacy_version` (the record of what pre-1.3 clients negotiate with).
    pub legacy_version: u16,
    /// The supported_versions extension, GREASE removed, in the client's order.
    pub supported_versions: Vec<u16>,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// Cipher suites as sent (GREASE included).
    pub ciphers: Vec<u16>,
    /// Extension types in the order sent (GREASE included).
    pub extensions: Vec<u16>,
    pub signature_algorithms: Vec<u16>,
    /// supported_groups, GREASE removed.
    pub groups: Vec<u16>,
    /// Groups of the key shares sent, GREASE removed (X25519MLKEM768 is 0x11ec).
    pub key_share_groups: Vec<u16>,
    /// A pre_shared_key extension (resumption or external PSK) is offered.
    pub offers_psk: bool,
    /// 0-RTT early data is offered.
    pub offers_early_data: bool,
    /// Sent in the SSLv2-compatible format (no extensions).
    pub sslv2: bool,
    /// Extension types sent more than once (RFC 8446 §4.2 forbids it); the first of each is used.
    pub duplicate_extensions: Vec<u16>,
}

impl ClientHello {
    /// The highest version offered (supported_versions, else legacy_version).
    pub fn highest_version(&self) -> u16 {
        self.supported_versions.iter().copied().max().unwrap_or(self.legacy_version)
    }

    /// Parse a whole ClientHello handshake message.
    ///
    /// Read by hand rather than through tls-parser's message types: this runs once per TLS leg,
    /// and building tls-parser's vectors cost more than the rest of the classification. It accepts
    /// and rejects exactly what tls-parser's `parse_tls_message_handshake` does (the tests compare
    /// the two on every prefix and every one-byte change of real ClientHellos).
    pub fn parse(message: &Message<'_>) -> Result<Self, TlsError> {
        let malformed = || TlsError::Malformed { kind: message.kind };
        let fields = fixed_fields(message.bytes).ok_or_else(malformed)?;
        let mut hello = ClientHello {
            legacy_version: fields.legacy_version,
            ciphers: u16_list(fields.ciphers),
            ..Default::default()
        };
        let Some(ext_bytes) = fields.extensions else {
            return Ok(hello);
        };
        let frames = extension_frames(ext_bytes);
        if frames.whole != ext_bytes.len() {
            return Err(malformed());
        }
        hello.apply_extensions(&frames).ok_or_else(malformed)?;
        Ok(hello)
    }

    /// What the body of a ClientHello cut short holds (`body`: the bytes after the message
    /// header): the fixed fields if they arrived, then every extension that arrived whole. `None`
    /// when not even the cipher suites arrived, or the bytes that did break the format.
    pub fn parse_partial(body: &[u8]) -> Option<Self> {
        let mut hello =
            ClientHello { legacy_version: u16::from_be_bytes([*body.first()?, *body.get(1)?]), ..Default::default() };
        let session_len = usize::from(*body.get(34)?);
        let at = 35 + session_len;
        let cipher_len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
        let ciphers = body.get(at + 2..at + 2 + cipher_len)?;
        hello.ciphers = ciphers.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
        let at = at + 2 + cipher_len;
        let at = at + 1 + usize::from(*body.get(at)?);
        let Some(len) = body.get(at..at + 2) else {
            return Some(hello);
        };
        let declared = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let present = body.get(at + 2..).unwrap_or_default();
        let ext_bytes = &present[..present.len().min(declared)];
        hello.apply_extensions(&extension_frames(ext_bytes))?;
        Some(hello)
    }

    /// Reads the extension frames; `None` if one is malformed. Of an extension sent twice, the
    /// first counts.
    fn apply_extensions(&mut self, frames: &Frames<'_>) -> Option<()> {
        self.extensions = frames.list.iter().map(|(kind, _)| *kind).collect();
        self.duplicate_extensions.clone_from(&frames.duplicates);
        for (i, (kind, frame)) in frames.list.iter().enumerate() {
            if !frames.duplicates.is_empty() && frames.list[..i].iter().any(|(k, _)| k == kind) {
                continue;
            }
            // The frame is whole: its body follows the 4-byte header.
            let body = frame.get(4..).unwrap_or_default();
            match *kind {
                ext::SERVER_NAME => self.sni = extensions::sni(body)?,
                ext::ALPN => self.alpn = extensions::alpn(body)?,
                ext::SUPPORTED_VERSIONS => {
                    self.supported_versions = extensions::supported_versions(body)?;
                    self.supported_versions.retain(|v| !is_grease(*v));
                }
                ext::SUPPORTED_GROUPS => {
                    self.groups = extensions::supported_groups(body)?;
                    self.groups.retain(|g| !is_grease(*g));
                }
                ext::SIGNATURE_ALGORITHMS => self.signature_algorithms = extensions::signature_algorithms(body)?,
                ext::KEY_SHARE => self.key_share_groups = key_share_groups(body)?,
                ext::PRE_SHARED_KEY => self.offers_psk = true,
                ext::EARLY_DATA => {
                    extensions::early_data(body)?;
                    self.offers_early_data = true;
                }
                // Not needed here, but a ClientHello tls-parser rejects stays malformed.
                other => match extensions::other_accepted(other, body) {
                    Some(true) => {}
                    Some(false) => return None,
                    None => {
                        parse_tls_client_hello_extension(frame).ok()?;
                    }
                },
            }
        }
        Some(())
    }
}

/// The extension frames at the start of an extensions block.
#[derive(Debug, Default, PartialEq, Eq)]
struct Frames<'a> {
    /// Type and whole frame (header included) of each, in the order sent (GREASE included).
    list: Vec<(u16, &'a [u8])>,
    /// Types sent more than once, each listed once.
    duplicates: Vec<u16>,
    /// Bytes of the whole frames: the block's length when every frame is whole.
    whole: usize,
}

/// The whole extension frames of `bytes`, stopping at the first one cut short.
fn extension_frames(bytes: &[u8]) -> Frames<'_> {
    // Real ClientHellos send 10 to 20 extensions; more only grow the list.
    let mut frames = Frames { list: Vec::with_capacity(24), ..Frames::default() };
    // Types seen, by their low bits: the list is searched only on a hit (a repeat, or two
    // types sharing low bits), not for every extension.
    let mut seen = [0u64; 16];
    let mut rest = bytes;
    while let [t0, t1, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if tail.len() < len {
            break;
        }
        let kind = u16::from_be_bytes([*t0, *t1]);
        let (word, bit) = (usize::from(kind >> 6 & 0xf), 1u64 << (kind & 0x3f));
        if seen[word] & bit != 0 && frames.list.iter().any(|(k, _)| *k == kind) && !frames.duplicates.contains(&kind) {
            frames.duplicates.push(kind);
        }
        seen[word] |= bit;
        frames.list.push((kind, &rest[..4 + len]));
        frames.whole += 4 + len;
        rest = &tail[len..];
    }
    frames
}

/// Groups of a ClientHello key_share extension body (RFC 8446 §4.2.8): a u16 list length, then
/// (group u16, key length u16, key) entries.
fn key_share_groups(bytes: &[u8]) -> Option<Vec<u16>> {
    let [l0, l1, list @ ..] = bytes else {
        return None;
    };
    let mut rest: &[u8] = list;
    if usize::from(u16::from_be_bytes([*l0, *l1])) != rest.len() {
        return None;
    }
    let mut groups = Vec::new();
    while !rest.is_empty() {
        let [g0, g1, k0, k1, tail @ ..] = rest else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*k0, *k1]));
        let group = u16::from_be_bytes([*g0, *g1]);
        if tail.len() < len {
            return None;
        }
        if !is_grease(group) {
            groups.push(group);
        }
        rest = &tail[len..];
    }
    Some(groups)
}

/// A name from the wire as text; invalid UTF-8 is replaced, not trusted, and the length capped.
pub fn name_string(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_NAME_LEN)];
    // Names are ASCII all but always; the replacing conversion is for the rest.
    match std::str::from_utf8(bytes) {
        Ok(name) => name.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[cfg(test)]
mod tests;
