//! Plaintext protocols recognised from the first bytes of a leg, and the in-protocol upgrades
//! (PostgreSQL SSLRequest, MySQL SSL capability, SMTP STARTTLS) after which TLS begins.
//!
//! Each detector looks at both directions and answers [`Parse`]: `Incomplete` while the bytes
//! are a valid beginning of its protocol, `NotThis` as soon as they cannot be.

use super::{Parse, Protocol};

/// Longest HTTP/1 request line or SMTP line looked at: a request line longer than this is not
/// worth waiting for (servers reject them at 8 KiB).
pub const MAX_LINE: usize = 8 * 1024;
/// Most SMTP commands followed before STARTTLS (EHLO, and a few a client might send first).
pub const MAX_SMTP_COMMANDS: usize = 8;

/// What the plaintext bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plain {
    /// The protocol runs in plaintext.
    Protocol(Protocol),
    /// The protocol upgraded to TLS: the TLS handshake starts at these offsets.
    Upgrade(Upgrade),
}

/// Where TLS starts after an in-protocol upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub protocol: Protocol,
    pub client_offset: usize,
    pub server_offset: usize,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4); gRPC sends it too.
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const HTTP1_METHODS: &[&[u8]] =
    &[b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"CONNECT ", b"TRACE "];

/// PostgreSQL startup codes (protocol 3.0, SSLRequest, GSSENCRequest, CancelRequest).
mod pg {
    pub const PROTOCOL_3: u32 = 196_608;
    pub const SSL_REQUEST: u32 = 80_877_103;
    pub const GSSENC_REQUEST: u32 = 80_877_104;
    pub const CANCEL_REQUEST: u32 = 80_877_102;
    /// Longest startup packet PostgreSQL accepts (MAX_STARTUP_PACKET_LENGTH).
    pub const MAX_STARTUP: u32 = 10_000;
}

/// MySQL CLIENT_SSL capability flag.
const MYSQL_CLIENT_SSL: u32 = 0x0800;
/// The body of a MySQL SSLRequest: capabilities 4, max packet 4, charset 1, filler 23.
const MYSQL_SSL_REQUEST_LEN: usize = 32;

/// A detector of one protocol, from the first bytes of (client, server).
type Detector = fn(&[u8], &[u8]) -> Parse<Plain>;

/// Detect the plaintext protocol of a leg from the first bytes of each direction, or the upgrade
/// to TLS it makes. `Incomplete` while the bytes could still become a known protocol: whether
/// a direction can still grow is the caller's to know (`classify` turns a final `Incomplete`
/// into `unknown` with a reason).
pub fn detect(client: &[u8], server: &[u8]) -> Parse<Plain> {
    // In this order; the first that recognises its protocol answers, and the later ones (SMTP
    // and IMAP read every line of both directions) are not run. This runs again for every
    // segment of an upgraded leg's TLS handshake.
    let detectors: [Detector; 7] =
        [|client, _| http2(client), |client, _| http1(client), postgres, |client, _| redis(client), mysql, smtp, imap];
    let mut incomplete = false;
    for detector in detectors {
        match detector(client, server) {
            Parse::Parsed(p) => return Parse::Parsed(p),
            Parse::Incomplete => incomplete = true,
            Parse::NotThis => {}
        }
    }
    if incomplete { Parse::Incomplete } else { Parse::NotThis }
}

/// `bytes` starts with `prefix`, could still, or cannot.
fn prefix(bytes: &[u8], prefix: &[u8]) -> Parse<()> {
    // Most candidates differ in the first byte: answer without the slice comparison.
    if let (Some(a), Some(b)) = (bytes.first(), prefix.first())
        && a != b
    {
        return Parse::NotThis;
    }
    let n = bytes.len().min(prefix.len());
    if bytes[..n] != prefix[..n] {
        Parse::NotThis
    } else if n < prefix.len() {
        Parse::Incomplete
    } else {
        Parse::Parsed(())
    }
}

fn http2(client: &[u8]) -> Parse<Plain> {
    match prefix(client, HTTP2_PREFACE) {
        Parse::Parsed(()) => Parse::Parsed(Plain::Protocol(Protocol::Http2)),
        Parse::Incomplete if !client.is_empty() => Parse::Incomplete,
        _ => Parse::NotThis,
    }
}

