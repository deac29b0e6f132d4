//! [`PgJournal`]: the journal on a PostgreSQL database, which the nodes of
//! a cluster share.
//!
//! A [`PgStore`] is one connection to the database: it creates the tables
//! on first use (`schema.rs`), owns one writer thread with its group commit
//! (`writer.rs`) and a small pool of reader threads (`reader.rs`); the SQL
//! of the rows is in `tables.rs`, the connection each thread owns in
//! `session.rs`. Every [`PgJournal`] made from the store queues its writes
//! to that one writer, so a commit serves the journals of every shard the
//! node owns.
//!
//! The PostgreSQL client blocks on a runtime of its own, which must not run
//! inside the caller's (an async worker thread): so no client ever runs on a
//! caller's thread. Writes travel to the writer through a channel and
//! resolve through a [`Durable`]; reads travel to a reader and the caller
//! waits for the answer, as it would for a query of its own.

mod reader;
mod schema;
mod session;
mod tables;
mod writer;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rewind_core::TenantId;
use rewind_runtime::journal::{
    Durable, Entry, Image, ImageQuery, Journal, JournalError, JournalSeq,
};
use tokio::sync::oneshot;

use reader::Readers;
use session::Session;
use writer::{Command, Writer};

/// How many reader threads (each with its own connection) a store runs.
const READERS: usize = 2;

/// How many writer threads (each with its own connection, each committing
/// the writes of its share of the tenants) a store runs: while one waits
/// for its commit, the other gathers the next, so a commit's round trips
/// are not every write's wait.
const WRITERS: usize = 2;

/// How long opening a connection may take when the URL does not say
/// (`connect_timeout`): an unreachable server fails in bounded time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most shards a database can be split into.
pub const MAX_SHARDS: u32 = 65_536;

/// How a [`PgStore`] splits its tenants and commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgOptions {
    /// Shards the tenants are split into (see [`shard_of`]): fixed when the
    /// database is first initialised, and every node must use the same
    /// count. From 1 to [`MAX_SHARDS`].
    pub shards: u32,
    /// Most records (entries and images) the writer puts in one transaction;
    /// 0 counts as 1. A single `append` batch larger than this is still
    /// committed whole, in one transaction.
    pub max_batch: usize,
}

impl Default for PgOptions {
    /// 256 shards, up to 1024 records per commit.
    fn default() -> Self {
        PgOptions {
            shards: 256,
            max_batch: 1024,
        }
    }
}

/// What a node writes a shard with: its id and the epoch of its lease on
/// the shard (the `owner` and `epoch` of the shard's row in
/// `rewind_shards`). The epoch grows at every acquisition of the lease, so
/// a node that lost the shard, even one that does not know it yet, writes
/// with an epoch that no longer matches and is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The node id, as the lease row names its owner.
    pub node: String,
    /// The epoch of the node's lease.
    pub epoch: u64,
}

/// The shard of `tenant` among `shards`: the 64-bit FNV-1a hash of the id's
/// bytes, modulo `shards` (0 when `shards` is 0). Every node computes the
/// same, and a tenant's shard is recorded at its first write.
pub fn shard_of(tenant: &TenantId, shards: u32) -> u32 {
    if shards == 0 {
        return 0;
    }
    let shard = crate::checksum::fnv1a(tenant.as_str().as_bytes()) % u64::from(shards);
    u32::try_from(shard).unwrap_or(0)
}

