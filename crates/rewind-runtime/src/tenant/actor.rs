//! The tenant actor: the one writer of a tenant's timeline.
//!
//! On a wake-up the actor takes every request queued in the tenant's
//! [`Lane`](super::lane::Lane) and runs them on its working timeline in
//! order, as one batch ([`super::dispatch`]); the batch is appended to the
//! journal once, and published and answered once it is durable
//! ([`super::commit`], [`super::publish`]). With a journal the actor does
//! not wait for the fsync: it goes on with the next batch while the
//! previous one is made durable, and publication releases the batches in
//! order. Writes wait while a transaction holds the write lease
//! ([`super::lease`]).
//!
//! Domain errors go back in the replies; the handler returns `Err` (which
//! makes the supervisor restart the tenant from its last published
//! timeline) only after user code panicked, and only once everything it
//! sealed before is durable and answered.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use rewind_core::{Model, PolicyCheck, Timeline, TransactionId};
use tracing::warn;

use super::commit::Batch;
use super::lease::Waiting;
use super::messages::{Envelope, LeaseMsg};
use super::publish::{Pipeline, Publisher};
use super::shared::{Slot, TenantShared};
use crate::error::panic_message;

/// The actor; stateless — its data lives in [`TenantState`].
pub(crate) struct TenantActor<M>(PhantomData<fn() -> M>);

impl<M> TenantActor<M> {
    pub(crate) fn new() -> Self {
        TenantActor(PhantomData)
    }
}

/// Where sealed batches go.
pub(crate) enum Committer<M: Model> {
    /// Memory mode: published and answered as they are sealed.
    Inline(Publisher<M>),
    /// With a journal: appended, then completed by the publisher task.
    Pipelined(Pipeline<M>),
}

pub(crate) struct TenantState<M: Model> {
    pub(super) shared: Arc<TenantShared<M>>,
    /// This actor, to take itself out of routing when it is about to fail.
    pub(super) actor: ActorId,
    /// The working timeline: the published one plus what is being made
    /// durable and the open batch.
    pub(super) timeline: Timeline<M>,
    /// Seq of the newest journal entry made (durable or not).
    pub(super) seq: u64,
    /// Bumped when the actor rewinds after a failed append.
    pub(super) generation: u64,
    pub(super) batch: Batch,
    pub(super) committer: Committer<M>,
    /// The transaction holding the write lease. Its rollback policy comes
    /// with `Finish` / `Abandon`: this record does not survive a restart.
    pub(super) lease: Option<TransactionId>,
    /// Writes that arrived while the lease was held, in arrival order.
    pub(super) waiting: VecDeque<Waiting<M>>,
    /// Whether an `ExpireWaiting` is scheduled.
    pub(super) expiry_scheduled: bool,
    /// Drain requests answered once the lease is free and nothing waits.
    pub(super) drains: Vec<RpcReplyPort<()>>,
    /// Whether a change was checked to round-trip through JSON.
    pub(super) change_checked: bool,
    /// The idempotency keys of the working timeline, built on the first
    /// keyed write; `None` until then and after the timeline is replaced.
    pub(super) keys: Option<super::idempotency::KeyIndex>,
}

/// User code panicked: the reply was sent, the actor must restart.
pub(crate) struct Panicked(pub(crate) String);

/// Runs user code, turning a panic into [`Panicked`].
pub(super) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| Panicked(panic_message(p)))
}

