//! The SQL of the journal's rows: writes (run by the writer inside its
//! transaction) and reads, with the checksum of every record verified.
//!
//! Seqs are `u64` in the API and `INTEGER` (i64) in SQLite: a seq above
//! `i64::MAX` is refused on write and clamped away in range queries.

use rewind_core::{TenantId, Timestamp};
use rewind_runtime::journal::{Entry, EntryKind, Image, ImageQuery, JournalError, JournalSeq};
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::storage;
use crate::{checksum, sequence};

/// The tenant's highest seq ever stored (0 if none).
pub(super) fn highest_seq(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
) -> Result<JournalSeq, JournalError> {
    let stored: Option<i64> = connection
        .prepare_cached("SELECT seq FROM highest_seq WHERE tenant = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([tenant.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(|e| reading(name, "the highest seq", tenant, e))?;
    match stored {
        None => Ok(JournalSeq::ZERO),
        Some(seq) => u64::try_from(seq)
            .map(JournalSeq::new)
            .map_err(|_| JournalError::Corrupt {
                tenant: tenant.as_str().to_owned(),
                seq: JournalSeq::ZERO,
                reason: format!("{name}: negative highest seq {seq}"),
            }),
    }
}

/// Inserts an append batch after checking it continues every tenant's
/// sequence. The caller runs it in a savepoint: an error stores nothing.
pub(super) fn insert_entries(
    connection: &Connection,
    name: &str,
    entries: &[Entry],
) -> Result<(), JournalError> {
    let highest = sequence::check_batch(entries, |tenant| highest_seq(connection, name, tenant))?;
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO entries (tenant, seq, at, kind, payload, checksum)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(|e| storage(name, "preparing an append", e))?;
    for entry in entries {
        let tenant = entry.tenant.as_str();
        let seq = storable(name, tenant, entry.seq.get())?;
        let at = entry.at.as_unix_micros();
        let kind = entry.kind.as_str();
        let sum = checksum::entry(tenant, entry.seq.get(), at, kind, &entry.payload);
        insert
            .execute(params![tenant, seq, at, kind, entry.payload, sum as i64])
            .map_err(|e| storage(name, &format!("appending to tenant '{tenant}'"), e))?;
    }
    for (tenant, seq) in highest {
        raise_highest(connection, name, tenant.as_str(), seq.get())?;
    }
    Ok(())
}

/// Stores an image, replacing one of the tenant at the same seq.
pub(super) fn insert_image(
    connection: &Connection,
    name: &str,
    image: &Image,
) -> Result<(), JournalError> {
    let tenant = image.tenant.as_str();
    let seq = storable(name, tenant, image.seq.get())?;
    let at = image.at.as_unix_micros();
    let sum = checksum::image(
        tenant,
        image.seq.get(),
        at,
        image.name.as_deref(),
        &image.payload,
    );
    connection
        .execute(
            "INSERT OR REPLACE INTO images (tenant, seq, at, name, payload, checksum)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![tenant, seq, at, image.name, image.payload, sum as i64],
        )
        .map_err(|e| storage(name, &format!("saving an image of tenant '{tenant}'"), e))?;
    raise_highest(connection, name, tenant, image.seq.get())
}

/// Deletes the tenant's entries with `seq <= to`.
pub(super) fn delete_entries(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
    to: u64,
) -> Result<(), JournalError> {
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    connection
        .execute(
            "DELETE FROM entries WHERE tenant = ?1 AND seq <= ?2",
            params![tenant.as_str(), to],
        )
        .map_err(|e| storage(name, &format!("deleting entries of tenant '{tenant}'"), e))?;
    Ok(())
}

/// Deletes the tenant's oldest entries with `seq <= to`, at most `chunk` of
/// them (at least 1), so one transaction stays small. True once none with
/// `seq <= to` is left. Deleting from the oldest keeps what remains dense.
pub(super) fn delete_entries_chunk(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
    to: u64,
    chunk: u64,
) -> Result<bool, JournalError> {
    let deleting = |e| storage(name, &format!("deleting entries of tenant '{tenant}'"), e);
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    let oldest: Option<i64> = connection
        .query_row(
            "SELECT min(seq) FROM entries WHERE tenant = ?1",
            [tenant.as_str()],
            |row| row.get(0),
        )
        .map_err(deleting)?;
    let Some(oldest) = oldest.filter(|&oldest| oldest <= to) else {
        return Ok(true);
    };
    // Seqs are unique per tenant: this range holds at most `chunk` entries.
    let span = i64::try_from(chunk.max(1) - 1).unwrap_or(i64::MAX);
    let last = oldest.saturating_add(span).min(to);
    connection
        .execute(
            "DELETE FROM entries WHERE tenant = ?1 AND seq BETWEEN ?2 AND ?3",
            params![tenant.as_str(), oldest, last],
        )
        .map_err(deleting)?;
    Ok(last == to)
}

/// Deletes the tenant's image at `seq`, if any.
pub(super) fn delete_image(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
    seq: u64,
) -> Result<(), JournalError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(()); // never stored
    };
    connection
        .execute(
            "DELETE FROM images WHERE tenant = ?1 AND seq = ?2",
            params![tenant.as_str(), seq],
        )
        .map_err(|e| storage(name, &format!("deleting an image of tenant '{tenant}'"), e))?;
    Ok(())
}

