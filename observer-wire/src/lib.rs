//! The pure stages of the observer: from the sampled bytes of a connection leg to what the leg
//! is. No I/O but reading capture files, no root, no async runtime: everything here runs in unit
//! tests, fuzzers, benchmarks and `observer replay` on any machine.
//!
//! Layers, lowest first (a module only uses those before it):
//! - [`stream`]: the two directions of a leg and how a direction's bytes ended;
//! - [`dissect`]: parsers of untrusted handshake bytes (TLS, plaintext protocols);
//! - [`classify`]: the decision (plaintext, TLS, mTLS, unknown) with its evidence;
//! - [`legs`]: legs as a source reports them, reassembly, and the tracker that classifies them;
//! - [`pcap`]: capture files as a source of legs (`observer replay`).
//!
//! [`regular_file`] (opening a file a user named, refusing devices and FIFOs) and [`printable`]
//! (escaping untrusted text for a terminal) stand apart: any layer may use them.
//!
//! docs/ARCHITECTURE.md shows where this crate sits in the whole.

pub mod classify;
pub mod dissect;
pub mod legs;
pub mod names;
pub mod pcap;
pub mod printable;
pub mod regular_file;
pub mod stream;
