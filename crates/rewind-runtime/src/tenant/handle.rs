//! [`Tenant`]: the typed async handle a service uses.
//!
//! Writes are messages to the tenant actor. Reads — the head, a past state,
//! diffs, history, snapshot lists, dry runs — are answered in the caller's
//! task from the last published timeline: no message, no lock.

use std::sync::Arc;
use std::time::Duration;

use ractor::{MessagingErr, RpcReplyPort};
use rewind_core::{
    Commit, Diff, Doc, MemoryUsage, Model, NamedOptions, Revision, RevisionInfo, RollbackOutcome,
    RollbackPreview, RollbackTarget, SnapshotInfo, SnapshotName, StateRef, TenantId, Timeline,
    Timestamp,
};
use tokio::sync::oneshot;

use super::messages::{Envelope, TenantMsg, WriteOptions};
use super::shared::{Permit, TenantShared};
use super::watcher::Watcher;
use crate::error::{BoxError, Error};
use crate::transaction::{TransactionBuilder, TransactionPlan, TransactionReport};

/// How long a request waits for a restarting tenant to come back.
const RESTART_WAIT: Duration = Duration::from_secs(5);

/// Sends a transaction's lease message to the tenant's current actor,
/// waiting out a restart; it also reaches an actor that is draining before a
/// delete or a shutdown. On failure the envelope comes back with the error,
/// so its reply port can be answered.
pub(crate) async fn deliver<M: Model>(
    shared: &TenantShared<M>,
    mut envelope: Envelope<M>,
) -> Result<(), (Error, Envelope<M>)> {
    let deadline = tokio::time::Instant::now() + RESTART_WAIT;
    // Subscribed only once the first attempt found no actor (then the route
    // is checked again before waiting, so no change is missed).
    let mut changes: Option<tokio::sync::watch::Receiver<u64>> = None;
    loop {
        if let Some(changes) = &mut changes {
            changes.mark_unchanged();
        }
        match shared.route_lease() {
            Err(e) => return Err((e, envelope)),
            Ok(Some(actor)) => match actor.send_message(envelope) {
                Ok(()) => return Ok(()),
                // The actor just died; the supervisor is restarting it.
                Err(MessagingErr::SendErr(back)) => envelope = back,
                Err(_) => unreachable!("send_message only returns SendErr with the message"),
            },
            Ok(None) => {}
        }
        let Some(changes) = &mut changes else {
            changes = Some(shared.slot_changed.subscribe());
            continue;
        };
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            let reason = "it is restarting and did not come back in time".to_owned();
            let tenant = shared.id.clone();
            return Err((Error::Unavailable { tenant, reason }, envelope));
        }
    }
}

/// A handle to one tenant. Cheap to clone; stays valid across restarts of
/// the tenant's actor.
///
/// A live handle keeps its tenant active: the runtime passivates only
/// tenants no handle holds. Look a tenant up per use (as the HTTP server
/// does per request) rather than keeping a handle for every tenant, or
/// none of them can be passivated.
pub struct Tenant<M: Model = Doc> {
    pub(super) shared: Arc<TenantShared<M>>,
}