/// Sets or clears the resume mark of a tenant.
pub(super) fn set_mark(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
    marked: bool,
) -> Result<(), JournalError> {
    let statement = if marked {
        "INSERT OR IGNORE INTO resume_marks (tenant) VALUES (?1)"
    } else {
        "DELETE FROM resume_marks WHERE tenant = ?1"
    };
    connection
        .execute(statement, params![tenant.as_str()])
        .map_err(|e| storage(name, &format!("marking tenant '{tenant}'"), e))?;
    Ok(())
}

/// The marked tenants, ordered by id. A file the writer has not opened yet
/// may lack the table: no marks.
pub(super) fn marks(connection: &Connection, name: &str) -> Result<Vec<TenantId>, JournalError> {
    let listing = |e| storage(name, "listing resume marks", e);
    let mut statement = match connection.prepare("SELECT tenant FROM resume_marks ORDER BY 1") {
        Ok(statement) => statement,
        Err(e) if e.to_string().contains("no such table") => return Ok(Vec::new()),
        Err(e) => return Err(listing(e)),
    };
    tenant_ids(&mut statement, name, listing)
}

/// Every tenant with an entry or an image, ordered by id.
///
/// Time: O(records) (SQLite walks both primary-key indexes).
pub(super) fn tenants(connection: &Connection, name: &str) -> Result<Vec<TenantId>, JournalError> {
    let listing = |e| storage(name, "listing tenants", e);
    let mut statement = connection
        .prepare("SELECT tenant FROM entries UNION SELECT tenant FROM images ORDER BY 1")
        .map_err(listing)?;
    let mut tenants = tenant_ids(&mut statement, name, listing)?;
    tenants.sort();
    Ok(tenants)
}

/// The tenant ids a one-column query answers, each checked.
fn tenant_ids(
    statement: &mut rusqlite::Statement<'_>,
    name: &str,
    listing: impl Fn(rusqlite::Error) -> JournalError,
) -> Result<Vec<TenantId>, JournalError> {
    let mut rows = statement.query([]).map_err(&listing)?;
    let mut tenants = Vec::new();
    while let Some(row) = rows.next().map_err(&listing)? {
        let id: String = row.get(0).map_err(&listing)?;
        let tenant = TenantId::new(&id).map_err(|e| JournalError::Corrupt {
            tenant: id.clone(),
            seq: JournalSeq::ZERO,
            reason: format!("{name}: stored tenant id is invalid: {e}"),
        })?;
        tenants.push(tenant);
    }
    Ok(tenants)
}

