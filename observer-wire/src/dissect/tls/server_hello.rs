//! The ServerHello (and HelloRetryRequest, a ServerHello with a fixed random): the chosen
//! version, cipher suite and ALPN, and whether a pre-shared key resumed a session.

mod fields;

use super::{
    TlsError,
    client_hello::{ext, name_string},
    handshake::Message,
};

/// The `random` of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3).
pub const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What a ServerHello chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    /// From supported_versions (TLS 1.3).
    pub selected_version: Option<u16>,
    pub cipher: u16,
    /// ALPN in the ServerHello (TLS 1.2; TLS 1.3 sends it encrypted).
    pub alpn: Option<String>,
    /// pre_shared_key accepted: a resumed (or external-PSK) session, no certificates.
    pub psk: bool,
    /// This is a HelloRetryRequest.
    pub hello_retry: bool,
    /// The key share group chosen (or asked for, in a HelloRetryRequest).
    pub key_share_group: Option<u16>,
}

impl ServerHello {
    /// The negotiated version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }

    /// Parse a whole ServerHello handshake message.
    ///
    /// Read by hand, accepting and rejecting what tls-parser's `parse_tls_message_handshake`
    /// does and reading the extensions it would read (the tests compare the two on every cut
    /// and every one-byte change of the fixtures' ServerHellos): its vector of extensions cost
    /// more than the rest of reading the server's flight.
    pub fn parse(message: &Message<'_>) -> Result<Self, TlsError> {
        let fields = fields::fixed_fields(message.bytes).ok_or(TlsError::Malformed { kind: message.kind })?;
        let mut hello = ServerHello {
            legacy_version: fields.legacy_version,
            cipher: fields.cipher,
            hello_retry: fields.random == HELLO_RETRY_RANDOM,
            ..Default::default()
        };
        // As in tls-parser, the extensions are read up to the first it does not accept.
        for (kind, body) in fields::accepted_extensions(fields.extensions.unwrap_or_default()) {
            match kind {
                ext::SUPPORTED_VERSIONS => {
                    hello.selected_version = fields::first_version(body);
                }
                ext::ALPN => {
                    hello.alpn = fields::first_protocol(body).map(name_string);
                }
                ext::PRE_SHARED_KEY => hello.psk = true,
                ext::KEY_SHARE => {
                    if let [g0, g1, ..] = body {
                        hello.key_share_group = Some(u16::from_be_bytes([*g0, *g1]));
                    }
                }
                _ => {}
            }
        }
        Ok(hello)
    }
}

/// Longest ServerHello message kept by [`ServerHellos`]: a hybrid post-quantum key share makes
/// one over 1 KiB; a longer one is parsed again on every call instead of being copied.
pub const MAX_KEPT_SERVER_HELLO: usize = 2048;

/// The ServerHellos already parsed on one leg (the HelloRetryRequest and the ServerHello), kept
/// with their bytes: a leg is dissected again as each segment arrives, and the server's first
/// message does not change once it is whole. A kept answer is used only for the very same
/// bytes, so whatever bytes it is given, the answer is the one a fresh parse gives.
#[derive(Clone, Debug)]
pub struct ServerHellos {
    /// At most [`KEPT_SERVER_HELLOS`]; empty (no allocation) on legs that are not TLS.
    kept: Vec<Kept>,
    /// Whether to keep anything (not for a single classification).
    keep: bool,
}

impl Default for ServerHellos {
    fn default() -> Self {
        Self { kept: Vec::new(), keep: true }
    }
}

/// A ServerHello message's bytes and what parsing them gave.
type Kept = (Box<[u8]>, Result<ServerHello, TlsError>);

/// A handshake has a ServerHello, after a HelloRetryRequest two.
const KEPT_SERVER_HELLOS: usize = 2;

impl ServerHellos {
    /// For one classification only: nothing is kept.
    pub fn none() -> Self {
        Self { kept: Vec::new(), keep: false }
    }

    /// [`ServerHello::parse`] of `message`, from what is kept if these bytes were parsed before.
    pub fn parse(&mut self, message: &Message<'_>) -> Result<ServerHello, TlsError> {
        if let Some((_, parsed)) = self.kept.iter().find(|(bytes, _)| **bytes == *message.bytes) {
            return parsed.clone();
        }
        let parsed = ServerHello::parse(message);
        if self.keep && message.bytes.len() <= MAX_KEPT_SERVER_HELLO {
            // A third ServerHello (only hostile bytes have one) replaces the second.
            self.kept.truncate(KEPT_SERVER_HELLOS - 1);
            self.kept.push((message.bytes.into(), parsed.clone()));
        }
        parsed
    }
}

#[cfg(test)]
mod tests;
