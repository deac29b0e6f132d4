//! What a timeline records and reports: revision and snapshot metadata, and
//! the outcome of each mutation.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::fork::PromoteStrategy;
use super::reference::TargetKind;
use crate::diff::Diff;
use crate::id::{Revision, TransactionId};
use crate::name::{SnapshotName, TenantId};
use crate::time::Timestamp;

/// Optional attribution recorded with a revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitMeta {
    /// Who made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Arc<str>>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Arc<str>>,
    /// The caller's key for this write: recorded with the revision (so in
    /// the same journal entry as the change), by which a retry of the same
    /// request is answered with this revision instead of being applied
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency: Option<IdempotencyKey>,
}

impl CommitMeta {
    /// Metadata with only a message.
    pub fn message(message: impl Into<Arc<str>>) -> Self {
        CommitMeta {
            message: Some(message.into()),
            ..CommitMeta::default()
        }
    }

    /// Metadata with an author and a message.
    pub fn by(author: impl Into<Arc<str>>, message: impl Into<Arc<str>>) -> Self {
        CommitMeta {
            author: Some(author.into()),
            message: Some(message.into()),
            ..CommitMeta::default()
        }
    }

    /// The same, carrying `key`.
    pub fn with_idempotency(mut self, key: IdempotencyKey) -> Self {
        self.idempotency = Some(key);
        self
    }
}

/// A caller's key for one write (HTTP `Idempotency-Key`), with a
/// fingerprint of the request it was first sent with. A retry with the same
/// key and request is the same write; the same key with another request is
/// a mistake the tenant refuses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey {
    /// The key: 1 to [`IdempotencyKey::MAX_LEN`] visible ASCII characters.
    pub key: Arc<str>,
    /// Fingerprint of the request (its method, target and body, as the
    /// caller computes it).
    pub request: u64,
}

impl IdempotencyKey {
    /// The longest key.
    pub const MAX_LEN: usize = 255;

    /// A key for a request with fingerprint `request`. Time: O(key length).
    pub fn new(key: &str, request: u64) -> Result<Self, crate::InvalidInput> {
        if key.is_empty() || key.len() > Self::MAX_LEN || !key.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(crate::InvalidInput::Config(format!(
                "an idempotency key is 1 to {} visible ASCII characters (no spaces)",
                Self::MAX_LEN
            )));
        }
        Ok(IdempotencyKey {
            key: Arc::from(key),
            request,
        })
    }
}

/// Why a revision exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// Revision 0: the state the timeline was created with.
    Initial,
    /// A change applied through the model.
    Change,
    /// The whole state replaced.
    Replace,
    /// A rollback: the state of `restored`, requested as a `target` of this
    /// kind, made when the head was `from`.
    Rollback {
        /// The kind of target asked for.
        target: TargetKind,
        /// What the target resolved to.
        restored: Restored,
        /// The head revision before the rollback.
        from: Revision,
    },
    /// A step of a transaction.
    TransactionStep {
        /// The transaction.
        transaction: TransactionId,
        /// The step name.
        step: SnapshotName,
    },
    /// Revision 0 of a fork: the state of `parent` at `base_revision`.
    Fork {
        /// The tenant forked.
        parent: TenantId,
        /// The parent's revision whose state this is.
        base_revision: Revision,
    },
    /// A fork's head written back to this tenant (its parent) by a
    /// promotion.
    Promote {
        /// The fork promoted.
        fork: TenantId,
        /// The fork's revision promoted.
        fork_revision: Revision,
        /// How it was written.
        strategy: PromoteStrategy,
    },
}

impl fmt::Display for Cause {
    /// `initial`, `change`, `replace`, `rollback to named 'v1' (revision 4)
    /// from 9`, `step 'set_config' of transaction 2`, `fork of 'shop' at
    /// revision 3`, `promote (merge) of 'shop.b' at revision 5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Initial => f.write_str("initial"),
            Cause::Change => f.write_str("change"),
            Cause::Replace => f.write_str("replace"),
            Cause::Rollback {
                target,
                restored,
                from,
            } => {
                write!(f, "rollback ({target}) to {restored} from {from}")
            }
            Cause::TransactionStep { transaction, step } => {
                write!(f, "step '{step}' of transaction {transaction}")
            }
            Cause::Fork {
                parent,
                base_revision,
            } => write!(f, "fork of '{parent}' at revision {base_revision}"),
            Cause::Promote {
                fork,
                fork_revision,
                strategy,
            } => write!(
                f,
                "promote ({strategy}) of '{fork}' at revision {fork_revision}"
            ),
        }
    }
}

