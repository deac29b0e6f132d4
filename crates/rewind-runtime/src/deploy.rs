//! Guarded deployments: apply a change behind a protected snapshot, watch
//! health checks for a window, then promote or roll back by themselves.
//!
//! [`Tenant::deploy`] returns a [`DeploymentBuilder`]. Its
//! [`start`](DeploymentBuilder::start) takes the protected `pre_<name>`
//! snapshot and applies the change in one journaled step, then spawns a
//! monitor: a tokio task that evaluates every [`HealthCheck`] each
//! interval and records each round in the tenant's timeline (journaled
//! too), where the decision is made. The first round too many fails or
//! errs rolls back to `pre_<name>` in the same step; a window that ends
//! healthy promotes (unprotects the snapshot).
//!
//! **Writes during the window** are allowed. A rollback restores the state
//! before the deployment, so it undoes them too; its diff lists them.
//!
//! **After a restart**, a deployment that was in its window resumes
//! monitoring for what remains of it (`ends_at` is wall-clock time): the
//! runtime reads the tenants the journal marked ([`Journal::resume_marks`])
//! at start and rebuilds their checks from the recorded [`CheckSpec`]s. A
//! window that ended while the process was down is promoted at once,
//! without a measurement; a check the runtime cannot rebuild (a custom
//! check not registered with [`RuntimeBuilder::health_check`]) errs every
//! round, so the deployment rolls back after `error_limit` of them.
//!
//! [`Journal::resume_marks`]: crate::journal::Journal::resume_marks
//! [`RuntimeBuilder::health_check`]: crate::RuntimeBuilder::health_check

mod checks;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rewind_core::deploy::{
    CheckResult, CheckSpec, DeployChange, DeploymentEnded, DeploymentId, DeploymentInfo,
    DeploymentSpec, FinishAction, Observation,
};
use rewind_core::{Clock, CommitMeta, Model, SnapshotName, TenantId};
use tokio::task::JoinHandle;

pub use checks::{CheckHosts, HttpCheck, PrometheusCheck};

use crate::error::Error;
use crate::journal::{Journal, JournalError};
use crate::tenant::handle::Tenant;

/// What one evaluation of a check found.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckOutcome {
    /// Healthy, with the value measured if there is one.
    Pass {
        /// The value measured.
        value: Option<f64>,
    },
    /// Unhealthy: counts towards `failure_limit`.
    Fail {
        /// Why, for the measurement and the rollback's message.
        reason: String,
        /// The value measured.
        value: Option<f64>,
    },
    /// Could not tell (unreachable, timed out, no data): counts towards
    /// `error_limit` in a row.
    Error {
        /// What went wrong.
        reason: String,
    },
}

/// The future a [`HealthCheck`] returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckOutcome> + Send + 'a>>;

/// A health check a deployment evaluates every interval.
///
/// Built in: [`PrometheusCheck`] and [`HttpCheck`]. Anything else
/// implements it; for such a check to resume after a restart, register it
/// with [`RuntimeBuilder::health_check`](crate::RuntimeBuilder::health_check)
/// under the name its [`spec`](Self::spec) gives.
///
/// ```
/// use rewind_runtime::deploy::{CheckFuture, CheckOutcome, HealthCheck};
/// use rewind_core::deploy::CheckSpec;
///
/// struct QueueDepth;
///
/// impl HealthCheck for QueueDepth {
///     fn spec(&self) -> CheckSpec {
///         CheckSpec::Custom { name: "queue-depth".into() }
///     }
///     fn check(&self) -> CheckFuture<'_> {
///         Box::pin(async {
///             let depth = 12.0; // measure it here
///             if depth < 100.0 {
///                 CheckOutcome::Pass { value: Some(depth) }
///             } else {
///                 CheckOutcome::Fail { reason: "queue too deep".into(), value: Some(depth) }
///             }
///         })
///     }
/// }
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// The check as data: recorded with the deployment, and what its
    /// measurements are labelled by ([`CheckSpec::label`]).
    fn spec(&self) -> CheckSpec;

    /// Evaluates the check once. A call that takes longer than the
    /// deployment's interval counts as an error.
    fn check(&self) -> CheckFuture<'_>;
}

