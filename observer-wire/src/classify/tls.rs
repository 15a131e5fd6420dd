//! The verdict on a TLS leg from the handshake facts, evidence strongest first (docs/CLASSIFICATION.md):
//! the TLS 1.2 client Certificate, the TLS 1.3 client flight size, PSK or session resumption,
//! and only when those cannot decide, Istio's ALPN.

use std::borrow::Cow;

use super::{Classification, ClientCert, Evidence, Input, Progress, Protocol, Security, TlsDetails, UnknownReason};
use crate::dissect::{
    Parse,
    tls::{
        self, Handshake, HelloBytes, Stage, TLS13, TlsError,
        certificate::Identity,
        client_auth::{ClientAuth, Flight13},
        client_hello::{ClientHello, HelloView, name_string},
        ja4::{ja4, ja4_of},
        server_hello::{ServerHello, ServerHellos},
    },
};

/// Classify the TLS handshake that starts at these offsets of each direction (0 unless an
/// in-protocol upgrade preceded it).
pub fn classify(
    input: &Input<'_>,
    client_offset: usize,
    server_offset: usize,
    starttls: Option<Protocol>,
    server_hellos: &mut ServerHellos,
) -> Progress {
    let client = input.client.get(client_offset..).unwrap_or_default();
    let server = input.server.get(server_offset..).unwrap_or_default();
    let protocol = starttls.unwrap_or(Protocol::Tls);
    let bare = |reason| {
        Progress::Done(Classification {
            security: Security::Unknown,
            protocol,
            reason: Some(reason),
            tls: Some(Box::new(TlsDetails { starttls, ..Default::default() })),
        })
    };
    match tls::dissect(client, server, server_hellos) {
        Err(_) => bare(UnknownReason::Malformed),
        Ok(Parse::NotThis) if starttls.is_some() => bare(UnknownReason::Malformed),
        Ok(Parse::NotThis) => Progress::Done(Classification::unknown(UnknownReason::UnrecognisedProtocol)),
        Ok(Parse::Incomplete) if input.client_final() => match tls::partial_client_hello(client) {
            // Cut inside the ClientHello: what arrived is reported, never guessed past.
            Some(hello) => {
                let mut details = partial_details(&hello);
                details.starttls = starttls;
                Progress::Done(Classification {
                    security: Security::Unknown,
                    protocol,
                    reason: Some(input.client_short()),
                    tls: Some(Box::new(details)),
                })
            }
            None => bare(input.client_short()),
        },
        Ok(Parse::Incomplete) => Progress::NeedMore,
        Ok(Parse::Parsed(mut handshake)) => decide(input, &mut handshake, starttls),
    }
}

fn decide(input: &Input<'_>, handshake: &mut Handshake<'_>, starttls: Option<Protocol>) -> Progress {
    let Some(decision) = decision(input, handshake) else {
        return Progress::NeedMore;
    };
    // The ClientHello is parsed, and the details (JA4 among them) built, for the final answer only.
    let Some(offer) = offer(handshake) else {
        return Progress::Done(Classification {
            security: Security::Unknown,
            protocol: starttls.unwrap_or(Protocol::Tls),
            reason: Some(UnknownReason::Malformed),
            tls: Some(Box::new(TlsDetails { starttls, ..Default::default() })),
        });
    };
    let Offer { istio, early_data, mut details } = offer;
    // Offered 0-RTT data that the server did not accept (no PSK) is sent before the client's
    // flight and looks like it: the flight sizes then prove nothing.
    let early_data_rejected = early_data && handshake.server_hello.seen().is_some_and(|sh| !sh.psk);
    details.starttls = starttls;
    let decision = match decision {
        Decision::Done(_, _, Evidence::Tls13FlightSize) if early_data_rejected => {
            Decision::Fallback(UnknownReason::Inconclusive)
        }
        other => other,
    };
    match decision {
        Decision::Done(security, cert, evidence) => done(details, security, cert, evidence),
        Decision::Certificate(identity) => {
            details.client_cert_subject = identity.subject;
            details.client_spiffe_id = identity.spiffe_id;
            done(details, Security::Mtls, ClientCert::Presented, Evidence::Tls12Certificate)
        }
        Decision::Fallback(reason) => fallback(details, istio, reason),
        Decision::NoServerHello(reason) => unanswered(details, reason),
        Decision::Broken(error) => broken(details, &error),
    }
}

/// What the handshake facts decide, before the details are assembled.
enum Decision {
    Done(Security, ClientCert, Evidence),
    /// TLS 1.2 client certificate (with its subject and SPIFFE ID when seen).
    Certificate(Identity),
    /// The strong evidence is missing for this reason.
    Fallback(UnknownReason),
    /// The server stream ended, for this reason, before a ServerHello.
    NoServerHello(UnknownReason),
    Broken(TlsError),
}

