//! Loopback load for the benches: short connections at a target rate, or one long stream.
//! Traffic stays on 127.0.0.1 and every thread stops by itself.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::Result;

/// Bytes the client sends on each short connection: about a ClientHello.
const REQUEST_BYTES: usize = 600;
/// Bytes the server answers with.
const RESPONSE_BYTES: usize = 1200;
const CLIENT_THREADS: usize = 4;
const SERVER_THREADS: usize = 4;

/// What a run of short connections achieved.
pub struct ConnectionRun {
    pub completed: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl ConnectionRun {
    pub fn rate(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Open, exchange a request and response, and close connections at `rate` per second for `duration`.
pub fn connections(rate: u64, duration: Duration) -> Result<ConnectionRun> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut servers = Vec::new();
    for _ in 0..SERVER_THREADS {
        let listener = listener.try_clone()?;
        let stop = stop.clone();
        servers.push(thread::spawn(move || {
            let response = vec![b'r'; RESPONSE_BYTES];
            let mut request = vec![0u8; REQUEST_BYTES];
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else { continue };
                if stream.read_exact(&mut request).is_ok() {
                    let _ = stream.write_all(&response);
                }
            }
        }));
    }
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let per_thread = Duration::from_secs_f64(CLIENT_THREADS as f64 / rate as f64);
    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|i| {
            let (completed, failed) = (completed.clone(), failed.clone());
            thread::spawn(move || {
                let request = vec![b'q'; REQUEST_BYTES];
                let mut response = Vec::with_capacity(RESPONSE_BYTES);
                let mut next = start + per_thread.mul_f64(i as f64 / CLIENT_THREADS as f64);
                while start.elapsed() < duration {
                    let now = Instant::now();
                    if now < next {
                        thread::sleep(next - now);
                    }
                    next += per_thread;
                    let ok = TcpStream::connect(addr).and_then(|mut s| {
                        s.write_all(&request)?;
                        response.clear();
                        s.read_to_end(&mut response)?;
                        Ok(response.len() == RESPONSE_BYTES)
                    });
                    match ok {
                        Ok(true) => completed.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.join();
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    // Wake the acceptors so they see the stop flag.
    for _ in 0..SERVER_THREADS {
        let _ = TcpStream::connect(addr).map(|s| s.shutdown(Shutdown::Both));
    }
    for server in servers {
        let _ = server.join();
    }
    Ok(ConnectionRun { completed: completed.load(Ordering::Relaxed), failed: failed.load(Ordering::Relaxed), elapsed })
}

/// One connection streaming small writes (TCP_NODELAY: one segment each) for `duration`:
/// after the first 4 KiB every packet takes the kernel's after-budget path.
pub fn stream(duration: Duration) -> Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let reader = thread::spawn(move || -> u64 {
        let Ok((mut stream, _)) = listener.accept() else { return 0 };
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    // Random-looking bytes: no protocol the observer knows.
    let chunk: Vec<u8> = (0..1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let start = Instant::now();
    while start.elapsed() < duration {
        stream.write_all(&chunk)?;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(reader.join().unwrap_or(0))
}
