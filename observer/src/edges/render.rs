//! The edge map and the readiness answer for people (`--output table`), as Graphviz
//! (`--output dot`) and as JSON. Every name printed went through [`escape`]: workload, process
//! and policy names come from hostile places (pod names, `comm`, JSON lines).

use std::fmt::Write as _;

use super::{
    model::Snapshot,
    readiness::{Client, Readiness},
};

/// `s` with control characters (C0, DEL, C1) written as `\u{..}`, so a name cannot move the
/// cursor, clear the screen or forge a line.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// The client → server matrix, one edge a line.
pub fn edges_table(snapshot: &Snapshot) -> String {
    let rows: Vec<[String; 6]> = snapshot
        .edges
        .iter()
        .map(|e| {
            let mut flags: Vec<String> = e.deviations.iter().map(|(k, n)| format!("{} {n}", escape(k))).collect();
            if e.would_break_under_strict > 0 {
                flags.push(format!("would_break_under_strict {}", e.would_break_under_strict));
            }
            let policy = match (&e.policy, &e.mode) {
                (Some(p), Some(m)) => format!("{} ({})", escape(p), escape(m)),
                (Some(p), None) => escape(p),
                _ => "-".to_owned(),
            };
            [
                escape(&e.client.label()),
                format!("{}:{}", escape(&e.server.label()), e.port),
                e.security.summary(),
                if flags.is_empty() { "-".to_owned() } else { flags.join(", ") },
                policy,
                if e.last_seen.is_empty() { "-".to_owned() } else { escape(&e.last_seen) },
            ]
        })
        .collect();
    let header = ["CLIENT", "SERVER", "SECURITY", "DEVIATIONS", "POLICY", "LAST SEEN"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    let s = snapshot.stats;
    let _ = writeln!(
        out,
        "{} edges from {} records ({} in-pod legs not shown); {} evicted (max {})",
        snapshot.edges.len(),
        s.records,
        s.in_pod_legs,
        s.evicted,
        s.max_edges
    );
    out
}

/// Graphviz: a node per client and server, an edge per edge; plaintext, TLS without a client
/// certificate and deviating edges red, mTLS-only green, the rest grey.
pub fn dot(snapshot: &Snapshot) -> String {
    let mut out = String::from("digraph edges {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n");
    for e in &snapshot.edges {
        let color = if e.is_weak() {
            "red"
        } else if e.security.mtls > 0 && e.security.mtls == e.security.total() {
            "darkgreen"
        } else {
            "grey"
        };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [label=\"{}\", color={color}, fontcolor={color}];",
            dot_escape(&e.client.label()),
            dot_escape(&e.server.label()),
            dot_escape(&format!(":{} {}", e.port, e.security.summary())),
        );
    }
    out.push_str("}\n");
    out
}

fn dot_escape(s: &str) -> String {
    escape(s).replace('\\', "\\\\").replace('"', "\\\"")
}

/// The readiness answer: its first line says ready or not, then who would break and who sends
/// mTLS already.
pub fn readiness_text(r: &Readiness) -> String {
    let mut out = format!("{}\n", escape(&r.summary));
    let list = |out: &mut String, title: &str, clients: &[Client]| {
        if clients.is_empty() {
            return;
        }
        let _ = writeln!(out, "{title} ({}):", clients.len());
        for c in clients {
            let process = match (&c.process, &c.workload) {
                (Some(p), Some(_)) => format!(", process {}", escape(p)),
                _ => String::new(),
            };
            // Metrics (`--prometheus`) say how many, not when.
            let seen =
                if c.last_seen.is_empty() { String::new() } else { format!(", last seen {}", escape(&c.last_seen)) };
            let _ = writeln!(
                out,
                "  {} -> {}:{}  {} {} connection{}{seen}{process}",
                escape(&c.client),
                escape(&c.server),
                c.port,
                c.connections,
                escape(&c.sends),
                if c.connections == 1 { "" } else { "s" },
            );
        }
    };
    list(&mut out, "would break under STRICT", &r.would_break);
    list(&mut out, "refused already (the server is STRICT)", &r.refused_already);
    list(&mut out, "already sending mTLS", &r.mtls);
    for thin in &r.thin_evidence {
        let _ = writeln!(out, "evidence is thin: {}", escape(thin));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("pod\x1b[2J\n\u{9b}x"), "pod\\u{1b}[2J\\u{a}\\u{9b}x");
        assert_eq!(escape("ns/pod-ä"), "ns/pod-ä");
        assert_eq!(dot_escape("a\"b\\"), "a\\\"b\\\\");
    }
}
