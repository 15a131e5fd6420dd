//! Parsers of handshake samples: TLS (record layer, hellos, client authentication) and the
//! plaintext protocols the observer recognises (with their in-protocol upgrades to TLS).
//!
//! Every parser takes untrusted bytes and answers explicitly with [`Parse`]: more bytes needed,
//! not this protocol, or what it found; broken bytes that claim a protocol are an error of that
//! protocol's domain. Nothing here panics on any input, allocates without a cap, or does I/O.
//! The decisions built on these facts live in [`crate::classify`].

pub mod plaintext;
pub mod tls;

/// What a parser made of the bytes it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// The bytes so far are a valid beginning of the protocol: more are needed to decide.
    Incomplete,
    /// The bytes are not this protocol.
    NotThis,
    /// The bytes are this protocol; here is what they say.
    Parsed(T),
}

/// The application protocol (for TLS legs: `tls`, whatever runs inside).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge (h2c), gRPC included.
    Http2,
    Postgres,
    Mysql,
    Redis,
    Smtp,
    Imap,
    Tls,
    Unknown,
}
