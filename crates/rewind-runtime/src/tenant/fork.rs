//! Forks from a [`Tenant`] handle: [`Tenant::fork`] makes a new tenant whose
//! revision 0 is this tenant's state at a reference (structure shared, so
//! O(1) in memory); [`Tenant::promote`] writes a fork's head back to its
//! parent as one new revision.
//!
//! A fork and its parent are ordinary tenants of the same runtime; the
//! fork records `{parent, base_revision}` on its revision 0 (journaled with
//! its creation) and the parent records the fork (a `record_fork` entry),
//! so neither needs a scan of all tenants.

use rewind_core::{
    CommitMeta, ForkInfo, ForkRecord, MergeError, Model, PromoteStrategy, Promotion, Revision,
    StateRef, TenantId, Timestamp,
};
use tokio::sync::oneshot;

use super::handle::Tenant;
use super::messages::{TenantMsg, WriteOptions};
use crate::error::Error;
use crate::supervisor::messages::SupervisorMsg;

/// How often a promotion without `if_parent_revision` recomputes against a
/// parent that moved while it was being made, before it gives up with
/// `RevisionMismatch`.
const PROMOTE_ATTEMPTS: usize = 3;

/// Options of [`Tenant::promote_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromoteOptions {
    /// Refuse with `RevisionMismatch` unless the parent's head is at this
    /// revision (optimistic concurrency, like `If-Match`). Without it, a
    /// parent that moves while the promotion is computed is read again.
    pub if_parent_revision: Option<Revision>,
    /// Author and message of the parent's new revision.
    pub meta: CommitMeta,
}

/// A promotion made: the parent's new revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promoted {
    /// The parent written.
    pub parent: TenantId,
    /// The parent's new revision (its cause is `promote`).
    pub revision: Revision,
    /// When it was recorded.
    pub at: Timestamp,
    /// The fork promoted.
    pub fork: TenantId,
    /// The fork's revision whose state was promoted.
    pub fork_revision: Revision,
    /// How.
    pub strategy: PromoteStrategy,
}

impl<M: Model> Tenant<M> {
    /// Where this tenant was forked from; `None` unless it is a fork.
    /// Lock-free, O(1).
    pub fn fork_info(&self) -> Option<ForkInfo> {
        self.shared.read(|t| t.fork_info().cloned())
    }

    /// The forks made of this tenant that still exist, oldest first.
    /// Lock-free; O(forks · log tenants). A fork deleted since is left out,
    /// as is an active tenant that re-used a fork's name without being a
    /// fork of this one (a passivated one is not read back to check).
    pub fn forks(&self) -> Vec<ForkRecord> {
        let records = self.shared.read(|t| t.forks());
        let Some(registry) = self.shared.context.registry.upgrade() else {
            return records;
        };
        let registry = registry.load();
        records
            .into_iter()
            .filter(|record| match registry.get(&record.fork) {
                None => false,
                Some(shared) => shared
                    .published()
                    .is_none_or(|t| t.fork_info().is_some_and(|info| &info.parent == self.id())),
            })
            .collect()
    }

