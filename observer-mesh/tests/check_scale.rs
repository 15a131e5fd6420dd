//! `check` on many PeerAuthentications: the namespace policy is indexed once, not searched per
//! object (72k objects took 45 s when it was). A generous size, and the index answering as the
//! per-namespace search does.

use std::path::Path;

use observer_mesh::{check::check, load_str};

#[test]
fn many_peer_authentications_are_checked_in_one_pass() {
    const N: usize = 20_000;
    let mut text = String::from(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n",
    );
    for i in 0..N {
        text.push_str(&format!(
            "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: legacy, namespace: ns-{i}}}\nspec: {{selector: {{matchLabels: {{app: a}}}}, mtls: {{mode: DISABLE}}}}\n"
        ));
        if i % 2 == 0 {
            text.push_str(&format!(
                "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: ns, namespace: ns-{i}}}\nspec: {{mtls: {{mode: PERMISSIVE}}}}\n"
            ));
        }
    }
    let mesh = load_str(Path::new("many.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let findings = check(&mesh);
    assert_eq!(findings.len(), N, "every workload DISABLE is ignored by auto mTLS");
    let modes = mesh.policy.namespace_modes();
    for ns in ["istio-system", "ns-0", "ns-1", "ns-19998", "ns-19999", "absent"] {
        assert_eq!(modes.get(ns), mesh.policy.namespace_mtls(ns), "{ns}");
    }
}