/// Every tenant whose newest entry is not a `delete`, ordered by id: one
/// pass over `highest_seq` with an indexed lookup of each tenant's newest
/// entry (missing when an image covered it: the tenant exists).
pub(super) fn live_tenants(
    connection: &Connection,
    name: &str,
) -> Result<Vec<TenantId>, JournalError> {
    let listing = |e| storage(name, "listing live tenants", e);
    let mut statement = connection
        .prepare(
            "SELECT h.tenant FROM highest_seq h
             LEFT JOIN entries e ON e.tenant = h.tenant AND e.seq = h.seq
             WHERE e.kind IS NULL OR e.kind != 'delete'
             ORDER BY h.tenant",
        )
        .map_err(listing)?;
    tenant_ids(&mut statement, name, listing)
}

/// The tenant's entries with `from <= seq <= to`, in order, each verified.
pub(super) fn read_entries(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
    from: u64,
    to: u64,
) -> Result<Vec<Entry>, JournalError> {
    let Ok(from) = i64::try_from(from) else {
        return Ok(Vec::new());
    };
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    if from > to {
        return Ok(Vec::new());
    }
    let failed = |e| reading(name, "entries", tenant, e);
    let mut statement = connection
        .prepare(
            "SELECT seq, at, kind, payload, checksum FROM entries
             WHERE tenant = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
        )
        .map_err(failed)?;
    let mut rows = statement
        .query(params![tenant.as_str(), from, to])
        .map_err(failed)?;
    let mut entries = Vec::new();
    while let Some(row) = rows.next().map_err(failed)? {
        entries.push(entry_from_row(row, name, tenant)?);
    }
    Ok(entries)
}

/// One image of the tenant, verified.
pub(super) fn load_image(
    connection: &Connection,
    name: &str,
    tenant: &TenantId,
    query: &ImageQuery,
) -> Result<Option<Image>, JournalError> {
    const COLUMNS: &str = "SELECT seq, at, name, payload, checksum FROM images WHERE tenant = ?1";
    let failed = |e| reading(name, "images", tenant, e);
    let (sql, parameter) = match query {
        ImageQuery::Latest => (format!("{COLUMNS} ORDER BY seq DESC LIMIT 1"), None),
        ImageQuery::Named(label) => (
            format!("{COLUMNS} AND name = ?2 ORDER BY seq DESC LIMIT 1"),
            Some(rusqlite::types::Value::Text(label.clone())),
        ),
        ImageQuery::AtOrBefore(at) => (
            format!("{COLUMNS} AND at <= ?2 ORDER BY at DESC, seq DESC LIMIT 1"),
            Some(rusqlite::types::Value::Integer(at.as_unix_micros())),
        ),
    };
    let mut statement = connection.prepare(&sql).map_err(failed)?;
    let mut rows = match parameter {
        None => statement.query(params![tenant.as_str()]),
        Some(parameter) => statement.query(params![tenant.as_str(), parameter]),
    }
    .map_err(failed)?;
    match rows.next().map_err(failed)? {
        None => Ok(None),
        Some(row) => image_from_row(row, name, tenant).map(Some),
    }
}

