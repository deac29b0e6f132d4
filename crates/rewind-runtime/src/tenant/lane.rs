//! The request lane: where requests for a tenant queue for its actor.
//!
//! Handles and the supervisor push [`TenantMsg`]s here and wake the actor
//! with one small message only when no wake-up is already on its way; the
//! actor takes everything queued at once and runs it as one batch. The lane
//! belongs to the tenant, not to an actor, so what is queued survives a
//! restart: the next actor takes it when the supervisor starts it.
//!
//! Wake-up protocol: a pusher queues its request, then sets `wake_pending`;
//! only the pusher that turned it on sends [`Envelope::Wake`]. The actor
//! turns it off *before* taking the queue, so a request pushed after the
//! take always finds it off and sends a new wake-up. A wake-up sent to an
//! actor that dies before reading it is replaced by the one the supervisor
//! sends to every actor it starts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// The queue of one tenant. The mutex is held only to push or take, never
/// across an `.await`.
pub(crate) struct Lane<M: Model> {
    queue: Mutex<VecDeque<Queued<M>>>,
    next_ticket: AtomicU64,
    wake_pending: AtomicBool,
}

impl<M: Model> Default for Lane<M> {
    fn default() -> Self {
        Lane {
            queue: Mutex::new(VecDeque::new()),
            next_ticket: AtomicU64::new(0),
            wake_pending: AtomicBool::new(false),
        }
    }
}

impl<M: Model> Lane<M> {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued<M>>> {
        // A panic while holding the lock cannot leave the queue inconsistent
        // (push and take are single calls): keep using it.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a request. Returns its ticket and whether the caller must wake
    /// the actor.
    pub(crate) fn push(&self, msg: TenantMsg<M>, permit: Option<Permit<M>>) -> (u64, bool) {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.queue().push_back(Queued {
            msg,
            permit,
            ticket,
        });
        let wake = !self.wake_pending.swap(true, Ordering::SeqCst);
        (ticket, wake)
    }

    /// Takes everything queued (the actor, on a wake-up).
    pub(crate) fn take_all(&self) -> VecDeque<Queued<M>> {
        self.wake_pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.queue())
    }

    /// Puts requests back at the front, in their order (what a failing
    /// actor did not get to; its successor takes them).
    pub(crate) fn put_back(&self, rest: VecDeque<Queued<M>>) {
        if rest.is_empty() {
            return;
        }
        let mut queue = self.queue();
        for queued in rest.into_iter().rev() {
            queue.push_front(queued);
        }
    }

    /// Removes and answers `error` to the request with `ticket`, if no actor
    /// took it yet.
    pub(crate) fn withdraw(&self, ticket: u64, error: Error) {
        let found = {
            let mut queue = self.queue();
            queue
                .iter()
                .position(|q| q.ticket == ticket)
                .and_then(|i| queue.remove(i))
        };
        if let Some(queued) = found {
            queued.msg.fail(error);
        }
    }

    /// Answers `error` to everything queued (no actor will take it).
    pub(crate) fn fail_all(&self, error: impl Fn() -> Error) {
        let queued = std::mem::take(&mut *self.queue());
        for q in queued {
            q.msg.fail(error());
        }
    }
}
