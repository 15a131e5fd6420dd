//! Delivery to Alertmanager (`POST <url>/api/v2/alerts`) on a thread of its own. The run loop
//! hands batches over a bounded queue and never waits: a full queue drops the batch (counted;
//! firing alerts are re-sent anyway). A failed post is retried with exponential backoff a few
//! times, then given up (counted); an unreachable Alertmanager costs the pipeline nothing.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::Duration,
};

use serde_json::Value;

/// Why an alert was not delivered (`error.type` of `observer.alerts.delivery.failures`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The queue to the sender thread was full.
    QueueFull,
    /// Alertmanager could not be reached or did not answer in time.
    Unreachable,
    /// Alertmanager answered with an error status.
    Rejected,
    /// More distinct alerts than [`super::MAX_ACTIVE`].
    TooManyAlerts,
}

impl Failure {
    pub const ALL: [Failure; 4] = [Self::QueueFull, Self::Unreachable, Self::Rejected, Self::TooManyAlerts];

    pub fn name(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Unreachable => "unreachable",
            Self::Rejected => "rejected",
            Self::TooManyAlerts => "too_many_alerts",
        }
    }
}

/// Counters shared with the sender thread.
#[derive(Debug, Default)]
pub struct AlertStats {
    sent: AtomicU64,
    failures: [AtomicU64; 4],
}

impl AlertStats {
    pub fn count_failure(&self, failure: Failure) {
        let index = Failure::ALL.iter().position(|f| *f == failure).unwrap_or(0);
        self.failures[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Alerts Alertmanager accepted.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Failures by reason name.
    pub fn failures(&self) -> Vec<(&'static str, u64)> {
        Failure::ALL.iter().zip(&self.failures).map(|(f, n)| (f.name(), n.load(Ordering::Relaxed))).collect()
    }
}

/// How the sender delivers.
#[derive(Clone, Debug)]
pub struct SenderConfig {
    /// Alertmanager's base URL (`http://alertmanager:9093`).
    pub url: String,
    /// Batches waiting at most.
    pub queue: usize,
    /// Attempts per batch (the first included).
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
}

impl SenderConfig {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            queue: 64,
            attempts: 4,
            first_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }

    fn endpoint(&self) -> String {
        format!("{}/api/v2/alerts", self.url.trim_end_matches('/'))
    }
}

/// The run loop's end of the queue. Dropping it lets the thread finish what is queued and exit.
#[derive(Debug)]
pub struct Sender {
    queue: Option<SyncSender<Vec<Value>>>,
    stats: Arc<AlertStats>,
}

impl Sender {
    /// Starts the delivery thread.
    pub fn start(config: SenderConfig) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(config.queue.max(1));
        let stats = Arc::new(AlertStats::default());
        let thread_stats = stats.clone();
        std::thread::Builder::new()
            .name("observer-alerts".to_owned())
            .spawn(move || deliver(&config, &rx, &thread_stats))?;
        Ok(Self { queue: Some(tx), stats })
    }

    /// A sender that delivers nothing (no `--alertmanager`): batches are dropped silently.
    pub fn disabled() -> Self {
        Self { queue: None, stats: Arc::new(AlertStats::default()) }
    }

    /// A sender whose batches go to the returned receiver (tests, and callers with their own delivery).
    pub fn to_channel(queue: usize) -> (Self, Receiver<Vec<Value>>) {
        let (tx, rx) = sync_channel(queue.max(1));
        (Self { queue: Some(tx), stats: Arc::new(AlertStats::default()) }, rx)
    }

    pub fn stats(&self) -> &AlertStats {
        &self.stats
    }

    /// Queues a batch without waiting.
    pub fn send(&self, batch: Vec<Value>) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) => {
                for _ in &batch {
                    self.stats.count_failure(Failure::QueueFull);
                }
                tracing::warn!(alerts = batch.len(), "alert queue full: dropped (firing alerts are re-sent)");
            }
            Err(TrySendError::Disconnected(_)) => self.stats.count_failure(Failure::Unreachable),
        }
    }
}

fn deliver(config: &SenderConfig, rx: &Receiver<Vec<Value>>, stats: &AlertStats) {
    let client = match reqwest::blocking::Client::builder().timeout(config.timeout).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the Alertmanager HTTP client; alerts are not delivered");
            while let Ok(batch) = rx.recv() {
                for _ in &batch {
                    stats.count_failure(Failure::Unreachable);
                }
            }
            return;
        }
    };
    let endpoint = config.endpoint();
    while let Ok(batch) = rx.recv() {
        let body = Value::Array(batch);
        let count = body.as_array().map_or(0, Vec::len) as u64;
        let mut backoff = config.first_backoff;
        for attempt in 1..=config.attempts.max(1) {
            let result =
                client.post(&endpoint).header("content-type", "application/json").body(body.to_string()).send();
            let failure = match result {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some((Failure::Rejected, format!("status {}", response.status()))),
                Err(error) => Some((Failure::Unreachable, error.to_string())),
            };
            let Some((failure, message)) = failure else {
                stats.sent.fetch_add(count, Ordering::Relaxed);
                break;
            };
            for _ in 0..count {
                stats.count_failure(failure);
            }
            tracing::warn!(%endpoint, attempt, error = %message, "alert delivery failed");
            if attempt == config.attempts.max(1) {
                break;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(config.max_backoff);
        }
    }
}
