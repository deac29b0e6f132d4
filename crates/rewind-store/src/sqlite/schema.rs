//! Opening the file: pragmas, the schema version check, the tables.

use std::path::Path;
use std::time::Duration;

use rewind_runtime::journal::JournalError;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::storage;

/// The schema this code writes and the newest it reads. Raise it with every
/// change of the tables below, and migrate older files in `open_writer`.
/// (The lock table of `lock.rs` is outside it: it holds no journal data.)
pub(super) const VERSION: u32 = 1;

/// How long a connection waits for a lock held by another connection (a
/// checkpoint, a second process, a tool) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Version 1. `highest_seq` keeps each tenant's highest seq ever stored, so
/// deleting entries or images never lowers it; checksums are FNV-1a over the
/// other columns (see `checksum.rs`).
const CREATE: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE entries (
    tenant   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    payload  BLOB NOT NULL,
    checksum INTEGER NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE images (
    tenant   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    name     TEXT,
    payload  BLOB NOT NULL,
    checksum INTEGER NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE highest_seq (
    tenant TEXT PRIMARY KEY NOT NULL,
    seq    INTEGER NOT NULL
);
";

/// Tenants with a deployment to resume after a restart
/// (`Journal::set_resume_mark`).
const MARKS: &str = "CREATE TABLE IF NOT EXISTS resume_marks (tenant TEXT PRIMARY KEY NOT NULL);";

/// Opens (or creates) the journal file for writing: checks it is a rewind
/// journal of a known version, then sets WAL mode and `synchronous=FULL`.
pub(super) fn open_writer(path: &Path, name: &str) -> Result<Connection, JournalError> {
    refuse_short_file(path, name)?;
    let connection = Connection::open(path).map_err(|e| storage(name, "opening", e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| storage(name, "setting the busy timeout", e))?;
    // Checked before anything is written, so a file this code cannot read is
    // left exactly as it was.
    let version = stored_version(&connection, name)?;
    if let Some(found) = version {
        if found > VERSION {
            return Err(JournalError::SchemaTooNew {
                path: name.to_owned(),
                found,
                supported: VERSION,
            });
        }
        if found == 0 {
            return Err(storage(
                name,
                "checking the schema",
                "schema_version 0 is not a rewind schema",
            ));
        }
    }
    let journal_mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| storage(name, "enabling WAL", e))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(storage(
            name,
            "enabling WAL",
            format!("the file stays in journal mode '{journal_mode}'"),
        ));
    }
    // FULL in both modes: `Sync` fsyncs every commit, `Buffered` commits (so
    // fsyncs) every interval, which is what bounds its loss window. NORMAL
    // would defer WAL fsyncs to checkpoints and widen it on power loss.
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(|e| storage(name, "setting synchronous=FULL", e))?;
    if version.is_none() {
        let create = format!(
            "BEGIN IMMEDIATE; {CREATE} INSERT INTO meta (key, value) VALUES ('schema_version', '{VERSION}'); COMMIT;"
        );
        connection
            .execute_batch(&create)
            .map_err(|e| storage(name, "creating the tables", e))?;
        tracing::info!(path = name, version = VERSION, "journal created");
    }
    // Outside the versioned schema: a file without it (from a version that
    // predates deployments) gains it, and such a version ignores it.
    connection
        .execute_batch(MARKS)
        .map_err(|e| storage(name, "creating the resume marks table", e))?;
    Ok(connection)
}

/// Smallest SQLite database file that is not empty: one page of the
/// smallest page size.
const MIN_DATABASE_BYTES: u64 = 512;

/// Refuses a file too short to be a SQLite database but not empty. SQLite
/// itself reports a 1-byte file as empty (its marker for a new database on
/// some file systems) and would turn it into a new, empty journal: a journal
/// cut down to its first byte would come back with every tenant gone and no
/// error. A missing or empty file is a new journal.
fn refuse_short_file(path: &Path, name: &str) -> Result<(), JournalError> {
    match std::fs::metadata(path) {
        Ok(metadata) if (1..MIN_DATABASE_BYTES).contains(&metadata.len()) => Err(storage(
            name,
            "checking the file",
            format!(
                "{} bytes is too short for a SQLite database (truncated, or not a journal)",
                metadata.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// Opens the connection that serves reads beside the writer.
pub(super) fn open_reader(path: &Path, name: &str) -> Result<Connection, JournalError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|e| storage(name, "opening for reading", e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| storage(name, "setting the busy timeout", e))?;
    Ok(connection)
}

/// Opens the background checkpointer's connection to the (existing) file.
pub(super) fn open_checkpointer(path: &Path, name: &str) -> Result<Connection, JournalError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags)
        .map_err(|e| storage(name, "opening for checkpoints", e))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| storage(name, "setting the busy timeout", e))?;
    // A connection learns the file is in WAL mode (and opens the WAL) on its
    // first read; until then a checkpoint on it does nothing.
    connection
        .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .map_err(|e| storage(name, "opening the WAL for checkpoints", e))?;
    Ok(connection)
}

/// The file's schema version; `None` for an empty file (a new journal).
fn stored_version(connection: &Connection, name: &str) -> Result<Option<u32>, JournalError> {
    let checking = |e| storage(name, "reading the schema", e);
    let tables: i64 = connection
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .map_err(checking)?;
    let has_meta: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |row| row.get(0),
        )
        .map_err(checking)?;
    if !has_meta {
        if tables > 0 {
            return Err(storage(
                name,
                "checking the schema",
                "a SQLite database but not a rewind journal (no meta table)",
            ));
        }
        return Ok(None);
    }
    let value: Option<Value> = connection
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(checking)?;
    let text = match value {
        Some(Value::Integer(version)) => version.to_string(),
        Some(Value::Text(version)) => version,
        Some(other) => format!("{other:?}"),
        None => {
            return Err(storage(
                name,
                "checking the schema",
                "the meta table has no schema_version",
            ));
        }
    };
    text.trim().parse().map(Some).map_err(|_| {
        storage(
            name,
            "checking the schema",
            format!("unreadable schema_version '{text}'"),
        )
    })
}