/// A known method, a target, and ` HTTP/1.x` at the end of the first line.
fn http1(client: &[u8]) -> Parse<Plain> {
    if client.is_empty() {
        return Parse::NotThis;
    }
    let mut any = false;
    for method in HTTP1_METHODS {
        match prefix(client, method) {
            Parse::Parsed(()) => {
                any = true;
                break;
            }
            Parse::Incomplete => return Parse::Incomplete,
            Parse::NotThis => {}
        }
    }
    if !any {
        return Parse::NotThis;
    }
    let window = &client[..client.len().min(MAX_LINE)];
    match crlf(window) {
        Some(end) => {
            let line = &window[..end];
            let version = line.rsplit(|b| *b == b' ').next().unwrap_or_default();
            if version.starts_with(b"HTTP/1.") {
                Parse::Parsed(Plain::Protocol(Protocol::Http1))
            } else {
                Parse::NotThis
            }
        }
        None if client.len() >= MAX_LINE => Parse::NotThis,
        // Only printable bytes can precede the CRLF (a lone trailing CR is its first half).
        None if window.strip_suffix(b"\r").unwrap_or(window).iter().any(|b| !(0x20..0x7f).contains(b)) => {
            Parse::NotThis
        }
        None => Parse::Incomplete,
    }
}

/// Where the first `\r\n` starts.
fn crlf(bytes: &[u8]) -> Option<usize> {
    let mut from = 1;
    while let Some(at) = bytes.get(from..)?.iter().position(|b| *b == b'\n') {
        let lf = from + at;
        if bytes[lf - 1] == b'\r' {
            return Some(lf - 1);
        }
        from = lf + 1;
    }
    None
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A startup packet (length, code); SSLRequest answered `S` upgrades, `N` continues in plaintext.
fn postgres(client: &[u8], server: &[u8]) -> Parse<Plain> {
    if client.len() < 8 {
        // Length prefix: SSLRequest and startup packets are short, so the top bytes are zero.
        return match client {
            [] => Parse::NotThis,
            [0, ..] if client.len() < 2 || client[1] == 0 => Parse::Incomplete,
            _ => Parse::NotThis,
        };
    }
    let (Some(len), Some(code)) = (be_u32(client, 0), be_u32(client, 4)) else {
        return Parse::NotThis;
    };
    match code {
        pg::SSL_REQUEST | pg::GSSENC_REQUEST if len == 8 => match server.first() {
            None => Parse::Incomplete,
            Some(b'S') if code == pg::SSL_REQUEST => Parse::Parsed(Plain::Upgrade(Upgrade {
                protocol: Protocol::Postgres,
                client_offset: 8,
                server_offset: 1,
            })),
            // Refused: the client goes on with a plaintext startup packet.
            Some(b'N') => Parse::Parsed(Plain::Protocol(Protocol::Postgres)),
            // `G` (GSSAPI encryption) is neither plaintext nor TLS; an error message is a refusal.
            Some(b'E') => Parse::Parsed(Plain::Protocol(Protocol::Postgres)),
            Some(_) => Parse::NotThis,
        },
        pg::PROTOCOL_3 if (9..=pg::MAX_STARTUP).contains(&len) => Parse::Parsed(Plain::Protocol(Protocol::Postgres)),
        pg::CANCEL_REQUEST if len == 16 => Parse::Parsed(Plain::Protocol(Protocol::Postgres)),
        _ => Parse::NotThis,
    }
}

/// A RESP array of bulk strings: `*<n>\r\n$<len>\r\n`.
fn redis(client: &[u8]) -> Parse<Plain> {
    let mut state = 0; // 0: '*', 1: digits, 2: '\n', 3: '$', 4: digits, 5: '\n'
    let mut digits = 0;
    for &b in client.iter().take(32) {
        state = match (state, b) {
            (0, b'*') | (3, b'$') => {
                digits = 0;
                state + 1
            }
            (1 | 4, b'0'..=b'9') if digits < 10 => {
                digits += 1;
                state
            }
            (1 | 4, b'\r') if digits > 0 => state + 1,
            (2, b'\n') => 3,
            (5, b'\n') => return Parse::Parsed(Plain::Protocol(Protocol::Redis)),
            _ => return Parse::NotThis,
        };
    }
    if client.is_empty() || client.len() >= 32 { Parse::NotThis } else { Parse::Incomplete }
}

/// The server greeting (protocol 10), then the client's reply: an SSLRequest upgrades.
fn mysql(client: &[u8], server: &[u8]) -> Parse<Plain> {
    let [l0, l1, l2, seq, rest @ ..] = server else {
        return match server {
            [] => Parse::NotThis,
            [_, _, 0, ..] | [_, _] | [_] => Parse::Incomplete,
            _ => Parse::NotThis,
        };
    };
    let greeting_len = usize::from(*l0) | usize::from(*l1) << 8 | usize::from(*l2) << 16;
    if *seq != 0 || !(16..=1024).contains(&greeting_len) || rest.first().is_some_and(|p| *p != 10) {
        return Parse::NotThis;
    }
    let Some(greeting) = rest.get(..greeting_len) else {
        return Parse::Incomplete;
    };
    // Protocol 10, a NUL-terminated printable version string.
    let version = &greeting[1..];
    match version.iter().position(|b| *b == 0) {
        Some(n) if n > 0 && version[..n].iter().all(|b| (0x20..0x7f).contains(b)) => {}
        _ => return Parse::NotThis,
    }
    let [c0, c1, c2, cseq, body @ ..] = client else {
        return Parse::Incomplete;
    };
    let reply_len = usize::from(*c0) | usize::from(*c1) << 8 | usize::from(*c2) << 16;
    if *cseq != 1 {
        return Parse::NotThis;
    }
    let Some(flags) = body.get(..4) else {
        return Parse::Incomplete;
    };
    let capabilities = u32::from_le_bytes([flags[0], flags[1], flags[2], flags[3]]);
    if capabilities & MYSQL_CLIENT_SSL != 0 && reply_len == MYSQL_SSL_REQUEST_LEN {
        Parse::Parsed(Plain::Upgrade(Upgrade {
            protocol: Protocol::Mysql,
            client_offset: 4 + MYSQL_SSL_REQUEST_LEN,
            server_offset: 4 + greeting_len,
        }))
    } else {
        Parse::Parsed(Plain::Protocol(Protocol::Mysql))
    }
}

/// Complete CRLF-terminated lines at the start of `bytes` (each with its end offset).
fn lines(bytes: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let window = &bytes[..bytes.len().min(MAX_LINE * MAX_SMTP_COMMANDS)];
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = &window[at..];
        let end = crlf(rest)?;
        let line = &rest[..end];
        at += end + 2;
        Some((line, at))
    })
}

