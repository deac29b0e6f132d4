//! [`Timeline`]: a state's history — revisions, snapshots, retention,
//! rollback, reads of the past and diffs.
//!
//! A timeline is itself an immutable value: its collections are `imbl`
//! structures, so `clone` is O(1) and a published copy never changes. Every
//! mutating method either succeeds completely or returns an error and leaves
//! the timeline exactly as it was (all checks happen before the first write).

mod config;
mod deployment;
mod fork;
mod image;
mod log;
pub mod op;
mod policy;
mod record;
mod reference;
mod states;

use std::sync::Arc;

use imbl::Vector;
use serde::{Deserialize, Serialize};

use crate::delta::StateDelta;
use crate::diff::Diff;
use crate::doc::Patch;
use crate::error::{ChangeRejected, Error, InvalidInput, TimelineError};
use crate::id::{Incarnation, Revision, TransactionId};
use crate::model::Model;
use crate::name::{SnapshotName, TenantId};
use crate::time::{Clock, SystemClock, Timestamp};
use log::Log;
use states::States;

pub use config::TimelineConfig;
pub use deployment::{
    format_duration, parse_duration, CheckResult, CheckSpec, Comparison, Condition, DeployChange,
    DeploymentEnded, DeploymentId, DeploymentInfo, DeploymentSpec, DeploymentStarted,
    DeploymentStatus, FinishAction, Measurement, Observation, DEPLOYMENT_AUTHOR, KEPT_DEPLOYMENTS,
    MAX_CHECKS, MAX_ROUNDS, MIN_INTERVAL,
};
pub use fork::{
    merge, ForkInfo, ForkRecord, MergeConflict, MergeError, PromoteStrategy, Promotion,
};
pub use image::TimelineImage;
pub use op::{Op, TimelineOp};
pub use policy::{Aborted, PolicyCheck, RevisionMismatch};
pub use record::{
    AutoTrigger, Cause, Commit, CommitMeta, IdempotencyKey, Pruned, Restored, RestoredKind,
    RevisionInfo, RollbackOutcome, RollbackPreview, SnapshotCounts, SnapshotInfo, SnapshotKind,
    SnapshotTaken, TransactionInfo, TransactionOutcome,
};
pub use reference::{RollbackTarget, StateRef, TargetKind};

/// Estimated heap bytes of a timeline's states ([`Timeline::memory`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryUsage {
    /// Bytes of the current state that history shares (structural
    /// sharing: held once).
    pub shared_bytes: usize,
    /// Bytes of the current state nothing else holds.
    pub unique_bytes: usize,
    /// Bytes only history holds: deltas of cold states and the
    /// nodes hot states do not share with newer ones. This is what
    /// [`TimelineConfig::history_budget`] bounds.
    pub history_bytes: usize,
}

/// Name of the checkpoint every transaction records when it begins.
pub const START_CHECKPOINT: &str = "start";

/// Options for [`Timeline::snapshot_named`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamedOptions {
    /// Never prune this snapshot.
    pub protected: bool,
    /// Overwrite an unprotected snapshot of the same name instead of failing
    /// with `SnapshotExists`.
    pub replace: bool,
}

/// Where a failed transaction rolls back to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackPolicy {
    /// The state before the first step (the `start` checkpoint).
    #[default]
    Start,
    /// The newest checkpoint of the transaction.
    LastCheckpoint,
    /// A checkpoint by step name.
    Checkpoint(SnapshotName),
}

#[derive(Clone, Debug)]
struct Entry {
    info: RevisionInfo,
}

/// A snapshot names a revision; its state is held in [`States`].
#[derive(Clone, Debug)]
struct Snapshot {
    info: SnapshotInfo,
}

#[derive(Clone, Debug)]
struct Transaction {
    id: TransactionId,
    start_revision: Revision,
    started_at: Timestamp,
    outcome: Option<TransactionOutcome>,
    /// Oldest first; the first is always `start`.
    checkpoints: Vector<Snapshot>,
}

/// The history of one state: revisions, snapshots and transactions.
///
/// Costs: `clone` O(1); `apply` the model's cost plus O(1) amortised
/// bookkeeping; snapshots O(1) plus retention (O(limit) scans of at most
/// `named_limit` entries); reads by revision O(log n), by time O(log² n);
/// diffs follow the number of changes for [`Doc`](crate::Doc).
#[derive(Clone, Debug)]
pub struct Timeline<M: Model> {
    config: TimelineConfig,
    clock: Arc<dyn Clock>,
    /// The history window, oldest first; never empty, the last entry is the
    /// head. Revisions are consecutive. An append-only [`Log`]: a published
    /// clone shares it and the next append fills a slot in place.
    history: Log<Arc<Entry>>,
    /// The state of every retained revision: hot ones whole, cold ones as
    /// deltas (see `timeline/states.rs`).
    states: States<M>,
    /// Auto snapshot ring, oldest first.
    auto: Vector<Snapshot>,
    /// Named snapshots in creation order, oldest first.
    named: Vector<Snapshot>,
    /// Running transactions and the kept finished ones, oldest first.
    transactions: Vector<Transaction>,
    /// The running deployment and the kept finished ones, oldest first.
    deployments: Vector<DeploymentInfo>,
    next_seq: u64,
    next_transaction: u64,
    /// The id of the newest deployment (0: none yet).
    next_deployment: u64,
    /// The newest time recorded; times are clamped to it so they never go
    /// backwards even if the clock does.
    last_at: Timestamp,
    /// For a fork: where it came from, and its base state (revision 0's),
    /// kept after revision 0 leaves the window so a merge can still diff
    /// against it. Shares structure with revision 0: no copy.
    fork: Option<Arc<ForkBase<M>>>,
    /// The forks made of this timeline, oldest first; one per fork id.
    forks: Vector<ForkRecord>,
    /// Which creation of its tenant this timeline is (see [`Incarnation`]);
    /// `None` until the runtime gives it one, and for tenants recorded
    /// before incarnations were.
    incarnation: Option<Incarnation>,
    /// Snapshots the history budget dropped since this value was built or
    /// read back (a running count: a runtime counts the growth between two
    /// timelines it publishes).
    budget_pruned: Pruned,
}

