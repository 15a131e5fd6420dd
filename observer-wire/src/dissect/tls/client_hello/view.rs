//! A ClientHello read in place: the fields and extension bodies it needs, as slices of the
//! message, checked but not copied into vectors. The final answer of a TLS leg is built from
//! it (JA4 walks its lists directly); [`super::ClientHello`] is the same reading made owned.
//!
//! Accepting and rejecting happen here only, so the tests that compare `ClientHello::parse`
//! with tls-parser on every cut and every one-byte change of real ClientHellos cover this too.

use tls_parser::parse_tls_client_hello_extension;

use super::{
    ClientHello, ext,
    extensions::{self, fixed_fields, u16s},
    name_string,
};
use crate::dissect::tls::is_grease;

/// A ClientHello's fields, borrowed from its message. Lists not sent are empty.
#[derive(Clone, Debug, Default)]
pub struct HelloView<'a> {
    pub legacy_version: u16,
    /// Cipher suite bytes, as sent (GREASE included).
    ciphers: &'a [u8],
    /// The whole extension frames, in the order sent.
    extensions: &'a [u8],
    /// host_name of server_name, raw.
    sni: Option<&'a [u8]>,
    /// The ALPN protocol name list.
    alpn: &'a [u8],
    /// supported_versions' version bytes (GREASE included).
    supported_versions: &'a [u8],
    /// supported_groups' group bytes (GREASE included).
    groups: &'a [u8],
    signature_algorithms: &'a [u8],
    /// key_share's entries, every one whole.
    key_shares: &'a [u8],
    pub offers_psk: bool,
    pub offers_early_data: bool,
    /// Extension types sent more than once, each listed once (empty, so unallocated, on real
    /// ClientHellos).
    pub duplicate_extensions: Vec<u16>,
}

impl<'a> HelloView<'a> {
    /// Read a whole ClientHello handshake message (header included); `None` if it is malformed.
    pub fn parse(message: &'a [u8]) -> Option<Self> {
        let fields = fixed_fields(message)?;
        let mut hello = HelloView { legacy_version: fields.legacy_version, ciphers: fields.ciphers, ..Self::default() };
        if let Some(ext_bytes) = fields.extensions {
            // Every frame must be whole: the block's length is the frames' lengths.
            if hello.read_extensions(ext_bytes)? != ext_bytes.len() {
                return None;
            }
        }
        Some(hello)
    }

    /// What the body of a ClientHello cut short holds (see `ClientHello::parse_partial`).
    pub fn partial(body: &'a [u8]) -> Option<Self> {
        let mut hello =
            HelloView { legacy_version: u16::from_be_bytes([*body.first()?, *body.get(1)?]), ..Self::default() };
        let session_len = usize::from(*body.get(34)?);
        let at = 35 + session_len;
        let cipher_len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
        hello.ciphers = body.get(at + 2..at + 2 + cipher_len)?;
        let at = at + 2 + cipher_len;
        let at = at + 1 + usize::from(*body.get(at)?);
        let Some(len) = body.get(at..at + 2) else {
            return Some(hello);
        };
        let declared = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let present = body.get(at + 2..).unwrap_or_default();
        hello.read_extensions(&present[..present.len().min(declared)])?;
        Some(hello)
    }