/// A connection to a rewind database on PostgreSQL: the source of
/// [`PgJournal`]s.
///
/// [`connect`](Self::connect) creates the tables on first use. The store
/// owns one writer thread, which every journal made from it queues to: it
/// takes everything queued since its last commit, of all tenants and
/// shards, up to [`PgOptions::max_batch`] records, into one transaction
/// (each write in its own savepoint, so a refused write stores nothing
/// while the others commit), commits, then acknowledges each caller: one
/// commit serves many writers (group commit). Each write is acknowledged
/// only after `COMMIT` returned; PostgreSQL's default `synchronous_commit`
/// has flushed it to the server's disk by then. Two reader threads (each
/// with its own connection) serve reads, which see what is committed.
///
/// A lost connection is opened again for the next transaction (with a
/// short, bounded backoff); a transaction the connection was lost in before
/// `COMMIT` was sent is run again on the new one, and one whose `COMMIT`
/// got no answer fails its writes with [`JournalError::Storage`] (they may
/// or may not be stored: the caller was never told they were).
///
/// Clones share the threads; [`close`](Self::close), or dropping the last
/// clone and journal, commits what is queued and stops them.
///
/// ```no_run
/// use rewind_core::{TenantId, Timestamp};
/// use rewind_runtime::{Entry, EntryKind, Journal, JournalSeq};
/// use rewind_store::{shard_of, Fence, PgOptions, PgStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PgStore::connect("postgres://rewind@127.0.0.1:5432/rewind", PgOptions::default())?;
/// let acme = TenantId::new("acme_corp")?;
/// // The node holds the lease of acme's shard at epoch 3.
/// let shard = shard_of(&acme, store.shards());
/// let journal = store.shard_journal(shard, Fence { node: "node-a".into(), epoch: 3 });
/// let entry = Entry {
///     tenant: acme.clone(),
///     seq: JournalSeq::new(1),
///     at: Timestamp::now(),
///     kind: EntryKind::Create,
///     payload: br#"{"version":"1.0"}"#.to_vec(),
/// };
/// journal.append(vec![entry]).await?; // committed, or `Fenced` after a takeover
/// assert_eq!(journal.live_tenants()?, vec![acme]);
/// store.close()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

/// What the clones of a store and its journals share.
struct Shared {
    /// The URL without its password, for messages.
    url: Arc<str>,
    shards: u32,
    /// The writers' queues: a tenant's writes go to the writer
    /// [`writer_of`] names.
    commands: Vec<mpsc::Sender<Command>>,
    /// Joined by `close`; empty once closed.
    writers: Mutex<Vec<JoinHandle<()>>>,
    readers: Readers,
    /// Transactions the writer committed.
    commits: Arc<AtomicU64>,
}

impl PgStore {
    /// The schema version this code writes, and the newest it can read.
    pub const SCHEMA_VERSION: u32 = schema::VERSION;

