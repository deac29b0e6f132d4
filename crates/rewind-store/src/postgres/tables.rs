//! The SQL of the journal's rows: writes (run by the writer inside its
//! transaction, each in a savepoint) and reads, with the checksum of every
//! record verified.
//!
//! Seqs are `u64` in the API and `BIGINT` (i64) in PostgreSQL: a seq above
//! `i64::MAX` is refused on write and clamped away in range queries.

use std::collections::HashMap;

use postgres::Row;
use rewind_core::{TenantId, Timestamp};
use rewind_runtime::journal::{Entry, EntryKind, Image, ImageQuery, JournalError, JournalSeq};

use super::session::{describe, storage, Session};
use super::{shard_of, Fence};
use crate::{checksum, sequence};

/// Whether each fence still owns its shard: the shard's lease row names
/// the fence's node at the fence's epoch. One statement for all of them, in
/// shard order (as every writer locks lease rows). Takes a share lock on
/// the rows until the end of the transaction, so a takeover (an `UPDATE` of
/// a row) waits for the transaction, and the transaction never commits
/// after one.
pub(super) fn fences_hold(
    session: &mut Session,
    fences: &[(u32, &Fence)],
) -> Result<Vec<bool>, postgres::Error> {
    let shards: Vec<i32> = fences
        .iter()
        .filter_map(|(shard, _)| i32::try_from(*shard).ok())
        .collect();
    let rows = session.query(
        "SELECT shard, owner, epoch FROM rewind_shards WHERE shard = ANY($1)
         ORDER BY shard FOR SHARE",
        &[&shards],
    )?;
    let mut leases: HashMap<i32, (Option<String>, i64)> = HashMap::with_capacity(rows.len());
    for row in rows {
        leases.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
    }
    Ok(fences
        .iter()
        .map(|(shard, fence)| {
            let (Ok(shard), Ok(epoch)) = (i32::try_from(*shard), i64::try_from(fence.epoch)) else {
                return false; // no such row can exist
            };
            leases.get(&shard).is_some_and(|(owner, current)| {
                owner.as_deref() == Some(fence.node.as_str()) && *current == epoch
            })
        })
        .collect())
}

/// Inserts an append batch after checking it continues every tenant's
/// sequence (their `rewind_tenants` rows locked meanwhile, so two writers of
/// one tenant take turns). The caller runs it in a savepoint: an error
/// stores nothing.
pub(super) fn insert_entries(
    session: &mut Session,
    url: &str,
    shards: u32,
    entries: &[Entry],
) -> Result<(), JournalError> {
    insert_batches(session, url, shards, &[entries])?
        .pop()
        .unwrap_or(Ok(()))
}

/// Inserts several append batches with three statements in all: one read
/// of every tenant's highest seq (rows locked), each batch checked in turn
/// against them (a batch that does not continue its tenants' sequences is
/// refused alone: its outcome is the error, and it stores nothing), then one
/// `INSERT` of every accepted entry and one raise of the highest seqs.
/// Returns each batch's outcome. An `Err` is a failure of the statements
/// themselves: the transaction must be rolled back (or the caller's
/// savepoint), as something may be stored.
pub(super) fn insert_batches(
    session: &mut Session,
    url: &str,
    shards: u32,
    batches: &[&[Entry]],
) -> Result<Vec<Result<(), JournalError>>, JournalError> {
    let mut tenants: Vec<&str> = batches
        .iter()
        .flat_map(|batch| batch.iter().map(|e| e.tenant.as_str()))
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut highest = lock_highest(session, url, &tenants)?;
    let mut outcomes = Vec::with_capacity(batches.len());
    let mut accepted: Vec<&Entry> = Vec::new();
    for batch in batches {
        let checked = sequence::check_batch(batch, |tenant| {
            Ok(highest
                .get(tenant.as_str())
                .copied()
                .unwrap_or(JournalSeq::ZERO))
        });
        match checked {
            Ok(raised) => {
                for (tenant, seq) in raised {
                    highest.insert(tenant.as_str().to_owned(), seq);
                }
                accepted.extend(batch.iter());
                outcomes.push(Ok(()));
            }
            Err(error) => outcomes.push(Err(error)),
        }
    }
    if accepted.is_empty() {
        return Ok(outcomes);
    }
    let appending = |e: postgres::Error| storage(url, "appending entries", &e);
    let Columns {
        ids,
        seqs,
        ats,
        kinds,
        payloads,
        sums,
        newest,
    } = Columns::of(url, accepted)?;
    session
        .execute(
            "INSERT INTO rewind_entries (tenant, seq, at_us, kind, payload, checksum)
             SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[],
                                  $5::BYTEA[], $6::BIGINT[])",
            &[&ids, &seqs, &ats, &kinds, &payloads, &sums],
        )
        .map_err(appending)?;
    let rows: Vec<TenantRow<'_>> = newest
        .into_iter()
        .map(|(tenant, (seq, deleted))| TenantRow {
            tenant,
            seq,
            deleted,
        })
        .collect();
    raise_highest(session, url, shards, &rows)?;
    Ok(outcomes)
}

