//! The bench report: printed as it is measured and written whole to docs/BENCHMARKS.md (machine,
//! kernel, date and command at its top), with docs/benchmarks.png drawn by gnuplot.

use std::{fmt::Write as _, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::cmd;

const REPORT: &str = "docs/BENCHMARKS.md";
const PLOT: &str = "docs/benchmarks.png";

pub struct Report {
    text: String,
}

impl Report {
    pub fn new(rounds: usize) -> Result<Self> {
        let mut text = String::from("# Benchmark report\n\n");
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines().find_map(|l| Some(l.strip_prefix("model name")?.split_once(':')?.1.trim().to_owned()))
            })
            .unwrap_or_else(|| "unknown CPU".to_owned());
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or_else(|| "?".to_owned(), |kib| format!("{} GiB", kib / 1024 / 1024));
        let kernel = cmd::output("uname", &["-r"]).unwrap_or_default();
        let date = cmd::output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
        let revision = cmd::output("git", &["-C", &cmd::workspace().to_string_lossy(), "rev-parse", "--short", "HEAD"])
            .unwrap_or_default();
        let _ = writeln!(text, "- machine: {cpu}, {cores} cores, {memory}");
        let _ = writeln!(text, "- kernel: {}", kernel.trim());
        let _ = writeln!(text, "- date: {}; revision {}", date.trim(), revision.trim());
        let _ = writeln!(text, "- command: `cargo xtask bench --rounds {rounds}` (as root)");
        let _ = writeln!(
            text,
            "\nFigures are medians with (min–max) over the repeats; ratios compare runs of the same round. \
             The machine is shared: read the spread before the median.\n\n![daemon CPU per connection and memory](benchmarks.png)"
        );
        print!("{text}");
        Ok(Self { text })
    }

    pub fn section(&mut self, title: &str) {
        self.line(&format!("\n## {title}\n"));
    }

    pub fn line(&mut self, line: &str) {
        println!("{line}");
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// Output of a command, kept as it printed it.
    pub fn block(&mut self, text: &str) {
        for line in text.lines() {
            self.line(line);
        }
    }

    /// The PNG: daemon CPU µs per connection against connections/s, and RSS against legs held.
    pub fn plot(&mut self, cpu: &[(f64, f64)], memory: &[(f64, f64)]) -> Result<()> {
        let dir = std::env::temp_dir().join(format!("observer-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let data = |points: &[(f64, f64)]| points.iter().map(|(x, y)| format!("{x} {y}\n")).collect::<String>();
        std::fs::write(dir.join("cpu.dat"), data(cpu))?;
        std::fs::write(dir.join("memory.dat"), data(memory))?;
        let png = cmd::workspace().join(PLOT);
        let script = format!(
            "set terminal pngcairo size 1200,450 font ',10'\nset output '{png}'\nset multiplot layout 1,2\n\
             set title 'daemon CPU per connection'\nset xlabel 'new connections/s (loopback)'\nset ylabel 'µs CPU per connection'\n\
             set yrange [0:*]\nset grid\nplot '{dir}/cpu.dat' using 1:2 with linespoints title 'observer run', 2 with lines dashtype 2 title 'budget 2 µs'\n\
             set title 'tracker memory against legs held'\nset xlabel 'legs held'\nset ylabel 'RSS growth, MiB'\nset logscale xy\n\
             plot '{dir}/memory.dat' using 1:2 with linespoints title 'tracker'\nunset multiplot\n",
            png = png.display(),
            dir = dir.display(),
        );
        std::fs::write(dir.join("plot.gp"), script)?;
        let result = cmd::status(Command::new("gnuplot").arg(dir.join("plot.gp")));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    pub fn write(&self) -> Result<()> {
        let path = cmd::workspace().join(REPORT);
        std::fs::write(&path, &self.text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: report written to {REPORT} and {PLOT}");
        Ok(())
    }
}

/// Run a command and return what it printed on stdout; fail if it fails.
pub fn capture(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command.output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The leading numbers of two columns of a markdown table's rows (`| 10000 | 17 MiB | ...`).
pub fn table_columns(text: &str, x: usize, y: usize) -> Vec<(f64, f64)> {
    let number = |cell: &str| cell.split_whitespace().next()?.parse::<f64>().ok();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
            Some((number(cells.get(x)?)?, number(cells.get(y)?)?))
        })
        .collect()
}

/// Criterion's output reduced to one line per bench: its name and `time: [low median high]`.
pub fn criterion_summary(out: &str) -> String {
    let mut summary = String::from("| bench | time [low median high] |\n|---|---|\n");
    let mut name = "";
    for line in out.lines() {
        let trimmed = line.trim();
        if let Some((head, time)) = trimmed.split_once("time:") {
            let head = head.trim();
            if !head.is_empty() {
                name = head;
            }
            let _ = writeln!(summary, "| {name} | {} |", time.trim());
        } else if !trimmed.is_empty() && !trimmed.contains(':') && !trimmed.starts_with("Found") {
            name = trimmed;
        }
    }
    summary
}