/// Runtime-wide deployment state: registered checks, allowed hosts, and
/// the monitors running.
pub(crate) struct Deployer {
    custom: HashMap<String, Arc<dyn HealthCheck>>,
    hosts: CheckHosts,
    clock: Arc<dyn Clock>,
    journal: Option<Arc<dyn Journal>>,
    /// Deployments a monitor of this runtime watches, by the tenant's
    /// incarnation too: a tenant force-deleted mid-deployment and created
    /// again numbers its deployments from 1 again, and the old monitor
    /// (ending at its next round) must not stand for the new one's.
    monitors: Mutex<HashSet<MonitorKey>>,
}

/// A watched deployment: tenant, its incarnation, deployment.
type MonitorKey = (TenantId, Option<rewind_core::Incarnation>, DeploymentId);

impl Deployer {
    pub(crate) fn new(
        custom: HashMap<String, Arc<dyn HealthCheck>>,
        hosts: CheckHosts,
        clock: Arc<dyn Clock>,
        journal: Option<Arc<dyn Journal>>,
    ) -> Self {
        Deployer {
            custom,
            hosts,
            clock,
            journal,
            monitors: Mutex::new(HashSet::new()),
        }
    }

    /// The check a recorded spec stands for, on resume.
    fn rebuild(&self, spec: &CheckSpec) -> Arc<dyn HealthCheck> {
        let missing = |reason: String| -> Arc<dyn HealthCheck> {
            Arc::new(Unavailable {
                spec: spec.clone(),
                reason,
            })
        };
        if let Err(e) = self.hosts.allows(spec) {
            return missing(e.to_string());
        }
        if let CheckSpec::Custom { name } = spec {
            return match self.custom.get(name) {
                Some(check) => Arc::clone(check),
                None => missing(format!(
                    "custom check '{name}' is not registered with this runtime \
                     (RuntimeBuilder::health_check)"
                )),
            };
        }
        built_in(spec).unwrap_or_else(|| missing("an unknown kind of check".into()))
    }

    /// Sets or clears the tenant's resume mark, on a blocking thread.
    async fn mark(&self, tenant: &TenantId, marked: bool) -> Result<(), Error> {
        let Some(journal) = self.journal.clone() else {
            return Ok(());
        };
        let id = tenant.clone();
        let result = tokio::task::spawn_blocking(move || journal.set_resume_mark(&id, marked))
            .await
            .unwrap_or_else(|e| Err(JournalError::Storage(format!("marking stopped: {e}"))));
        match result {
            Ok(()) => Ok(()),
            Err(JournalError::Unsupported(_)) => {
                tracing::warn!(tenant = %tenant, "the journal keeps no resume marks: a deployment in progress resumes after a restart only when its tenant is next read back");
                Ok(())
            }
            Err(source) => Err(Error::journal(tenant, source)),
        }
    }

    /// Spawns the monitor of `deployment`, unless one of this runtime
    /// already watches it.
    fn spawn_monitor<M: Model>(
        self: &Arc<Self>,
        tenant: Tenant<M>,
        deployment: DeploymentId,
        checks: Vec<Arc<dyn HealthCheck>>,
    ) -> Option<JoinHandle<Result<DeploymentInfo, Error>>> {
        let key = (tenant.id().clone(), tenant.incarnation(), deployment);
        if !self.monitors().insert(key.clone()) {
            return None;
        }
        let deployer = Arc::clone(self);
        Some(tokio::spawn(async move {
            let result = monitor(&tenant, deployment, &checks, &deployer.clock).await;
            deployer.monitors().remove(&key);
            if result.as_ref().is_ok_and(|d| !d.is_open()) {
                if let Err(e) = deployer.mark(tenant.id(), false).await {
                    tracing::warn!(tenant = %tenant.id(), error = %e, "the resume mark of an ended deployment was not cleared; it is cleared at the next start");
                }
            }
            result
        }))
    }

