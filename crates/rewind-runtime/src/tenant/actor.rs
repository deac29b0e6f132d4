//! The tenant actor: the one writer of a tenant's timeline.
//!
//! The handler decodes a message, runs it on the timeline as
//! [`TimelineOp`]s, makes them durable in the journal (when there is one),
//! publishes the new timeline and replies — in that order, so nothing is
//! acknowledged or visible before it is durable. Domain errors go back in the
//! reply; the handler returns `Err` (which makes the supervisor restart the
//! tenant from its last published timeline) only after user code panicked.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use rewind_core::{
    AutoTrigger, Commit, CommitMeta, Executed, Model, Revision, RollbackOutcome, RollbackPolicy,
    RollbackTarget, SnapshotInfo, SnapshotKind, SnapshotTaken, Timeline, TimelineOp, TransactionId,
    TransactionOutcome,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug_span, warn};

use super::messages::{Envelope, LeaseMsg, TenantMsg, WriteOptions};
use super::shared::{Permit, TenantShared};
use crate::durability;
use crate::error::{panic_message, Error};
use crate::journal::{Entry, Journal};
use crate::metrics::{self, Outcome};
use crate::transaction::actor::{TransactionActor, TransactionArgs};
use crate::transaction::StepRecord;

/// The actor; stateless — its data lives in [`TenantState`].
pub(crate) struct TenantActor<M>(PhantomData<fn() -> M>);

impl<M> TenantActor<M> {
    pub(crate) fn new() -> Self {
        TenantActor(PhantomData)
    }
}

/// A transaction holding the write lease. Its rollback policy comes with
/// `Finish` / `Abandon`: this record does not survive a restart.
struct Lease {
    transaction: TransactionId,
}

/// A write waiting for the lease.
struct Waiting<M: Model> {
    msg: TenantMsg<M>,
    permit: Option<Permit<M>>,
    since: Instant,
}

pub(crate) struct TenantState<M: Model> {
    shared: Arc<TenantShared<M>>,
    /// This actor, to take itself out of routing when it is about to fail.
    actor: ActorId,
    /// The timeline; published after every change.
    timeline: Timeline<M>,
    lease: Option<Lease>,
    /// Writes that arrived while the lease was held, in arrival order.
    waiting: VecDeque<Waiting<M>>,
    /// Whether an `ExpireWaiting` is scheduled.
    expiry_scheduled: bool,
    /// Drain requests answered once the lease is free and nothing waits.
    drains: Vec<RpcReplyPort<()>>,
    /// Revision of the newest auto snapshot: the policy only snapshots a
    /// head that moved since.
    last_auto: Revision,
    /// Newest revision sent to watchers.
    last_published: Revision,
    ticker: Option<JoinHandle<()>>,
    /// Seq of the newest journal entry made (durable or not).
    seq: u64,
    /// Entries of ops run since the last commit, not yet durable.
    unsaved: Vec<Entry>,
    /// Storing the newest image and pruning what it covers; awaited before
    /// a drain is answered, so a stopped tenant leaves no journal work
    /// behind.
    image_task: Option<JoinHandle<()>>,
}

/// User code panicked: the reply was sent, the actor must restart.
struct Panicked(String);

