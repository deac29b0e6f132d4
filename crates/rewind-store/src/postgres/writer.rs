//! The writer thread and its group commit.
//!
//! One thread owns the write connection. It blocks for a command, takes
//! what else is queued, up to `max_batch` records, into one transaction,
//! commits and only then completes each caller. Before any write, the
//! transaction checks the lease of each shard a scoped write is for (once
//! per shard and fence, in one statement); the writes of a fence that no
//! longer holds fail with [`JournalError::Fenced`]. Each run of consecutive
//! appends is stored with one statement, whatever its size. Should a batch
//! not continue its sequences, or that statement fail, the transaction runs
//! again with every write in its own savepoint, so the one at fault fails
//! alone and the rest of the group still commits.
//!
//! A connection found lost is opened again before the next transaction
//! (with a bounded backoff). A transaction the connection was lost in
//! before `COMMIT` was sent stored nothing: it runs once more on the new
//! connection.
//!
//! # A `COMMIT` without answer
//!
//! Once `COMMIT` is sent, a lost connection (a server restarted, a network
//! cut) leaves the transaction committed or not, and only the server knows.
//! Each transaction learns its id as it begins (`txid_current()`, in the
//! same round trip as `BEGIN`); after a `COMMIT` without answer the writer
//! connects again and, for up to [`RESOLVE_WITHIN`], waits until
//! `txid_status(id)` is no longer `in progress` (nothing of it can commit
//! any more), then reads back a record the transaction wrote: there, the
//! writes succeeded; absent, nothing was stored and the transaction runs
//! again. The record decides, not the id, because a server that crashed can
//! give the same id to a later transaction. Only when the server cannot be
//! asked in that time does a write fail with
//! [`JournalError::OutcomeUnknown`]; every other failure means nothing of
//! it was stored.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use postgres::Config;
use rewind_core::TenantId;
use rewind_runtime::journal::{Entry, Image, JournalError};
use rewind_runtime::metrics as names;
use tokio::sync::oneshot;

use super::session::{storage, Session};
use super::{tables, Scope};

/// What a waiting caller learns.
pub(super) type Outcome = Result<(), JournalError>;

/// Waits before each attempt to open a lost connection again: about 4 s in
/// all (plus each attempt's connect timeout), then the transaction fails
/// and the next one tries again. No wait is longer than 300 ms, so writes
/// resume within that of the database accepting connections again.
const RECONNECT_DELAYS: [Duration; 16] = [
    Duration::ZERO,
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
    Duration::from_millis(300),
];

/// How long the writer tries to find out whether a `COMMIT` without answer
/// committed, before it answers that the outcome is unknown.
pub(super) const RESOLVE_WITHIN: Duration = Duration::from_secs(5);

/// Runs of one group's transaction after it was lost or aborted, at most.
const RERUNS: u32 = 2;

/// A request to the writer, in queue order.
pub(super) enum Command {
    /// One atomic batch of entries.
    Append {
        entries: Vec<Entry>,
        scope: Option<Arc<Scope>>,
        done: oneshot::Sender<Outcome>,
    },
    /// One image.
    SaveImage {
        image: Image,
        scope: Option<Arc<Scope>>,
        done: oneshot::Sender<Outcome>,
    },
    /// `delete_up_to`; the caller blocks on `done`.
    DeleteEntries {
        tenant: TenantId,
        to: u64,
        scope: Option<Arc<Scope>>,
        done: mpsc::SyncSender<Outcome>,
    },
    /// `delete_image`; the caller blocks on `done`.
    DeleteImage {
        tenant: TenantId,
        seq: u64,
        scope: Option<Arc<Scope>>,
        done: mpsc::SyncSender<Outcome>,
    },
    /// Completes once everything queued before it is committed.
    /// Then passed on to the writers of `then`, in turn: the flush of a
    /// store with several writers completes once each has committed what
    /// was queued to it before.
    Flush {
        done: oneshot::Sender<Outcome>,
        then: Vec<mpsc::Sender<Command>>,
    },
    /// Like `Flush`, then the writer stops.
    Close { done: mpsc::SyncSender<Outcome> },
}

impl Command {
    /// Records it adds to a commit (what `max_batch` counts).
    fn records(&self) -> usize {
        match self {
            Command::Append { entries, .. } => entries.len(),
            Command::SaveImage { .. } => 1,
            _ => 0,
        }
    }

