//! The actor runtime of rewind: tenants as ractor actors, a supervisor that
//! routes and restarts them, transactions with checkpoints, lock-free reads,
//! metrics and tracing.
//!
//! # Layout
//!
//! - [`Runtime`] (`runtime.rs`): starts the supervisor, creates and finds
//!   tenants.
//! - `tenant/`: one tenant.
//!   - `handle.rs`: the typed handle [`Tenant`]: lock-free reads of the
//!     published timeline; writes queued on the tenant's lane (`lane.rs`).
//!   - `actor.rs`: the tenant actor, the one writer of a tenant's
//!     [`Timeline`](rewind_core::Timeline): it takes everything queued as
//!     one batch.
//!   - `fork.rs`: [`Tenant::fork`] and [`Tenant::promote`]: forks that
//!     share structure with their parent, and promotions back to it.
//!   - `dispatch.rs`: each request ([`TenantMsg`]) as a typed op
//!     ([`rewind_core::Op`]) on the working timeline.
//!   - `lease.rs`: the transaction write lease and the writes that wait.
//!   - `commit.rs`: the open batch: journal entries and waiting answers;
//!     sealing and settling it.
//!   - `publish.rs`: durable batches published, watchers told, answers
//!     released, strictly in order; images stored.
//!   - `watcher.rs`: the [`Watcher`] of a tenant's new revisions, and the
//!     [`WatchEnd`] that says why they stopped.
//!   - `messages.rs`, `shared.rs`: the protocol, and the cells handles,
//!     actor and supervisor share.
//! - `supervisor/`: registry, routing ([`SupervisorMsg`]), restarts with an
//!   intensity limit, starting idle tenants' actors, activation and
//!   passivation, and the runtime's one timer; `links.rs`: links between
//!   tenants by [`Incarnation`](rewind_core::Incarnation) (a fork's parent)
//!   and what refuses a deletion ([`DeleteOptions`], [`DeleteRefusal`]).
//! - `transaction/`: [`TransactionPlan`] / [`TransactionBuilder`], the
//!   transaction actor holding the tenant's write lease, and the
//!   [`TransactionReport`].
//! - [`journal`]: the durability port ([`Journal`]) that `rewind-store`
//!   implements; `durability.rs`: how tenants are encoded as journal entries
//!   and images, and recovered from them.
//! - [`metrics`]: metric names and buckets; [`config`](TenantConfig);
//!   [`Error`].
//!
//! # Many tenants
//!
//! A tenant costs little while it has nothing to do: its actor runs only
//! while requests come (it stops after
//! [`stop_idle_actors_after`](RuntimeBuilder::stop_idle_actors_after)
//! without one, and the next request starts another), its watch channel is
//! made on the first `watch()`, and one runtime-wide timer drives the
//! interval auto-snapshot policy. With a journal, tenants are also
//! *passivated*: a tenant no [`Tenant`] handle holds, with no transaction
//! and nothing queued, leaves memory once idle for its
//! [`passivate_after`](TenantConfig::passivate_after), or when it is the
//! least recently used past [`max_active`](RuntimeBuilder::max_active); its
//! next request reads it back from its newest image and the entries after
//! it. Start lists the journal's tenants without reading them. The metrics
//! `rewind_tenants_active`, `rewind_tenant_activations_total`,
//! `rewind_tenant_passivations_total{reason}` and
//! `rewind_tenant_activation_duration_seconds` show it at work; without a
//! journal nothing is passivated.
//!
//! # Example
//!
//! ```
//! use rewind_core::{Doc, Patch, RollbackTarget, SnapshotName};
//! use rewind_runtime::Runtime;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::<Doc>::start().await?;
//! let tenant = runtime
//!     .create_tenant("acme_corp", Doc::from_json(&json!({"version": "1.0"}))?)
//!     .await?;
//! tenant.snapshot_named("v1.0").await?;
//! tenant
//!     .apply(Patch::from_json(&json!([{"op": "replace", "path": "/version", "value": "2.0"}]))?)
//!     .await?;
//! assert_eq!(tenant.current()["version"], "2.0"); // lock-free read
//! tenant.rollback(RollbackTarget::Named(SnapshotName::new("v1.0")?)).await?;
//! assert_eq!(tenant.current()["version"], "1.0");
//! runtime.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod config;
pub mod deploy;
mod door;
mod durability;
mod error;
pub mod journal;
pub mod metrics;
mod runtime;
mod supervisor;
mod tenant;
mod transaction;

/// The actor framework rewind's tenants run on, for services that drive
/// them by messages (`ActorRef`, `RpcReplyPort`, ...).
pub use ractor;

pub use config::{
    AutoSnapshotPolicy, IdempotencyWindow, RestartIntensity, TenantConfig, DEFAULT_PASSIVATE_AFTER,
};
pub use door::{ask, ask_raw, TenantRef};
pub use error::{BoxError, Error, ErrorKind};
pub use journal::{
    Durable, Entry, EntryKind, Image, ImageQuery, Journal, JournalError, JournalHolder, JournalSeq,
};
pub use runtime::{
    RecoveryReport, Runtime, RuntimeBuilder, DEFAULT_IMAGE_EVERY, DEFAULT_MAX_ACTIVE,
    DEFAULT_STOP_IDLE_AFTER, DEFAULT_TIMER_PERIOD,
};
pub use supervisor::links::{DeleteOptions, DeleteRefusal, Detached, OpenDeployment};
pub use supervisor::messages::SupervisorMsg;
pub use tenant::fork::{ForkStatus, PromoteOptions, Promoted};
pub use tenant::handle::Tenant;
pub use tenant::messages::{TenantMsg, UpdateFn, WriteOptions};
pub use tenant::watcher::{WatchEnd, WatchError, Watcher};
pub use transaction::{
    FailureReason, StepAction, StepFailure, StepRecord, TransactionBuilder, TransactionPlan,
    TransactionReport,
};
