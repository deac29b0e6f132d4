//! The SQL of membership and shard leases, on the tables the PostgreSQL
//! journal creates (`rewind_nodes`, `rewind_shards`).
//!
//! A node owns a shard while it holds the shard's lease row: `owner` is the
//! node, `epoch` grows at every acquisition, `expires_at` is the database's
//! clock plus the lease. Every statement here is one conditional `UPDATE`
//! (or a read): acquiring needs the row free or expired, renewing and
//! releasing need the owner and the epoch unchanged. The journal fences each
//! write on the same row (`FOR SHARE`, same owner and epoch), so a node
//! whose lease was taken over writes nothing.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

/// One connection for the lease loop; its driver task is aborted on drop.
pub(crate) struct LeaseDb {
    client: Client,
    driver: JoinHandle<()>,
}

/// A shard's lease row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardRow {
    pub(crate) shard: u32,
    pub(crate) owner: Option<String>,
    pub(crate) epoch: u64,
    /// `expires_at` is in the future on the database's clock.
    pub(crate) live: bool,
}

/// A node that heartbeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeRow {
    pub(crate) node: String,
    pub(crate) advertise: String,
}

/// What [`LeaseDb::register`] found.
pub(crate) enum Registered {
    /// The node is registered with this incarnation.
    Done,
    /// Another incarnation of the node heartbeat this long ago, within the
    /// lease: it may be alive (a second process with the same id, or the
    /// previous one not yet expired).
    Busy { heartbeat_age: Duration },
}

