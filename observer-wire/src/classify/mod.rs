//! What a connection leg is: plaintext, TLS or mutual TLS, the protocol, the TLS details, and the
//! evidence for the verdict (docs/CLASSIFICATION.md). Pure: bytes in, a [`Classification`] out.
//!
//! The entry point is [`classify`]: it is called again each time more bytes of a leg arrive, and
//! answers [`Progress::NeedMore`] until the bytes decide the question (or can never decide it).
//! The parsers it relies on live in [`crate::dissect`]; the decisions are made here.

mod tls;
mod types;

pub use types::*;

use crate::dissect::{
    Parse,
    plaintext::{self, Plain},
    tls::server_hello::ServerHellos,
};
pub use crate::stream::StreamEnd;

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

impl Input<'_> {
    /// No more client bytes will come.
    fn client_final(&self) -> bool {
        self.client_end != StreamEnd::Open
    }

    /// No more server bytes will come.
    fn server_final(&self) -> bool {
        self.server_end != StreamEnd::Open
    }

    /// Why the client stream stopped before the bytes decided.
    fn client_short(&self) -> UnknownReason {
        short_reason(self.client_end, self.client_gap)
    }

    /// Why the server stream stopped before the bytes decided.
    fn server_short(&self) -> UnknownReason {
        short_reason(self.server_end, self.server_gap)
    }
}

fn short_reason(end: StreamEnd, gap: bool) -> UnknownReason {
    if gap {
        UnknownReason::CaptureGap
    } else if end == StreamEnd::BudgetSpent {
        UnknownReason::BudgetExhausted
    } else {
        UnknownReason::Truncated
    }
}

/// The answer of [`classify`].
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The bytes so far do not decide; call again with more.
    NeedMore,
    /// Final: more bytes would not change the answer.
    Done(Classification),
}

/// Classify a leg from its sampled bytes.
///
/// When both ends are no longer [`StreamEnd::Open`] the answer is always `Done`, with
/// `Security::Unknown` and a reason if the bytes did not decide. A leg classified again as its
/// bytes arrive is better served by a [`Classifier`], which gives the same answers.
pub fn classify(input: &Input<'_>) -> Progress {
    classify_with(input, &mut ServerHellos::none())
}

/// The classification of one leg, called again each time more of its bytes arrive (the way the
/// tracker calls it, once per segment). What earlier calls parsed and cannot change is kept:
/// the ServerHello is parsed once, when its message is whole, not again for every segment of
/// the client's flight after it. A kept result is used only for the very bytes it was made
/// from, so every answer is the one [`classify`] gives for the same input.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    server_hellos: ServerHellos,
}

impl Classifier {
    /// Classify the leg from its sampled bytes so far (see [`classify`]).
    pub fn classify(&mut self, input: &Input<'_>) -> Progress {
        classify_with(input, &mut self.server_hellos)
    }
}

fn classify_with(input: &Input<'_>, server_hellos: &mut ServerHellos) -> Progress {
    let ended = input.client_final() && input.server_final();
    if input.client.is_empty() && input.server.is_empty() {
        return if ended { Progress::Done(Classification::unknown(UnknownReason::NoData)) } else { Progress::NeedMore };
    }
    if crate::dissect::tls::looks_like_client(input.client) {
        return tls::classify(input, 0, 0, None, server_hellos);
    }
    match plaintext::detect(input.client, input.server) {
        Parse::Parsed(Plain::Protocol(protocol)) => {
            Progress::Done(Classification { security: Security::Plaintext, protocol, reason: None, tls: None })
        }
        Parse::Parsed(Plain::Upgrade(upgrade)) => {
            tls::classify(input, upgrade.client_offset, upgrade.server_offset, Some(upgrade.protocol), server_hellos)
        }
        Parse::Incomplete if ended => {
            // The client's bytes decide a plaintext protocol unless it sent none or all of them.
            let client_cut = input.client_gap || input.client_end == StreamEnd::BudgetSpent;
            let reason =
                if input.client.is_empty() || client_cut { input.client_short() } else { input.server_short() };
            Progress::Done(Classification::unknown(reason))
        }
        Parse::Incomplete => Progress::NeedMore,
        // A server that speaks first in no known protocol: the client may still say more only
        // if it has said nothing; what it says then is not a TLS or known handshake either.
        Parse::NotThis if input.client.is_empty() && !input.client_final() => Progress::NeedMore,
        Parse::NotThis => Progress::Done(Classification::unknown(UnknownReason::UnrecognisedProtocol)),
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
