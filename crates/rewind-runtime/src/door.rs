//! The actor front door, without boilerplate: [`ask`] one request of the
//! supervisor, or hold a [`TenantRef`] and call a tenant by messages.
//!
//! Both send a message built around a reply port and await the answer,
//! flattening ractor's layers into one `Result<T, Error>`: a supervisor
//! that is not running (or drops the request) is `Unavailable`, and the
//! request's own errors come through as they are. Neither sets a deadline:
//! wrap the call in `tokio::time::timeout` for one.

use ractor::{ActorRef, RpcReplyPort};
use rewind_core::{
    Commit, Doc, Model, NamedOptions, Revision, RevisionInfo, RollbackOutcome, RollbackTarget,
    SnapshotInfo, SnapshotName, StateRef, TenantId,
};
use tokio::sync::oneshot;

use crate::error::Error;
use crate::supervisor::messages::SupervisorMsg;
use crate::tenant::messages::{TenantMsg, WriteOptions};

fn unavailable(reason: &str) -> Error {
    Error::Unavailable {
        tenant: TenantId::new("supervisor").expect("a valid id"),
        reason: reason.to_owned(),
    }
}

/// Sends the supervisor a request whose reply carries `Result<T, Error>`
/// and awaits the answer.
///
/// ```
/// use rewind_core::{Doc, TenantId};
/// use rewind_runtime::{ask, Runtime, SupervisorMsg};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rewind_runtime::Error> {
/// let runtime = Runtime::<Doc>::start().await?;
/// let supervisor = runtime.supervisor();
/// let id = TenantId::new("acme_corp")?;
/// ask(&supervisor, |reply| SupervisorMsg::CreateTenant {
///     id,
///     initial: Doc::object(),
///     config: None,
///     meta: Default::default(),
///     reply,
/// })
/// .await?;
/// assert_eq!(runtime.tenant_count(), 1);
/// # runtime.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub async fn ask<M: Model, T: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg<M>>,
    build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> SupervisorMsg<M>,
) -> Result<T, Error> {
    ask_raw(supervisor, build).await?
}

/// [`ask`] for a reply that is not a `Result` (such as
/// [`SupervisorMsg::ListTenants`]).
///
/// ```
/// use rewind_core::Doc;
/// use rewind_runtime::{ask_raw, Runtime, SupervisorMsg};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rewind_runtime::Error> {
/// let runtime = Runtime::<Doc>::start().await?;
/// runtime.create_tenant("acme_corp", Doc::object()).await?;
/// let listed = ask_raw(&runtime.supervisor(), |reply| SupervisorMsg::ListTenants { reply }).await?;
/// assert_eq!(listed.len(), 1);
/// # runtime.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub async fn ask_raw<M: Model, R: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg<M>>,
    build: impl FnOnce(RpcReplyPort<R>) -> SupervisorMsg<M>,
) -> Result<R, Error> {
    let (tx, rx) = oneshot::channel();
    supervisor
        .send_message(build(tx.into()))
        .map_err(|_| unavailable("the supervisor is not running"))?;
    rx.await
        .map_err(|_| unavailable("the supervisor dropped the request (it is stopping)"))
}

/// A tenant as another actor holds it: the supervisor's address and the
/// tenant's id. Cheap to clone; every call is one message routed by the
/// supervisor and answered in the tenant's order. Unlike a
/// [`Tenant`](crate::Tenant) handle it does not keep the tenant active.
///
/// ```
/// use rewind_core::{Doc, Patch, Revision, TenantId};
/// use rewind_runtime::{Runtime, TenantRef};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let runtime = Runtime::<Doc>::start().await?;
/// runtime.create_tenant("acme_corp", Doc::object()).await?;
/// let acme = TenantRef::new(runtime.supervisor(), TenantId::new("acme_corp")?);
/// acme.apply(Patch::from_json(&json!([{"op": "add", "path": "/v", "value": 1}]))?)
///     .await?;
/// assert_eq!(acme.revision().await?, Revision(1));
/// assert_eq!(acme.current().await?["v"], 1);
/// # runtime.shutdown().await?;
/// # Ok(())
/// # }
/// ```
pub struct TenantRef<M: Model = Doc> {
    supervisor: ActorRef<SupervisorMsg<M>>,
    id: TenantId,
}

impl<M: Model> Clone for TenantRef<M> {
    fn clone(&self) -> Self {
        TenantRef {
            supervisor: self.supervisor.clone(),
            id: self.id.clone(),
        }
    }
}

impl<M: Model> std::fmt::Debug for TenantRef<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantRef").field("id", &self.id).finish()
    }
}

impl<M: Model> TenantRef<M> {
    /// The tenant `id` behind `supervisor` (not checked until the first
    /// call: an unknown tenant answers `TenantNotFound` then).
    pub fn new(supervisor: ActorRef<SupervisorMsg<M>>, id: TenantId) -> Self {
        TenantRef { supervisor, id }
    }

    /// The tenant id.
    pub fn id(&self) -> &TenantId {
        &self.id
    }

    /// Sends the tenant any [`TenantMsg`] and awaits its answer.
    pub async fn call<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> TenantMsg<M>,
    ) -> Result<T, Error> {
        ask(&self.supervisor, |reply| SupervisorMsg::Tenant {
            id: self.id.clone(),
            msg: build(reply),
        })
        .await
    }

    /// The head revision.
    pub async fn revision(&self) -> Result<Revision, Error> {
        self.call(|reply| TenantMsg::Revision { reply }).await
    }

    /// The current state.
    pub async fn current(&self) -> Result<M, Error> {
        self.read(StateRef::Head).await
    }

    /// The state at a reference.
    pub async fn read(&self, at: StateRef) -> Result<M, Error> {
        self.call(|reply| TenantMsg::Read { at, reply }).await
    }

    /// Applies a change as a new revision.
    pub async fn apply(&self, change: M::Change) -> Result<Commit, Error> {
        self.call(|reply| TenantMsg::Apply {
            change,
            options: WriteOptions::default(),
            reply,
        })
        .await
    }

    /// Takes a named snapshot of the head (`&str`, `String` or
    /// [`SnapshotName`]).
    pub async fn snapshot_named<N>(&self, name: N) -> Result<SnapshotInfo, Error>
    where
        N: TryInto<SnapshotName>,
        Error: From<N::Error>,
    {
        let name = name.try_into()?;
        self.call(|reply| TenantMsg::Snapshot {
            name: Some(name),
            options: NamedOptions::default(),
            reply,
        })
        .await
    }

    /// Rolls back to `target`.
    pub async fn rollback(&self, target: RollbackTarget) -> Result<RollbackOutcome, Error> {
        self.call(|reply| TenantMsg::Rollback {
            target,
            options: WriteOptions::default(),
            reply,
        })
        .await
    }

    /// The newest `limit` revisions of the history window, newest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<RevisionInfo>, Error> {
        self.call(|reply| TenantMsg::History { limit, reply }).await
    }
}