    /// Reads the whole extension frames at the start of `bytes` (stopping at the first one cut
    /// short) and returns their length; `None` if one is malformed. Of an extension sent twice,
    /// the first counts.
    fn read_extensions(&mut self, bytes: &'a [u8]) -> Option<usize> {
        // Types seen, by their low bits: the frames before are walked again only on a hit (a
        // repeat, or two types sharing low bits), not for every extension.
        let mut seen = [0u64; 16];
        let mut whole = 0;
        for (kind, frame) in Frames(bytes) {
            let (word, bit) = (usize::from(kind >> 6 & 0xf), 1u64 << (kind & 0x3f));
            let repeat = seen[word] & bit != 0 && Frames(&bytes[..whole]).any(|(k, _)| k == kind);
            seen[word] |= bit;
            whole += frame.len();
            if repeat {
                if !self.duplicate_extensions.contains(&kind) {
                    self.duplicate_extensions.push(kind);
                }
                continue;
            }
            // The frame is whole: its body follows the 4-byte header.
            let body = frame.get(4..).unwrap_or_default();
            match kind {
                ext::SERVER_NAME => self.sni = extensions::sni(body)?,
                ext::ALPN => self.alpn = extensions::alpn(body)?,
                ext::SUPPORTED_VERSIONS => self.supported_versions = extensions::supported_versions(body)?,
                ext::SUPPORTED_GROUPS => self.groups = extensions::supported_groups(body)?,
                ext::SIGNATURE_ALGORITHMS => self.signature_algorithms = extensions::signature_algorithms(body)?,
                ext::KEY_SHARE => self.key_shares = extensions::key_shares(body)?,
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
        self.extensions = &bytes[..whole];
        Some(whole)
    }

    /// Cipher suites as sent (GREASE included).
    pub fn ciphers(&self) -> impl Iterator<Item = u16> + Clone + use<'a> {
        u16s(self.ciphers)
    }

    /// Extension types in the order sent (GREASE and repeats included).
    pub fn extension_types(&self) -> impl Iterator<Item = u16> + Clone + use<'a> {
        Frames(self.extensions).map(|(kind, _)| kind)
    }

    pub fn signature_algorithms(&self) -> impl Iterator<Item = u16> + Clone + use<'a> {
        u16s(self.signature_algorithms)
    }

    /// supported_versions, GREASE removed.
    pub fn supported_versions(&self) -> impl Iterator<Item = u16> + Clone + use<'a> {
        u16s(self.supported_versions).filter(|v| !is_grease(*v))
    }

    /// The highest version offered (supported_versions, else legacy_version).
    pub fn highest_version(&self) -> u16 {
        self.supported_versions().max().unwrap_or(self.legacy_version)
    }

    /// The server name, raw (see [`name_string`]).
    pub fn sni(&self) -> Option<&'a [u8]> {
        self.sni
    }

    /// The ALPN names offered, raw, in order.
    pub fn alpn(&self) -> impl Iterator<Item = &'a [u8]> + Clone + use<'a> {
        extensions::alpn_names(self.alpn)
    }

    /// Groups of the key shares sent, GREASE removed.
    pub fn key_share_groups(&self) -> impl Iterator<Item = u16> + use<'a> {
        extensions::key_share_groups(self.key_shares).filter(|g| !is_grease(*g))
    }

    /// The same reading, owned.
    pub fn to_hello(&self) -> ClientHello {
        ClientHello {
            legacy_version: self.legacy_version,
            supported_versions: self.supported_versions().collect(),
            sni: self.sni.map(name_string),
            alpn: self.alpn().map(name_string).collect(),
            ciphers: self.ciphers().collect(),
            extensions: self.extension_types().collect(),
            signature_algorithms: self.signature_algorithms().collect(),
            groups: u16s(self.groups).filter(|g| !is_grease(*g)).collect(),
            key_share_groups: self.key_share_groups().collect(),
            offers_psk: self.offers_psk,
            offers_early_data: self.offers_early_data,
            sslv2: false,
            duplicate_extensions: self.duplicate_extensions.clone(),
        }
    }
}

/// The whole extension frames at the start of an extensions block: (type, frame with header).
#[derive(Clone)]
struct Frames<'a>(&'a [u8]);

impl<'a> Iterator for Frames<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let [t0, t1, l0, l1, tail @ ..] = self.0 else {
            return None;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if tail.len() < len {
            return None;
        }
        let (frame, rest) = self.0.split_at(4 + len);
        self.0 = rest;
        Some((u16::from_be_bytes([*t0, *t1]), frame))
    }
}
