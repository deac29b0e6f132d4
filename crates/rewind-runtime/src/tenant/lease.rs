//! The write lease: a transaction holds it while its steps run; other
//! writes wait (up to `lease_timeout`) and run in arrival order when it is
//! given back. Every lease operation is settled — durable and published —
//! before it is answered, so the actor's lease always matches the durable
//! timeline.

use std::sync::Arc;

use ractor::{Actor, ActorRef, RpcReplyPort};
use rewind_core::ops::{
    AbortTransaction, ApplyStep, BeginTransaction, Checkpoint, FinishTransaction,
};
use rewind_core::{
    CommitMeta, Model, RollbackPolicy, SnapshotKind, SnapshotName, TargetKind, TransactionId,
    TransactionOutcome,
};
use tokio::time::Instant;
use tracing::warn;

use super::actor::{guarded, Panicked, TenantState};
use super::lane::Queued;
use super::messages::{Envelope, Finished, LeaseMsg};
use super::shared::Permit;
use crate::error::Error;
use crate::metrics::{self, Outcome};
use crate::transaction::actor::{TransactionActor, TransactionArgs};
use crate::transaction::{StepRecord, TransactionPlan, TransactionReport};

/// A write waiting for the lease.
pub(crate) struct Waiting<M: Model> {
    request: Queued<M>,
    since: Instant,
}

/// A transaction request, to start once the journal is settled.
pub(crate) struct StartTransaction<M: Model> {
    pub(super) plan: TransactionPlan<M>,
    pub(super) reply: RpcReplyPort<Result<TransactionReport, Error>>,
    pub(super) _permit: Option<Permit<M>>,
}

impl<M: Model> TenantState<M> {
    pub(super) fn wait(&mut self, myself: &ActorRef<Envelope<M>>, request: Queued<M>) {
        self.waiting.push_back(Waiting {
            request,
            since: Instant::now(),
        });
        if !self.expiry_scheduled {
            self.expiry_scheduled = true;
            myself.send_after(self.shared.config().lease_timeout, || {
                Envelope::ExpireWaiting
            });
        }
    }

    pub(super) fn expire_waiting(&mut self, myself: &ActorRef<Envelope<M>>) {
        self.expiry_scheduled = false;
        let timeout = self.shared.config().lease_timeout;
        let now = Instant::now();
        while let Some(front) = self.waiting.front() {
            let waited = now.duration_since(front.since);
            if waited < timeout {
                break;
            }
            let Some(waiting) = self.waiting.pop_front() else {
                break;
            };
            waiting.request.msg.fail(Error::LeaseTimeout {
                tenant: self.shared.id.clone(),
                transaction: self.lease.unwrap_or_default(),
                waited,
            });
        }
        if let Some(front) = self.waiting.front() {
            self.expiry_scheduled = true;
            let left = timeout.saturating_sub(now.duration_since(front.since));
            myself.send_after(left, || Envelope::ExpireWaiting);
        }
    }

    /// Runs the writes that waited for the lease, in order (until one of
    /// them takes the lease again: the rest wait on).
    async fn resume_waiting(&mut self, myself: &ActorRef<Envelope<M>>) -> Result<(), Panicked> {
        let waiting = std::mem::take(&mut self.waiting);
        self.serve(myself, waiting.into_iter().map(|w| w.request).collect())
            .await?;
        if !self.drains.is_empty() {
            // A drain is answered only once everything is durable: whoever
            // waits for it (a delete, a shutdown) writes after it.
            if let Err(e) = self.settle().await {
                warn!(tenant = %self.shared.id, error = %e, "draining a tenant");
            }
        }
        self.answer_drains();
        Ok(())
    }

