//! Building a transaction: named steps and a rollback policy.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rewind_core::{CommitMeta, InvalidInput, Model, RollbackPolicy, SnapshotName};

use super::report::TransactionReport;
use crate::error::{BoxError, Error};
use crate::tenant::handle::Tenant;
use crate::tenant::messages::UpdateFn;

type EffectFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'static>>;

/// What a step does.
pub enum StepAction<M: Model> {
    /// Apply this change.
    Change(M::Change),
    /// Compute a change from the current state (runs under `catch_unwind`).
    Compute(UpdateFn<M>),
    /// Run an async side effect that may fail; it changes no state. It runs
    /// on its own task, so a panic in it is caught and it is cancelled when
    /// the step times out.
    Effect(Box<dyn FnOnce(M) -> EffectFuture + Send + 'static>),
}

impl<M: Model> std::fmt::Debug for StepAction<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepAction::Change(c) => f.debug_tuple("Change").field(c).finish(),
            StepAction::Compute(_) => f.write_str("Compute(..)"),
            StepAction::Effect(_) => f.write_str("Effect(..)"),
        }
    }
}

pub(crate) struct Step<M: Model> {
    pub(crate) name: SnapshotName,
    pub(crate) action: StepAction<M>,
}

/// The steps of a transaction, its rollback policy and step timeout.
///
/// Step names become checkpoint names: each must be a valid, unique
/// [`SnapshotName`] other than `start` (the checkpoint taken before the
/// first step). Invalid names are reported when the plan is run.
pub struct TransactionPlan<M: Model> {
    pub(crate) steps: Vec<Step<M>>,
    pub(crate) policy: RollbackPolicy,
    pub(crate) step_timeout: Option<Duration>,
    /// Who runs it and why: recorded on every revision it makes (steps and
    /// the rollback after a failure).
    pub(crate) meta: CommitMeta,
    invalid: Option<InvalidInput>,
}

impl<M: Model> Default for TransactionPlan<M> {
    fn default() -> Self {
        TransactionPlan {
            steps: Vec::new(),
            policy: RollbackPolicy::Start,
            step_timeout: None,
            meta: CommitMeta::default(),
            invalid: None,
        }
    }
}

impl<M: Model> TransactionPlan<M> {
    /// An empty plan rolling back to the start on failure.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a step of any kind.
    pub fn action(mut self, name: impl AsRef<str>, action: StepAction<M>) -> Self {
        match SnapshotName::new(name) {
            Ok(name) => self.steps.push(Step { name, action }),
            Err(e) => {
                self.invalid.get_or_insert(e);
            }
        }
        self
    }

    /// Adds a step applying `change`.
    pub fn step(self, name: impl AsRef<str>, change: M::Change) -> Self {
        self.action(name, StepAction::Change(change))
    }

    /// Adds a step computing its change from the current state.
    ///
    /// A panic in `f` is caught: the step fails with
    /// [`FailureReason::Panic`](crate::FailureReason::Panic) and the
    /// transaction rolls back by its policy. Rust's default panic hook still
    /// prints the panic to stderr first; a service that wants that quiet
    /// installs its own hook once at start (`std::panic::set_hook`), for
    /// example one that logs through `tracing` instead.
    pub fn compute<F, E>(self, name: impl AsRef<str>, f: F) -> Self
    where
        F: FnOnce(&M) -> Result<M::Change, E> + Send + 'static,
        E: Into<BoxError>,
    {
        self.action(
            name,
            StepAction::Compute(Box::new(move |state| f(state).map_err(Into::into))),
        )
    }

    /// Adds an async side effect that may fail (sending notifications, say).
    /// It receives the current state and changes nothing. A panic in it is
    /// caught as in [`compute`](Self::compute) (and printed by the default
    /// panic hook, unless the service installed its own); past the step
    /// timeout it fails with `FailureReason::Timeout`.
    pub fn effect<F, Fut, E>(self, name: impl AsRef<str>, f: F) -> Self
    where
        F: FnOnce(M) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.action(
            name,
            StepAction::Effect(Box::new(move |state| {
                Box::pin(async move { f(state).await.map_err(Into::into) })
            })),
        )
    }

    /// Where to roll back when a step fails (default: the start).
    pub fn on_failure(mut self, policy: RollbackPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Author and message recorded on every revision the transaction makes:
    /// its steps, and the rollback if a step fails.
    pub fn meta(mut self, meta: CommitMeta) -> Self {
        self.meta = meta;
        self
    }

    /// Limit on each step (default: the tenant's `step_timeout`).
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.step_timeout = Some(timeout);
        self
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the plan has no step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Checks names: valid, unique, not `start`; a named rollback checkpoint
    /// must be one of the steps.
    pub(crate) fn validate(&self) -> Result<(), InvalidInput> {
        if let Some(e) = &self.invalid {
            return Err(e.clone());
        }
        let mut seen = std::collections::BTreeSet::new();
        for step in &self.steps {
            if step.name.as_str() == rewind_core::START_CHECKPOINT {
                return Err(InvalidInput::ReservedName {
                    name: step.name.clone(),
                    reason: "'start' names the checkpoint taken before the first step",
                });
            }
            if !seen.insert(step.name.clone()) {
                return Err(InvalidInput::Config(format!(
                    "step name '{}' is used twice in the transaction",
                    step.name
                )));
            }
        }
        if let RollbackPolicy::Checkpoint(name) = &self.policy {
            if name.as_str() != rewind_core::START_CHECKPOINT && !seen.contains(name) {
                return Err(InvalidInput::Config(format!(
                    "rollback checkpoint '{name}' is not a step of the transaction"
                )));
            }
        }
        Ok(())
    }
}

