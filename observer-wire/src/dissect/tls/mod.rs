//! TLS handshake dissection: the ClientHello and ServerHello (HelloRetryRequest included), the
//! TLS 1.2 CertificateRequest, and the client's second flight, from the first bytes of each
//! direction. [`dissect`] returns facts; [`crate::classify`] turns them into a verdict.

pub mod certificate;
pub mod client_auth;
pub mod client_hello;
pub mod handshake;
pub mod ja4;
pub mod records;
pub mod server_hello;
pub mod small_list;
pub mod sslv2;
#[cfg(test)]
mod test_streams;

use std::borrow::Cow;

use client_auth::{ClientAuth, FlightSizes, infer_tls13};
use client_hello::ClientHello;
use handshake::{Message, Messages, kind};
use records::{Record, Records, Tail, content};
use server_hello::{ServerHello, ServerHellos};

use super::Parse;

/// TLS 1.3 on the wire.
pub const TLS13: u16 = 0x0304;

/// Why TLS bytes could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Where a record header should be, the bytes are not one.
    #[error("no TLS record header at offset {offset} (content type {content_type})")]
    BadRecordHeader { offset: usize, content_type: u8 },
    /// A record header declares more bytes than TLS allows.
    #[error("record at offset {offset} declares {len} bytes, more than TLS allows")]
    RecordTooLong { offset: usize, len: usize },
    /// More records than a handshake has.
    #[error("more than {cap} records")]
    TooManyRecords { cap: usize },
    /// A handshake message declares more bytes than a handshake sample can hold.
    #[error("handshake message type {kind} declares {len} bytes")]
    HandshakeTooLong { kind: u8, len: usize },
    /// A whole handshake message that does not parse.
    #[error("handshake message type {kind} does not parse")]
    Malformed { kind: u8 },
    /// A handshake message out of order.
    #[error("expected {expected}, found handshake message type {found}")]
    UnexpectedMessage { expected: &'static str, found: u8 },
    /// A record of the wrong content type where a handshake record belongs.
    #[error("expected a handshake record, found content type {found}")]
    UnexpectedRecord { found: u8 },
    /// The peer sent an alert instead of continuing the handshake.
    #[error("alert instead of a handshake")]
    Alert,
    /// An SSLv2-compatible ClientHello with inconsistent lengths.
    #[error("malformed SSLv2-compatible ClientHello")]
    BadSslv2Hello,
}

/// How far one part of the handshake could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage<T> {
    /// Its bytes have not (all) arrived.
    Pending,
    Seen(T),
    /// Its bytes are there but broken.
    Broken(TlsError),
}

impl<T> Stage<T> {
    pub fn seen(&self) -> Option<&T> {
        match self {
            Stage::Seen(t) => Some(t),
            _ => None,
        }
    }
}

/// The first ClientHello, framed but not yet parsed: parsing it is most of the cost of a
/// classification, and only the final answer needs its contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelloBytes<'a> {
    /// The whole handshake message, header included.
    Message(Cow<'a, [u8]>),
    /// An SSLv2-compatible hello (parsed already: it is small and has no extensions). Boxed:
    /// it is rare, and the handshake facts are moved on every call.
    Sslv2(Box<ClientHello>),
}

impl HelloBytes<'_> {
    /// Parse the ClientHello.
    pub fn parse(&self) -> Result<ClientHello, TlsError> {
        match self {
            HelloBytes::Message(bytes) => ClientHello::parse(&Message { kind: kind::CLIENT_HELLO, bytes }),
            HelloBytes::Sslv2(hello) => Ok(ClientHello::clone(hello)),
        }
    }
}

/// What the handshake bytes show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// The first ClientHello (the one a fingerprint describes).
    pub client_hello: HelloBytes<'a>,
    /// The ServerHello that settled the handshake (after a HelloRetryRequest, the second).
    pub server_hello: Stage<ServerHello>,
    /// The server sent a HelloRetryRequest.
    pub hello_retry: bool,
    /// TLS 1.2: the server's cleartext flight holds a CertificateRequest.
    pub certificate_request: bool,
    /// The client's second flight, once the version is known.
    pub client_auth: Stage<ClientAuth>,
}

