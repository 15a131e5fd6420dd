//! Loading: every error at once with file:line, skipped kinds, duplicates, mesh settings,
//! timestamps, and no panic on hostile YAML.

use std::path::Path;

use super::load_paths;
use crate::{
    load_str,
    manifest::parse_timestamp,
    policy::{Policy, tests::testdata},
};

#[test]
fn every_error_is_reported_at_once_with_file_and_line() {
    let Err(errors) = load_paths(&[testdata("invalid")]) else { panic!("invalid fixtures loaded") };
    let got: Vec<String> = errors
        .0
        .iter()
        .map(|e| {
            format!("{}:{}", e.file.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(), e.line)
        })
        .collect();
    let text = errors.to_string();
    assert_eq!(
        got,
        [
            "broken.yaml:6",
            "broken.yaml:8",
            "broken.yaml:11",
            "broken.yaml:17",
            "broken.yaml:27",
            "broken.yaml:36",
            "broken.yaml:38",
            "second.yaml:4",
            "second.yaml:11"
        ],
        "{text}"
    );
    for needle in [
        "STRIKT",
        "\"http\"",
        "metadata.name is required",
        "security.istio.io/v2",
        "MUTAUL",
        "minTLSVersion",
        "10.0.0.300",
        "encrypted",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[test]
fn unknown_kinds_are_skipped_and_empty_documents_ignored() {
    let text = "---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n";
    let mesh = load_str(Path::new("x.yaml"), text).map_err(|e| e.to_string());
    assert!(mesh.is_ok_and(|s| s.policy.peer_authentications.is_empty() && s.inventory.is_empty()));
}

#[test]
fn duplicate_objects_are_rejected() {
    let doc = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: n}\n";
    let Err(errors) = load_str(Path::new("d.yaml"), &format!("{doc}---\n{doc}")) else { panic!("duplicate accepted") };
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, 6);
    assert!(errors.to_string().contains("also defined at d.yaml:2"), "{errors}");
}

#[test]
fn mesh_settings_come_from_the_istio_config_map() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    rootNamespace: mesh-root\n    enableAutoMtls: false\n    trustDomain: example.org\n    defaultConfig: {discoveryAddress: istiod:15012}\n";
    let mesh = load_str(Path::new("m.yaml"), text).map(|s| s.policy.mesh).map_err(|e| e.to_string());
    let mesh = mesh.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (mesh.root_namespace.as_str(), mesh.auto_mtls, mesh.trust_domain.as_str()),
        ("mesh-root", false, "example.org")
    );
    assert_eq!(Policy::default().mesh.root_namespace, "istio-system");
    assert!(Policy::default().mesh.auto_mtls);
}

#[test]
fn timestamps_parse_with_offsets() {
    assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_timestamp("2024-03-01T10:00:00+02:00"), parse_timestamp("2024-03-01T08:00:00Z"));
    assert_eq!(parse_timestamp("2024-03-01T08:00:00.5Z"), parse_timestamp("2024-03-01T08:00:00Z"));
    for bad in ["", "yesterday", "2024-13-01T00:00:00Z", "2024-03-01T08:00:00", "2024-03-01T08:00:00+2"] {
        assert_eq!(parse_timestamp(bad), None, "{bad}");
    }
}

#[test]
fn hostile_yaml_is_an_error_not_a_panic() {
    let deep =
        format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let anchors = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n";
    let inputs = [
        deep.as_str(),
        anchors,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nstatus: {podIP: [1, 2]}\n",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {portLevelMtls: {99999999999999999999: {mode: STRICT}}}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: '*.*', trafficPolicy: {portLevelSettings: [{port: {number: -1}}]}}\n",
        "\u{feff}apiVersion: v1\r\nkind: Service\r\nmetadata: {name: s}\r\nspec: {clusterIP: 'x', ports: [{port: 0, targetPort: '99999'}]}\r\n",
        "---\n---\n...\n\u{0}\u{1}",
        "apiVersion: observer.dev/v1alpha1\nkind: Expectation\nmetadata: {name: e}\nspec: {rules: [{security: tls, to: {addresses: ['10.0.0.0/99', '::/0']}}]}\n",
    ];
    for input in inputs {
        // Either outcome is fine; returning is the point.
        let _ = load_str(Path::new("hostile.yaml"), input);
    }
}