impl<M: Model> Clone for Tenant<M> {
    fn clone(&self) -> Self {
        // This handle's hold keeps the tenant active, so another succeeds.
        let held = self.shared.try_hold();
        debug_assert!(held, "a held tenant takes another hold");
        Tenant {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Model> Drop for Tenant<M> {
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl<M: Model> std::fmt::Debug for Tenant<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("id", &self.shared.id)
            .field("revision", &self.revision())
            .finish()
    }
}

impl<M: Model> Tenant<M> {
    /// A handle holding `shared` active; `None` if it is passivated or
    /// being passivated.
    pub(crate) fn hold(shared: Arc<TenantShared<M>>) -> Option<Self> {
        // Built only once the hold is taken: dropping a handle releases one.
        if shared.try_hold() {
            Some(Tenant { shared })
        } else {
            None
        }
    }

    /// What the tenant shares with its actor and runtime.
    pub(crate) fn shared(&self) -> &Arc<TenantShared<M>> {
        &self.shared
    }

    /// The tenant id.
    pub fn id(&self) -> &TenantId {
        &self.shared.id
    }

    // ----- lock-free reads -----------------------------------------------

    /// The current state: no message, no lock (an atomic load and an O(1)
    /// clone).
    pub fn current(&self) -> M {
        self.shared.read(|t| t.head().clone())
    }

    /// The current revision, lock-free.
    pub fn revision(&self) -> Revision {
        self.shared.read(|t| t.revision())
    }

    /// What the tenant's states cost in memory, estimated: the current
    /// state's bytes shared with history and its own, and the bytes only
    /// history holds (what [`TimelineConfig::history_budget`] bounds).
    /// Lock-free, O(1): no tree is walked.
    ///
    /// [`TimelineConfig::history_budget`]: rewind_core::TimelineConfig::history_budget
    pub fn memory(&self) -> MemoryUsage {
        self.shared.read(|t| t.memory())
    }

    /// The whole last published timeline, lock-free. It is immutable: later
    /// writes publish a new one.
    pub fn timeline(&self) -> Arc<Timeline<M>> {
        self.shared
            .published()
            .expect("a tenant held by a handle is active")
    }

    /// The state at a reference, from the published timeline.
    pub fn read_at(&self, at: &StateRef) -> Result<M, Error> {
        self.shared
            .read(|t| t.state_at(at))
            .map_err(|e| Error::core(self.id(), e))
    }

    /// The differences between two references.
    pub fn diff(&self, from: &StateRef, to: &StateRef) -> Result<Diff, Error> {
        self.shared
            .read(|t| t.diff(from, to))
            .map_err(|e| Error::core(self.id(), e))
    }

    /// What a rollback would restore and change, without making it.
    pub fn rollback_dry_run(&self, target: &RollbackTarget) -> Result<RollbackPreview, Error> {
        self.shared
            .read(|t| t.rollback_dry_run(target))
            .map_err(|e| Error::core(self.id(), e))
    }

    /// The newest `limit` revisions of the history window, newest first.
    pub fn history(&self, limit: usize) -> Vec<RevisionInfo> {
        self.shared
            .read(|t| t.history().rev().take(limit).cloned().collect())
    }

    /// Auto and named snapshots, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        self.shared.read(|t| t.snapshots())
    }

    /// Every new revision from now on, then why they stopped: the tenant
    /// was deleted, failed or shut down ([`WatchError::Ended`]). A watcher
    /// that falls more than 1024 revisions behind gets
    /// [`WatchError::Lagged`] with the count it missed. Time: O(1); the
    /// tenant's channel is made on its first watch.
    ///
    /// ```
    /// # use rewind_core::Doc;
    /// # use rewind_runtime::{Runtime, WatchEnd, WatchError};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let runtime = Runtime::<Doc>::start().await?;
    /// let tenant = runtime.create_tenant("acme_corp", Doc::object()).await?;
    /// let mut watcher = tenant.watch();
    /// runtime.delete_tenant("acme_corp").await?;
    /// assert_eq!(watcher.recv().await, Err(WatchError::Ended(WatchEnd::Deleted)));
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// [`WatchError::Ended`]: crate::WatchError::Ended
    /// [`WatchError::Lagged`]: crate::WatchError::Lagged
    pub fn watch(&self) -> Watcher {
        self.shared.subscribe()
    }

    // ----- writes --------------------------------------------------------

    /// Queues a request built around a reply port on the tenant's lane and
    /// awaits the answer.
    pub(crate) async fn request<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> TenantMsg<M>,
    ) -> Result<T, Error> {
        let permit = Permit::acquire(&self.shared)?;
        let (tx, rx) = oneshot::channel();
        self.shared.submit(build(tx.into()), Some(permit));
        rx.await.unwrap_or_else(|_| {
            Err(Error::Unavailable {
                tenant: self.shared.id.clone(),
                reason: "the tenant restarted before handling the request; it was not applied"
                    .into(),
            })
        })
    }

    /// Applies a change as a new revision.
    pub async fn apply(&self, change: M::Change) -> Result<Commit, Error> {
        self.apply_with(change, WriteOptions::default()).await
    }

    /// [`apply`](Self::apply) with author, message or an expected revision.
    pub async fn apply_with(
        &self,
        change: M::Change,
        options: WriteOptions,
    ) -> Result<Commit, Error> {
        self.request(|reply| TenantMsg::Apply {
            change,
            options,
            reply,
        })
        .await
    }

    /// Replaces the whole state as a new revision.
    pub async fn replace(&self, state: M) -> Result<Commit, Error> {
        self.replace_with(state, WriteOptions::default()).await
    }

    /// [`replace`](Self::replace) with options.
    pub async fn replace_with(&self, state: M, options: WriteOptions) -> Result<Commit, Error> {
        self.request(|reply| TenantMsg::Replace {
            state,
            options,
            reply,
        })
        .await
    }

    /// Computes a change from the current state with `f` and applies it, in
    /// one step of the tenant actor (no other write can come between). `f`
    /// runs under `catch_unwind`: a panic is answered with `Panicked` and the
    /// tenant restarts from its last committed state.
    pub async fn update<F, E>(&self, f: F) -> Result<Commit, Error>
    where
        F: FnOnce(&M) -> Result<M::Change, E> + Send + 'static,
        E: Into<BoxError>,
    {
        self.request(|reply| TenantMsg::Update {
            update: Box::new(move |state| f(state).map_err(Into::into)),
            options: WriteOptions::default(),
            reply,
        })
        .await
    }

    /// Takes an auto snapshot of the head.
    pub async fn snapshot(&self) -> Result<SnapshotInfo, Error> {
        self.request(|reply| TenantMsg::Snapshot {
            name: None,
            options: NamedOptions::default(),
            reply,
        })
        .await
    }

