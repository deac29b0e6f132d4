//! Retention limits of a timeline.

use serde::{Deserialize, Serialize};

use crate::error::InvalidInput;

/// Retention limits of one timeline. Every limit is per timeline (per tenant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimelineConfig {
    /// Revisions kept addressable by number and time (default 1000). Older
    /// ones are dropped unless a snapshot holds them.
    pub history_limit: usize,
    /// Auto snapshots kept (default 10): the next one prunes the oldest.
    pub auto_limit: usize,
    /// Named snapshots kept (default 50): the next one prunes the oldest
    /// unprotected one.
    pub named_limit: usize,
    /// Finished transactions whose checkpoints are kept (default 16).
    pub finished_transactions_kept: usize,
    /// Revisions before the head whose states stay whole trees (default
    /// 0), with the head and the newest snapshot: the hot set, read and
    /// rolled back to in O(1). Each costs the nodes its changes copied;
    /// with none, reading the revision before the head applies one delta
    /// (O(changes · log n)), and a rebuilt state is cached. Older states are kept as deltas and
    /// rebuilt when read (see [`Timeline::state_at`](crate::Timeline::state_at)).
    pub hot_revisions: usize,
    /// Cold states rebuilt recently that are kept for the next read
    /// (default 8; 0 keeps none). A rebuild also keeps some of the states
    /// it passed through (1, 2, 4... entries above the one read), so a
    /// sweep through history does not walk from the nearest whole state
    /// for every read.
    pub rebuild_cache: usize,
    /// Bytes of history a timeline may hold beyond its current state
    /// ([`MemoryUsage::history_bytes`](crate::MemoryUsage)), or `None`
    /// (default) for no bound. Past it, the oldest window revisions, auto
    /// snapshots and finished transactions are dropped first, then
    /// unprotected named snapshots; protected snapshots, running
    /// transactions and the head never are.
    pub history_budget: Option<usize>,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            history_limit: 1000,
            auto_limit: 10,
            named_limit: 50,
            finished_transactions_kept: 16,
            hot_revisions: 0,
            rebuild_cache: 8,
            history_budget: None,
        }
    }
}

impl TimelineConfig {
    /// Checks that the limits can work: the history window must hold at least
    /// the head, the auto ring at least the `pre-rollback` snapshot, and the
    /// named limit at least one snapshot.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        if self.history_limit == 0 {
            return Err(InvalidInput::Config(
                "history_limit must be at least 1 (the head is always kept)".into(),
            ));
        }
        if self.auto_limit == 0 {
            return Err(InvalidInput::Config(
                "auto_limit must be at least 1 (every rollback keeps a pre-rollback snapshot)"
                    .into(),
            ));
        }
        if self.named_limit == 0 {
            return Err(InvalidInput::Config(
                "named_limit must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
