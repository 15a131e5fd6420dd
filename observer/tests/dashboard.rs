//! deploy/grafana/observer.json stays true to the metrics: every panel has a query, every
//! query (template variables substituted) parses as a recording rule under `promtool check
//! rules`, and names only metrics and labels the observer exports.

mod common;

use std::{collections::BTreeSet, path::PathBuf};

use common::{deploy_dir, exported};
use observer_mesh::verdict::DeviationKind;
use serde_json::Value;

fn dashboard() -> Value {
    let path = deploy_dir().join("grafana/observer.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// The dashboard's panels other than rows, those of collapsed rows included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            if panel["type"] == "row" {
                walk(&panel["panels"], out);
            } else {
                out.push(panel);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The expression with Grafana's variables replaced: each template variable by a plausible
/// value, the interval macros by 5m. Panics on a variable the dashboard does not define.
fn substitute(expr: &str, values: &[(String, String)]) -> String {
    let mut out = expr.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), value).replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "an undefined variable in `{expr}` (after substitution: `{out}`)");
    out
}

/// What a PromQL expression names: (metric names, label names), read by blanking its string
/// literals and range durations, taking label names from matchers and from by/without/on/
/// ignoring/group_* clauses, and counting every other identifier that is not a function call
/// or a keyword as a metric name.
fn promql_names(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    // Operators, and the aggregations (which may be followed by `by (...)` rather than `(`).
    const KEYWORDS: [&str; 22] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const CLAUSES: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    let mut blanked = String::new();
    let mut in_string = false;
    for c in expr.chars() {
        if c == '"' {
            in_string = !in_string;
            blanked.push('"');
        } else if !in_string {
            blanked.push(c);
        }
    }
    assert!(!in_string, "an unterminated string in `{expr}`");
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    let chars: Vec<char> = blanked.chars().collect();
    let mut i = 0;
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            let end = chars[i..].iter().position(|&x| x == close).map(|p| i + p).expect("closed");
            if c == '{' {
                let inside: String = chars[i + 1..end].iter().collect();
                for matcher in inside.split(',') {
                    let label = matcher.split(['=', '!']).next().unwrap_or("").trim();
                    if !label.is_empty() {
                        labels.insert(label.to_owned());
                    }
                }
            }
            i = end + 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if CLAUSES.contains(&word.as_str()) && next == Some('(') {
                let open = i + chars[i..].iter().position(|&x| x == '(').expect("(");
                let end = open + chars[open..].iter().position(|&x| x == ')').expect(")");
                let inside: String = chars[open + 1..end].iter().collect();
                labels.extend(inside.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned));
                i = end + 1;
            } else if next != Some('(') && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                metrics.insert(word);
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number (5, 0.5, 1e3): skip its digits and letters.
            while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    (metrics, labels)
}

#[test]
fn promql_names_finds_metrics_and_labels() {
    let (metrics, labels) = promql_names(
        r#"sum by (a, b) (rate(m_total{c="x,y", d!~"$v"}[5m])) / on (e) group_left (f) n > 0 or 0 * vector(1)"#,
    );
    assert_eq!(metrics, ["m_total", "n"].map(str::to_owned).into());
    assert_eq!(labels, ["a", "b", "c", "d", "e", "f"].map(str::to_owned).into());
}

