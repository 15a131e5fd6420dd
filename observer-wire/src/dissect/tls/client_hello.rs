//! The ClientHello: versions, SNI, ALPN, cipher suites, groups and key shares, and the raw
//! extension order JA4 needs, read by hand ([`HelloView`]). A
//! ClientHello cut short still yields what its whole extensions say ([`ClientHello::parse_partial`]).
//!
//! Lists are kept whole: a ClientHello is at most `MAX_HANDSHAKE_BYTES` (16 KiB) of sample, so
//! no list can outgrow it, and a list cut at a count would give a wrong fingerprint and a wrong
//! offered-ALPN list.

pub(super) mod extensions;
mod view;

#[cfg(test)]
use super::is_grease;
use super::{TlsError, handshake::Message};
pub use view::HelloView;

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
    /// Read by hand rather than through tls-parser's message types ([`HelloView`]): this runs
    /// once per TLS leg, and building tls-parser's vectors cost more than the rest of the
    /// classification. It accepts and rejects exactly what tls-parser's
    /// `parse_tls_message_handshake` does (the tests compare the two on every prefix and every
    /// one-byte change of real ClientHellos).
    pub fn parse(message: &Message<'_>) -> Result<Self, TlsError> {
        HelloView::parse(message.bytes).map(|view| view.to_hello()).ok_or(TlsError::Malformed { kind: message.kind })
    }

    /// What the body of a ClientHello cut short holds (`body`: the bytes after the message
    /// header): the fixed fields if they arrived, then every extension that arrived whole. `None`
    /// when not even the cipher suites arrived, or the bytes that did break the format.
    pub fn parse_partial(body: &[u8]) -> Option<Self> {
        HelloView::partial(body).map(|view| view.to_hello())
    }
}

/// The extension frames at the start of an extensions block (the tests' reference reading).
#[cfg(test)]
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
#[cfg(test)]
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

/// Groups of a ClientHello key_share extension body, GREASE removed; `None` if malformed.
#[cfg(test)]
fn key_share_groups(bytes: &[u8]) -> Option<Vec<u16>> {
    extensions::key_shares(bytes).map(|list| extensions::key_share_groups(list).filter(|g| !is_grease(*g)).collect())
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
