//! [`Runtime`]: starts the supervisor and hands out tenants.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef, RpcReplyPort};
use rewind_core::{Clock, CommitMeta, Doc, Model, Revision, SystemClock, TenantId};
use tokio::sync::oneshot;

use crate::config::{RestartIntensity, TenantConfig};
use crate::durability;
use crate::error::Error;
use crate::journal::{Journal, JournalError};
use crate::metrics;
use crate::supervisor::actor::{Registry, SupervisorActor, SupervisorArgs};
use crate::supervisor::messages::SupervisorMsg;
use crate::tenant::handle::Tenant;
use crate::tenant::shared::{Journaling, TenantShared};

/// Default for [`RuntimeBuilder::image_every`].
pub const DEFAULT_IMAGE_EVERY: u64 = 1000;

/// What recovery from the journal did at start.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Tenants restored.
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
pub struct Runtime<M: Model = Doc> {
    supervisor: ActorRef<SupervisorMsg<M>>,
    registry: Arc<ArcSwap<Registry<M>>>,
    unrecoverable: Arc<HashMap<TenantId, JournalError>>,
    recovery: Arc<RecoveryReport>,
}

impl<M: Model> Clone for Runtime<M> {
    fn clone(&self) -> Self {
        Runtime {
            supervisor: self.supervisor.clone(),
            registry: Arc::clone(&self.registry),
            unrecoverable: Arc::clone(&self.unrecoverable),
            recovery: Arc::clone(&self.recovery),
        }
    }
}

/// Configures and starts a [`Runtime`].
pub struct RuntimeBuilder<M: Model = Doc> {
    defaults: TenantConfig,
    intensity: RestartIntensity,
    clock: Arc<dyn Clock>,
    journal: Option<Arc<dyn Journal>>,
    image_every: u64,
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

    /// Makes every change durable in `journal` before it is acknowledged,
    /// and restores every tenant from it at start. Without a journal the
    /// runtime keeps everything in memory.
    pub fn journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Stores an image of a tenant's timeline every this many journal
    /// entries (default [`DEFAULT_IMAGE_EVERY`]), so recovery replays at most
    /// that many entries per tenant.
    pub fn image_every(mut self, entries: u64) -> Self {
        self.image_every = entries.max(1);
        self
    }

    /// Restores every tenant from the journal (if any), then starts the
    /// supervisor. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<Runtime<M>, Error> {
        self.defaults.validate()?;
        metrics::register_series();
        metrics::register_handles();
        let journaling = self.journal.map(|journal| Journaling {
            journal,
            image_every: self.image_every,
        });
        let (recovered, report) = match &journaling {
            Some(journaling) => recover_all(journaling, &self.clock).await?,
            None => (Vec::new(), RecoveryReport::default()),
        };
        let unrecoverable: Arc<HashMap<TenantId, JournalError>> =
            Arc::new(report.failures.iter().cloned().collect());
        let registry = Arc::new(ArcSwap::from_pointee(Registry::new()));
        let args = SupervisorArgs {
            registry: Arc::clone(&registry),
            defaults: self.defaults,
            intensity: self.intensity,
            clock: self.clock,
            journaling,
            recovered,
            unrecoverable: Arc::clone(&unrecoverable),
        };
        let (supervisor, _) = Actor::spawn(None, SupervisorActor::new(), args)
            .await
            .map_err(|e| Error::Unavailable {
                tenant: TenantId::new("supervisor").expect("valid id"),
                reason: e.to_string(),
            })?;
        Ok(Runtime {
            supervisor,
            registry,
            unrecoverable,
            recovery: Arc::new(report),
        })
    }
}