    /// Connects to the database at `url` (a `postgres://` URL or a
    /// `key=value` connection string, without TLS) and creates the tables
    /// if they are not there, in one transaction that concurrent first
    /// connects of several nodes take turns at.
    ///
    /// Blocks until the database answered: call it where blocking is fine
    /// (at start, a plain thread, `spawn_blocking`). No PostgreSQL client
    /// runs on the calling thread, so an async worker thread is safe too.
    /// Without a `connect_timeout` in the URL, a connection attempt gives
    /// up after 5 s.
    ///
    /// Errors: [`JournalError::Storage`] naming the URL (without password)
    /// and the cause if the server is unreachable or refuses, if
    /// `options.shards` is out of range, or if the database was
    /// initialised with another shard count;
    /// [`JournalError::SchemaTooNew`] if a newer rewind created the tables.
    pub fn connect(url: &str, options: PgOptions) -> Result<PgStore, JournalError> {
        let shown: Arc<str> = redact(url).into();
        if options.shards == 0 || options.shards > MAX_SHARDS {
            return Err(JournalError::Storage(format!(
                "PostgreSQL at {shown}: {} shards is out of range (from 1 to {MAX_SHARDS})",
                options.shards
            )));
        }
        let mut config: postgres::Config = url.parse().map_err(|e| {
            JournalError::Storage(format!(
                "{shown} is not a PostgreSQL URL: {}",
                session::describe(&e)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("rewind");
        }
        let config = Arc::new(config);
        let commits = Arc::new(AtomicU64::new(0));
        let mut commands = Vec::with_capacity(WRITERS);
        let mut writers = Vec::with_capacity(WRITERS);
        let stop = |commands: Vec<mpsc::Sender<Command>>, writers: Vec<JoinHandle<()>>| {
            drop(commands); // the writers stop
            for writer in writers {
                if writer.join().is_err() {
                    tracing::error!(url = %shown, "PostgreSQL journal writer thread panicked");
                }
            }
        };
        // The first writer creates the schema; the others connect once it
        // is there.
        for index in 0..WRITERS {
            match start_writer(index, &config, &shown, &options, &commits) {
                Ok((queue, writer)) => {
                    commands.push(queue);
                    writers.push(writer);
                }
                Err(error) => {
                    stop(commands, writers);
                    return Err(error);
                }
            }
        }
        let readers = match Readers::start(config, shown.clone(), READERS) {
            Ok(readers) => readers,
            Err(error) => {
                stop(commands, writers);
                return Err(error);
            }
        };
        tracing::info!(url = %shown, shards = options.shards, schema = schema::VERSION, "PostgreSQL journal connected");
        Ok(PgStore {
            shared: Arc::new(Shared {
                url: shown,
                shards: options.shards,
                commands,
                writers: Mutex::new(writers),
                readers,
                commits,
            }),
        })
    }

    /// The shard count the database was initialised with.
    pub fn shards(&self) -> u32 {
        self.shared.shards
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// A journal of every tenant, writing without a fence: for a single
    /// node, tools and tests. In a cluster, nodes write through
    /// [`shard_journal`](Self::shard_journal).
    pub fn journal(&self) -> PgJournal {
        PgJournal {
            store: self.clone(),
            scope: None,
        }
    }

    /// A journal of the tenants of `shard`, writing with `fence`.
    ///
    /// Every transaction holding its writes first checks, in the same
    /// transaction, that the shard's lease row still names `fence.node` as
    /// owner at `fence.epoch` (and holds a share lock on the row until the
    /// commit, so a takeover waits for it). If not, each of its writes in
    /// that transaction fails with [`JournalError::Fenced`] and stores
    /// nothing, while the others commit. A write of a tenant of another
    /// shard is refused with [`JournalError::Storage`] (a routing bug).
    /// [`tenants`](Journal::tenants) and
    /// [`live_tenants`](Journal::live_tenants) list the shard's tenants
    /// only; reads of a tenant work for any tenant.
    pub fn shard_journal(&self, shard: u32, fence: Fence) -> PgJournal {
        PgJournal {
            store: self.clone(),
            scope: Some(Arc::new(Scope { shard, fence })),
        }
    }

    /// Up to `limit` live tenants of every shard after `after`, ordered by
    /// id (what [`Journal::live_tenants`] of [`journal`](Self::journal)
    /// lists, a page at a time): for listings of a whole cluster. Blocks
    /// until a reader has the answer.
    pub fn live_tenants_page(
        &self,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<TenantId>, JournalError> {
        let after = after.map(|id| id.as_str().to_owned());
        self.shared
            .readers
            .call(move |session, url| tables::live_page(session, url, after.as_deref(), limit))
    }

    /// How many live tenants every shard holds together. Blocks until a
    /// reader has the answer (the server counts: O(tenants) there, nothing
    /// transferred).
    pub fn live_tenant_count(&self) -> Result<u64, JournalError> {
        self.shared.readers.call(tables::live_count)
    }

    /// How many transactions the writer has committed: with group commit,
    /// far fewer than the writes under concurrency.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Commits everything queued, then stops the writer and the readers
    /// and closes their connections; blocks until they have. Reports a
    /// failure of that last commit. Every journal of the store answers
    /// [`JournalError::Closed`] afterwards; closing again does nothing.
    pub fn close(&self) -> Result<(), JournalError> {
        self.shared.close()
    }

    /// Queues `command` to the writer of `tenant`; false if it is gone.
    fn send(&self, tenant: &TenantId, command: Command) -> bool {
        let writer = writer_of(tenant, self.shared.commands.len());
        self.shared.commands[writer].send(command).is_ok()
    }

    /// Queues a flush through every writer in turn.
    fn flush(&self, done: oneshot::Sender<writer::Outcome>) -> bool {
        let mut writers = self.shared.commands.clone();
        if writers.is_empty() {
            return false;
        }
        let first = writers.remove(0);
        first
            .send(Command::Flush {
                done,
                then: writers,
            })
            .is_ok()
    }
}

/// The writer a tenant's writes go to, among `writers`: one writer per
/// tenant keeps each tenant's writes in order. A batch naming several
/// tenants goes to its first tenant's writer (it stays atomic; two such
/// batches in flight at once for one tenant through different writers may
/// be refused as out of sequence, never stored half).
fn writer_of(tenant: &TenantId, writers: usize) -> usize {
    (crate::checksum::fnv1a(tenant.as_str().as_bytes()) % writers.max(1) as u64) as usize
}

/// Starts writer `index`: its thread, its connection (the first one also
/// creates the schema), its queue. Returns once connected.
fn start_writer(
    index: usize,
    config: &Arc<postgres::Config>,
    shown: &Arc<str>,
    options: &PgOptions,
    commits: &Arc<AtomicU64>,
) -> Result<(mpsc::Sender<Command>, JoinHandle<()>), JournalError> {
    let (commands, queue) = mpsc::channel();
    let (ready, initialised) = mpsc::sync_channel(1);
    let (config, url, commits) = (config.clone(), shown.clone(), commits.clone());
    let shards = options.shards;
    let max_batch = options.max_batch.max(1);
    let writer = std::thread::Builder::new()
        .name("rewind-pg-writer".into())
        .spawn(move || {
            let opened = Session::connect(&config, &url).and_then(|mut session| {
                if index == 0 {
                    schema::initialise(&mut session, &url, shards).map(|()| session)
                } else {
                    Ok(session)
                }
            });
            match opened {
                Err(error) => drop(ready.send(Err(error))),
                Ok(session) => {
                    drop(ready.send(Ok(())));
                    Writer::new(session, config, url, shards, max_batch, commits).run(queue);
                }
            }
        })
        .map_err(|e| {
            JournalError::Storage(format!(
                "PostgreSQL at {shown}: starting a writer thread: {e}"
            ))
        })?;
    let outcome = initialised.recv().unwrap_or_else(|_| {
        Err(JournalError::Storage(format!(
            "PostgreSQL at {shown}: a writer thread stopped while connecting"
        )))
    });
    match outcome {
        Ok(()) => Ok((commands, writer)),
        Err(error) => {
            if writer.join().is_err() {
                tracing::error!(url = %shown, "PostgreSQL journal writer thread panicked");
            }
            Err(error)
        }
    }
}

impl Shared {
    fn close(&self) -> Result<(), JournalError> {
        let writers =
            std::mem::take(&mut *self.writers.lock().unwrap_or_else(PoisonError::into_inner));
        if writers.is_empty() {
            return Ok(());
        }
        let mut result = Ok(());
        for commands in &self.commands {
            let (done, outcome) = mpsc::sync_channel(1);
            let closed = if commands.send(Command::Close { done }).is_ok() {
                outcome.recv().unwrap_or(Err(JournalError::Closed))
            } else {
                Err(JournalError::Closed)
            };
            if result.is_ok() {
                result = closed;
            }
        }
        for writer in writers {
            if writer.join().is_err() {
                tracing::error!(url = %self.url, "PostgreSQL journal writer thread panicked");
            }
        }
        self.readers.stop();
        tracing::debug!(url = %self.url, "PostgreSQL journal closed");
        result
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Err(error) = self.close() {
            tracing::error!(url = %self.url, %error, "closing the PostgreSQL journal failed");
        }
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url())
            .field("shards", &self.shards())
            .field("commits", &self.commits())
            .finish_non_exhaustive()
    }
}

/// The shard a scoped journal serves and the fence it writes with.
#[derive(Debug, PartialEq, Eq)]
struct Scope {
    shard: u32,
    fence: Fence,
}

/// A [`Journal`] on a [`PgStore`]: unscoped ([`PgStore::journal`], every
/// tenant, no fence) or scoped to a shard ([`PgStore::shard_journal`]).
///
/// `append` and `save_image` only queue (O(1) for the caller) and resolve
/// once committed; `delete_up_to` and `delete_image` go through the writer
/// too, after what was queued before them, and block until committed. Reads
/// block until a reader thread has the answer: `read` is O(log n + k) for k
/// entries, `highest_seq` and `load_image` O(log n) plus the tenant's
/// images, `tenants` and `live_tenants` one pass over the tenants (of the
/// shard, by index, when scoped). Reads verify each record's checksum: a
/// damaged record gives [`JournalError::Corrupt`] naming tenant and seq,
/// and other tenants read normally.
#[derive(Clone)]
pub struct PgJournal {
    store: PgStore,
    scope: Option<Arc<Scope>>,
}

impl PgJournal {
    /// The store the journal writes through.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// The shard it is scoped to, if any.
    pub fn shard(&self) -> Option<u32> {
        self.scope.as_ref().map(|scope| scope.shard)
    }

    /// The fence it writes with, if scoped.
    pub fn fence(&self) -> Option<&Fence> {
        self.scope.as_ref().map(|scope| &scope.fence)
    }

    /// Refuses a tenant of another shard than the journal's.
    fn route(&self, tenant: &TenantId) -> Result<(), JournalError> {
        let Some(scope) = &self.scope else {
            return Ok(());
        };
        let shard = shard_of(tenant, self.store.shards());
        if shard == scope.shard {
            return Ok(());
        }
        Err(JournalError::Storage(format!(
            "PostgreSQL at {}: tenant '{tenant}' belongs to shard {shard}, not to shard {} \
             this journal writes: the write was refused (a routing bug: write through the \
             journal of the tenant's shard)",
            self.store.url(),
            scope.shard
        )))
    }

    /// Queues a write of `tenant` that resolves once committed.
    fn write(
        &self,
        tenant: &TenantId,
        command: impl FnOnce(oneshot::Sender<writer::Outcome>) -> Command,
    ) -> Durable {
        let (done, durable) = oneshot::channel();
        if self.store.send(tenant, command(done)) {
            Durable::pending(durable)
        } else {
            Durable::ready(Err(JournalError::Closed))
        }
    }

    /// Queues a deletion of `tenant` and blocks until it is committed.
    fn delete(
        &self,
        tenant: &TenantId,
        command: impl FnOnce(mpsc::SyncSender<writer::Outcome>) -> Command,
    ) -> Result<(), JournalError> {
        let (done, outcome) = mpsc::sync_channel(1);
        if !self.store.send(tenant, command(done)) {
            return Err(JournalError::Closed);
        }
        outcome.recv().unwrap_or(Err(JournalError::Closed))
    }

    /// Runs `query` on a reader thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        query: impl FnMut(&mut Session, &str) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        self.store.shared.readers.call(query)
    }
}

impl Journal for PgJournal {
    fn append(&self, entries: Vec<Entry>) -> Durable {
        if entries.is_empty() {
            return Durable::ready(Ok(()));
        }
        if let Err(error) = entries
            .iter()
            .try_for_each(|entry| self.route(&entry.tenant))
        {
            return Durable::ready(Err(error));
        }
        let scope = self.scope.clone();
        let first = entries[0].tenant.clone();
        self.write(&first, |done| Command::Append {
            entries,
            scope,
            done,
        })
    }

    fn save_image(&self, image: Image) -> Durable {
        if let Err(error) = self.route(&image.tenant) {
            return Durable::ready(Err(error));
        }
        let scope = self.scope.clone();
        let tenant = image.tenant.clone();
        self.write(&tenant, |done| Command::SaveImage { image, scope, done })
    }

    fn flush(&self) -> Durable {
        let (done, durable) = oneshot::channel();
        if self.store.flush(done) {
            Durable::pending(durable)
        } else {
            Durable::ready(Err(JournalError::Closed))
        }
    }

    fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        let shard = self.shard();
        self.call(move |session, url| tables::tenants(session, url, shard, false))
    }

    fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        let shard = self.shard();
        self.call(move |session, url| tables::tenants(session, url, shard, true))
    }

    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError> {
        let (tenant, from, to) = (tenant.clone(), from.get(), to.get());
        self.call(move |session, url| tables::read_entries(session, url, &tenant, from, to))
    }

    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        let tenant = tenant.clone();
        self.call(move |session, url| tables::highest_seq(session, url, &tenant))
    }

    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError> {
        self.route(tenant)?;
        let (id, to, scope) = (tenant.clone(), to.get(), self.scope.clone());
        self.delete(tenant, |done| Command::DeleteEntries {
            tenant: id,
            to,
            scope,
            done,
        })
    }

    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        let (tenant, query) = (tenant.clone(), query.clone());
        self.call(move |session, url| tables::load_image(session, url, &tenant, &query))
    }

    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError> {
        self.route(tenant)?;
        let (id, seq, scope) = (tenant.clone(), seq.get(), self.scope.clone());
        self.delete(tenant, |done| Command::DeleteImage {
            tenant: id,
            seq,
            scope,
            done,
        })
    }

    /// Fenced like every write of a scoped journal: refused with `Fenced`
    /// once the shard's lease moved on.
    fn set_resume_mark(&self, tenant: &TenantId, marked: bool) -> Result<(), JournalError> {
        self.route(tenant)?;
        let tenant = tenant.clone();
        let shard = shard_of(&tenant, self.store.shards());
        let fence = self.scope.as_ref().map(|scope| scope.fence.clone());
        self.call(move |session, url| {
            tables::set_mark(session, url, &tenant, shard, fence.as_ref(), marked)
        })
    }

    fn resume_marks(&self) -> Result<Vec<TenantId>, JournalError> {
        let shard = self.shard();
        self.call(move |session, url| tables::marks(session, url, shard))
    }
}

