//! `observer run`: live observation. Loads and attaches the kernel programs, drains the ring
//! buffer, feeds the tracker and prints a line per finished leg until stopped.

use std::{
    collections::VecDeque,
    io::Write,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use observer_common::drop_reason;
use observer_mesh::verdict::Status;
use observer_pipeline::{Pipeline, Sink};
use observer_wire::{
    classify::UnknownReason,
    legs::{self, SourceControl, TrackerConfig},
};
use tokio::{io::unix::AsyncFd, signal::unix::SignalKind};

use crate::{
    alert::{self, Alerts},
    capture::{self, LiveCapture, Sockets},
    export::{
        ConnectionRecord, Format, Printer,
        health::{self, SharedSnapshot, Snapshot},
        metrics::LegMetrics,
        serve,
        telemetry::{self, OtlpProtocol, Telemetry, TelemetryConfig},
    },
    reload::PolicyStore,
};

/// The embedded kernel programs (empty when built with AYA_BUILD_SKIP).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/observer"));

/// How often userspace drains the ring buffer without a wakeup: submits do not wake it below
/// the wakeup threshold, so this bounds the latency of a busy node.
const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// After this many polls in a row found the ring empty, the node is quiet: polls come every
/// `IDLE_POLL_INTERVAL` until one finds records. Each poll is a wakeup of the daemon, which on a
/// quiet node is most of what it costs.
const IDLE_POLLS: u32 = 8;
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Output buffered between flushes (a flush comes with every poll).
const OUTPUT_BUFFER: usize = 64 * 1024;
/// How long a decided leg is left sampling before the kernel is told to stop: stopping costs two
/// syscalls a socket, and most short connections close within this, which makes it free. A leg
/// left running samples at most the kernel's per-direction budget meanwhile.
const STOP_DELAY: Duration = Duration::from_millis(250);
/// How often the counters are logged.
const STATS_INTERVAL: Duration = Duration::from_secs(10);
/// How often the self-telemetry snapshot is refreshed and alerts are re-sent or resolved.
const METRICS_INTERVAL: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub output: Format,
    /// Stop after this many seconds (default: until SIGINT or SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u64>,
    /// cgroup v2 directory to attach to (default: the cgroup v2 root, /sys/fs/cgroup or /sys/fs/cgroup/unified).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,
    /// How long a leg seen from one socket waits for its peer socket on this node, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub pair_grace_ms: u64,
    /// Serve Prometheus metrics on this address (e.g. 0.0.0.0:9464) at /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub policy: super::policy::PolicyArgs,
    #[command(flatten)]
    pub kube: super::policy::KubeArgs,
    /// A leg that has sent bytes but is undecided this long after its open is reported unknown
    /// (handshake_timeout), e.g. a ClientHello sent a byte at a time (e.g. 30s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = alert::parse_duration)]
    pub handshake_timeout: Duration,
    /// Diagnostics: entries of the kernel's connection table (an LRU map; evictions are counted as
    /// lost, stage conn_evicted). Fault tests make it small to fill it.
    #[arg(long, value_name = "N", hide = true, default_value_t = observer_common::MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(64..=i64::from(observer_common::MAX_CONNECTIONS)))]
    pub conn_table_entries: u32,
    /// Diagnostics: also attach empty cgroup_skb programs (egress and ingress) at the same cgroup,
    /// never pinned, so the BPF stats of the real programs can be compared with a program that
    /// does nothing, on the same packets (`cargo xtask bench` uses it).
    #[arg(long, hide = true)]
    pub attach_baseline: bool,
    /// Diagnostics: attach only empty programs at the observer's hooks (sock_create, sock_ops,
    /// cgroup_skb), nothing real, until stopped, so a load generator measures what any program
    /// there costs (`cargo xtask bench` uses it). Never pinned.
    #[arg(long, hide = true, conflicts_with = "pin")]
    pub baseline_only: bool,
    /// Most legs held at once; more are counted as lost.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_legs: usize,
    /// Push metrics over OTLP to this endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT; unset: no push).
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc).
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Most attribute sets per metric; more are counted under otel.metric.overflow=true.
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u32).range(2..=1_000_000))]
    pub metrics_cardinality_limit: u32,
    /// Post deviations to this Alertmanager (base URL; the v2 API is used).
    #[arg(long, value_name = "URL")]
    pub alertmanager: Option<String>,
    /// An alert is resolved once its deviation has not been seen for this long (e.g. 5m, 30s).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = alert::parse_duration)]
    pub alert_resolve_after: Duration,
    #[command(flatten)]
    pub edges: crate::edges::EdgeArgs,
    /// Pin the programs' links and maps under this bpffs directory, and reuse the pins found
    /// there: a restarted daemon misses nothing (see docs/KERNEL.md, "Pinning").
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = capture::DEFAULT_PIN_DIR)]
    pub pin: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.baseline_only {
        capture::baseline::run(EBPF_OBJECT, args.cgroup.as_deref(), args.duration.map(Duration::from_secs))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Configuration is validated before anything privileged happens.
    let policy = args.kube.load(&args.policy)?;
    args.edges.install(args.metrics_addr.is_some());
    let cgroup = capture::preflight(EBPF_OBJECT, args.cgroup.as_deref())?;
    let (capture, ring) =
        LiveCapture::attach(EBPF_OBJECT, &cgroup, args.pin.as_deref(), args.conn_table_entries, args.attach_baseline)
            .with_context(|| format!("attaching the eBPF programs at {}", cgroup.display()))?;
    crate::privileges::drop_after_attach()?;
    tracing::info!(cgroup = %cgroup.display(), "observer attached");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let config = TrackerConfig {
        max_legs: args.max_legs,
        pair_grace: Duration::from_millis(args.pair_grace_ms),
        handshake_timeout: args.handshake_timeout,
        ..TrackerConfig::default()
    };
    // Buffered: flushed when the loop goes idle (every poll) and at the end.
    let printer = Printer::new(args.output, std::io::BufWriter::with_capacity(OUTPUT_BUFFER, std::io::stdout().lock()));
    let telemetry = Telemetry::new(&telemetry_config(&args)?).context("setting up metrics")?;
    let alerts = match &args.alertmanager {
        Some(url) => alert::Sender::start(alert::SenderConfig::new(url)).context("starting the alert sender")?,
        None => alert::Sender::disabled(),
    };
    let exports = Exports {
        telemetry: &telemetry,
        cardinality_limit: args.metrics_cardinality_limit,
        alerts: Alerts::new(alerts, args.alert_resolve_after),
    };
    let mut session = Session::new(capture, config, printer, policy.store.clone(), exports);
    let result = runtime.block_on(async {
        if let (Some(addr), Some(registry)) = (args.metrics_addr, telemetry.scraper()) {
            let bound = serve::spawn(addr, registry).await.with_context(|| format!("serving metrics on {addr}"))?;
            tracing::info!(addr = %bound, "serving metrics at /metrics");
        }
        session.run(ring, args.duration.map(Duration::from_secs)).await
    });
    session.refresh_metrics();
    session.log_counters();
    // Dropping the session drops LiveCapture: every link is detached before the process exits
    // (with --pin the pinned links stay, and it says so).
    drop(session);
    if args.pin.is_none() {
        tracing::info!("observer detached");
    }
    drop(runtime);
    // Outside any async context: the last OTLP export (a blocking HTTP client may run it).
    telemetry.shutdown();
    result?;
    Ok(ExitCode::SUCCESS)
}

