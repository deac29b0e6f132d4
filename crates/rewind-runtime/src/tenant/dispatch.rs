//! Decoding one request: the typed op it runs on the working timeline, and
//! the answer it waits for in the open batch.
//!
//! Reads sent as messages are computed here too, in the actor's order, so a
//! read sent after a write sees it; like every answer they are released
//! once what ran before them is durable.

use ractor::RpcReplyPort;
use rewind_core::deploy::{DeployChange, DeploymentEnded};
use rewind_core::ops::{
    Apply, DeleteSnapshot, FinishDeployment, Promote, Protect, RecordFork, RecordMeasurements,
    Replace, Rollback, SnapshotAuto, SnapshotNamed, StartDeployment,
};
use rewind_core::{
    AutoTrigger, Commit, CommitMeta, Model, PolicyCheck, RollbackOutcome, RollbackTarget,
    SnapshotKind, SnapshotTaken, Timeline,
};
use tokio::time::Instant;
use tracing::debug_span;

use super::actor::{guarded, Panicked, TenantState};
use super::idempotency::{KeyIndex, Seen};
use super::lane::Queued;
use super::lease::StartTransaction;
use super::messages::{TenantMsg, WriteOptions};
use super::shared::Permit;
use crate::error::{BoxError, Error};
use crate::metrics::{self, Outcome};

/// Errors of a transition before they get the tenant attached.
enum UpdateError {
    Core(rewind_core::Error),
    Refused(BoxError),
}

impl<E: Into<rewind_core::Error>> From<E> for UpdateError {
    fn from(e: E) -> Self {
        UpdateError::Core(e.into())
    }
}

/// The op of a transition, built from the working timeline.
enum TransitionOp<M: Model> {
    Apply(Apply<M>),
    Replace(Replace<M>),
    Promote(Promote<M>),
}

impl<M: Model> TenantState<M> {
    pub(super) fn tenant_error(&self, source: impl Into<rewind_core::Error>) -> Error {
        Error::core(&self.shared.id, source)
    }

    fn check_expected(&self, options: &WriteOptions) -> Result<(), Error> {
        self.timeline
            .check_expected(options.expected_revision)
            .map_err(|mismatch| Error::RevisionMismatch {
                tenant: self.shared.id.clone(),
                expected: mismatch.expected,
                actual: mismatch.actual,
            })
    }

    /// The first change this actor applies is checked to round-trip through
    /// JSON, as the journal stores it (a no-op for `Doc`'s patches).
    fn check_first_change(&mut self, change: &M::Change) -> Result<(), Error> {
        if !self.change_checked {
            M::check_change_json(change).map_err(Error::Invalid)?;
            self.change_checked = true;
        }
        Ok(())
    }

