//! References to past states: what to read, diff or roll back to.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{Revision, TransactionId};
use crate::name::SnapshotName;
use crate::time::Timestamp;

/// A state of the timeline to read or diff.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRef {
    /// The current state.
    Head,
    /// A revision in the history window or held by a snapshot.
    Revision(Revision),
    /// An auto or named snapshot, by name.
    Snapshot(SnapshotName),
    /// A transaction checkpoint.
    Checkpoint {
        /// The transaction.
        transaction: TransactionId,
        /// The checkpoint (step) name; `start` is the state before the first step.
        name: SnapshotName,
    },
    /// The exact state at an instant: the newest revision committed at or
    /// before it, when the history window reaches back that far.
    AsOf(Timestamp),
}

impl StateRef {
    /// A snapshot by name, validating the name.
    pub fn snapshot(name: &str) -> Result<StateRef, crate::error::InvalidInput> {
        Ok(StateRef::Snapshot(SnapshotName::new(name)?))
    }
}

impl fmt::Display for StateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateRef::Head => f.write_str("head"),
            StateRef::Revision(r) => write!(f, "revision {r}"),
            StateRef::Snapshot(name) => write!(f, "snapshot '{name}'"),
            StateRef::Checkpoint { transaction, name } => {
                write!(f, "checkpoint '{name}' of transaction {transaction}")
            }
            StateRef::AsOf(t) => write!(f, "state as of {t}"),
        }
    }
}

/// Where a rollback goes. A rollback never rewrites history: it appends a
/// new revision whose state is the target's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// A snapshot by name (named or auto).
    Named(SnapshotName),
    /// The newest snapshot (of any kind) taken at or before this instant.
    Time(Timestamp),
    /// The newest snapshot of any kind. Right after a rollback this is the
    /// `pre-rollback` snapshot, so `Latest` returns to the present.
    Latest,
    /// A transaction checkpoint.
    Checkpoint {
        /// The transaction.
        transaction: TransactionId,
        /// The checkpoint name; `start` is the state before the first step.
        name: SnapshotName,
    },
    /// A revision in the history window or held by a snapshot.
    Revision(Revision),
}

impl RollbackTarget {
    /// A named snapshot target, validating the name.
    pub fn named(name: &str) -> Result<RollbackTarget, crate::error::InvalidInput> {
        Ok(RollbackTarget::Named(SnapshotName::new(name)?))
    }

    /// Which of the five kinds of target this is.
    pub fn kind(&self) -> TargetKind {
        match self {
            RollbackTarget::Named(_) => TargetKind::Named,
            RollbackTarget::Time(_) => TargetKind::Time,
            RollbackTarget::Latest => TargetKind::Latest,
            RollbackTarget::Checkpoint { .. } => TargetKind::Checkpoint,
            RollbackTarget::Revision(_) => TargetKind::Revision,
        }
    }
}

impl fmt::Display for RollbackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackTarget::Named(name) => write!(f, "snapshot '{name}'"),
            RollbackTarget::Time(t) => write!(f, "the newest snapshot at or before {t}"),
            RollbackTarget::Latest => f.write_str("the latest snapshot"),
            RollbackTarget::Checkpoint { transaction, name } => {
                write!(f, "checkpoint '{name}' of transaction {transaction}")
            }
            RollbackTarget::Revision(r) => write!(f, "revision {r}"),
        }
    }
}

/// The kind of a [`RollbackTarget`], a closed set used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// [`RollbackTarget::Named`].
    Named,
    /// [`RollbackTarget::Time`].
    Time,
    /// [`RollbackTarget::Latest`].
    Latest,
    /// [`RollbackTarget::Checkpoint`].
    Checkpoint,
    /// [`RollbackTarget::Revision`].
    Revision,
}

impl TargetKind {
    /// All kinds, in declaration order.
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Named,
        TargetKind::Time,
        TargetKind::Latest,
        TargetKind::Checkpoint,
        TargetKind::Revision,
    ];

    /// The label: `named`, `time`, `latest`, `checkpoint` or `revision`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Named => "named",
            TargetKind::Time => "time",
            TargetKind::Latest => "latest",
            TargetKind::Checkpoint => "checkpoint",
            TargetKind::Revision => "revision",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
