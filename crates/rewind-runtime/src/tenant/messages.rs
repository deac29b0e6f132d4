//! Messages a tenant actor understands.
//!
//! [`TenantMsg`] is the public protocol: another actor can do everything a
//! [`Tenant`](crate::Tenant) handle does by sending these (through
//! [`SupervisorMsg::Tenant`](crate::SupervisorMsg::Tenant)). Every reply is a
//! `Result` carrying domain errors; the actor never fails because of them.

use ractor::RpcReplyPort;
use rewind_core::deploy::{
    DeployChange, DeploymentEnded, DeploymentId, DeploymentSpec, DeploymentStarted, FinishAction,
    Observation,
};
use rewind_core::{
    Commit, CommitMeta, Diff, ForkRecord, Incarnation, Model, NamedOptions, Promotion, Revision,
    RevisionInfo, RollbackOutcome, RollbackPolicy, RollbackPreview, RollbackTarget, SnapshotInfo,
    SnapshotName, StateRef, TenantId, TransactionId,
};

use crate::error::{BoxError, Error};
use crate::transaction::{StepRecord, TransactionPlan, TransactionReport};

/// A closure computing a change from the current state; it runs inside the
/// tenant actor, under `catch_unwind`.
pub type UpdateFn<M> =
    Box<dyn FnOnce(&M) -> Result<<M as Model>::Change, BoxError> + Send + 'static>;

/// Options of a write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Author and message recorded with the revision.
    pub meta: CommitMeta,
    /// Refuse the write with `RevisionMismatch` unless the head is at this
    /// revision (optimistic concurrency, like HTTP `If-Match`).
    pub expected_revision: Option<Revision>,
}

/// A request to one tenant.
pub enum TenantMsg<M: Model> {
    /// Apply a change as a new revision.
    Apply {
        /// The change.
        change: M::Change,
        /// Write options.
        options: WriteOptions,
        /// The committed revision.
        reply: RpcReplyPort<Result<Commit, Error>>,
    },
    /// Replace the whole state as a new revision.
    Replace {
        /// The new state.
        state: M,
        /// Write options.
        options: WriteOptions,
        /// The committed revision.
        reply: RpcReplyPort<Result<Commit, Error>>,
    },
    /// Compute a change from the current state with a closure, then apply it.
    Update {
        /// The closure.
        update: UpdateFn<M>,
        /// Write options.
        options: WriteOptions,
        /// The committed revision.
        reply: RpcReplyPort<Result<Commit, Error>>,
    },
    /// Take a snapshot: named when `name` is given, else auto.
    Snapshot {
        /// The name, for a named snapshot.
        name: Option<SnapshotName>,
        /// Options of a named snapshot.
        options: NamedOptions,
        /// The snapshot taken.
        reply: RpcReplyPort<Result<SnapshotInfo, Error>>,
    },
    /// Protect or unprotect a named snapshot.
    Protect {
        /// The snapshot.
        name: SnapshotName,
        /// Protect (`true`) or unprotect.
        protected: bool,
        /// The snapshot afterwards.
        reply: RpcReplyPort<Result<SnapshotInfo, Error>>,
    },
    /// Delete an auto or unprotected named snapshot.
    DeleteSnapshot {
        /// The snapshot.
        name: SnapshotName,
        /// The deleted snapshot.
        reply: RpcReplyPort<Result<SnapshotInfo, Error>>,
    },
    /// Roll back to a target (a new revision).
    Rollback {
        /// Where to.
        target: RollbackTarget,
        /// Write options.
        options: WriteOptions,
        /// What was done.
        reply: RpcReplyPort<Result<RollbackOutcome, Error>>,
    },
    /// Compute what a rollback would do, without doing it.
    RollbackDryRun {
        /// Where to.
        target: RollbackTarget,
        /// What would be done.
        reply: RpcReplyPort<Result<RollbackPreview, Error>>,
    },
    /// Read the state at a reference.
    Read {
        /// Which state.
        at: StateRef,
        /// The state.
        reply: RpcReplyPort<Result<M, Error>>,
    },
    /// Diff two references.
    Diff {
        /// From.
        from: StateRef,
        /// To.
        to: StateRef,
        /// The diff.
        reply: RpcReplyPort<Result<Diff, Error>>,
    },
    /// The newest `limit` revisions of the window, newest first.
    History {
        /// Most revisions to return.
        limit: usize,
        /// The revisions.
        reply: RpcReplyPort<Result<Vec<RevisionInfo>, Error>>,
    },
    /// Auto and named snapshots, oldest first.
    Snapshots {
        /// The snapshots.
        reply: RpcReplyPort<Result<Vec<SnapshotInfo>, Error>>,
    },
    /// The head revision (after every request sent before this one).
    Revision {
        /// The revision.
        reply: RpcReplyPort<Result<Revision, Error>>,
    },
    /// Start a guarded deployment: the protected `pre_<name>` snapshot and
    /// the change, in one step. Monitoring is the caller's (see
    /// [`Tenant::deploy`](crate::Tenant::deploy)).
    StartDeployment {
        /// What runs and how it decides.
        spec: DeploymentSpec,
        /// What is deployed.
        change: DeployChange<M>,
        /// Attribution of the deployed revision.
        meta: CommitMeta,
        /// The deployment started.
        reply: RpcReplyPort<Result<DeploymentStarted, Error>>,
    },
    /// Record one round of a deployment's measurements; rolls back when
    /// they pass a limit.
    RecordMeasurements {
        /// The deployment.
        deployment: DeploymentId,
        /// A result per check.
        round: Vec<Observation>,
        /// The ended deployment, if this round ended it.
        reply: RpcReplyPort<Result<Option<DeploymentEnded>, Error>>,
    },
    /// Promote or abort a deployment now.
    FinishDeployment {
        /// The deployment.
        deployment: DeploymentId,
        /// Promote or abort.
        action: FinishAction,
        /// The ended deployment.
        reply: RpcReplyPort<Result<DeploymentEnded, Error>>,
    },
    /// Record a fork made of this tenant (no revision).
    RecordFork {
        /// The fork's id.
        fork: TenantId,
        /// The revision it was made from.
        base_revision: Revision,
        /// The fork's incarnation.
        fork_incarnation: Option<Incarnation>,
        /// The record.
        reply: RpcReplyPort<Result<ForkRecord, Error>>,
    },
    /// Write a fork's head onto this tenant (its parent) as one revision
    /// with cause `promote`.
    Promote {
        /// The fork.
        fork: TenantId,
        /// The incarnation of this tenant the fork was made of: another
        /// one (this tenant re-created under the parent's name) refuses
        /// with `ForkDetached` and writes nothing.
        parent_incarnation: Option<Incarnation>,
        /// The fork's revision promoted.
        fork_revision: Revision,
        /// The state, or the merged patch onto this tenant's head.
        promotion: Promotion<M>,
        /// Write options (`expected_revision`: the head the merge was
        /// computed against).
        options: WriteOptions,
        /// The committed revision.
        reply: RpcReplyPort<Result<Commit, Error>>,
    },
    /// Run a multi-step transaction holding the write lease.
    Transaction {
        /// The steps and rollback policy.
        plan: TransactionPlan<M>,
        /// The report, also when the transaction rolled back or failed
        /// (as [`TransactionBuilder::run_report`]: an actor reads
        /// `outcome`); `Err` only when it could not run.
        ///
        /// [`TransactionBuilder::run_report`]: crate::TransactionBuilder::run_report
        reply: RpcReplyPort<Result<TransactionReport, Error>>,
    },
}

