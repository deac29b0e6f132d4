//! The request lane: where requests for a tenant queue for its actor.
//!
//! Handles and the supervisor push [`TenantMsg`]s here and wake the actor
//! with one small message only when no wake-up is already on its way; the
//! actor takes everything queued at once and runs it as one batch. The lane
//! belongs to the tenant, not to an actor, so what is queued survives a
//! restart, and a tenant can have no actor at all: an idle tenant's actor
//! stops, and the next push asks the supervisor for a new one.
//!
//! Everything is decided under the lane's mutex, which is held only to push
//! or take, never across an `.await`:
//! - with an actor ([`Mode::Running`]), a pusher sends [`Wake::Actor`] only
//!   if no wake-up is pending; the actor clears the flag as it takes the
//!   queue, so a request pushed after the take always sends a new one. A
//!   wake-up sent to an actor that dies before reading it is replaced by
//!   the one the supervisor sends to every actor it starts.
//! - without one ([`Mode::Stopped`]), the first pusher gets [`Wake::Start`]
//!   and asks the supervisor to start (or activate) the tenant; later
//!   pushers just queue.
//! - an actor stops only through [`Lane::try_stop`], which refuses while
//!   anything is queued; the supervisor passivates a tenant only while
//!   [`Lane::is_quiet`]. So no request is left in a lane nobody serves.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rewind_core::Model;

use super::messages::TenantMsg;
use super::shared::Permit;
use crate::error::Error;

/// One queued request with its in-flight permit.
pub(crate) struct Queued<M: Model> {
    pub(crate) msg: TenantMsg<M>,
    pub(crate) permit: Option<Permit<M>>,
    ticket: u64,
}

/// Whether an actor serves the lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// An actor takes what is queued (or one is restarting).
    Running,
    /// No actor; the next push asks for one.
    Stopped,
    /// No actor; one was asked for.
    Starting,
}

/// What a pusher must do after queuing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing: a wake-up or a start is already on its way.
    None,
    /// Send [`Envelope::Wake`](super::messages::Envelope::Wake) to the actor.
    Actor,
    /// Ask the supervisor to start the tenant's actor.
    Start,
}

/// What the actor takes on a wake-up.
pub(crate) struct Taken<M: Model> {
    pub(crate) queued: VecDeque<Queued<M>>,
    /// The interval auto-snapshot policy is due.
    pub(crate) tick: bool,
}

struct Inner<M: Model> {
    queue: VecDeque<Queued<M>>,
    tick: bool,
    mode: Mode,
    wake_pending: bool,
}

/// The queue of one tenant.
pub(crate) struct Lane<M: Model> {
    inner: Mutex<Inner<M>>,
    next_ticket: AtomicU64,
}

impl<M: Model> Lane<M> {
    /// A lane with no actor yet.
    pub(crate) fn new() -> Self {
        Lane {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                tick: false,
                mode: Mode::Stopped,
                wake_pending: false,
            }),
            next_ticket: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<M>> {
        // A panic while holding the lock cannot leave the lane inconsistent
        // (every change is a few plain assignments): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request. Returns its ticket and what the caller must do.
    pub(crate) fn push(&self, msg: TenantMsg<M>, permit: Option<Permit<M>>) -> (u64, Wake) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.queue.push_back(Queued {
            msg,
            permit,
            ticket,
        });
        (ticket, inner.wake())
    }

    /// Asks for an interval auto snapshot (the runtime's timer). Returns what
    /// the caller must do, as for [`push`](Self::push).
    pub(crate) fn push_tick(&self) -> Wake {
        let mut inner = self.lock();
        inner.tick = true;
        inner.wake()
    }

    /// Takes everything queued (the actor, on a wake-up).
    pub(crate) fn take_all(&self) -> Taken<M> {
        let mut inner = self.lock();
        inner.wake_pending = false;
        Taken {
            queued: std::mem::take(&mut inner.queue),
            tick: std::mem::take(&mut inner.tick),
        }
    }

    /// A new actor serves the lane; the supervisor sends it one wake-up.
    pub(crate) fn started(&self) {
        let mut inner = self.lock();
        inner.mode = Mode::Running;
        inner.wake_pending = true;
    }

    /// The actor asks to stop: granted only if nothing is queued. After
    /// that, the next push asks for a new actor.
    pub(crate) fn try_stop(&self) -> bool {
        let mut inner = self.lock();
        if !inner.queue.is_empty() || inner.tick || inner.mode != Mode::Running {
            return false;
        }
        inner.mode = Mode::Stopped;
        inner.wake_pending = false;
        true
    }

    /// No actor, none asked for, nothing queued: the tenant may passivate.
    /// A push after this asks the supervisor for the tenant again.
    pub(crate) fn is_quiet(&self) -> bool {
        let inner = self.lock();
        inner.mode == Mode::Stopped && inner.queue.is_empty() && !inner.tick
    }

    /// No actor serves the lane (none was started since the last stopped).
    pub(crate) fn needs_actor(&self) -> bool {
        self.lock().mode != Mode::Running
    }

    /// The start asked for did not happen (the tenant is already being
    /// started, or could not be): the next push asks again.
    pub(crate) fn start_refused(&self) {
        let mut inner = self.lock();
        if inner.mode == Mode::Starting {
            inner.mode = Mode::Stopped;
        }
    }

    /// Puts requests back at the front, in their order (what a failing
    /// actor did not get to; its successor takes them).
    pub(crate) fn put_back(&self, rest: VecDeque<Queued<M>>) {
        if rest.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for queued in rest.into_iter().rev() {
            inner.queue.push_front(queued);
        }
    }

    /// Removes and answers `error` to the request with `ticket`, if no actor
    /// took it yet.
    pub(crate) fn withdraw(&self, ticket: u64, error: Error) {
        let found = {
            let mut inner = self.lock();
            inner
                .queue
                .iter()
                .position(|q| q.ticket == ticket)
                .and_then(|i| inner.queue.remove(i))
        };
        if let Some(queued) = found {
            queued.msg.fail(error);
        }
    }

    /// Answers `error` to everything queued (no actor will take it).
    pub(crate) fn fail_all(&self, error: impl Fn() -> Error) {
        let queued = {
            let mut inner = self.lock();
            inner.tick = false;
            std::mem::take(&mut inner.queue)
        };
        for q in queued {
            q.msg.fail(error());
        }
    }
}

impl<M: Model> Inner<M> {
    fn wake(&mut self) -> Wake {
        match self.mode {
            Mode::Running if !self.wake_pending => {
                self.wake_pending = true;
                Wake::Actor
            }
            Mode::Stopped => {
                self.mode = Mode::Starting;
                Wake::Start
            }
            _ => Wake::None,
        }
    }
}
