//! [`Runtime`]: starts the supervisor and hands out tenants.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef, RpcReplyPort};
use rewind_core::{Clock, CommitMeta, Doc, Model, Revision, SystemClock, TenantId};
use tokio::sync::oneshot;

use crate::config::{RestartIntensity, TenantConfig};
use crate::error::Error;
use crate::journal::{Journal, JournalError};
use crate::metrics;
use crate::supervisor::actor::{
    read_back, Counts, Initial, Registry, Residency, SupervisorActor, SupervisorArgs,
};
use crate::supervisor::links::DeleteOptions;
use crate::supervisor::messages::{Internal, InternalMsg, SupervisorMsg};
use crate::tenant::handle::Tenant;
use crate::tenant::shared::Journaling;

/// Default for [`RuntimeBuilder::image_every`].
pub const DEFAULT_IMAGE_EVERY: u64 = 1000;

/// What recovery from the journal did at start. Tenants are read back on
/// their first request unless [`RuntimeBuilder::eager_recovery`] is set:
/// then only `tenants` (found in the journal) and `elapsed` are filled, and
/// a tenant that cannot be read back answers `Unrecoverable` when it is
/// asked for.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Tenants restored (found, when they are read back on demand).
    pub tenants: usize,
    /// Journal entries replayed (after each tenant's newest image).
    pub entries: u64,
    /// Transactions a crash interrupted, rolled back to their start.
    pub interrupted_transactions: usize,
    /// Tenants that could not be restored, with why; they answer
    /// `Unrecoverable` and the other tenants serve normally.
    pub failures: Vec<(TenantId, JournalError)>,
    /// How long recovery took.
    pub elapsed: Duration,
}

/// A running rewind runtime: a supervisor and its tenants.
///
/// Cheap to clone; every clone drives the same runtime.
///
/// With a journal, tenants are *passivated*: one that no [`Tenant`] handle
/// holds and that was idle for its
/// [`passivate_after`](TenantConfig::passivate_after), or the least recently
/// used once more than [`max_active`](RuntimeBuilder::max_active) are
/// active, drops its timeline from memory; its next request reads it back
/// from its newest image and the entries after it, with the same
/// revisions, snapshots and answers. In memory mode nothing is passivated.
pub struct Runtime<M: Model = Doc> {
    supervisor: ActorRef<SupervisorMsg<M>>,
    registry: Arc<ArcSwap<Registry<M>>>,
    counts: Arc<Counts>,
    recovery: Arc<RecoveryReport>,
}

impl<M: Model> Clone for Runtime<M> {
    fn clone(&self) -> Self {
        Runtime {
            supervisor: self.supervisor.clone(),
            registry: Arc::clone(&self.registry),
            counts: Arc::clone(&self.counts),
            recovery: Arc::clone(&self.recovery),
        }
    }
}

/// Default for [`RuntimeBuilder::max_active`].
pub const DEFAULT_MAX_ACTIVE: usize = 100_000;
/// Default for [`RuntimeBuilder::stop_idle_actors_after`].
pub const DEFAULT_STOP_IDLE_AFTER: Duration = Duration::from_secs(10);
/// Default for [`RuntimeBuilder::timer_period`].
pub const DEFAULT_TIMER_PERIOD: Duration = Duration::from_secs(1);

/// Configures and starts a [`Runtime`].
pub struct RuntimeBuilder<M: Model = Doc> {
    defaults: TenantConfig,
    intensity: RestartIntensity,
    clock: Arc<dyn Clock>,
    journal: Option<Arc<dyn Journal>>,
    image_every: u64,
    residency: Residency,
    eager_recovery: bool,
    custom_checks: std::collections::HashMap<String, Arc<dyn crate::deploy::HealthCheck>>,
    check_hosts: crate::deploy::CheckHosts,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M: Model> Default for RuntimeBuilder<M> {
    fn default() -> Self {
        RuntimeBuilder {
            defaults: TenantConfig::default(),
            intensity: RestartIntensity::default(),
            clock: Arc::new(SystemClock),
            journal: None,
            image_every: DEFAULT_IMAGE_EVERY,
            residency: Residency {
                max_active: DEFAULT_MAX_ACTIVE,
                stop_idle_after: DEFAULT_STOP_IDLE_AFTER,
                timer_period: DEFAULT_TIMER_PERIOD,
            },
            eager_recovery: false,
            custom_checks: std::collections::HashMap::new(),
            check_hosts: crate::deploy::CheckHosts::Any,
            _model: std::marker::PhantomData,
        }
    }
}

impl<M: Model> RuntimeBuilder<M> {
    /// Configuration of tenants created without one.
    pub fn tenant_defaults(mut self, config: TenantConfig) -> Self {
        self.defaults = config;
        self
    }