/// GREASE values (RFC 8701): 0x?a?a with both bytes equal.
pub fn is_grease(value: u16) -> bool {
    value & 0x0f0f == 0x0a0a && value >> 8 == value & 0xff
}

/// Whether `bytes` can be the start of a TLS client stream (a handshake record or an SSLv2 hello).
pub fn looks_like_client(bytes: &[u8]) -> bool {
    bytes.first() == Some(&content::HANDSHAKE) && records::plausible_header(&bytes[..bytes.len().min(3)])
        || sslv2::looks_like(bytes)
}

/// What a client stream that ends inside its first ClientHello says: the fields and whole
/// extensions that arrived (SNI and ALPN among them). `None` if even those are not there.
pub fn partial_client_hello(client: &[u8]) -> Option<ClientHello> {
    if sslv2::looks_like(client) {
        return None;
    }
    let scanned = records::scan(client);
    let (joined, _) = handshake::join(&scanned.records, 0);
    let messages = handshake::split(&joined).ok()?;
    match (messages.whole.first(), messages.partial) {
        (None, Some(partial)) if partial.kind == kind::CLIENT_HELLO => ClientHello::parse_partial(partial.body),
        _ => None,
    }
}

/// Dissect a TLS handshake from the first bytes of each direction.
///
/// `NotThis` if the client bytes do not start a TLS handshake, `Incomplete` until the first
/// ClientHello is whole, an error if it is broken; otherwise what both directions show so far.
/// `kept`: the ServerHellos parsed by earlier calls on the same leg (empty on the first).
pub fn dissect<'a>(client: &'a [u8], server: &[u8], kept: &mut ServerHellos) -> Result<Parse<Handshake<'a>>, TlsError> {
    if !looks_like_client(client) {
        return Ok(if client.is_empty() { Parse::Incomplete } else { Parse::NotThis });
    }
    // The client's records, and its first run of handshake records joined (once: the TLS 1.2
    // client flight reads the same run). Filled in place: the lists are not moved.
    let mut client_records = Records::default();
    let v2 = sslv2::looks_like(client);
    let (mut spill, mut messages) = (Vec::new(), Messages::default());
    let (hello, split, next) = if v2 {
        let Some((hello, len)) = sslv2::parse(client)? else {
            return Ok(Parse::Incomplete);
        };
        records::scan_into(&client[len..], &mut client_records);
        let split = handshake::split_run(&client_records.records, 0, &mut spill, &mut messages);
        let next = handshake::join_end(&client_records.records, 0);
        (HelloBytes::Sslv2(Box::new(hello)), split.err(), next)
    } else {
        records::scan_into(client, &mut client_records);
        let run = handshake::split_run(&client_records.records, 0, &mut spill, &mut messages)?;
        let Some(first) = messages.whole.first() else {
            return match client_records.tail {
                Tail::Invalid(e) => Err(e),
                _ => Ok(Parse::Incomplete),
            };
        };
        if first.kind != kind::CLIENT_HELLO {
            return Err(TlsError::UnexpectedMessage { expected: "ClientHello", found: first.kind });
        }
        // Borrowed from the client's bytes when it is in its record (the first with a body).
        let record = client_records.records.iter().find(|r| !r.body.is_empty());
        let bytes = match record.and_then(|r| r.body.get(..first.bytes.len())) {
            Some(bytes) if run.borrowed > 0 => Cow::Borrowed(bytes),
            _ => Cow::Owned(first.bytes.to_vec()),
        };
        (HelloBytes::Message(bytes), None, run.next)
    };

    let server = read_server(server, kept);
    let mut handshake = Handshake {
        client_hello: hello,
        hello_retry: server.hello_retry,
        certificate_request: server.certificate_request,
        server_hello: server.hello,
        client_auth: Stage::Pending,
    };
    if let Stage::Seen(sh) = &handshake.server_hello {
        handshake.client_auth = if sh.version() >= TLS13 {
            client_flight_tls13(&client_records.records, handshake.hello_retry, sh.cipher)
        } else {
            client_flight_tls12(&client_records.records, split.map_or(Ok(&messages), Err), next, usize::from(!v2))
        };
    }
    Ok(Parse::Parsed(handshake))
}