impl fmt::Display for RevisionInfo {
    /// `revision 7 at 2026-03-14T14:30:00Z: change — deploy v2 (by ops)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "revision {} at {}: {}",
            self.revision, self.at, self.cause
        )?;
        if let Some(message) = &self.meta.message {
            write!(f, " — {message}")?;
        }
        if let Some(author) = &self.meta.author {
            write!(f, " (by {author})")?;
        }
        Ok(())
    }
}

/// One revision of the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionInfo {
    /// The revision number.
    pub revision: Revision,
    /// When it was committed (UTC, non-decreasing along the timeline).
    pub at: Timestamp,
    /// Why it exists.
    pub cause: Cause,
    /// Optional attribution.
    #[serde(flatten)]
    pub meta: CommitMeta,
}

/// The kind of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Taken by policy, on request without a name, or before a rollback;
    /// kept in a ring of `auto_limit`.
    Auto,
    /// Taken by name; kept up to `named_limit`, protected ones always.
    Named,
    /// Taken by a transaction after each step.
    Checkpoint,
}

impl SnapshotKind {
    /// All kinds, in declaration order.
    pub const ALL: [SnapshotKind; 3] = [
        SnapshotKind::Auto,
        SnapshotKind::Named,
        SnapshotKind::Checkpoint,
    ];

    /// The label: `auto`, `named` or `checkpoint`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Auto => "auto",
            SnapshotKind::Named => "named",
            SnapshotKind::Checkpoint => "checkpoint",
        }
    }
}

impl fmt::Display for SnapshotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an auto snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AutoTrigger {
    /// Asked for without a name.
    Requested,
    /// Taken by the auto snapshot policy.
    Policy,
    /// Taken just before a rollback, so the rollback can be undone.
    PreRollback,
}

impl AutoTrigger {
    /// The label: `requested`, `policy` or `pre-rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            AutoTrigger::Requested => "requested",
            AutoTrigger::Policy => "policy",
            AutoTrigger::PreRollback => "pre-rollback",
        }
    }
}

/// Metadata of a snapshot or checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The name: chosen for named snapshots, `auto_<n>` for auto ones, the
    /// step name for checkpoints.
    pub name: SnapshotName,
    /// The kind.
    pub kind: SnapshotKind,
    /// The revision it pins.
    pub revision: Revision,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Whether retention may prune it (only named snapshots can be protected).
    pub protected: bool,
    /// For auto snapshots: why it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<AutoTrigger>,
    /// For checkpoints: the transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionId>,
    /// Creation order across all kinds of this timeline.
    #[serde(skip)]
    pub(crate) seq: u64,
}

/// Snapshots dropped by retention during one operation, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    /// Auto snapshots pushed out of the ring.
    pub auto: usize,
    /// Unprotected named snapshots pushed out by the named limit.
    pub named: usize,
    /// Checkpoints of finished transactions past the kept count.
    pub checkpoint: usize,
}

impl Pruned {
    /// The count for one kind.
    pub fn of(&self, kind: SnapshotKind) -> usize {
        match kind {
            SnapshotKind::Auto => self.auto,
            SnapshotKind::Named => self.named,
            SnapshotKind::Checkpoint => self.checkpoint,
        }
    }

    /// Whether nothing was pruned.
    pub fn is_empty(&self) -> bool {
        self.auto + self.named + self.checkpoint == 0
    }
}

/// Snapshots held, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotCounts {
    /// Auto snapshots.
    pub auto: usize,
    /// Named snapshots.
    pub named: usize,
    /// Checkpoints of running and kept transactions.
    pub checkpoint: usize,
}

impl SnapshotCounts {
    /// The count for one kind.
    pub fn of(&self, kind: SnapshotKind) -> usize {
        match kind {
            SnapshotKind::Auto => self.auto,
            SnapshotKind::Named => self.named,
            SnapshotKind::Checkpoint => self.checkpoint,
        }
    }
}

/// A committed revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The new head revision.
    pub revision: Revision,
    /// When it was recorded.
    pub at: Timestamp,
}

