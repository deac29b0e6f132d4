//! The writer thread and its group commit.
//!
//! One thread owns the write connection. It blocks for a command, gathers
//! what else is queued (in `Buffered` mode, what arrives within the interval)
//! up to `max_batch` records, runs it in one transaction, commits (one
//! fsync) and only then completes each caller. Every `append` batch runs in
//! its own savepoint, so a refused batch stores nothing and the rest of the
//! group still commits.
//!
//! # Maintenance apart
//!
//! Images (up to megabytes) and deletions (a tenant's covered entries are
//! spread over as many pages as entries) make a commit long, and every
//! acknowledgement of its group, and of the writes queued behind it, waits
//! for it. So appends go first: each round, the writer commits the gathered
//! appends in one transaction and acknowledges them, then runs one bounded
//! piece of the *backlog* (images, deletions, flushes, in queue order) in a
//! transaction of its own: the commands up to the next image, or
//! [`DELETE_CHUNK`] entries of one `delete_up_to`. An append waits in the
//! backlog instead when an image or append of one of its tenants is there
//! (both move the tenant's sequence), so each tenant's order is kept; a
//! flush completes when everything queued before it is committed, as
//! before. While appends keep coming, the backlog gets every other
//! transaction, so it always progresses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rewind_core::TenantId;
use rewind_runtime::journal::{Entry, Image, JournalError, JournalHolder};
use rewind_runtime::metrics as names;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::checkpoint::WalWatch;
use super::{storage, tables, SyncMode};

/// Most entries one transaction deletes for a `delete_up_to` when
/// maintenance runs apart (about as many pages, as a tenant's entries are
/// interleaved with every other tenant's).
pub(super) const DELETE_CHUNK: u64 = 256;

/// What a waiting caller learns.
type Outcome = Result<(), JournalError>;

/// A request to the writer, in queue order.
pub(super) enum Command {
    /// One atomic batch of entries.
    Append { entries: Vec<Entry>, done: Ack },
    /// One image.
    SaveImage { image: Image, done: Ack },
    /// `delete_up_to`; the caller blocks on `done`.
    DeleteEntries {
        tenant: TenantId,
        to: u64,
        done: mpsc::SyncSender<Outcome>,
    },
    /// `delete_image`; the caller blocks on `done`.
    DeleteImage {
        tenant: TenantId,
        seq: u64,
        done: mpsc::SyncSender<Outcome>,
    },
    /// `set_resume_mark`; the caller blocks on `done`.
    Mark {
        tenant: TenantId,
        marked: bool,
        done: mpsc::SyncSender<Outcome>,
    },
    /// Completes once everything queued before it is committed.
    Flush { done: oneshot::Sender<Outcome> },
    /// Like `Flush`, then the writer stops.
    Close { done: mpsc::SyncSender<Outcome> },
}

/// Who hears about a write's commit.
pub(super) enum Ack {
    /// `Sync` mode: the caller awaits this.
    Waiting(oneshot::Sender<Outcome>),
    /// `Buffered` mode: the caller was told Ok when it queued the write; a
    /// failure is logged and reported by the next flush.
    Given,
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

    fn is_append(&self) -> bool {
        matches!(self, Command::Append { .. })
    }

    /// A caller is blocked on it: commit without waiting out the interval.
    fn is_urgent(&self) -> bool {
        !matches!(self, Command::Append { .. } | Command::SaveImage { .. })
    }

    /// It stores or deletes something (needs a transaction).
    fn writes(&self) -> bool {
        !matches!(self, Command::Flush { .. } | Command::Close { .. })
    }

    /// It moves `tenant`'s sequence (what a later append of it checks).
    fn sequences(&self, tenant: &TenantId) -> bool {
        match self {
            Command::Append { entries, .. } => entries.iter().any(|e| &e.tenant == tenant),
            Command::SaveImage { image, .. } => &image.tenant == tenant,
            _ => false,
        }
    }
}