/// `None` while more bytes could decide. A client certificate's identity is taken out of the
/// handshake facts: the answer is then final.
fn decision(input: &Input<'_>, handshake: &mut Handshake<'_>) -> Option<Decision> {
    let server_hello = match &handshake.server_hello {
        Stage::Seen(sh) => sh,
        // No ServerHello: the server never continued this handshake, so no client evidence
        // (Istio's ALPN included) can make it mutual TLS.
        Stage::Pending if input.server_final() => {
            return Some(Decision::NoServerHello(input.server_short()));
        }
        Stage::Pending => return None,
        Stage::Broken(e) => return Some(Decision::Broken(e.clone())),
    };
    if server_hello.version() >= TLS13 && server_hello.psk {
        return Some(Decision::Done(Security::Tls, ClientCert::Resumed, Evidence::PskResumption));
    }
    let auth = match &mut handshake.client_auth {
        Stage::Seen(auth) => auth,
        Stage::Pending if input.client_final() => {
            return Some(Decision::Fallback(input.client_short()));
        }
        Stage::Pending => return None,
        Stage::Broken(e) => return Some(Decision::Broken(e.clone())),
    };
    Some(match auth {
        // The chain is known to be non-empty; wait for the leaf if its subject can still arrive.
        ClientAuth::Tls12Certificate(cert) if !cert.leaf_whole() && !input.client_final() => {
            return None;
        }
        ClientAuth::Tls12Certificate(cert) => Decision::Certificate(cert.leaf.take().unwrap_or_default()),
        ClientAuth::Tls12EmptyCertificate => {
            Decision::Done(Security::Tls, ClientCert::RequestedNotPresented, Evidence::Tls12CertificateRequest)
        }
        ClientAuth::Tls12NoCertificate => {
            Decision::Done(Security::Tls, ClientCert::NotRequested, Evidence::Tls12ClientKeyExchange)
        }
        ClientAuth::Tls12Abbreviated => Decision::Done(Security::Tls, ClientCert::Resumed, Evidence::SessionResumption),
        ClientAuth::Tls13(Flight13::FinishedOnly) => {
            Decision::Done(Security::Tls, ClientCert::NotRequested, Evidence::Tls13FlightSize)
        }
        ClientAuth::Tls13(Flight13::EmptyCertificate) => {
            Decision::Done(Security::Tls, ClientCert::RequestedNotPresented, Evidence::Tls13FlightSize)
        }
        ClientAuth::Tls13(Flight13::CertificateChain { .. }) => {
            Decision::Done(Security::Mtls, ClientCert::Presented, Evidence::Tls13FlightSize)
        }
        ClientAuth::Tls13(Flight13::Undecidable) => Decision::Fallback(UnknownReason::Inconclusive),
    })
}

fn done(mut details: Box<TlsDetails>, security: Security, cert: ClientCert, evidence: Evidence) -> Progress {
    details.client_cert = Some(cert);
    details.evidence = Some(evidence);
    Progress::Done(Classification { security, protocol: protocol(&details), reason: None, tls: Some(details) })
}

/// The strong evidence is missing for `reason`: Istio's ALPN still says mTLS (ISTIO_MUTUAL is
/// only completed with a client certificate); otherwise the leg is unknown, with what was seen.
fn fallback(mut details: Box<TlsDetails>, istio: bool, reason: UnknownReason) -> Progress {
    let (security, cert, evidence) = if istio {
        (Security::Mtls, ClientCert::Presented, Evidence::IstioAlpn)
    } else {
        (Security::Unknown, ClientCert::Unknown, Evidence::ClientHello)
    };
    details.client_cert = Some(cert);
    details.evidence = Some(evidence);
    Progress::Done(Classification { security, protocol: protocol(&details), reason: Some(reason), tls: Some(details) })
}

/// A ClientHello the server never answered with a ServerHello: unknown, whatever it offered.
fn unanswered(mut details: Box<TlsDetails>, reason: UnknownReason) -> Progress {
    details.client_cert = Some(ClientCert::Unknown);
    details.evidence = Some(Evidence::ClientHello);
    Progress::Done(Classification {
        security: Security::Unknown,
        protocol: protocol(&details),
        reason: Some(reason),
        tls: Some(details),
    })
}

fn broken(details: Box<TlsDetails>, error: &TlsError) -> Progress {
    let reason = match error {
        TlsError::Alert => UnknownReason::HandshakeFailed,
        _ => UnknownReason::Malformed,
    };
    // What the client offered is all there is, as for a ClientHello left unanswered.
    unanswered(details, reason)
}

/// The protocol of a TLS leg: the application protocol that upgraded to TLS in-band
/// (`postgres`, `smtp`, ...), else `tls`.
fn protocol(details: &TlsDetails) -> Protocol {
    details.starttls.unwrap_or(Protocol::Tls)
}

