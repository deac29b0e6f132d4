//! [`SqliteJournal`]: the journal on an embedded SQLite file.

mod checkpoint;
mod lock;
mod reader;
mod schema;
mod tables;
mod writer;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rewind_core::TenantId;
use rewind_runtime::journal::{
    Durable, Entry, Image, ImageQuery, Journal, JournalError, JournalHolder, JournalSeq,
};
use tokio::sync::oneshot;

use reader::Reader;
use writer::{Ack, Command, Policy, Writer};

/// When [`SqliteJournal::append`](Journal::append) reports a write durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// After the transaction holding it is committed and fsynced. No
    /// acknowledged write is ever lost.
    #[default]
    Sync,
    /// At once; the writer commits (and fsyncs) at least every `interval`.
    /// A crash loses up to `interval` of acknowledged writes; a write the
    /// journal refuses later (say, out of sequence) is reported by the next
    /// [`flush`](Journal::flush).
    Buffered {
        /// Longest time an acknowledged write waits for its commit.
        interval: Duration,
    },
}

/// How a [`SqliteJournal`] commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    /// When writes are acknowledged.
    pub mode: SyncMode,
    /// Most records (entries and images) the writer puts in one transaction
    /// (one fsync); 0 counts as 1. A single `append` batch larger than this
    /// is still committed whole, in one transaction.
    pub max_batch: usize,
}

impl Default for SqliteOptions {
    /// `Sync` mode, up to 1024 records per commit.
    fn default() -> Self {
        SqliteOptions {
            mode: SyncMode::Sync,
            max_batch: 1024,
        }
    }
}

/// Internal switches of the writer, **for benchmarks only** (the `tail`
/// bench runs the journal with and without them, side by side). Not part of
/// the supported API: the default is what [`SqliteJournal::open`] uses, and
/// a field may change or go without notice.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Checkpoint the WAL from a background thread (default). Off: SQLite's
    /// automatic checkpoint runs inside the commit that crosses 1000 pages.
    pub background_checkpoint: bool,
    /// Commit appends first and run images and deletions in their own
    /// bounded transactions (default). Off: everything gathered shares one
    /// transaction.
    pub maintenance_apart: bool,
}

impl Default for Tuning {
    /// Both on.
    fn default() -> Self {
        Tuning {
            background_checkpoint: true,
            maintenance_apart: true,
        }
    }
}

/// A [`Journal`] in one SQLite file (WAL mode, `synchronous=FULL`).
///
/// One dedicated writer thread owns the write connection. It takes every
/// write queued since its last commit, of all tenants, into one transaction
/// (each `append` batch in its own savepoint, so a refused batch stores
/// nothing while the others commit), commits, then acknowledges each waiting
/// caller: one fsync serves many writers (group commit). Reads use a second
/// connection, which WAL lets run beside the writer; they see what is
/// committed. Deletions go through the writer, after the writes queued before
/// them, and block until committed.
///
/// Appends come first: images and deletions run after the appends gathered
/// with them, in transactions of their own, and a `delete_up_to` of many
/// entries is split into several, so a large one delays acknowledgements by
/// one small transaction at most. WAL checkpoints run on a background thread
/// with its own connection, not inside the writer's commits; the WAL stays
/// bounded (it restarts near 16 MiB; past 32 MiB the writer forces it).
///
/// Dropping the journal (or [`close`](SqliteJournal::close)) lets the writer
/// commit what is queued, then stops it and the checkpointer; both block
/// until they have.
///
/// One journal serves one runtime: [`open`](SqliteJournal::open) locks the
/// file until the journal is closed or dropped, and a second open, in this
/// process or another, is refused with [`JournalError::AlreadyOpen`] naming
/// the holder. The OS releases the lock of a process that dies, however it
/// dies, so the next open after a crash or a kill -9 succeeds.
///
/// Costs: `append` and `save_image` only queue (O(1) for the caller); a
/// commit is one fsync plus O(log n) per record. `read` is O(log n + k) for
/// k entries, `highest_seq` and `load_image` O(log n) plus the tenant's
/// images, `tenants` O(records). Reads verify a checksum: O(bytes read).
pub struct SqliteJournal {
    path: PathBuf,
    mode: SyncMode,
    /// The writer's queue; taken on drop, which tells the writer to stop.
    commands: Option<mpsc::Sender<Command>>,
    /// Joined on drop so the file is closed when the journal is gone.
    writer: Option<JoinHandle<()>>,
    /// The background checkpointer; stops when the writer does, joined
    /// after it.
    checkpointer: Option<JoinHandle<()>>,
    reader: Reader,
    /// Transactions the writer committed.
    commits: Arc<AtomicU64>,
    /// WAL checkpoints run (background and writer).
    checkpoints: Arc<AtomicU64>,
    /// The OS lock on `<journal>.lock`; released (closed) last on drop,
    /// after the writer has removed the holder row.
    lock: Option<File>,
    /// This process, as the holder row records it.
    holder: JournalHolder,
}

