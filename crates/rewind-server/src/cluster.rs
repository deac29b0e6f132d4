//! Cluster mode: many `rewind serve` nodes sharing tenants through
//! PostgreSQL, one owner per shard.
//!
//! - Tenants hash to a fixed number of shards ([`shard_of`]; the count is
//!   stored in the database at initialisation).
//! - A node owns a shard while it holds the shard's lease (`lease.rs`): it
//!   acquires or renews it with one conditional `UPDATE` and renews every
//!   `lease / 3`. Each owned shard has its own [`Runtime`] over a
//!   [`PgJournal`](rewind_store::PgJournal) scoped to the shard and fenced
//!   by the epoch of the acquisition: a node that lost the lease (paused past
//!   it, cut off from the database) has its writes refused and acknowledges
//!   nothing. Losing a shard drops its runtime; regaining it reads its
//!   tenants back from PostgreSQL, on demand.
//! - Membership: nodes heartbeat in `rewind_nodes`; every node computes the
//!   same even assignment from the live nodes (`assign.rs`), gives up the
//!   shards assigned elsewhere and takes the free ones assigned to it. A
//!   graceful shutdown leaves and releases its shards at once.
//! - Serving: a request for a shard this node does not own is forwarded to
//!   the owner (`forward.rs`).
//!
//! A node serves a shard only while its lease is valid on its own clock:
//! until the instant it *sent* the last successful renewal plus 90% of the
//! lease. Another node can take the shard over only once the database's
//! clock passed that renewal plus the whole lease, so the two never serve
//! one shard at the same time (with clocks that tick at about the same
//! rate; their offsets do not matter).

mod assign;
pub(crate) mod forward;
mod lease;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rewind_core::{Doc, TenantId};
use rewind_runtime::{Journal, Runtime, TenantConfig};
pub use rewind_store::shard_of;
use rewind_store::{Fence, PgOptions, PgStore};
use tokio::sync::watch;

use lease::{LeaseDb, NodeRow, Registered};

/// The default number of shards.
pub const DEFAULT_SHARDS: u32 = 256;
/// The default lease.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The shortest time between two reads of one shard's owner by requests.
const LOOK_UP_EVERY: Duration = Duration::from_millis(250);

/// How a node joins a cluster.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The PostgreSQL URL (`postgres://user@host:port/db`).
    pub url: String,
    /// This node's id: stable across restarts of the same node.
    pub node_id: String,
    /// The URL other nodes forward requests to (`http://10.0.0.5:7070`).
    pub advertise: String,
    /// The shard count; must match the database's.
    pub shards: u32,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// Tenants created on this node get this configuration.
    pub tenant: TenantConfig,
    /// Most tenants kept in memory on this node, over all its shards.
    pub max_active: usize,
    /// Hosts the health checks of guarded deployments may fetch.
    pub check_hosts: rewind_runtime::deploy::CheckHosts,
}

/// A shard this node owns: its runtime and until when its lease is valid.
struct Owned {
    epoch: u64,
    runtime: Runtime<Doc>,
    /// Microseconds since [`Inner::started`] until which the lease holds.
    valid_until: AtomicU64,
}

/// Where a tenant's requests go.
pub(crate) enum Route {
    /// This node owns the shard.
    Local(Runtime<Doc>),
    /// Another node does.
    Remote(Arc<NodeRow>),
    /// Nobody does right now (a lease expired and is not taken over yet).
    NoOwner,
}

/// A node of the cluster: cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    incarnation: String,
    store: PgStore,
    started: Instant,
    owned: ArcSwap<HashMap<u32, Arc<Owned>>>,
    /// The live owner of each shard as last read, by shard.
    owners: ArcSwap<Vec<Option<Arc<NodeRow>>>>,
    /// Set when the node is stopping: the loop releases and exits.
    stop: watch::Sender<bool>,
    /// The lease loop, joined by [`Cluster::shutdown`].
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The connection of owner look-ups (opened on first use, again when
    /// closed); never locked across an await.
    look_up_db: std::sync::Mutex<Option<Arc<LeaseDb>>>,
    /// Microseconds since `started` of each shard's last look-up.
    last_look_up: Vec<AtomicU64>,
    /// Idle connections to the other nodes, for forwards.
    links: Arc<forward::Links>,
}