    /// Restart intensity of every tenant.
    pub fn restart_intensity(mut self, intensity: RestartIntensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// The clock timelines read (default: the system clock). Tests inject a
    /// [`ManualClock`](rewind_core::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Makes every change durable in `journal` before it is acknowledged;
    /// tenants found in it are read back on their first request (or at
    /// start, with [`eager_recovery`](Self::eager_recovery)). Without a
    /// journal the runtime keeps everything in memory.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Stores an image of a tenant's timeline every this many journal
    /// entries (default [`DEFAULT_IMAGE_EVERY`]), so reading a tenant back
    /// replays at most that many entries.
    pub fn image_every(mut self, entries: u64) -> Self {
        self.image_every = entries.max(1);
        self
    }

    /// With a journal, past this many active tenants the least recently
    /// used one that no handle holds and that has nothing in progress is
    /// passivated (default [`DEFAULT_MAX_ACTIVE`]; at least 1), in
    /// O(log n). Tenants in use can push the count past it until they are
    /// done.
    pub fn max_active(mut self, tenants: usize) -> Self {
        self.residency.max_active = tenants.max(1);
        self
    }

    /// A tenant's actor stops after this long without a request (default
    /// [`DEFAULT_STOP_IDLE_AFTER`]); the tenant stays active and its next
    /// request starts a new actor.
    pub fn stop_idle_actors_after(mut self, idle: Duration) -> Self {
        self.residency.stop_idle_after = idle;
        self
    }

    /// Period of the runtime's one timer (default [`DEFAULT_TIMER_PERIOD`]),
    /// which stops idle actors, passivates idle tenants and takes interval
    /// auto snapshots: those happen within one period of being due.
    pub fn timer_period(mut self, period: Duration) -> Self {
        self.residency.timer_period = period.max(Duration::from_millis(1));
        self
    }

    /// Reads every tenant back at start instead of on its first request
    /// (default `false`). Start then takes time in proportion to the
    /// journal, and [`Runtime::recovery`] reports every tenant that could
    /// not be read back.
    pub fn eager_recovery(mut self, eager: bool) -> Self {
        self.eager_recovery = eager;
        self
    }

    /// Registers a custom health check under the name its spec gives
    /// (`CheckSpec::Custom { name }`), so that a deployment using it
    /// resumes after a restart. A check whose spec is not `Custom` is a
    /// built-in and needs no registration; it is ignored here.
    pub fn health_check(mut self, check: Arc<dyn crate::deploy::HealthCheck>) -> Self {
        if let rewind_core::deploy::CheckSpec::Custom { name } = check.spec() {
            self.custom_checks.insert(name, check);
        }
        self
    }

    /// Which hosts the built-in checks may fetch (default: any, for a
    /// program that writes its own URLs). A server taking checks from its
    /// clients restricts them, so a client cannot make it fetch an internal
    /// address (server-side request forgery).
    pub fn check_hosts(mut self, hosts: crate::deploy::CheckHosts) -> Self {
        self.check_hosts = hosts;
        self
    }

    /// Lists the tenants of the journal (if any), reading them back when
    /// [`eager_recovery`](Self::eager_recovery) is set, then starts the
    /// supervisor. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<Runtime<M>, Error> {
        self.defaults.validate()?;
        metrics::register_series();
        metrics::register_handles();
        let journaling = self.journal.map(|journal| Journaling {
            journal,
            image_every: self.image_every,
        });
        let started = Instant::now();
        let (initial, mut report) = match &journaling {
            Some(journaling) if self.eager_recovery => recover_all(journaling, &self.clock).await?,
            Some(journaling) => list_tenants(journaling).await?,
            None => (Vec::new(), RecoveryReport::default()),
        };
        report.elapsed = started.elapsed();
        let deployer = Arc::new(crate::deploy::Deployer::new(
            self.custom_checks,
            self.check_hosts,
            Arc::clone(&self.clock),
            journaling.as_ref().map(|j| Arc::clone(&j.journal)),
        ));
        let registry = Arc::new(ArcSwap::from_pointee(Registry::new()));
        let counts = Arc::new(Counts::default());
        let args = SupervisorArgs {
            registry: Arc::clone(&registry),
            counts: Arc::clone(&counts),
            defaults: self.defaults,
            intensity: self.intensity,
            residency: self.residency,
            clock: self.clock,
            journaling: journaling.clone(),
            deployer: Arc::clone(&deployer),
            initial,
        };
        let (supervisor, _) = Actor::spawn(None, SupervisorActor::new(), args)
            .await
            .map_err(|e| Error::Unavailable {
                tenant: TenantId::new("supervisor").expect("valid id"),
                reason: e.to_string(),
            })?;
        let runtime = Runtime {
            supervisor,
            registry,
            counts,
            recovery: Arc::new(report),
        };
        if let Some(journaling) = &journaling {
            runtime.resume_deployments(journaling, deployer).await;
        }
        Ok(runtime)
    }
}

fn journal_error(source: JournalError) -> Error {
    Error::Journal {
        tenant: TenantId::new("journal").expect("valid id"),
        source,
    }
}

/// The journal's live tenants, read on a blocking thread.
async fn live_tenants(journaling: &Journaling) -> Result<Vec<TenantId>, Error> {
    let journal = Arc::clone(&journaling.journal);
    tokio::task::spawn_blocking(move || journal.live_tenants())
        .await
        .map_err(|e| Error::Unavailable {
            tenant: TenantId::new("journal").expect("valid id"),
            reason: format!("listing the journal's tenants stopped: {e}"),
        })?
        .map_err(journal_error)
}

/// Lists the journal's tenants, to be read back on demand.
async fn list_tenants<M: Model>(
    journaling: &Journaling,
) -> Result<(Vec<Initial<M>>, RecoveryReport), Error> {
    let ids = live_tenants(journaling).await?;
    let report = RecoveryReport {
        tenants: ids.len(),
        ..RecoveryReport::default()
    };
    tracing::info!(
        tenants = report.tenants,
        "journal opened; tenants are read back on demand"
    );
    Ok((ids.into_iter().map(Initial::Passive).collect(), report))
}

/// Reads every tenant back from the journal.
async fn recover_all<M: Model>(
    journaling: &Journaling,
    clock: &Arc<dyn Clock>,
) -> Result<(Vec<Initial<M>>, RecoveryReport), Error> {
    let started = Instant::now();
    let ids = live_tenants(journaling).await?;
    let total = ids.len();
    let mut report = RecoveryReport::default();
    let mut initial = Vec::with_capacity(total);
    for (done, id) in ids.into_iter().enumerate() {
        match read_back::<M>(journaling, &id, Arc::clone(clock)).await {
            Ok(Some(tenant)) => {
                report.entries += tenant.replayed;
                report.interrupted_transactions += tenant.interrupted;
                initial.push(Initial::Active(id, Box::new(tenant)));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(tenant = %id, error = %e, "tenant not recovered");
                report.failures.push((id.clone(), e.clone()));
                initial.push(Initial::Unrecoverable(id, e));
            }
        }
        if (done + 1) % 100 == 0 || done + 1 == total {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                tenants = done + 1,
                total,
                entries = report.entries,
                entries_per_sec = (report.entries as f64 / secs) as u64,
                "recovering from the journal"
            );
        }
    }
    report.tenants = initial.len() - report.failures.len();
    metrics::recovered(report.tenants as u64, report.entries);
    tracing::info!(
        tenants = report.tenants,
        entries = report.entries,
        failures = report.failures.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovery finished"
    );
    Ok((initial, report))
}