#[test]
fn list_documents_load_every_item_with_its_line() {
    let text = "\
apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: d, namespace: shop}
  spec: {selector: {matchLabels: {app: cart}}, template: {spec: {containers: [{name: c}]}}}
- apiVersion: v1
  kind: Pod
  metadata: {name: cart-1, namespace: shop, labels: {app: cart}}
  spec: {containers: [{name: app}, {name: istio-proxy}]}
  status: {podIP: 10.0.0.7}
- apiVersion: v1
  kind: Service
  metadata: {name: cart, namespace: shop}
  spec: {clusterIP: 10.96.0.7, selector: {app: cart}, ports: [{port: 80}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: cart-2, namespace: shop}
  status: {podIP: not-an-ip}
";
    let Err(errors) = load_str(Path::new("list.yaml"), text) else { panic!("bad pod IP accepted") };
    assert_eq!(errors.0.iter().map(|e| e.line).collect::<Vec<_>>(), [21], "{errors}");
    let fixed = text.replace("not-an-ip", "10.0.0.8");
    let mesh = load_str(Path::new("list.yaml"), &fixed).unwrap_or_else(|e| panic!("{e}"));
    let pods: Vec<_> = mesh.inventory.pods().iter().map(|p| (p.workload(), p.meta.origin.line)).collect();
    assert_eq!(pods, [("shop/cart-1".to_owned(), 10), ("shop/cart-2".to_owned(), 19)]);
    assert_eq!(mesh.inventory.services().len(), 1);
}

#[test]
fn yaml_errors_name_the_field_and_every_one_is_reported() {
    let text = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a, namespace: web}\nspec:\n  mtls: {mode: [1, 2]}\n  selector: 5\n";
    let Err(errors) = load_str(Path::new("types.yaml"), text) else { panic!("loaded") };
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("types.yaml:5: spec.mtls.mode: expected"), "{lines:?}");
    assert!(lines[1].starts_with("types.yaml:6: spec.selector: expected"), "{lines:?}");
}

#[test]
fn parser_internals_do_not_leak_into_messages() {
    let duplicate = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, name: b}\n";
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 0..12 {
        let prev = if i == 0 { "a".to_owned() } else { format!("b{}", i - 1) };
        bomb.push_str(&format!("  b{i}: &b{i} [{}]\n", vec![format!("*{prev}"); 10].join(", ")));
    }
    for (name, text) in [("duplicate.yaml", duplicate), ("bomb.yaml", bomb.as_str())] {
        let Err(errors) = load_str(Path::new(name), text) else { panic!("{name} loaded") };
        let message = errors.to_string();
        for internal in ["DuplicateKeyPolicy", "Options", "budget breached", "Nodes {", "defined at"] {
            assert!(!message.contains(internal), "{name}: {message}");
        }
        assert_eq!(errors.0.len(), 1, "{name}: {message}");
    }
    let Err(errors) = load_str(Path::new("d.yaml"), duplicate) else { panic!("loaded") };
    assert_eq!(errors.to_string(), "d.yaml:3: metadata: key \"name\" appears twice in one mapping");
}

#[test]
fn a_list_reports_the_errors_of_every_item_with_its_index() {
    let Err(errors) = load_paths(&[testdata("invalid-list")]) else { panic!("invalid List loaded") };
    let lines: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", e.line, e.kind))
        .map(|l| l.split(": expected").next().unwrap_or(&l).to_owned())
        .collect();
    assert_eq!(
        lines,
        [
            "17: items[1].spec.mtls.mode",
            "25: items[2].metadata.labels[0]",
            "35: items[3].spec.trafficPolicy.portLevelSettings[0].port.number: invalid u32",
            "37: items[3].spec.trafficPolicy.tls[0]",
            "42: items[4].spec.ports",
            "47: PeerAuthentication: unknown mTLS mode \"STRIKT\" (expected UNSET, DISABLE, PERMISSIVE or STRICT)",
        ],
        "{errors}"
    );
}

/// A List of `bad` PeerAuthentications whose mode is a list.
fn bad_list(bad: usize) -> String {
    let mut text = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..bad {
        text.push_str(&format!(
            "- apiVersion: security.istio.io/v1\n  kind: PeerAuthentication\n  metadata: {{name: p{i}}}\n  spec: {{mtls: {{mode: [{i}]}}}}\n"
        ));
    }
    text
}

#[test]
fn a_list_reports_a_bounded_number_of_errors_and_counts_the_others() {
    let text = bad_list(40);
    let Err(errors) = load_str(Path::new("many.yaml"), &text) else { panic!("loaded") };
    let lines: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 33, "{errors}");
    for (i, line) in lines[..32].iter().enumerate() {
        let at = 4 + 4 * i + 3;
        assert!(line.starts_with(&format!("many.yaml:{at}: items[{i}].spec.mtls.mode: expected")), "{line}");
    }
    assert_eq!(lines[32], format!("many.yaml:{}: 8 more errors in this List not shown (the first 32 are)", 3 + 4 * 40));
    // Thousands of bad items: a bounded number of readings, and the count says it stopped.
    let text = bad_list(2000);
    let Err(errors) = load_str(Path::new("more.yaml"), &text) else { panic!("loaded") };
    assert_eq!(errors.0.len(), 33, "{errors}");
    let last = errors.0.last().map(ToString::to_string).unwrap_or_default();
    assert!(last.ends_with(": at least 96 more errors in this List not shown (the first 32 are)"), "{last}");
}
