//! The writer thread and its group commit.
//!
//! One thread owns the write connection. It blocks for a command, gathers
//! what else is queued (in `Buffered` mode, what arrives within the interval)
//! up to `max_batch` records, runs it all in one transaction, commits (one
//! fsync) and only then completes each caller. Every `append` batch runs in
//! its own savepoint, so a refused batch stores nothing and the rest of the
//! group still commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use rewind_core::TenantId;
use rewind_runtime::journal::{Entry, Image, JournalError};
use rewind_runtime::metrics as names;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::{storage, tables, SyncMode};

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

    /// A caller is blocked on it: commit without waiting out the interval.
    fn is_urgent(&self) -> bool {
        !matches!(self, Command::Append { .. } | Command::SaveImage { .. })
    }

    fn writes(&self) -> bool {
        !matches!(self, Command::Flush { .. } | Command::Close { .. })
    }
}

/// The writer thread's state.
pub(super) struct Writer {
    connection: Connection,
    /// The file, for error messages.
    name: Arc<str>,
    mode: SyncMode,
    /// Records per commit before the writer stops gathering (at least 1).
    max_batch: usize,
    /// Shared with the journal for `SqliteJournal::commits`.
    commits: Arc<AtomicU64>,
    /// The first `Buffered` write refused since the last flush.
    unreported: Option<JournalError>,
}

impl Writer {
    pub(super) fn new(
        connection: Connection,
        name: Arc<str>,
        mode: SyncMode,
        max_batch: usize,
        commits: Arc<AtomicU64>,
    ) -> Self {
        Writer {
            connection,
            name,
            mode,
            max_batch,
            commits,
            unreported: None,
        }
    }

    /// Runs until `Close`, or until the journal is dropped and the queue is
    /// drained. The connection closes when this returns.
    pub(super) fn run(mut self, queue: mpsc::Receiver<Command>) {
        while let Ok(first) = queue.recv() {
            let group = self.gather(first, &queue);
            if self.commit(group) == Next::Stop {
                break;
            }
        }
        tracing::debug!(path = %self.name, "journal writer stopped");
    }

    /// `first` and what follows it into the same commit: everything already
    /// queued (`Sync`) or arriving within the interval (`Buffered`), up to
    /// `max_batch` records and never past a `Close`.
    fn gather(&self, first: Command, queue: &mpsc::Receiver<Command>) -> Vec<Command> {
        let deadline = match self.mode {
            SyncMode::Sync => None,
            SyncMode::Buffered { interval } => Some(Instant::now() + interval),
        };
        let mut records = first.records();
        let mut urgent = first.is_urgent();
        let mut group = vec![first];
        while records < self.max_batch && !matches!(group.last(), Some(Command::Close { .. })) {
            let next = match deadline {
                Some(deadline) if !urgent => queue
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok(),
                _ => queue.try_recv().ok(),
            };
            let Some(command) = next else { break };
            records += command.records();
            urgent |= command.is_urgent();
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
            match self.transact(&group, &mut outcomes) {
                Ok(()) => {
                    let elapsed = started.elapsed();
                    self.commits.fetch_add(1, Ordering::Relaxed);
                    metrics::histogram!(names::JOURNAL_COMMIT_DURATION_SECONDS)
                        .record(elapsed.as_secs_f64());
                    if records > 0 {
                        metrics::histogram!(names::JOURNAL_BATCH_RECORDS).record(records as f64);
                    }
                    tracing::trace!(records, commands = group.len(), ?elapsed, "journal commit");
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
        self.reply(group, outcomes)
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
                Command::Flush { .. } | Command::Close { .. } => Ok(()),
            };
        }
        transaction
            .commit()
            .map_err(|e| storage(name, "committing", e))
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
                Command::DeleteEntries { done, .. } | Command::DeleteImage { done, .. } => {
                    drop(done.send(outcome))
                }
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
