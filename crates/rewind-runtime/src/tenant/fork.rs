//! Forks from a [`Tenant`] handle: [`Tenant::fork`] makes a new tenant whose
//! revision 0 is this tenant's state at a reference (structure shared, so
//! O(1) in memory); [`Tenant::promote`] writes a fork's head back to its
//! parent as one new revision.
//!
//! A fork and its parent are ordinary tenants of the same runtime; the
//! fork records `{parent, base_revision, parent_incarnation}` with its
//! revision 0 (journaled with its creation) and the parent records the fork
//! with the fork's incarnation (a `record_fork` entry), so neither needs a
//! scan of all tenants.
//!
//! **Links name incarnations.** A fork whose parent was deleted, or whose
//! parent's name now belongs to a later tenant, is *detached*
//! ([`Tenant::fork_status`]): it serves as before, but promoting it is
//! refused with [`Error::ForkDetached`] and writes nothing, and no parent
//! lists it. A parent with attached forks is deleted only when asked to
//! detach them ([`DeleteOptions`](crate::DeleteOptions)).

use rewind_core::{
    CommitMeta, ForkInfo, ForkRecord, MergeError, Model, PromoteStrategy, Promotion, Revision,
    StateRef, TenantId, Timestamp,
};
use tokio::sync::oneshot;

use super::handle::Tenant;
use super::messages::{TenantMsg, WriteOptions};
use crate::error::Error;
use crate::supervisor::links::{self, Detached};
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

/// A fork's link to its parent: where it came from, and whether that
/// parent is still there ([`Tenant::fork_status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForkStatus {
    /// Where it came from, as recorded at its creation.
    pub info: ForkInfo,
    /// `None` while the parent it was forked from exists; else what became
    /// of it.
    pub detached: Option<Detached>,
}

impl<M: Model> Tenant<M> {
    /// Where this tenant was forked from; `None` unless it is a fork.
    /// Lock-free, O(1). Whether that parent still exists is
    /// [`fork_status`](Self::fork_status).
    pub fn fork_info(&self) -> Option<ForkInfo> {
        self.shared.read(|t| t.fork_info().cloned())
    }

    /// Which creation of its id this tenant is (see
    /// [`Incarnation`](rewind_core::Incarnation)); `None` only for a tenant
    /// read back from an image written before incarnations were recorded.
    /// Lock-free, O(1).
    pub fn incarnation(&self) -> Option<rewind_core::Incarnation> {
        self.shared.read(|t| t.incarnation())
    }

    /// For a fork, its origin and whether it is detached: its parent
    /// deleted, or the parent's name now held by a later tenant (another
    /// incarnation). `None` unless it is a fork. Reads the parent back if
    /// it is passivated. Time: O(1) plus that read, O(the parent's forks)
    /// for a fork recorded before incarnations were.
    pub async fn fork_status(&self) -> Result<Option<ForkStatus>, Error> {
        let Some(info) = self.fork_info() else {
            return Ok(None);
        };
        let detached = match self.parent_of(&info).await? {
            Some(parent) => {
                let timeline = parent.timeline();
                links::detached(self.id(), self.incarnation(), &info, Some(&*timeline))
            }
            None => Some(Detached::ParentDeleted),
        };
        Ok(Some(ForkStatus { info, detached }))
    }

    /// The tenant now named as this fork's parent, if any.
    async fn parent_of(&self, info: &ForkInfo) -> Result<Option<Tenant<M>>, Error> {
        let registry = self
            .shared
            .context
            .registry
            .upgrade()
            .ok_or(Error::ShuttingDown)?;
        let found = crate::runtime::find_tenant(
            &registry,
            &self.shared.context.supervisor,
            info.parent.clone(),
        )
        .await;
        match found {
            Ok(parent) => Ok(Some(parent)),
            Err(Error::TenantNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The forks made of this tenant that are still attached to it, oldest
    /// first: a fork deleted since is left out, as is a tenant that
    /// re-used a fork's name (another incarnation). Lock-free; O(forks ·
    /// log tenants). A passivated fork is listed as recorded, not read back
    /// to check: [`attached_forks`](Self::attached_forks) reads it back.
    pub fn forks(&self) -> Vec<ForkRecord> {
        self.forks_checked(false)
    }

    fn forks_checked(&self, unrecorded: bool) -> Vec<ForkRecord> {
        let timeline = self.timeline();
        let Some(registry) = self.shared.context.registry.upgrade() else {
            return timeline.forks();
        };
        let registry = registry.load();
        links::attached_forks(self.id(), &timeline, &registry, unrecorded)
    }

    /// [`forks`](Self::forks), with every recorded fork that is passivated
    /// read back first, so each one listed is checked to be this tenant's
    /// fork: what `GET /v1/tenants/{t}/forks` answers. Also lists an
    /// active fork whose record the parent failed to write (what a
    /// deletion counts). Time: O(forks) reads back at most, plus
    /// O(tenants).
    pub async fn attached_forks(&self) -> Result<Vec<ForkRecord>, Error> {
        let held = self.hold_recorded_forks().await;
        let forks = self.forks_checked(true);
        drop(held);
        Ok(forks)
    }

    /// Handles to the recorded forks of this tenant that still exist (read
    /// back if passivated), so a check that follows sees each one's own
    /// timeline. A fork that cannot be read back is left out (it is then
    /// counted as recorded).
    pub(crate) async fn hold_recorded_forks(&self) -> Vec<Tenant<M>> {
        let records = self.shared.read(|t| t.forks());
        let Some(registry) = self.shared.context.registry.upgrade() else {
            return Vec::new();
        };
        let mut held = Vec::new();
        for record in records {
            if !registry.load().contains_key(&record.fork) {
                continue;
            }
            let found = crate::runtime::find_tenant(
                &registry,
                &self.shared.context.supervisor,
                record.fork,
            )
            .await;
            if let Ok(fork) = found {
                held.push(fork);
            }
        }
        held
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
        let parent_incarnation = timeline.incarnation();
        drop(timeline);
        let fork = ForkInfo::new(self.id().clone(), base_revision, parent_incarnation);
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
                fork_incarnation: created.incarnation(),
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
    /// The parent written is the very tenant this fork was made of (the
    /// same incarnation): a fork whose parent was deleted, or whose
    /// parent's name now belongs to a later tenant, is refused with
    /// `ForkDetached` and nothing is written anywhere.
    ///
    /// Errors: `NotAFork`, `ForkDetached`, `MergeConflict`,
    /// `RevisionMismatch`. Cost: a replace is O(1) plus the
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
        let detached = |why| Error::ForkDetached {
            fork: self.id().clone(),
            parent: info.parent.clone(),
            why,
        };
        let Some(parent) = self.parent_of(&info).await? else {
            return Err(detached(Detached::ParentDeleted));
        };
        let parent_incarnation = {
            let target = parent.timeline();
            if let Some(why) = links::detached(self.id(), fork.incarnation(), &info, Some(&*target))
            {
                return Err(detached(why));
            }
            target.incarnation()
        };
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
                    parent_incarnation,
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