#[derive(Debug)]
struct ForkBase<M> {
    info: ForkInfo,
    state: M,
}

impl<M: Model> Timeline<M> {
    /// A timeline at revision 0 holding `initial`, with default limits and the
    /// system clock.
    pub fn with_defaults(initial: M) -> Self {
        Self::build(
            initial,
            TimelineConfig::default(),
            Arc::new(SystemClock),
            CommitMeta::default(),
        )
    }

    /// A timeline at revision 0 holding `initial`.
    pub fn new(
        initial: M,
        config: TimelineConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, InvalidInput> {
        Self::new_with(initial, config, clock, CommitMeta::default())
    }

    /// [`new`](Self::new) with who created it and why, recorded on revision
    /// 0.
    pub fn new_with(
        initial: M,
        config: TimelineConfig,
        clock: Arc<dyn Clock>,
        meta: CommitMeta,
    ) -> Result<Self, InvalidInput> {
        config.validate()?;
        Ok(Self::build(initial, config, clock, meta))
    }

    /// A fork's timeline: revision 0 holds `initial`, the state of
    /// `info.parent` at `info.base_revision` (pass the parent's state
    /// itself: a clone of it shares every subtree, so this is O(1) for
    /// [`Doc`](crate::Doc)), with cause [`Cause::Fork`].
    pub fn new_fork(
        initial: M,
        config: TimelineConfig,
        clock: Arc<dyn Clock>,
        meta: CommitMeta,
        info: ForkInfo,
    ) -> Result<Self, InvalidInput> {
        config.validate()?;
        let cause = Cause::Fork {
            parent: info.parent.clone(),
            base_revision: info.base_revision,
        };
        let base = initial.clone();
        let mut timeline = Self::build_as(initial, config, clock, meta, cause);
        timeline.fork = Some(Arc::new(ForkBase { info, state: base }));
        Ok(timeline)
    }

    fn build(initial: M, config: TimelineConfig, clock: Arc<dyn Clock>, meta: CommitMeta) -> Self {
        Self::build_as(initial, config, clock, meta, Cause::Initial)
    }

    fn build_as(
        initial: M,
        config: TimelineConfig,
        clock: Arc<dyn Clock>,
        meta: CommitMeta,
        cause: Cause,
    ) -> Self {
        let at = clock.now();
        let mut history = Log::new();
        history.push_back(Arc::new(Entry {
            info: RevisionInfo {
                revision: Revision::ZERO,
                at,
                cause,
                meta,
            },
        }));
        Timeline {
            states: States::new(Revision::ZERO, initial, config.rebuild_cache),
            config,
            clock,
            history,
            auto: Vector::new(),
            named: Vector::new(),
            transactions: Vector::new(),
            deployments: Vector::new(),
            next_seq: 1,
            next_transaction: 1,
            next_deployment: 0,
            last_at: at,
            fork: None,
            forks: Vector::new(),
            incarnation: None,
            budget_pruned: Pruned::default(),
        }
    }

    // ----- reads -------------------------------------------------------

    /// The limits in force.
    pub fn config(&self) -> &TimelineConfig {
        &self.config
    }

    /// The newest instant recorded: after a mutation, the instant it
    /// recorded (a journal stores it with the mutation to replay it exactly).
    pub fn last_at(&self) -> Timestamp {
        self.last_at
    }

    /// Reads time from `clock` from now on (after a replay, say).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// The current state. Time: O(1).
    pub fn head(&self) -> &M {
        self.states.head()
    }

    /// The current revision number. Time: O(1).
    pub fn revision(&self) -> Revision {
        self.head_entry().info.revision
    }

    /// Metadata of the head revision.
    pub fn head_info(&self) -> &RevisionInfo {
        &self.head_entry().info
    }

    fn head_entry(&self) -> &Entry {
        self.history
            .back()
            .expect("the history window always holds the head")
    }

    /// The oldest revision still in the history window.
    pub fn oldest_revision(&self) -> Revision {
        self.history
            .front()
            .expect("the history window always holds the head")
            .info
            .revision
    }

    /// Revisions in the window, oldest first (use `.rev()` for newest first).
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &RevisionInfo> + '_ {
        self.history.iter().map(|e| &e.info)
    }

    /// Metadata of one revision in the window.
    pub fn revision_info(&self, revision: Revision) -> Option<&RevisionInfo> {
        self.window_index(revision).map(|i| &self.history[i].info)
    }