/// How the writer groups its work.
#[derive(Clone, Copy, Debug)]
pub(super) struct Policy {
    /// When writes are acknowledged.
    pub(super) mode: SyncMode,
    /// Records per commit before the writer stops gathering (at least 1).
    pub(super) max_batch: usize,
    /// Appends first, images and deletions in their own bounded
    /// transactions (see the module docs); off, everything gathered shares
    /// one transaction.
    pub(super) apart: bool,
}

/// The writer thread's state.
pub(super) struct Writer {
    connection: Connection,
    /// The file, for error messages.
    name: Arc<str>,
    policy: Policy,
    /// Shared with the journal for `SqliteJournal::commits`.
    commits: Arc<AtomicU64>,
    /// The first `Buffered` write refused since the last flush.
    unreported: Option<JournalError>,
    /// Background checkpoints; `None`: SQLite checkpoints inside commits.
    wal: Option<WalWatch>,
    /// With `policy.apart`: queued commands that wait for the appends, in
    /// queue order.
    backlog: VecDeque<Command>,
    /// Tenants of the appends of the last two commits that had any, newest
    /// first: how many writers are taking turns (see [`Writer::linger`]).
    recent_tenants: [Vec<TenantId>; 2],
    /// How long the last commit with appends took.
    last_commit: Duration,
}

/// The longest a commit waits for more appends ([`Writer::linger`]).
const MAX_LINGER: Duration = Duration::from_micros(500);

impl Writer {
    /// A writer on `connection`; `wal` if checkpoints run in the background.
    pub(super) fn new(
        connection: Connection,
        name: Arc<str>,
        policy: Policy,
        commits: Arc<AtomicU64>,
        wal: Option<WalWatch>,
    ) -> Self {
        Writer {
            connection,
            name,
            policy,
            commits,
            unreported: None,
            wal,
            backlog: VecDeque::new(),
            recent_tenants: [Vec::new(), Vec::new()],
            last_commit: Duration::ZERO,
        }
    }

    /// In `Sync` mode, how many appends to wait for before committing, and
    /// until when. Writers each waiting for their own acknowledgement
    /// otherwise split into two groups that take turns: those acknowledged
    /// by one commit come back while the next, holding the others, is
    /// already being fsynced. So when the last commit held appends of more
    /// than one tenant, the next waits (at most half the last commit's
    /// duration, and never more than 500 µs) until it holds as many appends
    /// as there were distinct tenants in the last two commits. A lone writer
    /// never waits.
    fn linger(&self) -> Option<(usize, Instant)> {
        let [last, before] = &self.recent_tenants;
        if self.policy.mode != SyncMode::Sync || last.len() <= 1 {
            return None;
        }
        let writers = last
            .iter()
            .chain(before)
            .collect::<std::collections::HashSet<_>>()
            .len();
        let target = writers.min(self.policy.max_batch);
        Some((
            target,
            Instant::now() + (self.last_commit / 2).min(MAX_LINGER),
        ))
    }

    /// Runs until `Close`, or until the journal is dropped and the queue and
    /// the backlog are drained. The connection closes when this returns (and
    /// the background checkpointer stops).
    /// Its last act removes `holder`'s lock row.
    pub(super) fn run(mut self, queue: mpsc::Receiver<Command>, holder: &JournalHolder) {
        while let Some(group) = self.next_group(&queue) {
            let next = if self.policy.apart {
                self.step(group)
            } else {
                self.commit(group)
            };
            if next == Next::Stop {
                break;
            }
        }
        super::lock::unclaim(&self.connection, &self.name, holder);
        tracing::debug!(path = %self.name, "journal writer stopped");
    }