    /// Runs one request into the open batch. A transaction is returned for
    /// the caller to start (it needs the journal to be settled first).
    pub(super) fn dispatch(
        &mut self,
        request: Queued<M>,
    ) -> Result<Option<StartTransaction<M>>, Panicked> {
        let Queued { msg, permit, .. } = request;
        match msg {
            TenantMsg::Apply {
                change,
                options,
                reply,
            } => match self.check_first_change(&change) {
                Err(e) => self.answer_later(reply, permit, Err(e), |_| {}),
                Ok(()) => self.transition(reply, permit, options, |_, meta| {
                    Ok(TransitionOp::Apply(Apply { change, meta }))
                })?,
            },
            TenantMsg::Replace {
                state,
                options,
                reply,
            } => match state.check_json() {
                // As at creation: a state that cannot round-trip is refused.
                Err(e) => self.answer_later(reply, permit, Err(Error::Invalid(e)), |_| {}),
                Ok(()) => self.transition(reply, permit, options, |_, meta| {
                    Ok(TransitionOp::Replace(Replace { state, meta }))
                })?,
            },
            TenantMsg::Update {
                update,
                options,
                reply,
            } => self.transition(reply, permit, options, |timeline, meta| {
                let change = update(timeline.head()).map_err(UpdateError::Refused)?;
                Ok(TransitionOp::Apply(Apply { change, meta }))
            })?,
            TenantMsg::Snapshot {
                name,
                options,
                reply,
            } => {
                let result = match name {
                    None => self.run(SnapshotAuto {
                        trigger: AutoTrigger::Requested,
                    }),
                    Some(name) => self.run(SnapshotNamed { name, options }),
                };
                let result = result.map_err(|e| self.tenant_error(e));
                let taken = result.as_ref().ok().cloned();
                let result = result.map(|taken| taken.snapshot);
                self.answer_later(reply, permit, result, move |ok| {
                    if let (true, Some(taken)) = (ok, taken) {
                        record_snapshot(taken);
                    }
                });
            }
            TenantMsg::Protect {
                name,
                protected,
                reply,
            } => {
                let result = self.run(Protect { name, protected });
                let result = result.map_err(|e| self.tenant_error(e));
                self.answer_later(reply, permit, result, |_| {});
            }
            TenantMsg::DeleteSnapshot { name, reply } => {
                let result = self.run(DeleteSnapshot { name });
                let result = result.map_err(|e| self.tenant_error(e));
                let kind = result.as_ref().map(|info| info.kind).ok();
                self.answer_later(reply, permit, result, move |ok| {
                    if let (true, Some(kind)) = (ok, kind) {
                        metrics::snapshot_deleted(kind);
                    }
                });
            }
            TenantMsg::Rollback {
                target,
                options,
                reply,
            } => {
                let result = match self.check_expected(&options) {
                    Err(e) => {
                        metrics::rollback(target.kind(), Outcome::Rejected, Default::default());
                        Err(e)
                    }
                    Ok(()) => match self.rollback(target, options.meta) {
                        Ok(result) => result,
                        Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                    },
                };
                self.answer_later(reply, permit, result, |_| {});
            }
            TenantMsg::RollbackDryRun { target, reply } => {
                let result = match guarded(|| self.timeline.rollback_dry_run(&target)) {
                    Ok(result) => result.map_err(|e| self.tenant_error(e)),
                    Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                };
                self.answer_later(reply, permit, result, |_| {});
            }
            TenantMsg::Read { at, reply } => {
                let result = self.timeline.state_at(&at);
                let result = result.map_err(|e| self.tenant_error(e));
                self.answer_later(reply, permit, result, |_| {});
            }
            TenantMsg::Diff { from, to, reply } => {
                let result = match guarded(|| self.timeline.diff(&from, &to)) {
                    Ok(result) => result.map_err(|e| self.tenant_error(e)),
                    Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                };
                self.answer_later(reply, permit, result, |_| {});
            }
            TenantMsg::History { limit, reply } => {
                let history = self.timeline.history().rev().take(limit).cloned().collect();
                self.answer_later(reply, permit, Ok(history), |_| {});
            }
            TenantMsg::Snapshots { reply } => {
                let snapshots = self.timeline.snapshots();
                self.answer_later(reply, permit, Ok(snapshots), |_| {});
            }
            TenantMsg::Revision { reply } => {
                let revision = self.timeline.revision();
                self.answer_later(reply, permit, Ok(revision), |_| {});
            }
            TenantMsg::StartDeployment {
                spec,
                change,
                meta,
                reply,
            } => {
                let checked = match &change {
                    DeployChange::Change(change) => self.check_first_change(change),
                    DeployChange::State(state) => state.check_json().map_err(Error::Invalid),
                };
                let result = match checked {
                    Err(e) => Err(e),
                    Ok(()) => match guarded(|| self.run(StartDeployment { spec, change, meta })) {
                        Ok(result) => result.map_err(|e| self.tenant_error(e)),
                        Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                    },
                };
                let taken = result.as_ref().ok().map(|started| started.snapshot.clone());
                self.answer_later(reply, permit, result, move |ok| {
                    if let (true, Some(taken)) = (ok, taken) {
                        record_snapshot(taken);
                    }
                });
            }
            TenantMsg::RecordMeasurements {
                deployment,
                round,
                reply,
            } => {
                let recorded = round.clone();
                let result = match guarded(|| self.run(RecordMeasurements { deployment, round })) {
                    Ok(result) => result.map_err(|e| self.tenant_error(e)),
                    Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                };
                let ended = result.as_ref().ok().cloned().flatten();
                let ok = result.is_ok();
                self.answer_later(reply, permit, result, move |durable| {
                    if durable && ok {
                        metrics::deployment_checks(&recorded);
                        if let Some(ended) = &ended {
                            record_deployment_end(ended);
                        }
                    }
                });
            }
            TenantMsg::FinishDeployment {
                deployment,
                action,
                reply,
            } => {
                let result = match guarded(|| self.run(FinishDeployment { deployment, action })) {
                    Ok(result) => result.map_err(|e| self.tenant_error(e)),
                    Err(panicked) => return Err(self.answer_panicked(reply, panicked)),
                };
                let ended = result.as_ref().ok().cloned();
                self.answer_later(reply, permit, result, move |durable| {
                    if let (true, Some(ended)) = (durable, &ended) {
                        record_deployment_end(ended);
                    }
                });
            }
            TenantMsg::RecordFork {
                fork,
                base_revision,
                fork_incarnation,
                reply,
            } => {
                let result = self.run(RecordFork {
                    fork,
                    base_revision,
                    fork_incarnation,
                });
                let result = result.map_err(|e| self.tenant_error(e));
                self.answer_later(reply, permit, result, |_| {});
            }
            TenantMsg::Promote {
                fork,
                parent_incarnation,
                fork_revision,
                promotion,
                options,
                reply,
            } => {
                if parent_incarnation != self.timeline.incarnation() {
                    // Fenced: the fork was made of another tenant of this
                    // name.
                    let error = Error::ForkDetached {
                        fork,
                        parent: self.shared.id.clone(),
                        why: crate::supervisor::links::Detached::ParentReplaced,
                    };
                    self.answer_later(reply, permit, Err(error), |_| {});
                } else {
                    self.transition(reply, permit, options, |_, meta| {
                        Ok(TransitionOp::Promote(Promote {
                            fork,
                            fork_revision,
                            promotion,
                            meta,
                        }))
                    })?
                }
            }
            TenantMsg::Transaction { plan, reply } => {
                return Ok(Some(StartTransaction {
                    plan,
                    reply,
                    _permit: permit,
                }))
            }
        }
        Ok(None)
    }

