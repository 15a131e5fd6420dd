//! `observer check PATH...`: static analysis of mesh policy manifests. Prints one finding per
//! line (`file:line: kind: message`) on stdout; exits 0 when clean, 1 with findings, 2 when the
//! input cannot be read or is invalid (every error printed at once on stderr, `file:line: ...`).

use std::{io::Write, path::PathBuf, process::ExitCode};

use observer_mesh::{check::check, load_paths_requiring_manifests};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// YAML files or directories of Kubernetes manifests.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Exit status: no findings.
pub const CLEAN: u8 = 0;
/// Exit status: findings.
pub const FINDINGS: u8 = 1;
/// Exit status: unreadable or invalid input.
pub const INVALID: u8 = 2;

/// Checks the manifests under `paths`, writing findings to `out` and errors to `err`.
pub fn check_paths(paths: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<u8> {
    let snapshot = match load_paths_requiring_manifests(paths) {
        Ok(snapshot) => snapshot,
        Err(errors) => {
            for error in &errors.0 {
                writeln!(err, "{error}")?;
            }
            writeln!(err, "observer check: {} error(s); nothing checked", errors.0.len())?;
            return Ok(INVALID);
        }
    };
    let findings = check(&snapshot);
    for finding in &findings {
        writeln!(out, "{finding}")?;
    }
    if findings.is_empty() {
        Ok(CLEAN)
    } else {
        writeln!(err, "observer check: {} finding(s) in {} file(s)", findings.len(), snapshot.files.len())?;
        Ok(FINDINGS)
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let code = check_paths(&args.paths, &mut std::io::stdout().lock(), &mut std::io::stderr().lock())?;
    Ok(ExitCode::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mesh crate's manifest fixtures.
    fn testdata(name: &str) -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../observer-mesh/testdata").join(name)
    }

    fn run_check(paths: &[PathBuf]) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = check_paths(paths, &mut out, &mut err).unwrap_or_else(|e| panic!("{e}"));
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (code, text(out), text(err))
    }

    /// `file:line: kind` of each finding line, file names only.
    fn findings(out: &str) -> Vec<String> {
        out.lines()
            .map(|line| {
                let mut parts = line.splitn(4, ": ");
                let at = parts.next().unwrap_or("");
                let kind = parts.next().unwrap_or("");
                let file = at.rsplit('/').next().unwrap_or(at);
                format!("{file}: {kind}")
            })
            .collect()
    }

    #[test]
    fn every_documented_mistake_is_found_with_its_line() {
        let (code, out, err) = run_check(&[testdata("check/mistakes")]);
        assert_eq!(code, FINDINGS, "{err}");
        assert_eq!(
            findings(&out),
            [
                "gateway.yaml:33: double_tls",
                "gateway.yaml:37: gateway_virtual_service_mismatch",
                "gateway.yaml:47: gateway_virtual_service_mismatch",
                "security.yaml:10: missing_ca",
                "security.yaml:15: mutual_without_client_cert",
                "security.yaml:26: tls_to_http_port",
                "security.yaml:35: tls_to_http_port",
                "security.yaml:38: port_level_without_selector",
                "security.yaml:46: disable_ignored_by_auto_mtls",
            ],
            "{out}"
        );
        assert!(out.contains("Gateway istio-system/passthrough port 443 passes the client's TLS through to my-nginx.web.svc.cluster.local"), "{out}");
    }

    #[test]
    fn clean_manifests_have_no_findings() {
        let (code, out, err) = run_check(&[testdata("check/clean")]);
        assert_eq!((code, out.as_str()), (CLEAN, ""), "{err}");
        // The mesh fixture keeps one real mistake: pod-d's DISABLE that auto mTLS clients ignore.
        let (code, out, _) = run_check(&[testdata("mesh.yaml")]);
        assert_eq!((code, findings(&out)), (FINDINGS, vec!["mesh.yaml:147: disable_ignored_by_auto_mtls".to_owned()]));
    }

    #[test]
    fn invalid_input_exits_2_with_every_error() {
        let missing = testdata("check/does-not-exist.yaml");
        let (code, out, err) = run_check(&[testdata("invalid"), missing]);
        assert_eq!((code, out.as_str()), (INVALID, ""));
        assert_eq!(err.lines().filter(|l| l.contains(".yaml")).count(), 10, "{err}");
        assert!(err.contains("does-not-exist.yaml: cannot read"), "{err}");
    }

    /// A scratch folder of one test.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("observer-check-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    #[test]
    fn findings_and_errors_are_escaped_for_the_terminal() {
        let dir = scratch("escape");
        // A subset name that would erase the line above and print a clean verdict, in a file
        // whose name splits the line.
        let rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: no-ca, namespace: shop}\nspec:\n  host: api.external.com\n  subsets:\n  - name: \"v2\\e[1A\\e[2Kclean\"\n    trafficPolicy: {tls: {mode: SIMPLE}}\n";
        std::fs::write(dir.join("a\nb.yaml"), rule).unwrap_or_else(|e| panic!("{e}"));
        let (code, out, err) = run_check(std::slice::from_ref(&dir));
        assert_eq!(code, FINDINGS, "{err}");
        assert!(!out.contains('\x1b') && out.lines().count() == 1, "{out:?}");
        assert!(out.contains("a\\nb.yaml:8: missing_ca") && out.contains("v2\\x1b[1A\\x1b[2Kclean"), "{out}");
        // Object names are checked as Kubernetes checks them; the error shows the name escaped.
        let named = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: \"x\\e[2Ky\", namespace: web}\n";
        std::fs::write(dir.join("a\nb.yaml"), named).unwrap_or_else(|e| panic!("{e}"));
        let (code, _, err) = run_check(std::slice::from_ref(&dir));
        assert_eq!(code, INVALID, "{err}");
        assert!(!err.contains('\x1b'), "{err:?}");
        assert!(err.contains("metadata.name \"x\\x1b[2Ky\" is not a DNS subdomain"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    }
}
