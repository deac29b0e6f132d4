//! The supervisor actor. It owns the tenant registry (published through
//! `ArcSwap` for lock-free lookups), routes messages, starts the actor of an
//! idle tenant when a request arrives for it, activates passivated tenants
//! from the journal, passivates idle and least recently used ones, drives
//! the interval auto-snapshot policy from one timer, and restarts a failed
//! tenant from its last published timeline within an OTP-style intensity
//! limit.
//!
//! Residency (see `tenant/shared.rs`): every tenant has an entry in the
//! registry; an *active* one also has its timeline in memory and an entry in
//! [`SupervisorState::active`]; an actor runs only while the tenant has
//! work, and stops after [`Residency::stop_idle_after`] without any.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use rewind_core::imbl::OrdMap;
use rewind_core::{Clock, CommitMeta, ForkInfo, Model, PolicyCheck, TenantId, Timeline};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::links::{self, DeleteOptions};
use super::messages::{Internal, InternalMsg, SupervisorMsg};
use crate::config::{RestartIntensity, TenantConfig};
use crate::durability::{self, Recovered};
use crate::error::Error;
use crate::journal::JournalError;
use crate::metrics::{self, PassivationReason};
use crate::tenant::actor::TenantActor;
use crate::tenant::handle::Tenant;
use crate::tenant::messages::Envelope;
use crate::tenant::publish::RESYNC_WITHIN;
use crate::tenant::shared::{Context, Journaling, Permit, Slot, TenantShared};
use crate::tenant::watcher::WatchEnd;

/// Where a handle to a tenant is sent.
type HandleReply<M> = RpcReplyPort<Result<Tenant<M>, Error>>;

/// Every live tenant by id. Replaced whole on each change.
pub(crate) type Registry<M> = OrdMap<TenantId, Arc<TenantShared<M>>>;

/// How tenants are kept in memory; see [`RuntimeBuilder`](crate::RuntimeBuilder).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Residency {
    /// Active tenants past which the least recently used is passivated.
    pub(crate) max_active: usize,
    /// An actor with nothing to do stops after this long.
    pub(crate) stop_idle_after: Duration,
    /// Period of the runtime's timer.
    pub(crate) timer_period: Duration,
}

/// Counts the [`Runtime`](crate::Runtime) reads without a message.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) active: AtomicUsize,
}

/// A tenant to create: a new one, or a fork of another.
struct NewTenant<M> {
    id: TenantId,
    initial: M,
    config: Option<TenantConfig>,
    /// Recorded on revision 0.
    meta: CommitMeta,
    /// For a fork: where it came from (revision 0's cause).
    fork: Option<ForkInfo>,
}

/// A tenant known at start.
pub(crate) enum Initial<M: Model> {
    /// In the journal; read back on its first request.
    Passive(TenantId),
    /// Read back at start.
    Active(TenantId, Box<Recovered<M>>),
    /// Could not be read back at start.
    Unrecoverable(TenantId, JournalError),
}

pub(crate) struct SupervisorActor<M>(PhantomData<fn() -> M>);

impl<M> SupervisorActor<M> {
    pub(crate) fn new() -> Self {
        SupervisorActor(PhantomData)
    }
}

pub(crate) struct SupervisorArgs<M: Model> {
    pub(crate) registry: Arc<ArcSwap<Registry<M>>>,
    pub(crate) counts: Arc<Counts>,
    pub(crate) defaults: TenantConfig,
    pub(crate) intensity: RestartIntensity,
    pub(crate) residency: Residency,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) journaling: Option<Journaling>,
    /// Guarded deployments' shared state.
    pub(crate) deployer: Arc<crate::deploy::Deployer>,
    /// Tenants found in the journal.
    pub(crate) initial: Vec<Initial<M>>,
}

/// An active tenant, as the supervisor tracks it.
struct Active<M: Model> {
    shared: Arc<TenantShared<M>>,
    /// When the interval auto-snapshot policy is next checked
    /// ([`Context::now_us`]).
    next_tick: u64,
    /// Its key in [`SupervisorState::lru`]: the last use recorded there.
    lru_key: u64,
}

pub(crate) struct SupervisorState<M: Model> {
    registry: Arc<ArcSwap<Registry<M>>>,
    counts: Arc<Counts>,
    defaults: TenantConfig,
    intensity: RestartIntensity,
    residency: Residency,
    clock: Arc<dyn Clock>,
    context: Arc<Context<M>>,
    /// Running tenant actors, to recognise supervision events.
    actors: HashMap<ActorId, TenantId>,
    /// Recent failure times per tenant, within the intensity period.
    failures: HashMap<TenantId, VecDeque<Instant>>,
    shutting_down: bool,
    /// Tenants whose timeline is in memory.
    active: HashMap<TenantId, Active<M>>,
    /// The active tenants by their last use as last recorded here. A use
    /// does not touch this map (handles record it in the tenant): eviction
    /// takes the first entry, and re-files it under its newer use if it had
    /// one. Each entry's key is at most its tenant's last use, so a first
    /// entry whose key is its last use is the least recently used tenant.
    lru: BTreeSet<(u64, TenantId)>,
    /// Activations under way, with the callers waiting for a handle.
    activating: HashMap<TenantId, Vec<HandleReply<M>>>,
    /// Creations whose journal entry is not durable yet, with their origin
    /// when they are forks (a deletion of the parent counts them).
    creating: HashMap<TenantId, Option<ForkInfo>>,
    /// Deletions still draining or journaling; the id cannot be reused
    /// until they finish.
    deleting: HashMap<TenantId, tokio::task::JoinHandle<()>>,
}

