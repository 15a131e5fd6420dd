//! The observer daemon and its command line: the live capture (eBPF programs and the ring
//! buffer), the Kubernetes API source, policy reload, and the outputs (JSON lines, table,
//! metrics). The pure stages are in `observer-wire`, the mesh model in `observer-mesh`;
//! docs/ARCHITECTURE.md shows how the three fit.

pub mod alert;
pub mod capture;
pub mod cli;
pub mod cluster;
pub mod edges;
pub mod export;
pub mod privileges;
pub mod reload;