/// Entries as the columns of an `unnest` insert, with each tenant's newest
/// entry: its seq, and whether it is a delete.
struct Columns<'a> {
    ids: Vec<&'a str>,
    seqs: Vec<i64>,
    ats: Vec<i64>,
    kinds: Vec<&'a str>,
    payloads: Vec<&'a [u8]>,
    sums: Vec<i64>,
    newest: HashMap<&'a str, (u64, bool)>,
}

impl<'a> Columns<'a> {
    /// The columns of `entries`, their checksums computed; a seq beyond
    /// `i64::MAX` is refused.
    fn of(url: &str, entries: impl IntoIterator<Item = &'a Entry>) -> Result<Self, JournalError> {
        let mut columns = Columns {
            ids: Vec::new(),
            seqs: Vec::new(),
            ats: Vec::new(),
            kinds: Vec::new(),
            payloads: Vec::new(),
            sums: Vec::new(),
            newest: HashMap::new(),
        };
        for entry in entries {
            let tenant = entry.tenant.as_str();
            let at = entry.at.as_unix_micros();
            let kind = entry.kind.as_str();
            columns.seqs.push(storable(url, tenant, entry.seq.get())?);
            columns
                .sums
                .push(checksum::entry(tenant, entry.seq.get(), at, kind, &entry.payload) as i64);
            columns.ids.push(tenant);
            columns.ats.push(at);
            columns.kinds.push(kind);
            columns.payloads.push(entry.payload.as_slice());
            columns
                .newest
                .insert(tenant, (entry.seq.get(), entry.kind == EntryKind::Delete));
        }
        Ok(columns)
    }
}

/// What [`insert_batches_at_once`] found.
pub(super) enum AtOnce {
    /// Every batch is stored (once the transaction commits).
    Stored,
    /// A batch did not continue its tenants' sequences, or a statement
    /// failed: something may be stored, so the transaction must be rolled
    /// back and its writes run one by one ([`insert_batches`] refuses the
    /// batch at fault alone).
    Refused(JournalError),
}

/// Inserts every batch with one statement: the entries, the raised highest
/// seqs, and the highest seqs as they were before, against which the
/// batches are then checked in turn. The common case (every batch
/// continues its sequences) costs one round trip, whatever the number of
/// batches and tenants. Two writers of one tenant cannot both pass: the
/// primary key of the entries refuses a seq stored twice.
pub(super) fn insert_batches_at_once(
    session: &mut Session,
    url: &str,
    shards: u32,
    batches: &[&[Entry]],
) -> AtOnce {
    match at_once(session, url, shards, batches) {
        Ok(()) => AtOnce::Stored,
        Err(error) => AtOnce::Refused(error),
    }
}

