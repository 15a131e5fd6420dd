//! What the Kubernetes schemas cannot tell about the chart: that the Prometheus Operator's
//! custom resources are well formed and point at the right Service, pods and rules; that every
//! value of `ci/all-options-values.yaml` reaches the objects; that the DaemonSet passes only
//! flags `observer run` has; and that values the observer could not run with are refused.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::{chart::Rendered, cmd};

/// Keys the Prometheus Operator's CRDs define, for the fields the chart sets.
const MONITOR_SPEC: [&str; 4] = ["selector", "namespaceSelector", "endpoints", "podMetricsEndpoints"];
const ENDPOINT: [&str; 6] = ["port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings"];
const RELABEL: [&str; 7] = ["sourceLabels", "separator", "targetLabel", "regex", "modulus", "replacement", "action"];
const RULE: [&str; 7] = ["alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"];

fn keys(value: &Value) -> BTreeSet<&str> {
    value.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default()
}

fn unknown_keys(what: &str, value: &Value, allowed: &[&str], problems: &mut Vec<String>) {
    if !value.is_object() {
        problems.push(format!("{what} is not a mapping: {value}"));
    }
    for key in keys(value).into_iter().filter(|k| !allowed.contains(k)) {
        problems.push(format!("{what} has the unknown field {key}"));
    }
}

/// A Prometheus duration (`30s`, `1m30s`), as the CRDs' pattern has it.
fn is_duration(text: &str) -> bool {
    let mut rest = text;
    let mut units = ["y", "w", "d", "h", "m", "s", "ms"].iter().peekable();
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        let after = &rest[digits..];
        // "ms" before "m": try the longest unit that still comes later in the order.
        let Some(unit) = units.clone().filter(|u| after.starts_with(**u)).max_by_key(|u| u.len()) else {
            return false;
        };
        while units.peek().is_some_and(|u| *u != unit) {
            units.next();
        }
        units.next();
        rest = &after[unit.len()..];
        any = true;
    }
    any
}

/// Labels `selector` matches are all on `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector.as_object().is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

fn monitor_endpoint(what: &str, endpoint: &Value, problems: &mut Vec<String>) {
    unknown_keys(what, endpoint, &ENDPOINT, problems);
    for field in ["interval", "scrapeTimeout"] {
        if let Some(d) = endpoint.get(field)
            && !d.as_str().is_some_and(is_duration)
        {
            problems.push(format!("{what}.{field} is not a duration: {d}"));
        }
    }
    for field in ["relabelings", "metricRelabelings"] {
        for relabel in endpoint[field].as_array().into_iter().flatten() {
            unknown_keys(&format!("{what}.{field}[]"), relabel, &RELABEL, problems);
        }
    }
}

