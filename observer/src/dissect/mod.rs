//! Protocol dissection of handshake samples (TLS and plaintext protocols).
//!
//! Placeholder until the dissector lands: recognises a TLS handshake record or plaintext bytes
//! without looking inside.

use crate::classify::{Classification, Input, Progress, Protocol, Security, StreamEnd, UnknownReason};

pub fn classify(input: &Input<'_>) -> Progress {
    let ended = input.client_end != StreamEnd::Open && input.server_end != StreamEnd::Open;
    match input.client.first() {
        None if ended => Progress::Done(Classification::unknown(UnknownReason::NoData)),
        None => Progress::NeedMore,
        Some(0x16) => Progress::Done(Classification {
            security: Security::Tls,
            protocol: Protocol::Tls,
            reason: None,
            tls: Some(Default::default()),
        }),
        Some(_) => Progress::Done(Classification {
            security: Security::Plaintext,
            protocol: Protocol::Unknown,
            reason: None,
            tls: None,
        }),
    }
}
