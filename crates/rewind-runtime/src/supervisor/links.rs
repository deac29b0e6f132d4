//! Links between tenants, by identity: a fork names its parent's
//! [`Incarnation`] as well as its id, so a later tenant of the parent's
//! name is never taken for the parent; and what keeps a tenant from being
//! deleted (attached forks, protected snapshots, a deployment in progress)
//! unless [`DeleteOptions`] say to.
//!
//! A fork recorded before incarnations were (no parent incarnation) is
//! linked only while the tenant of its parent's name records that fork at
//! the same base revision: a later tenant of the parent's name never
//! recorded it.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use rewind_core::deploy::DeploymentId;
use rewind_core::{ForkInfo, ForkRecord, Incarnation, Model, SnapshotName, TenantId, Timeline};

use super::actor::Registry;

/// What a deletion may destroy besides the tenant itself. The default
/// (both `false`) is the safe one: a tenant with attached forks, protected
/// snapshots or a deployment in progress is not deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete even a tenant holding protected snapshots or a deployment in
    /// progress: they are destroyed with it. Forks still need
    /// `detach_forks`.
    pub force: bool,
    /// Delete even a tenant with attached forks: they live on, detached
    /// (a detached fork serves as before but can no longer be promoted).
    pub detach_forks: bool,
}

impl DeleteOptions {
    /// With [`force`](Self::force) set.
    pub fn force(mut self) -> Self {
        self.force = true;
        self
    }

    /// With [`detach_forks`](Self::detach_forks) set.
    pub fn detach_forks(mut self) -> Self {
        self.detach_forks = true;
        self
    }
}

/// Why a fork is detached from its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Detached {
    /// No tenant has the parent's name now.
    ParentDeleted,
    /// The parent's name belongs to another tenant: the parent was deleted
    /// and a later one created under its name.
    ParentReplaced,
}

impl Detached {
    /// The label: `parent_deleted` or `parent_replaced`.
    pub fn as_str(self) -> &'static str {
        match self {
            Detached::ParentDeleted => "parent_deleted",
            Detached::ParentReplaced => "parent_replaced",
        }
    }
}

impl fmt::Display for Detached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Detached::ParentDeleted => "that tenant was deleted",
            Detached::ParentReplaced => {
                "that tenant was deleted, and the tenant of that name now is a later one, \
                 not the one it was forked from"
            }
        })
    }
}

/// A deployment in progress, as a refused deletion names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenDeployment {
    /// Its id within the tenant.
    pub id: DeploymentId,
    /// Its name.
    pub name: String,
}

/// What kept a tenant from being deleted; see
/// [`Runtime::delete_tenant_with`](crate::Runtime::delete_tenant_with).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct DeleteRefusal {
    /// The tenant, not deleted.
    pub tenant: TenantId,
    /// Its attached forks, oldest first: `detach_forks` deletes it anyway
    /// and leaves them detached.
    pub forks: Vec<TenantId>,
    /// Its protected snapshots, oldest first: `force` destroys them.
    pub protected_snapshots: Vec<SnapshotName>,
    /// Its deployment in progress: `force` destroys it (its monitor stops).
    pub deployment: Option<OpenDeployment>,
}

impl DeleteRefusal {
    /// Whether anything refuses the deletion.
    pub(crate) fn is_empty(&self) -> bool {
        self.forks.is_empty() && self.protected_snapshots.is_empty() && self.deployment.is_none()
    }

    fn describe(&self) -> String {
        let mut reasons = Vec::new();
        let mut forced = Vec::new();
        if !self.protected_snapshots.is_empty() {
            forced.push(format!(
                "protected snapshot(s) {}",
                quoted(self.protected_snapshots.iter())
            ));
        }
        if let Some(deployment) = &self.deployment {
            forced.push(format!(
                "deployment '{}' ({}) in progress",
                deployment.name, deployment.id
            ));
        }
        if !forced.is_empty() {
            reasons.push(format!(
                "it holds {} (unprotect them or end the deployment first, or delete with force, \
                 which destroys them with the tenant)",
                forced.join(" and ")
            ));
        }
        if !self.forks.is_empty() {
            reasons.push(format!(
                "fork(s) {} are attached to it (delete them first, or delete with detach_forks, \
                 which leaves them detached: they can no longer be promoted)",
                quoted(self.forks.iter())
            ));
        }
        format!(
            "tenant '{}' was not deleted: {}",
            self.tenant,
            reasons.join("; ")
        )
    }
}