/// ServiceMonitor, PodMonitor and PrometheusRule of a render that has all three.
pub fn custom_resources(rendered: &Rendered, alert_groups: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let found = |kind| rendered.object(kind).map_err(|e| e.to_string());
    let (service, daemonset) = match (found("Service"), found("DaemonSet")) {
        (Ok(s), Ok(d)) => (s, d),
        (s, d) => return vec![format!("{:?} {:?}", s.err(), d.err())],
    };
    let pod = &daemonset["spec"]["template"];
    for kind in ["ServiceMonitor", "PodMonitor", "PrometheusRule"] {
        let object = match found(kind) {
            Ok(o) => o,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if object["apiVersion"] != "monitoring.coreos.com/v1" {
            problems.push(format!("{kind}: apiVersion {}", object["apiVersion"]));
        }
        if object["metadata"]["namespace"] != daemonset["metadata"]["namespace"] {
            problems.push(format!("{kind} is not in the observer's namespace"));
        }
        let spec = &object["spec"];
        match kind {
            "PrometheusRule" => {
                unknown_keys(kind, spec, &["groups"], &mut problems);
                if spec["groups"] != *alert_groups || !alert_groups.is_array() {
                    problems.push("PrometheusRule groups differ from deploy/prometheus/alerts.yaml".to_owned());
                }
                for rule in
                    spec["groups"].as_array().into_iter().flatten().flat_map(|g| g["rules"].as_array()).flatten()
                {
                    unknown_keys("PrometheusRule rule", rule, &RULE, &mut problems);
                    if rule["alert"].is_string() == rule["record"].is_string() || !rule["expr"].is_string() {
                        problems.push(format!("PrometheusRule rule needs alert or record, and expr: {rule}"));
                    }
                }
            }
            _ => {
                unknown_keys(kind, spec, &MONITOR_SPEC, &mut problems);
                let namespaces = &spec["namespaceSelector"]["matchNames"];
                if namespaces != &json!([daemonset["metadata"]["namespace"]]) {
                    problems.push(format!("{kind} namespaceSelector: {namespaces}"));
                }
                let (endpoints, labels, ports) = if kind == "ServiceMonitor" {
                    (&spec["endpoints"], &service["metadata"]["labels"], &service["spec"]["ports"])
                } else {
                    (&spec["podMetricsEndpoints"], &pod["metadata"]["labels"], &pod["spec"]["containers"][0]["ports"])
                };
                if !selects(&spec["selector"]["matchLabels"], labels) {
                    problems.push(format!("{kind} selector does not select the observer's {}", labels));
                }
                let names: Vec<&Value> = ports.as_array().into_iter().flatten().map(|p| &p["name"]).collect();
                for (i, endpoint) in endpoints.as_array().into_iter().flatten().enumerate() {
                    monitor_endpoint(&format!("{kind} endpoint {i}"), endpoint, &mut problems);
                    if !names.contains(&&endpoint["port"]) {
                        problems.push(format!("{kind} endpoint {i} port {} is not one of {names:?}", endpoint["port"]));
                    }
                }
                if endpoints.as_array().is_none_or(Vec::is_empty) {
                    problems.push(format!("{kind} has no endpoints"));
                }
            }
        }
    }
    problems
}

/// Each value of ci/all-options-values.yaml where the objects show it.
pub fn all_options(rendered: &Rendered, values: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let get = |kind| rendered.object(kind).cloned().unwrap_or(Value::Null);
    let (daemonset, service, account, config_map) =
        (get("DaemonSet"), get("Service"), get("ServiceAccount"), get("ConfigMap"));
    let template = &daemonset["spec"]["template"];
    let pod = &template["spec"];
    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let flag = |name: &str| args.iter().position(|a| *a == name).and_then(|i| args.get(i + 1)).copied();
    let v = |pointer: &str| values.pointer(pointer).cloned().unwrap_or(Value::Null);
    let port = v("/metrics/port");
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            problems.push(format!("all-options render: {what}"));
        }
    };

    expect(
        "image repository@digest",
        container["image"]
            == format!(
                "{}@{}",
                v("/image/repository").as_str().unwrap_or(""),
                v("/image/digest").as_str().unwrap_or("")
            ),
    );
    expect("image.pullPolicy", container["imagePullPolicy"] == v("/image/pullPolicy"));
    expect("imagePullSecrets", pod["imagePullSecrets"] == v("/imagePullSecrets"));
    expect("fullnameOverride", daemonset["metadata"]["name"] == v("/fullnameOverride"));
    expect("nameOverride", daemonset["metadata"]["labels"]["app.kubernetes.io/name"] == v("/nameOverride"));
    expect(
        "serviceAccount.name",
        pod["serviceAccountName"] == v("/serviceAccount/name")
            && account["metadata"]["name"] == v("/serviceAccount/name"),
    );
    expect("serviceAccount.annotations", account["metadata"]["annotations"] == v("/serviceAccount/annotations"));
    let binding = get("ClusterRoleBinding");
    expect("the binding names the service account", binding["subjects"][0]["name"] == v("/serviceAccount/name"));

    let mount_path = v("/policy/configMap/mountPath");
    expect(
        "policy.source configMap: --policy MOUNT",
        flag("--policy") == mount_path.as_str() && !args.contains(&"--kubernetes"),
    );
    expect("no API token without the API source", pod["automountServiceAccountToken"] == false);
    let mounted = container["volumeMounts"].as_array().into_iter().flatten().find(|m| m["mountPath"] == mount_path);
    let volume =
        pod["volumes"].as_array().into_iter().flatten().find(|vol| Some(&vol["name"]) == mounted.map(|m| &m["name"]));
    expect(
        "the policy ConfigMap is mounted",
        volume.is_some_and(|vol| vol["configMap"]["name"] == config_map["metadata"]["name"]),
    );
    let manifests = v("/policy/configMap/manifests");
    let data_matches = manifests.as_object().is_some_and(|m| {
        m.len() == keys(&config_map["data"]).len()
            && m.iter()
                .all(|(file, text)| config_map["data"][file].as_str().map(str::trim) == text.as_str().map(str::trim))
    });
    expect("policy.configMap.manifests are the ConfigMap's data", data_matches);

    expect(
        "metrics.port",
        container["ports"][0]["containerPort"] == port && service["spec"]["ports"][0]["port"] == port,
    );
    expect("--metrics-addr 0.0.0.0:PORT", flag("--metrics-addr") == Some(format!("0.0.0.0:{port}").as_str()));
    expect(
        "metrics.scrapeAnnotations false",
        template["metadata"]["annotations"].get("prometheus.io/scrape").is_none(),
    );
    expect("metrics.service.annotations", service["metadata"]["annotations"] == v("/metrics/service/annotations"));
    for (kind, key) in [("ServiceMonitor", "serviceMonitor"), ("PodMonitor", "podMonitor")] {
        let monitor = get(kind);
        let endpoints = if kind == "ServiceMonitor" { "endpoints" } else { "podMetricsEndpoints" };
        let endpoint = &monitor["spec"][endpoints][0];
        for field in ["interval", "scrapeTimeout", "relabelings", "metricRelabelings"] {
            expect(&format!("metrics.{key}.{field}"), endpoint[field] == v(&format!("/metrics/{key}/{field}")));
        }
        expect(
            &format!("metrics.{key}.labels"),
            selects(&v(&format!("/metrics/{key}/labels")), &monitor["metadata"]["labels"]),
        );
    }
    expect(
        "metrics.prometheusRule.labels",
        selects(&v("/metrics/prometheusRule/labels"), &get("PrometheusRule")["metadata"]["labels"]),
    );

    expect("otlp.endpoint", flag("--otlp-endpoint") == v("/otlp/endpoint").as_str());
    expect("otlp.protocol", flag("--otlp-protocol") == v("/otlp/protocol").as_str());
    expect("alertmanager.url", flag("--alertmanager") == v("/alertmanager/url").as_str());
    expect("output", flag("--output") == v("/output").as_str());
    let extra: Vec<&str> = values["extraArgs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    expect("extraArgs come last", !extra.is_empty() && args.ends_with(&extra));
    let env = container["env"].as_array().cloned().unwrap_or_default();
    expect("logLevel is RUST_LOG", env.iter().any(|e| e["name"] == "RUST_LOG" && e["value"] == v("/logLevel")));
    let contains_all = |have: &Value, want: &Value| {
        want.as_array()
            .is_some_and(|w| !w.is_empty() && w.iter().all(|x| have.as_array().is_some_and(|h| h.contains(x))))
    };
    expect("extraEnv", contains_all(&container["env"], &v("/extraEnv")));
    expect("extraVolumes", contains_all(&pod["volumes"], &v("/extraVolumes")));
    expect("extraVolumeMounts", contains_all(&container["volumeMounts"], &v("/extraVolumeMounts")));

    let security = &container["securityContext"];
    expect(
        "capabilities",
        security["capabilities"]["add"] == v("/capabilities") && security["capabilities"]["drop"] == json!(["ALL"]),
    );
    expect("seccompProfile", security["seccompProfile"] == v("/seccompProfile"));
    expect("hostPID", pod["hostPID"] == v("/hostPID"));
    let bpffs = pod["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|vol| vol["hostPath"]["path"] == v("/hostPaths/bpffs/path"));
    expect("pin.enabled false: no --pin", v("/pin/enabled") == false && flag("--pin").is_none());
    expect(
        "hostPaths.bpffs",
        bpffs.is_some()
            && container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"] == "/sys/fs/bpf" && m["readOnly"] == true),
    );
    expect("resources", container["resources"] == v("/resources"));
    for (field, pointer) in [
        ("priorityClassName", "/priorityClassName"),
        ("tolerations", "/tolerations"),
        ("nodeSelector", "/nodeSelector"),
        ("affinity", "/affinity"),
        ("terminationGracePeriodSeconds", "/terminationGracePeriodSeconds"),
    ] {
        expect(field, pod[field] == v(pointer));
    }
    expect("updateStrategy", daemonset["spec"]["updateStrategy"] == v("/updateStrategy"));
    expect("podAnnotations", selects(&v("/podAnnotations"), &template["metadata"]["annotations"]));
    expect("podLabels", selects(&v("/podLabels"), &template["metadata"]["labels"]));
    problems
}

/// Every `--flag` the DaemonSets pass is one `observer run --help` lists.
pub fn flags_exist(renders: &[&Rendered]) -> Result<Vec<String>> {
    let help = std::process::Command::new(cmd::observer_bin())
        .args(["run", "--help"])
        .output()
        .context("observer run --help")?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let known: BTreeSet<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '=')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    anyhow::ensure!(
        known.contains("--cgroup") && known.contains("--kubernetes"),
        "observer run --help lists no flags:\n{help}"
    );
    let mut problems = Vec::new();
    for rendered in renders {
        let daemonset = rendered.object("DaemonSet")?;
        for arg in daemonset["spec"]["template"]["spec"]["containers"][0]["args"].as_array().into_iter().flatten() {
            let Some(arg) = arg.as_str().filter(|a| a.starts_with("--")) else { continue };
            if !known.contains(arg) {
                problems.push(format!("the DaemonSet passes {arg}, which `observer run` does not have"));
            }
        }
    }
    Ok(problems)
}