#[test]
fn the_dashboard_queries_parse_and_use_only_exported_metrics() {
    let dashboard = dashboard();
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 39), "a current Grafana's schema");
    let variables = dashboard["templating"]["list"].as_array().expect("template variables");
    let variable = |name: &str| variables.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no ${name}"));
    assert_eq!(variable("datasource")["type"], "datasource");
    assert_eq!(variable("datasource")["query"], "prometheus");

    let (exported, exported_labels) = exported();
    for name in ["process_cpu_time_seconds_total", "process_memory_usage_bytes"] {
        assert!(exported.contains(name), "{name} is not exported: {exported:?}");
    }
    let check_names = |expr: &str| {
        let (metrics, labels) = promql_names(expr);
        assert!(!metrics.is_empty(), "no metric in `{expr}`");
        for metric in &metrics {
            assert!(
                exported.contains(metric),
                "{metric} (in `{expr}`) is not a metric the observer exports: {exported:?}"
            );
        }
        for label in &labels {
            assert!(
                exported_labels.contains(label),
                "{label} (in `{expr}`) is not an exported label: {exported_labels:?}"
            );
        }
        metrics
    };

    // The namespace and workload variables list the values of exported labels.
    let mut values = vec![("__rate_interval".to_owned(), "5m".to_owned()), ("__range".to_owned(), "5m".to_owned())];
    values.push(("__interval".to_owned(), "1m".to_owned()));
    for (name, value) in [("namespace", "prod|payments"), ("workload", "api"), ("instance", "10.0.0.1:9464")] {
        let query = variable(name)["query"]["query"].as_str().expect("a query variable");
        let inner = query.strip_prefix("label_values(").and_then(|q| q.strip_suffix(')')).expect("label_values(...)");
        let (series, label) = inner.rsplit_once(',').expect("label_values(series, label)");
        let label = label.trim();
        assert!(exported_labels.contains(label), "${name} lists {label}, which is not exported");
        values.push((name.to_owned(), value.to_owned()));
        check_names(&substitute(series, &values));
    }
    values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));

    let mut rules = Vec::new();
    let mut used = BTreeSet::new();
    let panels = panels(&dashboard);
    assert!(panels.len() >= 9, "{} panels", panels.len());
    for panel in &panels {
        let title = panel["title"].as_str().expect("title");
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}: the datasource variable");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("{title} has no query"));
        for target in targets {
            let expr = target["expr"].as_str().filter(|e| !e.trim().is_empty());
            let expr = expr.unwrap_or_else(|| panic!("{title}: a target without a query"));
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}: the datasource variable");
            // The policy metrics are filtered by the server namespace and workload wherever read.
            for metric in ["observer_connections_total", "observer_policy_deviations_total"] {
                for selector in expr.split(metric).skip(1) {
                    let matchers = selector.strip_prefix('{').and_then(|s| s.split_once('}')).map(|(m, _)| m);
                    assert!(
                        matchers.is_some_and(|m| m.contains("$namespace") && m.contains("$workload")),
                        "{title}: {metric} is read without $namespace and $workload in `{expr}`"
                    );
                }
            }
            let expr = substitute(expr, &values);
            used.extend(check_names(&expr));
            let id = panel["id"].as_u64().expect("panel id");
            let refid = target["refId"].as_str().expect("refId");
            rules.push(serde_json::json!({"record": format!("dashboard:panel_{id}_{refid}"), "expr": expr}));
        }
    }
    for metric in [
        "observer_connections_total",
        "observer_policy_deviations_total",
        "observer_capture_lost_total",
        "observer_dissect_errors_total",
        "observer_ebpf_run_time_seconds_total",
        "observer_ebpf_runs_total",
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
    ] {
        assert!(used.contains(metric), "no panel reads {metric}");
    }
    let strict = format!(
        r#"observer_deviation_kind="{}""#,
        observer::export::attributes::spelling(&DeviationKind::WouldBreakUnderStrict)
    );
    assert!(
        rules.iter().any(|r| r["expr"].as_str().is_some_and(|e| e.contains(&strict))),
        "the STRICT-readiness panel selects {strict}"
    );

    // promtool parses every query, wrapped as recording rules (JSON is YAML).
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-rules.yaml");
    let groups = serde_json::json!({"groups": [{"name": "observer-dashboard", "rules": rules}]});
    std::fs::write(&file, serde_json::to_string_pretty(&groups).expect("rules")).expect("rules file");
    let out = std::process::Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool runs (cargo xtask setup installs prometheus)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "promtool check rules {}: the dashboard's queries do not parse:\n{stdout}{}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("SUCCESS: {} rules found", rules.len())), "{stdout}");
}