/// The TLS details a ClientHello cut short shows: no fingerprint (its lists may be cut).
fn partial_details(hello: &ClientHello) -> TlsDetails {
    TlsDetails {
        version: version_name(hello.highest_version()),
        sni: hello.sni.clone(),
        alpn_offered: hello.alpn.clone(),
        key_share_groups: hello.key_share_groups.iter().map(|g| group_name(*g)).collect(),
        duplicate_extensions: hello.duplicate_extensions.clone(),
        client_cert: Some(ClientCert::Unknown),
        evidence: Some(Evidence::ClientHello),
        ..Default::default()
    }
}

/// What the first ClientHello offered: the facts the decision reads, and the TLS details the
/// hellos show.
struct Offer {
    /// An Istio ALPN is offered.
    istio: bool,
    /// 0-RTT early data is offered.
    early_data: bool,
    details: Box<TlsDetails>,
}

/// The offer of the handshake's first ClientHello; `None` if it is malformed.
fn offer(handshake: &Handshake<'_>) -> Option<Offer> {
    Some(match &handshake.client_hello {
        HelloBytes::Message(bytes) => {
            let hello = HelloView::parse(bytes)?;
            Offer {
                istio: hello.alpn().any(|p| p.starts_with(b"istio")),
                early_data: hello.offers_early_data,
                details: details_of(handshake, hello),
            }
        }
        HelloBytes::Sslv2(hello) => {
            let hello = ClientHello::clone(hello);
            Offer {
                istio: hello.alpn.iter().any(|p| p.starts_with("istio")),
                early_data: hello.offers_early_data,
                details: details(handshake, hello),
            }
        }
    })
}

/// The details the ServerHello shows. Boxed from the start: the details are large and are
/// moved until they are part of the answer.
fn server_details(handshake: &Handshake<'_>, client_version: u16) -> Box<TlsDetails> {
    let server = handshake.server_hello.seen();
    Box::new(TlsDetails {
        version: version_name(server.map_or(client_version, ServerHello::version)),
        alpn_selected: server.and_then(|s| s.alpn.clone()),
        cipher: server.map(|s| cipher_name(s.cipher)),
        hello_retry: handshake.hello_retry,
        ..Default::default()
    })
}

/// The TLS details the hellos show; the hello's lists move into them.
fn details(handshake: &Handshake<'_>, hello: ClientHello) -> Box<TlsDetails> {
    let mut details = server_details(handshake, hello.highest_version());
    details.ja4 = (!hello.sslv2).then(|| ja4(&hello));
    details.key_share_groups = hello.key_share_groups.iter().map(|g| group_name(*g)).collect();
    details.sni = hello.sni;
    details.alpn_offered = hello.alpn;
    details.duplicate_extensions = hello.duplicate_extensions;
    details
}

/// The TLS details the hellos show, from a ClientHello read in place: the same as [`details`]
/// of its owned reading, without its intermediate lists.
fn details_of(handshake: &Handshake<'_>, hello: HelloView<'_>) -> Box<TlsDetails> {
    let mut details = server_details(handshake, hello.highest_version());
    details.ja4 = Some(ja4_of(&hello));
    details.key_share_groups = hello.key_share_groups().map(group_name).collect();
    details.sni = hello.sni().map(name_string);
    details.alpn_offered = hello.alpn().map(name_string).collect();
    details.duplicate_extensions = hello.duplicate_extensions;
    details
}

/// "1.3", "1.2", ...: the spelling of the JSON contract.
pub fn version_name(version: u16) -> Option<Cow<'static, str>> {
    Some(Cow::Borrowed(match version {
        0x0304 => "1.3",
        0x0303 => "1.2",
        0x0302 => "1.1",
        0x0301 => "1.0",
        0x0300 => "ssl3",
        0x0002 => "ssl2",
        _ => return None,
    }))
}

/// IANA name of a cipher suite, or its number.
pub fn cipher_name(id: u16) -> Cow<'static, str> {
    tls_parser::TlsCipherSuite::from_id(id).map_or_else(|| Cow::Owned(format!("0x{id:04x}")), |s| Cow::Borrowed(s.name))
}

/// IANA name of a named group (key exchange), or its number.
pub fn group_name(id: u16) -> Cow<'static, str> {
    Cow::Borrowed(match id {
        0x0017 => "secp256r1",
        0x0018 => "secp384r1",
        0x0019 => "secp521r1",
        0x001d => "x25519",
        0x001e => "x448",
        0x0100 => "ffdhe2048",
        0x0101 => "ffdhe3072",
        0x0102 => "ffdhe4096",
        0x11eb => "SecP256r1MLKEM768",
        0x11ec => "X25519MLKEM768",
        0x11ed => "SecP384r1MLKEM1024",
        0x6399 => "X25519Kyber768Draft00",
        other => return Cow::Owned(format!("0x{other:04x}")),
    })
}
