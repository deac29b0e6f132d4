//! What a tenant publishes for lock-free readers and request routing.
//!
//! The tenant's commit pipeline (its actor, or the publisher task the actor
//! hands durable batches to) is the only writer of `published` while the
//! tenant is active; the supervisor sets it when it activates the tenant and
//! clears it when it passivates one that has no actor. The supervisor
//! writes `slot`, except that an actor turns its own `Running` slot into
//! `Restarting` before it fails after a panic, and into `Idle` when it
//! stops for being idle (see [`TenantShared::release_slot`]). Both hold
//! immutable values swapped whole. Requests reach the actor through the
//! [`Lane`].
//!
//! Residency: a tenant is *active* while its timeline is in memory
//! (`published` is set), and *passivated* once the supervisor dropped it
//! (only with a journal). A [`Tenant`](crate::Tenant) handle holds its
//! tenant active: [`TenantShared::try_hold`] fails once passivation has
//! begun, and passivation begins only while no handle holds the tenant
//! ([`TenantShared::close_holds`]), so a handle always reads a timeline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use ractor::{ActorId, ActorRef};
use rewind_core::{Model, Revision, TenantId, Timeline};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::lane::{Lane, Wake};
use super::messages::{Envelope, TenantMsg};
use super::watcher::{Published, WatchEnd, Watcher};
use crate::config::TenantConfig;
use crate::error::Error;
use crate::journal::{Journal, JournalError};
use crate::supervisor::messages::{Internal, SupervisorMsg};

/// Set in [`TenantShared::holds`] while the tenant is not active or is being
/// passivated: no new handle may hold it.
const CLOSED: usize = 1;
/// One handle in [`TenantShared::holds`].
const HOLD: usize = 2;

/// Capacity of the revision broadcast: a watcher that falls further behind
/// is told how many revisions it missed.
const WATCH_CAPACITY: usize = 1024;

/// Where requests for a tenant go right now.
pub(crate) enum Slot<M: Model> {
    /// The actor serving the tenant.
    Running(ActorRef<Envelope<M>>),
    /// The actor failed and a new one is being started.
    Restarting,
    /// The tenant exceeded its restart intensity.
    Failed {
        restarts: u32,
        period: std::time::Duration,
    },
    /// The tenant was deleted. `draining` is its actor while it finishes
    /// what it accepted before; only lease messages still go there.
    Deleted {
        draining: Option<ActorRef<Envelope<M>>>,
    },
    /// The runtime is shutting down; `draining` as for `Deleted`.
    ShutDown {
        draining: Option<ActorRef<Envelope<M>>>,
    },
    /// No actor runs: the tenant is idle (active or passivated). The next
    /// request asks the supervisor for one.
    Idle,
    /// The tenant could not be read back from the journal.
    Unrecoverable(JournalError),
}

impl<M: Model> Slot<M> {
    /// Why watchers get no more revisions, for a slot no actor will ever
    /// serve again.
    pub(crate) fn watch_end(&self) -> Option<WatchEnd> {
        match self {
            Slot::Deleted { .. } => Some(WatchEnd::Deleted),
            Slot::ShutDown { .. } => Some(WatchEnd::ShutDown),
            Slot::Failed { .. } | Slot::Unrecoverable(_) => Some(WatchEnd::Failed),
            Slot::Running(_) | Slot::Restarting | Slot::Idle => None,
        }
    }
}

/// A tenant's link to the journal.
#[derive(Clone)]
pub(crate) struct Journaling {
    pub(crate) journal: Arc<dyn Journal>,
    /// Store an image of the timeline every this many entries.
    pub(crate) image_every: u64,
}

/// What every tenant of one runtime shares.
pub(crate) struct Context<M: Model> {
    /// Where mutations are made durable; `None` in memory mode.
    pub(crate) journaling: Option<Journaling>,
    /// Starts and activates tenants that have no actor.
    pub(crate) supervisor: ActorRef<SupervisorMsg<M>>,
    /// Checks, allowed hosts and monitors of guarded deployments.
    pub(crate) deployer: Arc<crate::deploy::Deployer>,
    /// Every tenant, for a handle that looks up another (a fork its
    /// parent). Weak: the registry holds this context through its tenants.
    pub(crate) registry: std::sync::Weak<ArcSwap<crate::supervisor::actor::Registry<M>>>,
    /// The origin of [`Context::now_us`].
    epoch: Instant,
    /// The runtime's clock: of timelines read back from the journal, and
    /// the age of idempotency keys.
    pub(crate) clock: Arc<dyn rewind_core::Clock>,
}

