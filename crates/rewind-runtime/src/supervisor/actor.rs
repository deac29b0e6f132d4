//! The supervisor actor. It owns the tenant registry (published through
//! `ArcSwap` for lock-free lookups), routes messages, and restarts a failed
//! tenant from its last published timeline within an OTP-style intensity
//! limit.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use rewind_core::imbl::OrdMap;
use rewind_core::{Clock, CommitMeta, Model, TenantId, Timeline};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::messages::SupervisorMsg;
use crate::config::{RestartIntensity, TenantConfig};
use crate::durability;
use crate::error::Error;
use crate::journal::JournalError;
use crate::metrics;
use crate::tenant::actor::TenantActor;
use crate::tenant::handle::Tenant;
use crate::tenant::messages::Envelope;
use crate::tenant::shared::{Journaling, Permit, Slot, TenantShared};

/// Every live tenant by id. Replaced whole on each change.
pub(crate) type Registry<M> = OrdMap<TenantId, Arc<TenantShared<M>>>;

pub(crate) struct SupervisorActor<M>(PhantomData<fn() -> M>);

impl<M> SupervisorActor<M> {
    pub(crate) fn new() -> Self {
        SupervisorActor(PhantomData)
    }
}

pub(crate) struct SupervisorArgs<M: Model> {
    pub(crate) registry: Arc<ArcSwap<Registry<M>>>,
    pub(crate) defaults: TenantConfig,
    pub(crate) intensity: RestartIntensity,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) journaling: Option<Journaling>,
    /// Tenants read back from the journal, to start.
    pub(crate) recovered: Vec<Arc<TenantShared<M>>>,
    /// Tenants whose journal could not be read back.
    pub(crate) unrecoverable: Arc<HashMap<TenantId, JournalError>>,
}

pub(crate) struct SupervisorState<M: Model> {
    registry: Arc<ArcSwap<Registry<M>>>,
    defaults: TenantConfig,
    intensity: RestartIntensity,
    clock: Arc<dyn Clock>,
    /// Running tenant actors, to recognise supervision events.
    actors: HashMap<ActorId, TenantId>,
    /// Recent failure times per tenant, within the intensity period.
    failures: HashMap<TenantId, VecDeque<Instant>>,
    shutting_down: bool,
    journaling: Option<Journaling>,
    unrecoverable: Arc<HashMap<TenantId, JournalError>>,
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
        let mut state = SupervisorState {
            registry: args.registry,
            defaults: args.defaults,
            intensity: args.intensity,
            clock: args.clock,
            actors: HashMap::new(),
            failures: HashMap::new(),
            shutting_down: false,
            journaling: args.journaling,
            unrecoverable: args.unrecoverable,
            deleting: HashMap::new(),
        };
        for shared in args.recovered {
            state.register(&myself, shared).await?;
        }
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
                let result = state.create(&myself, id, initial, config, meta).await;
                let _ = reply.send(result);
            }
            SupervisorMsg::DeleteTenant { id, reply } => state.delete(id, reply),
            SupervisorMsg::ListTenants { reply } => {
                let list = state
                    .registry
                    .load()
                    .iter()
                    .map(|(id, shared)| (id.clone(), shared.published.load().revision()))
                    .collect();
                let _ = reply.send(list);
            }
            SupervisorMsg::Tenant { id, msg } => state.route(id, msg),
            SupervisorMsg::Shutdown { reply } => state.shutdown(myself, reply),
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
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.actors.remove(&cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

impl<M: Model> SupervisorState<M> {
    async fn create(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        id: TenantId,
        initial: M,
        config: Option<TenantConfig>,
        meta: CommitMeta,
    ) -> Result<Tenant<M>, Error> {
        if self.shutting_down {
            return Err(Error::ShuttingDown);
        }
        if self.registry.load().contains_key(&id) {
            return Err(Error::TenantExists(id));
        }
        if let Some(source) = self.unrecoverable.get(&id) {
            return Err(Error::Unrecoverable {
                tenant: id,
                source: source.clone(),
            });
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
        let timeline = Timeline::new_with(initial, config.timeline, Arc::clone(&self.clock), meta)?;
        let mut seq = 0;
        if let Some(journaling) = &self.journaling {
            // A new tenant (or one re-created after a delete) continues the
            // id's journal sequence: seqs are never reused.
            let journal_error = |source| Error::Journal {
                tenant: id.clone(),
                source,
            };
            seq = journaling
                .journal
                .highest_seq(&id)
                .map_err(journal_error)?
                .get()
                + 1;
            let entry = durability::create_entry(&id, seq, &config, &timeline);
            journaling
                .journal
                .append(vec![entry])
                .await
                .map_err(journal_error)?;
        }
        let shared = TenantShared::new(
            id.clone(),
            config,
            timeline,
            self.journaling.clone(),
            seq,
            0,
        );
        self.register(myself, Arc::clone(&shared)).await?;
        info!(tenant = %id, "tenant created");
        Ok(Tenant::new(shared))
    }

    /// Starts a tenant's actor and makes it findable.
    async fn register(
        &mut self,
        myself: &ActorRef<SupervisorMsg<M>>,
        shared: Arc<TenantShared<M>>,
    ) -> Result<(), Error> {
        self.spawn(myself, &shared).await?;
        let counts = shared.published.load().snapshot_counts();
        let id = shared.id.clone();
        self.registry
            .rcu(|registry| registry.update(id.clone(), Arc::clone(&shared)));
        metrics::tenants(1.0);
        metrics::snapshots_held(&counts, 1.0);
        Ok(())
    }

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
                // Whatever was queued while no actor ran (a restart) waits
                // for this wake-up; an empty lane makes it a no-op.
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
        // A restarting tenant keeps it in its lane for the next actor.
        shared.submit(msg, Some(permit));
    }

    fn delete(&mut self, id: TenantId, reply: ractor::RpcReplyPort<Result<(), Error>>) {
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
        shared.set_slot(Slot::Deleted {
            draining: draining.clone(),
        });
        metrics::tenants(-1.0);
        metrics::snapshots_held(&shared.published.load().snapshot_counts(), -1.0);
        info!(tenant = %id, "tenant deleted");
        let journaling = self.journaling.clone();
        let task = tokio::spawn(async move {
            if let Some(actor) = &draining {
                drain_and_stop(actor).await;
            }
            let mut result = Ok(());
            if let Some(journaling) = journaling {
                // After the drain nothing else writes this tenant's journal.
                let seq = shared.durable_seq() + 1;
                let entry =
                    durability::delete_entry(&shared.id, seq, shared.published.load().last_at());
                if let Err(source) = journaling.journal.append(vec![entry]).await {
                    result = Err(Error::Journal {
                        tenant: shared.id.clone(),
                        source,
                    });
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

    fn shutdown(&mut self, myself: ActorRef<SupervisorMsg<M>>, reply: ractor::RpcReplyPort<()>) {
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
            actors.extend(draining.clone());
            shared.set_slot(Slot::ShutDown { draining });
            metrics::snapshots_held(&shared.published.load().snapshot_counts(), -1.0);
        }
        metrics::tenants(-(tenants.len() as f64));
        tokio::spawn(async move {
            let mut draining = tokio::task::JoinSet::new();
            for actor in actors {
                draining.spawn(async move { drain_and_stop(&actor).await });
            }
            while draining.join_next().await.is_some() {}
            let _ = reply.send(());
            myself.stop(Some("shutdown".into()));
        });
    }
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
