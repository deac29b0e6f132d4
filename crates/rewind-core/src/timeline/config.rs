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
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig {
            history_limit: 1000,
            auto_limit: 10,
            named_limit: 50,
            finished_transactions_kept: 16,
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
