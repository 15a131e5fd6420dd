//! Real peers: a plaintext HTTP server (python3), `openssl s_server`, and the clients curl and
//! `openssl s_client`. Servers listen dual-stack (`[::]`), so one serves IPv4, IPv6 and loopback.

use std::{net::IpAddr, path::PathBuf};

use crate::{
    pki::Leaf,
    process::{Child, ClientRun, Spawn},
    tempdir::TempDir,
};

/// Debian's python3 by absolute path: a pyenv shim on PATH would be a shell script, and the
/// observer would report `comm` "bash" instead of "python3".
pub const PYTHON: &str = "/usr/bin/python3";

/// `ip:port` with brackets for IPv6, as `-connect` and URLs want it.
pub fn host_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

/// An ALPN list of about `bytes` bytes: the real `h2`, `http/1.1` first, then long filler
/// protocol names (120 bytes each, so that 1.4 KB stays within the 16 entries a dissector may
/// keep), to make a ClientHello that spans several segments on a small MTU (OpenSSL 3.0 has no
/// post-quantum key share, which would do the same).
pub fn padding_alpn(bytes: usize) -> Vec<String> {
    const NAME_LEN: usize = 120;
    let mut list = vec!["h2".to_owned(), "http/1.1".to_owned()];
    let mut size = 12;
    let mut i = 0;
    while size < bytes {
        let prefix = format!("observer-e2e-padding-{i:02}-");
        let name = format!("{prefix}{}", "x".repeat(NAME_LEN - prefix.len()));
        size += name.len() + 1;
        list.push(name);
        i += 1;
    }
    list
}

/// A plaintext HTTP/1.0 server (`python3 -m http.server`) serving a one-file directory.
#[derive(Debug)]
pub struct HttpServer {
    pub child: Child,
    pub port: u16,
    _root: TempDir,
}

impl HttpServer {
    /// Starts it as root in `ns` on `[::]:port` and waits until it listens.
    pub fn start(ns: &str, port: u16) -> anyhow::Result<Self> {
        Self::start_in(ns, port, None)
    }

    /// Like [`HttpServer::start`], inside a cgroup when given (see [`Spawn::cgroup`]).
    pub fn start_in(ns: &str, port: u16, cgroup: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let root = TempDir::new("www")?;
        root.write("index.html", b"hello from observer-e2e\n")?;
        let mut spawn = Spawn::new(ns, PYTHON)
            .args(["-m", "http.server", &port.to_string(), "--bind", "::", "--directory"])
            .arg(root.path().to_string_lossy());
        if let Some(dir) = cgroup {
            spawn = spawn.cgroup(dir);
        }
        let mut child = spawn.start()?;
        child.wait_listening(port)?;
        Ok(Self { child, port, _root: root })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// Which TLS versions a peer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// Whatever both support (TLS 1.3 here).
    Any,
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn flag(self) -> Option<&'static str> {
        match self {
            TlsVersion::Any => None,
            TlsVersion::Tls12 => Some("-tls1_2"),
            TlsVersion::Tls13 => Some("-tls1_3"),
        }
    }
}

/// Whether `s_server` asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// `-verify 1`: requested, optional.
    Request,
    /// `-Verify 1`: required; the handshake fails without one.
    Require,
}

/// `openssl s_server -www` on `[::]:port`.
#[derive(Debug)]
pub struct TlsServer {
    pub child: Child,
    pub port: u16,
}