fn at_once(
    session: &mut Session,
    url: &str,
    shards: u32,
    batches: &[&[Entry]],
) -> Result<(), JournalError> {
    let appending = |e: postgres::Error| storage(url, "appending entries", &e);
    let Columns {
        ids,
        seqs,
        ats,
        kinds,
        payloads,
        sums,
        newest,
    } = Columns::of(url, batches.iter().flat_map(|batch| batch.iter()))?;
    let raised: Vec<TenantRow<'_>> = newest
        .into_iter()
        .map(|(tenant, (seq, deleted))| TenantRow {
            tenant,
            seq,
            deleted,
        })
        .collect();
    let (tenants, tenant_shards, highest_seqs, deleted) = tenant_columns(url, shards, &raised)?;
    // The sub-statements share one snapshot: `before` reads the highest
    // seqs as they were when the statement began.
    let rows = session
        .query(
            "WITH before AS (
                 SELECT tenant, highest_seq FROM rewind_tenants WHERE tenant = ANY($7::TEXT[])
             ), entries AS (
                 INSERT INTO rewind_entries (tenant, seq, at_us, kind, payload, checksum)
                 SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[],
                                      $5::BYTEA[], $6::BIGINT[])
             ), raised AS (
                 INSERT INTO rewind_tenants (tenant, shard, highest_seq, deleted)
                 SELECT * FROM unnest($7::TEXT[], $8::INTEGER[], $9::BIGINT[], $10::BOOLEAN[])
                 ON CONFLICT (tenant) DO UPDATE SET
                     deleted = CASE WHEN EXCLUDED.highest_seq > rewind_tenants.highest_seq
                                    THEN EXCLUDED.deleted ELSE rewind_tenants.deleted END,
                     highest_seq = GREATEST(rewind_tenants.highest_seq, EXCLUDED.highest_seq)
             )
             SELECT tenant, highest_seq FROM before",
            &[
                &ids,
                &seqs,
                &ats,
                &kinds,
                &payloads,
                &sums,
                &tenants,
                &tenant_shards,
                &highest_seqs,
                &deleted,
            ],
        )
        .map_err(appending)?;
    let mut highest: HashMap<String, JournalSeq> = HashMap::with_capacity(rows.len());
    for row in rows {
        let tenant: String = row.try_get(0).map_err(appending)?;
        let seq: i64 = row.try_get(1).map_err(appending)?;
        let seq = u64::try_from(seq).map_err(|_| JournalError::Corrupt {
            tenant: tenant.clone(),
            seq: JournalSeq::ZERO,
            reason: format!("{url}: negative highest seq {seq}"),
        })?;
        highest.insert(tenant, JournalSeq::new(seq));
    }
    for batch in batches {
        let raised = sequence::check_batch(batch, |tenant| {
            Ok(highest
                .get(tenant.as_str())
                .copied()
                .unwrap_or(JournalSeq::ZERO))
        })?;
        for (tenant, seq) in raised {
            highest.insert(tenant.as_str().to_owned(), seq);
        }
    }
    Ok(())
}

/// The highest seqs of `tenants` (those with a row), their rows locked
/// until the end of the transaction.
fn lock_highest(
    session: &mut Session,
    url: &str,
    tenants: &[&str],
) -> Result<HashMap<String, JournalSeq>, JournalError> {
    let reading = |e: postgres::Error| storage(url, "reading the highest seqs", &e);
    let rows = session
        .query(
            "SELECT tenant, highest_seq FROM rewind_tenants WHERE tenant = ANY($1) FOR UPDATE",
            &[&tenants],
        )
        .map_err(reading)?;
    let mut highest = HashMap::with_capacity(rows.len());
    for row in rows {
        let tenant: String = row.try_get(0).map_err(reading)?;
        let seq: i64 = row.try_get(1).map_err(reading)?;
        let seq = u64::try_from(seq).map_err(|_| JournalError::Corrupt {
            tenant: tenant.clone(),
            seq: JournalSeq::ZERO,
            reason: format!("{url}: negative highest seq {seq}"),
        })?;
        highest.insert(tenant, JournalSeq::new(seq));
    }
    Ok(highest)
}

/// Stores an image, replacing one of the tenant at the same seq.
pub(super) fn insert_image(
    session: &mut Session,
    url: &str,
    shards: u32,
    image: &Image,
) -> Result<(), JournalError> {
    let tenant = image.tenant.as_str();
    let seq = storable(url, tenant, image.seq.get())?;
    let at = image.at.as_unix_micros();
    let sum = checksum::image(
        tenant,
        image.seq.get(),
        at,
        image.name.as_deref(),
        &image.payload,
    ) as i64;
    session
        .execute(
            "INSERT INTO rewind_images (tenant, seq, at_us, name, payload, checksum)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant, seq) DO UPDATE SET at_us = EXCLUDED.at_us,
                 name = EXCLUDED.name, payload = EXCLUDED.payload, checksum = EXCLUDED.checksum",
            &[&tenant, &seq, &at, &image.name, &image.payload, &sum],
        )
        .map_err(|e| storage(url, &format!("saving an image of tenant '{tenant}'"), &e))?;
    // Only a live tenant's timeline is imaged: past the newest entry, the
    // tenant is live.
    let row = TenantRow {
        tenant,
        seq: image.seq.get(),
        deleted: false,
    };
    raise_highest(session, url, shards, &[row])
}