impl SqliteJournal {
    /// The schema version this code writes, and the newest it can read.
    pub const SCHEMA_VERSION: u32 = schema::VERSION;

    /// Opens the journal at `path`, creating the file (not its directory) if
    /// it does not exist.
    ///
    /// The journal is locked until it is closed or dropped: the OS lock of
    /// a sidecar file `<path>.lock` (created beside it and left there), and
    /// a holder row in the journal (pid, host, start) for the processes of
    /// other hosts that share the disk. A holder row left by a process of
    /// this host that is gone is taken over. A runtime on the journal holds
    /// it until the runtime, its clones and its tenant handles are dropped.
    ///
    /// Errors: [`JournalError::AlreadyOpen`] naming the holder if the
    /// journal is open, in this process or another (or if another host's
    /// holder row is there: see [`break_lock`](Self::break_lock));
    /// [`JournalError::SchemaTooNew`] if a newer rewind wrote the
    /// file; [`JournalError::Storage`] naming the file if it cannot be opened
    /// or is not a rewind journal (garbage, truncated, another database).
    ///
    /// ```
    /// use rewind_runtime::JournalError;
    /// use rewind_store::{SqliteJournal, SqliteOptions};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("rewind-doc-lock-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("journal.db");
    /// let journal = SqliteJournal::open(&path, SqliteOptions::default())?;
    /// match SqliteJournal::open(&path, SqliteOptions::default()) {
    ///     Err(JournalError::AlreadyOpen { holder, .. }) => {
    ///         assert_eq!(holder.map(|h| h.pid), Some(std::process::id()));
    ///     }
    ///     other => panic!("a second open must be refused: {other:?}"),
    /// }
    /// journal.close()?;
    /// let reopened = SqliteJournal::open(&path, SqliteOptions::default())?;
    /// # drop(reopened);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, JournalError> {
        Self::open_tuned(path, options, Tuning::default())
    }

    /// [`open`](Self::open) with internal switches: for benchmarks only
    /// (see [`Tuning`]).
    #[doc(hidden)]
    pub fn open_tuned(
        path: impl AsRef<Path>,
        options: SqliteOptions,
        tuning: Tuning,
    ) -> Result<Self, JournalError> {
        let path = path.as_ref().to_path_buf();
        let name: Arc<str> = path.display().to_string().into();
        let lock = lock::lock_file(&path, &name)?;
        let mut connection = schema::open_writer(&path, &name)?;
        let holder = lock::claim(&mut connection, &name)?;
        let unclaim = |connection: &rusqlite::Connection, error| {
            lock::unclaim(connection, &name, &holder);
            error
        };
        let reader = Reader::open(&path, name.clone()).map_err(|e| unclaim(&connection, e))?;
        let commits = Arc::new(AtomicU64::new(0));
        let checkpoints = Arc::new(AtomicU64::new(0));
        let (wal, checkpointer) = if tuning.background_checkpoint {
            let (wal, thread) =
                checkpoint::start(&mut connection, &path, &name, checkpoints.clone())
                    .map_err(|e| unclaim(&connection, e))?;
            (Some(wal), Some(thread))
        } else {
            (None, None)
        };
        let (commands, queue) = mpsc::channel();
        let policy = Policy {
            mode: options.mode,
            max_batch: options.max_batch.max(1),
            apart: tuning.maintenance_apart,
        };
        let writer = Writer::new(connection, name.clone(), policy, commits.clone(), wal);
        let releases = holder.clone();
        let writer = std::thread::Builder::new()
            .name("rewind-journal-writer".into())
            .spawn(move || writer.run(queue, &releases))
            .map_err(|e| storage(&name, "starting the writer thread", e))?;
        tracing::info!(path = %name, mode = ?options.mode, schema = schema::VERSION, "journal opened");
        Ok(SqliteJournal {
            path,
            mode: options.mode,
            commands: Some(commands),
            writer: Some(writer),
            checkpointer,
            reader,
            commits,
            checkpoints,
            lock: Some(lock),
            holder,
        })
    }

    /// Removes the holder row of the journal at `path` left by a process of
    /// **another host** that is gone for sure (a row of this host needs
    /// nothing: the next open takes it over). Returns the holder it named.
    ///
    /// Refused with [`JournalError::AlreadyOpen`] while a process of this
    /// host has the journal open. Breaking the lock of a process that is in
    /// fact alive lets two runtimes write one journal: check first.
    pub fn break_lock(path: impl AsRef<Path>) -> Result<Option<JournalHolder>, JournalError> {
        lock::break_lock(path.as_ref())
    }

    /// This process, as the journal's lock records it.
    pub fn holder(&self) -> &JournalHolder {
        &self.holder
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many transactions the writer has committed: with group commit,
    /// far fewer than the writes under concurrency.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// How many WAL checkpoints have run, on the background thread or
    /// between two of the writer's commits.
    pub fn checkpoints(&self) -> u64 {
        self.checkpoints.load(Ordering::Relaxed)
    }

    /// Commits everything queued, stops the writer and closes the file.
    /// Reports a failure of that last commit, or a `Buffered` write refused
    /// since the last flush.
    pub fn close(self) -> Result<(), JournalError> {
        let (done, outcome) = mpsc::sync_channel(1);
        if !self.send(Command::Close { done }) {
            return Err(JournalError::Closed);
        }
        outcome.recv().unwrap_or(Err(JournalError::Closed))
        // Drop joins the writer.
    }

    /// Queues `command`; false if the writer is gone.
    fn send(&self, command: Command) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|commands| commands.send(command).is_ok())
    }

    /// Queues a write: `Sync` waits for its commit, `Buffered` does not.
    fn write(&self, command: impl FnOnce(Ack) -> Command) -> Durable {
        match self.mode {
            SyncMode::Sync => {
                let (done, durable) = oneshot::channel();
                if self.send(command(Ack::Waiting(done))) {
                    Durable::pending(durable)
                } else {
                    Durable::ready(Err(JournalError::Closed))
                }
            }
            SyncMode::Buffered { .. } => {
                if self.send(command(Ack::Given)) {
                    Durable::ready(Ok(()))
                } else {
                    Durable::ready(Err(JournalError::Closed))
                }
            }
        }
    }

    /// Queues a deletion (or a mark) and blocks until it is committed.
    fn delete(
        &self,
        command: impl FnOnce(mpsc::SyncSender<Result<(), JournalError>>) -> Command,
    ) -> Result<(), JournalError> {
        let (done, outcome) = mpsc::sync_channel(1);
        if !self.send(command(done)) {
            return Err(JournalError::Closed);
        }
        outcome.recv().unwrap_or(Err(JournalError::Closed))
    }
}

