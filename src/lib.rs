//! rewind: a multi-tenant snapshot & rollback runtime for async Rust services.
//!
//! Each tenant is an actor owning an immutable state and its history:
//! automatic snapshots in a bounded ring, named snapshots, transaction
//! checkpoints. Roll back to a named snapshot, a point in time, the latest
//! snapshot, a checkpoint or a revision; diff any two states; read the
//! current state lock-free.
//!
//! This facade re-exports the crates of the workspace:
//!
//! - [`core`]: the pure model — persistent JSON documents, JSON Patch,
//!   timelines with snapshots, retention, rollback and diff.
//! - [`runtime`]: tenant actors, the supervisor, transactions, metrics.
//! - [`store`]: durable journals — embedded SQLite (group commit, crash
//!   recovery) and in-memory.
//!
//! The [`prelude`] brings the names a service needs.
//!
//! # Example
//!
//! ```
//! use rewind::prelude::*;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::<Doc>::start().await?;
//! let acme = runtime
//!     .create_tenant("acme_corp", Doc::from_json(&json!({"version": "1.9.5"}))?)
//!     .await?;
//! acme.snapshot_named("pre_v2_deploy").await?;
//! acme.apply(Patch::from_json(&json!([
//!     {"op": "replace", "path": "/version", "value": "2.0.0"}
//! ]))?)
//! .await?;
//! acme.rollback_to_named_snapshot("pre_v2_deploy").await?;
//! assert_eq!(acme.current()["version"], "1.9.5");
//! runtime.shutdown().await?;
//! # Ok(())
//! # }
//! ```

