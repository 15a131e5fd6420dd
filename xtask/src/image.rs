//! `cargo xtask image`: the observer's container image, built without a container daemon and
//! without pulling a base image.
//!
//! The image is `scratch` plus three files: the observer linked statically (glibc's
//! `crt-static`; its eBPF object is embedded by observer/build.rs), Debian's CA bundle and an
//! nsswitch.conf (static glibc resolves names from /etc/hosts and DNS without loading any
//! library). buildah assembles it in a vfs store under target/image/ (no overlay mounts, no
//! daemon) and commits it, with OCI annotations, straight into an OCI archive:
//! `target/image/observer-VERSION.oci.tar`, `observer:VERSION` inside.
//!
//! [`test`] (part of `cargo xtask test`, as root) builds it twice (the same manifest both times:
//! timestamps are the commit's), checks the annotations, runs
//! `observer --version` inside it with buildah's chroot isolation (a root holding no shared
//! library: the binary must be static), then `observer run` for two seconds with only the pod's
//! three capabilities (its programs attach at the host's cgroup v2 root and detach), converts it
//! to a `docker-archive:` with skopeo the way `kind load image-archive` and `ctr import` need
//! it, and removes every container, image and temporary file it made.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::cmd;

/// Where the binary goes in the image (the image's entrypoint).
const BINARY_IN_IMAGE: &str = "/usr/local/bin/observer";
/// Debian's CA bundle, copied to the same path in the image.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// glibc's name service order: /etc/hosts (Kubernetes writes it), then DNS.
const NSSWITCH: &str = "hosts: files dns\n";
/// The image's name inside the archive, without the tag.
const IMAGE_NAME: &str = "observer";

fn image_dir() -> PathBuf {
    cmd::workspace().join("target/image")
}

/// buildah's global flags: a vfs store of our own under target/image/, never the machine's.
fn buildah() -> Command {
    let dir = image_dir();
    let mut command = Command::new("buildah");
    command
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(dir.join("run"))
        .args(["--storage-driver", "vfs"]);
    command
}

