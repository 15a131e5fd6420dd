//! deploy/ stays true to the code: every manifest parses, the RBAC grants exactly what the
//! Kubernetes source watches, the DaemonSet holds only the capabilities it needs and passes the
//! flags `observer run` has, and the alert rules use metrics the observer exports.

use std::{collections::BTreeSet, path::PathBuf};

use observer::{
    classify::{Classification, Protocol, Security},
    cluster::{MESH_CONFIG_MAP, Resource},
    export::{
        ConnectionRecord, health,
        metrics::{LegMetrics, ProgramRun, Snapshot},
        telemetry::{OtlpProtocol, Telemetry, TelemetryConfig},
    },
    flows::{LegRecord, ObservedAt, Peer},
    inventory::Owner,
    verdict::{DeviationKind, Status},
};
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every document of a YAML file.
fn documents(relative: &str) -> Vec<Value> {
    let path = deploy_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn manifests() -> Vec<Value> {
    ["kubernetes/namespace.yaml", "kubernetes/rbac.yaml", "kubernetes/daemonset.yaml"]
        .into_iter()
        .flat_map(documents)
        .collect()
}

fn object<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[test]
fn every_file_in_deploy_parses_and_every_manifest_names_its_kind() {
    let mut yaml_files = 0;
    for dir in ["kubernetes", "prometheus"] {
        for entry in std::fs::read_dir(deploy_dir().join(dir)).expect("deploy dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "yaml") {
                yaml_files += 1;
                let relative = path.strip_prefix(deploy_dir()).expect("under deploy").to_string_lossy().into_owned();
                let docs = documents(&relative);
                assert!(!docs.is_empty(), "{relative} is empty");
                if dir == "kubernetes" {
                    for doc in docs {
                        assert!(doc["apiVersion"].is_string() && doc["kind"].is_string(), "{relative}: {doc}");
                    }
                }
            }
        }
    }
    assert_eq!(yaml_files, 5);
}

#[test]
fn rbac_grants_read_access_to_exactly_the_watched_resources() {
    let docs = manifests();
    let mut granted = BTreeSet::new();
    let role = object(&docs, "ClusterRole", "observer");
    for rule in role["rules"].as_array().expect("rules") {
        assert_eq!(strings(&rule["verbs"]), ["get", "list", "watch"], "read-only: {rule}");
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert((group.to_owned(), resource.to_owned()));
                if resource == "configmaps" {
                    assert_eq!(strings(&rule["resourceNames"]), [MESH_CONFIG_MAP], "only the istio ConfigMap");
                } else {
                    assert!(rule["resourceNames"].is_null(), "{rule}");
                }
            }
        }
    }
    let watched: BTreeSet<(String, String)> = Resource::ALL
        .iter()
        .map(|r| {
            let (group, _, _, plural) = r.gvk();
            (group.to_owned(), plural.to_owned())
        })
        .collect();
    assert_eq!(granted, watched);

    let binding = object(&docs, "ClusterRoleBinding", "observer");
    assert_eq!(binding["roleRef"]["name"], "observer");
    assert_eq!(binding["subjects"][0]["name"], "observer");
    assert_eq!(binding["subjects"][0]["namespace"], "observer-system");
    assert_eq!(docs.iter().filter(|d| d["kind"] == "Role" || d["kind"] == "RoleBinding").count(), 0);
}