    /// The commands of the next round: with an empty backlog, blocks for
    /// one and gathers; otherwise takes what is queued now, without waiting
    /// (nothing once a `Close` waits in the backlog). `None` once the queue
    /// is closed and everything is done.
    fn next_group(&self, queue: &mpsc::Receiver<Command>) -> Option<Vec<Command>> {
        if self.backlog.is_empty() {
            let first = queue.recv().ok()?;
            return Some(self.gather(first, queue, true));
        }
        let closing = matches!(self.backlog.back(), Some(Command::Close { .. }));
        match queue.try_recv() {
            Ok(first) if !closing => Some(self.gather(first, queue, false)),
            Ok(late) => {
                // Nothing is queued after `Close` (it takes the journal);
                // a late command hears `Closed`, as after the writer stops.
                drop(late);
                Some(Vec::new())
            }
            Err(_) => Some(Vec::new()),
        }
    }

    /// `first` and what follows it into the same commit: everything already
    /// queued (`Sync`, or `wait` false) or arriving within the interval
    /// (`Buffered`), up to `max_batch` records and never past a `Close`.
    fn gather(&self, first: Command, queue: &mpsc::Receiver<Command>, wait: bool) -> Vec<Command> {
        let deadline = match self.policy.mode {
            SyncMode::Buffered { interval } if wait => Some(Instant::now() + interval),
            _ => None,
        };
        let linger = if wait { self.linger() } else { None };
        let mut records = first.records();
        let mut appends = usize::from(first.is_append());
        let mut urgent = first.is_urgent();
        let mut group = vec![first];
        while records < self.policy.max_batch
            && !matches!(group.last(), Some(Command::Close { .. }))
        {
            let wait_until = match (deadline, linger) {
                (Some(deadline), _) => Some(deadline),
                (None, Some((target, until))) if appends < target => Some(until),
                _ => None,
            };
            let next = match wait_until {
                Some(until) if !urgent => queue
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                    .ok(),
                _ => queue.try_recv().ok(),
            };
            let Some(command) = next else { break };
            records += command.records();
            appends += usize::from(command.is_append());
            urgent |= command.is_urgent();
            group.push(command);
        }
        group
    }

    /// Maintenance apart: commits and acknowledges the appends of `group`
    /// that may go first, queues the rest in the backlog, then runs one
    /// piece of the backlog.
    fn step(&mut self, group: Vec<Command>) -> Next {
        let first = self.hoist(group);
        if !first.is_empty() && self.commit(first) == Next::Stop {
            return Next::Stop;
        }
        self.maintain()
    }

    /// Splits `group`: returns the appends no earlier backlog command of
    /// their tenants must precede; the others join the backlog, in order.
    fn hoist(&mut self, group: Vec<Command>) -> Vec<Command> {
        let mut first = Vec::new();
        for command in group {
            if self.may_go_first(&command) {
                first.push(command);
            } else {
                self.backlog.push_back(command);
            }
        }
        first
    }

    /// An append may commit before the backlog unless an image or append
    /// of one of its tenants waits there.
    fn may_go_first(&self, command: &Command) -> bool {
        let Command::Append { entries, .. } = command else {
            return false;
        };
        !entries.iter().any(|entry| {
            self.backlog
                .iter()
                .any(|pending| pending.sequences(&entry.tenant))
        })
    }

    /// Runs the front of the backlog: one chunk of a deletion of entries,
    /// or the commands up to and including the next image.
    fn maintain(&mut self) -> Next {
        match self.backlog.front() {
            None => Next::Continue,
            Some(Command::DeleteEntries { .. }) => {
                self.delete_chunk();
                Next::Continue
            }
            Some(_) => {
                let unit = self.take_unit();
                self.commit(unit)
            }
        }
    }

    /// Pops the backlog's next transaction: commands up to and including
    /// one image, up to `max_batch` records, stopping before a deletion of
    /// entries and after a `Close`.
    fn take_unit(&mut self) -> Vec<Command> {
        let mut unit: Vec<Command> = Vec::new();
        let mut records = 0;
        while let Some(front) = self.backlog.front() {
            let full = !unit.is_empty() && records + front.records() > self.policy.max_batch;
            if full || matches!(front, Command::DeleteEntries { .. }) {
                break;
            }
            records += front.records();
            let last = matches!(front, Command::SaveImage { .. } | Command::Close { .. });
            unit.extend(self.backlog.pop_front());
            if last {
                break;
            }
        }
        unit
    }