//! # Upgrading from the previous release
//!
//! | before | now | why |
//! |---|---|---|
//! | `runtime.tenant(id)` | `runtime.tenant(id).await` | a passivated tenant is read back from the journal first |
//! | `runtime.tenants()`, `tenants_page()`, `SupervisorMsg::ListTenants` give `Revision` | `Option<Revision>` | listing reads no passivated tenant back: `None` for one not active since the start |
//! | every tenant read back at start; `runtime.recovery()` reports all | read back on first use; `RuntimeBuilder::eager_recovery(true)` for the old way | a journal of a million tenants serves within seconds |
//! | `TenantConfig` | adds `passivate_after` (default 2 min) | idle tenants leave memory (with a journal) |
//! | `RuntimeBuilder` | adds `max_active`, `stop_idle_actors_after`, `timer_period`, `eager_recovery` | passivation and the runtime's one timer |
//! | `Runtime` | adds `passivate`, `active_count`, `tenant_exists` | |
//! | after `shutdown()`, `tenant(id)` answered `Ok` | `Err(ShuttingDown)` | every call says the runtime stopped |
//! | `snapshot_named(&str)`, `snapshot_with(SnapshotName, ..)`, `protect(&str, ..)`, `delete_snapshot(&str)`, `rollback_to_named_snapshot(&str)` | each takes a `&str`, `String` or `SnapshotName` | one spelling |
//! | parse references yourself | `StateRef` and `RollbackTarget` implement `FromStr` / `TryFrom<&str>` (`head`, `7`, `snapshot:v1`, `latest`, ...) | |
//! | your own `ask` helper over `ActorRef::call` | `rewind::runtime::ask`, `ask_raw`, `TenantRef`, `TenantMsg::Revision`; `rewind::ractor` re-exported | the actor door without boilerplate |
//! | a failed transaction that changed nothing still appended a rollback revision and a pre-rollback snapshot | none; `TransactionReport::unchanged` (new field) and its `Display` say so; `Aborted::unchanged` in the core | a quieter history (old journal records replay as they ran) |
//! | a typed state that is not JSON failed at the first diff or rollback | refused at `create_tenant`, `replace` and the first `apply` with `InvalidInput::ModelNotJson`; `Model::check_json`, `check_change_json` | |
//! | a changed model made its tenants "corrupt" | `Model::VERSION`, `Model::upgrade`, `Model::upgrade_change`; `JournalError::ModelMismatch`, `ModelTooNew`; `TimelineImage::upgrade_states` | schema evolution (see `examples/model_evolution.rs`) |
//! | `Journal` | adds `live_tenants` (with a default) | start lists tenants in one query |
//! | `SupervisorMsg` | adds `Internal` (the runtime's own messages; it cannot be built outside) | |
//! | `InvalidInput` | adds `ModelNotJson`, `Reference` | |
//! | `JournalError` | adds `Fenced { shard, epoch }` | a cluster node that lost a shard's lease has its writes refused |
//! | one node, SQLite | also `rewind::store::{PgStore, PgJournal, PgOptions, Fence, shard_of}`: the journal on PostgreSQL, scoped to a shard and fenced by its lease; `rewind serve --postgres URL` for a cluster | many nodes (README "Cluster") |
//! | releases guarded by hand | `tenant.deploy(change).name(..).check(..).interval(..).window(..).failure_limit(..).error_limit(..).start()` / `.run()`; `rewind::runtime::deploy::{HealthCheck, PrometheusCheck, HttpCheck, CheckHosts, Deployment}`; `rewind::core::deploy` (specs, measurements, `parse_duration`); `Tenant::{deployments, deployment, abort_deployment, promote_deployment, record_measurements, finish_deployment}`; `RuntimeBuilder::{health_check, check_hosts}` | guarded deployments (README "Guarded deployments") |
//! | `TenantMsg` | adds `StartDeployment`, `RecordMeasurements`, `FinishDeployment` (an exhaustive `match` needs arms) | |
//! | `TimelineOp` (non-exhaustive) | adds `StartDeployment`, `RecordMeasurements`, `FinishDeployment` | older versions refuse journals that hold them |
//! | `TimelineError` | adds `DeploymentRunning`, `DeploymentNotFound`, `DeploymentFinished`, `HeldByDeployment` | |
//! | `Journal` | adds `set_resume_mark`, `resume_marks` (defaults: `JournalError::Unsupported`, none) | a restarted runtime finds deployments to resume without reading every tenant |
//! | `JournalError` | adds `Unsupported` | |
//! | `rewind_server::ClusterConfig` | adds `check_hosts` | |
//! | `rewind_server::Api::runtime()` gave `&Runtime<Doc>` | `Option<&Runtime<Doc>>` (`None` for a cluster node, which holds a runtime per owned shard); `Api::cluster(..)` is new | |
//! | no forks | `Tenant::fork`, `fork_with`, `promote`, `promote_with`, `fork_info`, `forks`; `PromoteOptions`, `Promoted`; in the core `ForkInfo`, `ForkRecord`, `PromoteStrategy`, `Promotion`, `merge`, `MergeConflict`, `MergeError`, `Timeline::new_fork`, `ops::{RecordFork, Promote}` | live forks that share structure with their parent, promoted back as one revision (README "Forks") |
//! | `Cause` | adds `Fork { parent, base_revision }`, `Promote { fork, fork_revision, strategy }` | a fork's revision 0 and a promotion's revision say where they came from |
//! | `Error` | adds `NotAFork`, `MergeConflict`; `SupervisorMsg` adds `CreateFork`; `TenantMsg` adds `RecordFork`, `Promote` | |
//! | `Runtime::delete_tenant` deleted any tenant | it refuses one with attached forks, protected snapshots or a deployment in progress (`Error::DeleteRefused` naming them); `Runtime::delete_tenant_with(id, DeleteOptions { force, detach_forks })` deletes it anyway; `SupervisorMsg::DeleteTenant` adds `options` | protection means protection; HTTP `DELETE /v1/tenants/{t}?force=true&detach_forks=true`, `rewind delete --force --detach-forks` |
//! | a fork's parent was a name | `Incarnation` (core); `ForkInfo::parent_incarnation`, `ForkRecord::fork_incarnation`, `Timeline::{incarnation, set_incarnation}`, `record_fork` takes the fork's incarnation; `Tenant::{incarnation, fork_status, attached_forks}`, `ForkStatus`, `Detached`; `Error::ForkDetached`; `TenantMsg::{RecordFork, Promote}` add incarnations | a later tenant of a deleted parent's name is never promoted into (409 `fork_detached`) |
//! | a failed append was always `Error::Journal` ("not applied"), even when its `COMMIT` answer was lost and it had been stored | `Error::OutcomeUnknown` / `ErrorKind::OutcomeUnknown` when nobody could tell; `JournalError::{OutcomeUnknown, Unavailable}` and `is_outcome_unknown`; after any failed append the tenant reads itself back from the journal before it writes again | three outcomes, never two (README "What an answer means") |
//! | a retried write was applied again | `CommitMeta::idempotency` (new field: struct literals need `..Default::default()`), `IdempotencyKey`, `CommitMeta::{by, with_idempotency}`; `TenantConfig::idempotency` (`IdempotencyWindow`); `Error::IdempotencyKeyReused` | HTTP `Idempotency-Key` on creation, `PUT` and `PATCH` of the state |
//! | `tenant.transaction()...run()` and `run_transaction(plan)` answered `Ok(report)` for a transaction that rolled back or failed | `Err(Error::TransactionFailed { tenant, report })` (`ErrorKind::TransactionFailed`; `err.transaction_report()`, `into_transaction_report()`); `run_report()` / `run_transaction_report(plan)` answer the report whatever the outcome | a `?` no longer passes a failed transaction on as success |
//! | `Tenant::watch()` gave a `broadcast::Receiver<RevisionInfo>` that closed without a word | a `Watcher`: `recv()` / `try_recv()` answer revisions, then `Err(WatchError::Ended(WatchEnd::Deleted \| Failed \| ShutDown))`; `WatchError::Lagged(n)` as before | a watcher knows a deleted tenant from a stopped runtime |
//! | `rewind transaction` exited 0 after a rollback; `rewind watch` exited 0 when its tenant was deleted | exit 3 (rolled back), 4 (failed, no rollback); `rewind watch` exits 1 (deleted or failed), 5 (the server ended the stream, with the `--after N` that resumes); `rewind_server::{exit_code, Unfinished}` | scripts see the outcome |
//! | `GET .../watch` went quiet for a tenant deleted, or a `Last-Event-ID` beyond the head | `deleted` / `failed` events end the stream; `reset` {"after","head"} answers a resume point beyond the head | |