impl<M: Model> Actor for SupervisorActor<M> {
    type Msg = SupervisorMsg<M>;
    type State = SupervisorState<M>;
    type Arguments = SupervisorArgs<M>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs<M>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let context = Arc::new(Context::new(
            args.journaling,
            myself.clone(),
            args.deployer,
            Arc::downgrade(&args.registry),
            Arc::clone(&args.clock),
        ));
        let mut state = SupervisorState {
            registry: args.registry,
            counts: args.counts,
            defaults: args.defaults,
            intensity: args.intensity,
            residency: args.residency,
            clock: args.clock,
            context,
            actors: HashMap::new(),
            failures: HashMap::new(),
            shutting_down: false,
            active: HashMap::new(),
            lru: BTreeSet::new(),
            activating: HashMap::new(),
            creating: HashMap::new(),
            deleting: HashMap::new(),
        };
        state.register_initial(args.initial);
        myself.send_interval(state.residency.timer_period, || {
            SupervisorMsg::Internal(super::messages::Internal(InternalMsg::Timer))
        });
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::CreateTenant {
                id,
                initial,
                config,
                meta,
                reply,
            } => {
                let new = NewTenant {
                    id,
                    initial,
                    config,
                    meta,
                    fork: None,
                };
                state.create(&myself, new, reply)
            }
            SupervisorMsg::CreateFork {
                id,
                initial,
                fork,
                config,
                meta,
                reply,
            } => {
                let new = NewTenant {
                    id,
                    initial,
                    config,
                    meta,
                    fork: Some(fork),
                };
                state.create(&myself, new, reply)
            }
            SupervisorMsg::DeleteTenant { id, options, reply } => {
                state.delete_requested(&myself, id, options, reply)
            }
            SupervisorMsg::ListTenants { reply } => {
                let list = state
                    .registry
                    .load()
                    .iter()
                    .map(|(id, shared)| (id.clone(), shared.listed_revision()))
                    .collect();
                let _ = reply.send(list);
            }
            SupervisorMsg::Tenant { id, msg } => state.route(id, msg),
            SupervisorMsg::Shutdown { reply } => state.shutdown(myself, reply),
            SupervisorMsg::Internal(internal) => match internal.0 {
                InternalMsg::Start { id } => state.start(&myself, id).await,
                InternalMsg::Activate { id, reply } => state.activate(&myself, id, reply),
                InternalMsg::Activated {
                    shared,
                    result,
                    elapsed,
                } => state.activated(&myself, shared, result, elapsed).await,
                InternalMsg::Created {
                    shared,
                    result,
                    reply,
                } => state.created(shared, result, reply),
                InternalMsg::Passivate { id, reply } => {
                    state.passivate_requested(&myself, id, reply)
                }
                InternalMsg::Stopped { id, reply } => {
                    let passivated = state.passivate_id(&id, PassivationReason::Requested);
                    let _ = reply.send(Ok(passivated));
                }
                InternalMsg::Timer => state.timer(),
                InternalMsg::DeleteChecked {
                    id,
                    options,
                    held,
                    reply,
                } => state.delete_checked(id, options, held, reply),
            },
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, reason) => {
                if let Some(id) = state.actors.remove(&cell.get_id()) {
                    warn!(tenant = %id, %reason, "tenant actor failed");
                    state.restart(&myself, id).await;
                }
            }
            // An idle actor stopped: its tenant may be passivated now if
            // the runtime holds too many.
            SupervisionEvent::ActorTerminated(cell, _, _)
                if state.actors.remove(&cell.get_id()).is_some() =>
            {
                state.enforce_capacity();
            }
            _ => {}
        }
        Ok(())
    }
}

impl<M: Model> SupervisorState<M> {
    /// Registers the tenants found in the journal at start.
    fn register_initial(&mut self, initial: Vec<Initial<M>>) {
        let mut registry = Registry::new();
        for tenant in initial {
            let shared = match tenant {
                Initial::Passive(id) => {
                    TenantShared::passive(id, self.defaults, Arc::clone(&self.context))
                }
                Initial::Active(id, recovered) => {
                    let recovered = *recovered;
                    let shared =
                        TenantShared::passive(id, recovered.config, Arc::clone(&self.context));
                    self.make_active(&shared, recovered);
                    shared
                }
                Initial::Unrecoverable(id, source) => {
                    let shared =
                        TenantShared::passive(id, self.defaults, Arc::clone(&self.context));
                    shared.set_slot(Slot::Unrecoverable(source));
                    shared
                }
            };
            registry.insert(shared.id.clone(), shared);
        }
        metrics::tenants(registry.len() as f64);
        self.registry.store(Arc::new(registry));
        self.enforce_capacity();
    }