type Result<T> = std::result::Result<T, tokio_postgres::Error>;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl LeaseDb {
    /// Connects, giving up after `timeout`.
    pub(crate) async fn connect(url: &str, timeout: Duration) -> Result<LeaseDb> {
        let mut config: tokio_postgres::Config = url.parse()?;
        config.connect_timeout(timeout);
        config.application_name("rewind-lease");
        // A lease row locked by a stalled writer (see the journal's
        // `idle_in_transaction_session_timeout`) must not stall the whole
        // round: a statement waits at most a second for a lock.
        config.options("-c lock_timeout=1000 -c statement_timeout=5000");
        let (client, connection) = config.connect(NoTls).await?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "lease connection to PostgreSQL ended");
            }
        });
        Ok(LeaseDb { client, driver })
    }

    /// Whether the connection is gone (the loop then reconnects).
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Registers `node` as `incarnation`, unless another incarnation of it
    /// heartbeat within `lease` and did not leave.
    pub(crate) async fn register(
        &self,
        node: &str,
        incarnation: &str,
        advertise: &str,
        lease: Duration,
    ) -> Result<Registered> {
        let busy = self
            .client
            .query_opt(
                "SELECT extract(epoch FROM now() - heartbeat_at)::float8 FROM rewind_nodes
                 WHERE node = $1 AND incarnation <> $2 AND left_at IS NULL
                   AND heartbeat_at > now() - make_interval(secs => $3)",
                &[&node, &incarnation, &secs(lease)],
            )
            .await?;
        if let Some(row) = busy {
            let age: f64 = row.get(0);
            return Ok(Registered::Busy {
                heartbeat_age: Duration::from_secs_f64(age.max(0.0)),
            });
        }
        self.client
            .execute(
                "INSERT INTO rewind_nodes (node, incarnation, advertise, heartbeat_at, left_at)
                 VALUES ($1, $2, $3, now(), NULL)
                 ON CONFLICT (node) DO UPDATE
                 SET incarnation = $2, advertise = $3, heartbeat_at = now(), left_at = NULL",
                &[&node, &incarnation, &advertise],
            )
            .await?;
        Ok(Registered::Done)
    }

    /// Heartbeats; false when the row names another incarnation now.
    pub(crate) async fn heartbeat(&self, node: &str, incarnation: &str) -> Result<bool> {
        let updated = self
            .client
            .execute(
                "UPDATE rewind_nodes SET heartbeat_at = now()
                 WHERE node = $1 AND incarnation = $2 AND left_at IS NULL",
                &[&node, &incarnation],
            )
            .await?;
        Ok(updated == 1)
    }

    /// Marks the node gone, so the others rebalance at once.
    pub(crate) async fn leave(&self, node: &str, incarnation: &str) -> Result<()> {
        self.client
            .execute(
                "UPDATE rewind_nodes SET left_at = now() WHERE node = $1 AND incarnation = $2",
                &[&node, &incarnation],
            )
            .await?;
        Ok(())
    }

    /// The nodes that heartbeat within `lease` and did not leave, by id.
    pub(crate) async fn live_nodes(&self, lease: Duration) -> Result<Vec<NodeRow>> {
        let rows = self
            .client
            .query(
                "SELECT node, advertise FROM rewind_nodes
                 WHERE left_at IS NULL AND heartbeat_at > now() - make_interval(secs => $1)
                 ORDER BY node",
                &[&secs(lease)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| NodeRow {
                node: row.get(0),
                advertise: row.get(1),
            })
            .collect())
    }

    /// Every shard's lease row, by shard.
    pub(crate) async fn shards(&self) -> Result<Vec<ShardRow>> {
        let rows = self
            .client
            .query(
                "SELECT shard, owner, epoch, expires_at > now() FROM rewind_shards ORDER BY shard",
                &[],
            )
            .await?;
        Ok(rows.iter().filter_map(shard_row).collect())
    }

    /// The live owner of one shard and where it serves.
    pub(crate) async fn owner_of(&self, shard: u32) -> Result<Option<NodeRow>> {
        let row = self
            .client
            .query_opt(
                "SELECT n.node, n.advertise FROM rewind_shards s
                 JOIN rewind_nodes n ON n.node = s.owner
                 WHERE s.shard = $1 AND s.expires_at > now() AND n.left_at IS NULL",
                &[&as_int(shard)],
            )
            .await?;
        Ok(row.map(|row| NodeRow {
            node: row.get(0),
            advertise: row.get(1),
        }))
    }

    /// Takes the shard if it is free, its lease expired, or it names this
    /// node already (an earlier process of it, or a runtime of this one
    /// that was dropped): its new epoch, which fences whoever wrote with the
    /// old one; `None` when another node holds it, or a writer has its row
    /// locked (the next round tries again).
    pub(crate) async fn acquire(
        &self,
        shard: u32,
        node: &str,
        lease: Duration,
    ) -> Result<Option<u64>> {
        let row = self
            .client
            .query_opt(
                "UPDATE rewind_shards
                 SET owner = $2, epoch = epoch + 1,
                     expires_at = now() + make_interval(secs => $3)
                 WHERE shard = (
                     SELECT shard FROM rewind_shards
                     WHERE shard = $1
                       AND (owner IS NULL OR expires_at <= now() OR owner = $2)
                     FOR UPDATE SKIP LOCKED
                 )
                 RETURNING epoch",
                &[&as_int(shard), &node, &secs(lease)],
            )
            .await?;
        Ok(row.map(|row| row.get::<_, i64>(0) as u64))
    }

    /// Renews the leases `owned` (shard, epoch) in one statement: the shards
    /// renewed. A shard missing from the answer was taken over.
    pub(crate) async fn renew(
        &self,
        node: &str,
        owned: &[(u32, u64)],
        lease: Duration,
    ) -> Result<Vec<u32>> {
        if owned.is_empty() {
            return Ok(Vec::new());
        }
        let shards: Vec<i32> = owned.iter().map(|(shard, _)| as_int(*shard)).collect();
        let epochs: Vec<i64> = owned.iter().map(|(_, epoch)| *epoch as i64).collect();
        let rows = self
            .client
            .query(
                // The rows are locked in shard order first, the order in
                // which the journal's writer share-locks them to fence its
                // transactions: locking them in any other order could
                // deadlock with it.
                "UPDATE rewind_shards AS s
                 SET expires_at = now() + make_interval(secs => $4)
                 FROM (
                     SELECT l.shard FROM rewind_shards l
                     JOIN unnest($2::int4[], $3::int8[]) AS o(shard, epoch)
                       ON l.shard = o.shard AND l.epoch = o.epoch
                     WHERE l.owner = $1
                     ORDER BY l.shard
                     FOR UPDATE OF l
                 ) AS mine
                 WHERE s.shard = mine.shard
                 RETURNING s.shard",
                &[&node, &shards, &epochs, &secs(lease)],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get::<_, i32>(0) as u32).collect())
    }

    /// Gives the shard up (graceful hand-over): free at once for the node
    /// it is assigned to. False when it was not ours at `epoch` any more.
    pub(crate) async fn release(&self, shard: u32, node: &str, epoch: u64) -> Result<bool> {
        let updated = self
            .client
            .execute(
                "UPDATE rewind_shards SET owner = NULL, expires_at = now()
                 WHERE shard = $1 AND owner = $2 AND epoch = $3",
                &[&as_int(shard), &node, &(epoch as i64)],
            )
            .await?;
        Ok(updated == 1)
    }
}

impl Drop for LeaseDb {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

fn shard_row(row: &tokio_postgres::Row) -> Option<ShardRow> {
    let shard: i32 = row.get(0);
    let epoch: i64 = row.get(2);
    Some(ShardRow {
        shard: u32::try_from(shard).ok()?,
        owner: row.get(1),
        epoch: u64::try_from(epoch).ok()?,
        live: row.get(3),
    })
}

/// Shard numbers are below the shard count, itself an `i32` in the schema.
fn as_int(shard: u32) -> i32 {
    i32::try_from(shard).unwrap_or(i32::MAX)
}