fn entry_from_row(row: &Row<'_>, name: &str, tenant: &TenantId) -> Result<Entry, JournalError> {
    let seq = seq_from_row(row, name, tenant)?;
    let corrupt = |reason: String| JournalError::Corrupt {
        tenant: tenant.as_str().to_owned(),
        seq: JournalSeq::new(seq),
        reason: format!("{name}: {reason}"),
    };
    let unreadable =
        |column: &str, e: rusqlite::Error| corrupt(format!("unreadable {column}: {e}"));
    let at: i64 = row.get(1).map_err(|e| unreadable("time", e))?;
    let kind: String = row.get(2).map_err(|e| unreadable("kind", e))?;
    let payload: Vec<u8> = row.get(3).map_err(|e| unreadable("payload", e))?;
    let stored: i64 = row.get(4).map_err(|e| unreadable("checksum", e))?;
    let computed = checksum::entry(tenant.as_str(), seq, at, &kind, &payload);
    if computed != stored as u64 {
        return Err(corrupt(format!(
            "entry checksum mismatch (stored {:016x}, computed {computed:016x})",
            stored as u64
        )));
    }
    Ok(Entry {
        tenant: tenant.clone(),
        seq: JournalSeq::new(seq),
        at: Timestamp::from_unix_micros(at),
        kind: EntryKind::from_label(&kind),
        payload,
    })
}

fn image_from_row(row: &Row<'_>, name: &str, tenant: &TenantId) -> Result<Image, JournalError> {
    let seq = seq_from_row(row, name, tenant)?;
    let corrupt = |reason: String| JournalError::Corrupt {
        tenant: tenant.as_str().to_owned(),
        seq: JournalSeq::new(seq),
        reason: format!("{name}: {reason}"),
    };
    let unreadable =
        |column: &str, e: rusqlite::Error| corrupt(format!("unreadable image {column}: {e}"));
    let at: i64 = row.get(1).map_err(|e| unreadable("time", e))?;
    let label: Option<String> = row.get(2).map_err(|e| unreadable("name", e))?;
    let payload: Vec<u8> = row.get(3).map_err(|e| unreadable("payload", e))?;
    let stored: i64 = row.get(4).map_err(|e| unreadable("checksum", e))?;
    let computed = checksum::image(tenant.as_str(), seq, at, label.as_deref(), &payload);
    if computed != stored as u64 {
        return Err(corrupt(format!(
            "image checksum mismatch (stored {:016x}, computed {computed:016x})",
            stored as u64
        )));
    }
    Ok(Image {
        tenant: tenant.clone(),
        seq: JournalSeq::new(seq),
        at: Timestamp::from_unix_micros(at),
        name: label,
        payload,
    })
}

/// Column 0 as a seq.
fn seq_from_row(row: &Row<'_>, name: &str, tenant: &TenantId) -> Result<u64, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt {
        tenant: tenant.as_str().to_owned(),
        seq: JournalSeq::ZERO,
        reason: format!("{name}: {reason}"),
    };
    let seq: i64 = row
        .get(0)
        .map_err(|e| corrupt(format!("unreadable seq: {e}")))?;
    u64::try_from(seq).map_err(|_| corrupt(format!("negative seq {seq}")))
}

fn raise_highest(
    connection: &Connection,
    name: &str,
    tenant: &str,
    seq: u64,
) -> Result<(), JournalError> {
    let seq = storable(name, tenant, seq)?;
    connection
        .prepare_cached(
            "INSERT INTO highest_seq (tenant, seq) VALUES (?1, ?2)
             ON CONFLICT (tenant) DO UPDATE SET seq = max(seq, excluded.seq)",
        )
        .and_then(|mut statement| statement.execute(params![tenant, seq]))
        .map_err(|e| {
            storage(
                name,
                &format!("raising the highest seq of tenant '{tenant}'"),
                e,
            )
        })?;
    Ok(())
}

/// `seq` as SQLite stores it.
fn storable(name: &str, tenant: &str, seq: u64) -> Result<i64, JournalError> {
    i64::try_from(seq).map_err(|_| {
        storage(
            name,
            &format!("storing tenant '{tenant}'"),
            format!("seq {seq} exceeds the journal's largest seq {}", i64::MAX),
        )
    })
}

/// A failed read (I/O, a damaged page): storage, naming file and tenant.
fn reading(name: &str, what: &str, tenant: &TenantId, error: rusqlite::Error) -> JournalError {
    storage(name, &format!("reading {what} of tenant '{tenant}'"), error)
}
