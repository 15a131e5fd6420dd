//! A throwaway PKI made with the `openssl` CLI: one CA and leaf certificates (RSA-2048 or ECDSA
//! P-256) with DNS SANs and an optional SPIFFE URI SAN, as Istio workload certificates carry.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::{cmd, tempdir::TempDir};

/// The key algorithm of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa2048,
    EcdsaP256,
}

impl KeyType {
    fn newkey_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Rsa2048 => &["-newkey", "rsa:2048"],
            KeyType::EcdsaP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        }
    }
}

/// A leaf certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate then key in one file (what HAProxy's `crt` takes).
    pub combined: PathBuf,
    pub spiffe_id: Option<String>,
}

/// A CA in a temporary directory (removed on drop).
#[derive(Debug)]
pub struct Pki {
    dir: TempDir,
    ca_cert: PathBuf,
    ca_key: PathBuf,
}

/// The SPIFFE identity Istio gives a service account.
pub fn spiffe_id(namespace: &str, service_account: &str) -> String {
    format!("spiffe://cluster.local/ns/{namespace}/sa/{service_account}")
}

impl Pki {
    /// Creates the CA (RSA-2048, valid one day).
    pub fn new() -> anyhow::Result<Self> {
        let dir = TempDir::new("pki")?;
        let ca_cert = dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        let (cert, key) = (path_str(&ca_cert)?, path_str(&ca_key)?);
        cmd::run(
            "openssl",
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "1",
                "-subj",
                "/O=observer-e2e/CN=observer-e2e test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        )?;
        chmod_readable(&ca_key)?;
        Ok(Self { dir, ca_cert, ca_key })
    }

    /// The CA certificate (what verifiers take as `-CAfile` / `ca-file`).
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a leaf for server and client use, valid one day. `name` names the files and the
    /// subject CN; `dns` become DNS SANs; `spiffe` (see [`spiffe_id`]) a URI SAN.
    pub fn issue(&self, name: &str, key_type: KeyType, dns: &[&str], spiffe: Option<&str>) -> anyhow::Result<Leaf> {
        let cert = self.dir.join(&format!("{name}.crt"));
        let key = self.dir.join(&format!("{name}.key"));
        let csr = self.dir.join(&format!("{name}.csr"));
        let mut sans: Vec<String> = dns.iter().map(|d| format!("DNS:{d}")).collect();
        if let Some(uri) = spiffe {
            sans.push(format!("URI:{uri}"));
        }
        let mut ext = String::from(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth,clientAuth\n",
        );
        if !sans.is_empty() {
            ext.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        let extfile = self.dir.write(&format!("{name}.ext"), ext.as_bytes())?;
        let mut req = vec!["req", "-new", "-nodes"];
        req.extend_from_slice(key_type.newkey_args());
        let subject = format!("/O=observer-e2e/CN={name}");
        req.extend_from_slice(&["-keyout", path_str(&key)?, "-out", path_str(&csr)?, "-subj", &subject]);
        cmd::run("openssl", &req)?;
        cmd::run(
            "openssl",
            [
                "x509",
                "-req",
                "-in",
                path_str(&csr)?,
                "-CA",
                path_str(&self.ca_cert)?,
                "-CAkey",
                path_str(&self.ca_key)?,
                "-CAcreateserial",
                "-days",
                "1",
                "-sha256",
                "-extfile",
                path_str(&extfile)?,
                "-out",
                path_str(&cert)?,
            ],
        )?;
        let mut pem = std::fs::read(&cert).context("cannot read issued certificate")?;
        pem.extend(std::fs::read(&key).context("cannot read issued key")?);
        let combined = self.dir.write(&format!("{name}.pem"), &pem)?;
        chmod_readable(&key)?;
        Ok(Leaf { cert, key, combined, spiffe_id: spiffe.map(str::to_owned) })
    }
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().with_context(|| format!("non-UTF-8 path {}", path.display()))
}

/// Keys are test material in a throwaway dir; the sidecar runs as uid 1337 and must read them.
fn chmod_readable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot chmod {}", path.display()))
}