    /// Deletes one chunk of the `delete_up_to` at the front of the backlog
    /// in its own transaction; completes its caller once none is left (or
    /// on failure: the chunks committed before stay deleted).
    fn delete_chunk(&mut self) {
        let Some(Command::DeleteEntries { tenant, to, .. }) = self.backlog.front() else {
            return;
        };
        let (tenant, to) = (tenant.clone(), *to);
        let started = Instant::now();
        let outcome = delete_in_transaction(&mut self.connection, &self.name, &tenant, to);
        match &outcome {
            Ok(finished) => {
                self.committed(0, 1, started.elapsed());
                if !finished {
                    return self.after_commit();
                }
            }
            Err(error) => {
                tracing::error!(path = %self.name, %error, "journal commit failed");
            }
        }
        if let Some(Command::DeleteEntries { done, .. }) = self.backlog.pop_front() {
            drop(done.send(outcome.map(drop)));
        }
        self.after_commit();
    }

    /// Counts and measures a committed transaction.
    fn committed(&self, records: usize, commands: usize, elapsed: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(names::JOURNAL_COMMIT_DURATION_SECONDS).record(elapsed.as_secs_f64());
        if records > 0 {
            metrics::histogram!(names::JOURNAL_BATCH_RECORDS).record(records as f64);
        }
        tracing::trace!(records, commands, ?elapsed, "journal commit");
    }

    /// After a transaction and its replies: the WAL's checkpoint duties.
    fn after_commit(&mut self) {
        if let Some(wal) = &mut self.wal {
            wal.after_commit(&self.connection, &self.name);
        }
    }

