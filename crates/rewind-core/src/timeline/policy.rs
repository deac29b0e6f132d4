//! Decisions a driver of a timeline asks the timeline to make: whether an
//! expected revision holds, when a policy snapshot is due, and how a failed
//! transaction ends.

use serde::{Deserialize, Serialize};

use super::{
    CommitMeta, Pruned, RollbackOutcome, RollbackPolicy, RollbackTarget, Timeline,
    TransactionOutcome,
};
use crate::error::Error;
use crate::id::{Revision, TransactionId};
use crate::model::Model;

/// An optimistic-concurrency check failed: the head is not at the revision
/// the writer expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected revision {expected}, but the head is at {actual}")]
pub struct RevisionMismatch {
    /// The revision the writer expected.
    pub expected: Revision,
    /// The head revision.
    pub actual: Revision,
}

/// What an automatic snapshot policy asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyCheck {
    /// A revision was just committed: is one due every this many revisions?
    Committed {
        /// The policy's `every_revisions`.
        every_revisions: u64,
    },
    /// The policy's interval elapsed: is there anything new to snapshot?
    Interval,
}

/// How a failed transaction ended ([`Timeline::abort_transaction`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aborted {
    /// `RolledBack` when the policy's rollback was made, `Failed` when it
    /// could not be (the policy names a checkpoint that was never reached).
    pub outcome: TransactionOutcome,
    /// The rollback made, if any.
    pub rollback: Option<RollbackOutcome>,
    /// The policy's target was the head's own revision: the transaction
    /// left nothing to undo, so no rollback revision and no pre-rollback
    /// snapshot were made (`outcome` is `RolledBack`, `rollback` is `None`).
    #[serde(default)]
    pub unchanged: bool,
    /// Checkpoints of older finished transactions pruned.
    pub pruned: Pruned,
}

impl<M: Model> Timeline<M> {
    /// Checks an expected head revision (`None` expects nothing).
    pub fn check_expected(&self, expected: Option<Revision>) -> Result<(), RevisionMismatch> {
        match expected {
            Some(expected) if expected != self.revision() => Err(RevisionMismatch {
                expected,
                actual: self.revision(),
            }),
            _ => Ok(()),
        }
    }

    /// The revision of the newest auto snapshot (of any trigger), or 0.
    pub fn newest_auto_revision(&self) -> Revision {
        self.auto
            .back()
            .map_or(Revision::ZERO, |snapshot| snapshot.info.revision)
    }

    /// Whether an automatic policy snapshot is due now. Never while a
    /// transaction runs (its checkpoints cover it); after a commit, when the
    /// head is `every_revisions` past the newest auto snapshot; on the
    /// interval, when the head moved since the newest auto snapshot.
    pub fn policy_snapshot_due(&self, check: PolicyCheck) -> bool {
        let last = self.newest_auto_revision();
        let due = match check {
            PolicyCheck::Committed { every_revisions } => {
                self.revision().get() >= last.get().saturating_add(every_revisions)
            }
            PolicyCheck::Interval => self.revision() != last,
        };
        // The cheap check first: this runs after every commit.
        due && !self.transactions.iter().any(|t| t.outcome.is_none())
    }

    /// Ends a failed transaction, rolled back per `policy` where that is
    /// possible: `RolledBack` with the rollback made, or `Failed` when the
    /// policy names a checkpoint that was never reached (nothing changes
    /// then but the transaction's end). When the target is the head's own
    /// revision (a failed step that changed nothing, say) there is nothing
    /// to undo: `RolledBack` with no rollback revision and no pre-rollback
    /// snapshot, and [`Aborted::unchanged`] set. Errors only for a
    /// transaction that is not running; then nothing changed.
    pub fn abort_transaction(
        &mut self,
        transaction: TransactionId,
        policy: &RollbackPolicy,
        meta: CommitMeta,
    ) -> Result<Aborted, Error> {
        self.abort_transaction_as(transaction, policy, meta, true)
    }

