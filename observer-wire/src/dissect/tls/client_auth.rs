//! Client authentication from the client's second flight.
//!
//! TLS 1.2 sends it in cleartext: a Certificate message (type 11) comes first exactly when the
//! server asked for one, empty if the client had none. TLS 1.3 encrypts it, but the sizes of the
//! client's encrypted records before its Finished tell (docs/CLASSIFICATION.md): Finished alone is
//! `4 + hash + 1 + tag` bytes of ciphertext (53 for SHA-256 suites, 69 for SHA-384); an empty
//! Certificate adds 8 bytes of message (25 as a record of its own); a certificate chain adds
//! hundreds. OpenSSL sends each message in its own record, BoringSSL packs them into one, so the
//! inference sums bytes rather than counting records.

use super::certificate::ClientCertificate;
use crate::dissect::Parse;

/// A record of at least this many ciphertext bytes before the Finished holds a certificate
/// chain: the smallest real leaf certificate (ECDSA P-256, short names) is over 300 bytes DER,
/// and nothing else the client sends before Finished (an empty Certificate, a CertificateVerify
/// without a Certificate) comes near it.
pub const MIN_CHAIN_RECORD: usize = 200;

/// Most encrypted records looked at for the Finished; a flight is at most three records.
pub const MAX_FLIGHT_RECORDS: usize = 8;

/// Bytes of a TLS 1.3 empty Certificate message: header 4, context length 1, list length 3.
const EMPTY_CERTIFICATE_MESSAGE: usize = 8;

/// Ciphertext sizes of the TLS 1.3 client messages that matter, for one cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlightSizes {
    /// A record holding only the Finished.
    pub finished: usize,
    /// A record holding only an empty Certificate.
    pub empty_certificate: usize,
}

impl FlightSizes {
    /// Sizes for a TLS 1.3 cipher suite; `None` for a suite this inference does not know.
    pub fn for_cipher(cipher: u16) -> Option<Self> {
        let (hash, tag) = match cipher {
            0x1301 | 0x1303 | 0x1304 => (32, 16), // AES-128-GCM, ChaCha20-Poly1305, AES-128-CCM
            0x1302 => (48, 16),                   // AES-256-GCM with SHA-384
            0x1305 => (32, 8),                    // AES-128-CCM-8
            _ => return None,
        };
        // Message header 4 + verify_data, one byte of inner content type, the AEAD tag.
        Some(Self { finished: 4 + hash + 1 + tag, empty_certificate: EMPTY_CERTIFICATE_MESSAGE + 1 + tag })
    }
}

/// What the TLS 1.3 client flight sizes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flight13 {
    /// The first encrypted record is the Finished: no Certificate, so none was requested.
    FinishedOnly,
    /// An empty Certificate before the Finished: requested, not presented.
    EmptyCertificate,
    /// A certificate chain: `bytes` of ciphertext before the Finished (or in the packed record).
    CertificateChain { bytes: usize },
    /// Sizes that fit none of the above (record padding, an unknown stack): no guess.
    Undecidable,
}

/// Infer from the ciphertext lengths of the client's encrypted records after its last
/// ClientHello. `Incomplete` while more records could decide.
pub fn infer_tls13(lengths: &[usize], sizes: FlightSizes) -> Parse<Flight13> {
    let fin = sizes.finished;
    let Some(&first) = lengths.first() else {
        return Parse::Incomplete;
    };
    if first == fin {
        return Parse::Parsed(Flight13::FinishedOnly);
    }
    if first == fin + EMPTY_CERTIFICATE_MESSAGE {
        return Parse::Parsed(Flight13::EmptyCertificate); // packed empty Certificate + Finished
    }
    if first >= MIN_CHAIN_RECORD {
        return Parse::Parsed(Flight13::CertificateChain { bytes: first });
    }
    let window = &lengths[..lengths.len().min(MAX_FLIGHT_RECORDS)];
    match window.iter().position(|&len| len == fin) {
        Some(at) => {
            let before: usize = window[..at].iter().sum();
            Parse::Parsed(if at == 1 && first == sizes.empty_certificate {
                Flight13::EmptyCertificate
            } else if before >= MIN_CHAIN_RECORD {
                Flight13::CertificateChain { bytes: before }
            } else {
                Flight13::Undecidable
            })
        }
        None if window.len() == MAX_FLIGHT_RECORDS => Parse::Parsed(Flight13::Undecidable),
        None => Parse::Incomplete,
    }
}

/// What the client's second flight says about client authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// TLS 1.2: a Certificate message with a non-empty chain.
    Tls12Certificate(ClientCertificate),
    /// TLS 1.2: an empty Certificate message: requested, not presented.
    Tls12EmptyCertificate,
    /// TLS 1.2: ClientKeyExchange without a Certificate before it: not requested.
    Tls12NoCertificate,
    /// TLS 1.2: ChangeCipherSpec right after the ClientHello: an abbreviated (resumed) handshake.
    Tls12Abbreviated,
    /// TLS 1.3: what the encrypted flight sizes say.
    Tls13(Flight13),
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: FlightSizes = FlightSizes { finished: 53, empty_certificate: 25 };

    #[test]
    fn finished_alone_means_no_certificate_was_requested() {
        assert_eq!(infer_tls13(&[53, 40], SHA256), Parse::Parsed(Flight13::FinishedOnly));
        let sha384 = FlightSizes::for_cipher(0x1302).expect("known suite");
        assert_eq!(sha384.finished, 69);
        assert_eq!(infer_tls13(&[69], sha384), Parse::Parsed(Flight13::FinishedOnly));
    }

    #[test]
    fn an_empty_certificate_is_seen_separate_or_packed() {
        assert_eq!(infer_tls13(&[25], SHA256), Parse::Incomplete);
        assert_eq!(infer_tls13(&[25, 53], SHA256), Parse::Parsed(Flight13::EmptyCertificate));
        assert_eq!(infer_tls13(&[61], SHA256), Parse::Parsed(Flight13::EmptyCertificate));
    }

    #[test]
    fn a_chain_is_hundreds_of_bytes_before_the_finished() {
        assert_eq!(infer_tls13(&[1200, 280, 53], SHA256), Parse::Parsed(Flight13::CertificateChain { bytes: 1200 }));
        assert_eq!(infer_tls13(&[150, 90, 53], SHA256), Parse::Parsed(Flight13::CertificateChain { bytes: 240 }));
    }

    #[test]
    fn sizes_that_fit_nothing_are_undecidable_not_guessed() {
        assert_eq!(infer_tls13(&[40, 53], SHA256), Parse::Parsed(Flight13::Undecidable));
        assert_eq!(infer_tls13(&[40], SHA256), Parse::Incomplete);
        assert_eq!(infer_tls13(&[], SHA256), Parse::Incomplete);
        assert_eq!(infer_tls13(&[30; 8], SHA256), Parse::Parsed(Flight13::Undecidable));
    }
}
