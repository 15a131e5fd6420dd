//! `GET /v1/edges` and `GET /v1/readiness` on the metrics listener. The request line is hostile
//! input: its length is bounded, every parameter is validated (known names only, no repeats,
//! Kubernetes name syntax) and a bad one gets a 400 with a JSON `{"error": ...}` saying why.

use std::sync::Mutex;

use super::{EdgeTable, Filter, Target, readiness};

/// Longest query string accepted.
pub const MAX_QUERY: usize = 1024;

/// Why a query was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query string is longer than {MAX_QUERY} bytes")]
    TooLong,
    #[error("bad percent-encoding in the query string")]
    Encoding,
    #[error("unknown parameter {0:?} (allowed: {1})")]
    Unknown(String, &'static str),
    #[error("parameter {0:?} given twice")]
    Repeated(String),
    #[error("{0}")]
    Invalid(String),
    #[error("parameter \"namespace\" is required")]
    MissingNamespace,
}

/// The answer for an HTTP request head under `/v1/`, or `None` for any other path.
pub fn respond(head: &str, table: &Mutex<EdgeTable>) -> Option<String> {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if !path.starts_with("/v1/") {
        return None;
    }
    if method != "GET" {
        return Some(response(405, "Method Not Allowed", &error_body("only GET is served")));
    }
    let snapshot = || table.lock().map(|t| t.snapshot()).unwrap_or_default();
    let answer = match path {
        "/v1/edges" => edges_query(query).map(|filter| json(&snapshot().filtered(&filter))),
        "/v1/readiness" => readiness_query(query).map(|target| json(&readiness::assess(&snapshot(), &target))),
        _ => return Some(response(404, "Not Found", &error_body("unknown path (served: /v1/edges, /v1/readiness)"))),
    };
    Some(match answer {
        Ok(body) => response(200, "OK", &body),
        Err(error) => response(400, "Bad Request", &error_body(&error.to_string())),
    })
}

/// `namespace`, `workload`, `security`, each at most once.
pub fn edges_query(query: &str) -> Result<Filter, QueryError> {
    let mut filter = Filter::default();
    for (name, value) in params(query)? {
        let slot = match name.as_str() {
            "namespace" => {
                validate_namespace(&value)?;
                &mut filter.namespace
            }
            "workload" => {
                validate_workload(&value)?;
                &mut filter.workload
            }
            "security" => {
                validate_security(&value)?;
                &mut filter.security
            }
            _ => return Err(QueryError::Unknown(name, "namespace, workload, security")),
        };
        if slot.replace(value).is_some() {
            return Err(QueryError::Repeated(name));
        }
    }
    Ok(filter)
}

/// `namespace` (required) and `workload`.
pub fn readiness_query(query: &str) -> Result<Target, QueryError> {
    let (mut namespace, mut workload) = (None, None);
    for (name, value) in params(query)? {
        let slot = match name.as_str() {
            "namespace" => {
                validate_namespace(&value)?;
                &mut namespace
            }
            "workload" => {
                validate_workload(&value)?;
                &mut workload
            }
            _ => return Err(QueryError::Unknown(name, "namespace, workload")),
        };
        if slot.replace(value).is_some() {
            return Err(QueryError::Repeated(name));
        }
    }
    Ok(Target { namespace: namespace.ok_or(QueryError::MissingNamespace)?, workload })
}

/// A Kubernetes namespace name: a DNS-1123 label.
pub fn validate_namespace(ns: &str) -> Result<(), QueryError> {
    let ok = !ns.is_empty()
        && ns.len() <= 63
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-')
        && !ns.ends_with('-');
    if ok { Ok(()) } else { Err(QueryError::Invalid(format!("{ns:?} is not a namespace name (DNS-1123 label)"))) }
}

/// A pod name (DNS-1123 subdomain), optionally `namespace/` before it.
pub fn validate_workload(w: &str) -> Result<(), QueryError> {
    let (ns, pod) = match w.split_once('/') {
        Some((ns, pod)) => (Some(ns), pod),
        None => (None, w),
    };
    if let Some(ns) = ns {
        validate_namespace(ns)?;
    }
    let ok = !pod.is_empty()
        && pod.len() <= 253
        && pod.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && pod.starts_with(|c: char| c.is_ascii_alphanumeric())
        && pod.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(()) } else { Err(QueryError::Invalid(format!("{w:?} is not a workload name ([namespace/]pod)"))) }
}

pub fn validate_security(s: &str) -> Result<(), QueryError> {
    match s {
        "plaintext" | "tls" | "mtls" | "unknown" => Ok(()),
        _ => Err(QueryError::Invalid(format!("{s:?} is not a security (plaintext, tls, mtls, unknown)"))),
    }
}

fn params(query: &str) -> Result<Vec<(String, String)>, QueryError> {
    if query.len() > MAX_QUERY {
        return Err(QueryError::TooLong);
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Percent-decoding (and `+` as space), refusing bad escapes and non-UTF-8.
fn decode(s: &str) -> Result<String, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
                let hex = std::str::from_utf8(hex.ok_or(QueryError::Encoding)?).map_err(|_| QueryError::Encoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| QueryError::Encoding)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::Encoding)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| error_body(&e.to_string()))
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

fn response(code: u16, reason: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
