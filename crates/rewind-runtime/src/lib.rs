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
//!   - `dispatch.rs`: each request ([`TenantMsg`]) as a typed op
//!     ([`rewind_core::Op`]) on the working timeline.
//!   - `lease.rs`: the transaction write lease and the writes that wait.
//!   - `commit.rs`: the open batch: journal entries and waiting answers;
//!     sealing and settling it.
//!   - `publish.rs`: durable batches published, watchers told, answers
//!     released, strictly in order; images stored.
//!   - `messages.rs`, `shared.rs`: the protocol, and the cells handles,
//!     actor and supervisor share.
//! - `supervisor/`: registry, routing ([`SupervisorMsg`]), restarts with an
//!   intensity limit.
//! - `transaction/`: [`TransactionPlan`] / [`TransactionBuilder`], the
//!   transaction actor holding the tenant's write lease, and the
//!   [`TransactionReport`].
//! - [`journal`]: the durability port ([`Journal`]) that `rewind-store`
//!   implements; `durability.rs`: how tenants are encoded as journal entries
//!   and images, and recovered from them.
//! - [`metrics`]: metric names and buckets; [`config`](TenantConfig);
//!   [`Error`].
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
mod durability;
mod error;
pub mod journal;
pub mod metrics;
mod runtime;
mod supervisor;
mod tenant;
mod transaction;

pub use config::{AutoSnapshotPolicy, RestartIntensity, TenantConfig, DEFAULT_PASSIVATE_AFTER};
pub use error::{BoxError, Error, ErrorKind};
pub use journal::{
    Durable, Entry, EntryKind, Image, ImageQuery, Journal, JournalError, JournalHolder, JournalSeq,
};
pub use runtime::{
    RecoveryReport, Runtime, RuntimeBuilder, DEFAULT_IMAGE_EVERY, DEFAULT_MAX_ACTIVE,
    DEFAULT_STOP_IDLE_AFTER, DEFAULT_TIMER_PERIOD,
};
pub use supervisor::messages::SupervisorMsg;
pub use tenant::handle::Tenant;
pub use tenant::messages::{TenantMsg, UpdateFn, WriteOptions};
pub use transaction::{
    FailureReason, StepAction, StepFailure, StepRecord, TransactionBuilder, TransactionPlan,
    TransactionReport,
};
