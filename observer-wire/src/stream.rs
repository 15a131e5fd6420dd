//! The two byte streams of a leg: which way bytes travel, and how a direction's stream ended as
//! far as the source knows. The lowest layer of the crate: the classifier reads these facts,
//! the tracker and every source report them.

/// Which way bytes travel on a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// How a direction's byte stream ended, as far as the sampler knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StreamEnd {
    /// More bytes may still come.
    #[default]
    Open,
    /// The connection closed: nothing more will come.
    Closed,
    /// The sampling budget for this direction is spent: later bytes exist but were not captured.
    BudgetSpent,
}