    /// A change that makes a new revision: check, build the op (user code,
    /// guarded), run it (the model's apply, guarded), take a policy snapshot
    /// if due. Answered once durable.
    fn transition(
        &mut self,
        reply: RpcReplyPort<Result<Commit, Error>>,
        permit: Option<Permit<M>>,
        options: WriteOptions,
        build: impl FnOnce(&Timeline<M>, CommitMeta) -> Result<TransitionOp<M>, UpdateError>,
    ) -> Result<(), Panicked> {
        let span =
            debug_span!("rewind.apply", tenant = %self.shared.id, revision = tracing::field::Empty);
        let started = Instant::now();
        match self.seen(&options.meta) {
            Seen::New => {}
            Seen::Replay(info) => {
                // The first attempt's answer, once what it is in is durable.
                let commit = Commit {
                    revision: info.revision,
                    at: info.at,
                };
                self.answer_later(reply, permit, Ok(commit), |_| {});
                return Ok(());
            }
            Seen::Reused => {
                let error = self.key_reused(&options.meta);
                metrics::transition(Outcome::Rejected, started.elapsed());
                self.answer_later(reply, permit, Err(error), |_| {});
                return Ok(());
            }
        }
        let key = options.meta.idempotency.clone();
        if let Err(e) = self.check_expected(&options) {
            metrics::transition(Outcome::Rejected, started.elapsed());
            self.answer_later(reply, permit, Err(e), |_| {});
            return Ok(());
        }
        let result = {
            let _entered = span.enter();
            guarded(|| {
                let committed = match build(&self.timeline, options.meta)? {
                    TransitionOp::Apply(op) => self.run(op)?,
                    TransitionOp::Replace(op) => self.run(op)?,
                    TransitionOp::Promote(op) => self.run(op)?,
                };
                Ok::<_, UpdateError>(committed)
            })
        };
        let result = match result {
            Ok(result) => result,
            Err(panicked) => {
                metrics::transition(Outcome::Failed, started.elapsed());
                return Err(self.answer_panicked(reply, panicked));
            }
        };
        match result {
            Ok(commit) => {
                span.record("revision", commit.revision.get());
                if let (Some(key), Some(keys)) = (&key, &mut self.keys) {
                    keys.record(key, commit.revision, &self.shared.config().idempotency);
                }
                self.policy_snapshot_after_commit();
                self.answer_later(reply, permit, Ok(commit), move |ok| {
                    let outcome = if ok { Outcome::Ok } else { Outcome::Failed };
                    metrics::transition(outcome, started.elapsed());
                });
            }
            Err(e) => {
                metrics::transition(Outcome::Rejected, started.elapsed());
                let error = match e {
                    UpdateError::Core(e) => self.tenant_error(e),
                    UpdateError::Refused(source) => Error::UpdateRefused {
                        tenant: self.shared.id.clone(),
                        source,
                    },
                };
                self.answer_later(reply, permit, Err(error), |_| {});
            }
        }
        Ok(())
    }

