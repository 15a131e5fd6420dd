//! The JSON record of one connection leg. Field names and value spellings are a contract:
//! extend, never break. A value the observer could not see is null, never invented.

use std::time::SystemTime;

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
            conn_id: format!("c:{:x}", leg.leg),
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
    let ip = peer.addr.ip().to_canonical();
    EndpointRecord {
        ip: ip.to_string(),
        port: peer.addr.port(),
        workload: who.workload,
        identity: who.identity,
        process: peer.process,
        owner: who.owner,
    }
}

/// `2026-11-26T14:00:00.123Z` without a date library: civil-from-days (H. Hinnant's algorithm).
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
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
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
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
    }
}