/// The tenant with this id, read back first if it is passivated: what
/// [`Runtime::tenant`] does, for handles too (a fork finds its parent).
pub(crate) async fn find_tenant<M: Model>(
    registry: &ArcSwap<Registry<M>>,
    supervisor: &ActorRef<SupervisorMsg<M>>,
    id: TenantId,
) -> Result<Tenant<M>, Error> {
    // A tenant passivated again between its activation and this lookup
    // (only under heavy eviction) is asked for again.
    for _ in 0..3 {
        let Some(shared) = registry.load().get(&id).cloned() else {
            return Err(Error::TenantNotFound(id));
        };
        if shared.is_shut_down() {
            return Err(Error::ShuttingDown);
        }
        if let Some(handle) = Tenant::hold(Arc::clone(&shared)) {
            return Ok(handle);
        }
        shared.accepting()?;
        let (tx, rx) = oneshot::channel();
        supervisor
            .send_message(SupervisorMsg::Internal(Internal(InternalMsg::Activate {
                id: id.clone(),
                reply: tx.into(),
            })))
            .map_err(|_| Error::ShuttingDown)?;
        match rx.await.map_err(|_| Error::ShuttingDown)? {
            Err(Error::Unavailable { .. }) => continue,
            other => return other,
        }
    }
    Err(Error::Unavailable {
        tenant: id,
        reason: "it is passivated as fast as it is read back; raise max_active".into(),
    })
}