/// The end offsets of complete SMTP replies (a reply ends with a `NNN ` line).
fn smtp_replies(server: &[u8]) -> Vec<(u16, usize)> {
    let mut replies = Vec::new();
    for (line, end) in lines(server) {
        match line {
            [a, b, c, sep, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                if *sep == b' ' {
                    let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                    replies.push((code, end));
                }
            }
            [a, b, c] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
                let code = u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                replies.push((code, end));
            }
            _ => break,
        }
        if replies.len() > MAX_SMTP_COMMANDS + 2 {
            break;
        }
    }
    replies
}

/// A `220` banner, `EHLO`/`HELO`, then either `STARTTLS` (answered `220`: TLS follows) or
/// anything else (plaintext SMTP).
fn smtp(client: &[u8], server: &[u8]) -> Parse<Plain> {
    match prefix(server, b"220") {
        Parse::NotThis => return Parse::NotThis,
        Parse::Incomplete if server.is_empty() => return Parse::NotThis,
        Parse::Incomplete => return Parse::Incomplete,
        Parse::Parsed(()) => {}
    }
    let mut commands = 0;
    for (line, end) in lines(client) {
        let upper = line.to_ascii_uppercase();
        if upper == b"STARTTLS" {
            // Banner, one reply per command before, then the reply to STARTTLS.
            let replies = smtp_replies(server);
            return match replies.get(commands + 1) {
                Some((220, server_end)) => Parse::Parsed(Plain::Upgrade(Upgrade {
                    protocol: Protocol::Smtp,
                    client_offset: end,
                    server_offset: *server_end,
                })),
                Some(_) => Parse::Parsed(Plain::Protocol(Protocol::Smtp)),
                None => Parse::Incomplete,
            };
        }
        if commands == 0 && !(upper.starts_with(b"EHLO") || upper.starts_with(b"HELO")) {
            return Parse::NotThis;
        }
        if commands > 0 && !upper.starts_with(b"EHLO") && !upper.starts_with(b"HELO") {
            return Parse::Parsed(Plain::Protocol(Protocol::Smtp));
        }
        commands += 1;
        if commands > MAX_SMTP_COMMANDS {
            return Parse::Parsed(Plain::Protocol(Protocol::Smtp));
        }
    }
    // Nothing decisive yet: a partial first command must still be able to become EHLO/HELO.
    let partial = client.get(..4.min(client.len())).unwrap_or_default().to_ascii_uppercase();
    if commands == 0 && !(b"EHLO".starts_with(&partial) || b"HELO".starts_with(&partial)) {
        return Parse::NotThis;
    }
    Parse::Incomplete
}