impl<M: Model> Context<M> {
    pub(crate) fn new(
        journaling: Option<Journaling>,
        supervisor: ActorRef<SupervisorMsg<M>>,
        deployer: Arc<crate::deploy::Deployer>,
        registry: std::sync::Weak<ArcSwap<crate::supervisor::actor::Registry<M>>>,
        clock: Arc<dyn rewind_core::Clock>,
    ) -> Self {
        Context {
            journaling,
            supervisor,
            deployer,
            registry,
            epoch: Instant::now(),
            clock,
        }
    }

    /// Microseconds since the runtime started (tokio time, so tests can
    /// pause and advance it): fine enough that uses in a row are ordered.
    pub(crate) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

/// State shared between a tenant's actor, its handles and the supervisor.
pub(crate) struct TenantShared<M: Model> {
    pub(crate) id: TenantId,
    /// The tenant's configuration; the runtime's defaults until a
    /// passivated tenant is read back.
    config: ArcSwap<TenantConfig>,
    /// The last committed timeline, replaced whole after every write; `None`
    /// while the tenant is passivated.
    published: ArcSwapOption<Timeline<M>>,
    /// Handles holding the tenant active, times [`HOLD`], plus [`CLOSED`].
    holds: AtomicUsize,
    /// When the tenant was last used ([`Context::now_us`]).
    last_used: AtomicU64,
    /// The head revision plus one when the tenant was passivated (0: not
    /// known, e.g. not active since the runtime started): what a listing
    /// shows without activating it.
    passive_revision: AtomicU64,
    pub(crate) context: Arc<Context<M>>,
    /// Where requests go; survives actor restarts.
    pub(crate) slot: ArcSwap<Slot<M>>,
    /// Bumped on every change of `slot`, so callers waiting out a restart
    /// wake up.
    pub(crate) slot_changed: watch::Sender<u64>,
    /// Requests accepted and not yet answered (see [`Permit`]).
    in_flight: AtomicUsize,
    /// Every new revision, for watchers, then why they stopped
    /// ([`TenantShared::end_watch`]): made on the first `watch()`, so a
    /// tenant nobody watches holds no channel (its 1,024 slots are most of
    /// what an idle tenant would cost).
    events: OnceLock<broadcast::Sender<Published>>,
    /// Seq of the last journal entry known durable; `published` reflects
    /// exactly the entries up to it. Written only by the tenant's actor (and
    /// by the supervisor before the actor exists).
    durable_seq: AtomicU64,
    /// Seq of the newest image stored (0: none). Written only by the
    /// tenant's commit pipeline.
    image_seq: AtomicU64,
    /// Requests waiting for the actor.
    pub(crate) lane: Lane<M>,
    /// The newest pipeline generation whose journal append failed (0:
    /// none): the actor rewinds to the last durable publication before it
    /// runs anything else, and every batch of that generation fails.
    failed_generation: AtomicU64,
}

impl<M: Model> TenantShared<M> {
    /// An active tenant with no actor yet.
    pub(crate) fn new(
        id: TenantId,
        config: TenantConfig,
        timeline: Timeline<M>,
        context: Arc<Context<M>>,
        durable_seq: u64,
        image_seq: u64,
    ) -> Arc<Self> {
        let shared = Self::passive(id, config, context);
        shared.activate(config, Arc::new(timeline), durable_seq, image_seq);
        shared
    }