    /// Takes a named snapshot of the head (the seed's `create_snapshot`).
    ///
    /// Every method naming a snapshot takes a `&str`, a `String` or a
    /// [`SnapshotName`]; an invalid name is `Error::Invalid` and changes
    /// nothing. (References and targets follow one rule too: reads answered
    /// in place borrow them, `read_at(&StateRef)`, `diff`,
    /// `rollback_dry_run(&RollbackTarget)`; requests sent to the tenant
    /// take them, `rollback(RollbackTarget)`.)
    ///
    /// ```
    /// # use rewind_core::{Doc, SnapshotName};
    /// # use rewind_runtime::{Error, Runtime};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// # let runtime = Runtime::<Doc>::start().await?;
    /// let tenant = runtime.create_tenant("acme_corp", Doc::object()).await?;
    /// tenant.snapshot_named("v1").await?;
    /// tenant.snapshot_named(String::from("v2")).await?;
    /// tenant.snapshot_named(SnapshotName::new("v3")?).await?;
    /// assert!(matches!(tenant.snapshot_named("no spaces").await, Err(Error::Invalid(_))));
    /// assert_eq!(tenant.snapshots().len(), 3);
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn snapshot_named<N>(&self, name: N) -> Result<SnapshotInfo, Error>
    where
        N: TryInto<SnapshotName>,
        Error: From<N::Error>,
    {
        self.snapshot_with(name, NamedOptions::default()).await
    }

    /// Takes a named snapshot with options (protected, replace).
    pub async fn snapshot_with<N>(
        &self,
        name: N,
        options: NamedOptions,
    ) -> Result<SnapshotInfo, Error>
    where
        N: TryInto<SnapshotName>,
        Error: From<N::Error>,
    {
        let name = name.try_into()?;
        self.request(|reply| TenantMsg::Snapshot {
            name: Some(name),
            options,
            reply,
        })
        .await
    }

    /// Protects (never pruned) or unprotects a named snapshot.
    pub async fn protect<N>(&self, name: N, protected: bool) -> Result<SnapshotInfo, Error>
    where
        N: TryInto<SnapshotName>,
        Error: From<N::Error>,
    {
        let name = name.try_into()?;
        self.request(|reply| TenantMsg::Protect {
            name,
            protected,
            reply,
        })
        .await
    }

    /// Deletes an auto or unprotected named snapshot.
    pub async fn delete_snapshot<N>(&self, name: N) -> Result<SnapshotInfo, Error>
    where
        N: TryInto<SnapshotName>,
        Error: From<N::Error>,
    {
        let name = name.try_into()?;
        self.request(|reply| TenantMsg::DeleteSnapshot { name, reply })
            .await
    }

    /// Rolls back to `target` as a new revision, after a `pre-rollback` auto
    /// snapshot of the present.
    pub async fn rollback(&self, target: RollbackTarget) -> Result<RollbackOutcome, Error> {
        self.rollback_with(target, WriteOptions::default()).await
    }

    /// [`rollback`](Self::rollback) with options.
    pub async fn rollback_with(
        &self,
        target: RollbackTarget,
        options: WriteOptions,
    ) -> Result<RollbackOutcome, Error> {
        self.request(|reply| TenantMsg::Rollback {
            target,
            options,
            reply,
        })
        .await
    }

    /// The seed's `rollback_to_named_snapshot(name)`.
    pub async fn rollback_to_named_snapshot<N>(&self, name: N) -> Result<RollbackOutcome, Error>
    where
        N: TryInto<SnapshotName>,
        Error: From<N::Error>,
    {
        self.rollback(RollbackTarget::Named(name.try_into()?)).await
    }

    /// The seed's `rollback_to_time(t)`: the newest snapshot at or before `t`.
    pub async fn rollback_to_time(&self, at: Timestamp) -> Result<RollbackOutcome, Error> {
        self.rollback(RollbackTarget::Time(at)).await
    }

    /// The seed's `rollback_to_latest_snapshot()`.
    pub async fn rollback_to_latest_snapshot(&self) -> Result<RollbackOutcome, Error> {
        self.rollback(RollbackTarget::Latest).await
    }

    /// Starts building a transaction on this tenant.
    pub fn transaction(&self) -> TransactionBuilder<M> {
        TransactionBuilder::new(self.clone())
    }

    /// Runs a transaction plan (see [`TransactionPlan`]): `Ok` only when
    /// every step committed; a failed step is
    /// [`Error::TransactionFailed`] with the report. As
    /// [`TransactionBuilder::run`].
    pub async fn run_transaction(
        &self,
        plan: TransactionPlan<M>,
    ) -> Result<TransactionReport, Error> {
        let report = self.run_transaction_report(plan).await?;
        if report.is_committed() {
            Ok(report)
        } else {
            Err(Error::TransactionFailed {
                tenant: self.id().clone(),
                report: Box::new(report),
            })
        }
    }

    /// Runs a transaction plan and answers its report whatever the outcome
    /// (`Err` only when it could not run). As
    /// [`TransactionBuilder::run_report`].
    pub async fn run_transaction_report(
        &self,
        plan: TransactionPlan<M>,
    ) -> Result<TransactionReport, Error> {
        self.request(|reply| TenantMsg::Transaction { plan, reply })
            .await
    }

    /// Requests accepted and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight()
    }
}