/// Deletes the tenant's entries with `seq <= to`.
pub(super) fn delete_entries(
    session: &mut Session,
    url: &str,
    tenant: &TenantId,
    to: u64,
) -> Result<(), JournalError> {
    let to = i64::try_from(to).unwrap_or(i64::MAX);
    session
        .execute(
            "DELETE FROM rewind_entries WHERE tenant = $1 AND seq <= $2",
            &[&tenant.as_str(), &to],
        )
        .map_err(|e| storage(url, &format!("deleting entries of tenant '{tenant}'"), &e))?;
    Ok(())
}

/// Deletes the tenant's image at `seq`, if any.
pub(super) fn delete_image(
    session: &mut Session,
    url: &str,
    tenant: &TenantId,
    seq: u64,
) -> Result<(), JournalError> {
    let Ok(seq) = i64::try_from(seq) else {
        return Ok(()); // never stored
    };
    session
        .execute(
            "DELETE FROM rewind_images WHERE tenant = $1 AND seq = $2",
            &[&tenant.as_str(), &seq],
        )
        .map_err(|e| storage(url, &format!("deleting an image of tenant '{tenant}'"), &e))?;
    Ok(())
}

/// A tenant's new highest seq, and whether the record there is a delete.
struct TenantRow<'a> {
    tenant: &'a str,
    seq: u64,
    deleted: bool,
}

/// The columns of `rewind_tenants` rows for an `unnest` upsert: ids,
/// shards, highest seqs, deleted flags.
type TenantColumns<'a> = (Vec<&'a str>, Vec<i32>, Vec<i64>, Vec<bool>);

fn tenant_columns<'a>(
    url: &str,
    shards: u32,
    rows: &[TenantRow<'a>],
) -> Result<TenantColumns<'a>, JournalError> {
    let mut columns: TenantColumns<'a> = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for row in rows {
        let shard = TenantId::new(row.tenant)
            .map(|tenant| shard_of(&tenant, shards))
            .unwrap_or(0);
        columns.0.push(row.tenant);
        columns.1.push(i32::try_from(shard).unwrap_or(i32::MAX));
        columns.2.push(storable(url, row.tenant, row.seq)?);
        columns.3.push(row.deleted);
    }
    Ok(columns)
}