    pub(super) fn answer_drains(&mut self) {
        if self.lease.is_none() && self.waiting.is_empty() {
            for reply in self.drains.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    pub(super) async fn start_transaction(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        start: StartTransaction<M>,
    ) {
        let StartTransaction { plan, reply, .. } = start;
        if let Err(e) = plan.validate() {
            let _ = reply.send(Err(e.into()));
            return;
        }
        let transaction = match self.run(BeginTransaction {}) {
            Ok(transaction) => transaction,
            Err(e) => {
                let _ = reply.send(Err(self.tenant_error(e)));
                return;
            }
        };
        if let Err(e) = self.settle().await {
            let _ = reply.send(Err(e));
            return;
        }
        metrics::snapshot_created(SnapshotKind::Checkpoint);
        self.lease = Some(transaction);
        let (policy, meta) = (plan.policy.clone(), plan.meta.clone());
        let step_timeout = plan
            .step_timeout
            .unwrap_or(self.shared.config().step_timeout);
        let args = TransactionArgs {
            shared: Arc::clone(&self.shared),
            transaction,
            plan,
            step_timeout,
            reply,
        };
        if let Err(e) = Actor::spawn(None, TransactionActor::new(), args).await {
            // The plan and the reply port went with the failed spawn (the
            // caller sees `Unavailable`); give the lease back.
            warn!(tenant = %self.shared.id, error = %e, "could not start a transaction actor");
            let _ = myself.send_message(Envelope::Lease(LeaseMsg::Abandon {
                transaction,
                policy,
                meta,
            }));
        }
    }

    pub(super) async fn lease_msg(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        msg: LeaseMsg<M>,
    ) -> Result<(), Panicked> {
        match msg {
            LeaseMsg::Step {
                transaction,
                step,
                change,
                meta,
                reply,
            } => {
                if let Err(e) = self.holds_lease(transaction) {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                match self.step(transaction, step, change, meta).await {
                    Ok(result) => drop(reply.send(result)),
                    Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                }
            }
            LeaseMsg::Finish {
                transaction,
                failed,
                policy,
                meta,
                reply,
            } => {
                if let Err(e) = self.holds_lease(transaction) {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                match self
                    .finish(myself, transaction, failed, &policy, meta)
                    .await
                {
                    Ok(outcome) => drop(reply.send(Ok(outcome))),
                    Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                }
            }
            LeaseMsg::Abandon {
                transaction,
                policy,
                meta,
            } => {
                if self.holds_lease(transaction).is_ok() {
                    warn!(tenant = %self.shared.id, %transaction, "transaction abandoned; rolling back");
                    self.finish(myself, transaction, true, &policy, meta)
                        .await?;
                }
            }
        }
        Ok(())
    }

    fn holds_lease(&self, transaction: TransactionId) -> Result<(), Error> {
        match self.lease {
            Some(holder) if holder == transaction => Ok(()),
            _ => Err(Error::Unavailable {
                tenant: self.shared.id.clone(),
                reason: format!("transaction {transaction} does not hold the write lease"),
            }),
        }
    }

    async fn step(
        &mut self,
        transaction: TransactionId,
        step: SnapshotName,
        change: Option<M::Change>,
        meta: CommitMeta,
    ) -> Result<Result<StepRecord, Error>, Panicked> {
        let started = Instant::now();
        let mut revision = None;
        if let Some(change) = change {
            let op = ApplyStep {
                transaction,
                step: step.clone(),
                change,
                meta,
            };
            match guarded(|| self.run(op))? {
                Err(e) => {
                    metrics::transition(Outcome::Rejected, started.elapsed());
                    return Ok(Err(self.tenant_error(e)));
                }
                Ok(commit) => revision = Some(commit.revision),
            }
        }
        let checkpoint = self.run(Checkpoint {
            transaction,
            name: step.clone(),
        });
        let settled = self.settle().await;
        if revision.is_some() {
            let outcome = match settled {
                Ok(()) => Outcome::Ok,
                Err(_) => Outcome::Failed,
            };
            metrics::transition(outcome, started.elapsed());
        }
        if let Err(e) = settled {
            return Ok(Err(e));
        }
        Ok(match checkpoint {
            Ok(checkpoint) => {
                metrics::snapshot_created(SnapshotKind::Checkpoint);
                Ok(StepRecord {
                    name: step,
                    revision,
                    checkpoint,
                })
            }
            Err(e) => Err(self.tenant_error(e)),
        })
    }

    /// Ends the lease holder's transaction: committed, or aborted per its
    /// policy (the core decides whether that rolls back). Then runs the
    /// writes that waited.
    async fn finish(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        transaction: TransactionId,
        failed: bool,
        policy: &RollbackPolicy,
        meta: CommitMeta,
    ) -> Result<Finished, Panicked> {
        let started = Instant::now();
        let mut unchanged = false;
        let (mut outcome, mut rollback, pruned) = if failed {
            let op = AbortTransaction {
                transaction,
                policy: policy.clone(),
                meta,
                quiet: true,
            };
            match guarded(|| self.run(op))? {
                Ok(aborted) => {
                    unchanged = aborted.unchanged;
                    (aborted.outcome, aborted.rollback, aborted.pruned)
                }
                Err(_) => (TransactionOutcome::Failed, None, Default::default()),
            }
        } else {
            let op = FinishTransaction {
                transaction,
                outcome: TransactionOutcome::Committed,
            };
            let pruned = self.run(op).unwrap_or_default();
            (TransactionOutcome::Committed, None, pruned)
        };
        match self.settle().await {
            Ok(()) => {
                if let Some(rollback) = &rollback {
                    metrics::snapshot_created(SnapshotKind::Auto);
                    metrics::pruned(&rollback.pruned);
                    metrics::rollback(TargetKind::Checkpoint, Outcome::Ok, started.elapsed());
                }
                metrics::pruned(&pruned);
            }
            // The transaction stays open in the journal; recovery rolls it
            // back to its start.
            Err(e) => {
                warn!(tenant = %self.shared.id, error = %e, "finishing a transaction");
                if failed {
                    outcome = TransactionOutcome::Failed;
                    rollback = None;
                }
            }
        }
        metrics::transaction(outcome);
        self.lease = None;
        self.resume_waiting(myself).await?;
        let unchanged = unchanged && outcome == TransactionOutcome::RolledBack;
        Ok(Finished {
            rollback,
            unchanged,
        })
    }
}
