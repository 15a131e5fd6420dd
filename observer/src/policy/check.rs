//! `observer check`: static analysis of manifests for the documented mistakes.

use super::{Origin, Snapshot};

/// The kinds of mistakes `observer check` finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FindingKind {
    DoubleTls,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub origin: Origin,
    pub kind: FindingKind,
    pub message: String,
}

pub fn check(_snapshot: &Snapshot) -> Vec<Finding> {
    Vec::new()
}
