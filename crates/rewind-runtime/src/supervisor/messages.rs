//! Messages the supervisor understands: the front door for other actors.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use rewind_core::{CommitMeta, ForkInfo, Model, Revision, TenantId};

use crate::config::TenantConfig;
use crate::durability::Recovered;
use crate::error::Error;
use crate::journal::JournalError;
use crate::supervisor::links::DeleteOptions;
use crate::tenant::handle::Tenant;
use crate::tenant::messages::TenantMsg;
use crate::tenant::shared::TenantShared;

/// A request to the supervisor. Another actor can drive every tenant with
/// these alone; each reply carries domain errors.
pub enum SupervisorMsg<M: Model> {
    /// Create a tenant holding `initial` at revision 0.
    CreateTenant {
        /// Its id (unique).
        id: TenantId,
        /// Its initial state.
        initial: M,
        /// Its configuration; `None` for the runtime's defaults.
        config: Option<TenantConfig>,
        /// Who created it and why, recorded on revision 0 (`Default` for
        /// none).
        meta: CommitMeta,
        /// A handle to the new tenant.
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    },
    /// Create a fork: a tenant whose revision 0 holds `initial`, the state of
    /// `fork.parent` at `fork.base_revision`, recorded with cause
    /// [`Cause::Fork`](rewind_core::Cause::Fork). The parent is not told
    /// (see [`Tenant::fork`], which is how forks are made).
    CreateFork {
        /// Its id (unique).
        id: TenantId,
        /// Its initial state: the parent's, shared.
        initial: M,
        /// Where it came from.
        fork: ForkInfo,
        /// Its configuration; `None` for the runtime's defaults.
        config: Option<TenantConfig>,
        /// Who created it and why, recorded on revision 0.
        meta: CommitMeta,
        /// A handle to the new tenant.
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    },
    /// Delete a tenant after the requests already sent to it are handled.
    /// Refused with [`Error::DeleteRefused`] while it has attached forks,
    /// protected snapshots or a deployment in progress, unless `options`
    /// say to delete it anyway (a passivated tenant is read back to check).
    DeleteTenant {
        /// The tenant.
        id: TenantId,
        /// What it may destroy besides the tenant (`Default`: nothing).
        options: DeleteOptions,
        /// Done.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Every tenant with its head revision, ordered by id. A passivated
    /// tenant is listed without activating it: with the revision it had
    /// when it was passivated, or `None` if it has not been active since
    /// the runtime started.
    ListTenants {
        /// The list.
        reply: RpcReplyPort<Vec<(TenantId, Option<Revision>)>>,
    },
    /// Route a request to a tenant. Errors (unknown tenant, overloaded,
    /// failed) are answered on the request's own reply port.
    Tenant {
        /// The tenant.
        id: TenantId,
        /// The request.
        msg: TenantMsg<M>,
    },
    /// Stop taking requests, let every tenant finish what it has, and stop.
    Shutdown {
        /// Answered when every tenant has drained.
        reply: RpcReplyPort<()>,
    },
    /// What the runtime sends itself (starting idle tenants, activations,
    /// its timer). It cannot be made outside the runtime.
    Internal(Internal<M>),
}

/// A message the runtime sends its own supervisor; see
/// [`SupervisorMsg::Internal`].
pub struct Internal<M: Model>(pub(crate) InternalMsg<M>);

impl<M: Model> Internal<M> {
    pub(crate) fn start(id: TenantId) -> Self {
        Internal(InternalMsg::Start { id })
    }
}

pub(crate) enum InternalMsg<M: Model> {
    /// A request was queued for a tenant with no actor.
    Start { id: TenantId },
    /// A handle to the tenant, activating it if it is passivated.
    Activate {
        id: TenantId,
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    },
    /// An activation read the tenant back (or failed to).
    Activated {
        shared: Arc<TenantShared<M>>,
        result: Result<Option<Box<Recovered<M>>>, JournalError>,
        elapsed: Duration,
    },
    /// A creation's journal entry is durable (or failed).
    Created {
        shared: Arc<TenantShared<M>>,
        result: Result<(), Error>,
        reply: RpcReplyPort<Result<Tenant<M>, Error>>,
    },
    /// Passivate the tenant now if nothing holds it.
    Passivate {
        id: TenantId,
        reply: RpcReplyPort<Result<bool, Error>>,
    },
    /// The tenant's idle actor stopped for a requested passivation.
    Stopped {
        id: TenantId,
        reply: RpcReplyPort<Result<bool, Error>>,
    },
    /// The runtime's timer: idle actors, passivation, interval snapshots.
    Timer,
    /// A deletion whose tenant and recorded forks were read back (held by
    /// `held`, so none is passivated meanwhile): check what refuses it,
    /// then delete. `held` is empty when the tenant cannot be read back
    /// (unrecoverable or failed): nothing of it can be checked, and it is
    /// deleted as asked.
    DeleteChecked {
        id: TenantId,
        options: DeleteOptions,
        held: Vec<Tenant<M>>,
        reply: RpcReplyPort<Result<(), Error>>,
    },
}