    fn monitors(&self) -> std::sync::MutexGuard<'_, HashSet<MonitorKey>> {
        self.monitors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Clears the mark of a tenant that no longer exists.
    pub(crate) async fn forget(&self, tenant: &TenantId) {
        if let Err(e) = self.mark(tenant, false).await {
            tracing::warn!(tenant = %tenant, error = %e, "the resume mark of a deleted tenant was not cleared");
        }
    }

    /// Resumes the open deployment of `tenant`, if it has one; clears its
    /// mark otherwise.
    pub(crate) async fn resume<M: Model>(self: &Arc<Self>, tenant: Tenant<M>) {
        let open = tenant.timeline().open_deployment().cloned();
        match open {
            Some(deployment) => {
                let checks = deployment
                    .spec
                    .checks
                    .iter()
                    .map(|spec| self.rebuild(spec))
                    .collect();
                tracing::info!(tenant = %tenant.id(), deployment = %deployment.id, name = %deployment.spec.name, "resuming a deployment in progress");
                self.spawn_monitor(tenant, deployment.id, checks);
            }
            None => {
                if let Err(e) = self.mark(tenant.id(), false).await {
                    tracing::warn!(tenant = %tenant.id(), error = %e, "a stale resume mark was not cleared");
                }
            }
        }
    }
}

/// The built-in check a spec describes (`None` for a custom one).
pub fn built_in(spec: &CheckSpec) -> Option<Arc<dyn HealthCheck>> {
    match spec {
        CheckSpec::Prometheus {
            url,
            query,
            condition,
        } => Some(Arc::new(PrometheusCheck::new(
            url.clone(),
            query.clone(),
            *condition,
        ))),
        CheckSpec::Http { url, expect_status } => {
            Some(Arc::new(HttpCheck::new(url.clone(), *expect_status)))
        }
        CheckSpec::Custom { .. } => None,
    }
}

/// A check that cannot run here: errs every round with why.
struct Unavailable {
    spec: CheckSpec,
    reason: String,
}

impl HealthCheck for Unavailable {
    fn spec(&self) -> CheckSpec {
        self.spec.clone()
    }

    fn check(&self) -> CheckFuture<'_> {
        let reason = self.reason.clone();
        Box::pin(async move { CheckOutcome::Error { reason } })
    }
}

/// Evaluates every check once, concurrently, each bounded by `timeout`.
async fn measure(checks: &[Arc<dyn HealthCheck>], timeout: Duration) -> Vec<Observation> {
    let mut set = tokio::task::JoinSet::new();
    for (index, check) in checks.iter().enumerate() {
        let check = Arc::clone(check);
        set.spawn(async move {
            let outcome = match tokio::time::timeout(timeout, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => CheckOutcome::Error {
                    reason: format!(
                        "no answer within {}",
                        rewind_core::deploy::format_duration(timeout)
                    ),
                },
            };
            (index, observation(&check.spec(), outcome))
        });
    }
    let mut round: Vec<Option<Observation>> = vec![None; checks.len()];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((index, observation)) => round[index] = Some(observation),
            Err(e) => tracing::error!(error = %e, "a health check panicked"),
        }
    }
    round
        .into_iter()
        .zip(checks)
        .map(|(observation, check)| {
            observation.unwrap_or_else(|| Observation {
                check: check.spec().label(),
                result: CheckResult::Error,
                value: None,
                reason: Some("the check panicked".into()),
            })
        })
        .collect()
}

fn observation(spec: &CheckSpec, outcome: CheckOutcome) -> Observation {
    let check = spec.label();
    match outcome {
        CheckOutcome::Pass { value } => Observation {
            check,
            result: CheckResult::Pass,
            value,
            reason: None,
        },
        CheckOutcome::Fail { reason, value } => Observation {
            check,
            result: CheckResult::Fail,
            value,
            reason: Some(reason),
        },
        CheckOutcome::Error { reason } => Observation {
            check,
            result: CheckResult::Error,
            value: None,
            reason: Some(reason),
        },
    }
}

