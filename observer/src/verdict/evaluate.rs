//! The verdict on a leg: each expectation judged against the classification, then the
//! observer's defaults (plaintext to well-known TLS ports, TLS below 1.2), then the most
//! telling result. Under a PERMISSIVE server, plaintext (or TLS without a client certificate)
//! is `ok` with kind `would_break_under_strict`: the STRICT-readiness list, not an alert.

use std::net::IpAddr;

use super::{
    DeviationKind, Expected, Leg, Status, Verdict,
    expect::{DEFAULT_MIN_TLS_MINOR, Destination, Source, TLS_PORTS, Want, istio_wants, resolve_destination},
    leg::{LegFacts, identify_leg},
};
use crate::{
    classify::{Classification, ClientCert, Security},
    flows::LegRecord,
    inventory::Pod,
    policy::{Labels, Snapshot, tls_minor},
};

/// Judges one expectation: `(deviation kind, status-ok note kind)`; `None` when satisfied.
pub fn judge(want: &Want, observed: &Classification) -> (Option<DeviationKind>, Option<DeviationKind>) {
    let security = observed.security;
    let tls = matches!(security, Security::Tls | Security::Mtls);
    if want.originates_custom_tls && tls {
        return (Some(DeviationKind::DoubleTls), None);
    }
    if want.permissive {
        let would_break = security == Security::Plaintext || (security == Security::Tls && !resumed(observed));
        return (None, would_break.then_some(DeviationKind::WouldBreakUnderStrict));
    }
    let deviation = match (want.expected, security) {
        (_, Security::Unknown) | (Expected::Any, _) => None,
        (Expected::Mtls | Expected::Tls, Security::Plaintext) => Some(DeviationKind::UnexpectedPlaintext),
        (Expected::Mtls, Security::Tls) if !resumed(observed) => Some(DeviationKind::MissingClientCert),
        (Expected::Plaintext, Security::Tls | Security::Mtls) => Some(DeviationKind::UnexpectedTls),
        _ => None,
    };
    (deviation, None)
}

fn resumed(observed: &Classification) -> bool {
    observed.tls.as_ref().and_then(|t| t.client_cert) == Some(ClientCert::Resumed)
}

fn strength(expected: Expected) -> u8 {
    match expected {
        Expected::Mtls => 3,
        Expected::Tls => 2,
        Expected::Plaintext => 1,
        Expected::Any => 0,
    }
}

/// The observer's `Expectation` rules and `allowPlaintext` entries that apply to a leg.
fn expectation_wants(
    client: (IpAddr, Option<&Pod>),
    server: (IpAddr, Option<&Pod>),
    port: u16,
    snapshot: &Snapshot,
) -> (Option<(Want, Option<u8>)>, Option<Want>) {
    fn workload(pod: Option<&Pod>) -> Option<(&str, &Labels)> {
        pod.map(|p| (p.meta.object.namespace.as_str(), &p.labels))
    }
    let mut best: Option<(u8, Want, Option<u8>)> = None;
    let mut allow = None;
    for exp in &snapshot.policy.expectations {
        for rule in &exp.rules {
            if !rule.ports.is_empty() && !rule.ports.contains(&port) {
                continue;
            }
            let Some(score) = rule.to.specificity(server.0, workload(server.1)) else {
                continue;
            };
            let score = score * 2 + u8::from(!rule.ports.is_empty());
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                let mut want = Want::new(rule.security, None, format!("Expectation rule at line {}", rule.line));
                want.policy = exp.meta.object.to_string();
                want.source = Source::Expectation;
                best = Some((score, want, rule.min_tls_minor));
            }
        }
        for entry in &exp.allow_plaintext {
            let ports_ok = entry.ports.is_empty() || entry.ports.contains(&port);
            if allow.is_none()
                && ports_ok
                && entry.from.specificity(client.0, workload(client.1)).is_some()
                && entry.to.specificity(server.0, workload(server.1)).is_some()
            {
                let reason = entry.reason.clone().unwrap_or_else(|| "plaintext expected".to_owned());
                let mut want = Want::new(Expected::Plaintext, None, reason);
                want.policy = exp.meta.object.to_string();
                want.source = Source::Expectation;
                allow = Some(want);
            }
        }
    }
    (best.map(|(_, w, min)| (w, min)), allow)
}

fn verdict(want: &Want, status: Status, kind: Option<DeviationKind>, reason: String) -> Verdict {
    Verdict { status, expected: Some(want.expected), kind, policy: Some(want.policy.clone()), reason: Some(reason) }
}

/// A leg's kind and verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub leg: Leg,
    pub verdict: Verdict,
}