/// Runs a command, returning its trimmed stdout; fails with its stderr.
fn capture(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command.stderr(Stdio::piped()).output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A buildah working container, removed when dropped (also on every error path).
struct WorkingContainer(String);

impl WorkingContainer {
    fn from(image: &str, name: &str, options: &[&str]) -> Result<Self> {
        // A container of that name left by a killed run would make `from` fail: remove it first.
        let _ = buildah().args(["rm", name]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        capture(buildah().args(["from", "--quiet", "--pull-never", "--name", name]).args(options).arg(image))?;
        Ok(Self(name.to_owned()))
    }
}

impl Drop for WorkingContainer {
    fn drop(&mut self) {
        let _ = buildah().args(["rm", &self.0]).stdout(Stdio::null()).status();
    }
}

/// The host's target triple (crt-static is a target feature, so the build names its target).
fn host_triple() -> Result<String> {
    let info = cmd::output("rustc", &["-vV"]).context("rustc -vV")?;
    info.lines().find_map(|l| l.strip_prefix("host: ")).map(str::to_owned).context("no host in rustc -vV")
}

/// Builds the observer statically linked (release, eBPF embedded) and returns its path.
pub fn build_binary() -> Result<PathBuf> {
    let triple = host_triple()?;
    ensure!(
        triple.ends_with("-linux-gnu"),
        "the image recipe links glibc statically: {triple} is not a -linux-gnu target"
    );
    // Only this target's flags: build scripts and the nested eBPF build stay as they are.
    let variable = format!("CARGO_TARGET_{}_RUSTFLAGS", triple.to_uppercase().replace('-', "_"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd::status(
        Command::new(cargo)
            .args(["build", "--release", "-p", "observer", "--target", &triple])
            .current_dir(cmd::workspace())
            .env("PATH", cmd::path_with_tools())
            .env(variable, "-C target-feature=+crt-static"),
    )?;
    let binary = cmd::workspace().join("target").join(&triple).join("release/observer");
    ensure!(is_static(&binary)?, "{} is dynamically linked (it has an ELF interpreter)", binary.display());
    Ok(binary)
}

/// An ELF file without a PT_INTERP program header needs no dynamic loader.
fn is_static(binary: &Path) -> Result<bool> {
    const PT_INTERP: u32 = 3;
    let elf = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    ensure!(
        elf.len() > 64 && elf.starts_with(b"\x7fELF") && elf[4] == 2 && elf[5] == 1,
        "not a 64-bit little-endian ELF"
    );
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into()?) as usize;
    let (entry_size, count) = (u16_at(0x36), u16_at(0x38));
    for i in 0..count {
        let at = i.checked_mul(entry_size).and_then(|o| o.checked_add(phoff)).context("program header offset")?;
        let header = elf.get(at..at.saturating_add(4)).context("program header past the end")?;
        if u32::from_le_bytes(header.try_into()?) == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// What the image says about itself.
pub struct Provenance {
    pub version: String,
    pub revision: String,
    /// The repository's `origin` remote, when it is an https URL (an OCI source is a URL).
    pub source: Option<String>,
    /// Commit time, seconds since the epoch: the image's creation time, for a repeatable build.
    pub created: i64,
}

impl Provenance {
    fn of_workspace() -> Result<Self> {
        let git =
            |args: &[&str]| cmd::output("git", &[&["-C", cmd::workspace().to_str().unwrap_or(".")], args].concat());
        let head = git(&["rev-parse", "HEAD"]).context("git rev-parse HEAD")?.trim().to_owned();
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.trim().is_empty());
        let created = git(&["log", "-1", "--format=%ct"]).and_then(|t| t.trim().parse().ok()).context("commit time")?;
        Ok(Self {
            version: cargo_version()?,
            revision: if dirty { format!("{head}-dirty") } else { head },
            // A public https URL only: never a local path, never credentials (user:token@host).
            source: git(&["remote", "get-url", "origin"])
                .map(|s| s.trim().to_owned())
                .filter(|s| s.starts_with("https://") && !s.contains('@') && !s.contains(char::is_whitespace)),
            created,
        })
    }

    /// The OCI annotations (also set as labels: `docker-archive` keeps only those).
    pub fn annotations(&self) -> Vec<(&'static str, String)> {
        let mut all = vec![
            ("org.opencontainers.image.title", "observer".to_owned()),
            (
                "org.opencontainers.image.description",
                "eBPF node agent: every TCP connection leg classified as plaintext, TLS or mutual TLS and checked against Istio policy".to_owned(),
            ),
            ("org.opencontainers.image.version", self.version.clone()),
            ("org.opencontainers.image.revision", self.revision.clone()),
            ("org.opencontainers.image.licenses", "Apache-2.0".to_owned()),
            ("org.opencontainers.image.created", rfc3339(self.created)),
            ("org.opencontainers.image.ref.name", self.version.clone()),
        ];
        if let Some(source) = &self.source {
            all.push(("org.opencontainers.image.source", source.clone()));
        }
        all
    }
}

/// The observer's version, from observer/Cargo.toml.
fn cargo_version() -> Result<String> {
    let manifest = std::fs::read_to_string(cmd::workspace().join("observer/Cargo.toml"))?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .map(str::to_owned)
        .context("no version in observer/Cargo.toml")
}

/// Seconds since the epoch as RFC 3339 UTC (days to a civil date: Howard Hinnant's algorithm).
fn rfc3339(seconds: i64) -> String {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// A built image: its archive and what it was labelled with.
pub struct Image {
    pub archive: PathBuf,
    pub provenance: Provenance,
}

impl Image {
    /// `oci-archive:PATH`, for buildah and skopeo.
    fn reference(&self) -> String {
        format!("oci-archive:{}", self.archive.display())
    }
}

/// Assembles the image from `binary` into target/image/observer-VERSION.oci.tar.
pub fn build(binary: &Path) -> Result<Image> {
    let started = Instant::now();
    let provenance = Provenance::of_workspace()?;
    let dir = image_dir();
    let staging = dir.join("staging");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    // Debug info is for the developer's binary; the embedded eBPF object is data and stays.
    let stripped = staging.join("observer");
    cmd::status(Command::new("objcopy").arg("--strip-debug").arg(binary).arg(&stripped))?;
    std::fs::write(staging.join("nsswitch.conf"), NSSWITCH)?;

    let container = WorkingContainer::from("scratch", &format!("observer-image-{}", std::process::id()), &[])?;
    let id = container.0.as_str();
    for (from, to) in [
        (stripped.as_path(), BINARY_IN_IMAGE),
        (Path::new(CA_BUNDLE), CA_BUNDLE),
        (&staging.join("nsswitch.conf"), "/etc/nsswitch.conf"),
    ] {
        ensure!(from.is_file(), "{} is missing (ca-certificates installs the CA bundle)", from.display());
        capture(
            buildah()
                .args(["copy", "--quiet", "--chmod", if to == BINARY_IN_IMAGE { "0755" } else { "0644" }, id])
                .arg(from)
                .arg(to),
        )?;
    }
    let mut config = buildah();
    config
        .args(["config", "--entrypoint", &format!("[\"{BINARY_IN_IMAGE}\"]"), "--cmd", "run"])
        .args(["--env", &format!("SSL_CERT_FILE={CA_BUNDLE}"), "--workingdir", "/"])
        .args(["--created-by", "cargo xtask image"]);
    for (key, value) in provenance.annotations() {
        config.arg("--annotation").arg(format!("{key}={value}"));
        config.arg("--label").arg(format!("{key}={value}"));
    }
    capture(config.arg(id))?;

    let archive = dir.join(format!("{IMAGE_NAME}-{}.oci.tar", provenance.version));
    let _ = std::fs::remove_file(&archive);
    let destination = format!("oci-archive:{}:{IMAGE_NAME}:{}", archive.display(), provenance.version);
    capture(
        buildah()
            .args(["commit", "--quiet", "--format", "oci", "--disable-compression=false", "--identity-label=false"])
            .args(["--timestamp", &provenance.created.to_string(), id, &destination]),
    )?;
    drop(container);
    std::fs::remove_dir_all(&staging)?;
    let size = std::fs::metadata(&archive)?.len();
    eprintln!(
        "image: {} ({IMAGE_NAME}:{}, {:.1} MiB, revision {}) in {:.1} s",
        archive.display(),
        provenance.version,
        size as f64 / (1024.0 * 1024.0),
        provenance.revision,
        started.elapsed().as_secs_f64()
    );
    Ok(Image { archive, provenance })
}

/// The image test (root only): build, check annotations, run `observer --version` inside it,
/// convert it to a docker archive; nothing it made is left in the store.
pub fn test() -> Result<()> {
    if !cmd::is_root() {
        eprintln!("image: skipped: building and running the image needs root (buildah's chroot isolation)");
        return Ok(());
    }
    let binary = build_binary()?;
    let first = manifest_of(&build(&binary)?)?;
    let image = build(&binary)?;
    let expected = image.provenance.annotations();

    let manifest = manifest_of(&image)?;
    // The creation time and file times are the commit's: the same binary gives the same image.
    ensure!(manifest == first, "two builds of one binary differ:\n{first}\n{manifest}");
    let config: Value =
        serde_json::from_str(&capture(Command::new("skopeo").args(["inspect", "--config", &image.reference()]))?)?;
    for (key, value) in &expected {
        ensure!(
            manifest["annotations"][key] == value.as_str(),
            "annotation {key}: {} (expected {value})",
            manifest["annotations"][key]
        );
        ensure!(config["config"]["Labels"][key] == value.as_str(), "label {key}: {}", config["config"]["Labels"][key]);
    }
    ensure!(
        image.provenance.source.is_some() || manifest["annotations"].get("org.opencontainers.image.source").is_none(),
        "a source annotation without an origin remote"
    );
    ensure!(
        config["config"]["Entrypoint"] == serde_json::json!([BINARY_IN_IMAGE]),
        "entrypoint: {}",
        config["config"]["Entrypoint"]
    );
    ensure!(config["os"] == "linux" && manifest["layers"].as_array().is_some_and(|l| l.len() == 1), "one layer, linux");

    let runs = run_inside(&image)?;
    let version = runs.version;
    ensure!(
        version == format!("observer {}", image.provenance.version),
        "observer --version in the image said {version:?}"
    );
    for line in ["observer attached", "observer detached"] {
        ensure!(
            runs.attach_log.contains(line),
            "`observer run` in the image did not log {line:?}:\n{}",
            runs.attach_log
        );
    }
    let loaded = docker_archive(&image)?;
    eprintln!(
        "image: ok: `{version}` ran inside it; `observer run` attached and detached with only {POD_CAPS}; \
         {} annotations; docker-archive tags {loaded}",
        expected.len()
    );
    Ok(())
}

/// The archive's image manifest (its layers' and config's digests, its annotations).
fn manifest_of(image: &Image) -> Result<Value> {
    Ok(serde_json::from_str(&capture(Command::new("skopeo").args(["inspect", "--raw", &image.reference()]))?)?)
}

/// buildah's default capabilities, dropped so that a run holds only the ones it adds.
const BUILDAH_DEFAULT_CAPS: &str = "CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_KILL,CAP_NET_BIND_SERVICE,\
                                    CAP_SETFCAP,CAP_SETGID,CAP_SETPCAP,CAP_SETUID,CAP_SYS_CHROOT";
/// The DaemonSet's capabilities (deploy/helm/observer/values.yaml), as buildah names them.
const POD_CAPS: &str = "CAP_BPF,CAP_PERFMON,CAP_NET_ADMIN";

/// What the image's binary said: `--version`, and the log of a short `observer run`.
struct Runs {
    version: String,
    attach_log: String,
}

/// Runs the image's binary in a container of it, with chroot isolation (its root is the
/// image's, holding no shared library): `observer --version`, then `observer run` for two
/// seconds with what the pod has: only BPF, PERFMON and NET_ADMIN, seccomp unconfined, the
/// host's cgroup v2 root read-only at /host/sys/fs/cgroup and BTF read-only.
fn run_inside(image: &Image) -> Result<Runs> {
    let name = format!("observer-image-test-{}", std::process::id());
    let cgroup = host_cgroup2_root()?;
    let container = WorkingContainer::from(&image.reference(), &name, &["--security-opt", "seccomp=unconfined"])?;
    let image_id = capture(buildah().args(["inspect", "--format", "{{.FromImageID}}", &container.0]))?;
    let run = |args: &[&str]| {
        let mut command = buildah();
        command.args(["run", "--isolation", "chroot", "--cap-drop", BUILDAH_DEFAULT_CAPS, "--cap-add", POD_CAPS]);
        command.arg("--volume").arg(format!("{cgroup}:/host/sys/fs/cgroup:ro"));
        command.args(["--volume", "/sys/kernel/btf:/sys/kernel/btf:ro", &container.0, "--", BINARY_IN_IMAGE]);
        let out = command.args(args).output().context("buildah run")?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        ensure!(out.status.success(), "observer {} in the image failed ({}):\n{text}", args.join(" "), out.status);
        Ok(text.trim().to_owned())
    };
    let runs = run(&["--version"]).and_then(|version| {
        let attach_log = run(&["run", "--duration", "2", "--cgroup", "/host/sys/fs/cgroup", "--output", "json"])?;
        Ok(Runs { version, attach_log })
    });
    drop(container);
    // `from` copied the archive into the store: remove that image too.
    capture(buildah().args(["rmi", &image_id]))?;
    let left = capture(buildah().args(["containers", "--quiet"]))?;
    ensure!(left.is_empty(), "buildah containers left in target/image/storage: {left}");
    runs
}

/// The host's cgroup v2 root: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host.
fn host_cgroup2_root() -> Result<&'static str> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| cmd::output("stat", &["-f", "-c", "%T", p]).is_some_and(|t| t.trim() == "cgroup2fs"))
        .context("no cgroup v2 hierarchy on this host")
}

/// Converts the archive as documented (`skopeo copy ... docker-archive:`) and returns the tags
/// `docker load` / `kind load image-archive` will see.
fn docker_archive(image: &Image) -> Result<String> {
    let tag = format!("{IMAGE_NAME}:{}", image.provenance.version);
    let path = image_dir().join(format!("test-{}.docker.tar", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let result = (|| {
        capture(
            Command::new("skopeo")
                .args(["copy", "--quiet", &image.reference()])
                .arg(format!("docker-archive:{}:{tag}", path.display())),
        )?;
        // What `docker load` and `kind load image-archive` read: the archive's manifest.json.
        let manifest: Value =
            serde_json::from_str(&capture(Command::new("tar").arg("-xOf").arg(&path).arg("manifest.json"))?)?;
        let tags = manifest[0]["RepoTags"].to_string();
        // skopeo writes the normalised name; the kubelet normalises `image: observer:V` the same way.
        ensure!(tags.contains(&format!("\"docker.io/library/{tag}\"")), "docker-archive tags {tags}, not {tag}");
        let inspected: Value = serde_json::from_str(&capture(
            Command::new("skopeo").arg("inspect").arg(format!("docker-archive:{}", path.display())),
        )?)?;
        ensure!(
            inspected["Labels"]["org.opencontainers.image.version"] == image.provenance.version.as_str(),
            "labels lost: {inspected}"
        );
        Ok(tags)
    })();
    let _ = std::fs::remove_file(&path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_712_314), "2026-11-26T16:58:34Z");
    }
}
