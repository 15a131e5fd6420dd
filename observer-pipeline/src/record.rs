//! The JSON record of one connection leg. Field names and value spellings are a contract:
//! extend, never break. A value the observer could not see is null, never invented.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::SystemTime,
};

use serde::Serialize;

use observer_mesh::verdict::{Assessment, EndIdentity, LegKind, Verdict};
use observer_wire::{
    classify::{Protocol, Security, TlsDetails, UnknownReason},
    legs::{LegRecord, ObservedAt, Peer, Process},
};

/// One end of a leg in the JSON record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointRecord {
    pub ip: String,
    pub port: u16,
    /// `namespace/pod`, when the inventory knows the address.
    pub workload: Option<String>,
    /// SPIFFE identity, when known.
    pub identity: Option<String>,
    /// Present for an end whose socket lives on this node.
    pub process: Option<Process>,
    /// The workload owning the pod (metrics and alerts group by it; not in the JSON line).
    #[serde(skip)]
    pub owner: Option<std::sync::Arc<observer_mesh::inventory::Owner>>,
}

/// One classified connection leg.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectionRecord {
    /// When the leg opened, RFC 3339 UTC with milliseconds.
    pub time: String,
    pub node: String,
    pub conn_id: String,
    pub client: EndpointRecord,
    pub server: EndpointRecord,
    pub observed_at: ObservedAt,
    pub leg: LegKind,
    pub security: Security,
    pub protocol: Protocol,
    pub reason: Option<UnknownReason>,
    pub tls: Option<Box<TlsDetails>>,
    pub verdict: Verdict,
}

impl ConnectionRecord {
    /// The record of a finished leg and its assessment against the policy.
    pub fn new(leg: &LegRecord, assessment: &Assessment, node: &str) -> Self {
        Self::from_parts(leg.clone(), assessment.clone(), node)
    }

    /// The same, taking the leg and its assessment instead of copying what they hold (the
    /// pipeline's way: each leg becomes one record and is then dropped).
    pub fn from_parts(leg: LegRecord, assessment: Assessment, node: &str) -> Self {
        let c = leg.classification;
        Self {
            time: rfc3339_millis(leg.time),
            node: node.to_owned(),
            conn_id: conn_id(leg.leg),
            client: endpoint(leg.client, assessment.client),
            server: endpoint(leg.server, assessment.server),
            observed_at: leg.observed_at,
            leg: assessment.leg,
            security: c.security,
            protocol: c.protocol,
            reason: c.reason,
            tls: c.tls,
            verdict: assessment.verdict,
        }
    }

    /// The record of a finished leg without policy: leg `unknown`, verdict `unevaluated`.
    pub fn unassessed(leg: &LegRecord, node: &str) -> Self {
        Self::new(leg, &Assessment::unevaluated(), node)
    }
}

fn endpoint(peer: Peer, who: EndIdentity) -> EndpointRecord {
    // A v4-mapped IPv6 address is the IPv4 peer of a dual-stack socket: show it as IPv4.
    let ip = match peer.addr.ip().to_canonical() {
        IpAddr::V4(v4) => dotted(v4),
        v6 => v6.to_string(),
    };
    EndpointRecord {
        ip,
        port: peer.addr.port(),
        workload: who.workload,
        identity: who.identity,
        process: peer.process,
        owner: who.owner,
    }
}

/// `2026-11-26T14:00:00.123Z` without a date library: civil-from-days (H. Hinnant's algorithm).
/// Records come in time order, many per second: the text up to the second is kept per thread
/// and only the milliseconds are written again until the second changes.
pub fn rfc3339_millis(time: SystemTime) -> String {
    thread_local! {
        static LAST_SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let mut out = LAST_SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            *second = secs;
            *text = up_to_the_second(secs);
        }
        let mut out = String::with_capacity(text.len() + 5);
        out.push_str(text);
        out
    });
    out.push('.');
    digits(&mut out, u64::from(millis), 3);
    out.push('Z');
    out
}

/// `2026-11-26T14:00:00`: the date and time of day of `secs` since the epoch, UTC.
fn up_to_the_second(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Digits pushed by hand: this runs once per record, and `format!` was a visible share of
    // the daemon's time per connection. Years past 9999 cannot come from a u64 of seconds
    // read as a `SystemTime` on the machines we run on, but are written whole all the same.
    let mut out = String::with_capacity(24);
    if (0..10_000).contains(&year) {
        digits(&mut out, year as u64, 4);
    } else {
        out.push_str(&year.to_string());
    }
    out.push('-');
    digits(&mut out, month as u64, 2);
    out.push('-');
    digits(&mut out, day as u64, 2);
    out.push('T');
    digits(&mut out, hour, 2);
    out.push(':');
    digits(&mut out, minute, 2);
    out.push(':');
    digits(&mut out, second, 2);
    out
}

/// `value` as exactly `width` decimal digits (zero-padded; `value` < 10^width).
fn digits(out: &mut String, value: u64, width: u32) {
    let mut scale = 10u64.pow(width - 1);
    while scale > 0 {
        out.push(char::from(b'0' + (value / scale % 10) as u8));
        scale /= 10;
    }
}

/// `c:` and the leg id in lowercase hex, the record's `conn_id`.
fn conn_id(leg: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(18);
    out.push_str("c:");
    let nibbles = (64 - leg.leading_zeros()).div_ceil(4).max(1);
    for i in (0..nibbles).rev() {
        out.push(char::from(HEX[(leg >> (4 * i) & 0xf) as usize]));
    }
    out
}

/// An IPv4 address in dotted decimal, as `Ipv4Addr`'s `Display` writes it, without the formatter.
fn dotted(ip: Ipv4Addr) -> String {
    let mut out = String::with_capacity(15);
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_701_600_123);
        assert_eq!(rfc3339_millis(t), "2026-11-26T14:00:00.123Z");
        assert_eq!(rfc3339_millis(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
        let late = SystemTime::UNIX_EPOCH + Duration::from_millis(253_402_300_799_999); // the last of 9999
        assert_eq!(rfc3339_millis(late), "9999-12-31T23:59:59.999Z");
        // The same second again (the kept text), then the next one.
        assert_eq!(rfc3339_millis(late - Duration::from_millis(998)), "9999-12-31T23:59:59.001Z");
        assert_eq!(rfc3339_millis(t), "2026-11-26T14:00:00.123Z");
        assert_eq!(rfc3339_millis(t + Duration::from_millis(877)), "2026-11-26T14:00:01.000Z");
    }

    #[test]
    fn ids_and_addresses_read_as_the_formatter_writes_them() {
        for leg in [0u64, 1, 0xf, 0x10, 0x1f, 0xdead_beef, u64::MAX] {
            assert_eq!(conn_id(leg), format!("c:{leg:x}"));
        }
        for ip in ["0.0.0.0", "9.10.99.100", "127.0.0.1", "255.255.255.255", "10.0.200.5"] {
            let parsed: Ipv4Addr = ip.parse().expect("test address");
            assert_eq!(dotted(parsed), ip);
        }
        for octet in 0..=255u8 {
            let ip = Ipv4Addr::new(octet, 0, octet, 1);
            assert_eq!(dotted(ip), ip.to_string());
        }
    }
}
