//! One tenant: its actor, its messages, its typed handle, and the cells the
//! actor publishes to.
//!
//! - `handle`: the typed [`Tenant`](crate::Tenant) handle: lock-free reads,
//!   writes queued on the lane.
//! - `fork`: forks made from a handle, and promotions back to the parent.
//! - `lane`: the request queue from handles and the supervisor to the actor.
//! - `actor`: the ractor actor: wake-ups, batches, drains, restarts.
//! - `dispatch`: one request as a typed op on the working timeline.
//! - `idempotency`: retries of keyed writes answered, not applied again.
//! - `lease`: the transaction write lease and the writes waiting for it.
//! - `commit`: the open batch, sealing it, settling the pipeline.
//! - `publish`: durable batches published and answered in order; images.
//! - `watcher`: a tenant's revisions for watchers, then why they stopped.
//! - `messages`, `shared`: the protocol and what handles and actor share.

pub(crate) mod actor;
mod commit;
mod dispatch;
pub(crate) mod fork;
pub(crate) mod handle;
mod idempotency;
pub(crate) mod lane;
mod lease;
pub(crate) mod messages;
pub(crate) mod publish;
pub(crate) mod shared;
pub(crate) mod watcher;
