//! One runtime per journal: an OS lock on `<journal>.lock`, and a holder row
//! in the journal for hosts that share the disk.
//!
//! The OS lock (`File::try_lock`: `flock` on Unix, `LockFileEx` on Windows)
//! is taken first and held for the journal's life. It belongs to the open
//! file, so a second open in the same process is refused like one from
//! another process, and the OS releases it when the holder dies, however it
//! dies (kill -9 included). It lives in a sidecar file, not on the database,
//! so it never meets SQLite's own locks.
//!
//! The holder row (`journal_lock`, at most one row) names the holder (pid,
//! host, start), for the error a refused open gets, and guards hosts whose
//! OS locks do not reach each other on a shared disk. A row of *this* host
//! found while holding the OS lock is stale (its writer is gone: the lock
//! proves it) and is taken over. A row of another host is refused: nothing
//! here can prove that host's process gone; [`break_lock`] removes it.
//!
//! The table is created on open if missing, outside the versioned schema: it
//! holds no journal data, and a rewind that predates it opens the file as
//! before.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rewind_core::Timestamp;
use rewind_runtime::journal::{JournalError, JournalHolder};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{schema, storage};

const CREATE: &str = "
CREATE TABLE IF NOT EXISTS journal_lock (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    pid   INTEGER NOT NULL,
    host  TEXT,
    since INTEGER NOT NULL
);
";

/// The sidecar file the OS lock is taken on: `<journal>.lock`. Never
/// deleted: removing a lock file races with the next opener's lock.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the OS lock without waiting. Refused with
/// [`JournalError::AlreadyOpen`], naming the holder its row records.
pub(super) fn lock_file(path: &Path, name: &str) -> Result<File, JournalError> {
    let lock = lock_path(path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|e| {
            storage(
                name,
                &format!("opening the lock file {}", lock.display()),
                e,
            )
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(JournalError::AlreadyOpen {
            path: name.to_owned(),
            holder: recorded_holder(path, name),
        }),
        Err(TryLockError::Error(e)) => {
            Err(storage(name, &format!("locking {}", lock.display()), e))
        }
    }
}

/// Records this process as the holder, on the writer's connection, while
/// the OS lock is held. A row of this host is stale and taken over; a row
/// of another host is refused.
pub(super) fn claim(
    connection: &mut Connection,
    name: &str,
) -> Result<JournalHolder, JournalError> {
    let failed = |e| storage(name, "recording the journal's holder", e);
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(failed)?;
    transaction.execute_batch(CREATE).map_err(failed)?;
    let me = JournalHolder {
        pid: std::process::id(),
        host: host_name(),
        since: Timestamp::now(),
    };
    if let Some(found) = read_holder(&transaction).map_err(failed)? {
        if found.host != me.host {
            return Err(JournalError::AlreadyOpen {
                path: name.to_owned(),
                holder: Some(found),
            });
        }
        tracing::warn!(path = name, previous = %found, "journal lock left by a process that is gone: taken over");
    }
    transaction
        .execute(
            "INSERT OR REPLACE INTO journal_lock (id, pid, host, since) VALUES (1, ?1, ?2, ?3)",
            params![me.pid, me.host, me.since.as_unix_micros()],
        )
        .map_err(failed)?;
    transaction.commit().map_err(failed)?;
    Ok(me)
}

/// Removes this process's holder row (the writer's last act). A failure
/// only leaves a stale row, which the next open on this host takes over.
pub(super) fn unclaim(connection: &Connection, name: &str, me: &JournalHolder) {
    if let Err(error) = connection.execute(
        "DELETE FROM journal_lock WHERE pid = ?1 AND since = ?2",
        params![me.pid, me.since.as_unix_micros()],
    ) {
        tracing::warn!(path = name, %error, "journal lock row not removed");
    }
}

/// Removes the holder row of the journal at `path`, left by a host that is
/// gone; see [`SqliteJournal::break_lock`](super::SqliteJournal::break_lock).
pub(super) fn break_lock(path: &Path) -> Result<Option<JournalHolder>, JournalError> {
    let name = path.display().to_string();
    let _file = lock_file(path, &name)?;
    let connection = schema::open_writer(path, &name)?;
    let failed = |e| storage(&name, "removing the journal's holder", e);
    connection.execute_batch(CREATE).map_err(failed)?;
    let found = read_holder(&connection).map_err(failed)?;
    connection
        .execute("DELETE FROM journal_lock", [])
        .map_err(failed)?;
    if let Some(found) = &found {
        tracing::warn!(path = %name, previous = %found, "journal lock broken");
    }
    Ok(found)
}

/// The holder a live open recorded, read without disturbing it; `None` when
/// the file, the table or the row is not there (yet) or cannot be read.
fn recorded_holder(path: &Path, name: &str) -> Option<JournalHolder> {
    let connection = schema::open_reader(path, name).ok()?;
    read_holder(&connection).ok().flatten()
}

fn read_holder(connection: &Connection) -> rusqlite::Result<Option<JournalHolder>> {
    let exists: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'journal_lock'",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    connection
        .query_row(
            "SELECT pid, host, since FROM journal_lock WHERE id = 1",
            [],
            |row| {
                Ok(JournalHolder {
                    pid: row.get(0)?,
                    host: row.get(1)?,
                    since: Timestamp::from_unix_micros(row.get(2)?),
                })
            },
        )
        .optional()
}

/// This host's name, where the platform tells it without `unsafe`.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|file| std::fs::read_to_string(file).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}