    /// Auto and named snapshots, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        let mut all: Vec<SnapshotInfo> = self
            .auto
            .iter()
            .chain(self.named.iter())
            .map(|s| s.info.clone())
            .collect();
        all.sort_by_key(|s| s.seq);
        all
    }

    /// One auto or named snapshot by name.
    pub fn snapshot(&self, name: &SnapshotName) -> Option<&SnapshotInfo> {
        self.find_snapshot(name).map(|s| &s.info)
    }

    /// Running transactions and the kept finished ones, oldest first.
    pub fn transactions(&self) -> Vec<TransactionInfo> {
        self.transactions
            .iter()
            .map(|t| TransactionInfo {
                id: t.id,
                start_revision: t.start_revision,
                started_at: t.started_at,
                outcome: t.outcome,
                checkpoints: t.checkpoints.iter().map(|c| c.info.clone()).collect(),
            })
            .collect()
    }

    /// Number of snapshots held, by kind.
    pub fn snapshot_counts(&self) -> SnapshotCounts {
        SnapshotCounts {
            auto: self.auto.len(),
            named: self.named.len(),
            checkpoint: self.transactions.iter().map(|t| t.checkpoints.len()).sum(),
        }
    }

    /// The state at a reference, without changing anything.
    ///
    /// Time: O(1) for the head, the newest snapshot, the newest
    /// [`hot_revisions`](TimelineConfig::hot_revisions) revisions and the
    /// last few states rebuilt (plus the O(log n) lookup). Any other state
    /// is cold: it is rebuilt from the nearest state held whole or cached,
    /// newer or older, by applying the deltas in between, `k` deltas of `c`
    /// changes each costing O(k · c · log n) for [`Doc`](crate::Doc),
    /// whatever the state's size. A model without deltas holds every state
    /// whole.
    pub fn state_at(&self, reference: &StateRef) -> Result<M, TimelineError> {
        let revision = self.revision_at(reference)?;
        self.state_of(revision)
    }

    /// The revision a reference points at.
    pub fn revision_at(&self, reference: &StateRef) -> Result<Revision, TimelineError> {
        match reference {
            StateRef::Head => Ok(self.revision()),
            StateRef::Revision(r) => self.held_revision(*r),
            StateRef::Snapshot(name) => self
                .find_snapshot(name)
                .map(|s| s.info.revision)
                .ok_or_else(|| TimelineError::SnapshotNotFound(name.clone())),
            StateRef::Checkpoint { transaction, name } => self
                .find_checkpoint(*transaction, name)
                .map(|c| c.info.revision),
            StateRef::AsOf(at) => self.entry_as_of(*at).map(|e| e.info.revision),
        }
    }

    /// The differences from `from` to `to`. Time: rebuilding a cold side
    /// as in [`state_at`](Self::state_at), then the model's diff (for
    /// [`Doc`](crate::Doc), O(changes), shared subtrees skipped).
    pub fn diff(&self, from: &StateRef, to: &StateRef) -> Result<Diff, Error> {
        let a = self.state_at(from)?;
        let b = self.state_at(to)?;
        Ok(a.diff(&b)?)
    }

    /// What rolling back to `target` would restore and change, without
    /// changing anything.
    pub fn rollback_dry_run(&self, target: &RollbackTarget) -> Result<RollbackPreview, Error> {
        let (restored, state) = self.resolve_target(target)?;
        Ok(RollbackPreview {
            revision: self.revision(),
            restored,
            diff: self.head().diff(&state)?,
        })
    }

    /// What this timeline's states cost, estimated from what each change
    /// held (no tree is walked). Time: O(1).
    pub fn memory(&self) -> MemoryUsage {
        let head = self.states.head_bytes();
        let unique = self.states.unique_bytes();
        MemoryUsage {
            shared_bytes: head - unique.min(head),
            unique_bytes: unique.min(head),
            history_bytes: self.states.history_bytes(),
        }
    }

    /// Snapshots the history budget dropped since this timeline was built
    /// or read back, by kind (a running count; the `pruned` of the step's
    /// own outcome does not include them). Time: O(1).
    pub fn budget_pruned(&self) -> Pruned {
        self.budget_pruned
    }

    /// [`memory`](Self::memory)`.history_bytes` alone: what the history
    /// budget bounds. Time: O(1), a field read.
    pub fn history_bytes(&self) -> usize {
        self.states.history_bytes()
    }

    /// Whether `revision`'s state is held whole (hot) rather than as a
    /// delta (cold); `false` for a revision not held. Time:
    /// O(log n).
    pub fn is_hot_state(&self, revision: Revision) -> bool {
        self.states.is_whole(revision)
    }

    /// For a fork, where it came from; `None` for any other timeline.
    /// Time: O(1).
    pub fn fork_info(&self) -> Option<&ForkInfo> {
        self.fork.as_ref().map(|f| &f.info)
    }

    /// For a fork, its base state (revision 0's), kept even after revision
    /// 0 has left the history window. Time: O(1).
    pub fn fork_base(&self) -> Option<&M> {
        self.fork.as_ref().map(|f| &f.state)
    }

    /// Which creation of its tenant this timeline is; `None` for one never
    /// given an incarnation. Time: O(1).
    pub fn incarnation(&self) -> Option<Incarnation> {
        self.incarnation
    }

    /// Gives this timeline the incarnation of its tenant's creation (the
    /// runtime does, before the `create` entry is written). Not a
    /// revision: the state does not change. Time: O(1).
    pub fn set_incarnation(&mut self, incarnation: Incarnation) {
        self.incarnation = Some(incarnation);
    }

    /// The forks recorded on this timeline, oldest first (a fork deleted
    /// since is still recorded: the runtime filters those). Time: O(forks).
    pub fn forks(&self) -> Vec<ForkRecord> {
        self.forks.iter().cloned().collect()
    }

    /// The state a merge promotion of a fork would write onto this
    /// timeline's head: the changes from `base` to `fork_head` applied to
    /// the head, as a patch (see [`merge`]). Nothing changes.
    pub fn merge_patch(&self, base: &M, fork_head: &M) -> Result<Patch, MergeError> {
        merge(base, self.head(), fork_head)
    }

    // ----- changes -----------------------------------------------------

    /// Records a fork made of this timeline, with the fork's own
    /// incarnation when it has one (it replaces an older record of the
    /// same fork id). No revision: the state does not change.
    pub fn record_fork(
        &mut self,
        fork: TenantId,
        base_revision: Revision,
        fork_incarnation: Option<Incarnation>,
    ) -> ForkRecord {
        let record = ForkRecord {
            fork,
            fork_incarnation,
            base_revision,
            created_at: self.stamp(),
        };
        if let Some(i) = self.forks.iter().position(|r| r.fork == record.fork) {
            self.forks.remove(i);
        }
        self.forks.push_back(record.clone());
        record
    }

    /// Writes a fork's head onto this timeline as one new revision with
    /// cause [`Cause::Promote`]: its state whole (`Replace`), or a merged
    /// patch applied to the head (`Merge`; a patch that does not apply is
    /// refused and nothing changes).
    pub fn promote(
        &mut self,
        fork: TenantId,
        fork_revision: Revision,
        promotion: &Promotion<M>,
        meta: CommitMeta,
    ) -> Result<Commit, Error> {
        let next = match promotion {
            Promotion::Replace { state } => state.clone(),
            Promotion::Merge { patch } => self.head().apply_diff(patch)?,
        };
        let cause = Cause::Promote {
            fork,
            fork_revision,
            strategy: promotion.strategy(),
        };
        Ok(self.push_revision(next, cause, meta))
    }

    /// Applies a change through the model as a new revision.
    pub fn apply(&mut self, change: &M::Change) -> Result<Commit, TimelineError> {
        self.apply_with(change, CommitMeta::default())
    }

    /// [`apply`](Self::apply) with author and message.
    pub fn apply_with(
        &mut self,
        change: &M::Change,
        meta: CommitMeta,
    ) -> Result<Commit, TimelineError> {
        let next = self.head().apply(change).map_err(reject)?;
        let delta = self.head().history_delta_of_change(change, &next);
        let at = self.stamp();
        Ok(self.push_revision_with(next, delta, Cause::Change, meta, at))
    }

    /// Replaces the whole state as a new revision.
    pub fn replace(&mut self, state: M) -> Commit {
        self.replace_with(state, CommitMeta::default())
    }

    /// [`replace`](Self::replace) with author and message.
    pub fn replace_with(&mut self, state: M, meta: CommitMeta) -> Commit {
        self.push_revision(state, Cause::Replace, meta)
    }

    /// Takes an auto snapshot of the head, pruning the oldest auto snapshot
    /// past `auto_limit`. Time: O(1).
    pub fn snapshot_auto(&mut self, trigger: AutoTrigger) -> SnapshotTaken {
        let at = self.stamp();
        self.snapshot_auto_at(trigger, at)
    }

    fn snapshot_auto_at(&mut self, trigger: AutoTrigger, at: Timestamp) -> SnapshotTaken {
        let seq = self.take_seq();
        let info = SnapshotInfo {
            name: SnapshotName::auto(seq),
            kind: SnapshotKind::Auto,
            revision: self.revision(),
            created_at: at,
            protected: false,
            trigger: Some(trigger),
            transaction: None,
            seq,
        };
        let previous = self.latest_snapshot_revision();
        self.auto.push_back(Snapshot { info: info.clone() });
        let mut pruned = Pruned::default();
        while self.auto.len() > self.config.auto_limit {
            if let Some(gone) = self.auto.pop_front() {
                self.release(gone.info.revision);
            }
            pruned.auto += 1;
        }
        self.cool(previous);
        self.enforce_budget();
        SnapshotTaken {
            snapshot: info,
            pruned,
        }
    }

    /// Takes a named snapshot of the head.
    ///
    /// Errors: a name starting with `auto_` is reserved; an existing name is
    /// `SnapshotExists` (unless `replace`, which still refuses a protected
    /// one); with `named_limit` snapshots held and all of them protected,
    /// `QuotaExceeded`. Otherwise the oldest unprotected one is pruned.
    pub fn snapshot_named(
        &mut self,
        name: SnapshotName,
        options: NamedOptions,
    ) -> Result<SnapshotTaken, Error> {
        let at = self.clock.now().max(self.last_at);
        let taken = self.snapshot_named_at(name, options, at)?;
        self.last_at = at;
        Ok(taken)
    }

    /// [`snapshot_named`](Self::snapshot_named) at a time already read.
    fn snapshot_named_at(
        &mut self,
        name: SnapshotName,
        options: NamedOptions,
        at: Timestamp,
    ) -> Result<SnapshotTaken, Error> {
        if name.is_auto_name() {
            return Err(InvalidInput::ReservedName {
                name,
                reason: "the prefix 'auto_' is used for auto snapshots",
            }
            .into());
        }
        let existing = self.named.iter().position(|s| s.info.name == name);
        let mut evict = None;
        match existing {
            Some(_) if !options.replace => {
                return Err(TimelineError::SnapshotExists(name).into());
            }
            Some(i) if self.named[i].info.protected => {
                return Err(TimelineError::SnapshotProtected(name).into());
            }
            Some(i) => evict = Some((i, false)),
            None if self.named.len() >= self.config.named_limit => {
                let oldest = self
                    .named
                    .iter()
                    .position(|s| !s.info.protected)
                    .ok_or_else(|| {
                        TimelineError::QuotaExceeded(format!(
                            "all {} named snapshots are protected; unprotect or delete one first",
                            self.named.len()
                        ))
                    })?;
                evict = Some((oldest, true));
            }
            None => {}
        }
        let mut pruned = Pruned::default();
        if let Some((index, by_retention)) = evict {
            let gone = self.named.remove(index);
            self.release(gone.info.revision);
            if by_retention {
                pruned.named += 1;
            }
        }
        let seq = self.take_seq();
        let info = SnapshotInfo {
            name,
            kind: SnapshotKind::Named,
            revision: self.revision(),
            created_at: at,
            protected: options.protected,
            trigger: None,
            transaction: None,
            seq,
        };
        let previous = self.latest_snapshot_revision();
        self.named.push_back(Snapshot { info: info.clone() });
        self.cool(previous);
        self.enforce_budget();
        Ok(SnapshotTaken {
            snapshot: info,
            pruned,
        })
    }

    /// Protects or unprotects a named snapshot.
    pub fn protect(
        &mut self,
        name: &SnapshotName,
        protected: bool,
    ) -> Result<SnapshotInfo, TimelineError> {
        let Some(index) = self.named.iter().position(|s| &s.info.name == name) else {
            return Err(match self.find_snapshot(name) {
                Some(_) => TimelineError::NotProtectable(name.clone()),
                None => TimelineError::SnapshotNotFound(name.clone()),
            });
        };
        if let Some(open) = self.open_deployment() {
            if !protected && &open.pre_snapshot == name {
                return Err(TimelineError::HeldByDeployment {
                    name: name.clone(),
                    deployment: open.id,
                });
            }
        }
        let snapshot = &mut self.named[index];
        snapshot.info.protected = protected;
        let info = snapshot.info.clone();
        if !protected {
            // Unprotected, it is history the budget may drop.
            self.enforce_budget();
        }
        Ok(info)
    }

    /// Deletes an auto or named snapshot. A protected one must be
    /// unprotected first.
    pub fn delete_snapshot(&mut self, name: &SnapshotName) -> Result<SnapshotInfo, TimelineError> {
        if let Some(i) = self.named.iter().position(|s| &s.info.name == name) {
            if self.named[i].info.protected {
                return Err(TimelineError::SnapshotProtected(name.clone()));
            }
            let gone = self.named.remove(i);
            self.released_snapshot(gone.info.revision);
            return Ok(gone.info);
        }
        if let Some(i) = self.auto.iter().position(|s| &s.info.name == name) {
            let gone = self.auto.remove(i);
            self.released_snapshot(gone.info.revision);
            return Ok(gone.info);
        }
        Err(TimelineError::SnapshotNotFound(name.clone()))
    }

    /// Rolls back to `target`: takes a `pre-rollback` auto snapshot of the
    /// head, then appends a revision holding the target's state. History is
    /// never rewritten, so the rollback itself can be rolled back.
    ///
    /// Time: O(1) to reach a hot target (the newest snapshot, the newest
    /// [`hot_revisions`](TimelineConfig::hot_revisions) revisions); a cold
    /// one is rebuilt first as in [`state_at`](Self::state_at) (`k` deltas
    /// of `c` changes each: O(k · c · log n)). Then the diff from the head
    /// (O(changes) for [`Doc`](crate::Doc)) and the new revision.
    pub fn rollback(&mut self, target: &RollbackTarget) -> Result<RollbackOutcome, Error> {
        self.rollback_with(target, CommitMeta::default())
    }

    /// [`rollback`](Self::rollback) with author and message.
    pub fn rollback_with(
        &mut self,
        target: &RollbackTarget,
        meta: CommitMeta,
    ) -> Result<RollbackOutcome, Error> {
        // One instant for the whole rollback, so a replay of it is exact.
        let at = self.clock.now().max(self.last_at);
        let outcome = self.rollback_at(target, meta, at)?;
        self.last_at = at;
        Ok(outcome)
    }

    /// [`rollback_with`](Self::rollback_with) at a time already read.
    fn rollback_at(
        &mut self,
        target: &RollbackTarget,
        meta: CommitMeta,
        at: Timestamp,
    ) -> Result<RollbackOutcome, Error> {
        let (restored, state) = self.resolve_target(target)?;
        let diff = self.head().diff(&state)?;
        let from = self.revision();
        let pre = self.snapshot_auto_at(AutoTrigger::PreRollback, at);
        let cause = Cause::Rollback {
            target: target.kind(),
            restored: restored.clone(),
            from,
        };
        let delta = self.head().history_delta_of_diff(&diff, &state);
        let commit = self.push_revision_with(state, delta, cause, meta, at);
        Ok(RollbackOutcome {
            revision: commit.revision,
            restored,
            pre_rollback: pre.snapshot,
            diff,
            pruned: pre.pruned,
        })
    }

    // ----- transactions ------------------------------------------------

    /// Starts a transaction and records its `start` checkpoint.
    pub fn begin_transaction(&mut self) -> TransactionId {
        let id = TransactionId(self.next_transaction);
        self.next_transaction += 1;
        let started_at = self.stamp();
        let start = self.new_checkpoint(id, SnapshotName::trusted(START_CHECKPOINT), started_at);
        let previous = self.latest_snapshot_revision();
        self.transactions.push_back(Transaction {
            id,
            start_revision: self.revision(),
            started_at,
            outcome: None,
            checkpoints: Vector::unit(start),
        });
        self.cool(previous);
        id
    }

    /// Applies a change as a step of a running transaction.
    pub fn apply_step(
        &mut self,
        transaction: TransactionId,
        step: &SnapshotName,
        change: &M::Change,
    ) -> Result<Commit, TimelineError> {
        self.apply_step_with(transaction, step, change, CommitMeta::default())
    }

    /// [`apply_step`](Self::apply_step) with author and message.
    pub fn apply_step_with(
        &mut self,
        transaction: TransactionId,
        step: &SnapshotName,
        change: &M::Change,
        meta: CommitMeta,
    ) -> Result<Commit, TimelineError> {
        self.running(transaction)?;
        let next = self.head().apply(change).map_err(reject)?;
        let delta = self.head().history_delta_of_change(change, &next);
        let cause = Cause::TransactionStep {
            transaction,
            step: step.clone(),
        };
        let at = self.stamp();
        Ok(self.push_revision_with(next, delta, cause, meta, at))
    }

    /// Records a checkpoint of the head in a running transaction. The name
    /// `start` is taken by the transaction's first checkpoint.
    pub fn checkpoint(
        &mut self,
        transaction: TransactionId,
        name: SnapshotName,
    ) -> Result<SnapshotInfo, TimelineError> {
        let index = self.running(transaction)?;
        if self.transactions[index]
            .checkpoints
            .iter()
            .any(|c| c.info.name == name)
        {
            return Err(TimelineError::CheckpointExists { transaction, name });
        }
        let at = self.stamp();
        let checkpoint = self.new_checkpoint(transaction, name, at);
        let info = checkpoint.info.clone();
        let previous = self.latest_snapshot_revision();
        self.transactions[index].checkpoints.push_back(checkpoint);
        self.cool(previous);
        Ok(info)
    }

    /// The rollback target a failed transaction's policy designates.
    pub fn transaction_target(
        &self,
        transaction: TransactionId,
        policy: &RollbackPolicy,
    ) -> Result<RollbackTarget, TimelineError> {
        let index = self
            .transaction_index(transaction)
            .ok_or(TimelineError::TransactionNotFound(transaction))?;
        let checkpoints = &self.transactions[index].checkpoints;
        let name = match policy {
            RollbackPolicy::Start => SnapshotName::trusted(START_CHECKPOINT),
            RollbackPolicy::LastCheckpoint => checkpoints
                .back()
                .expect("a transaction always has its start checkpoint")
                .info
                .name
                .clone(),
            RollbackPolicy::Checkpoint(name) => {
                self.find_checkpoint(transaction, name)?;
                name.clone()
            }
        };
        Ok(RollbackTarget::Checkpoint { transaction, name })
    }

    /// Marks a running transaction finished. Checkpoints of finished
    /// transactions past `finished_transactions_kept` are pruned, oldest first.
    pub fn finish_transaction(
        &mut self,
        transaction: TransactionId,
        outcome: TransactionOutcome,
    ) -> Result<Pruned, TimelineError> {
        let index = self.running(transaction)?;
        self.transactions[index].outcome = Some(outcome);
        let mut pruned = Pruned::default();
        let mut finished = self
            .transactions
            .iter()
            .filter(|t| t.outcome.is_some())
            .count();
        while finished > self.config.finished_transactions_kept {
            let oldest = self
                .transactions
                .iter()
                .position(|t| t.outcome.is_some())
                .expect("counted above");
            let gone = self.transactions.remove(oldest);
            pruned.checkpoint += gone.checkpoints.len();
            for checkpoint in gone.checkpoints.iter() {
                self.released_snapshot(checkpoint.info.revision);
            }
            finished -= 1;
        }
        // A finished transaction is history the budget may drop.
        self.enforce_budget();
        Ok(pruned)
    }

    // ----- internals ---------------------------------------------------

    /// The next recorded time: the clock, but never before the last one.
    /// Every mutation reads it exactly once, so replaying the mutation with a
    /// clock set to the recorded instant reproduces it exactly.
    fn stamp(&mut self) -> Timestamp {
        let now = self.clock.now().max(self.last_at);
        self.last_at = now;
        now
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn push_revision(&mut self, state: M, cause: Cause, meta: CommitMeta) -> Commit {
        let at = self.stamp();
        self.push_revision_at(state, cause, meta, at)
    }

    fn push_revision_at(
        &mut self,
        state: M,
        cause: Cause,
        meta: CommitMeta,
        at: Timestamp,
    ) -> Commit {
        let delta = state.history_delta(self.head());
        self.push_revision_with(state, delta, cause, meta, at)
    }

    /// Appends `state` as the head; `delta` turns it back into the old head.
    fn push_revision_with(
        &mut self,
        state: M,
        delta: Option<StateDelta>,
        cause: Cause,
        meta: CommitMeta,
        at: Timestamp,
    ) -> Commit {
        let revision = self.revision().next();
        let old_head = self.revision();
        let keep_whole =
            self.config.hot_revisions > 0 || self.latest_snapshot_revision() == Some(old_head);
        self.states.push_with(revision, state, delta, keep_whole);
        self.history.push_back(Arc::new(Entry {
            info: RevisionInfo {
                revision,
                at,
                cause,
                meta,
            },
        }));
        while self.history.len() > self.config.history_limit {
            self.drop_oldest_revision();
        }
        // The revision that just left the newest `hot_revisions` (with
        // none, the old head, settled above).
        if self.config.hot_revisions > 0 {
            if let Some(cooled) = revision
                .get()
                .checked_sub(self.config.hot_revisions as u64 + 1)
            {
                self.cool(Some(Revision(cooled)));
            }
        }
        self.enforce_budget();
        Commit { revision, at }
    }

    fn new_checkpoint(
        &mut self,
        transaction: TransactionId,
        name: SnapshotName,
        at: Timestamp,
    ) -> Snapshot {
        let seq = self.take_seq();
        Snapshot {
            info: SnapshotInfo {
                name,
                kind: SnapshotKind::Checkpoint,
                revision: self.revision(),
                created_at: at,
                protected: false,
                trigger: None,
                transaction: Some(transaction),
                seq,
            },
        }
    }

    /// The revision of the newest snapshot (auto, named or checkpoint):
    /// the one [`RollbackTarget::Latest`] restores. Time: O(transactions).
    fn latest_snapshot_revision(&self) -> Option<Revision> {
        self.auto
            .back()
            .into_iter()
            .chain(self.named.back())
            .chain(
                self.transactions
                    .iter()
                    .filter_map(|t| t.checkpoints.back()),
            )
            .max_by_key(|s| s.info.seq)
            .map(|s| s.info.revision)
    }

    /// Whether `revision` is in the hot set: the head, the newest
    /// `hot_revisions` before it, or the newest snapshot's.
    fn is_hot(&self, revision: Revision) -> bool {
        revision.get() + self.config.hot_revisions as u64 >= self.revision().get()
            || self.latest_snapshot_revision() == Some(revision)
    }

    /// Whether anything still needs `revision`'s state.
    fn is_pinned(&self, revision: Revision) -> bool {
        self.window_index(revision).is_some()
            || self.all_snapshots().any(|s| s.info.revision == revision)
    }

    /// Keeps `revision` as a delta only, unless it is hot.
    fn cool(&mut self, revision: Option<Revision>) {
        if let Some(revision) = revision {
            if !self.is_hot(revision) {
                self.states.demote(revision);
            }
        }
    }

    /// Something stopped needing `revision`: forget its state if nothing
    /// else pins it, else keep it as a delta unless it is hot.
    fn release(&mut self, revision: Revision) {
        if self.is_pinned(revision) {
            self.cool(Some(revision));
        } else {
            // A mismatch would mean a corrupt chain; the state stays held.
            let _ = self.states.remove(revision);
        }
    }

    /// A snapshot was removed: release its revision, and hold the newest
    /// snapshot left whole (it is the hot one now).
    fn released_snapshot(&mut self, revision: Revision) {
        self.release(revision);
        if let Some(latest) = self.latest_snapshot_revision() {
            // On a corrupt chain the state stays a delta; reads report it.
            let _ = self.states.promote(latest);
        }
    }

    /// After a restore, every state is whole: keep the hot set so, drop
    /// what only held a fork's base, as the timeline imaged had it.
    fn settle_restored(&mut self) {
        if self.fork.is_some() && !self.is_pinned(Revision::ZERO) {
            let _ = self.states.remove(Revision::ZERO);
        }
        let cold: Vec<Revision> = self
            .states
            .revisions()
            .filter(|r| !self.is_hot(*r))
            .collect();
        for revision in cold {
            self.states.demote(revision);
        }
    }

    /// Drops the oldest revision of the window (never the head).
    fn drop_oldest_revision(&mut self) {
        if self.history.len() <= 1 {
            return;
        }
        let gone = self.oldest_revision();
        self.history.pop_front();
        self.release(gone);
    }

    /// Past the history budget, drops history until it fits: the oldest
    /// window revisions, auto snapshots and finished transactions first
    /// (oldest revision first), then unprotected named snapshots, oldest
    /// first. Protected snapshots, running transactions and the head are
    /// never dropped, so history that is all of those may stay above it.
    fn enforce_budget(&mut self) {
        let Some(budget) = self.config.history_budget else {
            return;
        };
        let mut pruned = Pruned::default();
        while self.states.history_bytes() > budget {
            let window = (self.history.len() > 1).then(|| self.oldest_revision());
            let auto = self.auto.front().map(|s| s.info.revision);
            let finished = self
                .transactions
                .iter()
                .position(|t| t.outcome.is_some())
                .map(|i| (i, self.transactions[i].start_revision));
            let oldest = [window, auto, finished.map(|(_, r)| r)]
                .into_iter()
                .flatten()
                .min();
            match oldest {
                Some(r) if Some(r) == window => self.drop_oldest_revision(),
                Some(r) if Some(r) == auto => {
                    if let Some(gone) = self.auto.pop_front() {
                        pruned.auto += 1;
                        self.released_snapshot(gone.info.revision);
                    }
                }
                Some(_) => {
                    if let Some((i, _)) = finished {
                        let gone = self.transactions.remove(i);
                        pruned.checkpoint += gone.checkpoints.len();
                        for checkpoint in gone.checkpoints.iter() {
                            self.released_snapshot(checkpoint.info.revision);
                        }
                    }
                }
                None => match self.named.iter().position(|s| !s.info.protected) {
                    Some(i) => {
                        let gone = self.named.remove(i);
                        pruned.named += 1;
                        self.released_snapshot(gone.info.revision);
                    }
                    None => break,
                },
            }
        }
        self.budget_pruned.auto += pruned.auto;
        self.budget_pruned.named += pruned.named;
        self.budget_pruned.checkpoint += pruned.checkpoint;
    }

    fn window_index(&self, revision: Revision) -> Option<usize> {
        let offset = revision.get().checked_sub(self.oldest_revision().get())?;
        let index = usize::try_from(offset).ok()?;
        (index < self.history.len()).then_some(index)
    }

    /// `revision` if its state is held: in the window, or pinned by a
    /// snapshot.
    fn held_revision(&self, revision: Revision) -> Result<Revision, TimelineError> {
        if self.states.contains(revision) {
            return Ok(revision);
        }
        Err(TimelineError::RevisionNotFound {
            revision,
            oldest: self.oldest_revision(),
            head: self.revision(),
        })
    }

    /// A held revision's state (see [`state_at`](Self::state_at) for the
    /// cost).
    fn state_of(&self, revision: Revision) -> Result<M, TimelineError> {
        self.states
            .get(revision)
            .map_err(|_| TimelineError::HistoryCorrupt { revision })
    }

    fn entry_as_of(&self, at: Timestamp) -> Result<&Entry, TimelineError> {
        // Times are non-decreasing along the window: find the last entry at
        // or before `at`.
        let count = partition_point(&self.history, |e| e.info.at <= at);
        match count {
            0 => Err(TimelineError::TimeOutOfRange {
                at,
                oldest: self.history[0].info.at,
            }),
            n => Ok(&self.history[n - 1]),
        }
    }

    fn find_snapshot(&self, name: &SnapshotName) -> Option<&Snapshot> {
        self.named
            .iter()
            .chain(self.auto.iter())
            .find(|s| &s.info.name == name)
    }

    fn all_snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.auto
            .iter()
            .chain(self.named.iter())
            .chain(self.transactions.iter().flat_map(|t| t.checkpoints.iter()))
    }

    fn transaction_index(&self, transaction: TransactionId) -> Option<usize> {
        self.transactions.iter().position(|t| t.id == transaction)
    }

    /// Index of a transaction that is still running.
    fn running(&self, transaction: TransactionId) -> Result<usize, TimelineError> {
        let index = self
            .transaction_index(transaction)
            .ok_or(TimelineError::TransactionNotFound(transaction))?;
        if self.transactions[index].outcome.is_some() {
            return Err(TimelineError::TransactionFinished(transaction));
        }
        Ok(index)
    }

    fn find_checkpoint(
        &self,
        transaction: TransactionId,
        name: &SnapshotName,
    ) -> Result<&Snapshot, TimelineError> {
        let index = self
            .transaction_index(transaction)
            .ok_or(TimelineError::TransactionNotFound(transaction))?;
        self.transactions[index]
            .checkpoints
            .iter()
            .find(|c| &c.info.name == name)
            .ok_or_else(|| TimelineError::CheckpointNotFound {
                transaction,
                name: name.clone(),
            })
    }

    fn resolve_target(&self, target: &RollbackTarget) -> Result<(Restored, M), TimelineError> {
        let (restored, revision) = self.resolve_target_revision(target)?;
        Ok((restored, self.state_of(revision)?))
    }

    fn resolve_target_revision(
        &self,
        target: &RollbackTarget,
    ) -> Result<(Restored, Revision), TimelineError> {
        let snapshot = |s: &Snapshot| Restored {
            kind: s.info.kind.into(),
            name: Some(s.info.name.clone()),
            transaction: s.info.transaction,
            revision: s.info.revision,
        };
        match target {
            RollbackTarget::Named(name) => self
                .find_snapshot(name)
                .map(|s| (snapshot(s), s.info.revision))
                .ok_or_else(|| TimelineError::SnapshotNotFound(name.clone())),
            RollbackTarget::Time(at) => self
                .all_snapshots()
                .filter(|s| s.info.created_at <= *at)
                .max_by_key(|s| (s.info.created_at, s.info.seq))
                .map(|s| (snapshot(s), s.info.revision))
                .ok_or(TimelineError::NoSnapshotBefore(*at)),
            RollbackTarget::Latest => self
                .all_snapshots()
                .max_by_key(|s| s.info.seq)
                .map(|s| (snapshot(s), s.info.revision))
                .ok_or(TimelineError::NoSnapshots),
            RollbackTarget::Checkpoint { transaction, name } => self
                .find_checkpoint(*transaction, name)
                .map(|s| (snapshot(s), s.info.revision)),
            RollbackTarget::Revision(revision) => {
                let revision = self.held_revision(*revision)?;
                let restored = Restored {
                    kind: RestoredKind::Revision,
                    name: None,
                    transaction: None,
                    revision,
                };
                Ok((restored, revision))
            }
        }
    }
}

fn reject(error: impl std::error::Error + Send + Sync + 'static) -> TimelineError {
    TimelineError::Rejected(ChangeRejected::new(error))
}

/// Number of leading elements for which `pred` holds (`pred` must be true
/// for a prefix and false after). Time: O(log² n) on an `imbl::Vector`.
fn partition_point<T: Clone + Send + Sync>(items: &Log<T>, pred: impl Fn(&T) -> bool) -> usize {
    let (mut lo, mut hi) = (0, items.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(&items[mid]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}