/// Identifies the leg and judges it against the snapshot's policy.
pub fn assess(record: &LegRecord, snapshot: &Snapshot) -> Assessment {
    let facts = LegFacts::gather(record, snapshot);
    let leg = identify_leg(&facts);
    let inventory = &snapshot.inventory;
    let client_pod = inventory.pod_by_ip(record.client.addr.ip());
    let server_pod = inventory.pod_by_ip(record.server.addr.ip());
    let observed = &record.classification;
    let sni = observed.tls.as_ref().and_then(|t| t.sni.as_deref());
    let dest = resolve_destination(record.server.addr, sni, snapshot);
    let mut wants = istio_wants(leg, client_pod, server_pod, &dest, record.server.addr, observed, snapshot);
    let in_pod = matches!(leg, Leg::LocalInbound | Leg::LocalOutbound);
    let port = record.server.addr.port();
    let (rule, allow) = if in_pod {
        (None, None)
    } else {
        expectation_wants((record.client.addr.ip(), client_pod), (record.server.addr.ip(), server_pod), port, snapshot)
    };
    let min_tls = rule.as_ref().and_then(|(_, min)| *min).unwrap_or(DEFAULT_MIN_TLS_MINOR);
    let min_tls_policy = rule.as_ref().filter(|(_, min)| min.is_some()).map(|(w, _)| w.policy.clone());
    let plaintext_allowed = allow.is_some() && observed.security == Security::Plaintext;
    if let Some((want, _)) = rule.filter(|_| !plaintext_allowed) {
        wants.push(want);
    }
    if let Some(want) = allow.filter(|_| plaintext_allowed) {
        wants.push(want);
    }
    let verdict = decide(leg, &wants, observed, &dest, port, min_tls, min_tls_policy);
    Assessment { leg, verdict }
}

fn decide(
    leg: Leg,
    wants: &[Want],
    observed: &Classification,
    dest: &Destination<'_>,
    port: u16,
    min_tls: u8,
    min_tls_policy: Option<String>,
) -> Verdict {
    let default_want = Want { source: Source::Default, ..Want::new(Expected::Any, None, "no policy says otherwise") };
    if observed.security == Security::Unknown {
        let want = wants.iter().max_by_key(|w| strength(w.expected)).unwrap_or(&default_want);
        let why = observed
            .reason
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        return verdict(want, Status::Unevaluated, None, format!("security not decided ({why}); {}", want.reason));
    }
    let judged: Vec<_> = wants.iter().map(|w| (w, judge(w, observed))).collect();
    if let Some((want, (kind, _))) = judged.iter().find(|(_, (kind, _))| kind.is_some()) {
        return verdict(want, Status::Deviation, *kind, want.reason.clone());
    }
    let tls = matches!(observed.security, Security::Tls | Security::Mtls);
    // TLS the application sends to a port its Service declares HTTP: the sidecar parses it as HTTP.
    if tls && dest.port_declares_http && matches!(leg, Leg::LocalOutbound | Leg::Direct | Leg::Unknown) {
        let want = Want {
            source: Source::Default,
            ..Want::new(Expected::Plaintext, None, "the Service port is named for HTTP")
        };
        return verdict(&want, Status::Deviation, Some(DeviationKind::TlsOnPlaintextPort), want.reason.clone());
    }
    if let Some(version) = observed.tls.as_ref().and_then(|t| t.version.as_deref())
        && let Some(minor) = tls_minor(version)
        && minor < min_tls
    {
        let mut want = Want { source: Source::Default, ..Want::new(Expected::Tls, None, "") };
        if let Some(policy) = min_tls_policy {
            want.policy = policy;
        }
        let reason = format!("TLS {version} is below TLS 1.{min_tls}");
        return verdict(&want, Status::Deviation, Some(DeviationKind::WeakTlsVersion), reason);
    }
    // Plaintext to a well-known TLS port, unless a policy object explicitly expects or allows it.
    let explicit_plaintext_ok =
        wants.iter().any(|w| w.expected == Expected::Plaintext || w.permissive || w.policy != "default");
    if observed.security == Security::Plaintext
        && TLS_PORTS.contains(&port)
        && !explicit_plaintext_ok
        && !matches!(leg, Leg::LocalInbound | Leg::Hbone)
    {
        let want =
            Want { source: Source::Default, ..Want::new(Expected::Tls, None, format!("port {port} is a TLS port")) };
        return verdict(&want, Status::Deviation, Some(DeviationKind::PlaintextOnTlsPort), want.reason.clone());
    }
    if let Some((want, (_, note))) = judged.iter().find(|(_, (_, note))| note.is_some()) {
        let reason = format!("{}; STRICT would refuse this client", want.reason);
        return verdict(want, Status::Ok, *note, reason);
    }
    let want = judged
        .iter()
        .map(|(w, _)| *w)
        .max_by_key(|w| (strength(w.expected), std::cmp::Reverse(w.source)))
        .unwrap_or(&default_want);
    verdict(want, Status::Ok, None, want.reason.clone())
}