impl<M: Model> Actor for TenantActor<M> {
    type Msg = Envelope<M>;
    type State = TenantState<M>;
    type Arguments = Arc<TenantShared<M>>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        shared: Arc<TenantShared<M>>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let timeline = shared.read(Timeline::clone);
        // A transaction still running in the published timeline keeps the
        // lease across a restart; its actor will finish or abandon it.
        let lease = timeline
            .transactions()
            .into_iter()
            .rev()
            .find(|t| t.outcome.is_none())
            .map(|t| t.id);
        let publisher = Publisher::new(Arc::clone(&shared));
        let committer = match shared.journaling() {
            Some(journaling) => {
                Committer::Pipelined(Pipeline::start(Arc::clone(&journaling.journal), publisher))
            }
            None => Committer::Inline(publisher),
        };
        Ok(TenantState {
            seq: shared.durable_seq(),
            generation: shared.failed_generation() + 1,
            batch: Batch::new(),
            committer,
            shared,
            actor: myself.get_id(),
            timeline,
            lease,
            waiting: VecDeque::new(),
            expiry_scheduled: false,
            drains: Vec::new(),
            change_checked: false,
            keys: None,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Committer::Pipelined(pipeline) = &mut state.committer {
            pipeline.close().await;
        }
        // Deleted or shut down: no actor will take what is still queued.
        let shared = &state.shared;
        if shared.accepting().is_err() {
            shared.lane.fail_all(|| {
                shared
                    .accepting()
                    .err()
                    .unwrap_or(crate::Error::ShuttingDown)
            });
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        envelope: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Err(error) = state.resync_if_failed().await {
            refuse(&myself, envelope, &error, state);
            return Ok(());
        }
        let result = match envelope {
            Envelope::Wake => {
                let taken = state.shared.lane.take_all();
                let served = state.serve(&myself, taken.queued).await;
                if taken.tick && served.is_ok() {
                    state.interval_snapshot();
                }
                served
            }
            Envelope::Lease(msg) => state.lease_msg(&myself, msg).await,
            Envelope::Stop(reply) => {
                let stopped = state.stop_if_idle(&myself).await;
                if let Some(reply) = reply {
                    let _ = reply.send(stopped);
                }
                Ok(())
            }
            Envelope::ExpireWaiting => {
                state.expire_waiting(&myself);
                Ok(())
            }
            Envelope::Drain(reply) => {
                let taken = state.shared.lane.take_all();
                let served = state.serve(&myself, taken.queued).await;
                if let Err(e) = state.settle().await {
                    warn!(tenant = %state.shared.id, error = %e, "draining a tenant");
                }
                state.drains.push(reply);
                state.answer_drains();
                served
            }
        };
        if let Err(Panicked(message)) = result {
            // The successor starts from the published timeline: everything
            // sealed before the panic must be durable and published first.
            if let Err(e) = state.settle().await {
                warn!(tenant = %state.shared.id, error = %e, "before a restart");
            }
            state.shared.release_slot(state.actor, || Slot::Restarting);
            warn!(tenant = %state.shared.id, %message, "user code panicked; restarting the tenant");
            return Err(ActorProcessingErr::from(format!(
                "user code panicked: {message}"
            )));
        }
        Ok(())
    }
}

/// What a message gets while the tenant cannot be read back from the
/// journal after a failed append: requests are refused (nothing of them
/// was applied); an abandoned transaction's rollback is tried again later.
fn refuse<M: Model>(
    myself: &ActorRef<Envelope<M>>,
    envelope: Envelope<M>,
    error: &crate::Error,
    state: &TenantState<M>,
) {
    let unavailable = || crate::Error::Unavailable {
        tenant: state.shared.id.clone(),
        reason: match error {
            crate::Error::Unavailable { reason, .. } => reason.clone(),
            other => other.to_string(),
        },
    };
    match envelope {
        Envelope::Wake | Envelope::Drain(_) => {
            let taken = state.shared.lane.take_all();
            for queued in taken.queued {
                queued.msg.fail(unavailable());
            }
            if let Envelope::Drain(reply) = envelope {
                let _ = reply.send(());
            }
        }
        Envelope::Lease(msg) => match msg {
            LeaseMsg::Step { reply, .. } => drop(reply.send(Err(unavailable()))),
            LeaseMsg::Finish { reply, .. } => drop(reply.send(Err(unavailable()))),
            abandon @ LeaseMsg::Abandon { .. } => {
                myself.send_after(RETRY_ABANDON, move || Envelope::Lease(abandon));
            }
        },
        Envelope::Stop(reply) => {
            if let Some(reply) = reply {
                let _ = reply.send(false);
            }
        }
        Envelope::ExpireWaiting => {}
    }
}

/// How long an abandoned transaction waits to be rolled back again while
/// the journal cannot be read.
const RETRY_ABANDON: std::time::Duration = std::time::Duration::from_secs(1);

impl<M: Model> TenantState<M> {
    /// Runs `queued` in order as one batch, then seals it. Writes wait while
    /// a transaction holds the lease. After a panic, what was not run goes
    /// back to the lane for the restarted actor, and what ran before is made
    /// durable and answered first.
    pub(super) async fn serve(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        mut queued: VecDeque<super::lane::Queued<M>>,
    ) -> Result<(), Panicked> {
        while let Some(request) = queued.pop_front() {
            if self.lease.is_some() && request.msg.is_write() {
                self.wait(myself, request);
                continue;
            }
            match self.dispatch(request) {
                Ok(None) => {}
                Ok(Some(transaction)) => self.start_transaction(myself, transaction).await,
                Err(panicked) => {
                    // The restarted actor takes what was not run; the
                    // handler settles what was.
                    self.shared.lane.put_back(queued);
                    return Err(panicked);
                }
            }
        }
        self.seal();
        Ok(())
    }

    /// Stops the actor if the tenant is idle: no transaction, no write
    /// waiting for one, nothing queued, everything it sealed durable and
    /// answered. The tenant stays active (its timeline in memory) and the
    /// next request asks the supervisor for a new actor.
    async fn stop_if_idle(&mut self, myself: &ActorRef<Envelope<M>>) -> bool {
        if self.lease.is_some() || !self.waiting.is_empty() || !self.drains.is_empty() {
            return false;
        }
        if let Err(e) = self.settle().await {
            warn!(tenant = %self.shared.id, error = %e, "a tenant stays running: its journal is failing");
            return false;
        }
        if !self.shared.lane.try_stop() {
            return false;
        }
        self.shared.release_slot(self.actor, || Slot::Idle);
        myself.stop(Some("idle".into()));
        true
    }

    /// The interval policy: an auto snapshot when the head moved since the
    /// newest one.
    fn interval_snapshot(&mut self) {
        if self.shared.config().auto_snapshot.interval.is_some()
            && self.timeline.policy_snapshot_due(PolicyCheck::Interval)
        {
            self.policy_snapshot();
            self.seal();
        }
    }
}