/// Most IMAP commands followed before STARTTLS (CAPABILITY, NOOP, ID).
const MAX_IMAP_COMMANDS: usize = 4;

/// A `* OK` (or `* PREAUTH`) greeting, then tagged commands: `STARTTLS` answered `<tag> OK`
/// upgrades; a command other than CAPABILITY, NOOP or ID first (LOGIN, AUTHENTICATE, ...) means
/// plaintext IMAP (RFC 9051 §6.2.1).
fn imap(client: &[u8], server: &[u8]) -> Parse<Plain> {
    let greeting = match (prefix(server, b"* OK"), prefix(server, b"* PREAUTH")) {
        (Parse::Parsed(()), _) | (_, Parse::Parsed(())) => true,
        (Parse::Incomplete, _) | (_, Parse::Incomplete) if !server.is_empty() => false,
        _ => return Parse::NotThis,
    };
    if !greeting {
        return Parse::Incomplete;
    }
    for (commands, (line, end)) in lines(client).enumerate() {
        let mut words = line.splitn(3, |b| *b == b' ');
        let (Some(tag), Some(command)) = (words.next(), words.next()) else {
            return Parse::NotThis;
        };
        let command = command.to_ascii_uppercase();
        if tag.is_empty() || !tag.iter().all(|b| b.is_ascii_graphic()) {
            return Parse::NotThis;
        }
        match command.as_slice() {
            b"STARTTLS" => {
                // The tagged reply to STARTTLS ends the server's plaintext: commands are not
                // pipelined before STARTTLS, so it is the tagged reply after one per command.
                let mut reply = tag.to_vec();
                reply.push(b' ');
                let mut tagged = lines(server).filter(|(l, _)| !l.starts_with(b"*") && !l.starts_with(b"+"));
                return match tagged.nth(commands) {
                    Some((l, server_end))
                        if l.starts_with(&reply) && l[reply.len()..].to_ascii_uppercase().starts_with(b"OK") =>
                    {
                        Parse::Parsed(Plain::Upgrade(Upgrade {
                            protocol: Protocol::Imap,
                            client_offset: end,
                            server_offset: server_end,
                        }))
                    }
                    Some(_) => Parse::Parsed(Plain::Protocol(Protocol::Imap)),
                    None => Parse::Incomplete,
                };
            }
            b"CAPABILITY" | b"NOOP" | b"ID" if commands < MAX_IMAP_COMMANDS => {}
            _ => return Parse::Parsed(Plain::Protocol(Protocol::Imap)),
        }
    }
    Parse::Incomplete
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod crlf_tests {
    #[test]
    fn the_first_crlf_is_found_as_a_pair_search_finds_it() {
        for bytes in [&b""[..], b"\n", b"\r", b"\r\n", b"a\nb\r\nc", b"\n\r\n", b"\r\r\n", b"abc", b"x\r", b"\n\n\r"] {
            assert_eq!(super::crlf(bytes), bytes.windows(2).position(|w| w == b"\r\n"), "{bytes:?}");
        }
    }
}