/// Runs user code, turning a panic into [`Panicked`].
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Panicked> {
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
        let timeline = Timeline::clone(&shared.published.load());
        // A transaction still running in the published timeline keeps the
        // lease across a restart; its actor will finish or abandon it.
        let lease = timeline
            .transactions()
            .into_iter()
            .rev()
            .find(|t| t.outcome.is_none())
            .map(|t| Lease { transaction: t.id });
        let last_auto = timeline
            .snapshots()
            .iter()
            .rev()
            .find(|s| s.kind == SnapshotKind::Auto)
            .map_or(Revision::ZERO, |s| s.revision);
        let seq = shared.durable_seq();
        Ok(TenantState {
            seq,
            unsaved: Vec::new(),
            image_task: None,
            last_published: timeline.revision(),
            shared,
            actor: myself.get_id(),
            timeline,
            lease,
            waiting: VecDeque::new(),
            expiry_scheduled: false,
            drains: Vec::new(),
            last_auto,
            ticker: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(period) = state.shared.config.auto_snapshot.interval {
            state.ticker = Some(myself.send_interval(period, || Envelope::Tick));
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        envelope: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = match envelope {
            Envelope::Request(msg, permit) => {
                if msg.is_write() && state.lease.is_some() {
                    state.wait(&myself, msg, permit);
                    Ok(())
                } else {
                    let result = state.dispatch(&myself, msg).await;
                    drop(permit);
                    result
                }
            }
            Envelope::Lease(msg) => state.lease_msg(&myself, msg).await,
            Envelope::Tick => {
                if state.shared.config.auto_snapshot.interval.is_some()
                    && state.timeline.revision() != state.last_auto
                    && state.lease.is_none()
                {
                    let taken = state.policy_snapshot();
                    match state.commit().await {
                        Ok(()) => {
                            if let Some(taken) = taken {
                                state.record_snapshot(&taken);
                            }
                        }
                        Err(e) => {
                            warn!(tenant = %state.shared.id, error = %e, "policy snapshot not saved")
                        }
                    }
                }
                Ok(())
            }
            Envelope::ExpireWaiting => {
                state.expire_waiting(&myself);
                Ok(())
            }
            Envelope::Drain(reply) => {
                if let Some(task) = state.image_task.take() {
                    let _ = task.await;
                }
                state.drains.push(reply);
                state.answer_drains();
                Ok(())
            }
        };
        result.map_err(|Panicked(message)| {
            state.shared.mark_restarting(state.actor);
            warn!(tenant = %state.shared.id, %message, "user code panicked; restarting the tenant");
            ActorProcessingErr::from(format!("user code panicked: {message}"))
        })
    }
}

impl<M: Model> TenantState<M> {
    fn tenant_error(&self, source: impl Into<rewind_core::Error>) -> Error {
        Error::core(&self.shared.id, source)
    }

    fn check_expected(&self, options: &WriteOptions) -> Result<(), Error> {
        match options.expected_revision {
            Some(expected) if expected != self.timeline.revision() => {
                Err(Error::RevisionMismatch {
                    tenant: self.shared.id.clone(),
                    expected,
                    actual: self.timeline.revision(),
                })
            }
            _ => Ok(()),
        }
    }

    async fn dispatch(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        msg: TenantMsg<M>,
    ) -> Result<(), Panicked> {
        match msg {
            TenantMsg::Apply {
                change,
                options,
                reply,
            } => {
                let result = self
                    .transition(&options, |_, meta| Ok(TimelineOp::Apply { change, meta }))
                    .await;
                self.answer(reply, result)
            }
            TenantMsg::Replace {
                state,
                options,
                reply,
            } => {
                let result = self
                    .transition(&options, |_, meta| Ok(TimelineOp::Replace { state, meta }))
                    .await;
                self.answer(reply, result)
            }
            TenantMsg::Update {
                update,
                options,
                reply,
            } => {
                let tenant = self.shared.id.clone();
                let result = self
                    .transition(&options, |timeline, meta| {
                        let change = update(timeline.head())
                            .map_err(|source| UpdateError::Refused(tenant, source))?;
                        Ok(TimelineOp::Apply { change, meta })
                    })
                    .await;
                self.answer(reply, result)
            }
            TenantMsg::Snapshot {
                name,
                options,
                reply,
            } => {
                let op = match name {
                    None => TimelineOp::SnapshotAuto {
                        trigger: AutoTrigger::Requested,
                    },
                    Some(name) => TimelineOp::SnapshotNamed { name, options },
                };
                let result = match self.run(op) {
                    Ok(Executed::Snapshot(taken)) => match self.commit().await {
                        Ok(()) => {
                            self.record_snapshot(&taken);
                            Ok(taken.snapshot)
                        }
                        Err(e) => Err(e),
                    },
                    Ok(_) => unreachable!("a snapshot op takes a snapshot"),
                    Err(e) => Err(self.tenant_error(e)),
                };
                let _ = reply.send(result);
                Ok(())
            }
            TenantMsg::Protect {
                name,
                protected,
                reply,
            } => {
                let result = self
                    .change_snapshot(TimelineOp::Protect { name, protected })
                    .await;
                let _ = reply.send(result);
                Ok(())
            }
            TenantMsg::DeleteSnapshot { name, reply } => {
                let result = self
                    .change_snapshot(TimelineOp::DeleteSnapshot { name })
                    .await;
                if let Ok(deleted) = &result {
                    metrics::snapshot_deleted(deleted.kind);
                }
                let _ = reply.send(result);
                Ok(())
            }
            TenantMsg::Rollback {
                target,
                options,
                reply,
            } => {
                let result = match self.check_expected(&options) {
                    Err(e) => {
                        metrics::rollback(target.kind(), Outcome::Rejected, Default::default());
                        Ok(Err(e))
                    }
                    Ok(()) => self.rollback(target, options.meta).await,
                };
                self.answer(reply, result)
            }
            TenantMsg::RollbackDryRun { target, reply } => {
                let result = guarded(|| self.timeline.rollback_dry_run(&target))
                    .map(|r| r.map_err(|e| self.tenant_error(e)));
                self.answer(reply, result)
            }
            TenantMsg::Read { at, reply } => {
                let result = self
                    .timeline
                    .state_at(&at)
                    .cloned()
                    .map_err(|e| self.tenant_error(e));
                let _ = reply.send(result);
                Ok(())
            }
            TenantMsg::Diff { from, to, reply } => {
                let result = guarded(|| self.timeline.diff(&from, &to))
                    .map(|r| r.map_err(|e| self.tenant_error(e)));
                self.answer(reply, result)
            }
            TenantMsg::History { limit, reply } => {
                let history = self.timeline.history().rev().take(limit).cloned().collect();
                let _ = reply.send(Ok(history));
                Ok(())
            }
            TenantMsg::Snapshots { reply } => {
                let _ = reply.send(Ok(self.timeline.snapshots()));
                Ok(())
            }
            TenantMsg::Transaction { plan, reply } => {
                self.start_transaction(myself, plan, reply).await;
                Ok(())
            }
        }
    }

    /// Sends `result` (or `Panicked` after a panic) and passes the panic on.
    fn answer<T>(
        &self,
        reply: RpcReplyPort<Result<T, Error>>,
        result: Result<Result<T, Error>, Panicked>,
    ) -> Result<(), Panicked> {
        match result {
            Ok(result) => {
                let _ = reply.send(result);
                Ok(())
            }
            Err(Panicked(message)) => {
                self.answer_panicked(reply, &message);
                Err(Panicked(message))
            }
        }
    }

    /// Answers `Panicked`. This actor fails right after; it first leaves
    /// routing, so a request the caller sends on seeing this answer waits
    /// for the restarted actor instead of landing in this dying mailbox.
    fn answer_panicked<T>(&self, reply: RpcReplyPort<Result<T, Error>>, message: &str) {
        self.shared.mark_restarting(self.actor);
        let _ = reply.send(Err(Error::Panicked {
            tenant: self.shared.id.clone(),
            message: message.to_owned(),
        }));
    }

    /// Runs `op` on the timeline (user code guarded) and, with a journal,
    /// queues its entry for the next [`commit`](Self::commit).
    fn run(&mut self, op: TimelineOp<M>) -> Result<Executed, rewind_core::Error> {
        let done = self.timeline.execute(&op)?;
        if self.shared.journaling.is_some() {
            self.seq += 1;
            let at = self.timeline.last_at();
            self.unsaved
                .push(durability::op_entry(&self.shared.id, self.seq, &op, at));
        }
        Ok(done)
    }

    /// Makes the ops run since the last commit durable, then publishes. If
    /// the journal fails, the timeline goes back to the last published one:
    /// nothing unacknowledged stays.
    async fn commit(&mut self) -> Result<(), Error> {
        if !self.unsaved.is_empty() {
            let entries = std::mem::take(&mut self.unsaved);
            let journaling = self
                .shared
                .journaling
                .clone()
                .expect("entries are only made with a journal");
            if let Err(source) = journaling.journal.append(entries).await {
                self.timeline = Timeline::clone(&self.shared.published.load());
                self.seq = self.shared.durable_seq();
                return Err(Error::Journal {
                    tenant: self.shared.id.clone(),
                    source,
                });
            }
            self.shared.set_durable_seq(self.seq);
            if self.seq >= self.shared.image_seq() + journaling.image_every {
                self.store_image(journaling.journal);
            }
        }
        self.publish();
        Ok(())
    }

    /// Stores an image of the timeline at the current seq; once it is
    /// durable, the entries it covers and the previous image are deleted.
    fn store_image(&mut self, journal: Arc<dyn Journal>) {
        if self.image_task.as_ref().is_some_and(|t| !t.is_finished()) {
            // The previous image is still being stored; the next commit
            // tries again.
            return;
        }
        let previous = self.shared.image_seq();
        self.shared.set_image_seq(self.seq);
        let (tenant, seq, config) = (self.shared.id.clone(), self.seq, self.shared.config);
        // The clone is O(1) and immutable: the image is encoded off the
        // actor, which goes on serving.
        let timeline = self.timeline.clone();
        self.image_task = Some(tokio::spawn(async move {
            let stored = tokio::task::spawn_blocking(move || {
                let image = durability::image(&tenant, seq, &config, &timeline)
                    .map_err(|e| format!("could not encode an image: {e}"))?;
                Ok::<_, String>((tenant, image))
            })
            .await;
            let (tenant, image) = match stored {
                Ok(Ok(encoded)) => encoded,
                Ok(Err(e)) => return warn!("{e}"),
                Err(e) => return warn!(error = %e, "image encoding stopped"),
            };
            if let Err(e) = journal.save_image(image).await {
                return warn!(%tenant, error = %e, "could not store an image");
            }
            let pruned = tokio::task::spawn_blocking(move || {
                journal.delete_up_to(&tenant, seq)?;
                if previous > 0 {
                    journal.delete_image(&tenant, previous)?;
                }
                Ok::<_, crate::journal::JournalError>(())
            })
            .await;
            if let Ok(Err(e)) = pruned {
                warn!(error = %e, "could not prune journal entries covered by an image");
            }
        }));
    }

    /// Protect, unprotect or delete a snapshot.
    async fn change_snapshot(&mut self, op: TimelineOp<M>) -> Result<SnapshotInfo, Error> {
        match self.run(op) {
            Ok(Executed::SnapshotChanged(info)) => self.commit().await.map(|()| info),
            Ok(_) => unreachable!("protect and delete change a snapshot"),
            Err(e) => Err(self.tenant_error(e)),
        }
    }

    /// A change that makes a new revision: check, build the op (user code,
    /// guarded), run it (the model's apply, guarded), take a policy snapshot
    /// if due, commit.
    async fn transition(
        &mut self,
        options: &WriteOptions,
        build: impl FnOnce(&Timeline<M>, CommitMeta) -> Result<TimelineOp<M>, UpdateError>,
    ) -> Result<Result<Commit, Error>, Panicked> {
        let span =
            debug_span!("rewind.apply", tenant = %self.shared.id, revision = tracing::field::Empty);
        let started = Instant::now();
        if let Err(e) = self.check_expected(options) {
            metrics::transition(Outcome::Rejected, started.elapsed());
            return Ok(Err(e));
        }
        let meta = options.meta.clone();
        let result = {
            let _entered = span.enter();
            guarded(|| {
                let op = build(&self.timeline, meta)?;
                match self.run(op)? {
                    Executed::Commit(commit) => Ok(commit),
                    _ => unreachable!("apply and replace commit a revision"),
                }
            })
        };
        let result = match result {
            Ok(result) => result,
            Err(panicked) => {
                metrics::transition(Outcome::Failed, started.elapsed());
                return Err(panicked);
            }
        };
        Ok(match result {
            Ok(commit) => {
                span.record("revision", commit.revision.get());
                let taken = self.policy_snapshot_due();
                match self.commit().await {
                    Ok(()) => {
                        if let Some(taken) = taken {
                            self.record_snapshot(&taken);
                        }
                        metrics::transition(Outcome::Ok, started.elapsed());
                        Ok(commit)
                    }
                    Err(e) => {
                        metrics::transition(Outcome::Failed, started.elapsed());
                        Err(e)
                    }
                }
            }
            Err(e) => {
                metrics::transition(Outcome::Rejected, started.elapsed());
                Err(match e {
                    UpdateError::Core(e) => self.tenant_error(e),
                    UpdateError::Refused(tenant, source) => Error::UpdateRefused { tenant, source },
                })
            }
        })
    }

    async fn rollback(
        &mut self,
        target: RollbackTarget,
        meta: CommitMeta,
    ) -> Result<Result<RollbackOutcome, Error>, Panicked> {
        let kind = target.kind();
        let span = debug_span!("rewind.rollback", tenant = %self.shared.id, target = kind.as_str(), revision = tracing::field::Empty);
        let started = Instant::now();
        let result = {
            let _entered = span.enter();
            guarded(|| self.run(TimelineOp::Rollback { target, meta }))
        };
        let result = match result {
            Ok(result) => result,
            Err(panicked) => {
                metrics::rollback(kind, Outcome::Failed, started.elapsed());
                return Err(panicked);
            }
        };
        Ok(match result {
            Ok(Executed::Rollback(outcome)) => {
                span.record("revision", outcome.revision.get());
                match self.commit().await {
                    Ok(()) => {
                        metrics::snapshot_created(SnapshotKind::Auto);
                        metrics::pruned(&outcome.pruned);
                        self.last_auto = outcome.pre_rollback.revision;
                        metrics::rollback(kind, Outcome::Ok, started.elapsed());
                        Ok(*outcome)
                    }
                    Err(e) => {
                        metrics::rollback(kind, Outcome::Failed, started.elapsed());
                        Err(e)
                    }
                }
            }
            Ok(_) => unreachable!("a rollback op rolls back"),
            Err(e) => {
                metrics::rollback(kind, Outcome::Rejected, started.elapsed());
                Err(self.tenant_error(e))
            }
        })
    }

    /// Takes the policy's auto snapshot if `every_revisions` is due.
    fn policy_snapshot_due(&mut self) -> Option<SnapshotTaken> {
        let every = self.shared.config.auto_snapshot.every_revisions?;
        let due = self.lease.is_none()
            && self.timeline.revision().get() >= self.last_auto.get().saturating_add(every);
        if due {
            self.policy_snapshot()
        } else {
            None
        }
    }

    fn policy_snapshot(&mut self) -> Option<SnapshotTaken> {
        match self.run(TimelineOp::SnapshotAuto {
            trigger: AutoTrigger::Policy,
        }) {
            Ok(Executed::Snapshot(taken)) => {
                self.last_auto = taken.snapshot.revision;
                Some(taken)
            }
            _ => None,
        }
    }

    fn record_snapshot(&mut self, taken: &SnapshotTaken) {
        metrics::snapshot_created(taken.snapshot.kind);
        metrics::pruned(&taken.pruned);
        if taken.snapshot.kind == SnapshotKind::Auto {
            self.last_auto = taken.snapshot.revision;
        }
    }

    /// Publishes the timeline for lock-free readers and tells watchers about
    /// new revisions.
    fn publish(&mut self) {
        self.shared.published.store(Arc::new(self.timeline.clone()));
        let head = self.timeline.revision();
        if head > self.last_published {
            let last = self.last_published;
            let new: Vec<_> = self
                .timeline
                .history()
                .rev()
                .take_while(|info| info.revision > last)
                .cloned()
                .collect();
            for info in new.into_iter().rev() {
                // No watcher is not an error.
                let _ = self.shared.events.send(info);
            }
            self.last_published = head;
        }
    }

    // ----- the write lease -----------------------------------------------

    fn wait(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        msg: TenantMsg<M>,
        permit: Option<Permit<M>>,
    ) {
        self.waiting.push_back(Waiting {
            msg,
            permit,
            since: Instant::now(),
        });
        if !self.expiry_scheduled {
            self.expiry_scheduled = true;
            myself.send_after(self.shared.config.lease_timeout, || Envelope::ExpireWaiting);
        }
    }

    fn expire_waiting(&mut self, myself: &ActorRef<Envelope<M>>) {
        self.expiry_scheduled = false;
        let timeout = self.shared.config.lease_timeout;
        let now = Instant::now();
        let holder = self.lease.as_ref().map(|l| l.transaction);
        while let Some(front) = self.waiting.front() {
            let waited = now.duration_since(front.since);
            if waited < timeout {
                break;
            }
            let Some(waiting) = self.waiting.pop_front() else {
                break;
            };
            waiting.msg.fail(Error::LeaseTimeout {
                tenant: self.shared.id.clone(),
                transaction: holder.unwrap_or_default(),
                waited,
            });
        }
        if let Some(front) = self.waiting.front() {
            self.expiry_scheduled = true;
            let left = timeout.saturating_sub(now.duration_since(front.since));
            myself.send_after(left, || Envelope::ExpireWaiting);
        }
    }

    /// Runs the writes that waited for the lease, in order, until one of them
    /// takes the lease again.
    async fn resume_waiting(&mut self, myself: &ActorRef<Envelope<M>>) -> Result<(), Panicked> {
        while self.lease.is_none() {
            let Some(waiting) = self.waiting.pop_front() else {
                break;
            };
            let result = self.dispatch(myself, waiting.msg).await;
            drop(waiting.permit);
            result?;
        }
        self.answer_drains();
        Ok(())
    }

    fn answer_drains(&mut self) {
        if self.lease.is_none() && self.waiting.is_empty() {
            for reply in self.drains.drain(..) {
                let _ = reply.send(());
            }
        }
    }

    async fn start_transaction(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        plan: crate::transaction::TransactionPlan<M>,
        reply: RpcReplyPort<Result<crate::transaction::TransactionReport, Error>>,
    ) {
        if let Err(e) = plan.validate() {
            let _ = reply.send(Err(e.into()));
            return;
        }
        let transaction = match self.run(TimelineOp::BeginTransaction) {
            Ok(Executed::Begun(transaction)) => transaction,
            _ => unreachable!("a transaction can always begin"),
        };
        if let Err(e) = self.commit().await {
            let _ = reply.send(Err(e));
            return;
        }
        metrics::snapshot_created(SnapshotKind::Checkpoint);
        self.lease = Some(Lease { transaction });
        let policy = plan.policy.clone();
        let step_timeout = plan.step_timeout.unwrap_or(self.shared.config.step_timeout);
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
            }));
        }
    }

    async fn lease_msg(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        msg: LeaseMsg<M>,
    ) -> Result<(), Panicked> {
        match msg {
            LeaseMsg::Step {
                transaction,
                step,
                change,
                reply,
            } => {
                if let Err(e) = self.holds_lease(transaction) {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                let result = self.step(transaction, step, change).await;
                self.answer(reply, result)
            }
            LeaseMsg::Finish {
                transaction,
                failed,
                policy,
                reply,
            } => {
                if let Err(e) = self.holds_lease(transaction) {
                    let _ = reply.send(Err(e));
                    return Ok(());
                }
                let result = self.finish(myself, transaction, failed, &policy).await;
                match result {
                    Ok(outcome) => {
                        let _ = reply.send(Ok(outcome));
                        Ok(())
                    }
                    Err(Panicked(message)) => {
                        self.answer_panicked(reply, &message);
                        Err(Panicked(message))
                    }
                }
            }
            LeaseMsg::Abandon {
                transaction,
                policy,
            } => {
                if self.holds_lease(transaction).is_ok() {
                    warn!(tenant = %self.shared.id, %transaction, "transaction abandoned; rolling back");
                    self.finish(myself, transaction, true, &policy).await?;
                }
                Ok(())
            }
        }
    }

    fn holds_lease(&self, transaction: TransactionId) -> Result<(), Error> {
        match &self.lease {
            Some(lease) if lease.transaction == transaction => Ok(()),
            _ => Err(Error::Unavailable {
                tenant: self.shared.id.clone(),
                reason: format!("transaction {transaction} does not hold the write lease"),
            }),
        }
    }

    async fn step(
        &mut self,
        transaction: TransactionId,
        step: rewind_core::SnapshotName,
        change: Option<M::Change>,
    ) -> Result<Result<StepRecord, Error>, Panicked> {
        let started = Instant::now();
        let mut revision = None;
        if let Some(change) = change {
            let op = TimelineOp::ApplyStep {
                transaction,
                step: step.clone(),
                change,
            };
            match guarded(|| self.run(op))? {
                Err(e) => {
                    metrics::transition(Outcome::Rejected, started.elapsed());
                    return Ok(Err(self.tenant_error(e)));
                }
                Ok(Executed::Commit(commit)) => revision = Some(commit.revision),
                Ok(_) => unreachable!("a step commits a revision"),
            }
        }
        let checkpoint = self.run(TimelineOp::Checkpoint {
            transaction,
            name: step.clone(),
        });
        let committed = self.commit().await;
        if revision.is_some() {
            let outcome = if committed.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            };
            metrics::transition(outcome, started.elapsed());
        }
        if let Err(e) = committed {
            return Ok(Err(e));
        }
        Ok(match checkpoint {
            Ok(Executed::Checkpoint(checkpoint)) => {
                metrics::snapshot_created(SnapshotKind::Checkpoint);
                Ok(StepRecord {
                    name: step,
                    revision,
                    checkpoint,
                })
            }
            Ok(_) => unreachable!("a checkpoint op records a checkpoint"),
            Err(e) => Err(self.tenant_error(e)),
        })
    }

    /// Ends the lease holder's transaction: committed, or rolled back per its
    /// policy. Then runs the writes that waited.
    async fn finish(
        &mut self,
        myself: &ActorRef<Envelope<M>>,
        transaction: TransactionId,
        failed: bool,
        policy: &RollbackPolicy,
    ) -> Result<Option<RollbackOutcome>, Panicked> {
        let mut rollback = None;
        let outcome = if failed {
            let target = self.timeline.transaction_target(transaction, policy);
            match target {
                Ok(target) => match self.rollback(target, CommitMeta::default()).await? {
                    Ok(done) => {
                        rollback = Some(done);
                        TransactionOutcome::RolledBack
                    }
                    Err(_) => TransactionOutcome::Failed,
                },
                Err(_) => TransactionOutcome::Failed,
            }
        } else {
            TransactionOutcome::Committed
        };
        let finished = self.run(TimelineOp::FinishTransaction {
            transaction,
            outcome,
        });
        match self.commit().await {
            Ok(()) => {
                if let Ok(Executed::Finished(pruned)) = finished {
                    metrics::pruned(&pruned);
                }
            }
            // The transaction stays open in the journal; recovery rolls it
            // back to its start.
            Err(e) => warn!(tenant = %self.shared.id, error = %e, "finishing a transaction"),
        }
        metrics::transaction(outcome);
        self.lease = None;
        self.resume_waiting(myself).await?;
        Ok(rollback)
    }
}

/// Errors of a transition before they get the tenant attached.
enum UpdateError {
    Core(rewind_core::Error),
    Refused(rewind_core::TenantId, crate::error::BoxError),
}

impl<E: Into<rewind_core::Error>> From<E> for UpdateError {
    fn from(e: E) -> Self {
        UpdateError::Core(e.into())
    }
}
