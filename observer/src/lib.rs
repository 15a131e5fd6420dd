//! observer: classifies every TCP connection leg on a node as plaintext, TLS or mutual TLS and
//! checks it against the mesh policy. See DESIGN.md for the pipeline:
//! source (live capture or pcap replay) -> flows -> dissect -> classify -> verdict -> export.

pub mod alert;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod cluster;
pub mod dissect;
pub mod export;
pub mod flows;
pub mod inventory;
pub mod policy;
pub mod replay;
pub mod verdict;
