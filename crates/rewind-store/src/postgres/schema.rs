//! The tables, created on first use: the schema version check and the
//! shard count every node must agree on.

use rewind_runtime::journal::JournalError;

use super::session::{storage, Session};

/// The schema this code writes and the newest it reads. Raise it with every
/// change of the tables below, and migrate older databases in
/// [`initialise`].
pub(super) const VERSION: u32 = 1;

/// The key of the transaction-scoped advisory lock that concurrent first
/// connects take turns at (only for creating the tables): "rewind" in
/// ASCII, then 1.
const SCHEMA_LOCK: i64 = 0x7265_7769_6e64_0001;

/// Version 1. Tenant ids compare byte by byte (`COLLATE "C"`), as rewind
/// orders them, whatever the database's locale. `rewind_tenants` keeps each
/// tenant's shard (from its first write), its highest seq ever stored (so
/// deleting entries or images never lowers it) and whether its newest entry
/// is a `delete`; checksums are FNV-1a over the other columns (see
/// `checksum.rs`). `rewind_shards` holds one lease row per shard (owner,
/// epoch, expiry) and `rewind_nodes` the nodes of a cluster.
const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS rewind_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rewind_entries (
    tenant   TEXT COLLATE "C" NOT NULL,
    seq      BIGINT NOT NULL,
    at_us    BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    payload  BYTEA NOT NULL,
    checksum BIGINT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE IF NOT EXISTS rewind_images (
    tenant   TEXT COLLATE "C" NOT NULL,
    seq      BIGINT NOT NULL,
    at_us    BIGINT NOT NULL,
    name     TEXT,
    payload  BYTEA NOT NULL,
    checksum BIGINT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
CREATE TABLE IF NOT EXISTS rewind_tenants (
    tenant      TEXT COLLATE "C" PRIMARY KEY,
    shard       INTEGER NOT NULL,
    highest_seq BIGINT NOT NULL,
    deleted     BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS rewind_tenants_by_shard ON rewind_tenants (shard, tenant);
CREATE TABLE IF NOT EXISTS rewind_shards (
    shard      INTEGER PRIMARY KEY,
    owner      TEXT,
    epoch      BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch'
);
CREATE TABLE IF NOT EXISTS rewind_nodes (
    node         TEXT PRIMARY KEY,
    incarnation  TEXT NOT NULL,
    advertise    TEXT NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    left_at      TIMESTAMPTZ
);
"#;

/// Tenants with a deployment to resume after a restart
/// (`Journal::set_resume_mark`), with their shard so a node lists those of
/// the shards it owns.
const MARKS: &str = r#"
CREATE TABLE IF NOT EXISTS rewind_marks (
    tenant TEXT COLLATE "C" PRIMARY KEY,
    shard  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rewind_marks_by_shard ON rewind_marks (shard, tenant);
"#;

/// Creates the tables if they are not there (one transaction, under an
/// advisory lock so concurrent first connects do not collide), after
/// checking the schema version of tables that are; records the shard count
/// at the first initialisation (and a lease row for each shard) and refuses
/// another count later.
pub(super) fn initialise(
    session: &mut Session,
    url: &str,
    shards: u32,
) -> Result<(), JournalError> {
    session
        .batch("BEGIN")
        .map_err(|e| storage(url, "beginning the schema transaction", &e))?;
    let outcome = create(session, url, shards);
    let ended = match &outcome {
        Ok(()) => session.batch("COMMIT"),
        Err(_) => session.batch("ROLLBACK"),
    };
    outcome?;
    ended.map_err(|e| storage(url, "committing the schema", &e))
}

/// The statements of [`initialise`], inside its transaction.
fn create(session: &mut Session, url: &str, shards: u32) -> Result<(), JournalError> {
    let checking = |e: postgres::Error| storage(url, "checking the schema", &e);
    session
        .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(checking)?;
    // Checked before anything is created, so tables this code cannot read
    // are left exactly as they are.
    let exists: bool = session
        .query("SELECT to_regclass('rewind_meta') IS NOT NULL", &[])
        .map_err(checking)?
        .first()
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(checking)?
        .unwrap_or(false);
    if exists {
        let found = meta_number(session, url, "schema_version")?;
        match found {
            None => {
                return Err(refused(
                    url,
                    "rewind_meta has no schema_version: not a rewind database",
                ))
            }
            Some(0) => return Err(refused(url, "schema_version 0 is not a rewind schema")),
            Some(found) if found > VERSION => {
                return Err(JournalError::SchemaTooNew {
                    path: url.to_owned(),
                    found,
                    supported: VERSION,
                })
            }
            Some(_) => {}
        }
        // The tables are there (migrations of older versions go here): no
        // DDL on them, which would lock tables the other nodes are writing.
        // A table added since version 1 is created when missing (that
        // locks only the new table).
        session
            .batch(MARKS)
            .map_err(|e| storage(url, "creating the resume marks table", &e))?;
        return check_shards(session, url, shards);
    }
    session
        .batch(CREATE)
        .map_err(|e| storage(url, "creating the tables", &e))?;
    session
        .batch(MARKS)
        .map_err(|e| storage(url, "creating the resume marks table", &e))?;
    let (version, count) = (VERSION.to_string(), shards.to_string());
    session
        .execute(
            "INSERT INTO rewind_meta (key, value) VALUES ('schema_version', $1), ('shards', $2)",
            &[&version, &count],
        )
        .map_err(|e| storage(url, "recording the schema", &e))?;
    let last = i32::try_from(shards).unwrap_or(i32::MAX) - 1;
    session
        .execute(
            "INSERT INTO rewind_shards (shard) SELECT generate_series(0, $1::INTEGER)",
            &[&last],
        )
        .map_err(|e| storage(url, "creating the shard rows", &e))?;
    tracing::info!(
        url,
        version = VERSION,
        shards,
        "PostgreSQL journal tables created"
    );
    Ok(())
}

/// Refuses a shard count other than the one the database was initialised
/// with: every node must place each tenant in the same shard.
fn check_shards(session: &mut Session, url: &str, shards: u32) -> Result<(), JournalError> {
    match meta_number(session, url, "shards")? {
        Some(stored) if stored == shards => Ok(()),
        Some(stored) => Err(JournalError::Storage(format!(
            "PostgreSQL at {url}: the database was initialised with {stored} shards; this \
             node was started with --shards {shards} (every node must use the database's count)"
        ))),
        None => Err(refused(url, "rewind_meta has no shard count")),
    }
}

/// A number of `rewind_meta`; `None` if the key is missing.
fn meta_number(session: &mut Session, url: &str, key: &str) -> Result<Option<u32>, JournalError> {
    let rows = session
        .query("SELECT value FROM rewind_meta WHERE key = $1", &[&key])
        .map_err(|e| storage(url, "checking the schema", &e))?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let text: String = row
        .try_get(0)
        .map_err(|e| storage(url, "checking the schema", &e))?;
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| refused(url, &format!("unreadable {key} '{text}' in rewind_meta")))
}

/// The database is not one this code can use.
fn refused(url: &str, why: &str) -> JournalError {
    JournalError::Storage(format!("PostgreSQL at {url}: checking the schema: {why}"))
}