    fn create(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        new: NewTenant<M>,
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    ) {
        let result = self.prepare(new);
        let (shared, entry) = match result {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let Some(entry) = entry else {
            // Memory mode: nothing to make durable.
            return self.created(shared, Ok(()), reply);
        };
        let Some(journaling) = self.context.journaling.clone() else {
            return self.created(shared, Ok(()), reply);
        };
        // The entry is made durable off the supervisor, so concurrent
        // creations share the journal's commits; the id is reserved
        // meanwhile.
        let fork = shared.read(|t| t.fork_info().cloned());
        self.creating.insert(shared.id.clone(), fork);
        let myself = myself.clone();
        tokio::spawn(async move {
            let result = match journaling.journal.append(vec![entry.clone()]).await {
                Err(source) if source.is_outcome_unknown() => {
                    resolve_create(&journaling, &entry, source).await
                }
                other => other,
            }
            .map_err(|source| Error::journal(&shared.id, source));
            let created = InternalMsg::Created {
                shared,
                result,
                reply,
            };
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Internal(internal))) =
                myself.send_message(SupervisorMsg::Internal(super::messages::Internal(created)))
            {
                if let InternalMsg::Created { reply, .. } = internal.0 {
                    let _ = reply.send(Err(Error::ShuttingDown));
                }
            }
        });
    }

    /// Checks a creation and builds the tenant and its `create` entry (none
    /// in memory mode).
    fn prepare(
        &mut self,
        new: NewTenant<M>,
    ) -> Result<(Arc<TenantShared<M>>, Option<crate::journal::Entry>), Error> {
        let NewTenant {
            id,
            initial,
            config,
            meta,
            fork,
        } = new;
        if self.shutting_down {
            return Err(Error::ShuttingDown);
        }
        if let Some(existing) = self.registry.load().get(&id) {
            if let Slot::Unrecoverable(source) = &**existing.slot.load() {
                return Err(Error::Unrecoverable {
                    tenant: id,
                    source: source.clone(),
                });
            }
            return Err(Error::TenantExists(id));
        }
        if self.creating.contains_key(&id) {
            return Err(Error::TenantExists(id));
        }
        if let Some(deleting) = self.deleting.get(&id) {
            if !deleting.is_finished() {
                return Err(Error::Unavailable {
                    tenant: id,
                    reason: "it is still being deleted; retry shortly".into(),
                });
            }
            self.deleting.remove(&id);
        }
        let config = config.unwrap_or(self.defaults);
        config.validate()?;
        // A typed state that does not round-trip through JSON would fail
        // only at the first diff or rollback: refuse it now.
        initial.check_json()?;
        let clock = Arc::clone(&self.clock);
        let mut timeline = match fork {
            Some(fork) => Timeline::new_fork(initial, config.timeline, clock, meta, fork)?,
            None => Timeline::new_with(initial, config.timeline, clock, meta)?,
        };
        // This creation's identity: links to the tenant (a fork's parent)
        // name it, so a later tenant of the same id is never taken for it.
        timeline.set_incarnation(links::new_incarnation());
        let mut seq = 0;
        let mut entry = None;
        if let Some(journaling) = &self.context.journaling {
            // A new tenant (or one re-created after a delete) continues the
            // id's journal sequence: seqs are never reused.
            seq = journaling
                .journal
                .highest_seq(&id)
                .map_err(|source| Error::Journal {
                    tenant: id.clone(),
                    source,
                })?
                .get()
                + 1;
            entry = Some(durability::create_entry(&id, seq, &config, &timeline));
        }
        let shared = TenantShared::new(id, config, timeline, Arc::clone(&self.context), seq, 0);
        Ok((shared, entry))
    }

    /// A creation is durable: the tenant becomes findable, active, with no
    /// actor until its first request.
    fn created(
        &mut self,
        shared: Arc<TenantShared<M>>,
        result: Result<(), Error>,
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    ) {
        self.creating.remove(&shared.id);
        if let Err(e) = result {
            if matches!(e, Error::OutcomeUnknown { .. }) && !self.shutting_down {
                // The journal may hold the tenant: it is known as
                // passivated, so its first request reads it back and the
                // journal decides whether it exists.
                let id = shared.id.clone();
                let maybe =
                    TenantShared::passive(id.clone(), shared.config(), Arc::clone(&self.context));
                self.registry
                    .rcu(|registry| registry.update(id.clone(), Arc::clone(&maybe)));
                metrics::tenants(1.0);
            }
            let _ = reply.send(Err(e));
            return;
        }
        let id = shared.id.clone();
        self.registry
            .rcu(|registry| registry.update(id.clone(), Arc::clone(&shared)));
        metrics::tenants(1.0);
        self.track_active(&shared);
        if self.shutting_down {
            shared.set_slot(Slot::ShutDown { draining: None });
        }
        info!(tenant = %id, "tenant created");
        let handle = Tenant::hold(Arc::clone(&shared)).ok_or_else(|| not_active(&id));
        let _ = reply.send(handle);
        self.enforce_capacity();
    }

    /// A request was queued for a tenant with no actor: starts one, reading
    /// the tenant back first if it is passivated.
    async fn start(&mut self, myself: &ActorRef<SupervisorMsg<M>>, id: TenantId) {
        let Some(shared) = self.registry.load().get(&id).cloned() else {
            // Deleted: the deletion answered what was queued.
            return;
        };
        if shared.accepting().is_err() {
            shared.lane.fail_all(|| shared.refusal_now());
            return;
        }
        if self.shutting_down {
            shared.lane.fail_all(|| Error::ShuttingDown);
            return;
        }
        if self.activating.contains_key(&id) {
            // The activation starts the actor when it completes.
            return;
        }
        if shared.published().is_none() {
            self.begin_activation(myself, &shared);
            return;
        }
        if shared.running().is_some() && !shared.lane.needs_actor() {
            return;
        }
        if let Err(e) = self.spawn(myself, &shared).await {
            error!(tenant = %id, error = %e, "an idle tenant's actor could not start");
            shared.lane.start_refused();
            shared.lane.fail_all(|| could_not_start(&id));
        }
    }

    /// The registered tenant with this id, if it takes requests now; else
    /// why not.
    fn accepting_tenant(&self, id: TenantId) -> Result<Arc<TenantShared<M>>, Error> {
        let shared = self
            .registry
            .load()
            .get(&id)
            .cloned()
            .ok_or(Error::TenantNotFound(id))?;
        shared.accepting()?;
        Ok(shared)
    }

    /// A handle for a lookup that found the tenant passivated.
    fn activate(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        id: TenantId,
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    ) {
        let shared = match self.accepting_tenant(id.clone()) {
            Ok(shared) => shared,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if let Some(handle) = Tenant::hold(Arc::clone(&shared)) {
            let _ = reply.send(Ok(handle));
            return;
        }
        if self.shutting_down {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        if !self.activating.contains_key(&id) {
            self.begin_activation(myself, &shared);
        }
        if let Some(waiting) = self.activating.get_mut(&id) {
            waiting.push(reply);
        }
    }

    /// Reads a passivated tenant back from the journal, off the supervisor.
    fn begin_activation(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        shared: &Arc<TenantShared<M>>,
    ) {
        let Some(journaling) = self.context.journaling.clone() else {
            // Without a journal nothing passivates; an inactive tenant here
            // cannot be.
            shared.lane.fail_all(|| not_active(&shared.id));
            return;
        };
        self.activating.insert(shared.id.clone(), Vec::new());
        let (myself, shared, clock) = (myself.clone(), Arc::clone(shared), Arc::clone(&self.clock));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = read_back(&journaling, &shared.id, clock)
                .await
                .map(|read| read.map(Box::new));
            let activated = InternalMsg::Activated {
                shared,
                result,
                elapsed: started.elapsed(),
            };
            let _ = myself.send_message(SupervisorMsg::Internal(super::messages::Internal(
                activated,
            )));
        });
    }

    async fn activated(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        shared: Arc<TenantShared<M>>,
        result: Result<Option<Box<Recovered<M>>>, JournalError>,
        elapsed: Duration,
    ) {
        let id = shared.id.clone();
        let waiting = self.activating.remove(&id).unwrap_or_default();
        let current = self.registry.load().get(&id).cloned();
        let answer = |waiting: Vec<RpcReplyPort<_>>, error: &dyn Fn() -> Error| {
            for reply in waiting {
                let _ = reply.send(Err(error()));
            }
        };
        if !current.is_some_and(|current| Arc::ptr_eq(&current, &shared)) {
            // Deleted while it was read back.
            return answer(waiting, &|| Error::TenantNotFound(id.clone()));
        }
        match result {
            Ok(Some(recovered)) => {
                metrics::activated(elapsed);
                self.make_active(&shared, *recovered);
                for reply in waiting {
                    let handle = Tenant::hold(Arc::clone(&shared)).ok_or_else(|| not_active(&id));
                    let _ = reply.send(handle);
                }
                if shared.accepting().is_err() {
                    shared.lane.fail_all(|| shared.refusal_now());
                } else if shared.lane.needs_actor() && !shared.lane.is_quiet() {
                    if let Err(e) = self.spawn(myself, &shared).await {
                        error!(tenant = %id, error = %e, "an activated tenant's actor could not start");
                        shared.lane.start_refused();
                        shared.lane.fail_all(|| could_not_start(&id));
                    }
                } else {
                    shared.lane.start_refused();
                }
                self.enforce_capacity();
            }
            Ok(None) => {
                // Its journal ends with a delete the listing at start did
                // not see: it does not exist.
                self.registry.rcu(|registry| registry.without(&id));
                metrics::tenants(-1.0);
                shared.set_slot(Slot::Deleted { draining: None });
                shared.lane.fail_all(|| Error::TenantNotFound(id.clone()));
                answer(waiting, &|| Error::TenantNotFound(id.clone()));
            }
            Err(source) if is_damage(&source) => {
                error!(tenant = %id, error = %source, "tenant not recovered; it answers Unrecoverable");
                shared.set_slot(Slot::Unrecoverable(source));
                shared.lane.fail_all(|| shared.refusal_now());
                answer(waiting, &|| shared.refusal_now());
            }
            Err(source) => {
                // The journal could not be read (not what it holds): this
                // attempt fails, the tenant stays passivated, and the next
                // request tries again.
                warn!(tenant = %id, error = %source, "reading a tenant back failed; the next request retries");
                let failed = || Error::Journal {
                    tenant: id.clone(),
                    source: source.clone(),
                };
                // Stopped first: a request queued from here on asks for a
                // new attempt instead of waiting in the lane.
                shared.lane.start_refused();
                shared.lane.fail_all(failed);
                answer(waiting, &failed);
            }
        }
    }

    /// Publishes a read-back timeline and counts the tenant active.
    fn make_active(&mut self, shared: &Arc<TenantShared<M>>, recovered: Recovered<M>) {
        shared.activate(
            recovered.config,
            Arc::new(recovered.timeline),
            recovered.seq,
            recovered.image_seq.unwrap_or(0),
        );
        self.track_active(shared);
    }

    fn track_active(&mut self, shared: &Arc<TenantShared<M>>) {
        let interval = shared.config().auto_snapshot.interval;
        let next_tick = interval.map_or(u64::MAX, |interval| {
            self.context.now_us().saturating_add(micros(interval))
        });
        let (counts, history_bytes) = shared.read(|t| (t.snapshot_counts(), t.history_bytes()));
        let lru_key = shared.last_used();
        let previous = self.active.insert(
            shared.id.clone(),
            Active {
                shared: Arc::clone(shared),
                next_tick,
                lru_key,
            },
        );
        match previous {
            Some(previous) => {
                self.lru.remove(&(previous.lru_key, shared.id.clone()));
            }
            None => {
                self.counts.active.fetch_add(1, Ordering::Relaxed);
                metrics::tenants_active(1.0);
            }
        }
        self.lru.insert((lru_key, shared.id.clone()));
        metrics::snapshots_held(&counts, 1.0);
        metrics::history_bytes(history_bytes as f64);
    }

    fn untrack_active(&mut self, id: &TenantId) -> Option<Arc<TenantShared<M>>> {
        let active = self.active.remove(id)?;
        self.lru.remove(&(active.lru_key, id.clone()));
        self.counts.active.fetch_sub(1, Ordering::Relaxed);
        metrics::tenants_active(-1.0);
        if let Some(timeline) = active.shared.published() {
            metrics::snapshots_held(&timeline.snapshot_counts(), -1.0);
            metrics::history_bytes(-(timeline.history_bytes() as f64));
        }
        Some(active.shared)
    }

    /// Passivates an active tenant with no actor, no handle and nothing
    /// queued; says whether it did. Everything it accepted is durable: its
    /// last actor stopped only once it was (or it never had one since it
    /// was created or read back).
    fn passivate_id(&mut self, id: &TenantId, reason: PassivationReason) -> bool {
        if self.context.journaling.is_none() || self.shutting_down {
            return false;
        }
        let Some(active) = self.active.get(id) else {
            return false;
        };
        let shared = Arc::clone(&active.shared);
        if !matches!(&**shared.slot.load(), Slot::Idle) || shared.in_flight() > 0 {
            return false;
        }
        if !shared.close_holds() {
            return false;
        }
        // A request queued from here on asks the supervisor to start the
        // tenant, which then finds it passivated and reads it back.
        if !shared.lane.is_quiet() {
            shared.reopen_holds();
            return false;
        }
        self.untrack_active(id);
        shared.passivate();
        metrics::passivated(reason);
        true
    }

    /// [`Runtime::passivate`](crate::Runtime::passivate): stops an idle actor
    /// first.
    fn passivate_requested(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        id: TenantId,
        reply: RpcReplyPort<Result<bool, Error>>,
    ) {
        let shared = match self.accepting_tenant(id.clone()) {
            Ok(shared) => shared,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if self.context.journaling.is_none() {
            let _ = reply.send(Ok(false));
            return;
        }
        if !self.active.contains_key(&id) {
            // Already passivated (or being read back).
            let _ = reply.send(Ok(!self.activating.contains_key(&id)));
            return;
        }
        let Some(actor) = shared.running() else {
            let passivated = self.passivate_id(&id, PassivationReason::Requested);
            let _ = reply.send(Ok(passivated));
            return;
        };
        let myself = myself.clone();
        tokio::spawn(async move {
            let (tx, rx) = oneshot::channel();
            let stopped = actor.send_message(Envelope::Stop(Some(tx.into()))).is_ok()
                && rx.await.unwrap_or(false);
            if !stopped {
                let _ = reply.send(Ok(false));
                return;
            }
            let stopped = InternalMsg::Stopped { id, reply };
            let _ =
                myself.send_message(SupervisorMsg::Internal(super::messages::Internal(stopped)));
        });
    }

    /// Passivates the least recently used tenants while more than
    /// `max_active` are active: O(log n) each. One in use (held, busy, or
    /// with a running actor, which is asked to stop if idle) is filed again
    /// as used now; each tenant is looked at most once per call, so a call
    /// ends even when nothing can go.
    fn enforce_capacity(&mut self) {
        let max = self.residency.max_active;
        if self.active.len() <= max || self.context.journaling.is_none() {
            return;
        }
        let now = self.context.now_us();
        let mut looked_at = 0;
        let total = self.lru.len();
        while self.active.len() > max && looked_at < total {
            let Some((key, id)) = self.lru.pop_first() else {
                break;
            };
            looked_at += 1;
            let Some(active) = self.active.get_mut(&id) else {
                continue;
            };
            let last_used = active.shared.last_used();
            if last_used > key {
                // Used since it was filed: file it under that use.
                active.lru_key = last_used;
                self.lru.insert((last_used, id));
                continue;
            }
            // Filed under its last use, first: the least recently used.
            // `passivate_id` removes the entry it would look for; put it
            // back so the bookkeeping stays whole if it does not passivate.
            self.lru.insert((key, id.clone()));
            if self.passivate_id(&id, PassivationReason::Capacity) {
                continue;
            }
            if let Some(actor) = self.active.get(&id).and_then(|a| a.shared.running()) {
                // Its actor may be idle: once it stops, the check that
                // follows passivates it.
                let _ = actor.send_message(Envelope::Stop(None));
            }
            if let Some(active) = self.active.get_mut(&id) {
                self.lru.remove(&(active.lru_key, id.clone()));
                active.lru_key = now.max(key);
                self.lru.insert((active.lru_key, id));
            }
        }
    }

    /// The runtime's timer: stops idle actors, passivates idle tenants, and
    /// asks for interval auto snapshots that are due.
    fn timer(&mut self) {
        if self.shutting_down {
            return;
        }
        let now = self.context.now_us();
        let stop_after = micros(self.residency.stop_idle_after);
        let mut idle = Vec::new();
        for (id, active) in &mut self.active {
            let shared = &active.shared;
            let config = shared.config();
            if now >= active.next_tick {
                let interval = config.auto_snapshot.interval.unwrap_or(Duration::MAX);
                active.next_tick = now.saturating_add(micros(interval));
                if shared.read(|t| t.policy_snapshot_due(PolicyCheck::Interval)) {
                    shared.wake(shared.lane.push_tick());
                }
            }
            let idle_for = now.saturating_sub(shared.last_used());
            match &**shared.slot.load() {
                Slot::Running(actor) if idle_for >= stop_after => {
                    let _ = actor.send_message(Envelope::Stop(None));
                }
                Slot::Idle => {
                    let due = config
                        .passivate_after
                        .is_some_and(|after| idle_for >= micros(after));
                    if due {
                        idle.push(id.clone());
                    }
                }
                _ => {}
            }
        }
        for id in idle {
            self.passivate_id(&id, PassivationReason::Idle);
        }
        self.enforce_capacity();
    }

    /// Starts a tenant's actor; it takes what is queued.
    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        shared: &Arc<TenantShared<M>>,
    ) -> Result<(), Error> {
        let spawned = Actor::spawn_linked(
            None,
            TenantActor::new(),
            Arc::clone(shared),
            myself.get_cell(),
        )
        .await;
        match spawned {
            Ok((actor, _)) => {
                self.actors.insert(actor.get_id(), shared.id.clone());
                shared.set_slot(Slot::Running(actor.clone()));
                shared.lane.started();
                // Whatever was queued while no actor ran waits for this
                // wake-up; an empty lane makes it a no-op.
                let _ = actor.send_message(Envelope::Wake);
                Ok(())
            }
            Err(e) => Err(Error::Unavailable {
                tenant: shared.id.clone(),
                reason: format!("its actor could not start: {e}"),
            }),
        }
    }

    /// Restarts a failed tenant from its last published timeline, unless it
    /// failed more than `max_restarts` times within `period`.
    async fn restart(&mut self, myself: &ActorRef<SupervisorMsg<M>>, id: TenantId) {
        let Some(shared) = self.registry.load().get(&id).cloned() else {
            return;
        };
        if self.shutting_down {
            return;
        }
        shared.set_slot(Slot::Restarting);
        let now = Instant::now();
        let failures = self.failures.entry(id.clone()).or_default();
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.intensity.period)
        {
            failures.pop_front();
        }
        let restarts = failures.len() as u32;
        let period = self.intensity.period;
        if restarts > self.intensity.max_restarts {
            error!(tenant = %id, restarts, "restart intensity exceeded; the tenant is failed");
            shared.set_slot(Slot::Failed { restarts, period });
        } else {
            metrics::tenant_restarted();
            match self.spawn(myself, &shared).await {
                Ok(()) => info!(tenant = %id, "tenant restarted from its last committed state"),
                Err(e) => {
                    error!(tenant = %id, error = %e, "tenant could not be restarted");
                    shared.set_slot(Slot::Failed { restarts, period });
                }
            }
        }
        if let Slot::Failed { .. } = &**shared.slot.load() {
            // No actor will take what waits in its lane.
            shared
                .lane
                .fail_all(|| shared.accepting().err().unwrap_or(Error::ShuttingDown));
        }
    }

    fn route(&mut self, id: TenantId, msg: crate::tenant::messages::TenantMsg<M>) {
        if self.shutting_down {
            return msg.fail(Error::ShuttingDown);
        }
        let Some(shared) = self.registry.load().get(&id).cloned() else {
            return msg.fail(Error::TenantNotFound(id));
        };
        let permit = match Permit::acquire(&shared) {
            Ok(permit) => permit,
            Err(e) => return msg.fail(e),
        };
        // A restarting tenant keeps it in its lane for the next actor; an
        // idle or passivated one asks this supervisor to start it.
        shared.submit(msg, Some(permit));
    }

    /// A deletion asked for: unless `options` allow everything, the tenant
    /// and its recorded forks are read back first (off the supervisor),
    /// then [`delete_checked`](Self::delete_checked) decides.
    fn delete_requested(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        id: TenantId,
        options: DeleteOptions,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        if self.shutting_down {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        if !self.registry.load().contains_key(&id) {
            let _ = reply.send(Err(Error::TenantNotFound(id)));
            return;
        }
        if options.force && options.detach_forks {
            return self.delete(id, reply);
        }
        let registry = Arc::clone(&self.registry);
        let supervisor = myself.clone();
        tokio::spawn(async move {
            let held = match crate::runtime::find_tenant(&registry, &supervisor, id.clone()).await {
                Ok(tenant) => {
                    let mut held = tenant.hold_recorded_forks().await;
                    held.insert(0, tenant);
                    held
                }
                // Nothing of it can be read: nothing to check.
                Err(Error::Unrecoverable { .. } | Error::TenantFailed { .. }) => Vec::new(),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    return;
                }
            };
            let checked = InternalMsg::DeleteChecked {
                id,
                options,
                held,
                reply,
            };
            if let Err(ractor::MessagingErr::SendErr(SupervisorMsg::Internal(internal))) =
                supervisor.send_message(SupervisorMsg::Internal(Internal(checked)))
            {
                if let InternalMsg::DeleteChecked { reply, .. } = internal.0 {
                    let _ = reply.send(Err(Error::ShuttingDown));
                }
            }
        });
    }

    /// Deletes a tenant read back by [`delete_requested`](Self::delete_requested)
    /// unless it has attached forks, protected snapshots or a deployment in
    /// progress that `options` do not allow to destroy.
    fn delete_checked(
        &mut self,
        id: TenantId,
        options: DeleteOptions,
        held: Vec<Tenant<M>>,
        reply: RpcReplyPort<Result<(), Error>>,
    ) {
        if self.shutting_down {
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let registry = self.registry.load_full();
        let Some(shared) = registry.get(&id).cloned() else {
            let _ = reply.send(Err(Error::TenantNotFound(id)));
            return;
        };
        if let Some(tenant) = held.first() {
            if !Arc::ptr_eq(tenant.shared(), &shared) {
                let _ = reply.send(Err(Error::Unavailable {
                    tenant: id,
                    reason: "it was deleted and created again while its deletion was checked; \
                             retry"
                        .into(),
                }));
                return;
            }
            if let Some(timeline) = shared.published() {
                let mut forks: Vec<TenantId> =
                    links::attached_forks(&id, &timeline, &registry, true)
                        .into_iter()
                        .map(|record| record.fork)
                        .collect();
                // Forks of it whose creation is being made durable.
                for (fork, info) in &self.creating {
                    let linked = info.as_ref().is_some_and(|info| {
                        info.parent == id
                            && info.parent_incarnation.is_some()
                            && info.parent_incarnation == timeline.incarnation()
                    });
                    if linked && !forks.contains(fork) {
                        forks.push(fork.clone());
                    }
                }
                let refusal = links::delete_refusal(&id, &timeline, forks, options);
                if !refusal.is_empty() {
                    let _ = reply.send(Err(Error::DeleteRefused(Box::new(refusal))));
                    return;
                }
            }
        }
        self.delete(id, reply);
        drop(held);
    }

    /// Removes a tenant and journals its `delete` entry, after the requests
    /// already sent to it are handled.
    fn delete(&mut self, id: TenantId, reply: RpcReplyPort<Result<(), Error>>) {
        if self.shutting_down {
            // The shutdown already drains every tenant.
            let _ = reply.send(Err(Error::ShuttingDown));
            return;
        }
        let mut removed = None;
        self.registry.rcu(|registry| {
            let mut registry = Registry::clone(registry);
            removed = registry.remove(&id);
            registry
        });
        let Some(shared) = removed else {
            let _ = reply.send(Err(Error::TenantNotFound(id)));
            return;
        };
        let draining = shared.running();
        let was_active = self.untrack_active(&id).is_some();
        shared.set_slot(Slot::Deleted {
            draining: draining.clone(),
        });
        if draining.is_none() {
            shared.lane.fail_all(|| Error::TenantNotFound(id.clone()));
        }
        metrics::tenants(-1.0);
        info!(tenant = %id, "tenant deleted");
        let journaling = self.context.journaling.clone();
        let clock = Arc::clone(&self.clock);
        let task = tokio::spawn(async move {
            if let Some(actor) = &draining {
                drain_and_stop(actor).await;
                // After what it had accepted was published.
                shared.end_watch(WatchEnd::Deleted);
            }
            let mut result = Ok(());
            if let Some(journaling) = journaling {
                // After the drain nothing else writes this tenant's journal.
                let seq = if was_active {
                    Ok(shared.durable_seq())
                } else {
                    let journal = Arc::clone(&journaling.journal);
                    let id = shared.id.clone();
                    tokio::task::spawn_blocking(move || journal.highest_seq(&id).map(|s| s.get()))
                        .await
                        .unwrap_or_else(|e| {
                            Err(JournalError::Storage(format!(
                                "reading the highest seq stopped: {e}"
                            )))
                        })
                };
                let at = shared
                    .published()
                    .map_or_else(|| clock.now(), |timeline| timeline.last_at());
                let appended = match seq {
                    Ok(seq) => {
                        let entry = durability::delete_entry(&shared.id, seq + 1, at);
                        journaling.journal.append(vec![entry]).await
                    }
                    Err(e) => Err(e),
                };
                if let Err(source) = appended {
                    result = Err(Error::journal(&shared.id, source));
                }
            }
            let _ = reply.send(result);
        });
        // Only deletions still under way are kept (a re-create of the id
        // waits for its own); finished ones go, so the map does not grow
        // with every tenant ever deleted.
        self.deleting.retain(|_, task| !task.is_finished());
        self.failures.remove(&id);
        self.deleting.insert(id, task);
    }

    fn shutdown(&mut self, myself: ActorRef<SupervisorMsg<M>>, reply: RpcReplyPort<()>) {
        if self.shutting_down {
            // Dropping the reply tells the caller `ShuttingDown`; the first
            // shutdown is draining.
            drop(reply);
            return;
        }
        self.shutting_down = true;
        // Tenants stay registered, so a lookup after shutdown finds them and
        // is answered `ShuttingDown`, not `TenantNotFound`.
        let tenants = self.registry.load_full();
        let mut actors = Vec::new();
        for shared in tenants.values() {
            let draining = shared.running();
            match &draining {
                None => shared.lane.fail_all(|| Error::ShuttingDown),
                Some(actor) => actors.push((Arc::clone(shared), actor.clone())),
            }
            shared.set_slot(Slot::ShutDown { draining });
        }
        for waiting in std::mem::take(&mut self.activating).into_values() {
            for reply in waiting {
                let _ = reply.send(Err(Error::ShuttingDown));
            }
        }
        let ids: Vec<_> = self.active.keys().cloned().collect();
        for id in ids {
            self.untrack_active(&id);
        }
        metrics::tenants(-(tenants.len() as f64));
        tokio::spawn(async move {
            let mut draining = tokio::task::JoinSet::new();
            for (shared, actor) in actors {
                draining.spawn(async move {
                    drain_and_stop(&actor).await;
                    shared.end_watch(WatchEnd::ShutDown);
                });
            }
            while draining.join_next().await.is_some() {}
            let _ = reply.send(());
            myself.stop(Some("shutdown".into()));
        });
    }
}