    /// The shard and fence of a scoped write; `None` for an unscoped write
    /// or no write at all.
    fn scope(&self) -> Option<&Arc<Scope>> {
        match self {
            Command::Append { scope, .. }
            | Command::SaveImage { scope, .. }
            | Command::DeleteEntries { scope, .. }
            | Command::DeleteImage { scope, .. } => scope.as_ref(),
            Command::Flush { .. } | Command::Close { .. } => None,
        }
    }

    /// It stores or deletes something (needs a transaction).
    fn writes(&self) -> bool {
        !matches!(self, Command::Flush { .. } | Command::Close { .. })
    }
}

/// Why a transaction failed.
enum Failure {
    /// The connection was lost before `COMMIT` was sent, or the server
    /// rolled the transaction back (a deadlock, a serialization failure):
    /// nothing is stored, and the transaction may run again.
    Lost(JournalError),
    /// Anything else (including a `COMMIT` without answer).
    Failed(JournalError),
    /// The appends run together failed: nothing is stored, and the
    /// transaction runs again with each write in its own savepoint, so the
    /// one at fault fails alone.
    Apart(JournalError),
    /// `COMMIT` was sent and its answer lost: transaction `id` may have
    /// committed.
    Unanswered { id: i64, error: JournalError },
}

impl Failure {
    fn into_error(self) -> JournalError {
        match self {
            Failure::Lost(error)
            | Failure::Failed(error)
            | Failure::Apart(error)
            | Failure::Unanswered { error, .. } => error,
        }
    }
}

/// How a transaction runs its appends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Each run of consecutive appends with one statement
    /// ([`tables::insert_batches_at_once`]); a batch out of sequence, or any
    /// other failure, sends the transaction down `Apart`.
    Together,
    /// Every write in its own savepoint.
    Apart,
}

/// The writer thread's state.
pub(super) struct Writer {
    /// `None` after a connection was lost and could not be opened again.
    session: Option<Session>,
    config: Arc<Config>,
    /// The database, for messages.
    url: Arc<str>,
    shards: u32,
    /// Records per commit before the writer stops gathering (at least 1).
    max_batch: usize,
    /// Shared with the store for `PgStore::commits`.
    commits: Arc<AtomicU64>,
}

/// What became of a transaction whose `COMMIT` had no answer.
enum Resolved {
    Committed,
    Aborted,
    Unknown(String),
}