    /// What a write's idempotency key finds in the working timeline
    /// ([`Seen::New`] without a key).
    fn seen(&mut self, meta: &CommitMeta) -> Seen {
        let Some(key) = &meta.idempotency else {
            return Seen::New;
        };
        let window = self.shared.config().idempotency;
        let now = self.shared.context.clock.now();
        let timeline = &self.timeline;
        self.keys
            .get_or_insert_with(|| KeyIndex::build(timeline, &window, now))
            .look_up(timeline, key, &window, now)
    }

    fn key_reused(&self, meta: &CommitMeta) -> Error {
        Error::IdempotencyKeyReused {
            tenant: self.shared.id.clone(),
            key: meta
                .idempotency
                .as_ref()
                .map(|key| key.key.to_string())
                .unwrap_or_default(),
        }
    }

    /// Runs a rollback (the model's diff, guarded); metrics once durable.
    pub(super) fn rollback(
        &mut self,
        target: RollbackTarget,
        meta: CommitMeta,
    ) -> Result<Result<RollbackOutcome, Error>, Panicked> {
        let kind = target.kind();
        let span = debug_span!("rewind.rollback", tenant = %self.shared.id, target = kind.as_str(), revision = tracing::field::Empty);
        let started = Instant::now();
        let result = {
            let _entered = span.enter();
            guarded(|| self.run(Rollback { target, meta }))
        };
        let result = match result {
            Ok(result) => result,
            Err(panicked) => {
                metrics::rollback(kind, Outcome::Failed, started.elapsed());
                return Err(panicked);
            }
        };
        Ok(match result {
            Ok(outcome) => {
                span.record("revision", outcome.revision.get());
                let pruned = outcome.pruned;
                self.batch_done(move |ok| {
                    if ok {
                        metrics::snapshot_created(SnapshotKind::Auto);
                        metrics::pruned(&pruned);
                        metrics::rollback(kind, Outcome::Ok, started.elapsed());
                    } else {
                        metrics::rollback(kind, Outcome::Failed, started.elapsed());
                    }
                });
                Ok(outcome)
            }
            Err(e) => {
                metrics::rollback(kind, Outcome::Rejected, started.elapsed());
                Err(self.tenant_error(e))
            }
        })
    }

    /// Runs `done` with whether the open batch became durable.
    fn batch_done(&mut self, done: impl FnOnce(bool) + Send + 'static) {
        self.push_ack(Box::new(move |failure| done(failure.is_none())));
    }

    /// The policy's auto snapshot after a commit, when `every_revisions` is
    /// due.
    fn policy_snapshot_after_commit(&mut self) {
        if let Some(every_revisions) = self.shared.config().auto_snapshot.every_revisions {
            if self
                .timeline
                .policy_snapshot_due(PolicyCheck::Committed { every_revisions })
            {
                self.policy_snapshot();
            }
        }
    }

    /// Takes a policy auto snapshot; metrics once durable.
    pub(super) fn policy_snapshot(&mut self) {
        if let Ok(taken) = self.run(SnapshotAuto {
            trigger: AutoTrigger::Policy,
        }) {
            self.batch_done(move |ok| {
                if ok {
                    record_snapshot(taken);
                }
            });
        }
    }

    /// Answers `Panicked`. This actor fails right after; it first leaves
    /// routing, so a request the caller sends on seeing this answer waits
    /// for the restarted actor.
    /// Returns the panic, to pass on.
    pub(super) fn answer_panicked<T>(
        &self,
        reply: RpcReplyPort<Result<T, Error>>,
        panicked: Panicked,
    ) -> Panicked {
        self.shared
            .release_slot(self.actor, || super::shared::Slot::Restarting);
        let _ = reply.send(Err(Error::Panicked {
            tenant: self.shared.id.clone(),
            message: panicked.0.clone(),
        }));
        panicked
    }
}

/// Metrics of a deployment's end (and of the rollback it made).
fn record_deployment_end(ended: &DeploymentEnded) {
    metrics::deployment_ended(ended.deployment.status);
    if let Some(rollback) = &ended.deployment.rollback {
        metrics::snapshot_created(SnapshotKind::Auto);
        metrics::pruned(&rollback.pruned);
        metrics::rollback(
            rewind_core::TargetKind::Named,
            Outcome::Ok,
            Default::default(),
        );
    }
}

/// Metrics of a snapshot taken.
fn record_snapshot(taken: SnapshotTaken) {
    metrics::snapshot_created(taken.snapshot.kind);
    metrics::pruned(&taken.pruned);
}