impl Journal for SqliteJournal {
    fn append(&self, entries: Vec<Entry>) -> Durable {
        if entries.is_empty() {
            return Durable::ready(Ok(()));
        }
        self.write(|done| Command::Append { entries, done })
    }

    fn save_image(&self, image: Image) -> Durable {
        self.write(|done| Command::SaveImage { image, done })
    }

    fn flush(&self) -> Durable {
        let (done, durable) = oneshot::channel();
        if self.send(Command::Flush { done }) {
            Durable::pending(durable)
        } else {
            Durable::ready(Err(JournalError::Closed))
        }
    }

    fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        self.reader.tenants()
    }

    fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        self.reader.live_tenants()
    }

    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError> {
        self.reader.read(tenant, from.get(), to.get())
    }

    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        self.reader.highest_seq(tenant)
    }

    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError> {
        let (tenant, to) = (tenant.clone(), to.get());
        self.delete(|done| Command::DeleteEntries { tenant, to, done })
    }

    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        self.reader.load_image(tenant, query)
    }

    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError> {
        let (tenant, seq) = (tenant.clone(), seq.get());
        self.delete(|done| Command::DeleteImage { tenant, seq, done })
    }

    fn set_resume_mark(&self, tenant: &TenantId, marked: bool) -> Result<(), JournalError> {
        let tenant = tenant.clone();
        self.delete(|done| Command::Mark {
            tenant,
            marked,
            done,
        })
    }

    fn resume_marks(&self) -> Result<Vec<TenantId>, JournalError> {
        self.reader.marks()
    }
}

impl Drop for SqliteJournal {
    fn drop(&mut self) {
        // A closed queue is the writer's signal to commit what is left and
        // stop; joining makes "dropped" mean "file closed".
        drop(self.commands.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(path = %self.path.display(), "journal writer thread panicked");
            }
        }
        // The writer's end of the nudge channel is closed: it stops.
        if let Some(checkpointer) = self.checkpointer.take() {
            if checkpointer.join().is_err() {
                tracing::error!(path = %self.path.display(), "journal checkpointer thread panicked");
            }
        }
        // Last: the file is closed and the holder row gone.
        drop(self.lock.take());
    }
}

impl fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteJournal")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("commits", &self.commits())
            .field("checkpoints", &self.checkpoints())
            .finish_non_exhaustive()
    }
}

/// A storage failure naming the file and what was being done.
fn storage(path: &str, doing: &str, error: impl fmt::Display) -> JournalError {
    JournalError::Storage(format!("{path}: {doing}: {error}"))
}
