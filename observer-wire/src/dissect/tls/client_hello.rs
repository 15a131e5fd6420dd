//! The ClientHello: versions, SNI, ALPN, cipher suites, groups and key shares, and the raw
//! extension order JA4 needs. Parsed with tls-parser; the key_share list is walked here.

use tls_parser::{
    SNIType, TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_client_hello_extensions,
    parse_tls_message_handshake,
};

use super::{TlsError, handshake::Message, is_grease};

/// Most ALPN protocols kept (Istio sends five; browsers two or three).
pub const MAX_ALPN: usize = 16;
/// Longest SNI or ALPN name kept (a DNS name is at most 253 bytes).
pub const MAX_NAME_LEN: usize = 255;
/// Most cipher suites, extensions, groups or signature algorithms kept per list.
pub const MAX_LIST: usize = 128;

/// Extension types that matter here (IANA TLS ExtensionType registry).
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const ALPN: u16 = 16;
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
}

impl ClientHello {
    /// The highest version offered (supported_versions, else legacy_version).
    pub fn highest_version(&self) -> u16 {
        self.supported_versions.iter().copied().max().unwrap_or(self.legacy_version)
    }

    /// Parse a whole ClientHello handshake message.
    pub fn parse(message: &Message<'_>) -> Result<Self, TlsError> {
        let malformed = || TlsError::Malformed { kind: message.kind };
        let ch = match parse_tls_message_handshake(message.bytes) {
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) => ch,
            _ => return Err(malformed()),
        };
        let mut hello = ClientHello {
            legacy_version: ch.version.0,
            ciphers: ch.ciphers.iter().take(MAX_LIST).map(|c| c.0).collect(),
            ..Default::default()
        };
        let Some(ext_bytes) = ch.ext else {
            return Ok(hello);
        };
        hello.extensions = extension_types(ext_bytes).ok_or_else(malformed)?;
        let (_, extensions) = parse_tls_client_hello_extensions(ext_bytes).map_err(|_| malformed())?;
        for extension in &extensions {
            match extension {
                TlsExtension::SNI(names) => {
                    hello.sni =
                        names.iter().find(|(kind, _)| *kind == SNIType::HostName).map(|(_, name)| name_string(name));
                }
                TlsExtension::ALPN(protocols) => {
                    hello.alpn = protocols.iter().take(MAX_ALPN).map(|p| name_string(p)).collect();
                }
                TlsExtension::SupportedVersions(versions) => {
                    hello.supported_versions =
                        versions.iter().map(|v| v.0).filter(|v| !is_grease(*v)).take(MAX_LIST).collect();
                }
                TlsExtension::EllipticCurves(groups) => {
                    hello.groups = groups.iter().map(|g| g.0).filter(|g| !is_grease(*g)).take(MAX_LIST).collect();
                }
                TlsExtension::SignatureAlgorithms(algorithms) => {
                    hello.signature_algorithms = algorithms.iter().copied().take(MAX_LIST).collect();
                }
                TlsExtension::KeyShare(shares) => {
                    hello.key_share_groups = key_share_groups(shares).ok_or_else(malformed)?;
                }
                TlsExtension::PreSharedKey(_) => hello.offers_psk = true,
                TlsExtension::EarlyData(_) => hello.offers_early_data = true,
                _ => {}
            }
        }
        Ok(hello)
    }
}

/// The types of the extensions in `bytes`, in order; `None` if the framing is broken.
fn extension_types(mut bytes: &[u8]) -> Option<Vec<u16>> {
    let mut types = Vec::new();
    while !bytes.is_empty() {
        let [t0, t1, l0, l1, rest @ ..] = bytes else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len {
            return None;
        }
        if types.len() < MAX_LIST {
            types.push(u16::from_be_bytes([*t0, *t1]));
        }
        bytes = &rest[len..];
    }
    Some(types)
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
        if !is_grease(group) && groups.len() < MAX_LIST {
            groups.push(group);
        }
        rest = &tail[len..];
    }
    Some(groups)
}

/// A name from the wire as text; invalid UTF-8 is replaced, not trusted, and the length capped.
pub fn name_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_NAME_LEN)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn extension_framing_errors_are_caught() {
        assert_eq!(extension_types(&[0, 0, 0, 0, 0, 16, 0, 1, 9]), Some(vec![0, 16]));
        assert_eq!(extension_types(&[0, 0, 0, 5, 1]), None);
        assert_eq!(extension_types(&[0, 0, 0]), None);
    }
}