#[test]
fn the_daemonset_runs_unprivileged_with_the_capabilities_it_needs() {
    let docs = manifests();
    let daemonset = object(&docs, "DaemonSet", "observer");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "observer");
    assert_eq!(pod["hostPID"], true);
    assert!(pod["hostNetwork"].is_null(), "the cgroup root covers every network namespace");
    assert_eq!(pod["tolerations"][0]["operator"], "Exists", "every node");

    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], false);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(strings(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(strings(&security["capabilities"]["add"]), ["BPF", "PERFMON", "NET_ADMIN"]);

    let args = strings(&container["args"]);
    let flag = |name: &str| args.iter().position(|a| *a == name).map(|i| args[i + 1]);
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--kubernetes"));
    assert_eq!(flag("--metrics-addr"), Some("0.0.0.0:9464"));
    let cgroup = flag("--cgroup").expect("--cgroup");
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    let mount = |path: &str| mounts.iter().find(|m| m["mountPath"] == path);
    assert_eq!(mount(cgroup).expect("the cgroup root is mounted")["readOnly"], true);
    assert_eq!(mount("/sys/kernel/btf").expect("BTF is mounted")["readOnly"], true);
    assert_eq!(container["ports"][0]["containerPort"], 9464);

    let env = container["env"].as_array().expect("env");
    let node = env.iter().find(|e| e["name"] == "NODE_NAME").expect("NODE_NAME");
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    for resource in ["requests", "limits"] {
        assert!(container["resources"][resource]["memory"].is_string(), "memory {resource}");
    }
}

/// The Prometheus exposition with every instrument holding a value.
fn exposition() -> String {
    let telemetry = Telemetry::new(&TelemetryConfig {
        prometheus: true,
        otlp_endpoint: None,
        otlp_protocol: OtlpProtocol::Grpc,
        export_interval: None,
        cardinality_limit: 100,
        node: "n".to_owned(),
    })
    .expect("telemetry");
    let meter = telemetry.meter();
    let snapshot = health::SharedSnapshot::default();
    *snapshot.lock().expect("snapshot") = Snapshot {
        lost: vec![("sample_reserve".to_owned(), 1)],
        programs: vec![ProgramRun { program: "observer_skb_egress".to_owned(), run_time_ns: 1, run_count: 1 }],
        watch_errors: vec![("pods", 1)],
        alert_failures: vec![("unreachable", 1)],
        ..Snapshot::default()
    };
    health::register(&meter, &snapshot, Default::default());
    let mut metrics = LegMetrics::new(&meter, 100);
    let addr = "10.0.0.1:80".parse().expect("address");
    let leg = LegRecord {
        leg: 1,
        time: std::time::SystemTime::UNIX_EPOCH,
        client: Peer { addr, process: None },
        server: Peer { addr, process: None },
        observed_at: ObservedAt::Wire,
        classification: Classification {
            security: Security::Plaintext,
            protocol: Protocol::Http1,
            reason: Some(observer::classify::UnknownReason::Truncated),
            tls: None,
        },
    };
    let mut record = ConnectionRecord::from_leg(&leg, "n");
    record.verdict.status = Status::Deviation;
    record.verdict.kind = Some(DeviationKind::UnexpectedPlaintext);
    record.verdict.policy = Some("PeerAuthentication/prod/strict".to_owned());
    let owner = |name: &str| {
        Some(std::sync::Arc::new(Owner { namespace: "prod".into(), kind: "Deployment".into(), name: name.into() }))
    };
    record.client.owner = owner("legacy");
    record.server.owner = owner("api");
    metrics.record(&record);
    let text = telemetry.scrape();
    telemetry.shutdown();
    text
}

#[test]
fn the_alert_rules_use_metrics_the_observer_exports() {
    let text = exposition();
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    // Label names of the series, and the ones Prometheus adds.
    let mut labels: BTreeSet<String> = ["instance", "job"].map(str::to_owned).into();
    for series in text.lines().filter(|l| !l.starts_with('#')) {
        let inside = series.split_once('{').and_then(|(_, rest)| rest.rsplit_once('}')).map_or("", |(l, _)| l);
        labels.extend(
            inside.split("\",").filter_map(|kv| kv.split_once('=')).map(|(k, _)| k.trim_matches(',').to_owned()),
        );
    }
    let rules = documents("prometheus/alerts.yaml");
    let mut used = BTreeSet::new();
    let mut alerts = BTreeSet::new();
    for group in rules[0]["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            if let Some(alert) = rule["alert"].as_str() {
                alerts.insert(alert.to_owned());
            }
            let expr = rule["expr"].as_str().expect("expr");
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("observer_") && word.ends_with("_total") {
                    used.insert(word.to_owned());
                }
            }
            // Every label a rule groups or filters by is one the observer exports.
            for clause in expr.split("by (").skip(1) {
                for label in clause.split(')').next().unwrap_or("").split(',').map(str::trim) {
                    assert!(labels.contains(label), "{label} (in {expr}) is not an exported label: {labels:?}");
                }
            }
            for matcher in expr.split('{').skip(1) {
                for label in
                    matcher.split('}').next().unwrap_or("").split(',').filter_map(|m| m.split(['=', '!']).next())
                {
                    let label = label.trim();
                    assert!(
                        label.is_empty() || labels.contains(label),
                        "{label} in {expr} is not exported: {labels:?}"
                    );
                }
            }
        }
    }
    assert!(used.len() >= 3, "the rules read the observer's metrics: {used:?}");
    for metric in &used {
        assert!(exported.contains(metric), "{metric} is not exported: {exported:?}");
    }
    for alert in ["ObserverUnexpectedPlaintext", "ObserverMissingClientCert", "ObserverCaptureLoss"] {
        assert!(alerts.contains(alert), "{alert} missing");
    }
    let rules_text = std::fs::read_to_string(deploy_dir().join("prometheus/alerts.yaml")).expect("alerts");
    assert!(
        rules_text.contains(
            r#"increase(observer_policy_deviations_total{observer_deviation_kind="unexpected_plaintext"}[5m])"#
        )
    );
    assert!(rules_text.contains("increase(observer_capture_lost_total[5m])"));
}

#[test]
fn promtool_passes_a_test_case_for_every_alert() {
    let dir = deploy_dir().join("prometheus");
    let out = std::process::Command::new("promtool")
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(&dir)
        .output()
        .expect("promtool runs (cargo xtask setup installs prometheus)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "promtool test rules failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let tests = std::fs::read_to_string(dir.join("alerts.test.yaml")).expect("alerts.test.yaml");
    let rules = documents("prometheus/alerts.yaml");
    for group in rules[0]["groups"].as_array().expect("groups") {
        for alert in group["rules"].as_array().expect("rules").iter().filter_map(|r| r["alert"].as_str()) {
            let cases = tests.matches(&format!("alertname: {alert}")).count();
            assert!(cases >= 2, "{alert} needs a firing and a silent case in alerts.test.yaml, has {cases}");
        }
    }
}
