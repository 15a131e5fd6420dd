//! Processes started inside a harness namespace: long-running peers ([`Child`], killed by PID on
//! drop) and clients run to completion ([`ClientRun`]), with stdout/stderr kept in files for
//! diagnosis. Readiness is polled (`ss -ltn` in the namespace), never slept for.

use std::{
    fs::File,
    io::Write,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{cmd, netns::signal, tempdir::TempDir};

/// How long a client may run before it is killed and the run fails.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to listen.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A command to start in a namespace, optionally as another user (via `setpriv`).
#[derive(Debug, Clone)]
pub struct Spawn {
    ns: String,
    program: String,
    args: Vec<String>,
    user: Option<(u32, u32)>,
    stdin: Option<Vec<u8>>,
    keep_stdin_open: bool,
    env: Vec<(String, String)>,
    cgroup: Option<PathBuf>,
}

impl Spawn {
    /// `ip netns exec <ns> <program>`: `ip` execs the program, so the PID we get is the program's.
    pub fn new(ns: &str, program: &str) -> Self {
        Self {
            ns: ns.to_owned(),
            program: program.to_owned(),
            args: Vec::new(),
            user: None,
            stdin: None,
            keep_stdin_open: false,
            env: Vec::new(),
            cgroup: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Run as `uid`/`gid` with no supplementary groups (`setpriv`, which also execs).
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.user = Some((uid, gid));
        self
    }

    /// Bytes written to the process's stdin, which is then closed.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Keep stdin open after writing [`Spawn::stdin`] (a client that must not see EOF, to hold
    /// its connection open) until [`Child::close_stdin`] or drop.
    pub fn keep_stdin_open(mut self) -> Self {
        self.keep_stdin_open = true;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Start inside the cgroup v2 directory `dir` (the child moves itself there before it
    /// execs), so that every socket it creates, listeners included, belongs to that cgroup: a
    /// process of one "node" for `observer run --cgroup`.
    pub fn cgroup(mut self, dir: &std::path::Path) -> Self {
        self.cgroup = Some(dir.to_owned());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns]);
        if let Some((uid, gid)) = self.user {
            command.args(["setpriv", &format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"]);
        }
        command.arg(&self.program).args(&self.args);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        // From `/`, not the test's working directory: that is the checkout, which another user
        // may not enter (a clone under root's 0700 home), and HAProxy refuses to start when it
        // cannot return to its initial directory. Peers are given absolute paths.
        command.current_dir("/");
        command
    }

    /// Starts the process; it is killed when the returned [`Child`] drops.
    pub fn start(self) -> anyhow::Result<Child> {
        let logs = TempDir::new("log")?;
        let stdout_path = logs.join("stdout");
        let stderr_path = logs.join("stderr");
        let mut command = self.command();
        let shown = cmd::describe(&command);
        // Opened here, written by the child between fork and exec ("0" moves the writer).
        let procs = match &self.cgroup {
            Some(dir) => {
                let path = dir.join("cgroup.procs");
                Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .with_context(|| format!("{}", path.display()))?,
                )
            }
            None => None,
        };
        if let Some(procs) = &procs {
            use std::os::{fd::AsRawFd as _, unix::process::CommandExt as _};
            let fd = procs.as_raw_fd();
            // SAFETY: the closure only calls write(2), which is async-signal-safe, on a
            // descriptor that stays open until spawn returns.
            unsafe {
                command.pre_exec(move || {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        command
            .stdin(if self.stdin.is_some() || self.keep_stdin_open { Stdio::piped() } else { Stdio::null() })
            .stdout(File::create(&stdout_path).context("cannot create stdout log")?)
            .stderr(File::create(&stderr_path).context("cannot create stderr log")?);
        let mut process = command.spawn().with_context(|| format!("cannot start `{shown}`"))?;
        drop(procs);
        let mut stdin = process.stdin.take();
        if let (Some(bytes), Some(pipe)) = (&self.stdin, stdin.as_mut()) {
            // A peer that exits early closes the pipe: not our error, its log will say why.
            let _ = pipe.write_all(bytes);
        }
        if !self.keep_stdin_open {
            stdin = None;
        }
        Ok(Child { process, stdin, shown, ns: self.ns, stdout_path, stderr_path, _logs: logs })
    }

    /// Runs the process to completion (killed after [`CLIENT_TIMEOUT`], which is an error).
    pub fn run(self) -> anyhow::Result<ClientRun> {
        self.run_for(CLIENT_TIMEOUT)
    }

    /// Like [`Spawn::run`] with a given timeout.
    pub fn run_for(self, timeout: Duration) -> anyhow::Result<ClientRun> {
        let mut child = self.start()?;
        let status = child.wait_timeout(timeout)?;
        let Some(status) = status else {
            bail!("`{}` did not finish within {timeout:?}\n{}", child.shown, child.logs());
        };
        Ok(ClientRun {
            pid: child.pid(),
            command: child.shown.clone(),
            code: status.code(),
            status,
            stdout: child.stdout(),
            stderr: child.stderr(),
        })
    }
}

/// The outcome of a client run.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// PID the client had (the observer reports it as `process.pid`).
    pub pid: u32,
    pub command: String,
    pub status: ExitStatus,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ClientRun {
    /// Fails with the client's output unless it exited 0.
    pub fn expect_success(&self) -> anyhow::Result<&Self> {
        if self.code != Some(0) {
            bail!("{self}");
        }
        Ok(self)
    }
}

impl std::fmt::Display for ClientRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` (pid {}) exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.pid, self.status, self.stdout, self.stderr
        )
    }
}

/// A process running in a namespace, killed by PID (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Child {
    process: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    shown: String,
    ns: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    _logs: TempDir,
}

impl Child {
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The namespace it runs in.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Command, stdout and stderr, for failure messages.
    pub fn logs(&self) -> String {
        format!("`{}` (pid {})\n--- stdout\n{}\n--- stderr\n{}", self.shown, self.pid(), self.stdout(), self.stderr())
    }

    /// Writes to its stdin (kept open with [`Spawn::keep_stdin_open`]).
    pub fn write_stdin(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        let pipe = self.stdin.as_mut().context("stdin is not open")?;
        pipe.write_all(bytes).context("cannot write to stdin")
    }

    /// Closes its stdin (EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Exit status if it has exited.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.process.try_wait().context("cannot poll child")
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal by PID (if still running).
    pub fn signal(&mut self, sig: libc::c_int) {
        if matches!(self.process.try_wait(), Ok(None)) {
            signal(self.pid(), sig);
        }
    }

    /// Waits until something listens on TCP `port` in the child's namespace; fails early, with
    /// the child's logs, if the child exits first.
    pub fn wait_listening(&mut self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        loop {
            if let Some(status) = self.try_wait()? {
                bail!("exited ({status}) before listening on {port}\n{}", self.logs());
            }
            if listening(&self.ns, port)? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("not listening on {port} after {LISTEN_TIMEOUT:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it now (SIGTERM, SIGKILL after 2 s) and reaps it.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        if !matches!(self.wait_timeout(Duration::from_secs(2)), Ok(Some(_))) {
            self.signal(libc::SIGKILL);
            let _ = self.process.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop();
    }
}

fn listening(ns: &str, port: u16) -> anyhow::Result<bool> {
    let filter = format!("sport = :{port}");
    let out = cmd::in_ns(ns, "ss", &["-Hltn", &filter])?;
    Ok(!out.stdout.trim_ascii().is_empty())
}

/// Polls `ss -ltn` inside `ns` until something listens on TCP `port`.
pub fn wait_for_tcp_listen(ns: &str, port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    while !listening(ns, port)? {
        if Instant::now() >= deadline {
            bail!("nothing listens on {port} in {ns} after {LISTEN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
