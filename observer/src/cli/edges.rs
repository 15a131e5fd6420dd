//! `observer edges` and `observer readiness NAMESPACE`: the edge map and the STRICT-readiness
//! answer, from a running daemon (`--from`), JSON lines (`--input`), captures (`--replay`,
//! through the replay pipeline) or the metrics of every node in Prometheus (`--prometheus`).
//! Exit status: 0 (readiness: ready), 1 (not ready), 2 bad input or a source that could not be
//! read.

use std::{io::Write as _, path::PathBuf, process::ExitCode};

use observer_mesh::verdict;
use observer_wire::{legs::TrackerConfig, pcap::Replay};

use crate::{
    edges::{self, EdgeTable, Filter, Readiness, Snapshot, Target, api, prometheus::Window, readiness, render},
    export::ConnectionRecord,
};

use super::{http, prometheus};

/// Where the edges come from: exactly one of these.
#[derive(clap::Args, Debug, Clone)]
pub struct Source {
    /// A running daemon's metrics listener, `http://HOST:PORT` (`observer run --metrics-addr`).
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// A Prometheus scraping every node's observer, `http://HOST:PORT`: the whole cluster, from
    /// the exported metrics (ends are owning workloads; no addresses, processes or times).
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// How far back --prometheus looks: a number and s, m, h, d or w (1m to 400d).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// JSON lines of `observer run` or `observer replay` (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// pcap or pcapng files, classified and judged as `observer replay` does (with --policy).
    #[arg(long = "replay", value_name = "FILE", num_args = 1..)]
    pub replay: Vec<PathBuf>,
    #[command(flatten)]
    pub policy: super::policy::PolicyArgs,
    /// Most edges held when reading --input, --replay or --prometheus.
    #[arg(long, value_name = "N", default_value_t = edges::DEFAULT_MAX_EDGES)]
    pub max_edges: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
    Dot,
}

