//! The mesh model: what the Kubernetes manifests say (Istio policy, the observer's own
//! `Expectation`, pods and Services), and the verdict on a classified leg. Values in, values
//! out: the only I/O is reading manifest files; no async runtime, no kernel, no API client.
//!
//! Layers, lowest first (a module only uses those before it):
//! - [`manifest`]: what every manifest has (origin, metadata, selectors), bounded file reading;
//! - [`inventory`]: pods and Services by address, service accounts, sidecars;
//! - [`policy`]: PeerAuthentication, DestinationRule, Gateway, VirtualService, mesh settings,
//!   Expectation, and the precedence rules between them;
//! - [`load`]: files and texts of manifests into one validated [`Mesh`], every error at once;
//! - [`check`]: the static analysis of `observer check`;
//! - [`verdict`]: a classified leg's kind, what the policy requires of it, and the decision.
//!
//! docs/ARCHITECTURE.md shows where this crate sits in the whole; docs/MESH.md holds the Istio
//! rules implemented here.

pub mod check;
pub mod inventory;
pub mod load;
pub mod manifest;
pub mod policy;
pub mod verdict;

pub use load::{Mesh, load_paths, load_paths_requiring_manifests, load_str, load_texts};
