//! `--prometheus URL`: the edge snapshot of the whole cluster from a Prometheus that scrapes
//! every node's observer, through its HTTP query API (`GET /api/v1/query`, one instant query
//! per part of the answer, all at the same evaluation time). The PromQL and the reading of the
//! answers are in `edges::prometheus`; this is the I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::edges::{
    Snapshot,
    prometheus::{self, Answers, Coverage, Query, Sample, Window},
};

use super::http;

/// The snapshot and its coverage, from the Prometheus at `base` (`http://HOST:PORT`), looking
/// back over `window`, narrowed to servers in `server_namespace` when given.
pub fn fetch(
    base: &str,
    window: Window,
    server_namespace: Option<&str>,
    max_edges: usize,
) -> anyhow::Result<(Snapshot, Coverage)> {
    let now = SystemTime::now();
    let time = now.duration_since(UNIX_EPOCH).map(|d| format!("{:.3}", d.as_secs_f64()))?;
    let run = |query: &Query| -> anyhow::Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}&time={time}", encode(&query.promql));
        let (url, status, body) = http::get(base, &path, prometheus::MAX_BODY)?;
        prometheus::parse_vector(status, &body).map_err(|e| anyhow::anyhow!("{url} ({}): {e}", query.what))
    };
    let q = prometheus::queries(window, server_namespace);
    // The presence query first: an unreachable server or a bad URL fails once, early.
    let observers = run(&q.observers)?;
    let answers = Answers {
        connections: run(&q.connections)?,
        deviations: run(&q.deviations)?,
        in_pod: run(&q.in_pod)?,
        overflow: run(&q.overflow)?,
        since: run(&q.since)?,
        observers,
    };
    let (snapshot, coverage) =
        prometheus::snapshot(&answers, now, window, max_edges).map_err(|e| anyhow::anyhow!("{base}: {e}"))?;
    Ok((snapshot, coverage))
}

/// Percent-encoding of a query parameter value: everything but the unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode(r#"sum(x{a="b c"}[1h])&y=1+2"#), "sum%28x%7Ba%3D%22b%20c%22%7D%5B1h%5D%29%26y%3D1%2B2");
        assert_eq!(encode("ok-._~09AZ"), "ok-._~09AZ");
    }

    #[test]
    fn an_unreachable_prometheus_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let base = format!("http://127.0.0.1:{port}");
        let error = fetch(&base, "1h".parse().expect("window"), None, 10).expect_err("nothing listens");
        assert!(format!("{error:#}").contains(&format!("127.0.0.1:{port}/api/v1/query")), "{error:#}");
    }
}