struct ServerSide {
    hello: Stage<ServerHello>,
    hello_retry: bool,
    certificate_request: bool,
}

/// The server's ServerHello (after a HelloRetryRequest, the second one) and TLS 1.2 extras.
fn read_server(bytes: &[u8], kept: &mut ServerHellos) -> ServerSide {
    let mut side = ServerSide { hello: Stage::Pending, hello_retry: false, certificate_request: false };
    let mut scanned = Records::default();
    records::scan_into(bytes, &mut scanned);
    let (mut spill, mut messages) = (Vec::new(), Messages::default());
    let next = match handshake::split_run(&scanned.records, 0, &mut spill, &mut messages) {
        Ok(run) => run.next,
        Err(e) => {
            side.hello = Stage::Broken(e);
            return side;
        }
    };
    let Some(first) = messages.whole.first() else {
        side.hello = match (scanned.records.first(), scanned.tail) {
            (Some(r), _) if r.content_type == content::ALERT => Stage::Broken(TlsError::Alert),
            (Some(r), _) if r.content_type != content::HANDSHAKE => {
                Stage::Broken(TlsError::UnexpectedRecord { found: r.content_type })
            }
            (_, Tail::Invalid(e)) => Stage::Broken(e),
            _ => Stage::Pending,
        };
        return side;
    };
    let mut hello = match server_hello(first, kept) {
        Ok(h) => h,
        Err(e) => {
            side.hello = Stage::Broken(e);
            return side;
        }
    };
    let mut rest = &messages.whole[1..];
    if hello.hello_retry {
        side.hello_retry = true;
        // The second ServerHello: in the same run, or after a ChangeCipherSpec (compat mode).
        let second = match rest.first() {
            Some(m) => Some(server_hello(m, kept)),
            None => server_hello_after_ccs(&scanned.records, next, kept),
        };
        hello = match second {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                side.hello = Stage::Broken(e);
                return side;
            }
            None => return side,
        };
        rest = &[];
    }
    side.certificate_request = hello.version() < TLS13
        && (rest.iter().any(|m| m.kind == kind::CERTIFICATE_REQUEST)
            || messages.partial.is_some_and(|p| p.kind == kind::CERTIFICATE_REQUEST));
    side.hello = Stage::Seen(hello);
    side
}

