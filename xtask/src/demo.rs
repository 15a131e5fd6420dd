//! `cargo xtask demo`: two throwaway network namespaces with real peers, the observer watching,
//! and what it saw. Everything it makes is removed at the end, also on failure.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

const CLIENT_NS: &str = "obs-demo-client";
const SERVER_NS: &str = "obs-demo-server";
const CLIENT_IP: &str = "10.99.0.1";
const SERVER_IP: &str = "10.99.0.2";

/// Namespaces and processes the demo made; dropping it removes them.
#[derive(Default)]
struct Scene {
    namespaces: Vec<&'static str>,
    children: Vec<Child>,
    dir: Option<PathBuf>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Scene {
    fn netns(&mut self, name: &'static str) -> Result<()> {
        let _ = Command::new("ip").args(["netns", "del", name]).stderr(Stdio::null()).status();
        cmd::status(Command::new("ip").args(["netns", "add", name]))?;
        self.namespaces.push(name);
        ns_run(name, &["ip", "link", "set", "lo", "up"])
    }

    fn spawn_in(&mut self, ns: &str, args: &[&str]) -> Result<()> {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {args:?} in {ns}"))?;
        self.children.push(child);
        Ok(())
    }
}

fn ns_run(ns: &str, args: &[&str]) -> Result<()> {
    cmd::status(Command::new("ip").args(["netns", "exec", ns]).args(args).stdout(Stdio::null()))
}

pub fn run() -> Result<()> {
    if !cmd::is_root() {
        bail!("the demo creates network namespaces and loads eBPF programs: run it as root");
    }
    let mut scene = Scene::default();
    let dir = std::env::temp_dir().join(format!("observer-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    scene.dir = Some(dir.clone());

    eprintln!("demo: two namespaces joined by a veth: {CLIENT_NS} ({CLIENT_IP}) and {SERVER_NS} ({SERVER_IP})");
    scene.netns(CLIENT_NS)?;
    scene.netns(SERVER_NS)?;
    cmd::status(
        Command::new("ip")
            .args(["-n", CLIENT_NS, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", SERVER_NS]),
    )?;
    for (ns, ip) in [(CLIENT_NS, CLIENT_IP), (SERVER_NS, SERVER_IP)] {
        ns_run(ns, &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        ns_run(ns, &["ip", "link", "set", "eth0", "up"])?;
    }
    pki(&dir)?;

    let d = |f: &str| dir.join(f).display().to_string();
    let (cert, key, ca) = (d("server.pem"), d("server.key"), d("ca.pem"));
    scene.spawn_in(SERVER_NS, &["python3", "-m", "http.server", "8080", "--bind", SERVER_IP, "--directory", &d("")])?;
    // Requests a client certificate (optional): mTLS when the client sends one, TLS when not.
    scene.spawn_in(
        SERVER_NS,
        &[
            "openssl", "s_server", "-accept", "8443", "-cert", &cert, "-key", &key, "-CAfile", &ca, "-verify", "1",
            "-www", "-quiet",
        ],
    )?;
    scene.spawn_in(
        SERVER_NS,
        &["openssl", "s_server", "-accept", "9443", "-cert", &cert, "-key", &key, "-tls1_2", "-www", "-quiet"],
    )?;
    wait_listening(SERVER_NS, &["8080", "8443", "9443"])?;

    eprintln!("demo: starting the observer");
    let mut observer = Command::new(cmd::observer_bin())
        .args(["run", "--output", "json", "--duration", "8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the observer (cargo xtask build first)")?;
    let stderr = observer.stderr.take().context("observer stderr")?;
    let mut log = BufReader::new(stderr).lines();
    loop {
        let line = log.next().context("the observer exited before attaching")??;
        eprintln!("  | {line}");
        if line.contains("observer attached") {
            break;
        }
    }
    thread::spawn(move || log.map_while(Result::ok).for_each(|l| eprintln!("  | {l}")));

    let url = format!("http://{SERVER_IP}:8080/");
    let tls = format!("{SERVER_IP}:8443");
    let tls12 = format!("{SERVER_IP}:9443");
    let (client_cert, client_key) = (d("client.pem"), d("client.key"));
    let clients: [(&str, Vec<&str>); 4] = [
        ("curl, plaintext HTTP", vec!["curl", "-s", "-o", "/dev/null", &url]),
        (
            "openssl s_client, TLS 1.3 without a client certificate",
            vec!["openssl", "s_client", "-connect", &tls, "-servername", "api.demo.test", "-CAfile", &ca],
        ),
        (
            "openssl s_client, TLS 1.3 with a client certificate (mTLS)",
            vec![
                "openssl",
                "s_client",
                "-connect",
                &tls,
                "-servername",
                "api.demo.test",
                "-CAfile",
                &ca,
                "-cert",
                &client_cert,
                "-key",
                &client_key,
            ],
        ),
        (
            "openssl s_client, TLS 1.2, no certificate requested",
            vec!["openssl", "s_client", "-connect", &tls12, "-servername", "legacy.demo.test", "-CAfile", &ca],
        ),
    ];
    for (what, args) in &clients {
        eprintln!("demo: {what}");
        let mut client = Command::new("ip")
            .args(["netns", "exec", CLIENT_NS])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // s_client sends an HTTP request and quits at end of input.
        if let Some(mut stdin) = client.stdin.take() {
            use std::io::Write as _;
            let _ = stdin.write_all(b"GET / HTTP/1.0\r\n\r\n");
        }
        let _ = client.wait();
    }

    let output = observer.wait_with_output().context("waiting for the observer")?;
    let mut seen = 0;
    println!("\nWhat the observer saw between {CLIENT_IP} and {SERVER_IP} (JSON lines, one per connection leg):\n");
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let ip = |side: &str| record[side]["ip"].as_str().unwrap_or_default().to_owned();
        if ip("client") != CLIENT_IP || ip("server") != SERVER_IP {
            continue;
        }
        seen += 1;
        println!("{line}\n");
        println!(
            "  => {} {}:{} -> {} :{}  security={} protocol={} client_cert={} sni={}\n",
            record["client"]["process"]["comm"].as_str().unwrap_or("?"),
            ip("client"),
            record["client"]["port"],
            record["server"]["process"]["comm"].as_str().unwrap_or("?"),
            record["server"]["port"],
            record["security"].as_str().unwrap_or("?"),
            record["protocol"].as_str().unwrap_or("?"),
            record["tls"]["client_cert"].as_str().unwrap_or("-"),
            record["tls"]["sni"].as_str().unwrap_or("-"),
        );
    }
    if seen < clients.len() {
        bail!("the observer reported {seen} of the {} demo connections", clients.len());
    }
    eprintln!("demo: done; namespaces and processes removed");
    Ok(())
}

/// A CA, a server certificate and a client certificate with a SPIFFE identity.
fn pki(dir: &Path) -> Result<()> {
    let openssl =
        |args: &[&str]| cmd::status(Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=observer demo CA",
    ])?;
    for (name, san) in [
        ("server", "DNS:api.demo.test,DNS:legacy.demo.test"),
        ("client", "URI:spiffe://cluster.local/ns/demo/sa/client"),
    ] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ])?;
        std::fs::write(dir.join(format!("{name}.ext")), format!("subjectAltName={san}\n"))?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ])?;
    }
    Ok(())
}

fn wait_listening(ns: &str, ports: &[&str]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listening = cmd::output("ip", &["netns", "exec", ns, "ss", "-Hltn"]).unwrap_or_default();
        if ports.iter().all(|p| listening.contains(&format!(":{p} "))) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("servers in {ns} did not start listening on {ports:?}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}
