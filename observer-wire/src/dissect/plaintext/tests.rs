use super::*;

fn protocol(client: &[u8], server: &[u8]) -> Parse<Plain> {
    detect(client, server)
}

#[test]
fn http1_needs_a_whole_request_line() {
    assert_eq!(protocol(b"GE", b""), Parse::Incomplete);
    assert_eq!(protocol(b"GET /index.html", b""), Parse::Incomplete);
    assert_eq!(protocol(b"GET / HTTP/1.1\r", b""), Parse::Incomplete);
    assert_eq!(protocol(b"GET /\x00", b""), Parse::NotThis);
    assert_eq!(protocol(b"GET / HTTP/1.1\r\nHost: a\r\n", b""), Parse::Parsed(Plain::Protocol(Protocol::Http1)));
    assert_eq!(protocol(b"GET / SPDY/3\r\n", b""), Parse::NotThis);
}

#[test]
fn the_http2_preface_is_h2c_and_grpc() {
    assert_eq!(protocol(&HTTP2_PREFACE[..10], b""), Parse::Incomplete);
    assert_eq!(protocol(HTTP2_PREFACE, b""), Parse::Parsed(Plain::Protocol(Protocol::Http2)));
}

#[test]
fn postgres_ssl_request_upgrades_only_when_accepted() {
    let ssl_request = [0, 0, 0, 8, 4, 210, 22, 47];
    assert_eq!(protocol(&ssl_request, b""), Parse::Incomplete);
    assert_eq!(
        protocol(&ssl_request, b"S"),
        Parse::Parsed(Plain::Upgrade(Upgrade { protocol: Protocol::Postgres, client_offset: 8, server_offset: 1 }))
    );
    assert_eq!(protocol(&ssl_request, b"N"), Parse::Parsed(Plain::Protocol(Protocol::Postgres)));
    let startup = [0, 0, 0, 41, 0, 3, 0, 0, b'u', b's', b'e', b'r', 0];
    assert_eq!(protocol(&startup, b""), Parse::Parsed(Plain::Protocol(Protocol::Postgres)));
}

#[test]
fn redis_is_a_resp_array_of_bulk_strings() {
    assert_eq!(protocol(b"*1\r\n$4\r\nPING\r\n", b""), Parse::Parsed(Plain::Protocol(Protocol::Redis)));
    assert_eq!(protocol(b"*1\r", b""), Parse::Incomplete);
    assert_eq!(protocol(b"*x", b""), Parse::NotThis);
}

fn mysql_greeting() -> Vec<u8> {
    let mut payload = vec![10];
    payload.extend(b"8.0.36\0");
    payload.extend([1, 0, 0, 0]); // connection id
    payload.extend([0x41; 8]); // auth data part 1
    payload.push(0);
    payload.extend([0xff, 0xff, 0x21, 0x02, 0x00, 0xff, 0xc7]);
    payload.extend([0; 11]);
    let mut packet = vec![payload.len() as u8, 0, 0, 0];
    packet.extend(payload);
    packet
}

#[test]
fn mysql_ssl_request_upgrades_and_a_login_stays_plaintext() {
    let greeting = mysql_greeting();
    assert_eq!(protocol(b"", &greeting[..10]), Parse::Incomplete);
    assert_eq!(protocol(b"", &greeting), Parse::Incomplete);
    let mut ssl_request = vec![32, 0, 0, 1, 0x00, 0x0a, 0x00, 0x00];
    ssl_request.extend([0; 28]);
    assert_eq!(
        protocol(&ssl_request, &greeting),
        Parse::Parsed(Plain::Upgrade(Upgrade {
            protocol: Protocol::Mysql,
            client_offset: 36,
            server_offset: greeting.len()
        }))
    );
    let login = [60, 0, 0, 1, 0x05, 0xa6, 0x0f, 0x00, 0, 0, 0, 1];
    assert_eq!(protocol(&login, &greeting), Parse::Parsed(Plain::Protocol(Protocol::Mysql)));
}

#[test]
fn smtp_starttls_finds_where_tls_begins_in_both_directions() {
    let server = b"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 2.0.0 Ready\r\n\x16\x03\x03";
    let client = b"EHLO me\r\nSTARTTLS\r\n\x16\x03\x01";
    let Parse::Parsed(Plain::Upgrade(up)) = protocol(client, server) else {
        panic!("expected an upgrade");
    };
    assert_eq!(&client[up.client_offset..], b"\x16\x03\x01");
    assert_eq!(&server[up.server_offset..], b"\x16\x03\x03");
    assert_eq!(protocol(b"EHLO me\r\n", b"220 mx\r\n250 ok\r\n"), Parse::Incomplete);
    assert_eq!(
        protocol(b"EHLO me\r\nMAIL FROM:<a@b>\r\n", b"220 mx\r\n250 ok\r\n"),
        Parse::Parsed(Plain::Protocol(Protocol::Smtp))
    );
    assert_eq!(protocol(b"USER ftp\r\n", b"220 ftp\r\n"), Parse::NotThis);
}

#[test]
fn unknown_bytes_are_not_any_protocol() {
    assert_eq!(protocol(b"SSH-2.0-OpenSSH_9.2\r\n", b""), Parse::NotThis);
    assert_eq!(protocol(&[0xde, 0xad, 0xbe, 0xef], b""), Parse::NotThis);
}

#[test]
fn imap_starttls_finds_where_tls_begins_and_login_is_plaintext() {
    let server = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n\
        * CAPABILITY IMAP4rev1 STARTTLS\r\n. OK done\r\n. OK Begin TLS\r\n\x16\x03\x03";
    let client = b". CAPABILITY\r\n. STARTTLS\r\n\x16\x03\x01";
    let Parse::Parsed(Plain::Upgrade(up)) = protocol(client, server) else {
        panic!("expected an upgrade");
    };
    assert_eq!(up.protocol, Protocol::Imap);
    assert_eq!(&client[up.client_offset..], b"\x16\x03\x01");
    // The first tagged `. OK` answers CAPABILITY, not STARTTLS: only the reply after it counts.
    assert_eq!(&server[up.server_offset..], b"\x16\x03\x03");
    assert_eq!(protocol(b". CAPABILITY\r\n", b"* OK ready\r\n"), Parse::Incomplete);
    assert_eq!(protocol(b"a1 LOGIN user pass\r\n", b"* OK ready\r\n"), Parse::Parsed(Plain::Protocol(Protocol::Imap)));
}