/// A transaction being built for one tenant; [`run`](Self::run) it.
pub struct TransactionBuilder<M: Model> {
    tenant: Tenant<M>,
    plan: TransactionPlan<M>,
}

impl<M: Model> TransactionBuilder<M> {
    pub(crate) fn new(tenant: Tenant<M>) -> Self {
        TransactionBuilder {
            tenant,
            plan: TransactionPlan::new(),
        }
    }

    /// See [`TransactionPlan::step`].
    pub fn step(mut self, name: impl AsRef<str>, change: M::Change) -> Self {
        self.plan = self.plan.step(name, change);
        self
    }

    /// See [`TransactionPlan::compute`].
    pub fn compute<F, E>(mut self, name: impl AsRef<str>, f: F) -> Self
    where
        F: FnOnce(&M) -> Result<M::Change, E> + Send + 'static,
        E: Into<BoxError>,
    {
        self.plan = self.plan.compute(name, f);
        self
    }

    /// See [`TransactionPlan::effect`].
    pub fn effect<F, Fut, E>(mut self, name: impl AsRef<str>, f: F) -> Self
    where
        F: FnOnce(M) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.plan = self.plan.effect(name, f);
        self
    }

    /// See [`TransactionPlan::on_failure`].
    pub fn on_failure(mut self, policy: RollbackPolicy) -> Self {
        self.plan = self.plan.on_failure(policy);
        self
    }

    /// Author and message recorded on every revision the transaction makes
    /// (see [`TransactionPlan::meta`]).
    pub fn meta(mut self, meta: CommitMeta) -> Self {
        self.plan = self.plan.meta(meta);
        self
    }

    /// See [`TransactionPlan::step_timeout`].
    pub fn step_timeout(mut self, timeout: Duration) -> Self {
        self.plan = self.plan.step_timeout(timeout);
        self
    }

    /// Runs the transaction: `Ok` only when every step committed, so `?`
    /// passes a failure on. A step that failed is
    /// [`Error::TransactionFailed`], carrying the report (which step, why,
    /// the rollback made); any other `Err` means the transaction could not
    /// run (invalid plan, tenant unavailable, lease timeout) and changed
    /// nothing. [`run_report`](Self::run_report) answers the report
    /// whatever the outcome.
    ///
    /// ```
    /// # use rewind_core::{Doc, Patch, TransactionOutcome};
    /// # use rewind_runtime::{Error, ErrorKind, Runtime};
    /// # use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let runtime = Runtime::<Doc>::start().await?;
    /// let tenant = runtime.create_tenant("shop", Doc::object()).await?;
    /// let failed = tenant
    ///     .transaction()
    ///     .step("price", Patch::from_json(&json!([{"op": "add", "path": "/p", "value": 5}]))?)
    ///     .effect("charge", |_: Doc| async { Err::<(), _>("card declined") })
    ///     .run()
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(failed.kind(), ErrorKind::TransactionFailed);
    /// let report = failed.transaction_report().expect("a failed transaction has a report");
    /// assert_eq!(report.outcome, TransactionOutcome::RolledBack);
    /// assert_eq!(tenant.current().to_json(), json!({}), "rolled back to the start");
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn run(self) -> Result<TransactionReport, Error> {
        self.tenant.run_transaction(self.plan).await
    }

    /// Runs the transaction and answers its report whatever the outcome:
    /// committed, rolled back or failed (read `report.outcome`). `Err`
    /// only when it could not run, as for [`run`](Self::run); never
    /// [`Error::TransactionFailed`].
    pub async fn run_report(self) -> Result<TransactionReport, Error> {
        self.tenant.run_transaction_report(self.plan).await
    }
}
