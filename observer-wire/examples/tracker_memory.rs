//! RSS of the userspace tracker against the number of legs it holds (docs/ARCHITECTURE.md, "Budgets": a curve at
//! 10k/100k/1M, bounded by `--max-legs`). Each leg holds a partial 512-byte ClientHello, as a
//! connection waiting for the rest of its handshake would.
//!
//! `cargo run --release -p observer --example tracker_memory`

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Instant, SystemTime},
};

use observer_wire::legs::{Direction, Event, ObservedAt, Peer, Process, Tracker, TrackerConfig};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok()))
        .unwrap_or(0)
}

fn main() {
    // A TLS handshake record announcing 1500 bytes, of which 512 arrived.
    let mut partial = vec![0x16, 0x03, 0x01, 0x05, 0xdc, 0x01, 0x00, 0x05, 0xd8, 0x03, 0x03];
    partial.resize(512, 0x2a);
    println!("| legs held | RSS growth | bytes per leg | held after feeding |");
    println!("|---|---|---|---|");
    for legs in [10_000u64, 100_000, 1_000_000] {
        let before = rss_kib();
        let mut tracker = Tracker::new(TrackerConfig { max_legs: legs as usize, ..TrackerConfig::default() });
        let mut out = Vec::new();
        let now = Instant::now();
        for leg in 0..legs {
            let client = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 | (leg as u32 & 0xffff)), (leg % 60_000) as u16));
            let process = Some(Process { pid: 4242, uid: 1337, comm: "envoy".into(), cgroup_id: 7 });
            let open = Event::Open {
                leg,
                time: SystemTime::now(),
                client: Peer { addr: client, process },
                server: Peer { addr: SocketAddr::from(([10, 1, 0, 1], 443)), process: None },
                observed_at: ObservedAt::Client,
            };
            tracker.handle(open, now, &mut out);
            let data = Event::Data { leg, direction: Direction::ClientToServer, offset: 0, bytes: &partial };
            tracker.handle(data, now, &mut out);
            out.clear();
        }
        let grown = rss_kib().saturating_sub(before);
        println!("| {legs} | {} MiB | {} | {} |", grown / 1024, grown * 1024 / legs, tracker.len());
        drop(tracker);
    }
}