impl fmt::Debug for PgJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgJournal")
            .field("url", &self.store.url())
            .field("shard", &self.shard())
            .field("fence", &self.fence())
            .finish_non_exhaustive()
    }
}

/// `url` without its password, for messages: the password of a
/// `postgres://user:password@host/db` URL and any `password` parameter (of
/// the URL's query or of a `key=value` connection string) are left out.
fn redact(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let scheme = ["postgresql://", "postgres://"]
        .into_iter()
        .find(|scheme| lower.starts_with(scheme));
    match scheme {
        Some(scheme) => redact_url(&url[..scheme.len()], &url[scheme.len()..]),
        None => redact_key_values(url),
    }
}

/// The URL form: `scheme` then `user:password@host/db?params`.
fn redact_url(scheme: &str, rest: &str) -> String {
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}{host}")
        }
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| {
                    let key = pair.split('=').next().unwrap_or_default();
                    !key.eq_ignore_ascii_case("password")
                })
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}{authority}{tail}")
}

/// The `key=value` form: each pair kept but `password`'s. A string this
/// cannot split into pairs is shown only when it has no password in it.
fn redact_key_values(text: &str) -> String {
    let Some(pairs) = key_value_pairs(text) else {
        return if text.to_ascii_lowercase().contains("password") {
            "(a connection string; not shown, as it has a password)".to_owned()
        } else {
            text.to_owned()
        };
    };
    pairs
        .into_iter()
        .filter(|(key, _)| !key.eq_ignore_ascii_case("password"))
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits a `key=value` connection string into its pairs, values as
/// written (quotes included); `None` if it does not parse.
fn key_value_pairs(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(|c: char| c == '=' || c.is_whitespace())?;
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start().strip_prefix('=')?.trim_start();
        let value_end = if rest.starts_with('\'') {
            let mut escaped = false;
            let mut end = None;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => {}
                }
            }
            end?
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        if key.is_empty() {
            return None;
        }
        pairs.push((key, &rest[..value_end]));
        rest = rest[value_end..].trim_start();
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_password() {
        assert_eq!(
            redact("postgres://rewind:s3cret@127.0.0.1:5432/rewind"),
            "postgres://rewind@127.0.0.1:5432/rewind"
        );
        assert_eq!(
            redact("postgresql://rewind@db/rewind?password=x&sslmode=disable"),
            "postgresql://rewind@db/rewind?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://a:b@h1,h2/db?password=x"),
            "postgres://a@h1,h2/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact("host=db user=rewind password='a b\\' c' dbname=x"),
            "host=db user=rewind dbname=x"
        );
        assert_eq!(
            redact("host=db password = secret"),
            "host=db",
            "spaces around ="
        );
        assert!(!redact("host=db password='unterminated").contains("unterminated"));
    }

    #[test]
    fn shards_spread_tenants_and_are_stable() {
        let acme = TenantId::new("acme_corp").unwrap();
        assert_eq!(shard_of(&acme, 1), 0);
        assert_eq!(shard_of(&acme, 0), 0);
        assert_eq!(
            u64::from(shard_of(&acme, 256)),
            crate::checksum::fnv1a(b"acme_corp") % 256
        );
        let mut used = std::collections::HashSet::new();
        for i in 0..1000 {
            let tenant = TenantId::new(format!("tenant-{i}")).unwrap();
            let shard = shard_of(&tenant, 16);
            assert!(shard < 16);
            used.insert(shard);
        }
        assert_eq!(used.len(), 16, "every shard gets tenants");
    }
}
