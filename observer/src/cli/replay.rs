//! `observer replay FILE...`: the pcap source feeding the same pipeline as the live capture.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use observer_pipeline::Pipeline;
use observer_wire::{legs::TrackerConfig, pcap::CaptureSource};

use super::tracker_thread::TrackerThread;
use crate::export::Format;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// pcap or pcapng files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub output: Format,
    /// Legs held at once while their classification is open; opens beyond this are dropped,
    /// counted in the summary, and make the exit status non-zero.
    #[arg(long, value_name = "N", default_value_t = TrackerConfig::default().max_legs)]
    pub max_legs: usize,
    #[command(flatten)]
    pub policy: super::policy::PolicyArgs,
}

/// Replay every file; a file that cannot be read is reported (naming it) and makes the exit
/// status non-zero, the others are still replayed. Legs dropped because `--max-legs` were held
/// also make it non-zero: the output is then not every leg of the capture.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let policy = args.policy.load_once()?;
    let mesh = policy.store.current();
    let output = super::output_thread::OutputThread::start(args.output).context("starting the output thread")?;
    let max_legs = args.max_legs.max(1);
    let pipeline = Pipeline::new(TrackerConfig { max_legs, ..TrackerConfig::default() }, super::node_name());
    let mut source = CaptureSource::new(max_legs);
    let mut failed = 0;
    let finished = std::thread::scope(|scope| {
        let mut legs = TrackerThread::start(scope, pipeline, &mesh, output).context("starting the pipeline thread")?;
        for path in &args.files {
            if let Err(error) = source.file(path, &mut legs) {
                tracing::error!("{error}");
                failed += 1;
            }
        }
        legs.finish().context("replaying")
    })?;
    if let Err(e) = finished.output
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(anyhow::Error::new(e).context("writing records"));
    }
    let (stats, tracker) = (source.stats(), finished.tracker);
    tracing::info!(
        files = stats.files,
        frames = stats.frames,
        tcp_segments = stats.tcp_segments,
        connections = stats.tcp.connections,
        joined_midstream = stats.tcp.midstream,
        "replay done"
    );
    let skipped = stats.damaged
        + stats.fragments
        + stats.unsupported_link
        + stats.truncated_payloads
        + stats.orphan_packets
        + stats.bad_timestamps
        + stats.truncated_files
        + stats.tcp.evicted
        + tracker.legs_dropped_full;
    if skipped > 0 {
        tracing::warn!(
            damaged = stats.damaged,
            ip_fragments = stats.fragments,
            unsupported_link = stats.unsupported_link,
            truncated_payloads = stats.truncated_payloads,
            orphan_packets = stats.orphan_packets,
            bad_timestamps = stats.bad_timestamps,
            truncated_files = stats.truncated_files,
            connections_evicted = stats.tcp.evicted,
            legs_dropped = tracker.legs_dropped_full,
            "replay skipped packets"
        );
    }
    if tracker.legs_dropped_full > 0 {
        tracing::error!(
            legs_dropped = tracker.legs_dropped_full,
            max_legs = args.max_legs,
            "replay dropped legs: more than --max-legs connections were open at once"
        );
    }
    Ok(if failed > 0 || tracker.legs_dropped_full > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
