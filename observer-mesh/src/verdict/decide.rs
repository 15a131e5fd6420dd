//! The decision on a leg: every requirement held against the classification, then the
//! observer's defaults (plaintext to well-known TLS ports, TLS below 1.2), then the most
//! telling result. Under a PERMISSIVE server, plaintext (or TLS without a client certificate)
//! is `ok` with kind `would_break_under_strict`: the STRICT-readiness list, not an alert.

use std::borrow::Cow;

use observer_wire::{
    classify::{Classification, ClientCert, Security},
    legs::LegRecord,
};

use super::{
    DeviationKind, LegKind, RequiredSecurity, Status, Verdict,
    leg_kind::{LegFacts, identify_leg},
    requirements::{Destination, LegAddress, Requirement, Requirements, Source, requirements},
};
use crate::{
    Mesh,
    inventory::Owner,
    policy::{DEFAULT_MIN_TLS_MINOR, TLS_PORTS, tls_minor},
};

/// Judges one requirement: `(deviation kind, status-ok note kind)`; `None` when satisfied.
pub fn judge(required: &Requirement, observed: &Classification) -> (Option<DeviationKind>, Option<DeviationKind>) {
    let security = observed.security;
    let tls = matches!(security, Security::Tls | Security::Mtls);
    if required.originates_custom_tls && tls {
        return (Some(DeviationKind::DoubleTls), None);
    }
    if required.permissive {
        let would_break = security == Security::Plaintext || (security == Security::Tls && !resumed(observed));
        return (None, would_break.then_some(DeviationKind::WouldBreakUnderStrict));
    }
    let deviation = match (required.security, security) {
        (_, Security::Unknown) | (RequiredSecurity::Any, _) => None,
        (RequiredSecurity::Mtls | RequiredSecurity::Tls, Security::Plaintext) => {
            Some(DeviationKind::UnexpectedPlaintext)
        }
        (RequiredSecurity::Mtls, Security::Tls) if !resumed(observed) => Some(DeviationKind::MissingClientCert),
        (RequiredSecurity::Plaintext, Security::Tls | Security::Mtls) => Some(DeviationKind::UnexpectedTls),
        _ => None,
    };
    (deviation, None)
}

fn resumed(observed: &Classification) -> bool {
    observed.tls.as_ref().and_then(|t| t.client_cert) == Some(ClientCert::Resumed)
}

fn strength(security: RequiredSecurity) -> u8 {
    match security {
        RequiredSecurity::Mtls => 3,
        RequiredSecurity::Tls => 2,
        RequiredSecurity::Plaintext => 1,
        RequiredSecurity::Any => 0,
    }
}

fn verdict(required: &Requirement, status: Status, kind: Option<DeviationKind>, reason: Cow<'static, str>) -> Verdict {
    let policy = required.policy.as_ref().map_or(Cow::Borrowed("default"), |p| Cow::Owned(p.to_string()));
    Verdict { status, expected: Some(required.security), kind, policy: Some(policy), reason: Some(reason) }
}

/// Who one end of a leg is, as the inventory knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndIdentity {
    /// `namespace/pod`.
    pub workload: Option<String>,
    /// The SPIFFE identity of the pod's service account.
    pub identity: Option<String>,
    /// The workload that owns the pod (its controller): what metrics and alerts group by.
    pub owner: Option<std::sync::Arc<Owner>>,
}

impl EndIdentity {
    fn of(ip: std::net::IpAddr, mesh: &Mesh) -> Self {
        match mesh.inventory.pod_by_ip(ip) {
            Some(pod) => Self {
                workload: Some(pod.workload()),
                identity: mesh.inventory.identity(pod, &mesh.policy.mesh.trust_domain),
                owner: Some(pod.owner.clone()),
            },
            None => Self::default(),
        }
    }
}

/// A leg's kind, its verdict, and who its ends are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub leg: LegKind,
    pub verdict: Verdict,
    pub client: EndIdentity,
    pub server: EndIdentity,
}

impl Assessment {
    /// No policy applied: leg `unknown`, verdict `unevaluated`, ends unknown.
    pub fn unevaluated() -> Self {
        Self {
            leg: LegKind::Unknown,
            verdict: Verdict::unevaluated(),
            client: EndIdentity::default(),
            server: EndIdentity::default(),
        }
    }
}

