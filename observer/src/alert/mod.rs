//! Alerts on deviations. Every deviating leg is a structured WARN event; with
//! `--alertmanager URL` the deviations are also posted to Alertmanager (v2 API): one alert per
//! (deviation kind, client workload, server workload, server port), fired when first seen,
//! re-sent while it keeps happening, resolved (`endsAt` now) after a quiet period.
//!
//! [`Alerts`] is the state, driven by the run loop (no I/O, nothing blocks); delivery is on a
//! thread of its own behind a bounded queue ([`sender`]).

pub mod payload;
pub mod sender;

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

pub use payload::{AlertKey, Example};
pub use sender::{AlertStats, Sender, SenderConfig};

use observer_mesh::verdict::Status;

use crate::export::ConnectionRecord;

/// Most alerts held at once; deviations of further keys are only logged and counted.
pub const MAX_ACTIVE: usize = 1024;

/// What is known about one alert.
#[derive(Debug)]
struct Active {
    starts_at: SystemTime,
    last_seen: Instant,
    last_sent: Instant,
    example: Example,
}

/// The deviations being alerted on.
#[derive(Debug)]
pub struct Alerts {
    active: HashMap<AlertKey, Active>,
    sender: Sender,
    resolve_after: Duration,
    resend_every: Duration,
}

/// How often a firing alert is re-sent: often enough that neither Alertmanager's resolve
/// timeout nor the `endsAt` it was sent with expires while the deviation goes on.
pub fn resend_interval(resolve_after: Duration) -> Duration {
    (resolve_after / 3).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

/// The structured WARN event of one deviating leg.
pub fn log_deviation(r: &ConnectionRecord) {
    let process = |e: &crate::export::EndpointRecord| e.process.as_ref().map(|p| format!("{}({})", p.comm, p.pid));
    tracing::warn!(
        conn_id = %r.conn_id,
        kind = %crate::export::attributes::spelling(&r.verdict.kind),
        expected = %crate::export::attributes::spelling(&r.verdict.expected),
        security = %crate::export::attributes::spelling(&r.security),
        protocol = %crate::export::attributes::spelling(&r.protocol),
        leg = %crate::export::attributes::spelling(&r.leg),
        client = %format!("{}:{}", r.client.ip, r.client.port),
        client_workload = r.client.workload.as_deref().unwrap_or("-"),
        client_process = process(&r.client).as_deref().unwrap_or("-"),
        server = %format!("{}:{}", r.server.ip, r.server.port),
        server_workload = r.server.workload.as_deref().unwrap_or("-"),
        server_process = process(&r.server).as_deref().unwrap_or("-"),
        policy = r.verdict.policy.as_deref().unwrap_or("-"),
        reason = r.verdict.reason.as_deref().unwrap_or("-"),
        "policy deviation"
    );
}

impl Alerts {
    pub fn new(sender: Sender, resolve_after: Duration) -> Self {
        Self { active: HashMap::new(), sender, resolve_after, resend_every: resend_interval(resolve_after) }
    }

    /// Delivery statistics, for the metrics.
    pub fn stats(&self) -> &AlertStats {
        self.sender.stats()
    }

    /// A finished leg: a deviation fires its alert (or refreshes it).
    pub fn on_record(&mut self, r: &ConnectionRecord, now: Instant) {
        if r.verdict.status != Status::Deviation {
            return;
        }
        let Some(key) = AlertKey::of(r) else { return };
        let example = Example::of(r);
        if let Some(active) = self.active.get_mut(&key) {
            active.last_seen = now;
            active.example = example;
            return;
        }
        if self.active.len() >= MAX_ACTIVE {
            self.sender.stats().count_failure(sender::Failure::TooManyAlerts);
            return;
        }
        let active = Active { starts_at: SystemTime::now(), last_seen: now, last_sent: now, example };
        self.sender.send(vec![payload::firing(&key, &active.example, active.starts_at, self.resolve_after)]);
        self.active.insert(key, active);
    }

    /// Re-sends what keeps firing and resolves what went quiet.
    pub fn tick(&mut self, now: Instant) {
        let mut batch = Vec::new();
        let (resolve_after, resend_every) = (self.resolve_after, self.resend_every);
        self.active.retain(|key, active| {
            if now.saturating_duration_since(active.last_seen) >= resolve_after {
                batch.push(payload::resolved(key, &active.example, active.starts_at));
                return false;
            }
            if now.saturating_duration_since(active.last_sent) >= resend_every {
                active.last_sent = now;
                batch.push(payload::firing(key, &active.example, active.starts_at, resolve_after));
            }
            true
        });
        if !batch.is_empty() {
            self.sender.send(batch);
        }
    }

    /// Alerts currently firing.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

/// `5m`, `30s`, `1500ms`, `1h` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 30s, 5m, 1h, 500ms"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{text:?}: unit must be ms, s, m or h")),
    };
    if duration.is_zero() {
        return Err("the duration must be positive".to_owned());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests;