    /// Forks this tenant at `from` into a new tenant `name`, with this
    /// tenant's configuration: its revision 0 is the state at `from`, the
    /// same value (pointer-equal subtrees for [`Doc`](rewind_core::Doc), so
    /// O(1) in memory; with a journal the creation stores that state once),
    /// with cause `fork {parent, base_revision}`. The fork is an ordinary
    /// tenant; this one records it ([`forks`](Self::forks)).
    ///
    /// Errors: `TenantExists` if `name` is taken, `Invalid` for a bad
    /// name, the reference's own errors (unknown snapshot, revision out of
    /// the window).
    ///
    /// ```
    /// # use rewind_core::{Doc, StateRef};
    /// # use rewind_runtime::Runtime;
    /// # use serde_json::json;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runtime = Runtime::<Doc>::start().await?;
    /// let shop = runtime
    ///     .create_tenant("shop", Doc::from_json(&json!({"price": 10}))?)
    ///     .await?;
    /// let variant = shop.fork("shop.variant_b", StateRef::Head).await?;
    /// assert_eq!(variant.current(), shop.current());
    /// assert_eq!(variant.fork_info().unwrap().parent, *shop.id());
    /// assert_eq!(shop.forks()[0].fork, *variant.id());
    /// # runtime.shutdown().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fork(&self, name: &str, from: StateRef) -> Result<Tenant<M>, Error> {
        self.fork_with(TenantId::new(name)?, from, CommitMeta::default())
            .await
    }

    /// [`fork`](Self::fork), recording who made it and why on its revision
    /// 0.
    pub async fn fork_with(
        &self,
        id: TenantId,
        from: StateRef,
        meta: CommitMeta,
    ) -> Result<Tenant<M>, Error> {
        let timeline = self.timeline();
        let base_revision = timeline
            .revision_at(&from)
            .map_err(|e| Error::core(self.id(), e))?;
        let initial = timeline
            .state_at(&from)
            .map_err(|e| Error::core(self.id(), e))?
            .clone();
        drop(timeline);
        let fork = ForkInfo {
            parent: self.id().clone(),
            base_revision,
        };
        let (tx, rx) = oneshot::channel();
        self.shared
            .context
            .supervisor
            .send_message(SupervisorMsg::CreateFork {
                id,
                initial,
                fork,
                config: Some(self.shared.config()),
                meta,
                reply: tx.into(),
            })
            .map_err(|_| Error::ShuttingDown)?;
        let created = rx.await.map_err(|_| Error::ShuttingDown)??;
        // The fork exists and is durable from here on; if the parent cannot
        // record it, it is still a whole fork, only missing from the list.
        let recorded = self
            .request(|reply| TenantMsg::RecordFork {
                fork: created.id().clone(),
                base_revision,
                reply,
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(parent = %self.id(), fork = %created.id(), error = %e,
                "the fork was made but its parent could not record it");
        }
        Ok(created)
    }

    /// Writes this fork's head to its parent as one new revision with
    /// cause `promote {fork, fork_revision, strategy}` (see
    /// [`promote_with`](Self::promote_with)).
    pub async fn promote(&self, strategy: PromoteStrategy) -> Result<Promoted, Error> {
        self.promote_with(strategy, PromoteOptions::default()).await
    }

    /// Promotes this fork's head into its parent:
    ///
    /// - `Replace`: the parent's new revision is exactly this fork's head.
    /// - `Merge`: this fork's changes since its base (its revision 0) are
    ///   applied onto the parent's head. When the parent changed the same
    ///   paths since the base (equal, inside or around them; arrays compare
    ///   whole), it is `MergeConflict` listing them and nothing is written.
    ///
    /// The parent's revision is written with the head it was computed
    /// against as its expected revision, so a parent write in between is
    /// never lost: the promotion is computed again (or, with
    /// `if_parent_revision`, refused with `RevisionMismatch`).
    ///
    /// Errors: `NotAFork`, `TenantNotFound` (the parent was deleted),
    /// `MergeConflict`, `RevisionMismatch`. Cost: a replace is O(1) plus the
    /// journal; a merge diffs base → fork head and base → parent head
    /// (following the number of changes for `Doc`).
    pub async fn promote_with(
        &self,
        strategy: PromoteStrategy,
        options: PromoteOptions,
    ) -> Result<Promoted, Error> {
        let fork = self.timeline();
        let info = fork
            .fork_info()
            .cloned()
            .ok_or_else(|| Error::NotAFork(self.id().clone()))?;
        let fork_revision = fork.revision();
        let registry = self
            .shared
            .context
            .registry
            .upgrade()
            .ok_or(Error::ShuttingDown)?;
        let parent = crate::runtime::find_tenant(
            &registry,
            &self.shared.context.supervisor,
            info.parent.clone(),
        )
        .await?;
        drop(registry);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let target = parent.timeline();
            let expected = target.revision();
            if let Some(wanted) = options.if_parent_revision {
                if wanted != expected {
                    return Err(Error::RevisionMismatch {
                        tenant: info.parent.clone(),
                        expected: wanted,
                        actual: expected,
                    });
                }
            }
            let promotion = match strategy {
                PromoteStrategy::Replace => Promotion::Replace {
                    state: fork.head().clone(),
                },
                PromoteStrategy::Merge => {
                    let base = fork.fork_base().expect("a fork keeps its base");
                    match target.merge_patch(base, fork.head()) {
                        Ok(patch) => Promotion::Merge { patch },
                        Err(MergeError::Conflict(conflict)) => {
                            return Err(Error::MergeConflict {
                                parent: info.parent.clone(),
                                fork: self.id().clone(),
                                conflict,
                            })
                        }
                        Err(MergeError::Input(e)) => return Err(Error::core(self.id(), e)),
                        Err(e) => return Err(Error::core(self.id(), invalid(e))),
                    }
                }
            };
            drop(target);
            let write = WriteOptions {
                meta: options.meta.clone(),
                expected_revision: Some(expected),
            };
            let fork_id = self.id().clone();
            let result = parent
                .request(|reply| TenantMsg::Promote {
                    fork: fork_id,
                    fork_revision,
                    promotion,
                    options: write,
                    reply,
                })
                .await;
            match result {
                Ok(commit) => {
                    return Ok(Promoted {
                        parent: info.parent,
                        revision: commit.revision,
                        at: commit.at,
                        fork: self.id().clone(),
                        fork_revision,
                        strategy,
                    })
                }
                Err(Error::RevisionMismatch { .. })
                    if options.if_parent_revision.is_none() && attempt < PROMOTE_ATTEMPTS =>
                {
                    // The parent moved after it was read: read it again.
                    tokio::task::yield_now().await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn invalid(error: MergeError) -> rewind_core::InvalidInput {
    rewind_core::InvalidInput::Json(error.to_string())
}
