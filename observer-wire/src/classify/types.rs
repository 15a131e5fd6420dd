//! The values a classification is made of. Their serde names are the JSON contract (docs/OUTPUT.md).

use std::borrow::Cow;

use serde::Serialize;

pub use crate::dissect::Protocol;

/// The security of a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    Plaintext,
    Tls,
    /// TLS with a client certificate sent.
    Mtls,
    /// Not decided; `Classification::reason` says why.
    Unknown,
}

/// Whether the client authenticated with a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCert {
    Presented,
    RequestedNotPresented,
    NotRequested,
    /// PSK resumption: no certificate is exchanged, whatever the first handshake did.
    Resumed,
    Unknown,
}

/// What established the security verdict (strongest first, docs/CLASSIFICATION.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Evidence {
    /// TLS 1.2: a client Certificate message in cleartext.
    Tls12Certificate,
    /// TLS 1.2: a CertificateRequest seen (and what the client answered).
    Tls12CertificateRequest,
    /// TLS 1.3: the size of the client's encrypted flight.
    Tls13FlightSize,
    /// An Istio ALPN in the ClientHello (ISTIO_MUTUAL).
    IstioAlpn,
    /// PSK resumption in the ServerHello.
    PskResumption,
    /// A ClientHello (and possibly ServerHello) without client authentication evidence.
    ClientHello,
    /// A recognised plaintext protocol.
    PlaintextProtocol,
    /// TLS 1.2: ClientKeyExchange with no Certificate before it (none was requested).
    Tls12ClientKeyExchange,
    /// TLS 1.2: an abbreviated handshake (session id or ticket resumption): no certificates.
    SessionResumption,
}

/// Why a leg is `unknown` (or why part of it could not be seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UnknownReason {
    /// No payload was seen in either direction.
    NoData,
    /// The stream ended (or was cut by a gap) inside a message.
    Truncated,
    /// Bytes that claim a known protocol but break its rules.
    Malformed,
    /// The sampling budget was spent before the bytes decided.
    BudgetExhausted,
    /// Bytes of no protocol the observer knows.
    UnrecognisedProtocol,
    /// A capture gap (lost or unseen segments) before the deciding bytes.
    CaptureGap,
    /// The observer stopped before the connection decided.
    ObserverStopped,
    /// The capture file ended before the connection decided (replay).
    CaptureEnded,
    /// The bytes were all there but fit no answer (e.g. TLS 1.3 flight sizes of an unknown
    /// stack, record padding): no guess is made.
    Inconclusive,
    /// The handshake failed (an alert instead of the next handshake message).
    HandshakeFailed,
    /// Bytes came but did not decide within the handshake timeout after the open (a
    /// ClientHello sent a byte at a time, or never finished).
    HandshakeTimeout,
}

impl UnknownReason {
    /// The reason's name in the JSON contract.
    pub fn name(self) -> &'static str {
        match self {
            Self::NoData => "no_data",
            Self::Truncated => "truncated",
            Self::Malformed => "malformed",
            Self::BudgetExhausted => "budget_exhausted",
            Self::UnrecognisedProtocol => "unrecognised_protocol",
            Self::CaptureGap => "capture_gap",
            Self::ObserverStopped => "observer_stopped",
            Self::CaptureEnded => "capture_ended",
            Self::Inconclusive => "inconclusive",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
        }
    }
}

/// TLS details of a leg. Names from static tables (version, cipher suite, key share groups)
/// are borrowed from them: the answer allocates only for what the wire said (SNI, ALPN, JA4,
/// the certificate's names) and for numbers without a name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TlsDetails {
    /// Negotiated version ("1.2", "1.3") if the ServerHello was seen, else the highest offered.
    pub version: Option<Cow<'static, str>>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    pub alpn_selected: Option<String>,
    /// IANA name of the chosen cipher suite (`0x....` for a number without one).
    pub cipher: Option<Cow<'static, str>>,
    pub ja4: Option<String>,
    pub client_cert: Option<ClientCert>,
    pub evidence: Option<Evidence>,
    /// The in-protocol upgrade that preceded TLS (`postgres`, `mysql`, `smtp`, `imap`), if any;
    /// the leg's `protocol` is then that application protocol.
    pub starttls: Option<Protocol>,
    /// Subject of the client certificate, when sent in cleartext (TLS 1.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert_subject: Option<String>,
    /// SPIFFE URI SAN of the client certificate, when sent in cleartext (TLS 1.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_spiffe_id: Option<String>,
    /// Groups of the key shares the client sent (`X25519MLKEM768`, `x25519`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_share_groups: Vec<Cow<'static, str>>,
    /// The server answered the first ClientHello with a HelloRetryRequest.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hello_retry: bool,
    /// Extension types the ClientHello sent more than once (RFC 8446 forbids it; a server may
    /// read the other copy): the SNI and ALPN reported are the first copies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicate_extensions: Vec<u16>,
}

/// The classification of one leg.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    pub security: Security,
    pub protocol: Protocol,
    /// Set when `security` is `unknown`, or when something limited what could be seen.
    pub reason: Option<UnknownReason>,
    /// Present for TLS and mTLS legs (and unknown legs that began a TLS handshake).
    /// Boxed: a leg is moved through the tracker and into its record several times, and most
    /// legs on a busy node are not TLS.
    pub tls: Option<Box<TlsDetails>>,
}

impl Classification {
    /// An undecided leg.
    pub fn unknown(reason: UnknownReason) -> Self {
        Self { security: Security::Unknown, protocol: Protocol::Unknown, reason: Some(reason), tls: None }
    }
}