    /// Runs `group` in one transaction, commits, then completes its callers.
    fn commit(&mut self, group: Vec<Command>) -> Next {
        let mut outcomes: Vec<Outcome> = vec![Ok(()); group.len()];
        let writes = group.iter().any(Command::writes);
        if writes {
            let records: usize = group.iter().map(Command::records).sum();
            let started = Instant::now();
            match self.transact(&group, &mut outcomes) {
                Ok(()) => {
                    let mut tenants: Vec<TenantId> = group
                        .iter()
                        .filter_map(|c| match c {
                            Command::Append { entries, .. } => entries.first(),
                            _ => None,
                        })
                        .map(|entry| entry.tenant.clone())
                        .collect();
                    if !tenants.is_empty() {
                        tenants.sort_unstable();
                        tenants.dedup();
                        let last = std::mem::replace(&mut self.recent_tenants[0], tenants);
                        self.recent_tenants[1] = last;
                        self.last_commit = started.elapsed();
                    }
                    self.committed(records, group.len(), started.elapsed())
                }
                Err(error) => {
                    tracing::error!(path = %self.name, %error, commands = group.len(), "journal commit failed");
                    // Nothing of the group is stored: no one may hear Ok.
                    for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
                        *outcome = Err(error.clone());
                    }
                }
            }
        }
        let next = self.reply(group, outcomes);
        if writes {
            self.after_commit();
        }
        next
    }

    /// Applies each command of `group` in its savepoint, recording its
    /// outcome, then commits. An error here means nothing was stored.
    fn transact(&mut self, group: &[Command], outcomes: &mut [Outcome]) -> Outcome {
        let name = &*self.name;
        let mut transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| storage(name, "beginning a commit", e))?;
        for (command, outcome) in group.iter().zip(outcomes.iter_mut()) {
            if transaction.is_autocommit() {
                // SQLite rolls the whole transaction back on some errors
                // (I/O, disk full); later savepoints would run outside it.
                return Err(storage(
                    name,
                    "committing",
                    "SQLite rolled the transaction back after an earlier error",
                ));
            }
            *outcome = match command {
                Command::Append { entries, .. } => in_savepoint(&mut transaction, name, |c| {
                    tables::insert_entries(c, name, entries)
                }),
                Command::SaveImage { image, .. } => in_savepoint(&mut transaction, name, |c| {
                    tables::insert_image(c, name, image)
                }),
                Command::DeleteEntries { tenant, to, .. } => {
                    in_savepoint(&mut transaction, name, |c| {
                        tables::delete_entries(c, name, tenant, *to)
                    })
                }
                Command::DeleteImage { tenant, seq, .. } => {
                    in_savepoint(&mut transaction, name, |c| {
                        tables::delete_image(c, name, tenant, *seq)
                    })
                }
                Command::Mark { tenant, marked, .. } => in_savepoint(&mut transaction, name, |c| {
                    tables::set_mark(c, name, tenant, *marked)
                }),
                Command::Flush { .. } | Command::Close { .. } => Ok(()),
            };
        }
        // An error from `COMMIT` itself (an I/O error or a failed sync as
        // the WAL is written) leaves the transaction possibly stored: the
        // caller cannot be told it was not. The runtime reads the tenant
        // back to find out.
        transaction
            .commit()
            .map_err(|e| JournalError::OutcomeUnknown(format!("journal {name}: committing: {e}")))
    }

    /// Completes each caller of a committed (or failed) group.
    fn reply(&mut self, group: Vec<Command>, outcomes: Vec<Outcome>) -> Next {
        let mut next = Next::Continue;
        for (command, outcome) in group.into_iter().zip(outcomes) {
            match command {
                Command::Append { done, .. } | Command::SaveImage { done, .. } => match done {
                    // A caller that stopped waiting is no error.
                    Ack::Waiting(done) => drop(done.send(outcome)),
                    Ack::Given => {
                        if let Err(error) = outcome {
                            tracing::error!(path = %self.name, %error, "an acknowledged buffered write failed; the next flush reports it");
                            self.unreported.get_or_insert(error);
                        }
                    }
                },
                Command::DeleteEntries { done, .. }
                | Command::DeleteImage { done, .. }
                | Command::Mark { done, .. } => drop(done.send(outcome)),
                Command::Flush { done } => drop(done.send(self.settle(outcome))),
                Command::Close { done } => {
                    drop(done.send(self.settle(outcome)));
                    next = Next::Stop;
                }
            }
        }
        next
    }

    /// A flush's outcome: its group's, then any refused buffered write.
    fn settle(&mut self, outcome: Outcome) -> Outcome {
        let unreported = self.unreported.take();
        outcome.and(unreported.map_or(Ok(()), Err))
    }
}

/// Whether the writer keeps running after a commit.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

/// Deletes one chunk (at most [`DELETE_CHUNK`] entries) of `tenant`'s
/// entries with `seq <= to` in one transaction. True once none is left.
fn delete_in_transaction(
    connection: &mut Connection,
    name: &str,
    tenant: &TenantId,
    to: u64,
) -> Result<bool, JournalError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| storage(name, "beginning a commit", e))?;
    let finished = tables::delete_entries_chunk(&transaction, name, tenant, to, DELETE_CHUNK)?;
    transaction
        .commit()
        .map_err(|e| storage(name, "committing", e))?;
    Ok(finished)
}

/// Runs `apply` in a savepoint of `transaction`: on error, rolls back to it,
/// so the command leaves no trace while the transaction goes on.
fn in_savepoint(
    transaction: &mut Transaction<'_>,
    name: &str,
    apply: impl FnOnce(&Connection) -> Outcome,
) -> Outcome {
    let savepoint = transaction
        .savepoint()
        .map_err(|e| storage(name, "opening a savepoint", e))?;
    apply(&savepoint)?; // dropping the savepoint rolls it back
    savepoint
        .commit()
        .map_err(|e| storage(name, "releasing a savepoint", e))
}
