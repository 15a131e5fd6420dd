//! A plain HTTP/1.1 GET over std, enough for the observer's own listener (`--from`) and the
//! Prometheus query API (`--prometheus`): one request per connection, `Connection: close`,
//! bounded response, timeouts on every step, chunked bodies (Go servers chunk large answers).

use std::{
    io::{Read as _, Write as _},
    net::{TcpStream, ToSocketAddrs as _},
    time::Duration,
};

/// Largest response read.
pub const MAX_RESPONSE: u64 = 256 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0:?} is not an http://HOST:PORT URL")]
    Url(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}: not an HTTP response")]
    Malformed(String),
    #[error("{0}: HTTP {1}: {2}")]
    Status(String, u16, String),
    #[error("{0}: the body is not the expected JSON: {1}")]
    Json(String, serde_json::Error),
    #[error("{0}: the response is larger than {1} bytes")]
    TooLarge(String, u64),
}

/// GET `path` (with its query) from `base` (`http://HOST:PORT`) and parse the JSON body.
pub fn get_json<T: serde::de::DeserializeOwned>(base: &str, path: &str) -> Result<T, HttpError> {
    let (url, status, body) = get(base, path, MAX_RESPONSE)?;
    if status != 200 {
        return Err(HttpError::Status(url, status, error_message(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| HttpError::Json(url, e))
}

/// The `error` of a JSON error body (the observer's and Prometheus's), else the start of the
/// body; escaped for printing.
pub fn error_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    crate::edges::render::escape(&message)
}

/// GET `path` from `base`, reading at most `max` bytes: the URL as shown in errors (without a
/// long query string), the status and the body (de-chunked).
pub fn get(base: &str, path: &str, max: u64) -> Result<(String, u16, Vec<u8>), HttpError> {
    let authority = base
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains(['/', '?', '#', '@', ' ']))
        .ok_or_else(|| HttpError::Url(base.to_owned()))?;
    // A long query (PromQL) would bury the message: errors name the path only.
    let shown = if path.len() > 120 { path.split('?').next().unwrap_or(path) } else { path };
    let url = format!("http://{authority}{shown}");
    let io = |e| HttpError::Io(url.clone(), e);
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = with_port.to_socket_addrs().map_err(io)?.next().ok_or_else(|| HttpError::Url(base.to_owned()))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    stream.take(max.saturating_add(1)).read_to_end(&mut response).map_err(io)?;
    if response.len() as u64 > max {
        return Err(HttpError::TooLarge(url, max));
    }
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| HttpError::Malformed(url.clone()))?;
    let head = String::from_utf8_lossy(&response[..split]);
    let mut body = &response[split + 4..];
    let mut chunked = false;
    let status: u16 = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/1."))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| HttpError::Malformed(url.clone()))?;
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length")
                && let Ok(len) = value.trim().parse::<usize>()
            {
                body = &body[..len.min(body.len())];
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                // Only chunked is understood; anything else (gzip, ...) is refused.
                if !value.trim().eq_ignore_ascii_case("chunked") {
                    return Err(HttpError::Malformed(url));
                }
                chunked = true;
            }
        }
    }
    let body = if chunked { dechunk(body).ok_or_else(|| HttpError::Malformed(url.clone()))? } else { body.to_vec() };
    Ok((url, status, body))
}

/// The payload of a chunked body (RFC 9112 7.1), or `None` when it is not well formed or ends
/// before its last chunk. Chunk extensions and trailers are skipped.
fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = line.split(';').next()?.trim();
        if size.is_empty() || size.len() > 15 {
            return None;
        }
        let size = usize::from_str_radix(size, 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        let chunk = body.get(..size)?;
        out.extend_from_slice(chunk);
        body = body.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read as _, net::TcpListener, sync::Mutex, thread};

    use super::*;
    use crate::edges::{EdgeTable, Snapshot, api};

    /// A loopback server answering each connection with `answer(request head)`.
    fn serve(answer: impl Fn(&str) -> String + Send + 'static, connections: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let Ok(mut stream) = stream else { continue };
                let mut head = [0u8; 4096];
                let n = stream.read(&mut head).unwrap_or(0);
                let _ = stream.write_all(answer(&String::from_utf8_lossy(&head[..n])).as_bytes());
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn reads_the_api_over_loopback_and_reports_its_errors() {
        let table = Mutex::new(EdgeTable::new(10));
        let base = serve(move |head| api::respond(head, &table).unwrap_or_default(), 3);
        let snapshot: Snapshot = get_json(&base, "/v1/edges?namespace=mesh").expect("edges");
        assert!(snapshot.edges.is_empty());
        assert_eq!(snapshot.stats.max_edges, 10);
        match get_json::<Snapshot>(&base, "/v1/edges?namespace=NO") {
            Err(HttpError::Status(_, 400, message)) => assert!(message.contains("namespace"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(get_json::<Snapshot>(&base, "/v1/nothing"), Err(HttpError::Status(_, 404, _))));
    }

    #[test]
    fn refuses_bad_urls_and_bad_responses() {
        for url in ["https://x:1", "http://", "http://a/b", "ftp://x", "http://u@h:1"] {
            assert!(matches!(get_json::<Snapshot>(url, "/v1/edges"), Err(HttpError::Url(_))), "{url}");
        }
        let base = serve(|_| "garbage".to_owned(), 1);
        assert!(matches!(get_json::<Snapshot>(&base, "/"), Err(HttpError::Malformed(_))));
        let base = serve(|_| "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n[1,2]".to_owned(), 1);
        assert!(matches!(get_json::<Snapshot>(&base, "/"), Err(HttpError::Json(..))));
        let base = serve(|_| "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx".to_owned(), 1);
        assert!(matches!(get_json::<Snapshot>(&base, "/"), Err(HttpError::Malformed(_))));
        let base = serve(|_| format!("HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n{}", "x".repeat(9000)), 1);
        assert!(matches!(get(&base, "/", 4096), Err(HttpError::TooLarge(_, 4096))));
    }

    #[test]
    fn chunked_bodies_are_joined_and_bad_ones_refused() {
        assert_eq!(dechunk(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n").as_deref(), Some(&b"Wikipedia"[..]));
        assert_eq!(dechunk(b"0\r\n\r\n").as_deref(), Some(&b""[..]));
        for bad in [
            &b"4\r\nWik"[..],
            b"4\r\nWiki\r\n",
            b"zz\r\nWiki\r\n0\r\n\r\n",
            b"4\r\nWikiXX0\r\n\r\n",
            b"ffffffffffffffffff\r\nx\r\n0\r\n\r\n",
            b"",
        ] {
            assert_eq!(dechunk(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let base = serve(|_| "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n".to_owned(), 1);
        let (_, status, body) = get(&base, "/", 1024).expect("chunked");
        assert_eq!((status, &body[..]), (200, &b"[]"[..]));
    }
}