#[derive(clap::Args, Debug)]
pub struct EdgesArgs {
    #[command(flatten)]
    pub source: Source,
    /// Only edges with an end in this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only edges with this workload at an end (`pod` or `namespace/pod`).
    #[arg(long, value_name = "W")]
    pub workload: Option<String>,
    /// Only edges with connections of this security (plaintext, tls, mtls, unknown).
    #[arg(long, value_name = "SECURITY")]
    pub security: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
    /// Also render the map as PNG with Graphviz `dot`.
    #[arg(long, value_name = "FILE")]
    pub png: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ReadinessArgs {
    /// The namespace to switch to STRICT.
    pub namespace: String,
    /// Only this workload of the namespace (`pod` or `namespace/pod`).
    #[arg(long, value_name = "W")]
    pub workload: Option<String>,
    #[command(flatten)]
    pub source: Source,
    /// `table` (for people) or `json`.
    #[arg(long, value_enum, default_value = "table")]
    pub output: Output,
}

const BAD_INPUT: u8 = 2;

pub fn run_edges(args: EdgesArgs) -> anyhow::Result<ExitCode> {
    let filter = Filter { namespace: args.namespace, workload: args.workload, security: args.security };
    let result = (|| -> anyhow::Result<Snapshot> {
        validate_filter(&filter)?;
        let window = args.source.check()?;
        Ok(match (&args.source.from, &args.source.prometheus) {
            (Some(url), _) => http::get_json(url, &format!("/v1/edges{}", edges_query(&filter)))?,
            (_, Some(url)) => {
                let (snapshot, coverage) = prometheus::fetch(url, window, None, args.source.max_edges)?;
                for caveat in edges::prometheus::caveats(&snapshot, &coverage, None) {
                    eprintln!("observer: note: {}", render::escape(&caveat));
                }
                snapshot.filtered(&filter)
            }
            _ => local(&args.source)?.snapshot().filtered(&filter),
        })
    })();
    let snapshot = match result {
        Ok(s) => s,
        Err(error) => return Ok(bad_input(&error)),
    };
    let text = match args.output {
        Output::Table if args.source.prometheus.is_some() => {
            render::edges_table(&snapshot) + edges::prometheus::TABLE_NOTE + "\n"
        }
        Output::Table => render::edges_table(&snapshot),
        Output::Json => serde_json::to_string_pretty(&snapshot)? + "\n",
        Output::Dot => render::dot(&snapshot),
    };
    print(&text)?;
    if let Some(png) = &args.png
        && let Err(error) = render_png(&render::dot(&snapshot), png)
    {
        return Ok(bad_input(&error));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_readiness(args: ReadinessArgs) -> anyhow::Result<ExitCode> {
    let target = Target { namespace: args.namespace, workload: args.workload };
    let result = (|| -> anyhow::Result<Readiness> {
        api::validate_namespace(&target.namespace)?;
        if let Some(w) = &target.workload {
            api::validate_workload(w)?;
        }
        if args.output == Output::Dot {
            anyhow::bail!("--output dot is for `observer edges`");
        }
        let window = args.source.check()?;
        Ok(match (&args.source.from, &args.source.prometheus) {
            (Some(url), _) => http::get_json(url, &format!("/v1/readiness{}", readiness_query(&target)))?,
            (_, Some(url)) => {
                let ns = Some(target.namespace.as_str());
                let (snapshot, coverage) = prometheus::fetch(url, window, ns, args.source.max_edges)?;
                let mut answer = readiness::assess(&snapshot, &target);
                answer.thin_evidence.extend(edges::prometheus::caveats(&snapshot, &coverage, Some(&target)));
                answer
            }
            _ => readiness::assess(&local(&args.source)?.snapshot(), &target),
        })
    })();
    let answer = match result {
        Ok(r) => r,
        Err(error) => return Ok(bad_input(&error)),
    };
    let text = match args.output {
        Output::Json => serde_json::to_string_pretty(&answer)? + "\n",
        _ => render::readiness_text(&answer),
    };
    print(&text)?;
    Ok(if answer.ready { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn bad_input(error: &anyhow::Error) -> ExitCode {
    eprintln!("observer: {error:#}");
    ExitCode::from(BAD_INPUT)
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn validate_filter(filter: &Filter) -> Result<(), api::QueryError> {
    if let Some(ns) = &filter.namespace {
        api::validate_namespace(ns)?;
    }
    if let Some(w) = &filter.workload {
        api::validate_workload(w)?;
    }
    if let Some(s) = &filter.security {
        api::validate_security(s)?;
    }
    Ok(())
}

impl Source {
    /// Exactly one source; a second one is an error, not silently ignored. Returns the
    /// `--window` (for --prometheus only).
    fn check(&self) -> anyhow::Result<Window> {
        let given = usize::from(self.from.is_some())
            + usize::from(self.prometheus.is_some())
            + usize::from(self.input.is_some())
            + usize::from(!self.replay.is_empty());
        anyhow::ensure!(given == 1, "give exactly one of --from URL, --prometheus URL, --input FILE, --replay FILE...");
        anyhow::ensure!(self.window.is_none() || self.prometheus.is_some(), "--window is for --prometheus");
        Ok(self.window.as_deref().unwrap_or(edges::prometheus::DEFAULT_WINDOW).parse()?)
    }
}

/// The table built here from --input or --replay.
fn local(source: &Source) -> anyhow::Result<EdgeTable> {
    let mut table = EdgeTable::new(source.max_edges);
    match &source.input {
        Some(path) => {
            let stats = if path.as_os_str() == "-" {
                edges::read_lines(std::io::stdin().lock(), &mut table)?
            } else {
                let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                edges::read_lines(std::io::BufReader::new(file), &mut table)?
            };
            if stats.skipped > 0 {
                tracing::warn!(lines = stats.lines, skipped = stats.skipped, "lines that are not records were skipped");
            }
        }
        None => {
            let policy = source.policy.load()?;
            let node = super::node_name();
            let mut sink = |leg| {
                let assessment = verdict::assess(&leg, &policy.store.current());
                table.record(&ConnectionRecord::new(&leg, &assessment, &node));
            };
            let mut replay = Replay::new(TrackerConfig::default());
            for path in &source.replay {
                replay.file(path, &mut sink)?;
            }
            replay.finish(&mut sink);
        }
    }
    Ok(table)
}

fn edges_query(filter: &Filter) -> String {
    let pairs = [("namespace", &filter.namespace), ("workload", &filter.workload), ("security", &filter.security)];
    query(&pairs)
}

fn readiness_query(target: &Target) -> String {
    query(&[("namespace", &Some(target.namespace.clone())), ("workload", &target.workload)])
}

/// `?a=x&b=y` of the given values; they were validated, only `/` needs escaping.
fn query(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", v.replace('/', "%2F")))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// `dot -Tpng -o FILE`, fed the graph on standard input.
fn render_png(dot: &str, png: &std::path::Path) -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tpng")
        .arg("-o")
        .arg(png)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("running Graphviz `dot` for --png: {e} (install graphviz)"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes())?;
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "Graphviz `dot` failed ({status})");
    Ok(())
}