/// Raises each tenant's highest seq (never lowers it), recording its shard
/// at its first write; `deleted` is taken when the seq is raised.
fn raise_highest(
    session: &mut Session,
    url: &str,
    shards: u32,
    rows: &[TenantRow<'_>],
) -> Result<(), JournalError> {
    let (tenants, tenant_shards, seqs, deleted) = tenant_columns(url, shards, rows)?;
    session
        .execute(
            "INSERT INTO rewind_tenants (tenant, shard, highest_seq, deleted)
             SELECT * FROM unnest($1::TEXT[], $2::INTEGER[], $3::BIGINT[], $4::BOOLEAN[])
             ON CONFLICT (tenant) DO UPDATE SET
                 deleted = CASE WHEN EXCLUDED.highest_seq > rewind_tenants.highest_seq
                                THEN EXCLUDED.deleted ELSE rewind_tenants.deleted END,
                 highest_seq = GREATEST(rewind_tenants.highest_seq, EXCLUDED.highest_seq)",
            &[&tenants, &tenant_shards, &seqs, &deleted],
        )
        .map_err(|e| storage(url, "raising the highest seqs", &e))?;
    Ok(())
}

/// The tenants with at least one entry or image (those whose newest entry
/// is not a `delete` when `live`), of `shard` if given, ordered by id.
///
/// Time: one pass over the tenants (of the shard: an index range), with an
/// index probe of entries and images for each.
pub(super) fn tenants(
    session: &mut Session,
    url: &str,
    shard: Option<u32>,
    live: bool,
) -> Result<Vec<TenantId>, JournalError> {
    let doing = if live {
        "listing live tenants"
    } else {
        "listing tenants"
    };
    let listing = |e: postgres::Error| storage(url, doing, &e);
    let rows = match (shard, live) {
        (None, false) => session.query(
            "SELECT t.tenant FROM rewind_tenants t
             WHERE (EXISTS (SELECT 1 FROM rewind_entries e WHERE e.tenant = t.tenant)
                 OR EXISTS (SELECT 1 FROM rewind_images i WHERE i.tenant = t.tenant))
             ORDER BY t.tenant",
            &[],
        ),
        (None, true) => session.query(
            "SELECT t.tenant FROM rewind_tenants t
             WHERE NOT t.deleted
               AND (EXISTS (SELECT 1 FROM rewind_entries e WHERE e.tenant = t.tenant)
                 OR EXISTS (SELECT 1 FROM rewind_images i WHERE i.tenant = t.tenant))
             ORDER BY t.tenant",
            &[],
        ),
        (Some(shard), live) => {
            let Ok(shard) = i32::try_from(shard) else {
                return Ok(Vec::new()); // no tenant is there
            };
            session.query(
                "SELECT t.tenant FROM rewind_tenants t
                 WHERE t.shard = $1 AND (NOT $2 OR NOT t.deleted)
                   AND (EXISTS (SELECT 1 FROM rewind_entries e WHERE e.tenant = t.tenant)
                     OR EXISTS (SELECT 1 FROM rewind_images i WHERE i.tenant = t.tenant))
                 ORDER BY t.tenant",
                &[&shard, &live],
            )
        }
    }
    .map_err(listing)?;
    let mut tenants = tenant_ids(url, &rows, listing)?;
    tenants.sort();
    Ok(tenants)
}

/// The tenant ids of the first column of `rows`; a stored id that is not
/// valid is corrupt.
fn tenant_ids(
    url: &str,
    rows: &[Row],
    failed: impl Fn(postgres::Error) -> JournalError,
) -> Result<Vec<TenantId>, JournalError> {
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0).map_err(&failed)?;
            TenantId::new(&id).map_err(|e| JournalError::Corrupt {
                tenant: id.clone(),
                seq: JournalSeq::ZERO,
                reason: format!("{url}: stored tenant id is invalid: {e}"),
            })
        })
        .collect()
}

