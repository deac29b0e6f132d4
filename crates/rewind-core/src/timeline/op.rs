//! Timeline mutations as data, for journaling and replay.
//!
//! Every mutation of a [`Timeline`] can be expressed as a [`TimelineOp`] and
//! run with [`Timeline::execute`]. Each mutation reads the clock once; a
//! journal stores the op with [`Timeline::last_at`] and a replay sets a
//! [`ManualClock`](crate::ManualClock) to that instant before executing it
//! again, which reproduces the timeline exactly (revisions, snapshot names,
//! times, transaction ids).

use serde::{Deserialize, Serialize};

use super::{
    AutoTrigger, Commit, CommitMeta, NamedOptions, Pruned, RollbackOutcome, RollbackTarget,
    SnapshotInfo, SnapshotTaken, Timeline, TransactionOutcome,
};
use crate::error::Error;
use crate::id::TransactionId;
use crate::model::Model;
use crate::name::SnapshotName;

/// One mutation of a timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", bound = "")]
pub enum TimelineOp<M: Model> {
    /// [`Timeline::apply_with`].
    Apply {
        /// The change.
        change: M::Change,
        /// Attribution.
        #[serde(default)]
        meta: CommitMeta,
    },
    /// [`Timeline::replace_with`].
    Replace {
        /// The new state.
        state: M,
        /// Attribution.
        #[serde(default)]
        meta: CommitMeta,
    },
    /// [`Timeline::snapshot_auto`].
    SnapshotAuto {
        /// Why.
        trigger: AutoTrigger,
    },
    /// [`Timeline::snapshot_named`].
    SnapshotNamed {
        /// The name.
        name: SnapshotName,
        /// Protection and replace.
        #[serde(default)]
        options: NamedOptions,
    },
    /// [`Timeline::protect`].
    Protect {
        /// The snapshot.
        name: SnapshotName,
        /// Protect or unprotect.
        protected: bool,
    },
    /// [`Timeline::delete_snapshot`].
    DeleteSnapshot {
        /// The snapshot.
        name: SnapshotName,
    },
    /// [`Timeline::rollback_with`].
    Rollback {
        /// Where to.
        target: RollbackTarget,
        /// Attribution.
        #[serde(default)]
        meta: CommitMeta,
    },
    /// [`Timeline::begin_transaction`].
    BeginTransaction,
    /// [`Timeline::apply_step`].
    ApplyStep {
        /// The transaction.
        transaction: TransactionId,
        /// The step name.
        step: SnapshotName,
        /// The change.
        change: M::Change,
    },
    /// [`Timeline::checkpoint`].
    Checkpoint {
        /// The transaction.
        transaction: TransactionId,
        /// The checkpoint name.
        name: SnapshotName,
    },
    /// [`Timeline::finish_transaction`].
    FinishTransaction {
        /// The transaction.
        transaction: TransactionId,
        /// How it ended.
        outcome: TransactionOutcome,
    },
}

/// What an executed [`TimelineOp`] did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Executed {
    /// A new revision (apply, replace, transaction step).
    Commit(Commit),
    /// A snapshot taken.
    Snapshot(SnapshotTaken),
    /// A snapshot protected, unprotected or deleted.
    SnapshotChanged(SnapshotInfo),
    /// A rollback made.
    Rollback(Box<RollbackOutcome>),
    /// A transaction begun.
    Begun(TransactionId),
    /// A checkpoint recorded.
    Checkpoint(SnapshotInfo),
    /// A transaction finished; checkpoints pruned.
    Finished(Pruned),
}

impl<M: Model> Timeline<M> {
    /// Runs one mutation. On error nothing changed.
    pub fn execute(&mut self, op: &TimelineOp<M>) -> Result<Executed, Error> {
        Ok(match op {
            TimelineOp::Apply { change, meta } => {
                Executed::Commit(self.apply_with(change, meta.clone())?)
            }
            TimelineOp::Replace { state, meta } => {
                Executed::Commit(self.replace_with(state.clone(), meta.clone()))
            }
            TimelineOp::SnapshotAuto { trigger } => {
                Executed::Snapshot(self.snapshot_auto(*trigger))
            }
            TimelineOp::SnapshotNamed { name, options } => {
                Executed::Snapshot(self.snapshot_named(name.clone(), *options)?)
            }
            TimelineOp::Protect { name, protected } => {
                Executed::SnapshotChanged(self.protect(name, *protected)?)
            }
            TimelineOp::DeleteSnapshot { name } => {
                Executed::SnapshotChanged(self.delete_snapshot(name)?)
            }
            TimelineOp::Rollback { target, meta } => {
                Executed::Rollback(Box::new(self.rollback_with(target, meta.clone())?))
            }
            TimelineOp::BeginTransaction => Executed::Begun(self.begin_transaction()),
            TimelineOp::ApplyStep {
                transaction,
                step,
                change,
            } => Executed::Commit(self.apply_step(*transaction, step, change)?),
            TimelineOp::Checkpoint { transaction, name } => {
                Executed::Checkpoint(self.checkpoint(*transaction, name.clone())?)
            }
            TimelineOp::FinishTransaction {
                transaction,
                outcome,
            } => Executed::Finished(self.finish_transaction(*transaction, *outcome)?),
        })
    }
}