fn telemetry_config(args: &Args) -> anyhow::Result<TelemetryConfig> {
    let node = args.kube.node_name.clone().filter(|n| !n.is_empty()).unwrap_or_else(super::node_name);
    Ok(TelemetryConfig {
        prometheus: args.metrics_addr.is_some(),
        otlp_endpoint: telemetry::endpoint_from(args.otlp_endpoint.clone()),
        otlp_protocol: telemetry::protocol_from(args.otlp_protocol)?,
        export_interval: None,
        cardinality_limit: args.metrics_cardinality_limit as usize,
        node,
    })
}

/// Everything one `observer run` holds.
struct Session<W: Write> {
    capture: LiveCapture,
    sockets: Sockets,
    pipeline: Pipeline,
    sinks: RunSinks<W>,
    /// Legs whose sampling may stop, in the order they decided, with when: stopped once
    /// `STOP_DELAY` has passed if they are still open.
    stop_pending: VecDeque<(Instant, legs::LegId)>,
    snapshot: SharedSnapshot,
    policy: Arc<PolicyStore>,
}

/// Where a live run's records go: metrics, alerts, the edge table, the printer.
struct RunSinks<W: Write> {
    printer: Printer<W>,
    metrics: LegMetrics,
    alerts: Alerts,
}

impl<W: Write> Sink for RunSinks<W> {
    fn record(&mut self, record: &ConnectionRecord) {
        self.metrics.record(record);
        if record.verdict.status == Status::Deviation {
            alert::log_deviation(record);
            self.alerts.on_record(record, Instant::now());
        }
        crate::edges::record(record);
        self.printer.record(record);
    }
}