impl Cluster {
    /// Connects to PostgreSQL (creating the schema on first use), registers
    /// the node and starts its lease loop. Waits, logging, while another
    /// incarnation of the same node id still heartbeats (the previous
    /// process of a restarted node, until its lease runs out).
    pub async fn join(config: ClusterConfig) -> anyhow::Result<Cluster> {
        anyhow::ensure!(
            !config.node_id.is_empty() && config.node_id.len() <= 128,
            "--node-id must be 1 to 128 characters"
        );
        anyhow::ensure!(config.shards > 0, "--shards must be at least 1");
        anyhow::ensure!(
            config.lease >= Duration::from_millis(300),
            "the lease must be at least 300ms"
        );
        let (url, shards) = (config.url.clone(), config.shards);
        let store = tokio::task::spawn_blocking(move || {
            PgStore::connect(
                &url,
                PgOptions {
                    shards,
                    ..PgOptions::default()
                },
            )
        })
        .await??;
        let db = LeaseDb::connect(&config.url, Duration::from_secs(5))
            .await
            .map_err(|e| anyhow::anyhow!("PostgreSQL at {} is unreachable: {e}", store.url()))?;
        let incarnation = format!(
            "{}-{}",
            std::process::id(),
            rewind_core::Timestamp::now().as_unix_micros()
        );
        loop {
            match db
                .register(
                    &config.node_id,
                    &incarnation,
                    &config.advertise,
                    config.lease,
                )
                .await?
            {
                Registered::Done => break,
                Registered::Busy { heartbeat_age } => {
                    tracing::warn!(
                        node = %config.node_id,
                        heartbeat_age = ?heartbeat_age,
                        "another process of this node id heartbeat within the lease; waiting \
                         for it to expire (a second process with the same --node-id never \
                         registers)"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        metrics::gauge!(CLUSTER_SHARDS).set(f64::from(config.shards));
        describe_metrics();
        let inner = Arc::new(Inner {
            owners: ArcSwap::from_pointee(vec![None; config.shards as usize]),
            config,
            incarnation,
            store,
            started: Instant::now(),
            owned: ArcSwap::from_pointee(HashMap::new()),
            stop: watch::channel(false).0,
            task: std::sync::Mutex::new(None),
            look_up_db: std::sync::Mutex::new(None),
            last_look_up: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            links: Arc::default(),
        });
        let task = tokio::spawn(run(Arc::clone(&inner), Some(db)));
        *inner.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        tracing::info!(
            node = %inner.config.node_id,
            shards = inner.config.shards,
            lease = ?inner.config.lease,
            "joined the cluster"
        );
        Ok(Cluster { inner })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// The shard count.
    pub fn shards(&self) -> u32 {
        self.inner.config.shards
    }

    /// The shards this node owns now, in order.
    pub fn owned_shards(&self) -> Vec<u32> {
        let mut owned: Vec<u32> = self.inner.owned.load().keys().copied().collect();
        owned.sort_unstable();
        owned
    }

    /// Where `tenant`'s requests go now.
    pub(crate) fn route(&self, tenant: &TenantId) -> Route {
        let shard = shard_of(tenant, self.inner.config.shards);
        if let Some(owned) = self.inner.owned.load().get(&shard) {
            return if self.inner.valid(owned) {
                Route::Local(owned.runtime.clone())
            } else {
                Route::NoOwner
            };
        }
        match self.inner.owners.load().get(shard as usize) {
            Some(Some(owner)) if owner.node != self.inner.config.node_id => {
                Route::Remote(Arc::clone(owner))
            }
            _ => Route::NoOwner,
        }
    }

    /// The owner of `tenant`'s shard read from the database now (after a
    /// forward found the cached owner wrong, or none). At most one read per
    /// shard every [`LOOK_UP_EVERY`]: in between, and when the database
    /// cannot be read, the cached route.
    pub(crate) async fn look_up(&self, tenant: &TenantId) -> Route {
        let inner = &self.inner;
        let shard = shard_of(tenant, inner.config.shards);
        let now = inner.now_us();
        let Some(last) = inner.last_look_up.get(shard as usize) else {
            return Route::NoOwner;
        };
        let previous = last.load(Ordering::Relaxed);
        if previous != 0 && now.saturating_sub(previous) < LOOK_UP_EVERY.as_micros() as u64 {
            return self.route(tenant);
        }
        last.store(now.max(1), Ordering::Relaxed);
        let found = match inner.look_up_db().await {
            Some(db) => db.owner_of(shard).await.ok().flatten(),
            None => None,
        };
        match found {
            Some(owner) if owner.node != inner.config.node_id => {
                let owner = Arc::new(owner);
                let mut owners = (**inner.owners.load()).clone();
                if let Some(slot) = owners.get_mut(shard as usize) {
                    *slot = Some(Arc::clone(&owner));
                }
                inner.owners.store(Arc::new(owners));
                Route::Remote(owner)
            }
            _ => self.route(tenant),
        }
    }

    /// The pooled connections to the other nodes.
    pub(crate) fn links(&self) -> &Arc<forward::Links> {
        &self.inner.links
    }

    /// This node as a forward target.
    pub(crate) fn own_row(&self) -> NodeRow {
        NodeRow {
            node: self.inner.config.node_id.clone(),
            advertise: self.inner.config.advertise.clone(),
        }
    }

    /// The runtimes of the shards owned now (for counts on this node).
    pub(crate) fn local_runtimes(&self) -> Vec<Runtime<Doc>> {
        self.inner
            .owned
            .load()
            .values()
            .map(|owned| owned.runtime.clone())
            .collect()
    }

    /// Up to `limit` live tenants of the cluster after `after`, by id, and
    /// whether more follow (from PostgreSQL).
    pub(crate) async fn live_tenants_page(
        &self,
        after: Option<TenantId>,
        limit: usize,
    ) -> Result<(Vec<TenantId>, bool), rewind_runtime::JournalError> {
        let store = self.inner.store.clone();
        let mut page = tokio::task::spawn_blocking(move || {
            store.live_tenants_page(after.as_ref(), limit.saturating_add(1))
        })
        .await
        .unwrap_or_else(|e| {
            Err(rewind_runtime::JournalError::Storage(format!(
                "listing tenants: {e}"
            )))
        })?;
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// How many live tenants the cluster holds (from PostgreSQL).
    pub(crate) async fn live_tenant_count(&self) -> Result<u64, rewind_runtime::JournalError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.live_tenant_count())
            .await
            .unwrap_or_else(|e| {
                Err(rewind_runtime::JournalError::Storage(format!(
                    "counting tenants: {e}"
                )))
            })
    }

    /// Leaves the cluster: releases every shard (after its runtime drained,
    /// so what it accepted is durable) and marks the node gone, so the other
    /// nodes take the shards over at their next check instead of after the
    /// lease. Then closes the journal.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

impl Inner {
    /// The look-up connection, opened if there is none (or it closed).
    async fn look_up_db(&self) -> Option<Arc<LeaseDb>> {
        let open = self
            .look_up_db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|db| !db.is_closed());
        if open.is_some() {
            return open;
        }
        let db = Arc::new(
            LeaseDb::connect(&self.config.url, Duration::from_secs(2))
                .await
                .ok()?,
        );
        *self.look_up_db.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&db));
        Some(db)
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn valid(&self, owned: &Owned) -> bool {
        self.now_us() < owned.valid_until.load(Ordering::Acquire)
    }

    /// Until when a lease renewed by a request sent at `sent` holds here.
    fn valid_until(&self, sent: Instant) -> u64 {
        let lease = self.config.lease.mul_f64(0.9);
        (sent + lease).duration_since(self.started).as_micros() as u64
    }

    /// How often the loop checks membership and free shards.
    fn tick(&self) -> Duration {
        (self.config.lease / 3).min(Duration::from_secs(1))
    }

    fn publish_owned(&self, owned: HashMap<u32, Arc<Owned>>) {
        metrics::gauge!(SHARDS_OWNED).set(owned.len() as f64);
        self.owned.store(Arc::new(owned));
    }

    /// Drops a shard taken over or expired: no more requests reach its
    /// runtime, which stops in the background (its writes are refused).
    fn lose(&self, shard: u32, why: &str) {
        let mut owned = (**self.owned.load()).clone();
        if let Some(lost) = owned.remove(&shard) {
            self.publish_owned(owned);
            metrics::counter!(SHARD_LOSSES_TOTAL).increment(1);
            tracing::warn!(shard, epoch = lost.epoch, "shard lost: {why}");
            tokio::spawn(async move {
                let _ = lost.runtime.shutdown().await;
            });
        }
    }

    /// Gives a shard up: no more requests reach it, its runtime drains
    /// (what it accepted is durable), then the lease is released.
    async fn release(&self, db: &LeaseDb, shard: u32) {
        let mut owned = (**self.owned.load()).clone();
        let Some(released) = owned.remove(&shard) else {
            return;
        };
        self.publish_owned(owned);
        if tokio::time::timeout(self.config.lease / 2, released.runtime.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                shard,
                "shard runtime slow to drain; releasing the lease anyway"
            );
        }
        match db
            .release(shard, &self.config.node_id, released.epoch)
            .await
        {
            Ok(true) => tracing::info!(shard, "shard handed over"),
            Ok(false) => tracing::warn!(shard, "shard was taken over before its release"),
            Err(error) => tracing::warn!(shard, %error, "releasing the shard failed; it expires"),
        }
    }

    /// Takes a free shard assigned to this node and starts its runtime.
    async fn acquire(
        &self,
        db: &LeaseDb,
        shard: u32,
        nodes: usize,
    ) -> Result<(), tokio_postgres::Error> {
        let sent = Instant::now();
        let Some(epoch) = db
            .acquire(shard, &self.config.node_id, self.config.lease)
            .await?
        else {
            return Ok(());
        };
        let fence = Fence {
            node: self.config.node_id.clone(),
            epoch,
        };
        let journal: Arc<dyn Journal> = Arc::new(self.store.shard_journal(shard, fence));
        // The node's budget shared by the shards it is meant to hold.
        let share = (self.config.shards as usize).div_ceil(nodes.max(1));
        let max_active = (self.config.max_active / share.max(1)).max(1_000);
        let started = Runtime::<Doc>::builder()
            .tenant_defaults(self.config.tenant)
            .max_active(max_active)
            .check_hosts(self.config.check_hosts.clone())
            .journal(journal)
            .start()
            .await;
        match started {
            Ok(runtime) => {
                let mut owned = (**self.owned.load()).clone();
                owned.insert(
                    shard,
                    Arc::new(Owned {
                        epoch,
                        runtime,
                        valid_until: AtomicU64::new(self.valid_until(sent)),
                    }),
                );
                self.publish_owned(owned);
                metrics::counter!(SHARD_ACQUISITIONS_TOTAL).increment(1);
                tracing::info!(shard, epoch, "shard acquired");
            }
            Err(error) => {
                tracing::error!(shard, %error, "shard acquired but its runtime did not start; releasing it");
                let _ = db.release(shard, &self.config.node_id, epoch).await;
            }
        }
        Ok(())
    }

    /// One round: heartbeat, renew when due, rebalance.
    async fn round(
        &self,
        db: &LeaseDb,
        last_renewal: &mut Option<Instant>,
    ) -> Result<(), tokio_postgres::Error> {
        if !db
            .heartbeat(&self.config.node_id, &self.incarnation)
            .await?
        {
            tracing::error!(
                node = %self.config.node_id,
                "another process registered with this node id: giving up every shard"
            );
            for shard in self.owned.load().keys().copied().collect::<Vec<_>>() {
                self.lose(shard, "the node id was taken by another process");
            }
            self.stop.send_replace(true);
            return Ok(());
        }
        let due = last_renewal.is_none_or(|at| at.elapsed() >= self.config.lease / 3);
        if due {
            let sent = Instant::now();
            let owned: Vec<(u32, u64)> = self
                .owned
                .load()
                .iter()
                .map(|(shard, owned)| (*shard, owned.epoch))
                .collect();
            let renewed = db
                .renew(&self.config.node_id, &owned, self.config.lease)
                .await?;
            metrics::histogram!(LEASE_RENEWAL_DURATION_SECONDS)
                .record(sent.elapsed().as_secs_f64());
            *last_renewal = Some(sent);
            let until = self.valid_until(sent);
            let current = self.owned.load();
            for (shard, _) in &owned {
                if renewed.contains(shard) {
                    if let Some(owned) = current.get(shard) {
                        owned.valid_until.store(until, Ordering::Release);
                    }
                } else {
                    self.lose(*shard, "its lease was taken over");
                }
            }
        }
        // Leases that ran out here without a renewal (database unreachable
        // past them) are gone too: another node may take them now.
        let expired: Vec<u32> = self
            .owned
            .load()
            .iter()
            .filter(|(_, owned)| !self.valid(owned))
            .map(|(shard, _)| *shard)
            .collect();
        for shard in expired {
            self.lose(shard, "its lease expired before it could be renewed");
        }

        let nodes = db.live_nodes(self.config.lease).await?;
        let names: Vec<String> = nodes.iter().map(|n| n.node.clone()).collect();
        let assignment = assign::assign(self.config.shards, &names);
        let rows = db.shards().await?;
        let by_node: BTreeMap<&str, Arc<NodeRow>> = nodes
            .iter()
            .map(|n| (n.node.as_str(), Arc::new(n.clone())))
            .collect();
        let mut owners = vec![None; self.config.shards as usize];
        let mut unowned = 0usize;
        for row in &rows {
            let Some(slot) = owners.get_mut(row.shard as usize) else {
                continue;
            };
            match (&row.owner, row.live) {
                (Some(owner), true) => *slot = by_node.get(owner.as_str()).cloned(),
                _ => unowned += 1,
            }
        }
        self.owners.store(Arc::new(owners));
        metrics::gauge!(CLUSTER_SHARDS_UNOWNED).set(unowned as f64);

        let me = names.iter().position(|n| *n == self.config.node_id);
        for row in rows {
            let desired_here =
                me.is_some() && assignment.get(row.shard as usize).copied().flatten() == me;
            let held = self.owned.load().contains_key(&row.shard);
            if held && !desired_here && me.is_some() {
                self.release(db, row.shard).await;
            } else if !held && desired_here {
                let free = row.owner.is_none()
                    || !row.live
                    || row.owner.as_deref() == Some(self.config.node_id.as_str());
                if free {
                    self.acquire(db, row.shard, names.len()).await?;
                }
            }
        }
        Ok(())
    }

    /// Leaving: release everything, mark the node gone.
    async fn leave(&self, db: &LeaseDb) {
        let _ = db.leave(&self.config.node_id, &self.incarnation).await;
        let shards: Vec<u32> = self.owned.load().keys().copied().collect();
        for shard in shards {
            self.release(db, shard).await;
        }
        tracing::info!(node = %self.config.node_id, "left the cluster");
    }
}

/// How often the lease loop tries to connect again while it has no
/// connection.
const RECONNECT_EVERY: Duration = Duration::from_millis(100);

/// The lease loop: a round every tick until stopped, reconnecting when the
/// connection drops.
async fn run(inner: Arc<Inner>, mut db: Option<LeaseDb>) {
    let mut stop = inner.stop.subscribe();
    let mut last_renewal = None;
    loop {
        if *stop.borrow() {
            break;
        }
        if db.as_ref().is_none_or(LeaseDb::is_closed) {
            db = LeaseDb::connect(&inner.config.url, inner.tick()).await.ok();
        }
        if let Some(connected) = &db {
            let budget = inner.config.lease / 2;
            match tokio::time::timeout(budget, inner.round(connected, &mut last_renewal)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "lease round failed; retrying");
                    db = None;
                }
                Err(_) => {
                    tracing::warn!("lease round timed out; reconnecting");
                    db = None;
                }
            }
        } else {
            // Still nothing renewed: expire what ran out.
            let expired: Vec<u32> = inner
                .owned
                .load()
                .iter()
                .filter(|(_, owned)| !inner.valid(owned))
                .map(|(shard, _)| *shard)
                .collect();
            for shard in expired {
                inner.lose(shard, "PostgreSQL unreachable past the lease");
            }
        }
        // Without a connection, try again soon: a PostgreSQL restart takes
        // about a second, and every tick missed eats into the lease.
        let pause = if db.as_ref().is_none_or(LeaseDb::is_closed) {
            RECONNECT_EVERY.min(inner.tick())
        } else {
            inner.tick()
        };
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
    if db.as_ref().is_none_or(LeaseDb::is_closed) {
        db = LeaseDb::connect(&inner.config.url, Duration::from_secs(2))
            .await
            .ok();
    }
    match &db {
        Some(db) => inner.leave(db).await,
        None => {
            for shard in inner.owned.load().keys().copied().collect::<Vec<_>>() {
                inner.lose(shard, "leaving without PostgreSQL");
            }
        }
    }
}

/// Shards this node owns.
pub const SHARDS_OWNED: &str = "rewind_shards_owned";
/// Shards acquired by this node.
pub const SHARD_ACQUISITIONS_TOTAL: &str = "rewind_shard_acquisitions_total";
/// Shards this node lost without giving them up.
pub const SHARD_LOSSES_TOTAL: &str = "rewind_shard_losses_total";
/// One renewal statement of all the node's leases.
pub const LEASE_RENEWAL_DURATION_SECONDS: &str = "rewind_lease_renewal_duration_seconds";
/// The cluster's shard count.
pub const CLUSTER_SHARDS: &str = "rewind_cluster_shards";
/// Shards with no live owner, as this node last read the leases.
pub const CLUSTER_SHARDS_UNOWNED: &str = "rewind_cluster_shards_unowned";
/// Requests forwarded to the owner of their tenant's shard.
pub const FORWARDED_REQUESTS_TOTAL: &str = "rewind_forwarded_requests_total";

fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(SHARDS_OWNED, "Shards this node owns");
    describe_counter!(
        SHARD_ACQUISITIONS_TOTAL,
        "Shard leases acquired by this node"
    );
    describe_counter!(
        SHARD_LOSSES_TOTAL,
        "Shards this node lost without releasing them (taken over or expired)"
    );
    describe_histogram!(
        LEASE_RENEWAL_DURATION_SECONDS,
        Unit::Seconds,
        "Time of one renewal of all the node's shard leases"
    );
    describe_gauge!(CLUSTER_SHARDS, "Shards of the cluster");
    describe_gauge!(
        CLUSTER_SHARDS_UNOWNED,
        "Shards with no live owner, as this node last read the leases"
    );
    describe_counter!(
        FORWARDED_REQUESTS_TOTAL,
        "Requests forwarded to the owner of their tenant's shard, by outcome"
    );
    metrics::counter!(SHARD_ACQUISITIONS_TOTAL).increment(0);
    metrics::counter!(SHARD_LOSSES_TOTAL).increment(0);
    metrics::gauge!(SHARDS_OWNED).set(0.0);
}