/// Reads every tenant back from the journal, on a blocking thread.
async fn recover_all<M: Model>(
    journaling: &Journaling,
    clock: &Arc<dyn Clock>,
) -> Result<(Vec<Arc<TenantShared<M>>>, RecoveryReport), Error> {
    let journal = Arc::clone(&journaling.journal);
    let clock = Arc::clone(clock);
    let started = Instant::now();
    let (restored, mut report) = tokio::task::spawn_blocking(move || {
        let tenants = journal.tenants().map_err(|source| Error::Journal {
            tenant: TenantId::new("journal").expect("valid id"),
            source,
        })?;
        let total = tenants.len();
        let mut report = RecoveryReport::default();
        let mut restored = Vec::new();
        for (done, id) in tenants.into_iter().enumerate() {
            match durability::recover::<M>(&*journal, &id, &clock) {
                Ok(Some(tenant)) => {
                    report.entries += tenant.replayed;
                    restored.push((id, tenant));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(tenant = %id, error = %e, "tenant not recovered");
                    report.failures.push((id, e));
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
        Ok::<_, Error>((restored, report))
    })
    .await
    .map_err(|e| Error::Unavailable {
        tenant: TenantId::new("journal").expect("valid id"),
        reason: format!("recovery stopped: {e}"),
    })??;
    let mut shared = Vec::with_capacity(restored.len());
    for (id, mut tenant) in restored {
        let mut seq = tenant.seq;
        let closing = durability::close_interrupted(&id, &mut tenant.timeline, &mut seq);
        match closing {
            Ok((0, _)) => {}
            Ok((closed, entries)) => {
                report.interrupted_transactions += closed;
                let appended = journaling.journal.append(entries).await;
                if let Err(source) = appended {
                    report.failures.push((id, source));
                    continue;
                }
            }
            Err(e) => {
                let source = JournalError::Corrupt {
                    tenant: id.to_string(),
                    seq: crate::journal::JournalSeq::new(seq),
                    reason: format!("an interrupted transaction cannot be closed: {e}"),
                };
                report.failures.push((id, source));
                continue;
            }
        }
        shared.push(TenantShared::new(
            id,
            tenant.config,
            tenant.timeline,
            Some(journaling.clone()),
            seq,
            tenant.image_seq.unwrap_or(0),
        ));
    }
    report.tenants = shared.len();
    report.elapsed = started.elapsed();
    metrics::recovered(report.tenants as u64, report.entries);
    tracing::info!(
        tenants = report.tenants,
        entries = report.entries,
        failures = report.failures.len(),
        elapsed_ms = report.elapsed.as_millis() as u64,
        "recovery finished"
    );
    Ok((shared, report))
}

impl<M: Model> Runtime<M> {
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
    pub async fn create_tenant_with_meta(
        &self,
        id: TenantId,
        initial: M,
        config: Option<TenantConfig>,
        meta: CommitMeta,
    ) -> Result<Tenant<M>, Error> {
        self.ask(|reply| SupervisorMsg::CreateTenant {
            id,
            initial,
            config,
            meta,
            reply,
        })
        .await?
    }

    /// The tenant with this id: a lock-free lookup.
    pub fn tenant(&self, id: &str) -> Result<Tenant<M>, Error> {
        let id = TenantId::new(id)?;
        if let Some(shared) = self.registry.load().get(&id) {
            return Ok(Tenant::new(Arc::clone(shared)));
        }
        match self.unrecoverable.get(&id) {
            Some(source) => Err(Error::Unrecoverable {
                tenant: id,
                source: source.clone(),
            }),
            None => Err(Error::TenantNotFound(id)),
        }
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
        match self.tenant(id) {
            Err(Error::TenantNotFound(id)) => {
                match self.create_tenant_with(id, initial(), None).await {
                    Err(Error::TenantExists(id)) => self.tenant(id.as_str()),
                    other => other,
                }
            }
            found => found,
        }
    }

    /// Every tenant with its head revision, ordered by id (lock-free).
    pub fn tenants(&self) -> Vec<(TenantId, Revision)> {
        self.registry
            .load()
            .iter()
            .map(|(id, shared)| (id.clone(), shared.published.load().revision()))
            .collect()
    }

    /// How many tenants the runtime holds: O(1), lock-free.
    pub fn tenant_count(&self) -> usize {
        self.registry.load().len()
    }

    /// Up to `limit` tenants in id order, starting after `after` (from the
    /// first when `None`), with their revisions, and the cursor of the next
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
    ) -> (Vec<(TenantId, Revision)>, Option<TenantId>) {
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
            .map(|(id, shared)| (id.clone(), shared.published.load().revision()))
            .collect();
        let next = match (range.next(), page.last()) {
            (Some(_), Some((last, _))) => Some(last.clone()),
            _ => None,
        };
        (page, next)
    }

    /// Deletes a tenant once the requests already sent to it are handled.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), Error> {
        let id = TenantId::new(id)?;
        self.ask(|reply| SupervisorMsg::DeleteTenant { id, reply })
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