    /// [`abort_transaction`](Self::abort_transaction); `quiet: false` makes
    /// the rollback even when the head is already the target, as records
    /// journaled before quiet aborts existed replay.
    pub(crate) fn abort_transaction_as(
        &mut self,
        transaction: TransactionId,
        policy: &RollbackPolicy,
        meta: CommitMeta,
        quiet: bool,
    ) -> Result<Aborted, Error> {
        self.running(transaction)?;
        let target = self.transaction_target(transaction, policy);
        let at_head = match &target {
            Ok(RollbackTarget::Checkpoint { transaction, name }) => self
                .find_checkpoint(*transaction, name)
                .is_ok_and(|checkpoint| checkpoint.info.revision == self.revision()),
            _ => false,
        };
        if quiet && at_head {
            let pruned = self.finish_transaction(transaction, TransactionOutcome::RolledBack)?;
            return Ok(Aborted {
                outcome: TransactionOutcome::RolledBack,
                rollback: None,
                unchanged: true,
                pruned,
            });
        }
        let rollback = match target {
            Ok(target) => self.rollback_with(&target, meta).ok(),
            Err(_) => None,
        };
        let outcome = match rollback {
            Some(_) => TransactionOutcome::RolledBack,
            None => TransactionOutcome::Failed,
        };
        let pruned = self.finish_transaction(transaction, outcome)?;
        Ok(Aborted {
            outcome,
            rollback,
            unchanged: false,
            pruned,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AutoTrigger, Doc, Patch, SnapshotName};

    fn timeline() -> Timeline<Doc> {
        Timeline::with_defaults(Doc::from_json(&json!({"n": 0})).unwrap())
    }

    fn bump(timeline: &mut Timeline<Doc>, n: i64) {
        let patch = Patch::from_json(&json!([{"op": "replace", "path": "/n", "value": n}]));
        timeline.apply(&patch.unwrap()).unwrap();
    }

    #[test]
    fn expected_revision() {
        let mut t = timeline();
        assert_eq!(t.check_expected(None), Ok(()));
        assert_eq!(t.check_expected(Some(Revision(0))), Ok(()));
        bump(&mut t, 1);
        let mismatch = t.check_expected(Some(Revision(0))).unwrap_err();
        assert_eq!(mismatch.expected, Revision(0));
        assert_eq!(mismatch.actual, Revision(1));
    }

    #[test]
    fn policy_snapshot_every_revisions_counts_from_the_newest_auto() {
        let mut t = timeline();
        let every = PolicyCheck::Committed { every_revisions: 3 };
        bump(&mut t, 1);
        bump(&mut t, 2);
        assert!(!t.policy_snapshot_due(every));
        bump(&mut t, 3);
        assert!(t.policy_snapshot_due(every));
        t.snapshot_auto(AutoTrigger::Policy);
        assert!(!t.policy_snapshot_due(every));
        bump(&mut t, 4);
        bump(&mut t, 5);
        assert!(!t.policy_snapshot_due(every));
        bump(&mut t, 6);
        assert!(t.policy_snapshot_due(every));
    }

    #[test]
    fn policy_snapshot_on_interval_only_when_the_head_moved() {
        let mut t = timeline();
        // Revision 0 with no auto snapshot: nothing moved.
        assert!(!t.policy_snapshot_due(PolicyCheck::Interval));
        bump(&mut t, 1);
        assert!(t.policy_snapshot_due(PolicyCheck::Interval));
        t.snapshot_auto(AutoTrigger::Policy);
        assert!(!t.policy_snapshot_due(PolicyCheck::Interval));
    }

    #[test]
    fn no_policy_snapshot_while_a_transaction_runs() {
        let mut t = timeline();
        bump(&mut t, 1);
        let tx = t.begin_transaction();
        assert!(!t.policy_snapshot_due(PolicyCheck::Interval));
        assert!(!t.policy_snapshot_due(PolicyCheck::Committed { every_revisions: 1 }));
        t.finish_transaction(tx, TransactionOutcome::Committed)
            .unwrap();
        assert!(t.policy_snapshot_due(PolicyCheck::Interval));
    }

    /// A transaction that changed nothing is rolled back without a
    /// revision or a pre-rollback snapshot; a record journaled before quiet
    /// aborts existed (no `quiet` field) replays as it ran, with both.
    #[test]
    fn an_abort_with_nothing_to_undo_changes_nothing() {
        let mut t = timeline();
        bump(&mut t, 1);
        let tx = t.begin_transaction();
        let before = (t.revision(), t.snapshots().len(), t.history().count());
        let aborted = t
            .abort_transaction(tx, &RollbackPolicy::LastCheckpoint, CommitMeta::default())
            .unwrap();
        assert_eq!(aborted.outcome, TransactionOutcome::RolledBack);
        assert!(aborted.unchanged);
        assert!(aborted.rollback.is_none());
        assert_eq!(
            (t.revision(), t.snapshots().len(), t.history().count()),
            before
        );
        assert_eq!(
            t.transactions()[0].outcome,
            Some(TransactionOutcome::RolledBack)
        );

        let mut old = timeline();
        bump(&mut old, 1);
        let tx = old.begin_transaction();
        let op: crate::TimelineOp<Doc> = crate::timeline::op::AbortTransaction {
            transaction: tx,
            policy: RollbackPolicy::LastCheckpoint,
            meta: CommitMeta::default(),
            quiet: true,
        }
        .into();
        let mut record = serde_json::to_value(&op).unwrap();
        assert_eq!(record["quiet"], true);
        record.as_object_mut().unwrap().remove("quiet");
        let old_record: crate::TimelineOp<Doc> = serde_json::from_value(record).unwrap();
        old.execute(&old_record).unwrap();
        assert_eq!(
            old.revision(),
            Revision(2),
            "the old record's rollback revision"
        );
    }

    #[test]
    fn abort_rolls_back_per_policy_or_fails() {
        let mut t = timeline();
        let tx = t.begin_transaction();
        let step = SnapshotName::new("one").unwrap();
        let patch = Patch::from_json(&json!([{"op": "replace", "path": "/n", "value": 7}]));
        t.apply_step(tx, &step, &patch.unwrap()).unwrap();
        t.checkpoint(tx, step).unwrap();
        let aborted = t
            .abort_transaction(tx, &RollbackPolicy::Start, CommitMeta::default())
            .unwrap();
        assert_eq!(aborted.outcome, TransactionOutcome::RolledBack);
        assert_eq!(aborted.rollback.unwrap().restored.revision, Revision(0));
        assert_eq!(t.head()["n"], 0);
        // Not running any more: refused, nothing changes.
        let before = t.revision();
        assert!(t
            .abort_transaction(tx, &RollbackPolicy::Start, CommitMeta::default())
            .is_err());
        assert_eq!(t.revision(), before);

        let tx = t.begin_transaction();
        let missing = RollbackPolicy::Checkpoint(SnapshotName::new("never").unwrap());
        let aborted = t
            .abort_transaction(tx, &missing, CommitMeta::default())
            .unwrap();
        assert_eq!(aborted.outcome, TransactionOutcome::Failed);
        assert!(aborted.rollback.is_none());
        assert_eq!(t.revision(), before);
    }
}