impl<M: Model> Runtime<M> {
    /// Reads back the tenants the journal marked as having a deployment in
    /// progress and resumes their monitors (in the background: a tenant
    /// that cannot be read back is logged, and the start goes on).
    async fn resume_deployments(
        &self,
        journaling: &Journaling,
        deployer: Arc<crate::deploy::Deployer>,
    ) {
        let journal = Arc::clone(&journaling.journal);
        let marked = tokio::task::spawn_blocking(move || journal.resume_marks()).await;
        let marked = match marked {
            Ok(Ok(marked)) => marked,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the journal's resume marks were not read; deployments in progress resume when their tenants are next read back");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "reading the journal's resume marks stopped");
                return;
            }
        };
        for id in marked {
            let runtime = self.clone();
            let deployer = Arc::clone(&deployer);
            tokio::spawn(async move {
                match runtime.tenant(id.as_str()).await {
                    Ok(tenant) => deployer.resume(tenant).await,
                    Err(Error::TenantNotFound(_)) => deployer.forget(&id).await,
                    Err(e) => {
                        tracing::error!(tenant = %id, error = %e, "a tenant with a deployment in progress was not read back; its deployment does not resume")
                    }
                }
            });
        }
    }

    /// A builder with default settings.
    pub fn builder() -> RuntimeBuilder<M> {
        RuntimeBuilder::default()
    }

    /// Starts a runtime with default settings.
    pub async fn start() -> Result<Runtime<M>, Error> {
        Self::builder().start().await
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg<M>,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.supervisor
            .send_message(build(tx.into()))
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }

    /// Creates a tenant holding `initial` at revision 0, with the default
    /// configuration. `TenantExists` if the id is taken.
    pub async fn create_tenant(&self, id: &str, initial: M) -> Result<Tenant<M>, Error> {
        self.create_tenant_with(TenantId::new(id)?, initial, None)
            .await
    }

    /// Creates a tenant with its own configuration (`None`: the defaults).
    pub async fn create_tenant_with(
        &self,
        id: TenantId,
        initial: M,
        config: Option<TenantConfig>,
    ) -> Result<Tenant<M>, Error> {
        self.create_tenant_with_meta(id, initial, config, CommitMeta::default())
            .await
    }

    /// [`create_tenant_with`](Self::create_tenant_with), recording who
    /// created the tenant and why on its revision 0.
    ///
    /// With an idempotency key in `meta`, a retry of a creation that
    /// happened (its answer lost, say) returns the tenant instead of
    /// `TenantExists`, while its revision 0 is retained and the key is
    /// younger than the tenant's [`IdempotencyWindow`](crate::IdempotencyWindow)
    /// allows; the same key with another request is `IdempotencyKeyReused`.
    pub async fn create_tenant_with_meta(
        &self,
        id: TenantId,
        initial: M,
        config: Option<TenantConfig>,
        meta: CommitMeta,
    ) -> Result<Tenant<M>, Error> {
        let key = meta.idempotency.clone();
        let created = self
            .ask(|reply| SupervisorMsg::CreateTenant {
                id,
                initial,
                config,
                meta,
                reply,
            })
            .await?;
        match (created, key) {
            (Err(Error::TenantExists(id)), Some(key)) => {
                let tenant = self.tenant(id.as_str()).await?;
                let first = tenant.timeline().revision_info(Revision(0)).cloned();
                let window = tenant.shared().config().idempotency;
                let age = tenant.shared().context.clock.now().as_unix_micros()
                    - first.as_ref().map_or(0, |info| info.at.as_unix_micros());
                let fresh = u128::try_from(age).unwrap_or(0) <= window.max_age.as_micros();
                match first.and_then(|info| info.meta.idempotency) {
                    Some(recorded) if fresh && recorded.key == key.key => {
                        if recorded.request == key.request {
                            Ok(tenant)
                        } else {
                            Err(Error::IdempotencyKeyReused {
                                tenant: id,
                                key: key.key.to_string(),
                            })
                        }
                    }
                    _ => Err(Error::TenantExists(id)),
                }
            }
            (created, _) => created,
        }
    }

    /// The tenant with this id. Lock-free when it is active; a passivated
    /// tenant is read back from the journal first (concurrent lookups share
    /// one activation). The handle holds it active until dropped. After
    /// [`shutdown`](Self::shutdown), `ShuttingDown`, as every other call.
    pub async fn tenant(&self, id: &str) -> Result<Tenant<M>, Error> {
        find_tenant(&self.registry, &self.supervisor, TenantId::new(id)?).await
    }

    /// Passivates the tenant now, if it can be: no handle holds it, no
    /// transaction or request is in progress, and the runtime has a journal.
    /// Returns whether it is passivated. Its next request reads it back.
    pub async fn passivate(&self, id: &str) -> Result<bool, Error> {
        let id = TenantId::new(id)?;
        self.ask(|reply| SupervisorMsg::Internal(Internal(InternalMsg::Passivate { id, reply })))
            .await?
    }

    /// What recovery from the journal did at start (empty without one).
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The tenant with this id, created with `initial()` and the default
    /// configuration if it does not exist yet.
    pub async fn tenant_or_create(
        &self,
        id: &str,
        initial: impl FnOnce() -> M,
    ) -> Result<Tenant<M>, Error> {
        match self.tenant(id).await {
            Err(Error::TenantNotFound(id)) => {
                match self.create_tenant_with(id, initial(), None).await {
                    Err(Error::TenantExists(id)) => self.tenant(id.as_str()).await,
                    other => other,
                }
            }
            found => found,
        }
    }

    /// Every tenant with its head revision, ordered by id (lock-free). A
    /// passivated tenant is not read back: it is listed with the revision
    /// it had when it was passivated, or `None` if it has not been active
    /// since the runtime started. Prefer [`tenants_page`](Self::tenants_page)
    /// with many tenants.
    pub fn tenants(&self) -> Vec<(TenantId, Option<Revision>)> {
        self.registry
            .load()
            .iter()
            .map(|(id, shared)| (id.clone(), shared.listed_revision()))
            .collect()
    }

    /// How many tenants the runtime holds, active or passivated: O(1),
    /// lock-free.
    pub fn tenant_count(&self) -> usize {
        self.registry.load().len()
    }

    /// Whether a tenant with this id exists (active or passivated), without
    /// reading it back.
    pub fn tenant_exists(&self, id: &TenantId) -> bool {
        self.registry.load().contains_key(id)
    }

    /// How many tenants are active (their timeline in memory): O(1).
    pub fn active_count(&self) -> usize {
        self.counts.active.load(Ordering::Relaxed)
    }

    /// Up to `limit` tenants in id order, starting after `after` (from the
    /// first when `None`), with their revisions (as for
    /// [`tenants`](Self::tenants): `None` for a passivated tenant not active
    /// since the start), and the cursor of the next
    /// page (`None` when this one reaches the end). Lock-free and O(log n +
    /// limit): each page reads one immutable registry, and a tenant
    /// created or deleted between pages is seen by the pages after the
    /// change, so paging covers every tenant that exists throughout exactly
    /// once.
    ///
    /// ```
    /// # use rewind_runtime::Runtime;
    /// # use rewind_core::Doc;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), rewind_runtime::Error> {
    /// let runtime = Runtime::<Doc>::start().await?;
    /// for id in ["a", "b", "c"] {
    ///     runtime.create_tenant(id, Doc::object()).await?;
    /// }
    /// let (page, next) = runtime.tenants_page(None, 2);
    /// assert_eq!(page.len(), 2);
    /// let (rest, end) = runtime.tenants_page(next.as_ref(), 2);
    /// assert_eq!((rest[0].0.as_str(), end), ("c", None));
    /// assert_eq!(runtime.tenant_count(), 3);
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn tenants_page(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> (Vec<(TenantId, Option<Revision>)>, Option<TenantId>) {
        use std::ops::Bound;
        let registry = self.registry.load();
        let start = match after {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Unbounded,
        };
        let mut range = registry.range((start, Bound::Unbounded));
        let page: Vec<_> = range
            .by_ref()
            .take(limit)
            .map(|(id, shared)| (id.clone(), shared.listed_revision()))
            .collect();
        let next = match (range.next(), page.last()) {
            (Some(_), Some((last, _))) => Some(last.clone()),
            _ => None,
        };
        (page, next)
    }

    /// Deletes a tenant once the requests already sent to it are handled
    /// — the safe default of [`delete_tenant_with`](Self::delete_tenant_with):
    /// a tenant with attached forks, protected snapshots or a deployment in
    /// progress is refused with [`Error::DeleteRefused`] naming them, and
    /// nothing is deleted.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), Error> {
        self.delete_tenant_with(id, DeleteOptions::default()).await
    }

    /// Deletes a tenant once the requests already sent to it are handled,
    /// destroying what `options` allow:
    ///
    /// - protected snapshots and a deployment in progress only with
    ///   `force` (protection promises a snapshot is deleted only once
    ///   unprotected: `force` is that promise waived);
    /// - attached forks are never deleted, but a parent with some is
    ///   deleted only with `detach_forks`: they live on, detached
    ///   (promoting one is refused with `ForkDetached`).
    ///
    /// Otherwise [`Error::DeleteRefused`] lists all that stands in the way
    /// and nothing is deleted. A passivated tenant and its recorded forks
    /// are read back to check. A tenant that cannot be read back
    /// (unrecoverable, or failed past its restart intensity) is deleted
    /// without the check: nothing of it can be read or protected.
    ///
    /// ```
    /// # use rewind_core::{Doc, NamedOptions, SnapshotName};
    /// # use rewind_runtime::{DeleteOptions, Error, Runtime};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = Runtime::<Doc>::start().await?;
    /// let shop = runtime.create_tenant("shop", Doc::object()).await?;
    /// let keep = NamedOptions { protected: true, ..NamedOptions::default() };
    /// shop.snapshot_with(SnapshotName::new("keep")?, keep).await?;
    /// drop(shop);
    /// let Err(Error::DeleteRefused(refusal)) = runtime.delete_tenant("shop").await else {
    ///     panic!("a protected snapshot refuses the deletion");
    /// };
    /// assert_eq!(refusal.protected_snapshots[0].as_str(), "keep");
    /// runtime.delete_tenant_with("shop", DeleteOptions::default().force()).await?;
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_tenant_with(&self, id: &str, options: DeleteOptions) -> Result<(), Error> {
        let id = TenantId::new(id)?;
        self.ask(|reply| SupervisorMsg::DeleteTenant { id, options, reply })
            .await?
    }

    /// The supervisor, for actors that drive tenants by messages.
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg<M>> {
        self.supervisor.clone()
    }

    /// Graceful shutdown: new requests get `ShuttingDown`; requests already
    /// accepted (and writes waiting for a transaction) are handled; then the
    /// actors stop. Returns once they have stopped and dropped their state.
    /// The journal is then held only by this `Runtime`, its clones and its
    /// [`Tenant`] handles: drop them to release it (a journal that locks its
    /// file, like `SqliteJournal`, opens again after that). A second
    /// shutdown, while the first drains, gets `ShuttingDown` at once.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.ask(|reply| SupervisorMsg::Shutdown { reply }).await?;
        self.supervisor.get_cell().wait(None).await.ok();
        Ok(())
    }
}