/// Identifies the leg and decides it against the mesh's policy.
pub fn assess(record: &LegRecord, mesh: &Mesh) -> Assessment {
    let leg = identify_leg(&LegFacts::gather(record, mesh));
    let observed = &record.classification;
    let address = LegAddress {
        kind: leg,
        client: record.client.addr,
        server: record.server.addr,
        sni: observed.tls.as_ref().and_then(|t| t.sni.as_deref()),
    };
    let (required, dest) = requirements(&address, mesh);
    let verdict = decide(leg, required, observed, &dest, record.server.addr.port());
    Assessment {
        leg,
        verdict,
        client: EndIdentity::of(record.client.addr.ip(), mesh),
        server: EndIdentity::of(record.server.addr.ip(), mesh),
    }
}

/// The one step where requirements meet the observation.
fn decide(
    leg: LegKind,
    required: Requirements,
    observed: &Classification,
    dest: &Destination<'_>,
    port: u16,
) -> Verdict {
    let Requirements { istio: mut all, gateway, expectation, allow_plaintext } = required;
    // Of several Gateway servers, the one the leg satisfies applies (else the first).
    let satisfied = gateway.iter().position(|r| judge(r, observed).0.is_none()).unwrap_or(0);
    all.extend(gateway.into_iter().nth(satisfied));
    let min_tls = expectation.as_ref().and_then(|(_, min)| *min).unwrap_or(DEFAULT_MIN_TLS_MINOR);
    let min_tls_policy = expectation.as_ref().filter(|(_, min)| min.is_some()).and_then(|(r, _)| r.policy.clone());
    let plaintext_allowed = allow_plaintext.is_some() && observed.security == Security::Plaintext;
    if plaintext_allowed {
        all.extend(allow_plaintext);
    } else {
        all.extend(expectation.map(|(r, _)| r));
    }
    let default = Requirement {
        source: Source::Default,
        ..Requirement::new(RequiredSecurity::Any, None, "no policy says otherwise")
    };
    if observed.security == Security::Unknown {
        let strongest = all.iter().max_by_key(|r| strength(r.security)).unwrap_or(&default);
        let why = observed.reason.map_or("unknown", |r| r.name());
        return verdict(
            strongest,
            Status::Unevaluated,
            None,
            format!("security not decided ({why}); {}", strongest.reason).into(),
        );
    }
    // `judge` is cheap and pure: asked again below rather than kept in a list per leg.
    if let Some((required, kind)) = all.iter().find_map(|r| Some((r, judge(r, observed).0?))) {
        return verdict(required, Status::Deviation, Some(kind), required.reason.clone());
    }
    let tls = matches!(observed.security, Security::Tls | Security::Mtls);
    // TLS the application sends to a port its Service declares HTTP: the sidecar parses it as HTTP.
    if tls && dest.port_declares_http && matches!(leg, LegKind::LocalOutbound | LegKind::Direct | LegKind::Unknown) {
        let required = Requirement {
            source: Source::Default,
            ..Requirement::new(RequiredSecurity::Plaintext, None, "the Service port is named for HTTP")
        };
        return verdict(&required, Status::Deviation, Some(DeviationKind::TlsOnPlaintextPort), required.reason.clone());
    }
    if let Some(version) = observed.tls.as_ref().and_then(|t| t.version.as_deref())
        && let Some(minor) = tls_minor(version)
        && minor < min_tls
    {
        let required = Requirement {
            source: Source::Default,
            ..Requirement::new(RequiredSecurity::Tls, min_tls_policy.as_ref(), "")
        };
        let reason = format!("TLS {version} is below TLS 1.{min_tls}");
        return verdict(&required, Status::Deviation, Some(DeviationKind::WeakTlsVersion), reason.into());
    }
    // Plaintext to a well-known TLS port, unless a policy object explicitly expects or allows it.
    let explicit_plaintext_ok =
        all.iter().any(|r| r.security == RequiredSecurity::Plaintext || r.permissive || r.policy.is_some());
    if observed.security == Security::Plaintext
        && TLS_PORTS.contains(&port)
        && !explicit_plaintext_ok
        && !matches!(leg, LegKind::LocalInbound | LegKind::Hbone)
    {
        let required = Requirement {
            source: Source::Default,
            ..Requirement::new(RequiredSecurity::Tls, None, format!("port {port} is a TLS port"))
        };
        return verdict(&required, Status::Deviation, Some(DeviationKind::PlaintextOnTlsPort), required.reason.clone());
    }
    if let Some((required, note)) = all.iter().find_map(|r| Some((r, judge(r, observed).1?))) {
        // Once per plaintext leg to a PERMISSIVE workload: a concatenation, not the formatter.
        let reason = [&*required.reason, "; STRICT would refuse this client"].concat();
        return verdict(required, Status::Ok, Some(note), reason.into());
    }
    let strongest = all.iter().max_by_key(|r| (strength(r.security), std::cmp::Reverse(r.source))).unwrap_or(&default);
    verdict(strongest, Status::Ok, None, strongest.reason.clone())
}
