//! Query answers as Prometheus writes them, and hostile ones.

use super::*;
use crate::edges::{Target, readiness};

fn at(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

fn hour() -> Window {
    "1h".parse().expect("window")
}

fn vector(series: &[(&str, &str)]) -> Vec<u8> {
    let result: Vec<String> =
        series.iter().map(|(metric, v)| format!(r#"{{"metric":{metric},"value":[1700000000.5,"{v}"]}}"#)).collect();
    format!(r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#, result.join(",")).into_bytes()
}

fn samples(series: &[(&str, &str)]) -> Vec<Sample> {
    parse_vector(200, &vector(series)).expect("a vector")
}

const MTLS_SERVER: &str = r#"{"k8s_src_namespace":"mesh","k8s_src_owner_name":"pod-a","k8s_dst_namespace":"mesh","k8s_dst_owner_name":"pod-b","server_port":"8080","observer_connection_security":"mtls","observer_tls_client_cert":"presented","observer_policy":"PeerAuthentication/mesh/pod-b","observer_verdict_expected":"any","observer_leg":"external_inbound","observer_observed_at":"server"}"#;
const MTLS_CLIENT: &str = r#"{"k8s_src_namespace":"mesh","k8s_src_owner_name":"pod-a","k8s_dst_namespace":"mesh","k8s_dst_owner_name":"pod-b","server_port":"8080","observer_connection_security":"mtls","observer_tls_client_cert":"presented","observer_policy":"PeerAuthentication/mesh/pod-b","observer_verdict_expected":"any","observer_leg":"external_inbound","observer_observed_at":"client"}"#;
const PLAIN_OUTSIDE: &str = r#"{"k8s_dst_namespace":"mesh","k8s_dst_owner_name":"pod-b","server_port":"8080","observer_connection_security":"plaintext","observer_policy":"PeerAuthentication/mesh/pod-b","observer_verdict_expected":"any","observer_leg":"external_inbound","observer_observed_at":"server"}"#;
const WOULD_BREAK: &str = r#"{"k8s_dst_namespace":"mesh","k8s_dst_owner_name":"pod-b","server_port":"8080","observer_deviation_kind":"would_break_under_strict","observer_policy":"PeerAuthentication/mesh/pod-b","observer_observed_at":"server"}"#;

#[test]
fn windows_are_validated() {
    assert_eq!("1h".parse::<Window>().map(Window::secs), Ok(3600));
    assert_eq!("90m".parse::<Window>().map(Window::secs), Ok(5400));
    assert_eq!("7d".parse::<Window>().map(Window::secs), Ok(7 * 86_400));
    for bad in ["", "h", "1", "1x", "-1h", "1.5h", "1h30m", " 1h"] {
        assert!(matches!(bad.parse::<Window>(), Err(WindowError::Syntax(_))), "{bad:?}");
    }
    for out in ["30s", "0m", "401d", "99999999999999999999w", "18446744073709551615w"] {
        assert!(matches!(out.parse::<Window>(), Err(WindowError::Syntax(_) | WindowError::Range(_))), "{out:?}");
    }
    assert!(matches!("401d".parse::<Window>(), Err(WindowError::Range(_))));
}

#[test]
fn queries_look_back_over_the_window_and_narrow_to_the_namespace() {
    let q = queries("2h".parse().expect("window"), Some("mesh"));
    assert!(q.connections.promql.contains("increase(observer_connections_total{"), "{}", q.connections.promql);
    assert!(q.connections.promql.contains("[7200s]") && q.connections.promql.contains("offset 7200s"));
    assert!(q.connections.promql.contains(r#"k8s_dst_namespace="mesh""#));
    assert!(q.deviations.promql.contains("observer_policy_deviations_total{"));
    assert!(q.since.promql.contains("[7200s:30s]"), "{}", q.since.promql);
    assert!(q.observers.promql.contains("count_over_time(observer_connections_tracked[7200s])"));
    assert!(!queries("1h".parse().expect("window"), None).connections.promql.contains("k8s_dst_namespace=\""));
}

#[test]
fn hostile_answers_are_refused_with_the_reason() {
    let err = |http, body: &[u8]| parse_vector(http, body).expect_err("refused");
    let refused = err(400, br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3\u001b[2J"}"#);
    match refused {
        AnswerError::Refused { http: 400, kind, message } => {
            assert_eq!(kind, "bad_data");
            assert!(message.contains("parse error") && !message.contains('\x1b'), "escaped: {message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(err(503, b"<html>down</html>"), AnswerError::Malformed { http: 503, .. }));
    assert!(matches!(err(200, b""), AnswerError::Malformed { .. }));
    assert!(matches!(err(200, br#"{"status":"success"}"#), AnswerError::Malformed { .. }));
    assert!(matches!(err(200, br#"{"status":"maybe","data":{}}"#), AnswerError::Malformed { .. }));
    let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
    assert!(matches!(err(200, scalar), AnswerError::Malformed { reason, .. } if reason.contains("scalar")));
    let matrix = br#"{"status":"success","data":{"resultType":"vector","result":{"a":1}}}"#;
    assert!(matches!(err(200, matrix), AnswerError::Malformed { .. }));
    let bad_series =
        br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"2"]}]}}"#;
    assert!(matches!(err(200, bad_series), AnswerError::Malformed { .. }));
    for value in ["NaN", "+Inf", "-1", "many", ""] {
        let body = vector(&[(r#"{"a":"b"}"#, value)]);
        assert!(matches!(err(200, &body), AnswerError::NotACount { .. }), "{value:?}");
    }
    let many = vector(&vec![(r#"{}"#, "1"); MAX_SERIES + 1]);
    assert!(matches!(err(200, &many), AnswerError::TooManySeries(n) if n == MAX_SERIES + 1));
    let answers = Answers { connections: samples(&[(r#"{"server_port":"http"}"#, "1")]), ..Answers::default() };
    assert!(matches!(snapshot(&answers, at(0), hour(), 10), Err(AnswerError::NotACount { .. })));
}

#[test]
fn a_leg_seen_at_both_ends_counts_once_and_outside_clients_are_named_as_such() {
    let answers = Answers {
        // Node 1 saw 3 mTLS legs server-side, node 2 the same legs client-side (one scrape fewer).
        connections: samples(&[(MTLS_SERVER, "3.02"), (MTLS_CLIENT, "2.6"), (PLAIN_OUTSIDE, "2")]),
        deviations: samples(&[(WOULD_BREAK, "2")]),
        in_pod: samples(&[("{}", "6")]),
        overflow: samples(&[]),
        observers: samples(&[(r#"{"instance":"n1"}"#, "100"), (r#"{"instance":"n2"}"#, "90")]),
        since: samples(&[("{}", "1699999000")]),
    };
    let (snapshot, coverage) = snapshot(&answers, at(1_700_000_000), hour(), 10).expect("snapshot");
    assert_eq!(coverage, Coverage { observers: 2, overflow: 0 });
    assert_eq!(snapshot.stats.records, 5);
    assert_eq!(snapshot.stats.in_pod_legs, 6);
    assert_eq!(snapshot.first_seen.as_deref(), Some("2023-11-14T21:56:40.000Z"));
    let mtls = &snapshot.edges[0];
    assert_eq!((mtls.client.label(), mtls.server.label(), mtls.port), ("mesh/pod-a".into(), "mesh/pod-b".into(), 8080));
    assert_eq!((mtls.security.mtls, mtls.connections), (3, 3));
    assert_eq!(mtls.client_cert.get("presented"), Some(&3));
    assert_eq!(mtls.mode.as_deref(), Some("PERMISSIVE"));
    let plain = &snapshot.edges[1];
    assert_eq!(plain.client.label(), OUTSIDE);
    assert_eq!((plain.security.plaintext, plain.would_break_under_strict), (2, 2));
    assert_eq!(plain.client_cert.get("none"), Some(&2));

    let target = Target { namespace: "mesh".into(), workload: Some("pod-b".into()) };
    let answer = readiness::assess(&snapshot, &target);
    assert!(!answer.ready);
    assert_eq!(answer.would_break[0].client, OUTSIDE);
    assert!(answer.summary.contains("PERMISSIVE"), "{}", answer.summary);
    let text = crate::edges::render::readiness_text(&answer);
    assert!(!text.contains("last seen"), "no per-edge times from metrics:\n{text}");
    let notes = caveats(&snapshot, &coverage, Some(&target));
    assert!(notes.iter().any(|n| n.contains("no client addresses")), "{notes:?}");

    assert_eq!(snapshot.last_seen.as_deref(), Some("2023-11-14T22:13:20.000Z"));
    let (few, _) = super::snapshot(&answers, at(1_700_000_000), hour(), 1).expect("snapshot");
    assert_eq!((few.edges.len(), few.stats.evicted), (1, 1));
}

#[test]
fn nothing_scraped_is_said_and_overflow_is_counted() {
    let answers = Answers { overflow: samples(&[("{}", "4")]), ..Answers::default() };
    let (snapshot, coverage) = snapshot(&answers, at(1_700_000_000), hour(), 10).expect("snapshot");
    let target = Target { namespace: "mesh".into(), workload: None };
    let notes = caveats(&snapshot, &coverage, Some(&target));
    assert!(notes.iter().any(|n| n.contains("scraping the observers")), "{notes:?}");
    assert!(notes.iter().any(|n| n.starts_with("4 connections")), "{notes:?}");
    assert!(!readiness::assess(&snapshot, &target).ready);
    assert_eq!(snapshot.first_seen, None, "no observer, no window");
}

#[test]
fn observers_younger_than_a_step_show_a_step_of_data() {
    let answers = Answers { observers: samples(&[(r#"{"instance":"n1"}"#, "3")]), ..Answers::default() };
    let (snapshot, coverage) = snapshot(&answers, at(1_700_000_000), hour(), 10).expect("snapshot");
    assert_eq!(coverage.observers, 1);
    assert_eq!(snapshot.first_seen.as_deref(), Some("2023-11-14T22:13:05.000Z"), "15 s before the query");
    let target = Target { namespace: "mesh".into(), workload: None };
    let answer = readiness::assess(&snapshot, &target);
    assert!(answer.thin_evidence.iter().any(|t| t.contains("observed for 15 s only")), "{answer:?}");
}

/// legacy → pod-b, plaintext, as `observed_at` and `port` say.
fn plain_legacy(observed_at: &str, port: &str, policy: &str) -> String {
    plain_legacy_leg(observed_at, port, policy, "external_inbound")
}

fn plain_legacy_leg(observed_at: &str, port: &str, policy: &str, leg: &str) -> String {
    format!(
        r#"{{"k8s_src_namespace":"mesh","k8s_src_owner_name":"legacy","k8s_dst_namespace":"mesh","k8s_dst_owner_name":"pod-b","server_port":"{port}","observer_connection_security":"plaintext","observer_tls_client_cert":"none","observer_policy":"{policy}","observer_verdict_expected":"any","observer_leg":"{leg}","observer_observed_at":"{observed_at}"}}"#
    )
}

fn would_break_legacy(observed_at: &str, port: &str) -> String {
    format!(
        r#"{{"k8s_src_namespace":"mesh","k8s_src_owner_name":"legacy","k8s_dst_namespace":"mesh","k8s_dst_owner_name":"pod-b","server_port":"{port}","observer_deviation_kind":"would_break_under_strict","observer_policy":"PeerAuthentication/mesh/pod-b","observer_observed_at":"{observed_at}"}}"#
    )
}

fn borrowed<'a>(series: &'a [(String, &'a str)]) -> Vec<(&'a str, &'a str)> {
    series.iter().map(|(m, v)| (m.as_str(), *v)).collect()
}

/// (port, plaintext connections, would-break) of each legacy → pod-b edge.
fn legacy_edges(connections: &[(String, &str)], deviations: &[(String, &str)]) -> Vec<(u16, u64, u64)> {
    let answers = Answers {
        connections: samples(&borrowed(connections)),
        deviations: samples(&borrowed(deviations)),
        ..Answers::default()
    };
    let (snapshot, _) = snapshot(&answers, at(1_700_000_000), hour(), 10).expect("snapshot");
    let mut edges: Vec<_> =
        snapshot.edges.iter().map(|e| (e.port, e.security.plaintext, e.would_break_under_strict)).collect();
    edges.sort_unstable();
    edges
}

#[test]
fn a_leg_seen_at_the_capture_port_and_at_its_client_counts_once() {
    const PA: &str = "PeerAuthentication/mesh/pod-b";
    // pod-b's node saw 2 connections at 15006 (behind the REDIRECT), legacy's node the same 2 at 8080.
    let both = [(plain_legacy("server", "15006", PA), "2"), (plain_legacy("client", "8080", PA), "2.1")];
    let deviations = [(would_break_legacy("server", "15006"), "2"), (would_break_legacy("client", "8080"), "2")];
    assert_eq!(legacy_edges(&both, &deviations), [(8080, 2, 2)]);

    // One more connection from a legacy pod on a node without an observer: only 15006 knows it.
    let more = [(plain_legacy("server", "15006", PA), "3"), (plain_legacy("client", "8080", PA), "2")];
    let deviations = [(would_break_legacy("server", "15006"), "3"), (would_break_legacy("client", "8080"), "2")];
    assert_eq!(legacy_edges(&more, &deviations), [(8080, 2, 2), (15006, 1, 1)]);

    // The server's node alone: the capture port stays, nothing is invented.
    assert_eq!(legacy_edges(&[(plain_legacy("server", "15006", PA), "2")], &[]), [(15006, 2, 0)]);

    // Client-side counts a server-side count at their own port already matched are not matched again.
    let direct = [
        (plain_legacy("server", "8080", PA), "2"),
        (plain_legacy("client", "8080", PA), "2"),
        (plain_legacy("server", "15006", PA), "1"),
    ];
    assert_eq!(legacy_edges(&direct, &[]), [(8080, 2, 0), (15006, 1, 0)]);

    // A meshed client's node sees its sidecar's outbound leg; the server's node, an inbound one.
    let meshed = [
        (plain_legacy("server", "15006", PA), "2"),
        (plain_legacy_leg("client", "8080", PA, "external_outbound"), "2"),
    ];
    assert_eq!(legacy_edges(&meshed, &[]), [(8080, 2, 0)]);

    // Sets that differ in more than the port and the leg (here the policy) are never merged.
    let other = [(plain_legacy("server", "15006", "default"), "2"), (plain_legacy("client", "8080", PA), "2")];
    assert_eq!(legacy_edges(&other, &[]), [(8080, 2, 0), (15006, 2, 0)]);
}

#[test]
fn only_a_peer_authentication_or_istios_default_at_the_server_implies_a_server_mode() {
    use crate::edges::model::implied_mode;
    let pa = Some("PeerAuthentication/mesh/pod-b");
    assert_eq!(implied_mode(pa, "external_inbound", Some("mtls")), Some("STRICT"));
    assert_eq!(implied_mode(pa, "direct", Some("any")), Some("PERMISSIVE"));
    assert_eq!(implied_mode(pa, "external_inbound", Some("plaintext")), Some("DISABLE"));
    // No PeerAuthentication at a sidecar: Istio's default accepts anything.
    assert_eq!(implied_mode(Some("default"), "external_inbound", Some("any")), Some("PERMISSIVE"));
    // The client's auto mTLS (or a DestinationRule) judged it: that is not the server's mode.
    assert_eq!(implied_mode(Some("default"), "external_inbound", Some("mtls")), None);
    assert_eq!(implied_mode(Some("DestinationRule/mesh/pod-b"), "external_inbound", Some("plaintext")), None);
    assert_eq!(implied_mode(Some("default"), "external_outbound", Some("any")), None);
    assert_eq!(implied_mode(None, "external_inbound", None), None);
}
