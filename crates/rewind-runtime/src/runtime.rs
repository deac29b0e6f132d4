//! [`Runtime`]: starts the supervisor and hands out tenants.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef, RpcReplyPort};
use rewind_core::{Clock, Doc, Model, Revision, SystemClock, TenantId};
use tokio::sync::oneshot;

use crate::config::{RestartIntensity, TenantConfig};
use crate::error::Error;
use crate::supervisor::actor::{Registry, SupervisorActor, SupervisorArgs};
use crate::supervisor::messages::SupervisorMsg;
use crate::tenant::handle::Tenant;

/// A running rewind runtime: a supervisor and its tenants.
///
/// Cheap to clone; every clone drives the same runtime.
pub struct Runtime<M: Model = Doc> {
    supervisor: ActorRef<SupervisorMsg<M>>,
    registry: Arc<ArcSwap<Registry<M>>>,
}

impl<M: Model> Clone for Runtime<M> {
    fn clone(&self) -> Self {
        Runtime {
            supervisor: self.supervisor.clone(),
            registry: Arc::clone(&self.registry),
        }
    }
}

/// Configures and starts a [`Runtime`].
pub struct RuntimeBuilder<M: Model = Doc> {
    defaults: TenantConfig,
    intensity: RestartIntensity,
    clock: Arc<dyn Clock>,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M: Model> Default for RuntimeBuilder<M> {
    fn default() -> Self {
        RuntimeBuilder {
            defaults: TenantConfig::default(),
            intensity: RestartIntensity::default(),
            clock: Arc::new(SystemClock),
            _model: std::marker::PhantomData,
        }
    }
}

impl<M: Model> RuntimeBuilder<M> {
    /// Configuration of tenants created without one.
    pub fn tenant_defaults(mut self, config: TenantConfig) -> Self {
        self.defaults = config;
        self
    }

    /// Restart intensity of every tenant.
    pub fn restart_intensity(mut self, intensity: RestartIntensity) -> Self {
        self.intensity = intensity;
        self
    }

    /// The clock timelines read (default: the system clock). Tests inject a
    /// [`ManualClock`](rewind_core::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts the supervisor. Must run inside a tokio runtime.
    pub async fn start(self) -> Result<Runtime<M>, Error> {
        self.defaults.validate()?;
        let registry = Arc::new(ArcSwap::from_pointee(Registry::new()));
        let args = SupervisorArgs {
            registry: Arc::clone(&registry),
            defaults: self.defaults,
            intensity: self.intensity,
            clock: self.clock,
        };
        let (supervisor, _) = Actor::spawn(None, SupervisorActor::new(), args)
            .await
            .map_err(|e| Error::Unavailable {
                tenant: TenantId::new("supervisor").expect("valid id"),
                reason: e.to_string(),
            })?;
        Ok(Runtime {
            supervisor,
            registry,
        })
    }
}

impl<M: Model> Runtime<M> {
    /// A builder with default settings.
    pub fn builder() -> RuntimeBuilder<M> {
        RuntimeBuilder::default()
    }

    /// Starts a runtime with default settings.
    pub async fn start() -> Result<Runtime<M>, Error> {
        Self::builder().start().await
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> SupervisorMsg<M>,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.supervisor
            .send_message(build(tx.into()))
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)
    }

    /// Creates a tenant holding `initial` at revision 0, with the default
    /// configuration. `TenantExists` if the id is taken.
    pub async fn create_tenant(&self, id: &str, initial: M) -> Result<Tenant<M>, Error> {
        self.create_tenant_with(TenantId::new(id)?, initial, None)
            .await
    }

    /// Creates a tenant with its own configuration (`None`: the defaults).
    pub async fn create_tenant_with(
        &self,
        id: TenantId,
        initial: M,
        config: Option<TenantConfig>,
    ) -> Result<Tenant<M>, Error> {
        self.ask(|reply| SupervisorMsg::CreateTenant {
            id,
            initial,
            config,
            reply,
        })
        .await?
    }

    /// The tenant with this id: a lock-free lookup.
    pub fn tenant(&self, id: &str) -> Result<Tenant<M>, Error> {
        let id = TenantId::new(id)?;
        self.registry
            .load()
            .get(&id)
            .map(|shared| Tenant::new(Arc::clone(shared)))
            .ok_or(Error::TenantNotFound(id))
    }

    /// The tenant with this id, created with `initial()` and the default
    /// configuration if it does not exist yet.
    pub async fn tenant_or_create(
        &self,
        id: &str,
        initial: impl FnOnce() -> M,
    ) -> Result<Tenant<M>, Error> {
        match self.tenant(id) {
            Err(Error::TenantNotFound(id)) => {
                match self.create_tenant_with(id, initial(), None).await {
                    Err(Error::TenantExists(id)) => self.tenant(id.as_str()),
                    other => other,
                }
            }
            found => found,
        }
    }

    /// Every tenant with its head revision, ordered by id (lock-free).
    pub fn tenants(&self) -> Vec<(TenantId, Revision)> {
        self.registry
            .load()
            .iter()
            .map(|(id, shared)| (id.clone(), shared.published.load().revision()))
            .collect()
    }

    /// Deletes a tenant once the requests already sent to it are handled.
    pub async fn delete_tenant(&self, id: &str) -> Result<(), Error> {
        let id = TenantId::new(id)?;
        self.ask(|reply| SupervisorMsg::DeleteTenant { id, reply })
            .await?
    }

    /// The supervisor, for actors that drive tenants by messages.
    pub fn supervisor(&self) -> ActorRef<SupervisorMsg<M>> {
        self.supervisor.clone()
    }

    /// Graceful shutdown: new requests get `ShuttingDown`; requests already
    /// accepted (and writes waiting for a transaction) are handled; then the
    /// actors stop.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.ask(|reply| SupervisorMsg::Shutdown { reply }).await
    }
}
