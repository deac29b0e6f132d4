//! The transaction actor: runs a plan's steps against its tenant while the
//! tenant holds the write lease for it.
//!
//! User code (closures, effects) runs here, not in the tenant actor: a
//! compute closure under `catch_unwind`, an effect on its own task so a panic
//! or a timeout cannot take the transaction down with it. Whatever happens,
//! the lease is given back: by `Finish`, or by `Abandon` when this actor's
//! state is dropped unfinished.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rewind_core::{CommitMeta, Model, RollbackPolicy, TransactionId, TransactionOutcome};
use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};

use super::plan::{Step, StepAction, TransactionPlan};
use super::report::{FailureReason, StepFailure, StepRecord, TransactionReport};
use crate::error::{panic_message, Error};
use crate::tenant::handle::deliver;
use crate::tenant::messages::{Envelope, Finished, LeaseMsg};
use crate::tenant::shared::TenantShared;

pub(crate) struct TransactionActor<M>(PhantomData<fn() -> M>);

impl<M> TransactionActor<M> {
    pub(crate) fn new() -> Self {
        TransactionActor(PhantomData)
    }
}

pub(crate) struct TransactionArgs<M: Model> {
    pub(crate) shared: Arc<TenantShared<M>>,
    pub(crate) transaction: TransactionId,
    pub(crate) plan: TransactionPlan<M>,
    pub(crate) step_timeout: Duration,
    pub(crate) reply: RpcReplyPort<Result<TransactionReport, Error>>,
}

pub(crate) struct Run;

pub(crate) struct TransactionState<M: Model> {
    args: Option<TransactionArgs<M>>,
    guard: LeaseGuard<M>,
}

/// Gives the lease back if the actor stops before finishing.
struct LeaseGuard<M: Model> {
    shared: Arc<TenantShared<M>>,
    transaction: TransactionId,
    policy: RollbackPolicy,
    meta: CommitMeta,
    finished: bool,
}

impl<M: Model> Drop for LeaseGuard<M> {
    fn drop(&mut self) {
        if !self.finished {
            if let Ok(Some(actor)) = self.shared.route_lease() {
                let _ = actor.send_message(Envelope::Lease(LeaseMsg::Abandon {
                    transaction: self.transaction,
                    policy: self.policy.clone(),
                    meta: self.meta.clone(),
                }));
            }
        }
    }
}

impl<M: Model> Actor for TransactionActor<M> {
    type Msg = Run;
    type State = TransactionState<M>;
    type Arguments = TransactionArgs<M>;

    async fn pre_start(
        &self,
        myself: ActorRef<Run>,
        args: TransactionArgs<M>,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_message(Run)?;
        Ok(TransactionState {
            guard: LeaseGuard {
                shared: Arc::clone(&args.shared),
                transaction: args.transaction,
                policy: args.plan.policy.clone(),
                meta: args.plan.meta.clone(),
                finished: false,
            },
            args: Some(args),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Run>,
        _run: Run,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(args) = state.args.take() {
            let reply = args.reply;
            let result = run(
                &args.shared,
                args.transaction,
                args.plan,
                args.step_timeout,
                &mut state.guard,
            )
            .await;
            let _ = reply.send(result);
        }
        myself.stop(None);
        Ok(())
    }
}

async fn call<M: Model, T: Send + 'static>(
    shared: &TenantShared<M>,
    build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> LeaseMsg<M>,
) -> Result<T, Error> {
    let (tx, rx) = oneshot::channel();
    deliver(shared, Envelope::Lease(build(tx.into())))
        .await
        .map_err(|(e, _)| e)?;
    rx.await.unwrap_or_else(|_| {
        Err(Error::Unavailable {
            tenant: shared.id.clone(),
            reason: "the tenant restarted before answering".into(),
        })
    })
}

async fn run<M: Model>(
    shared: &TenantShared<M>,
    transaction: TransactionId,
    plan: TransactionPlan<M>,
    step_timeout: Duration,
    guard: &mut LeaseGuard<M>,
) -> Result<TransactionReport, Error> {
    let policy = plan.policy.clone();
    let meta = plan.meta.clone();
    let mut steps = Vec::with_capacity(plan.steps.len());
    let mut failure = None;
    for (index, step) in plan.steps.into_iter().enumerate() {
        let name = step.name.clone();
        match run_step(shared, transaction, step, &meta, step_timeout).await {
            Ok(record) => steps.push(record),
            Err(reason) => {
                failure = Some(StepFailure {
                    index,
                    step: name,
                    reason,
                });
                break;
            }
        }
    }
    let failed = failure.is_some();
    let finished: Finished = call(shared, |reply| LeaseMsg::Finish {
        transaction,
        failed,
        policy,
        meta,
        reply,
    })
    .await?;
    guard.finished = true;
    let Finished {
        rollback,
        unchanged,
    } = finished;
    let outcome = match (failed, &rollback, unchanged) {
        (false, _, _) => TransactionOutcome::Committed,
        (true, Some(_), _) | (true, None, true) => TransactionOutcome::RolledBack,
        (true, None, false) => TransactionOutcome::Failed,
    };
    Ok(TransactionReport {
        transaction,
        outcome,
        steps,
        failure,
        rollback,
        unchanged,
    })
}

async fn run_step<M: Model>(
    shared: &TenantShared<M>,
    transaction: TransactionId,
    step: Step<M>,
    meta: &CommitMeta,
    step_timeout: Duration,
) -> Result<StepRecord, FailureReason> {
    let deadline = Instant::now() + step_timeout;
    let change = match step.action {
        StepAction::Change(change) => Some(change),
        StepAction::Compute(compute) => {
            // The lease is held, so the published head is the state the
            // change will apply to.
            let state = shared.read(|t| t.head().clone());
            match catch_unwind(AssertUnwindSafe(|| compute(&state))) {
                Ok(Ok(change)) => Some(change),
                Ok(Err(e)) => return Err(FailureReason::Error(e.to_string())),
                Err(panic) => return Err(FailureReason::Panic(panic_message(panic))),
            }
        }
        StepAction::Effect(effect) => {
            let state = shared.read(|t| t.head().clone());
            let mut task = tokio::spawn(effect(state));
            match timeout_at(deadline, &mut task).await {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => return Err(FailureReason::Error(e.to_string())),
                Ok(Err(join)) if join.is_panic() => {
                    return Err(FailureReason::Panic(panic_message(join.into_panic())))
                }
                Ok(Err(join)) => return Err(FailureReason::Error(join.to_string())),
                Err(_) => {
                    task.abort();
                    return Err(FailureReason::Timeout(step_timeout));
                }
            }
        }
    };
    let name = step.name;
    let request = call(shared, |reply| LeaseMsg::Step {
        transaction,
        step: name,
        change,
        meta: meta.clone(),
        reply,
    });
    match timeout_at(deadline, request).await {
        Ok(Ok(record)) => Ok(record),
        Ok(Err(e)) => Err(match e {
            Error::Panicked { message, .. } => FailureReason::Panic(message),
            other => FailureReason::Error(other.to_string()),
        }),
        Err(_) => Err(FailureReason::Timeout(step_timeout)),
    }
}
