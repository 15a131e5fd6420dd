//! Self-telemetry: the observer's own health as observable instruments, read at each
//! collection (a scrape or an OTLP export) from a [`Snapshot`] the run loop refreshes, plus the
//! daemon's CPU time and resident memory from `/proc/self` (`process.cpu.time`,
//! `process.memory.usage`).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use opentelemetry::{KeyValue, metrics::Meter};

use super::attributes::{self as attr, names};
pub use crate::capture::ProgramRun;

/// Values read from the sources by the run loop.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// `observer.capture.lost` by stage.
    pub lost: Vec<(String, u64)>,
    /// `observer.connections.tracked`.
    pub tracked: u64,
    pub orphan_closes: u64,
    pub unknown_leg_events: u64,
    pub idle_expired: u64,
    pub handshake_expired: u64,
    /// `observer.ebpf.run.time` and `observer.ebpf.runs` by program.
    pub programs: Vec<ProgramRun>,
    /// `observer.kubernetes.watch.errors` by resource (all zero without the API source).
    pub watch_errors: Vec<(&'static str, u64)>,
    /// `observer.policy.reloads`: (applied, rejected).
    pub policy_reloads: (u64, u64),
    /// `observer.alerts.sent` and `observer.alerts.delivery.failures` by reason.
    pub alerts_sent: u64,
    pub alert_failures: Vec<(&'static str, u64)>,
}

/// The snapshot shared between the run loop (writer) and the callbacks (readers).
pub type SharedSnapshot = Arc<Mutex<Snapshot>>;

fn read(shared: &SharedSnapshot) -> Snapshot {
    shared.lock().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
}

/// Registers every self-telemetry instrument on `meter`. Their callbacks live as long as the
/// meter provider.
pub fn register(meter: &Meter, shared: &SharedSnapshot, export_failures: Arc<AtomicU64>) {
    let s = shared.clone();
    let _lost = meter
        .u64_observable_counter(names::CAPTURE_LOST)
        .with_unit("{event}")
        .with_description("Samples and events lost on the way, by stage.")
        .with_callback(move |o| {
            for (stage, n) in read(&s).lost {
                o.observe(n, &[KeyValue::new(attr::STAGE, stage)]);
            }
        })
        .build();
    let s = shared.clone();
    let _tracked = meter
        .u64_observable_gauge(names::TRACKED)
        .with_unit("{connection}")
        .with_description("Connection legs held, waiting for their classification.")
        .with_callback(move |o| o.observe(read(&s).tracked, &[]))
        .build();
    type Field = fn(&Snapshot) -> u64;
    let plain: [(&'static str, &'static str, &'static str, Field); 4] = [
        (names::ORPHAN_CLOSES, "{event}", "Close events of sockets the observer never saw open.", |s| s.orphan_closes),
        (names::UNKNOWN_LEG_EVENTS, "{event}", "Events for legs the tracker does not hold.", |s| s.unknown_leg_events),
        (names::IDLE_EXPIRED, "{connection}", "Legs reported after going idle undecided.", |s| s.idle_expired),
        (
            names::HANDSHAKE_EXPIRED,
            "{connection}",
            "Legs reported unknown because their handshake was not decided within --handshake-timeout.",
            |s| s.handshake_expired,
        ),
    ];
    for (name, unit, description, field) in plain {
        let s = shared.clone();
        let _counter = meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |o| o.observe(field(&read(&s)), &[]))
            .build();
    }
    let s = shared.clone();
    let _run_time = meter
        .f64_observable_counter(names::EBPF_RUN_TIME)
        .with_unit("s")
        .with_description("Time spent in each eBPF program (while kernel.bpf_stats_enabled=1).")
        .with_callback(move |o| {
            for run in read(&s).programs {
                o.observe(run.run_time_ns as f64 / 1e9, &[KeyValue::new(attr::PROGRAM, run.program)]);
            }
        })
        .build();
    let s = shared.clone();
    let _runs = meter
        .u64_observable_counter(names::EBPF_RUNS)
        .with_unit("{run}")
        .with_description("Runs of each eBPF program (while kernel.bpf_stats_enabled=1).")
        .with_callback(move |o| {
            for run in read(&s).programs {
                o.observe(run.run_count, &[KeyValue::new(attr::PROGRAM, run.program)]);
            }
        })
        .build();
    let s = shared.clone();
    let _reloads = meter
        .u64_observable_counter(names::POLICY_RELOADS)
        .with_unit("{reload}")
        .with_description("Policy reloads, by result: applied, or rejected (the last good policy stays).")
        .with_callback(move |o| {
            let (applied, rejected) = read(&s).policy_reloads;
            o.observe(applied, &[KeyValue::new(attr::RESULT, "applied")]);
            o.observe(rejected, &[KeyValue::new(attr::RESULT, "rejected")]);
        })
        .build();
    let s = shared.clone();
    let _watch = meter
        .u64_observable_counter(names::WATCH_ERRORS)
        .with_unit("{error}")
        .with_description("Failed lists and watches of the Kubernetes API, by resource (retried with backoff).")
        .with_callback(move |o| {
            for (resource, n) in read(&s).watch_errors {
                o.observe(n, &[KeyValue::new(attr::RESOURCE, resource)]);
            }
        })
        .build();
    let _export = meter
        .u64_observable_counter(names::EXPORT_FAILURES)
        .with_unit("{export}")
        .with_description("OTLP metric exports that failed after the exporter's retries.")
        .with_callback(move |o| {
            o.observe(export_failures.load(Ordering::Relaxed), &[KeyValue::new(attr::EXPORTER, "otlp")]);
        })
        .build();
    let s = shared.clone();
    let _sent = meter
        .u64_observable_counter(names::ALERTS_SENT)
        .with_unit("{alert}")
        .with_description("Alerts (firing and resolved) Alertmanager accepted.")
        .with_callback(move |o| o.observe(read(&s).alerts_sent, &[]))
        .build();
    let s = shared.clone();
    let _failed = meter
        .u64_observable_counter(names::ALERT_FAILURES)
        .with_unit("{alert}")
        .with_description("Alerts not delivered to Alertmanager, by reason.")
        .with_callback(move |o| {
            for (reason, n) in read(&s).alert_failures {
                o.observe(n, &[KeyValue::new(attr::ERROR_TYPE, reason)]);
            }
        })
        .build();
    register_process(meter);
}

/// `process.cpu.time` {cpu.mode=user|system} and `process.memory.usage` (resident set).
fn register_process(meter: &Meter) {
    let _cpu = meter
        .f64_observable_counter(names::PROCESS_CPU_TIME)
        .with_unit("s")
        .with_description("CPU time of the observer process, by mode.")
        .with_callback(|o| {
            if let Some((user, system)) = cpu_seconds() {
                o.observe(user, &[KeyValue::new(attr::CPU_MODE, "user")]);
                o.observe(system, &[KeyValue::new(attr::CPU_MODE, "system")]);
            }
        })
        .build();
    let _memory = meter
        .i64_observable_up_down_counter(names::PROCESS_MEMORY)
        .with_unit("By")
        .with_description("Resident memory of the observer process.")
        .with_callback(|o| {
            if let Some(bytes) = resident_bytes() {
                o.observe(i64::try_from(bytes).unwrap_or(i64::MAX), &[]);
            }
        })
        .build();
}

/// User and system CPU seconds from `/proc/self/stat` (fields 14 and 15, in clock ticks).
pub fn cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat, clock_ticks())
}

fn parse_stat(stat: &str, ticks: f64) -> Option<(f64, f64)> {
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user / ticks, system / ticks))
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Resident bytes from `/proc/self/statm` (second field, in pages).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_ascii_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages.saturating_mul(u64::try_from(page).unwrap_or(4096)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 10 0";
        assert_eq!(parse_stat(stat, 100.0), Some((2.5, 0.75)));
        assert_eq!(parse_stat("garbage", 100.0), None);
        assert_eq!(parse_stat("1 (x) S 1", 100.0), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_resident_memory() {
        assert!(cpu_seconds().is_some());
        assert!(resident_bytes().is_some_and(|b| b > 1024 * 1024));
    }
}
