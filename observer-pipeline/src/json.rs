//! The JSON line of a record, written directly: the same bytes `serde_json` writes for the
//! derived `Serialize` (the contract, docs/OUTPUT.md; the tests hold the two together), at a
//! fraction of the cost. Through serde every key is escaped like a value and every piece is its
//! own small write; a daemon printing a record per connection spent a fifth of its time there.
//! Here keys are literals, enum values their static names, and a string is copied in runs
//! between the bytes JSON must escape.

use std::borrow::Cow;

use observer_wire::{classify::TlsDetails, legs::Process, names::unit_name};

use crate::record::{ConnectionRecord, EndpointRecord};

impl ConnectionRecord {
    /// Appends the record's JSON object (no newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":");
        string(out, &self.time);
        out.extend_from_slice(b",\"node\":");
        string(out, &self.node);
        out.extend_from_slice(b",\"conn_id\":");
        string(out, &self.conn_id);
        out.extend_from_slice(b",\"client\":");
        endpoint(out, &self.client);
        out.extend_from_slice(b",\"server\":");
        endpoint(out, &self.server);
        out.extend_from_slice(b",\"observed_at\":");
        name(out, &self.observed_at);
        out.extend_from_slice(b",\"leg\":");
        name(out, &self.leg);
        out.extend_from_slice(b",\"security\":");
        name(out, &self.security);
        out.extend_from_slice(b",\"protocol\":");
        name(out, &self.protocol);
        out.extend_from_slice(b",\"reason\":");
        optional(out, self.reason.as_ref(), name);
        out.extend_from_slice(b",\"tls\":");
        optional(out, self.tls.as_deref(), tls);
        let v = &self.verdict;
        out.extend_from_slice(b",\"verdict\":{\"status\":");
        name(out, &v.status);
        out.extend_from_slice(b",\"expected\":");
        optional(out, v.expected.as_ref(), name);
        out.extend_from_slice(b",\"kind\":");
        optional(out, v.kind.as_ref(), name);
        out.extend_from_slice(b",\"policy\":");
        optional(out, v.policy.as_ref(), |out, s| string(out, s));
        out.extend_from_slice(b",\"reason\":");
        optional(out, v.reason.as_ref(), |out, s| string(out, s));
        out.extend_from_slice(b"}}");
    }
}

fn endpoint(out: &mut Vec<u8>, e: &EndpointRecord) {
    out.extend_from_slice(b"{\"ip\":");
    string(out, &e.ip);
    out.extend_from_slice(b",\"port\":");
    number(out, u64::from(e.port));
    out.extend_from_slice(b",\"workload\":");
    optional(out, e.workload.as_ref(), |out, s| string(out, s));
    out.extend_from_slice(b",\"identity\":");
    optional(out, e.identity.as_ref(), |out, s| string(out, s));
    out.extend_from_slice(b",\"process\":");
    optional(out, e.process.as_ref(), process);
    out.push(b'}');
}

fn process(out: &mut Vec<u8>, p: &Process) {
    out.extend_from_slice(b"{\"pid\":");
    number(out, u64::from(p.pid));
    out.extend_from_slice(b",\"uid\":");
    number(out, u64::from(p.uid));
    out.extend_from_slice(b",\"comm\":");
    string(out, &p.comm);
    out.push(b'}');
}

fn tls(out: &mut Vec<u8>, t: &TlsDetails) {
    let text = |out: &mut Vec<u8>, s: &String| string(out, s);
    let static_name = |out: &mut Vec<u8>, s: &Cow<'static, str>| string(out, s);
    out.extend_from_slice(b"{\"version\":");
    optional(out, t.version.as_ref(), static_name);
    out.extend_from_slice(b",\"sni\":");
    optional(out, t.sni.as_ref(), text);
    out.extend_from_slice(b",\"alpn_offered\":");
    list(out, &t.alpn_offered, text);
    out.extend_from_slice(b",\"alpn_selected\":");
    optional(out, t.alpn_selected.as_ref(), text);
    out.extend_from_slice(b",\"cipher\":");
    optional(out, t.cipher.as_ref(), static_name);
    out.extend_from_slice(b",\"ja4\":");
    optional(out, t.ja4.as_ref(), text);
    out.extend_from_slice(b",\"client_cert\":");
    optional(out, t.client_cert.as_ref(), name);
    out.extend_from_slice(b",\"evidence\":");
    optional(out, t.evidence.as_ref(), name);
    out.extend_from_slice(b",\"starttls\":");
    optional(out, t.starttls.as_ref(), name);
    // The fields below are left out when empty, as their serde attributes say.
    if let Some(subject) = &t.client_cert_subject {
        out.extend_from_slice(b",\"client_cert_subject\":");
        string(out, subject);
    }
    if let Some(id) = &t.client_spiffe_id {
        out.extend_from_slice(b",\"client_spiffe_id\":");
        string(out, id);
    }
    if !t.key_share_groups.is_empty() {
        out.extend_from_slice(b",\"key_share_groups\":");
        list(out, &t.key_share_groups, static_name);
    }
    if t.hello_retry {
        out.extend_from_slice(b",\"hello_retry\":true");
    }
    if !t.duplicate_extensions.is_empty() {
        out.extend_from_slice(b",\"duplicate_extensions\":");
        list(out, &t.duplicate_extensions, |out, n| number(out, u64::from(*n)));
    }
    out.push(b'}');
}

fn optional<T: ?Sized>(out: &mut Vec<u8>, value: Option<&T>, write: impl FnOnce(&mut Vec<u8>, &T)) {
    match value {
        Some(value) => write(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn list<T>(out: &mut Vec<u8>, items: &[T], mut write: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// A unit enum value by its serde name (which needs no escaping: Rust identifiers).
fn name<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    match unit_name(value) {
        Some(name) => {
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
        }
        // Every enum of the record is a unit enum; a data-carrying one added later would
        // need its own writer, and the tests comparing with serde would fail first.
        None => out.extend_from_slice(b"null"),
    }
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON string as `serde_json` writes it: `"`, `\` and the control characters below 0x20
/// escaped (the short forms where JSON has them, else `\u00XX`), everything else as is.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
