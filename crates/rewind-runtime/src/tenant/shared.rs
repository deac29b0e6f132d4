//! What a tenant publishes for lock-free readers and request routing.
//!
//! The tenant's commit pipeline (its actor, or the publisher task the actor
//! hands durable batches to) is the only writer of `published`; the
//! supervisor writes `slot`, except that an actor about to fail after a
//! panic turns its own `Running` slot into `Restarting` (see
//! [`TenantShared::mark_restarting`]). Both hold immutable values swapped
//! whole. Requests reach the actor through the [`Lane`].

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use ractor::{ActorId, ActorRef};
use rewind_core::{Model, RevisionInfo, TenantId, Timeline};
use tokio::sync::{broadcast, watch};

use super::lane::Lane;
use super::messages::{Envelope, TenantMsg};
use crate::config::TenantConfig;
use crate::error::Error;
use crate::journal::Journal;

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
}

/// A tenant's link to the journal.
#[derive(Clone)]
pub(crate) struct Journaling {
    pub(crate) journal: Arc<dyn Journal>,
    /// Store an image of the timeline every this many entries.
    pub(crate) image_every: u64,
}

/// State shared between a tenant's actor, its handles and the supervisor.
pub(crate) struct TenantShared<M: Model> {
    pub(crate) id: TenantId,
    pub(crate) config: TenantConfig,
    /// The last committed timeline, replaced whole after every write.
    pub(crate) published: ArcSwap<Timeline<M>>,
    /// Where requests go; survives actor restarts.
    pub(crate) slot: ArcSwap<Slot<M>>,
    /// Bumped on every change of `slot`, so callers waiting out a restart
    /// wake up.
    pub(crate) slot_changed: watch::Sender<u64>,
    /// Requests accepted and not yet answered (see [`Permit`]).
    in_flight: AtomicUsize,
    /// Every new revision, for watchers: made on the first `watch()`, so a
    /// tenant nobody watches holds no channel (its 1,024 slots are most of
    /// what an idle tenant would cost).
    events: OnceLock<broadcast::Sender<RevisionInfo>>,
    /// Where the tenant's mutations are made durable; `None` in memory mode.
    pub(crate) journaling: Option<Journaling>,
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
    pub(crate) fn new(
        id: TenantId,
        config: TenantConfig,
        timeline: Timeline<M>,
        journaling: Option<Journaling>,
        durable_seq: u64,
        image_seq: u64,
    ) -> Arc<Self> {
        Arc::new(TenantShared {
            journaling,
            durable_seq: AtomicU64::new(durable_seq),
            image_seq: AtomicU64::new(image_seq),
            id,
            config,
            published: ArcSwap::from_pointee(timeline),
            slot: ArcSwap::from_pointee(Slot::Restarting),
            slot_changed: watch::channel(0).0,
            in_flight: AtomicUsize::new(0),
            events: OnceLock::new(),
            lane: Lane::default(),
            failed_generation: AtomicU64::new(0),
        })
    }

    /// Queues a request for the actor and wakes it if needed. A tenant that
    /// is failed, deleted or shut down answers the request with the reason
    /// at once; a restarting one keeps it for the next actor.
    pub(crate) fn submit(&self, msg: TenantMsg<M>, permit: Option<Permit<M>>) {
        if let Err(e) = self.accepting() {
            return msg.fail(e);
        }
        let (ticket, wake) = self.lane.push(msg, permit);
        if wake {
            if let Slot::Running(actor) = &**self.slot.load() {
                // A closed mailbox means the actor just died: the supervisor
                // wakes its successor.
                let _ = actor.send_message(Envelope::Wake);
            }
        }
        // The tenant may have been deleted, failed or shut down while the
        // request was queued: then no actor takes it, so take it back.
        if let Err(e) = self.accepting() {
            self.lane.withdraw(ticket, e);
        }
    }

    /// A new receiver of every revision published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<RevisionInfo> {
        self.events
            .get_or_init(|| broadcast::channel(WATCH_CAPACITY).0)
            .subscribe()
    }

    /// The watch channel, if anyone ever watched and someone still does.
    pub(crate) fn watchers(&self) -> Option<&broadcast::Sender<RevisionInfo>> {
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

    pub(crate) fn set_slot(&self, slot: Slot<M>) {
        self.slot.store(Arc::new(slot));
        self.slot_changed.send_modify(|generation| *generation += 1);
    }

    /// Takes the actor `failing` out of routing before it fails: requests
    /// then wait for its restart instead of being sent to a mailbox that is
    /// about to be dropped. Any other slot (a newer actor, deleted, shut
    /// down) is left alone.
    pub(crate) fn mark_restarting(&self, failing: ActorId) {
        let previous = self.slot.rcu(|slot| match &**slot {
            Slot::Running(actor) if actor.get_id() == failing => Arc::new(Slot::Restarting),
            _ => Arc::clone(slot),
        });
        if matches!(&*previous, Slot::Running(actor) if actor.get_id() == failing) {
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
            slot => self.refusal(slot).map(|()| None),
        }
    }

    /// Whether the tenant takes requests now (running or restarting), or
    /// why not.
    pub(crate) fn accepting(&self) -> Result<(), Error> {
        self.refusal(&self.slot.load())
    }

    fn refusal(&self, slot: &Slot<M>) -> Result<(), Error> {
        match slot {
            Slot::Running(_) | Slot::Restarting => Ok(()),
            Slot::Failed { restarts, period } => Err(Error::TenantFailed {
                tenant: self.id.clone(),
                restarts: *restarts,
                period: *period,
            }),
            Slot::Deleted { .. } => Err(Error::TenantNotFound(self.id.clone())),
            Slot::ShutDown { .. } => Err(Error::ShuttingDown),
        }
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
        let limit = shared.config.max_in_flight;
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
