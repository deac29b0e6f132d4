//! Messages the supervisor understands: the front door for other actors.

use ractor::RpcReplyPort;
use rewind_core::{CommitMeta, Model, Revision, TenantId};

use crate::config::TenantConfig;
use crate::error::Error;
use crate::tenant::handle::Tenant;
use crate::tenant::messages::TenantMsg;

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
    /// Delete a tenant after the requests already sent to it are handled.
    DeleteTenant {
        /// The tenant.
        id: TenantId,
        /// Done.
        reply: RpcReplyPort<Result<(), Error>>,
    },
    /// Every tenant with its head revision, ordered by id.
    ListTenants {
        /// The list.
        reply: RpcReplyPort<Vec<(TenantId, Revision)>>,
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
}