/// Watches one deployment until it ends: a round every interval for what
/// remains of the window, then promotion. Returns the deployment as it
/// ended, or as it stands when this runtime stopped serving the tenant.
async fn monitor<M: Model>(
    tenant: &Tenant<M>,
    id: DeploymentId,
    checks: &[Arc<dyn HealthCheck>],
    clock: &Arc<dyn Clock>,
) -> Result<DeploymentInfo, Error> {
    let current = |tenant: &Tenant<M>| {
        tenant.deployment(id).ok_or_else(|| {
            Error::core(
                tenant.id(),
                rewind_core::TimelineError::DeploymentNotFound(id),
            )
        })
    };
    let deployment = current(tenant)?;
    let interval = deployment.spec.interval();
    let left_us = deployment.ends_at.as_unix_micros() - clock.now().as_unix_micros();
    let left = Duration::from_micros(u64::try_from(left_us).unwrap_or(0));
    // A round at every interval up to the end of the window (the last may
    // fall a moment past it when time went on since the start). Without
    // checks there is nothing to measure: the window is a bake time.
    let rounds = if checks.is_empty() {
        tokio::time::sleep(left).await;
        tenant.shared().accepting()?;
        0
    } else {
        left.as_micros().div_ceil(interval.as_micros().max(1)) as u64
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..rounds {
        ticks.tick().await;
        if !current(tenant)?.is_open() {
            return current(tenant);
        }
        // Deleted, failed, or its runtime shut down: the next runtime to
        // read the tenant back resumes the deployment.
        tenant.shared().accepting()?;
        let round = measure(checks, interval).await;
        match tenant.record_measurements(id, round).await {
            Ok(Some(ended)) => return Ok(ended.deployment),
            Ok(None) => {}
            Err(e) if stops_monitoring(&e) => return current(tenant),
            Err(e) => {
                tracing::warn!(tenant = %tenant.id(), deployment = %id, error = %e, "a round of measurements was not recorded");
                if matches!(
                    e.kind(),
                    crate::ErrorKind::Unavailable | crate::ErrorKind::Journal
                ) {
                    return Err(e);
                }
            }
        }
    }
    let action = FinishAction::Promote {
        reason: "the window ended healthy".into(),
    };
    match tenant.finish_deployment(id, action).await {
        Ok(ended) => Ok(ended.deployment),
        Err(e) if stops_monitoring(&e) => current(tenant),
        Err(e) => Err(e),
    }
}

/// The deployment ended by other means (abort, promote, a later round).
fn stops_monitoring(error: &Error) -> bool {
    matches!(
        error.timeline_error(),
        Some(
            rewind_core::TimelineError::DeploymentFinished { .. }
                | rewind_core::TimelineError::DeploymentNotFound(_)
        )
    )
}

/// Builds a guarded deployment; see [`Tenant::deploy`].
#[must_use = "a deployment starts with .start() or .run()"]
pub struct DeploymentBuilder<M: Model> {
    tenant: Tenant<M>,
    change: DeployChange<M>,
    name: Option<String>,
    checks: Vec<Arc<dyn HealthCheck>>,
    interval: Duration,
    window: Duration,
    failure_limit: u32,
    error_limit: u32,
    meta: CommitMeta,
}

impl<M: Model> DeploymentBuilder<M> {
    pub(crate) fn new(tenant: Tenant<M>, change: DeployChange<M>) -> Self {
        DeploymentBuilder {
            tenant,
            change,
            name: None,
            checks: Vec::new(),
            interval: Duration::from_secs(60),
            window: Duration::from_secs(300),
            failure_limit: 0,
            error_limit: 4,
            meta: CommitMeta::default(),
        }
    }

    /// The deployment's name (required); its snapshot is `pre_<name>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a check evaluated every interval.
    pub fn check(mut self, check: impl HealthCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a shared check.
    pub fn check_arc(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Time between rounds (default 60 s, like Flagger's).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// How long to watch (default 5 min).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Failed measurements tolerated (default 0: the first failure rolls
    /// back).
    pub fn failure_limit(mut self, limit: u32) -> Self {
        self.failure_limit = limit;
        self
    }

    /// Errors of one check tolerated in a row (default 4).
    pub fn error_limit(mut self, limit: u32) -> Self {
        self.error_limit = limit;
        self
    }

    /// Author and message of the deployed revision.
    pub fn meta(mut self, meta: CommitMeta) -> Self {
        self.meta = meta;
        self
    }

    /// The spec this builder describes, validated.
    fn spec(&self) -> Result<DeploymentSpec, Error> {
        let name = self.name.as_deref().ok_or_else(|| {
            Error::Invalid(rewind_core::InvalidInput::Config(
                "a deployment needs a name (.name(\"v2.0.0\"))".into(),
            ))
        })?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let spec = DeploymentSpec {
            name: SnapshotName::new(name)?,
            checks: self.checks.iter().map(|c| c.spec()).collect(),
            interval_ms: millis(self.interval),
            window_ms: millis(self.window),
            failure_limit: self.failure_limit,
            error_limit: self.error_limit,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Takes the protected `pre_<name>` snapshot, applies the change, and
    /// starts monitoring; returns once both are durable.
    ///
    /// Errors (nothing changed): no name or limits that cannot work
    /// (`Invalid`); a check URL to a host not allowed (`Invalid`); another
    /// deployment in progress or `pre_<name>` already taken (`Conflict`,
    /// `Exists`); a change the model refuses (`Rejected`).
    pub async fn start(self) -> Result<Deployment<M>, Error> {
        let spec = self.spec()?;
        let deployer = Arc::clone(&self.tenant.shared().context.deployer);
        for check in &spec.checks {
            deployer.hosts.allows(check)?;
        }
        if let Some(open) = self.tenant.timeline().open_deployment() {
            return Err(Error::core(
                self.tenant.id(),
                rewind_core::TimelineError::DeploymentRunning(open.id),
            ));
        }
        // Marked first: a crash after the start is durable finds the mark.
        deployer.mark(self.tenant.id(), true).await?;
        let started = self
            .tenant
            .request(|reply| crate::TenantMsg::StartDeployment {
                spec,
                change: self.change,
                meta: self.meta,
                reply,
            })
            .await;
        let started = match started {
            Ok(started) => started,
            Err(e) => {
                if self.tenant.timeline().open_deployment().is_none() {
                    let _ = deployer.mark(self.tenant.id(), false).await;
                }
                return Err(e);
            }
        };
        let id = started.deployment.id;
        let monitor = deployer.spawn_monitor(self.tenant.clone(), id, self.checks);
        Ok(Deployment {
            tenant: self.tenant,
            started: started.deployment,
            monitor,
        })
    }

    /// [`start`](Self::start), then waits for the deployment to end and
    /// returns it, with every measurement.
    pub async fn run(self) -> Result<DeploymentInfo, Error> {
        self.start().await?.wait().await
    }
}

/// A deployment that started; dropping it leaves the monitor running.
pub struct Deployment<M: Model> {
    tenant: Tenant<M>,
    started: DeploymentInfo,
    monitor: Option<JoinHandle<Result<DeploymentInfo, Error>>>,
}

impl<M: Model> std::fmt::Debug for Deployment<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("tenant", self.tenant.id())
            .field("id", &self.started.id)
            .finish_non_exhaustive()
    }
}

impl<M: Model> Deployment<M> {
    /// Its id within the tenant.
    pub fn id(&self) -> DeploymentId {
        self.started.id
    }

    /// The deployment as it started (monitoring, no measurement yet).
    pub fn started(&self) -> &DeploymentInfo {
        &self.started
    }

    /// The deployment as it stands now.
    pub fn info(&self) -> Option<DeploymentInfo> {
        self.tenant.deployment(self.started.id)
    }

    /// Rolls back to `pre_<name>` now.
    pub async fn abort(&self, reason: impl Into<String>) -> Result<DeploymentEnded, Error> {
        self.tenant
            .abort_deployment(self.started.id, reason.into())
            .await
    }

    /// Ends the window now and keeps the change.
    pub async fn promote(&self) -> Result<DeploymentEnded, Error> {
        self.tenant.promote_deployment(self.started.id).await
    }

    /// Waits for the deployment to end; returns it with every measurement.
    pub async fn wait(mut self) -> Result<DeploymentInfo, Error> {
        match self.monitor.take() {
            Some(monitor) => monitor.await.map_err(|e| Error::Unavailable {
                tenant: self.tenant.id().clone(),
                reason: format!("the deployment monitor stopped: {e}"),
            })?,
            // Another monitor watches it: follow the timeline.
            None => loop {
                match self.info() {
                    Some(info) if info.is_open() => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Some(info) => return Ok(info),
                    None => {
                        return Err(Error::core(
                            self.tenant.id(),
                            rewind_core::TimelineError::DeploymentNotFound(self.started.id),
                        ))
                    }
                }
            },
        }
    }
}

impl<M: Model> Tenant<M> {
    /// Starts building a guarded deployment of `change`: name it, add checks, set
    /// the interval, window and limits, then [`start`](DeploymentBuilder::start)
    /// it, or [`run`](DeploymentBuilder::run) it to the end.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use rewind_core::{Doc, Patch};
    /// # use rewind_core::deploy::DeploymentStatus;
    /// # use rewind_runtime::Runtime;
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = Runtime::<Doc>::start().await?;
    /// let tenant = runtime.create_tenant("shop", Doc::object()).await?;
    /// let patch = Patch::from_json(&serde_json::json!([
    ///     {"op": "add", "path": "/version", "value": "2.0.0"}
    /// ]))?;
    /// let deployment = tenant
    ///     .deploy(patch)
    ///     .name("v2.0.0")
    ///     .interval(Duration::from_secs(10))
    ///     .window(Duration::from_secs(60))
    ///     .run()
    ///     .await?;
    /// assert_eq!(deployment.status, DeploymentStatus::Promoted);
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn deploy(&self, change: M::Change) -> DeploymentBuilder<M> {
        DeploymentBuilder::new(self.clone(), DeployChange::Change(change))
    }

    /// [`deploy`](Self::deploy) of a whole new state.
    pub fn deploy_state(&self, state: M) -> DeploymentBuilder<M> {
        DeploymentBuilder::new(self.clone(), DeployChange::State(state))
    }

    /// The kept deployments (the one in progress and the last 16 ended),
    /// oldest first.
    pub fn deployments(&self) -> Vec<DeploymentInfo> {
        self.timeline().deployments()
    }

    /// One kept deployment.
    pub fn deployment(&self, id: DeploymentId) -> Option<DeploymentInfo> {
        self.timeline().deployment(id).cloned()
    }

    /// Records one round of measurements of deployment `id`; the timeline
    /// rolls it back when they pass its limits. Monitors call it; it is
    /// public for programs that measure by themselves.
    pub async fn record_measurements(
        &self,
        id: DeploymentId,
        round: Vec<Observation>,
    ) -> Result<Option<DeploymentEnded>, Error> {
        self.request(|reply| crate::TenantMsg::RecordMeasurements {
            deployment: id,
            round,
            reply,
        })
        .await
    }

    /// Ends deployment `id`: promote or abort.
    pub async fn finish_deployment(
        &self,
        id: DeploymentId,
        action: FinishAction,
    ) -> Result<DeploymentEnded, Error> {
        self.request(|reply| crate::TenantMsg::FinishDeployment {
            deployment: id,
            action,
            reply,
        })
        .await
    }

    /// Rolls deployment `id` back to its `pre_<name>` now.
    pub async fn abort_deployment(
        &self,
        id: DeploymentId,
        reason: String,
    ) -> Result<DeploymentEnded, Error> {
        self.finish_deployment(id, FinishAction::Abort { reason })
            .await
    }

    /// Ends deployment `id`'s window now, keeping the change.
    pub async fn promote_deployment(&self, id: DeploymentId) -> Result<DeploymentEnded, Error> {
        let reason = "promoted on request before the window ended".to_owned();
        self.finish_deployment(id, FinishAction::Promote { reason })
            .await
    }
}