    /// A passivated tenant: known to exist, nothing of it in memory.
    pub(crate) fn passive(
        id: TenantId,
        config: TenantConfig,
        context: Arc<Context<M>>,
    ) -> Arc<Self> {
        let now = context.now_us();
        Arc::new(TenantShared {
            durable_seq: AtomicU64::new(0),
            image_seq: AtomicU64::new(0),
            id,
            config: ArcSwap::from_pointee(config),
            published: ArcSwapOption::empty(),
            holds: AtomicUsize::new(CLOSED),
            last_used: AtomicU64::new(now),
            passive_revision: AtomicU64::new(0),
            context,
            slot: ArcSwap::from_pointee(Slot::Idle),
            slot_changed: watch::channel(0).0,
            in_flight: AtomicUsize::new(0),
            events: OnceLock::new(),
            lane: Lane::new(),
            failed_generation: AtomicU64::new(0),
        })
    }

    /// Queues a request for the actor and wakes it, or asks the supervisor
    /// to start it when the tenant has none. A tenant that is failed,
    /// deleted or shut down answers the request with the reason at once; a
    /// restarting one keeps it for the next actor.
    pub(crate) fn submit(&self, msg: TenantMsg<M>, permit: Option<Permit<M>>) {
        if let Err(e) = self.accepting() {
            return msg.fail(e);
        }
        self.touch();
        let (ticket, wake) = self.lane.push(msg, permit);
        self.wake(wake);
        // The tenant may have been deleted, failed or shut down while the
        // request was queued: then no actor takes it, so take it back.
        if let Err(e) = self.accepting() {
            self.lane.withdraw(ticket, e);
        }
    }

    /// Does what the lane asked a pusher to do.
    pub(crate) fn wake(&self, wake: Wake) {
        match wake {
            Wake::None => {}
            Wake::Actor => {
                if let Slot::Running(actor) = &**self.slot.load() {
                    // A closed mailbox means the actor just died: the
                    // supervisor wakes its successor.
                    let _ = actor.send_message(Envelope::Wake);
                }
            }
            Wake::Start => {
                let start = SupervisorMsg::Internal(Internal::start(self.id.clone()));
                if self.context.supervisor.send_message(start).is_err() {
                    // The runtime has stopped: nobody will serve the lane.
                    self.lane.fail_all(|| Error::ShuttingDown);
                }
            }
        }
    }

    // ----- residency -----------------------------------------------------

    /// Reads the published timeline. Only for a tenant known active: one a
    /// handle holds, or whose actor runs (see the module docs).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Timeline<M>) -> T) -> T {
        let published = self.published.load();
        let timeline = published
            .as_deref()
            .expect("an active tenant (held by a handle or served by its actor) has a timeline");
        f(timeline)
    }

    /// The published timeline; `None` while passivated.
    pub(crate) fn published(&self) -> Option<Arc<Timeline<M>>> {
        self.published.load_full()
    }

    /// Publishes a new timeline (the commit pipeline).
    pub(crate) fn publish(&self, timeline: Arc<Timeline<M>>) {
        self.published.store(Some(timeline));
    }

    /// The head revision for a listing: the active timeline's, or the one
    /// remembered at passivation (`None` if unknown).
    pub(crate) fn listed_revision(&self) -> Option<Revision> {
        match &*self.published.load() {
            Some(timeline) => Some(timeline.revision()),
            None => self
                .passive_revision
                .load(Ordering::Acquire)
                .checked_sub(1)
                .map(Revision),
        }
    }

    /// Makes the tenant active with `timeline` (the supervisor, on creation
    /// or activation): handles may hold it again.
    pub(crate) fn activate(
        &self,
        config: TenantConfig,
        timeline: Arc<Timeline<M>>,
        durable_seq: u64,
        image_seq: u64,
    ) {
        self.config.store(Arc::new(config));
        self.durable_seq.store(durable_seq, Ordering::Release);
        self.image_seq.store(image_seq, Ordering::Release);
        self.published.store(Some(timeline));
        self.touch();
        self.holds.fetch_and(!CLOSED, Ordering::AcqRel);
    }

    /// Drops the timeline (the supervisor, once [`close_holds`] succeeded
    /// and the lane [is quiet](Lane::is_quiet)).
    ///
    /// [`close_holds`]: Self::close_holds
    pub(crate) fn passivate(&self) {
        if let Some(timeline) = self.published.swap(None) {
            self.passive_revision
                .store(timeline.revision().0 + 1, Ordering::Release);
        }
    }