/// A duration in the unit of [`Context::now_us`] (saturating).
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Whether a read-back error is about what the journal holds (it will not
/// go away by reading again), rather than about reading it.
fn is_damage(error: &JournalError) -> bool {
    matches!(
        error,
        JournalError::Corrupt { .. }
            | JournalError::UnknownKind { .. }
            | JournalError::SchemaTooNew { .. }
            | JournalError::OutOfSequence { .. }
            | JournalError::ModelMismatch { .. }
            | JournalError::ModelTooNew { .. }
    )
}

fn could_not_start(id: &TenantId) -> Error {
    Error::Unavailable {
        tenant: id.clone(),
        reason: "its actor could not start".into(),
    }
}

fn not_active(id: &TenantId) -> Error {
    Error::Unavailable {
        tenant: id.clone(),
        reason: "it was passivated again at once; retry".into(),
    }
}

/// A `create` entry whose append has an unknown outcome: reads the
/// tenant's journal (for up to [`RESYNC_WITHIN`]) to tell whether it holds
/// this very entry. `Ok` when it does, a definite error when it does not,
/// `source` again when the journal cannot be read.
async fn resolve_create(
    journaling: &Journaling,
    entry: &crate::journal::Entry,
    source: JournalError,
) -> Result<(), JournalError> {
    let deadline = tokio::time::Instant::now() + RESYNC_WITHIN;
    loop {
        let journal = Arc::clone(&journaling.journal);
        let wanted = entry.clone();
        let read = tokio::task::spawn_blocking(move || {
            journal.read(&wanted.tenant, wanted.seq, wanted.seq)
        })
        .await
        .unwrap_or_else(|e| Err(JournalError::Storage(format!("reading stopped: {e}"))));
        match read {
            Ok(stored) => {
                return match stored.first() {
                    Some(stored) if stored == entry => Ok(()),
                    _ => Err(JournalError::Unavailable(format!(
                        "the creation was not stored ({source})"
                    ))),
                }
            }
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => return Err(source),
        }
    }
}

/// Reads a tenant back from the journal on a blocking thread, closing a
/// transaction a crash interrupted (`Ok(None)`: the journal says it was
/// deleted).
pub(crate) async fn read_back<M: Model>(
    journaling: &Journaling,
    id: &TenantId,
    clock: Arc<dyn Clock>,
) -> Result<Option<Recovered<M>>, JournalError> {
    let journal = Arc::clone(&journaling.journal);
    let tenant = id.clone();
    let recovered =
        tokio::task::spawn_blocking(move || durability::recover::<M>(&*journal, &tenant, &clock))
            .await
            .unwrap_or_else(|e| {
                Err(JournalError::Corrupt {
                    tenant: id.to_string(),
                    seq: crate::journal::JournalSeq::ZERO,
                    reason: format!("reading it back stopped: {e}"),
                })
            })?;
    let Some(mut recovered) = recovered else {
        return Ok(None);
    };
    if let Some(from) = recovered.upgraded_from {
        // Read back through `Model::upgrade`: an image at the current version
        // covers everything before anything new is journaled, so every later
        // entry follows a record of the version that wrote it.
        let image = durability::image(id, recovered.seq, &recovered.config, &recovered.timeline)
            .map_err(|e| JournalError::Corrupt {
                tenant: id.to_string(),
                seq: crate::journal::JournalSeq::new(recovered.seq),
                reason: format!("the upgraded timeline cannot be imaged: {e}"),
            })?;
        journaling.journal.save_image(image).await?;
        recovered.image_seq = Some(recovered.seq);
        tracing::info!(tenant = %id, from, to = M::VERSION, "tenant upgraded to the current model version");
    }
    let (closed, entries) =
        durability::close_interrupted(id, &mut recovered.timeline, &mut recovered.seq).map_err(
            |e| JournalError::Corrupt {
                tenant: id.to_string(),
                seq: crate::journal::JournalSeq::new(recovered.seq),
                reason: format!("an interrupted transaction cannot be closed: {e}"),
            },
        )?;
    if closed > 0 {
        journaling.journal.append(entries).await?;
        recovered.interrupted = closed;
    }
    Ok(Some(recovered))
}

/// Lets a tenant actor handle everything already sent to it, then stops it.
async fn drain_and_stop<M: Model>(actor: &ActorRef<Envelope<M>>) {
    let (tx, rx) = oneshot::channel();
    if actor.send_message(Envelope::Drain(tx.into())).is_ok() {
        let _ = rx.await;
    }
    // Waited for, so a shutdown ends with every tenant's state dropped.
    let _ = actor.stop_and_wait(Some("drained".into()), None).await;
}