/// Up to `limit` live tenants (as [`tenants`] with `live`) after `after`,
/// ordered by id: one index range of `rewind_tenants`, with an index probe
/// of entries and images for each.
pub(super) fn live_page(
    session: &mut Session,
    url: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<TenantId>, JournalError> {
    let listing = |e: postgres::Error| storage(url, "listing a page of live tenants", &e);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = session
        .query(
            "SELECT t.tenant FROM rewind_tenants t
             WHERE NOT t.deleted AND ($1::TEXT IS NULL OR t.tenant > $1::TEXT)
               AND (EXISTS (SELECT 1 FROM rewind_entries e WHERE e.tenant = t.tenant)
                 OR EXISTS (SELECT 1 FROM rewind_images i WHERE i.tenant = t.tenant))
             ORDER BY t.tenant
             LIMIT $2",
            &[&after, &limit],
        )
        .map_err(listing)?;
    tenant_ids(url, &rows, listing)
}

/// How many live tenants there are (as [`tenants`] with `live` would list),
/// counted by the server.
pub(super) fn live_count(session: &mut Session, url: &str) -> Result<u64, JournalError> {
    let counting = |e: postgres::Error| storage(url, "counting live tenants", &e);
    let rows = session
        .query(
            "SELECT count(*) FROM rewind_tenants t
             WHERE NOT t.deleted
               AND (EXISTS (SELECT 1 FROM rewind_entries e WHERE e.tenant = t.tenant)
                 OR EXISTS (SELECT 1 FROM rewind_images i WHERE i.tenant = t.tenant))",
            &[],
        )
        .map_err(counting)?;
    let count: i64 = rows
        .first()
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(counting)?
        .unwrap_or(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The tenant's highest seq ever stored (0 if none).
pub(super) fn highest_seq(
    session: &mut Session,
    url: &str,
    tenant: &TenantId,
) -> Result<JournalSeq, JournalError> {
    let failed = |e: postgres::Error| reading(url, "the highest seq", tenant, &e);
    let rows = session
        .query(
            "SELECT highest_seq FROM rewind_tenants WHERE tenant = $1",
            &[&tenant.as_str()],
        )
        .map_err(failed)?;
    let Some(row) = rows.first() else {
        return Ok(JournalSeq::ZERO);
    };
    let seq: i64 = row.try_get(0).map_err(failed)?;
    u64::try_from(seq)
        .map(JournalSeq::new)
        .map_err(|_| JournalError::Corrupt {
            tenant: tenant.as_str().to_owned(),
            seq: JournalSeq::ZERO,
            reason: format!("{url}: negative highest seq {seq}"),
        })
}

/// The tenant's entries with `from <= seq <= to`, in order, each verified.
pub(super) fn read_entries(
    session: &mut Session,
    url: &str,
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
    let rows = session
        .query(
            "SELECT seq, at_us, kind, payload, checksum FROM rewind_entries
             WHERE tenant = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            &[&tenant.as_str(), &from, &to],
        )
        .map_err(|e| reading(url, "entries", tenant, &e))?;
    rows.iter()
        .map(|row| entry_from_row(row, url, tenant))
        .collect()
}

/// One image of the tenant, verified.
pub(super) fn load_image(
    session: &mut Session,
    url: &str,
    tenant: &TenantId,
    query: &ImageQuery,
) -> Result<Option<Image>, JournalError> {
    let id = tenant.as_str();
    let rows = match query {
        ImageQuery::Latest => session.query(
            "SELECT seq, at_us, name, payload, checksum FROM rewind_images
             WHERE tenant = $1 ORDER BY seq DESC LIMIT 1",
            &[&id],
        ),
        ImageQuery::Named(label) => session.query(
            "SELECT seq, at_us, name, payload, checksum FROM rewind_images
             WHERE tenant = $1 AND name = $2 ORDER BY seq DESC LIMIT 1",
            &[&id, label],
        ),
        ImageQuery::AtOrBefore(at) => session.query(
            "SELECT seq, at_us, name, payload, checksum FROM rewind_images
             WHERE tenant = $1 AND at_us <= $2 ORDER BY at_us DESC, seq DESC LIMIT 1",
            &[&id, &at.as_unix_micros()],
        ),
    }
    .map_err(|e| reading(url, "images", tenant, &e))?;
    rows.first()
        .map(|row| image_from_row(row, url, tenant))
        .transpose()
}

fn entry_from_row(row: &Row, url: &str, tenant: &TenantId) -> Result<Entry, JournalError> {
    let seq = seq_from_row(row, url, tenant)?;
    let corrupt = |reason: String| JournalError::Corrupt {
        tenant: tenant.as_str().to_owned(),
        seq: JournalSeq::new(seq),
        reason: format!("{url}: {reason}"),
    };
    let unreadable = |column: &str, e: postgres::Error| {
        corrupt(format!("unreadable {column}: {}", describe(&e)))
    };
    let at: i64 = row.try_get(1).map_err(|e| unreadable("time", e))?;
    let kind: String = row.try_get(2).map_err(|e| unreadable("kind", e))?;
    let payload: Vec<u8> = row.try_get(3).map_err(|e| unreadable("payload", e))?;
    let stored: i64 = row.try_get(4).map_err(|e| unreadable("checksum", e))?;
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

fn image_from_row(row: &Row, url: &str, tenant: &TenantId) -> Result<Image, JournalError> {
    let seq = seq_from_row(row, url, tenant)?;
    let corrupt = |reason: String| JournalError::Corrupt {
        tenant: tenant.as_str().to_owned(),
        seq: JournalSeq::new(seq),
        reason: format!("{url}: {reason}"),
    };
    let unreadable = |column: &str, e: postgres::Error| {
        corrupt(format!("unreadable image {column}: {}", describe(&e)))
    };
    let at: i64 = row.try_get(1).map_err(|e| unreadable("time", e))?;
    let label: Option<String> = row.try_get(2).map_err(|e| unreadable("name", e))?;
    let payload: Vec<u8> = row.try_get(3).map_err(|e| unreadable("payload", e))?;
    let stored: i64 = row.try_get(4).map_err(|e| unreadable("checksum", e))?;
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
fn seq_from_row(row: &Row, url: &str, tenant: &TenantId) -> Result<u64, JournalError> {
    let corrupt = |reason: String| JournalError::Corrupt {
        tenant: tenant.as_str().to_owned(),
        seq: JournalSeq::ZERO,
        reason: format!("{url}: {reason}"),
    };
    let seq: i64 = row
        .try_get(0)
        .map_err(|e| corrupt(format!("unreadable seq: {}", describe(&e))))?;
    u64::try_from(seq).map_err(|_| corrupt(format!("negative seq {seq}")))
}

/// `seq` as PostgreSQL stores it.
fn storable(url: &str, tenant: &str, seq: u64) -> Result<i64, JournalError> {
    i64::try_from(seq).map_err(|_| {
        JournalError::Storage(format!(
            "PostgreSQL at {url}: storing tenant '{tenant}': seq {seq} exceeds the journal's \
             largest seq {}",
            i64::MAX
        ))
    })
}

/// A failed read: storage, naming the database and the tenant.
fn reading(url: &str, what: &str, tenant: &TenantId, error: &postgres::Error) -> JournalError {
    storage(url, &format!("reading {what} of tenant '{tenant}'"), error)
}

/// Sets or clears the resume mark of `tenant` (of `shard`) in a
/// transaction of its own. With a fence, only while the fence still owns
/// the shard (its lease row share-locked meanwhile): a node that lost the
/// lease changes nothing and gets `Fenced`.
pub(super) fn set_mark(
    session: &mut Session,
    url: &str,
    tenant: &TenantId,
    shard: u32,
    fence: Option<&Fence>,
    marked: bool,
) -> Result<(), JournalError> {
    let marking = |e: postgres::Error| storage(url, "marking a tenant to resume", &e);
    session.batch("BEGIN").map_err(marking)?;
    let outcome = write_mark(session, url, tenant, shard, fence, marked);
    let ended = match outcome {
        Ok(()) => session.batch("COMMIT"),
        Err(_) => session.batch("ROLLBACK"),
    };
    outcome?;
    ended.map_err(marking)
}

fn write_mark(
    session: &mut Session,
    url: &str,
    tenant: &TenantId,
    shard: u32,
    fence: Option<&Fence>,
    marked: bool,
) -> Result<(), JournalError> {
    let marking = |e: postgres::Error| storage(url, "marking a tenant to resume", &e);
    if let Some(fence) = fence {
        let held = fences_hold(session, &[(shard, fence)]).map_err(marking)?;
        if !held.first().copied().unwrap_or(false) {
            return Err(JournalError::Fenced {
                shard,
                epoch: fence.epoch,
            });
        }
    }
    let shard = i32::try_from(shard).unwrap_or(i32::MAX);
    if marked {
        session.execute(
            "INSERT INTO rewind_marks (tenant, shard) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING",
            &[&tenant.as_str(), &shard],
        )
    } else {
        session.execute(
            "DELETE FROM rewind_marks WHERE tenant = $1",
            &[&tenant.as_str()],
        )
    }
    .map_err(marking)?;
    Ok(())
}

/// The marked tenants (of `shard`, if given), ordered by id.
pub(super) fn marks(
    session: &mut Session,
    url: &str,
    shard: Option<u32>,
) -> Result<Vec<TenantId>, JournalError> {
    let listing = |e: postgres::Error| storage(url, "listing resume marks", &e);
    let rows = match shard {
        None => session.query("SELECT tenant FROM rewind_marks ORDER BY tenant", &[]),
        Some(shard) => {
            let shard = i32::try_from(shard).unwrap_or(i32::MAX);
            session.query(
                "SELECT tenant FROM rewind_marks WHERE shard = $1 ORDER BY tenant",
                &[&shard],
            )
        }
    }
    .map_err(listing)?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0).map_err(listing)?;
            TenantId::new(&id).map_err(|e| JournalError::Corrupt {
                tenant: id.clone(),
                seq: JournalSeq::ZERO,
                reason: format!("{url}: a marked tenant id is invalid: {e}"),
            })
        })
        .collect()
}