    /// A new handle's hold: fails while the tenant is passivated or being
    /// passivated.
    pub(crate) fn try_hold(&self) -> bool {
        let held = self
            .holds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |holds| {
                (holds & CLOSED == 0).then_some(holds + HOLD)
            })
            .is_ok();
        if held {
            self.touch();
        }
        held
    }

    /// A handle went.
    pub(crate) fn release(&self) {
        self.touch();
        self.holds.fetch_sub(HOLD, Ordering::AcqRel);
    }

    /// Begins passivation: succeeds only while no handle holds the tenant,
    /// and then no handle can until [`activate`](Self::activate) or
    /// [`reopen_holds`](Self::reopen_holds).
    pub(crate) fn close_holds(&self) -> bool {
        self.holds
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Passivation did not go ahead: handles may hold the tenant again.
    pub(crate) fn reopen_holds(&self) {
        self.holds.fetch_and(!CLOSED, Ordering::AcqRel);
    }

    /// Records a use, for idle passivation and the least-recently-used order.
    pub(crate) fn touch(&self) {
        self.last_used
            .store(self.context.now_us(), Ordering::Relaxed);
    }

    /// When the tenant was last used ([`Context::now_us`]).
    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// The tenant's configuration.
    pub(crate) fn config(&self) -> TenantConfig {
        **self.config.load()
    }

    /// The journal, if the runtime has one.
    pub(crate) fn journaling(&self) -> Option<&Journaling> {
        self.context.journaling.as_ref()
    }

    /// A new watcher of every revision published from now on.
    ///
    /// The slot is read after subscribing: a tenant whose slot ended
    /// before sent its end message (if any) before this receiver existed,
    /// so the watcher starts ended; otherwise the end message reaches it.
    pub(crate) fn subscribe(&self) -> Watcher {
        let events = self
            .events
            .get_or_init(|| broadcast::channel(WATCH_CAPACITY).0)
            .subscribe();
        Watcher::new(events, self.slot.load().watch_end())
    }

    /// Tells watchers that no revision will come again, and why: called
    /// once the slot says so ([`Slot::watch_end`]) and whatever the tenant
    /// accepted before has been published, so it comes after every
    /// revision.
    pub(crate) fn end_watch(&self, end: WatchEnd) {
        if let Some(events) = self.watchers() {
            // A watcher that left is not an error.
            let _ = events.send(Published::End(end));
        }
    }

    /// The watch channel, if anyone ever watched and someone still does.
    pub(crate) fn watchers(&self) -> Option<&broadcast::Sender<Published>> {
        self.events
            .get()
            .filter(|events| events.receiver_count() > 0)
    }

    pub(crate) fn failed_generation(&self) -> u64 {
        self.failed_generation.load(Ordering::Acquire)
    }

    pub(crate) fn set_failed_generation(&self, generation: u64) {
        self.failed_generation
            .fetch_max(generation, Ordering::AcqRel);
    }

    /// Routes requests by `slot` from now on. A slot no actor will serve
    /// again ends the watch at once when no actor drains the tenant;
    /// otherwise whoever waits for the drain calls
    /// [`end_watch`](Self::end_watch) after it.
    pub(crate) fn set_slot(&self, slot: Slot<M>) {
        let end = match &slot {
            Slot::Deleted { draining: Some(_) } | Slot::ShutDown { draining: Some(_) } => None,
            slot => slot.watch_end(),
        };
        self.slot.store(Arc::new(slot));
        self.slot_changed.send_modify(|generation| *generation += 1);
        if let Some(end) = end {
            self.end_watch(end);
        }
    }

    /// Takes the actor `leaving` out of routing, replacing its `Running`
    /// slot with `next`: `Restarting` before it fails (requests then wait
    /// for its restart instead of being sent to a mailbox that is about to
    /// be dropped), `Idle` when it stops for being idle. Any other slot (a
    /// newer actor, deleted, shut down) is left alone.
    pub(crate) fn release_slot(&self, leaving: ActorId, next: fn() -> Slot<M>) {
        let previous = self.slot.rcu(|slot| match &**slot {
            Slot::Running(actor) if actor.get_id() == leaving => Arc::new(next()),
            _ => Arc::clone(slot),
        });
        if matches!(&*previous, Slot::Running(actor) if actor.get_id() == leaving) {
            self.slot_changed.send_modify(|generation| *generation += 1);
        }
    }

    /// The running actor, if any.
    pub(crate) fn running(&self) -> Option<ActorRef<Envelope<M>>> {
        match &**self.slot.load() {
            Slot::Running(actor) => Some(actor.clone()),
            _ => None,
        }
    }

    /// The actor to send to, or the error that explains why there is none.
    /// `Ok(None)` means a restart is under way.
    pub(crate) fn route(&self) -> Result<Option<ActorRef<Envelope<M>>>, Error> {
        match &**self.slot.load() {
            Slot::Running(actor) => Ok(Some(actor.clone())),
            // Only an actor with no transaction stops for being idle, so a
            // lease message finding none has no transaction to reach.
            Slot::Idle => Err(Error::Unavailable {
                tenant: self.id.clone(),
                reason: "the transaction's tenant actor is no longer running".into(),
            }),
            slot => self.refusal(slot).map(|()| None),
        }
    }

    /// Whether the tenant takes requests now (running or restarting), or
    /// why not.
    pub(crate) fn accepting(&self) -> Result<(), Error> {
        self.refusal(&self.slot.load())
    }

    /// Why the tenant refuses requests now (`ShuttingDown` if it no longer
    /// does), for answering what is queued.
    pub(crate) fn refusal_now(&self) -> Error {
        self.accepting().err().unwrap_or(Error::ShuttingDown)
    }

    fn refusal(&self, slot: &Slot<M>) -> Result<(), Error> {
        match slot {
            Slot::Running(_) | Slot::Restarting | Slot::Idle => Ok(()),
            Slot::Unrecoverable(source) => Err(Error::Unrecoverable {
                tenant: self.id.clone(),
                source: source.clone(),
            }),
            Slot::Failed { restarts, period } => Err(Error::TenantFailed {
                tenant: self.id.clone(),
                restarts: *restarts,
                period: *period,
            }),
            Slot::Deleted { .. } => Err(Error::TenantNotFound(self.id.clone())),
            Slot::ShutDown { .. } => Err(Error::ShuttingDown),
        }
    }

    /// Whether the runtime shut the tenant down.
    pub(crate) fn is_shut_down(&self) -> bool {
        matches!(&**self.slot.load(), Slot::ShutDown { .. })
    }

    /// Where a transaction's lease messages go: like [`route`](Self::route),
    /// but a tenant that is being deleted or shut down still takes them, so
    /// the transaction it drains can finish and give the lease back.
    pub(crate) fn route_lease(&self) -> Result<Option<ActorRef<Envelope<M>>>, Error> {
        match &**self.slot.load() {
            Slot::Deleted {
                draining: Some(actor),
            }
            | Slot::ShutDown {
                draining: Some(actor),
            } => Ok(Some(actor.clone())),
            _ => self.route(),
        }
    }

    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    pub(crate) fn set_durable_seq(&self, seq: u64) {
        self.durable_seq.store(seq, Ordering::Release);
    }

    pub(crate) fn image_seq(&self) -> u64 {
        self.image_seq.load(Ordering::Acquire)
    }

    pub(crate) fn set_image_seq(&self, seq: u64) {
        self.image_seq.store(seq, Ordering::Release);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// One accepted request. Counted from acceptance until the permit is dropped
/// — when the actor has answered, or the request was dropped unanswered.
pub(crate) struct Permit<M: Model> {
    shared: Arc<TenantShared<M>>,
}

impl<M: Model> Permit<M> {
    /// Counts a new request, or answers `Overloaded` past `max_in_flight`.
    pub(crate) fn acquire(shared: &Arc<TenantShared<M>>) -> Result<Self, Error> {
        let limit = shared.config().max_in_flight;
        let previous = shared.in_flight.fetch_add(1, Ordering::AcqRel);
        if previous >= limit {
            shared.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Overloaded {
                tenant: shared.id.clone(),
                limit,
            });
        }
        Ok(Permit {
            shared: Arc::clone(shared),
        })
    }
}

impl<M: Model> Drop for Permit<M> {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
