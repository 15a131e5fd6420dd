//! The live source: eBPF programs at the cgroup v2 root, their ring buffer, and the translation of
//! socket events into leg events for the tracker.

pub mod baseline;
pub mod events;
mod listeners;
mod loader;
pub mod pins;
mod preflight;
pub mod sockets;

pub use loader::CaptureError;
pub use loader::{KernelCounters, LiveCapture, ProgramRun};
pub use pins::{DEFAULT_PIN_DIR, PinError};
pub use preflight::{PreflightError, check as preflight, find_cgroup2};
pub use sockets::{SocketStats, Sockets};