/// What the pipeline tells the live source: the socket table forgets reported legs at once;
/// stopping the kernel's sampling waits `STOP_DELAY`.
struct LiveControl<'a> {
    sockets: &'a mut Sockets,
    stop_pending: &'a mut VecDeque<(Instant, legs::LegId)>,
    now: Instant,
}

impl SourceControl for LiveControl<'_> {
    fn stop_sampling(&mut self, leg: legs::LegId) {
        self.stop_pending.push_back((self.now + STOP_DELAY, leg));
    }

    fn reported(&mut self, leg: legs::LegId) {
        self.sockets.reported(leg);
    }
}

/// Where a session's records go besides the printer.
struct Exports<'a> {
    telemetry: &'a Telemetry,
    cardinality_limit: u32,
    alerts: Alerts,
}

impl<W: Write> Session<W> {
    fn new(
        capture: LiveCapture,
        config: TrackerConfig,
        printer: Printer<W>,
        policy: Arc<PolicyStore>,
        exports: Exports<'_>,
    ) -> Self {
        let meter = exports.telemetry.meter();
        let snapshot = SharedSnapshot::default();
        health::register(&meter, &snapshot, exports.telemetry.export_failures());
        Self {
            capture,
            // Two polls past the grace: a socket closed in the meantime is still there for its peer.
            sockets: Sockets::new(boot_wall_clock(), config.pair_grace + 2 * POLL_INTERVAL),
            pipeline: Pipeline::new(config, super::node_name()),
            sinks: RunSinks {
                printer,
                metrics: LegMetrics::new(&meter, exports.cardinality_limit as usize),
                alerts: exports.alerts,
            },
            stop_pending: VecDeque::new(),
            snapshot,
            policy,
        }
    }