/// The README's code blocks, compiled and run as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use rewind_core as core;
pub use rewind_runtime as runtime;
pub use rewind_store as store;

/// The actor framework the tenants run on: a service that drives tenants
/// by messages needs no direct dependency on it.
pub use rewind_runtime::ractor;

/// The runtime's error, which every error of a service's rewind calls
/// converts into with `?` (a [`JournalError`](runtime::JournalError)
/// included); match [`Error::kind`] for what to answer.
pub use rewind_runtime::{Error, ErrorKind};

/// The names most services need, errors included: a service written with
/// only `use rewind::prelude::*;` opens its journal and starts its runtime
/// with `?` throughout.
///
/// ```
/// use rewind::prelude::*;
///
/// fn open_journal(path: &std::path::Path) -> Result<SqliteJournal, rewind::Error> {
///     Ok(SqliteJournal::open(path, SqliteOptions::default())?)
/// }
///
/// async fn open(path: &std::path::Path) -> Result<Runtime<Doc>, rewind::Error> {
///     let journal = open_journal(path)?;
///     Runtime::<Doc>::builder()
///         .journal(std::sync::Arc::new(journal))
///         .start()
///         .await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("rewind-prelude-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("rewind.db");
/// let runtime = open(&path).await?;
/// // One runtime per journal: a second open is refused, one level deep.
/// let error = open_journal(&path).unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::Journal);
/// assert!(matches!(error, Error::Store(JournalError::AlreadyOpen { .. })));
/// runtime.shutdown().await?;
/// # drop(runtime);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
///
/// A typed-model service, from the prelude alone (and serde for its types):
///
/// ```
/// use rewind::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Default, Serialize, Deserialize)]
/// struct Counter {
///     hits: u64,
/// }
///
/// #[derive(Clone, Debug, Serialize, Deserialize)]
/// enum Hit {
///     One,
///     Many(u64),
/// }
///
/// #[derive(Debug)]
/// struct Overflow;
///
/// impl std::fmt::Display for Overflow {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the counter overflowed")
///     }
/// }
///
/// impl std::error::Error for Overflow {}
///
/// impl Model for Counter {
///     type Change = Hit;
///     type Error = Overflow;
///     fn apply(&self, hit: &Hit) -> Result<Counter, Overflow> {
///         let n = match hit {
///             Hit::One => 1,
///             Hit::Many(n) => *n,
///         };
///         let hits = self.hits.checked_add(n).ok_or(Overflow)?;
///         Ok(Counter { hits })
///     }
/// }
///
/// async fn serve(path: &std::path::Path) -> Result<u64, rewind::Error> {
///     let journal = SqliteJournal::open(path, SqliteOptions::default())?;
///     let runtime = Runtime::<Counter>::builder()
///         .journal(std::sync::Arc::new(journal))
///         .start()
///         .await?;
///     let page = runtime.tenant_or_create("home", Counter::default).await?;
///     page.apply(Hit::Many(41)).await?;
///     let commit = page.apply(Hit::One).await?;
///     drop(page);
///     runtime.shutdown().await?;
///     Ok(commit.revision.get())
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("rewind-typed-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// assert_eq!(serve(&dir.join("counter.db")).await?, 2);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub mod prelude {
    pub use rewind_core::{
        Cause, ChangeKind, Diff, Doc, ForkInfo, ForkRecord, Model, NamedOptions, Patch, PatchError,
        Pointer, PromoteStrategy, Revision, RevisionInfo, RollbackPolicy, RollbackTarget,
        SnapshotInfo, SnapshotKind, SnapshotName, StateRef, TenantId, Timeline, TimelineConfig,
        TimelineError, Timestamp, TransactionOutcome,
    };
    pub use rewind_runtime::{
        ask, AutoSnapshotPolicy, DeleteOptions, Detached, Error, ErrorKind, FailureReason,
        ForkStatus, Journal, JournalError, JournalHolder, PromoteOptions, Promoted,
        RestartIntensity, Runtime, SupervisorMsg, Tenant, TenantConfig, TenantMsg, TenantRef,
        TransactionPlan, TransactionReport, WatchEnd, WatchError, Watcher, WriteOptions,
    };
    pub use rewind_store::{MemoryJournal, SqliteJournal, SqliteOptions, SyncMode};
}