impl<M: Model> TenantMsg<M> {
    /// Whether the request changes the timeline (and so waits for the write
    /// lease while a transaction holds it).
    pub(crate) fn is_write(&self) -> bool {
        !matches!(
            self,
            TenantMsg::RollbackDryRun { .. }
                | TenantMsg::Read { .. }
                | TenantMsg::Diff { .. }
                | TenantMsg::History { .. }
                | TenantMsg::Snapshots { .. }
                | TenantMsg::Revision { .. }
        )
    }

    /// Answers the request with `error` without doing it.
    pub(crate) fn fail(self, error: Error) {
        /// Every variant has a `reply` port of `Result<_, Error>`: one arm
        /// per variant, the same answer.
        macro_rules! refuse {
            ($($variant:ident),*) => {
                match self {
                    // A caller that went away does not need the answer.
                    $(TenantMsg::$variant { reply, .. } => drop(reply.send(Err(error))),)*
                }
            };
        }
        refuse!(
            Apply,
            Replace,
            Update,
            Snapshot,
            Protect,
            DeleteSnapshot,
            Rollback,
            RollbackDryRun,
            Read,
            Diff,
            History,
            Snapshots,
            Revision,
            StartDeployment,
            RecordMeasurements,
            FinishDeployment,
            RecordFork,
            Promote,
            Transaction
        )
    }
}

/// What the tenant actor receives. Requests themselves wait in the tenant's
/// lane; the actor is woken to take them.
pub(crate) enum Envelope<M: Model> {
    /// Take everything queued in the lane.
    Wake,
    Lease(LeaseMsg<M>),
    /// Stop if the tenant is idle (the runtime's timer, or a passivation);
    /// answers whether the actor stopped.
    Stop(Option<RpcReplyPort<bool>>),
    /// Check the deadlines of writes waiting for the lease.
    ExpireWaiting,
    /// Answered once every earlier request has been handled.
    Drain(RpcReplyPort<()>),
}

/// How a transaction ended, as its tenant answers `Finish`.
pub(crate) struct Finished {
    /// The rollback made, if any.
    pub(crate) rollback: Option<RollbackOutcome>,
    /// A failed transaction that had changed nothing: no rollback needed.
    pub(crate) unchanged: bool,
}

/// The protocol between a transaction actor and its tenant, valid only for
/// the transaction holding the lease.
pub(crate) enum LeaseMsg<M: Model> {
    /// Run a step: apply `change` (if any), then checkpoint as `step`.
    Step {
        transaction: TransactionId,
        step: SnapshotName,
        change: Option<M::Change>,
        meta: CommitMeta,
        reply: RpcReplyPort<Result<StepRecord, Error>>,
    },
    /// End the transaction: committed, or rolled back per `policy`. The
    /// policy travels with the message because a tenant restarted during the
    /// transaction no longer knows it.
    Finish {
        transaction: TransactionId,
        failed: bool,
        policy: RollbackPolicy,
        /// Recorded on the rollback revision.
        meta: CommitMeta,
        reply: RpcReplyPort<Result<Finished, Error>>,
    },
    /// The transaction actor stopped without finishing: roll back per
    /// `policy`.
    Abandon {
        transaction: TransactionId,
        policy: RollbackPolicy,
        meta: CommitMeta,
    },
}