impl TlsServer {
    /// Starts it as root in `ns` and waits until it listens.
    pub fn start(
        ns: &str,
        port: u16,
        leaf: &Leaf,
        ca: &std::path::Path,
        version: TlsVersion,
        auth: ClientAuth,
    ) -> anyhow::Result<Self> {
        let mut spawn = Spawn::new(ns, "openssl").args(["s_server", "-accept"]).args([
            port.to_string(),
            "-cert".into(),
            leaf.cert.to_string_lossy().into_owned(),
            "-key".into(),
            leaf.key.to_string_lossy().into_owned(),
            "-CAfile".into(),
            ca.to_string_lossy().into_owned(),
            "-www".into(),
        ]);
        if let Some(flag) = version.flag() {
            spawn = spawn.arg(flag);
        }
        spawn = match auth {
            ClientAuth::None => spawn,
            ClientAuth::Request => spawn.args(["-verify", "1"]),
            ClientAuth::Require => spawn.args(["-Verify", "1"]),
        };
        let mut child = spawn.start()?;
        child.wait_listening(port)?;
        Ok(Self { child, port })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

/// `curl` from a namespace (`-sS -o /dev/null --max-time 10`), reporting the HTTP status and
/// its own socket address.
#[derive(Debug, Clone)]
pub struct Curl {
    spawn: Spawn,
}

impl Curl {
    pub fn new(ns: &str, url: impl Into<String>) -> Self {
        let spawn = Spawn::new(ns, "curl")
            .args(["-sS", "-o", "/dev/null", "--max-time", "10"])
            .args(["-w", "%{http_code} %{local_ip} %{local_port}"])
            .arg(url);
        Self { spawn }
    }

    /// `http://ip:port/` (brackets for IPv6).
    pub fn http(ns: &str, ip: IpAddr, port: u16) -> Self {
        Self::new(ns, format!("http://{}/", host_port(ip, port)))
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.spawn = self.spawn.arg(arg);
        self
    }

    /// Run inside a cgroup (see [`Spawn::cgroup`]).
    pub fn cgroup(mut self, dir: &std::path::Path) -> Self {
        self.spawn = self.spawn.cgroup(dir);
        self
    }

    pub fn run(self) -> anyhow::Result<CurlRun> {
        let run = self.spawn.run()?;
        let mut fields = run.stdout.split_whitespace();
        let http_code = fields.next().and_then(|c| c.parse().ok()).unwrap_or(0);
        let local = match (fields.next(), fields.next()) {
            (Some(ip), Some(port)) => match (ip.parse(), port.parse()) {
                (Ok(ip), Ok(port)) if port != 0 => Some(std::net::SocketAddr::new(ip, port)),
                _ => None,
            },
            _ => None,
        };
        Ok(CurlRun { run, http_code, local })
    }
}

/// A finished curl: exit status and output, the HTTP status (0 when none), and the client
/// socket's own address (`None` when it never connected).
#[derive(Debug, Clone)]
pub struct CurlRun {
    pub run: ClientRun,
    pub http_code: u16,
    pub local: Option<std::net::SocketAddr>,
}

impl CurlRun {
    /// curl's exit code (52: the server closed without replying).
    pub fn code(&self) -> Option<i32> {
        self.run.code
    }

    pub fn pid(&self) -> u32 {
        self.run.pid
    }
}

impl std::fmt::Display for CurlRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.run.fmt(f)
    }
}

/// `openssl s_client` sending `GET / HTTP/1.0` and reading until the server closes.
#[derive(Debug, Clone)]
pub struct SClient {
    ns: String,
    target: String,
    servername: Option<String>,
    cert: Option<(PathBuf, PathBuf)>,
    ca: Option<PathBuf>,
    version: TlsVersion,
    alpn: Vec<String>,
    extra: Vec<String>,
}

impl SClient {
    pub fn new(ns: &str, ip: IpAddr, port: u16) -> Self {
        Self {
            ns: ns.to_owned(),
            target: host_port(ip, port),
            servername: None,
            cert: None,
            ca: None,
            version: TlsVersion::Any,
            alpn: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// `-servername`: the SNI the ClientHello carries.
    pub fn servername(mut self, name: &str) -> Self {
        self.servername = Some(name.to_owned());
        self
    }

    /// `-cert`/`-key`: present a client certificate when asked.
    pub fn cert(mut self, leaf: &Leaf) -> Self {
        self.cert = Some((leaf.cert.clone(), leaf.key.clone()));
        self
    }

    /// `-CAfile` and `-verify_return_error`: fail unless the server's chain verifies.
    pub fn verify_with(mut self, ca: &std::path::Path) -> Self {
        self.ca = Some(ca.to_owned());
        self
    }

    pub fn version(mut self, version: TlsVersion) -> Self {
        self.version = version;
        self
    }

    /// `-alpn a,b,...` (long lists make a ClientHello span several segments).
    pub fn alpn<S: Into<String>>(mut self, protocols: impl IntoIterator<Item = S>) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra.push(arg.into());
        self
    }

    pub fn run(self) -> anyhow::Result<ClientRun> {
        let mut spawn = Spawn::new(&self.ns, "openssl")
            .args(["s_client", "-connect", &self.target, "-ign_eof"])
            .stdin("GET / HTTP/1.0\r\n\r\n");
        if let Some(name) = &self.servername {
            spawn = spawn.args(["-servername", name]);
        }
        if let Some((cert, key)) = &self.cert {
            spawn = spawn.arg("-cert").arg(cert.to_string_lossy()).arg("-key").arg(key.to_string_lossy());
        }
        if let Some(ca) = &self.ca {
            spawn = spawn.arg("-CAfile").arg(ca.to_string_lossy()).arg("-verify_return_error");
        }
        if let Some(flag) = self.version.flag() {
            spawn = spawn.arg(flag);
        }
        if !self.alpn.is_empty() {
            spawn = spawn.args(["-alpn".to_owned(), self.alpn.join(",")]);
        }
        spawn.args(self.extra).run()
    }
}