fn quoted<T: fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items
        .map(|item| format!("'{item}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh incarnation for a tenant being created: 128 bits from a hasher
/// seeded by the process's random keys, over a counter and the clock, so
/// two creations never share one (in this process or another).
pub(crate) fn new_incarnation() -> Incarnation {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(salt);
        hasher.write_u64(n);
        hasher.write_u128(nanos);
        hasher.finish()
    };
    Incarnation::from_u128((u128::from(half(1)) << 64) | u128::from(half(2)))
}

/// Whether the fork `fork` (incarnation `fork_incarnation`, origin `info`)
/// is detached from `parent`, the tenant now named `info.parent` (`None`:
/// no tenant has that name). Time: O(1), or O(forks of the parent) for a
/// fork recorded before incarnations were.
pub(crate) fn detached<M: Model>(
    fork: &TenantId,
    fork_incarnation: Option<Incarnation>,
    info: &ForkInfo,
    parent: Option<&Timeline<M>>,
) -> Option<Detached> {
    let Some(parent) = parent else {
        return Some(Detached::ParentDeleted);
    };
    let linked = match (info.parent_incarnation, parent.incarnation()) {
        (Some(recorded), Some(now)) => recorded == now,
        // Made of a parent that had no incarnation then: one read back
        // from an image written before incarnations were (it still has
        // none), or from such a `create` entry (it has the legacy one
        // derived since). A tenant created since has never recorded this
        // fork: the parent's own record of it is the proof.
        (None, _) => parent.forks().iter().any(|record| {
            &record.fork == fork
                && record.base_revision == info.base_revision
                && record
                    .fork_incarnation
                    .is_none_or(|i| Some(i) == fork_incarnation)
        }),
        // Made of a tenant with an incarnation; the one of this name now
        // has none, so it was created before that one: not the parent.
        (Some(_), None) => false,
    };
    (!linked).then_some(Detached::ParentReplaced)
}

/// The forks of `parent` (a tenant of `registry`) attached to it, oldest
/// first: those it recorded whose tenant is still that very fork, and with
/// `unrecorded`, active forks linked to it that it has no record of (the
/// record is written after the fork, and may have failed). A recorded fork
/// that is passivated is counted as it was recorded (not read back here).
/// Time: O(forks · log tenants), plus O(tenants) with `unrecorded`.
pub(crate) fn attached_forks<M: Model>(
    parent_id: &TenantId,
    parent: &Timeline<M>,
    registry: &Registry<M>,
    unrecorded: bool,
) -> Vec<ForkRecord> {
    let mut attached: Vec<ForkRecord> = parent
        .forks()
        .into_iter()
        .filter(|record| match registry.get(&record.fork) {
            None => false,
            Some(shared) => shared.published().is_none_or(|fork| {
                fork.fork_info().is_some_and(|info| {
                    &info.parent == parent_id
                        && record
                            .fork_incarnation
                            .is_none_or(|i| Some(i) == fork.incarnation())
                        && detached(&record.fork, fork.incarnation(), info, Some(parent)).is_none()
                })
            }),
        })
        .collect();
    if unrecorded && parent.incarnation().is_some() {
        for (id, shared) in registry.iter() {
            if attached.iter().any(|r| &r.fork == id) {
                continue;
            }
            let Some(fork) = shared.published() else {
                continue;
            };
            let Some(info) = fork.fork_info() else {
                continue;
            };
            if &info.parent == parent_id
                && detached(id, fork.incarnation(), info, Some(parent)).is_none()
            {
                attached.push(ForkRecord {
                    fork: id.clone(),
                    fork_incarnation: fork.incarnation(),
                    base_revision: info.base_revision,
                    created_at: fork
                        .revision_info(rewind_core::Revision::ZERO)
                        .map_or(fork.last_at(), |r| r.at),
                });
            }
        }
    }
    attached
}

/// What keeps `tenant` from being deleted with `options`, given its
/// attached forks (empty: nothing does).
pub(crate) fn delete_refusal<M: Model>(
    tenant: &TenantId,
    timeline: &Timeline<M>,
    forks: Vec<TenantId>,
    options: DeleteOptions,
) -> DeleteRefusal {
    let mut refusal = DeleteRefusal {
        tenant: tenant.clone(),
        forks: Vec::new(),
        protected_snapshots: Vec::new(),
        deployment: None,
    };
    if !options.detach_forks {
        refusal.forks = forks;
    }
    if !options.force {
        refusal.protected_snapshots = timeline
            .snapshots()
            .into_iter()
            .filter(|s| s.protected)
            .map(|s| s.name)
            .collect();
        refusal.deployment = timeline.open_deployment().map(|d| OpenDeployment {
            id: d.id,
            name: d.spec.name.to_string(),
        });
    }
    refusal
}
