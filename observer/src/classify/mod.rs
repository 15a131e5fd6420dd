//! What a connection leg is: plaintext, TLS or mutual TLS, the protocol, the TLS details, and the
//! evidence for the verdict (DESIGN §5). Pure: bytes in, a [`Classification`] out.
//!
//! The entry point is [`classify`]: it is called again each time more bytes of a leg arrive, and
//! answers [`Progress::NeedMore`] until the bytes decide the question (or can never decide it).

mod types;

pub use types::*;

/// How a direction's byte stream ended, as far as the sampler knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StreamEnd {
    /// More bytes may still come.
    #[default]
    Open,
    /// The connection closed: nothing more will come.
    Closed,
    /// The sampling budget for this direction is spent: later bytes exist but were not captured.
    BudgetSpent,
}

/// The sampled bytes of both directions of one leg, as contiguous prefixes from the first payload byte.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    /// Client to server.
    pub client: &'a [u8],
    /// Server to client.
    pub server: &'a [u8],
    pub client_end: StreamEnd,
    pub server_end: StreamEnd,
    /// A hole in the client stream follows `client` (bytes after it were seen, some before them not).
    pub client_gap: bool,
    /// A hole in the server stream follows `server`.
    pub server_gap: bool,
}

/// The answer of [`classify`].
#[expect(clippy::large_enum_variant, reason = "Done is the usual answer; boxing it would allocate per call")]
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The bytes so far do not decide; call again with more.
    NeedMore,
    /// Final: more bytes would not change the answer.
    Done(Classification),
}

/// Classify a leg from its sampled bytes.
///
/// When both ends are no longer [`StreamEnd::Open`] (or a gap stops the stream) the answer is
/// always `Done`, with `Security::Unknown` and a reason if the bytes did not decide.
pub fn classify(input: &Input<'_>) -> Progress {
    crate::dissect::classify(input)
}