/// A snapshot taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotTaken {
    /// The new snapshot.
    pub snapshot: SnapshotInfo,
    /// What retention dropped to make room.
    pub pruned: Pruned,
}

/// What a rollback target resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restored {
    /// `auto`, `named`, `checkpoint` or `revision`.
    pub kind: RestoredKind,
    /// The snapshot or checkpoint name (absent for a plain revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<SnapshotName>,
    /// The transaction, for a checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionId>,
    /// The revision whose state was restored.
    pub revision: Revision,
}

impl fmt::Display for Restored {
    /// `named 'v2.0.0' (revision 4)`, `revision 12`, `checkpoint 'config_set'
    /// of transaction 3 (revision 8)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, self.kind) {
            (_, RestoredKind::Revision) | (None, _) => write!(f, "revision {}", self.revision),
            (Some(name), RestoredKind::Checkpoint) => write!(
                f,
                "checkpoint '{name}' of transaction {} (revision {})",
                self.transaction.unwrap_or_default(),
                self.revision
            ),
            (Some(name), kind) => write!(f, "{kind} '{name}' (revision {})", self.revision),
        }
    }
}

/// The kind of thing a rollback restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestoredKind {
    /// An auto snapshot.
    Auto,
    /// A named snapshot.
    Named,
    /// A transaction checkpoint.
    Checkpoint,
    /// A revision of the history window.
    Revision,
}

impl fmt::Display for RestoredKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestoredKind::Auto => "auto",
            RestoredKind::Named => "named",
            RestoredKind::Checkpoint => "checkpoint",
            RestoredKind::Revision => "revision",
        })
    }
}

impl From<SnapshotKind> for RestoredKind {
    fn from(kind: SnapshotKind) -> Self {
        match kind {
            SnapshotKind::Auto => RestoredKind::Auto,
            SnapshotKind::Named => RestoredKind::Named,
            SnapshotKind::Checkpoint => RestoredKind::Checkpoint,
        }
    }
}

/// A rollback made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollbackOutcome {
    /// The new head revision (the rollback itself).
    pub revision: Revision,
    /// What was restored.
    pub restored: Restored,
    /// The `pre-rollback` auto snapshot of the state rolled back from.
    pub pre_rollback: SnapshotInfo,
    /// From the old head to the restored state.
    pub diff: Diff,
    /// What retention dropped (the pre-rollback snapshot may push out the
    /// oldest auto snapshot).
    pub pruned: Pruned,
}

/// What a rollback would do, computed without making it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollbackPreview {
    /// The head revision, unchanged.
    pub revision: Revision,
    /// What would be restored.
    pub restored: Restored,
    /// From the head to the state that would be restored.
    pub diff: Diff,
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionOutcome {
    /// Every step succeeded.
    Committed,
    /// A step failed and the rollback policy was applied.
    RolledBack,
    /// A step failed and the rollback could not be made.
    Failed,
}

impl TransactionOutcome {
    /// The label: `committed`, `rolled_back` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionOutcome::Committed => "committed",
            TransactionOutcome::RolledBack => "rolled_back",
            TransactionOutcome::Failed => "failed",
        }
    }
}

/// Metadata of a transaction whose checkpoints are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionInfo {
    /// The transaction.
    pub id: TransactionId,
    /// The head revision when it began.
    pub start_revision: Revision,
    /// When it began.
    pub started_at: Timestamp,
    /// How it ended; `None` while running.
    pub outcome: Option<TransactionOutcome>,
    /// Its checkpoints, oldest (`start`) first.
    pub checkpoints: Vec<SnapshotInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_reads_well() {
        let info = RevisionInfo {
            revision: Revision(9),
            at: Timestamp::EPOCH,
            cause: Cause::Rollback {
                target: TargetKind::Named,
                restored: Restored {
                    kind: RestoredKind::Named,
                    name: Some(SnapshotName::new("v2.0.0").unwrap()),
                    transaction: None,
                    revision: Revision(4),
                },
                from: Revision(8),
            },
            meta: CommitMeta::message("emergency"),
        };
        assert_eq!(
            info.to_string(),
            "revision 9 at 1970-01-01T00:00:00Z: rollback (named) to named 'v2.0.0' (revision 4) from 8 — emergency"
        );
    }
}