    async fn run(&mut self, ring: RingBuf<MapData>, duration: Option<Duration>) -> anyhow::Result<()> {
        // SAFETY: the RingBuf owns its map fd; it stays open and the same for the AsyncFd's lifetime.
        let mut ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(std::io::Error::from)
            .context("registering the ring buffer with tokio")?;
        let poll = tokio::time::sleep(POLL_INTERVAL);
        tokio::pin!(poll);
        let mut empty_polls = 0u32;
        let mut stats = tokio::time::interval_at(tokio::time::Instant::now() + STATS_INTERVAL, STATS_INTERVAL);
        let mut refresh = tokio::time::interval(METRICS_INTERVAL);
        let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut sigint = tokio::signal::unix::signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let deadline = tokio::time::sleep(duration.unwrap_or(Duration::MAX / 4));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard.context("waiting on the ring buffer")?;
                    if self.drain(guard.get_inner_mut())? > 0 && empty_polls >= IDLE_POLLS {
                        empty_polls = 0;
                        poll.as_mut().reset(tokio::time::Instant::now() + POLL_INTERVAL);
                    }
                    guard.clear_ready();
                }
                () = &mut poll => {
                    let drained = self.drain(ring.get_mut())?;
                    empty_polls = if drained == 0 { empty_polls.saturating_add(1) } else { 0 };
                    let next = if empty_polls >= IDLE_POLLS { IDLE_POLL_INTERVAL } else { POLL_INTERVAL };
                    poll.as_mut().reset(tokio::time::Instant::now() + next);
                    self.pipeline.tick(Instant::now());
                    self.deliver()?;
                    self.stop_sampling(Instant::now());
                    self.sockets.tick(Instant::now());
                    self.flush()?;
                }
                _ = stats.tick() => self.log_counters(),
                _ = refresh.tick() => self.refresh_metrics(),
                _ = sigterm.recv() => break,
                _ = sigint.recv() => break,
                () = &mut deadline => break,
            }
        }
        self.drain(ring.get_mut())?;
        self.pipeline.finish(UnknownReason::ObserverStopped);
        self.deliver()?;
        self.flush()
    }

    /// Tell the kernel to stop sampling the decided legs that are still open.
    fn stop_sampling(&mut self, now: Instant) {
        while let Some(&(due, leg)) = self.stop_pending.front() {
            if due > now {
                break;
            }
            self.stop_pending.pop_front();
            for cookie in self.sockets.open_cookies(leg) {
                self.capture.stop_sampling(cookie);
            }
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        match self.sinks.printer.flush() {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => anyhow::bail!("standard output closed"),
            other => other.context("writing records"),
        }
    }

    /// Everything waiting in the ring through the pipeline; returns the records read.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<usize> {
        let now = Instant::now();
        let pipeline = &mut self.pipeline;
        let mut records = 0;
        while let Some(item) = ring.next() {
            records += 1;
            // The events borrow the record's bytes; the tracker copies what it keeps.
            self.sockets.on_record(&item, now, &mut |event| pipeline.event(event, now));
        }
        self.deliver()?;
        Ok(records)
    }

    /// Hand the pipeline's finished legs to the sinks, under the policy in force now.
    fn deliver(&mut self) -> anyhow::Result<()> {
        let mesh = self.policy.current();
        let mut control =
            LiveControl { sockets: &mut self.sockets, stop_pending: &mut self.stop_pending, now: Instant::now() };
        self.pipeline.deliver(&mesh, &mut control, &mut self.sinks);
        match self.sinks.printer.take_error() {
            None => Ok(()),
            Some(error) if error.kind() == std::io::ErrorKind::BrokenPipe => anyhow::bail!("standard output closed"),
            Some(error) => Err(error).context("writing a record"),
        }
    }

    /// Everything lost on the way, by stage: the kernel's counters and userspace's.
    fn lost(&self) -> Vec<(String, u64)> {
        let kernel = self.capture.counters();
        let sockets = self.sockets.stats();
        let tracker = self.pipeline.stats();
        let mut lost: Vec<(String, u64)> =
            drop_reason::NAMES.iter().zip(kernel.drops).map(|(name, n)| ((*name).to_owned(), n)).collect();
        lost.extend([
            ("decode".to_owned(), sockets.undecodable),
            ("orphan_sample".to_owned(), sockets.orphan_samples),
            ("tracker_full".to_owned(), tracker.legs_dropped_full),
            ("socket_evicted".to_owned(), sockets.evicted),
            ("peer_unseen".to_owned(), sockets.early_forgotten),
        ]);
        lost
    }

    /// Refreshes what the self-telemetry callbacks read, and drives the alerts' timers.
    fn refresh_metrics(&mut self) {
        self.sinks.alerts.tick(Instant::now());
        let tracker = self.pipeline.stats();
        let snapshot = Snapshot {
            lost: self.lost(),
            tracked: self.pipeline.len() as u64,
            orphan_closes: self.sockets.stats().orphan_closes,
            unknown_leg_events: tracker.events_for_unknown_legs,
            idle_expired: tracker.legs_idle_expired,
            handshake_expired: tracker.legs_handshake_expired,
            programs: self.capture.program_runs(),
            watch_errors: crate::cluster::watch_error_counts(),
            policy_reloads: self.policy.reload_counts(),
            alerts_sent: self.sinks.alerts.stats().sent(),
            alert_failures: self.sinks.alerts.stats().failures(),
        };
        match self.snapshot.lock() {
            Ok(mut shared) => *shared = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
    }

    fn log_counters(&self) {
        let lost: Vec<String> =
            self.lost().into_iter().filter(|(_, n)| *n > 0).map(|(stage, n)| format!("{stage}={n}")).collect();
        let tracker = self.pipeline.stats();
        tracing::info!(
            records = self.pipeline.records(),
            legs_tracked = self.pipeline.len(),
            sockets_tracked = self.sockets.len(),
            lost = %if lost.is_empty() { "0".to_owned() } else { lost.join(",") },
            orphan_closes = self.sockets.stats().orphan_closes,
            legs_idle_expired = tracker.legs_idle_expired,
            legs_handshake_expired = tracker.legs_handshake_expired,
            duplicate_data = tracker.duplicate_data,
            egress_samples = self.sockets.stats().egress_samples,
            ingress_samples = self.sockets.stats().ingress_samples,
            "counters"
        );
    }
}

/// The wall-clock time at which CLOCK_MONOTONIC (the clock of `bpf_ktime_get_ns`) read zero.
fn boot_wall_clock() -> SystemTime {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let since_boot = if rc == 0 {
        Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
    } else {
        Duration::ZERO
    };
    SystemTime::now().checked_sub(since_boot).unwrap_or(SystemTime::UNIX_EPOCH)
}