/// Values the chart must refuse, each with the words its error must contain.
pub const REFUSED_VALUES: [(&str, &str); 8] = [
    ("pin: {enabled: true, dir: ../etc}", "pin.dir must be one directory name"),
    ("pin: {enabled: true, dir: a/b}", "pin.dir must be one directory name"),
    ("policy: {source: files}", "policy.source must be kubernetes or configMap"),
    ("policy: {source: configMap}", "needs policy.configMap.name"),
    ("policy: {source: configMap, configMap: {manifests: {\"../etc/passwd\": \"x\"}}}", "is not a file name"),
    ("output: yaml", "output must be json or table"),
    ("metrics: {port: 70000}", "metrics.port must be 1-65535"),
    ("serviceAccount: {create: false}", "serviceAccount.name must name an existing service account"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_those_of_prometheus() {
        for good in ["30s", "1m30s", "500ms", "1h", "2d12h", "0s"] {
            assert!(is_duration(good), "{good}");
        }
        for bad in ["", "30", "s", "1s1m", "1x", "-1s", "1.5s", "30s "] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn a_selector_selects_only_when_every_label_matches() {
        let labels = json!({"a": "1", "b": "2"});
        assert!(selects(&json!({"a": "1"}), &labels));
        assert!(!selects(&json!({"a": "2"}), &labels));
        assert!(!selects(&json!({"c": "1"}), &labels));
        assert!(!selects(&json!({}), &labels), "an empty selector selects everything: refused");
    }
}