/// After a HelloRetryRequest, the second ServerHello in the run of records after a
/// ChangeCipherSpec from `records[next..]` (`None` until it is whole). Kept out of line: only
/// legs with a retry come here, and the path every handshake takes stays as small as it was.
#[inline(never)]
fn server_hello_after_ccs(
    records: &[Record<'_>],
    next: usize,
    kept: &mut ServerHellos,
) -> Option<Result<ServerHello, TlsError>> {
    let (joined, _) = handshake::join(records, skip_ccs(records, next));
    match handshake::outline(&joined) {
        Ok(m) => m.first.map(|m| server_hello(&m, kept)),
        Err(e) => Some(Err(e)),
    }
}

fn server_hello(message: &Message<'_>, kept: &mut ServerHellos) -> Result<ServerHello, TlsError> {
    if message.kind != kind::SERVER_HELLO {
        return Err(TlsError::UnexpectedMessage { expected: "ServerHello", found: message.kind });
    }
    kept.parse(message)
}

fn skip_ccs(records: &[Record<'_>], mut at: usize) -> usize {
    while records.get(at).is_some_and(|r| r.content_type == content::CHANGE_CIPHER_SPEC) {
        at += 1;
    }
    at
}

/// TLS 1.2 and older: the first client message after the ClientHello (`skip` messages);
/// `messages`, `next`: the client's first run of handshake records ([`handshake::split_run`]).
fn client_flight_tls12(
    records: &[Record<'_>],
    messages: Result<&Messages<'_>, TlsError>,
    next: usize,
    skip: usize,
) -> Stage<ClientAuth> {
    let messages = match messages {
        Ok(messages) => messages,
        Err(e) => return Stage::Broken(e),
    };
    let (kind, body) = match (messages.whole.get(skip), messages.partial) {
        (Some(m), _) => (m.kind, m.body()),
        (None, Some(p)) if messages.whole.len() >= skip => (p.kind, p.body),
        (None, _) => {
            return match records.get(next) {
                Some(r) if r.content_type == content::CHANGE_CIPHER_SPEC && messages.whole.len() >= skip => {
                    Stage::Seen(ClientAuth::Tls12Abbreviated)
                }
                Some(r) if r.content_type == content::ALERT => Stage::Broken(TlsError::Alert),
                Some(r) => Stage::Broken(TlsError::UnexpectedRecord { found: r.content_type }),
                None => Stage::Pending,
            };
        }
    };
    match kind {
        kind::CERTIFICATE => match certificate::read(body) {
            None => Stage::Pending,
            Some(cert) if cert.chain_len == 0 => Stage::Seen(ClientAuth::Tls12EmptyCertificate),
            Some(cert) => Stage::Seen(ClientAuth::Tls12Certificate(cert)),
        },
        kind::CLIENT_KEY_EXCHANGE => Stage::Seen(ClientAuth::Tls12NoCertificate),
        found => Stage::Broken(TlsError::UnexpectedMessage { expected: "Certificate or ClientKeyExchange", found }),
    }
}

/// After a HelloRetryRequest, the index of the record after the second ClientHello: in the
/// same run of records as the first (no compatibility ChangeCipherSpec), or after the
/// ChangeCipherSpec. It must be whole; else the stage to answer. Out of line, as
/// [`server_hello_after_ccs`].
#[inline(never)]
fn after_second_client_hello(records: &[Record<'_>]) -> Result<usize, Stage<ClientAuth>> {
    let (joined, mut at) = handshake::join(records, 0);
    let first_run = handshake::outline(&joined).map_err(Stage::Broken)?;
    if first_run.partial {
        return Err(Stage::Pending);
    }
    if first_run.whole < 2 {
        at = skip_ccs(records, at);
        let (joined, next) = handshake::join(records, at);
        match handshake::outline(&joined).map_err(Stage::Broken)? {
            m if m.whole > 0 && !m.partial => at = next,
            _ => return Err(Stage::Pending),
        }
    }
    Ok(at)
}

/// TLS 1.3: the encrypted records after the last cleartext ClientHello.
fn client_flight_tls13(records: &[Record<'_>], hello_retry: bool, cipher: u16) -> Stage<ClientAuth> {
    let mut at = if hello_retry {
        match after_second_client_hello(records) {
            Ok(at) => at,
            Err(stage) => return stage,
        }
    } else {
        handshake::join_end(records, 0)
    };
    at = skip_ccs(records, at);
    // The inference looks at the first `MAX_FLIGHT_RECORDS` records only.
    let mut window = [0usize; client_auth::MAX_FLIGHT_RECORDS];
    let mut n = 0;
    for (slot, r) in window
        .iter_mut()
        .zip(records.get(at..).unwrap_or_default().iter().take_while(|r| r.content_type == content::APPLICATION_DATA))
    {
        *slot = r.len;
        n += 1;
    }
    let lengths = &window[..n];
    if lengths.is_empty()
        && let Some(r) = records.get(at)
    {
        return Stage::Broken(if r.content_type == content::ALERT {
            TlsError::Alert
        } else {
            TlsError::UnexpectedRecord { found: r.content_type }
        });
    }
    let Some(sizes) = FlightSizes::for_cipher(cipher) else {
        return Stage::Seen(ClientAuth::Tls13(client_auth::Flight13::Undecidable));
    };
    match infer_tls13(lengths, sizes) {
        Parse::Parsed(flight) => Stage::Seen(ClientAuth::Tls13(flight)),
        Parse::Incomplete | Parse::NotThis => Stage::Pending,
    }
}