/// A record a transaction wrote, by which it is found out whether it
/// committed.
enum Witness<'a> {
    /// An append's last entry.
    Entry(&'a Entry),
    /// An image.
    Image(&'a Image),
    /// Nothing that stays: deletions and marks only, which may run again.
    None,
}

impl<'a> Witness<'a> {
    /// The first append the transaction stored (its last entry), else its
    /// first image.
    fn of(group: &'a [Command], outcomes: &[Outcome]) -> Witness<'a> {
        let stored = || group.iter().zip(outcomes).filter(|(_, o)| o.is_ok());
        let entry = stored().find_map(|(command, _)| match command {
            Command::Append { entries, .. } => entries.last(),
            _ => None,
        });
        if let Some(entry) = entry {
            return Witness::Entry(entry);
        }
        stored()
            .find_map(|(command, _)| match command {
                Command::SaveImage { image, .. } => Some(Witness::Image(image)),
                _ => None,
            })
            .unwrap_or(Witness::None)
    }

    /// Whether the record is there, as written.
    fn look(&self, session: &mut Session) -> Result<Resolved, postgres::Error> {
        let (tenant, seq, payload, sql) = match self {
            Witness::None => return Ok(Resolved::Aborted),
            Witness::Entry(entry) => (
                &entry.tenant,
                entry.seq.get(),
                &entry.payload,
                "SELECT payload FROM rewind_entries WHERE tenant = $1 AND seq = $2",
            ),
            Witness::Image(image) => (
                &image.tenant,
                image.seq.get(),
                &image.payload,
                "SELECT payload FROM rewind_images WHERE tenant = $1 AND seq = $2",
            ),
        };
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let rows = session.query(sql, &[&tenant.as_str(), &seq])?;
        if let Some(row) = rows.first() {
            let stored: &[u8] = row.get(0);
            return Ok(if stored == payload.as_slice() {
                Resolved::Committed
            } else {
                Resolved::Unknown(format!(
                    "tenant '{tenant}' holds another record at seq {seq}"
                ))
            });
        }
        if let Witness::Entry(_) = self {
            // Absent: it never committed, unless its entries were deleted
            // since (an image covered them), which raised the sequence.
            let highest = session.query(
                "SELECT highest_seq FROM rewind_tenants WHERE tenant = $1",
                &[&tenant.as_str()],
            )?;
            let highest: i64 = highest.first().map_or(0, |row| row.get(0));
            if highest >= seq {
                return Ok(Resolved::Unknown(format!(
                    "tenant '{tenant}' is at seq {highest}, its entry {seq} is gone"
                )));
            }
        }
        Ok(Resolved::Aborted)
    }
}

/// Whether the writer keeps running after a commit.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

impl Writer {
    /// A writer on `session`, which it opens again from `config` if lost.
    pub(super) fn new(
        session: Session,
        config: Arc<Config>,
        url: Arc<str>,
        shards: u32,
        max_batch: usize,
        commits: Arc<AtomicU64>,
    ) -> Self {
        Writer {
            session: Some(session),
            config,
            url,
            shards,
            max_batch: max_batch.max(1),
            commits,
        }
    }

    /// Runs until `Close`, or until the queue is closed and drained. The
    /// connection closes when this returns.
    pub(super) fn run(mut self, queue: mpsc::Receiver<Command>) {
        while let Ok(first) = queue.recv() {
            let group = self.gather(first, &queue);
            if self.commit(group) == Next::Stop {
                break;
            }
        }
        tracing::debug!(url = %self.url, "PostgreSQL journal writer stopped");
    }

    /// `first` and what is queued behind it, up to `max_batch` records and
    /// never past a `Close`.
    fn gather(&self, first: Command, queue: &mpsc::Receiver<Command>) -> Vec<Command> {
        let mut records = first.records();
        let mut group = vec![first];
        while records < self.max_batch && !matches!(group.last(), Some(Command::Close { .. })) {
            let Ok(command) = queue.try_recv() else { break };
            records += command.records();
            group.push(command);
        }
        group
    }

    /// Runs `group` in one transaction, commits, then completes its callers.
    fn commit(&mut self, group: Vec<Command>) -> Next {
        let mut outcomes: Vec<Outcome> = vec![Ok(()); group.len()];
        if group.iter().any(Command::writes) {
            let records: usize = group.iter().map(Command::records).sum();
            let started = Instant::now();
            let mut path = Path::Together;
            let mut reruns = 0;
            let result = loop {
                match self.attempt(&group, &mut outcomes, path) {
                    Err(Failure::Lost(error)) if reruns < RERUNS => {
                        tracing::warn!(url = %self.url, %error, "the PostgreSQL transaction was lost (connection gone, or rolled back by the server) before its commit; running it again");
                        reruns += 1;
                    }
                    Err(Failure::Apart(error)) if path == Path::Together => {
                        tracing::debug!(url = %self.url, %error, "the appends of a commit failed together; running them one by one");
                        path = Path::Apart;
                    }
                    Err(Failure::Unanswered { id, error }) => {
                        match self.resolve(id, &group, &outcomes) {
                            Resolved::Committed => {
                                tracing::warn!(url = %self.url, %error, "a COMMIT without answer had committed");
                                break Ok(());
                            }
                            Resolved::Aborted if reruns < RERUNS => {
                                tracing::warn!(url = %self.url, %error, "a COMMIT without answer had not committed; running it again");
                                reruns += 1;
                            }
                            Resolved::Aborted => break Err(Failure::Failed(error)),
                            Resolved::Unknown(why) => {
                                break Err(Failure::Failed(JournalError::OutcomeUnknown(format!(
                                "PostgreSQL at {}: the answer to COMMIT was lost ({error}) and \
                                 whether it committed could not be found out within {:?} ({why})",
                                self.url, RESOLVE_WITHIN
                            ))))
                            }
                        }
                    }
                    other => break other,
                }
                outcomes.fill(Ok(()));
            };
            match result {
                Ok(()) => self.committed(records, group.len(), started.elapsed()),
                Err(failure) => {
                    let error = failure.into_error();
                    tracing::error!(url = %self.url, %error, commands = group.len(), "PostgreSQL journal commit failed");
                    // Nothing of the group is known stored: no one may hear Ok.
                    for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                        *outcome = Err(error.clone());
                    }
                }
            }
        }
        reply(group, outcomes)
    }

    /// One try at the group's transaction, on a usable connection.
    fn attempt(
        &mut self,
        group: &[Command],
        outcomes: &mut [Outcome],
        path: Path,
    ) -> Result<(), Failure> {
        self.connect()?;
        let Some(session) = self.session.as_mut() else {
            return Err(Failure::Failed(JournalError::Closed));
        };
        let result = transact(session, &self.url, self.shards, group, outcomes, path);
        if result.is_err() && session.usable() {
            // Ends a transaction left open (a warning, if none is).
            drop(session.batch("ROLLBACK"));
        }
        if !session.usable() {
            self.session = None;
        }
        result
    }

    /// Finds out, on a new connection if need be, whether transaction `id`
    /// of `group` committed; tries for up to [`RESOLVE_WITHIN`].
    ///
    /// First it waits until the server no longer runs the transaction
    /// (`txid_status` is not `in progress`), so nothing of it can still
    /// commit. Then the data decides, not the id: after a crash the server
    /// may hand the same id to a later transaction, so `txid_status` alone
    /// can say "committed" of another one. The witness is the last entry
    /// of the group's first stored append (or its first image): there, with
    /// the same bytes, it committed; absent, and the tenant's sequence short
    /// of it, it did not.
    fn resolve(&mut self, id: i64, group: &[Command], outcomes: &[Outcome]) -> Resolved {
        let deadline = Instant::now() + RESOLVE_WITHIN;
        let witness = Witness::of(group, outcomes);
        let mut last = String::from("no answer");
        let mut finished = false;
        loop {
            if !self.session.as_ref().is_some_and(Session::usable) {
                self.session = Session::connect(&self.config, &self.url).ok();
            }
            if let Some(session) = self.session.as_mut() {
                let asked = if finished {
                    witness.look(session).map(Some)
                } else {
                    session.status_of(id).map(|status| {
                        finished = status.as_deref() != Some("in progress");
                        None
                    })
                };
                match asked {
                    Ok(Some(resolved)) => return resolved,
                    Ok(None) if finished => continue,
                    Ok(None) => last = format!("transaction {id} is still in progress"),
                    Err(error) => {
                        last = super::session::describe(&error);
                        if !session.usable() {
                            self.session = None;
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Resolved::Unknown(last);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens the connection again if it was lost, with a bounded backoff.
    fn connect(&mut self) -> Result<(), Failure> {
        if self.session.as_ref().is_some_and(Session::usable) {
            return Ok(());
        }
        self.session = None;
        let mut failure = None;
        for delay in RECONNECT_DELAYS {
            std::thread::sleep(delay);
            match Session::connect(&self.config, &self.url) {
                Ok(session) => {
                    tracing::info!(url = %self.url, "PostgreSQL journal writer reconnected");
                    self.session = Some(session);
                    return Ok(());
                }
                Err(error) => {
                    tracing::warn!(url = %self.url, %error, "PostgreSQL journal writer cannot reconnect yet");
                    failure = Some(error);
                }
            }
        }
        Err(Failure::Failed(failure.unwrap_or(JournalError::Closed)))
    }

    /// Counts and measures a committed transaction.
    fn committed(&self, records: usize, commands: usize, elapsed: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(names::JOURNAL_COMMIT_DURATION_SECONDS).record(elapsed.as_secs_f64());
        if records > 0 {
            metrics::histogram!(names::JOURNAL_BATCH_RECORDS).record(records as f64);
        }
        tracing::trace!(records, commands, ?elapsed, "PostgreSQL journal commit");
    }
}

/// The transaction of `group`: the fences checked, the writes (each run
/// of appends together on [`Path::Together`], else each write in its
/// savepoint; outcomes recorded), then `COMMIT`. An error here means
/// nothing was stored.
fn transact(
    session: &mut Session,
    url: &str,
    shards: u32,
    group: &[Command],
    outcomes: &mut [Outcome],
    path: Path,
) -> Result<(), Failure> {
    let failed = |session: &Session, doing: &str, e: postgres::Error| {
        let error = storage(url, doing, &e);
        // A deadlock or serialization failure rolled the transaction back
        // whole: nothing is stored, and it may run again (as after a lost
        // connection).
        let transient = e.code().is_some_and(|code| code.code().starts_with("40"));
        if session.usable() && !transient {
            Failure::Failed(error)
        } else {
            Failure::Lost(error)
        }
    };
    let id = session
        .begin()
        .map_err(|e| failed(session, "beginning a commit", e))?
        .ok_or_else(|| {
            Failure::Failed(JournalError::Storage(format!(
                "PostgreSQL at {url}: beginning a commit: no transaction id"
            )))
        })?;
    // The fences first, once per shard and fence, before any write, in
    // one statement.
    let mut scopes: Vec<&Scope> = group
        .iter()
        .filter_map(Command::scope)
        .map(|s| &**s)
        .collect();
    scopes.sort_by(|a, b| {
        (a.shard, &a.fence.node, a.fence.epoch).cmp(&(b.shard, &b.fence.node, b.fence.epoch))
    });
    scopes.dedup();
    let mut lost_leases: Vec<&Scope> = Vec::new();
    if !scopes.is_empty() {
        let fences: Vec<(u32, &super::Fence)> =
            scopes.iter().map(|s| (s.shard, &s.fence)).collect();
        let holds = tables::fences_hold(session, &fences)
            .map_err(|e| failed(session, "checking the shards' leases", e))?;
        for (scope, holds) in scopes.iter().zip(holds) {
            if !holds {
                lost_leases.push(scope);
            }
        }
    }
    for (command, outcome) in group.iter().zip(outcomes.iter_mut()) {
        if let Some(scope) = command.scope() {
            if lost_leases.contains(&&**scope) {
                *outcome = Err(JournalError::Fenced {
                    shard: scope.shard,
                    epoch: scope.fence.epoch,
                });
            }
        }
    }
    let mut at = 0;
    while at < group.len() {
        // A run of appends still to store, together.
        let run = group[at..]
            .iter()
            .zip(&outcomes[at..])
            .take_while(|(command, outcome)| {
                matches!(command, Command::Append { .. }) && outcome.is_ok()
            })
            .count();
        if path == Path::Together && run > 0 {
            let batches: Vec<&[Entry]> = group[at..at + run]
                .iter()
                .filter_map(|command| match command {
                    Command::Append { entries, .. } => Some(entries.as_slice()),
                    _ => None,
                })
                .collect();
            match tables::insert_batches_at_once(session, url, shards, &batches) {
                tables::AtOnce::Stored => {}
                tables::AtOnce::Refused(error) if !session.usable() => {
                    return Err(Failure::Lost(error))
                }
                tables::AtOnce::Refused(error) => return Err(Failure::Apart(error)),
            }
            at += run;
            continue;
        }
        let (command, outcome) = (&group[at], &mut outcomes[at]);
        at += 1;
        if !command.writes() || outcome.is_err() {
            continue;
        }
        session
            .batch("SAVEPOINT rewind_write")
            .map_err(|e| failed(session, "opening a savepoint", e))?;
        let applied = match command {
            Command::Append { entries, .. } => {
                tables::insert_entries(session, url, shards, entries)
            }
            Command::SaveImage { image, .. } => tables::insert_image(session, url, shards, image),
            Command::DeleteEntries { tenant, to, .. } => {
                tables::delete_entries(session, url, tenant, *to)
            }
            Command::DeleteImage { tenant, seq, .. } => {
                tables::delete_image(session, url, tenant, *seq)
            }
            Command::Flush { .. } | Command::Close { .. } => Ok(()),
        };
        match applied {
            Ok(()) => session
                .batch("RELEASE SAVEPOINT rewind_write")
                .map_err(|e| failed(session, "releasing a savepoint", e))?,
            Err(error) => {
                if !session.usable() {
                    return Err(Failure::Lost(error));
                }
                session
                    .batch("ROLLBACK TO SAVEPOINT rewind_write; RELEASE SAVEPOINT rewind_write")
                    .map_err(|e| failed(session, "rolling back a savepoint", e))?;
                *outcome = Err(error);
            }
        }
    }
    // Once `COMMIT` is sent, a lost connection leaves the outcome to find
    // out (`Writer::resolve`). An error the server answered (a constraint
    // checked at commit) means it rolled back.
    session.batch("COMMIT").map_err(|e| {
        let error = storage(url, "committing", &e);
        if e.as_db_error().is_some() && session.usable() {
            Failure::Failed(error)
        } else {
            Failure::Unanswered { id, error }
        }
    })
}

/// Completes each caller of a committed (or failed) group.
fn reply(group: Vec<Command>, outcomes: Vec<Outcome>) -> Next {
    let mut next = Next::Continue;
    for (command, outcome) in group.into_iter().zip(outcomes) {
        // A caller that stopped waiting is no error.
        match command {
            Command::Append { done, .. } | Command::SaveImage { done, .. } => {
                drop(done.send(outcome))
            }
            Command::Flush { done, mut then } => {
                if outcome.is_err() || then.is_empty() {
                    drop(done.send(outcome));
                } else {
                    let next_writer = then.remove(0);
                    if let Err(mpsc::SendError(Command::Flush { done, .. })) =
                        next_writer.send(Command::Flush { done, then })
                    {
                        drop(done.send(Err(JournalError::Closed)));
                    }
                }
            }
            Command::DeleteEntries { done, .. } | Command::DeleteImage { done, .. } => {
                drop(done.send(outcome))
            }
            Command::Close { done } => {
                drop(done.send(outcome));
                next = Next::Stop;
            }
        }
    }
    next
}
