//! Bad journal data, seen from the runtime: a damaged record, an unknown
//! record kind, a record that decodes but does not replay, a missing entry,
//! a garbage or truncated file, a schema from the future.
//!
//! Each case must give a typed error naming the tenant (and seq) or the
//! file, never a panic and never a silent drop: the damaged tenant answers
//! `Unrecoverable` (and its id cannot be taken by a new tenant), while every
//! other tenant comes back exactly as it was acknowledged and serves writes.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::sync::Arc;

use fixtures::{tenant, ScratchDir};
use rewind_core::{Doc, Patch, RollbackTarget, Timestamp};
use rewind_runtime::{Entry, EntryKind, Error, Journal, JournalError, Runtime};
use rewind_store::{MemoryJournal, SqliteJournal, SqliteOptions};
use serde_json::json;

const HEALTHY: [&str; 2] = ["acme_corp", "initech"];
const DAMAGED: &str = "globex";

fn patch(value: serde_json::Value) -> Patch {
    Patch::from_json(&value).expect("a valid patch")
}

fn open(path: &Path) -> Arc<SqliteJournal> {
    Arc::new(SqliteJournal::open(path, SqliteOptions::default()).expect("open the journal"))
}

async fn start(journal: Arc<dyn Journal>, image_every: u64) -> Runtime<Doc> {
    start_with(journal, image_every, false).await
}

/// `eager`: every tenant read back at start, rather than on its first
/// lookup.
async fn start_with(journal: Arc<dyn Journal>, image_every: u64, eager: bool) -> Runtime<Doc> {
    Runtime::<Doc>::builder()
        .journal(journal)
        .image_every(image_every)
        .eager_recovery(eager)
        .start()
        .await
        .expect("the runtime starts whatever one tenant's journal holds")
}

/// A raw connection to the file, as a tool (or bit rot) would have.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

/// What the healthy tenants acknowledged: each one's whole timeline image.
type Acknowledged = Vec<(String, serde_json::Value)>;

async fn image_json(runtime: &Runtime<Doc>, id: &str) -> serde_json::Value {
    let timeline = runtime.tenant(id).await.expect("the tenant").timeline();
    serde_json::to_value(timeline.to_image().expect("an image")).expect("image JSON")
}

/// Three tenants with a few changes, a named snapshot and a rollback each;
/// returns what the healthy ones hold.
async fn workload(runtime: &Runtime<Doc>) -> Acknowledged {
    for id in HEALTHY.iter().chain([&DAMAGED]) {
        let tenant = runtime
            .create_tenant(id, Doc::from_json(&json!({"n": 0})).unwrap())
            .await
            .unwrap();
        for i in 1..=6 {
            tenant
                .apply(patch(json!([
                    {"op": "replace", "path": "/n", "value": i},
                    {"op": "add", "path": format!("/k{i}"), "value": format!("{id} {i}")}
                ])))
                .await
                .unwrap();
        }
        tenant.snapshot_named("v1").await.unwrap();
        tenant
            .apply(patch(json!([{"op": "remove", "path": "/k1"}])))
            .await
            .unwrap();
        tenant
            .rollback(RollbackTarget::named("v1").unwrap())
            .await
            .unwrap();
    }
    let mut images = Vec::new();
    for id in HEALTHY {
        images.push((id.to_owned(), image_json(runtime, id).await));
    }
    images
}

/// Writes a journal file with the workload; returns what was acknowledged.
async fn write_file(path: &Path, image_every: u64) -> Acknowledged {
    let journal = open(path);
    let runtime = start(journal, image_every).await;
    let acknowledged = workload(&runtime).await;
    runtime.shutdown().await.unwrap();
    acknowledged
}

/// Writes the workload into `journal`; returns what was acknowledged.
async fn write_memory(journal: &Arc<MemoryJournal>) -> Acknowledged {
    let runtime = start(Arc::clone(journal) as Arc<dyn Journal>, 1000).await;
    let acknowledged = workload(&runtime).await;
    runtime.shutdown().await.unwrap();
    acknowledged
}

/// The damaged tenant fails to be read back (at start when the runtime
/// recovers eagerly, else at its first lookup) with an error `expected`
/// accepts and is refused everywhere; every healthy tenant is back as
/// acknowledged and serves writes.
async fn assert_only_damaged_lost(
    runtime: &Runtime<Doc>,
    acknowledged: &Acknowledged,
    expected: impl Fn(&JournalError) -> bool,
) {
    let report = runtime.recovery();
    let eager = !report.failures.is_empty();
    if eager {
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert_eq!(report.failures[0].0.as_str(), DAMAGED);
        assert_eq!(report.tenants, HEALTHY.len());
    } else {
        // Found in the journal, read back on demand.
        assert_eq!(report.tenants, HEALTHY.len() + 1);
    }

    let error = match runtime.tenant(DAMAGED).await {
        Err(Error::Unrecoverable { tenant, source }) => {
            assert_eq!(tenant.as_str(), DAMAGED);
            source
        }
        other => panic!(
            "expected Unrecoverable, got {:?}",
            other.map(|t| t.revision())
        ),
    };
    assert!(
        expected(&error),
        "unexpected error for {DAMAGED}: {error:?}"
    );
    assert!(
        error.to_string().contains(DAMAGED),
        "the message names the tenant: {error}"
    );
    if eager {
        assert_eq!(report.failures[0].1.to_string(), error.to_string());
    }
    // It stays failed, with the same error, without reading it again.
    match runtime.tenant(DAMAGED).await {
        Err(Error::Unrecoverable { source, .. }) => {
            assert_eq!(source.to_string(), error.to_string())
        }
        other => panic!(
            "expected Unrecoverable, got {:?}",
            other.map(|t| t.revision())
        ),
    }
    // Its id cannot be taken over: that would silently drop its history.
    match runtime.create_tenant(DAMAGED, Doc::object()).await {
        Err(Error::Unrecoverable { tenant, .. }) => assert_eq!(tenant.as_str(), DAMAGED),
        other => panic!(
            "expected Unrecoverable, got {:?}",
            other.map(|t| t.revision())
        ),
    }
    match runtime.tenant_or_create(DAMAGED, Doc::object).await {
        Err(Error::Unrecoverable { .. }) => {}
        other => panic!(
            "expected Unrecoverable, got {:?}",
            other.map(|t| t.revision())
        ),
    }

    // Still listed (it exists, and its id stays taken), with no revision.
    let listed: Vec<(String, bool)> = runtime
        .tenants()
        .iter()
        .map(|(id, revision)| (id.to_string(), revision.is_some()))
        .collect();
    let mut ids: Vec<&str> = HEALTHY.iter().copied().chain([DAMAGED]).collect();
    ids.sort();
    assert_eq!(
        listed.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ids
    );
    assert!(listed.iter().any(|(id, known)| id == DAMAGED && !known));
    for (id, image) in acknowledged {
        assert_eq!(
            &image_json(runtime, id).await,
            image,
            "tenant {id} is intact"
        );
        let tenant = runtime.tenant(id).await.unwrap();
        let head = tenant.revision();
        let commit = tenant
            .apply(patch(
                json!([{"op": "add", "path": "/after", "value": true}]),
            ))
            .await
            .expect("a healthy tenant serves writes");
        assert_eq!(commit.revision, head.next());
        assert_eq!(tenant.current()["after"], true);
    }
}

fn corrupt_at(seq: u64, reason_contains: &'static str) -> impl Fn(&JournalError) -> bool {
    move |error| {
        matches!(error, JournalError::Corrupt { tenant, seq: at, reason }
            if tenant == DAMAGED && *at == seq && reason.contains(reason_contains))
    }
}

#[tokio::test]
async fn a_damaged_entry_fails_its_tenant_only() {
    for eager in [false, true] {
        damaged_entry(eager).await;
    }
}

async fn damaged_entry(eager: bool) {
    let dir = ScratchDir::new(if eager {
        "rt-damaged-entry-eager"
    } else {
        "rt-damaged-entry"
    });
    let path = dir.journal();
    let acknowledged = write_file(&path, 1000).await;
    {
        // One flipped payload byte of the damaged tenant's third entry; the
        // checksum is left as it was.
        let raw = raw(&path);
        let mut payload: Vec<u8> = raw
            .query_row(
                "SELECT payload FROM entries WHERE tenant = ?1 AND seq = 3",
                [DAMAGED],
                |row| row.get(0),
            )
            .unwrap();
        let middle = payload.len() / 2;
        payload[middle] ^= 0x20;
        raw.execute(
            "UPDATE entries SET payload = ?1 WHERE tenant = ?2 AND seq = 3",
            rusqlite::params![payload, DAMAGED],
        )
        .unwrap();
    }
    let runtime = start_with(open(&path), 1000, eager).await;
    assert_only_damaged_lost(&runtime, &acknowledged, corrupt_at(3, "checksum")).await;
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_damaged_image_fails_its_tenant_only() {
    let dir = ScratchDir::new("rt-damaged-image");
    let path = dir.journal();
    // An image every 3 entries: recovery starts from the newest image.
    let acknowledged = write_file(&path, 3).await;
    let seq: u64 = {
        let raw = raw(&path);
        let seq: i64 = raw
            .query_row(
                "SELECT max(seq) FROM images WHERE tenant = ?1",
                [DAMAGED],
                |row| row.get(0),
            )
            .unwrap();
        let mut payload: Vec<u8> = raw
            .query_row(
                "SELECT payload FROM images WHERE tenant = ?1 AND seq = ?2",
                rusqlite::params![DAMAGED, seq],
                |row| row.get(0),
            )
            .unwrap();
        let third = payload.len() / 3;
        payload[third] ^= 0x01;
        raw.execute(
            "UPDATE images SET payload = ?1 WHERE tenant = ?2 AND seq = ?3",
            rusqlite::params![payload, DAMAGED, seq],
        )
        .unwrap();
        seq as u64
    };
    let runtime = start(open(&path), 3).await;
    assert_only_damaged_lost(&runtime, &acknowledged, corrupt_at(seq, "checksum")).await;
    runtime.shutdown().await.unwrap();
}

/// Appends `kind` / `payload` as the damaged tenant's next entry, through
/// the journal API (so the record itself is well formed).
async fn append_next(journal: &MemoryJournal, kind: &str, payload: &[u8]) -> u64 {
    let id = tenant(DAMAGED);
    let seq = journal.highest_seq(&id).unwrap().next();
    journal
        .append(vec![Entry {
            tenant: id,
            seq,
            at: Timestamp::now(),
            kind: EntryKind::from_label(kind),
            payload: payload.to_vec(),
        }])
        .await
        .unwrap();
    seq.get()
}

#[tokio::test]
async fn an_unknown_record_kind_fails_its_tenant_only() {
    let journal = Arc::new(MemoryJournal::new());
    let acknowledged = write_memory(&journal).await;
    let seq = append_next(&journal, "frobnicate", b"{}").await;
    let runtime = start(Arc::clone(&journal) as Arc<dyn Journal>, 1000).await;
    assert_only_damaged_lost(&runtime, &acknowledged, |error| {
        matches!(error, JournalError::UnknownKind { tenant, seq: at, kind }
            if tenant == DAMAGED && *at == seq && kind == "frobnicate")
    })
    .await;
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_record_that_decodes_but_does_not_replay_fails_its_tenant_only() {
    let journal = Arc::new(MemoryJournal::new());
    let acknowledged = write_memory(&journal).await;
    let seq = append_next(
        &journal,
        "op",
        br#"{"op":"rollback","target":{"named":"nope"}}"#,
    )
    .await;
    let runtime = start(Arc::clone(&journal) as Arc<dyn Journal>, 1000).await;
    assert_only_damaged_lost(&runtime, &acknowledged, corrupt_at(seq, "does not replay")).await;
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_record_that_does_not_decode_fails_its_tenant_only() {
    let journal = Arc::new(MemoryJournal::new());
    let acknowledged = write_memory(&journal).await;
    let seq = append_next(&journal, "op", br#"{"op":"teleport","to":"mars"}"#).await;
    let runtime = start(Arc::clone(&journal) as Arc<dyn Journal>, 1000).await;
    assert_only_damaged_lost(&runtime, &acknowledged, corrupt_at(seq, "does not decode")).await;
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_missing_entry_in_the_middle_fails_its_tenant_only() {
    let dir = ScratchDir::new("rt-missing-entry");
    let path = dir.journal();
    let acknowledged = write_file(&path, 1000).await;
    let deleted = raw(&path)
        .execute(
            "DELETE FROM entries WHERE tenant = ?1 AND seq = 4",
            [DAMAGED],
        )
        .unwrap();
    assert_eq!(deleted, 1);
    let runtime = start(open(&path), 1000).await;
    assert_only_damaged_lost(&runtime, &acknowledged, corrupt_at(4, "entry missing")).await;
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_missing_last_entry_fails_its_tenant_only() {
    let dir = ScratchDir::new("rt-missing-last");
    let path = dir.journal();
    let acknowledged = write_file(&path, 1000).await;
    let highest: i64 = raw(&path)
        .query_row(
            "SELECT seq FROM highest_seq WHERE tenant = ?1",
            [DAMAGED],
            |row| row.get(0),
        )
        .unwrap();
    raw(&path)
        .execute(
            "DELETE FROM entries WHERE tenant = ?1 AND seq = ?2",
            rusqlite::params![DAMAGED, highest],
        )
        .unwrap();
    let runtime = start(open(&path), 1000).await;
    let expected = corrupt_at(highest as u64, "entry missing");
    assert_only_damaged_lost(&runtime, &acknowledged, expected).await;
    runtime.shutdown().await.unwrap();
}

/// Asserts `SqliteJournal::open` refuses `path` with a storage error naming
/// it, and leaves it as it was.
fn assert_refused_naming(path: &Path) {
    let before = std::fs::read(path).unwrap();
    match SqliteJournal::open(path, SqliteOptions::default()) {
        Err(JournalError::Storage(message)) => assert!(
            message.contains(&path.display().to_string()),
            "the error names {}: {message}",
            path.display()
        ),
        Err(other) => panic!("expected a storage error, got {other:?}"),
        Ok(_) => panic!("{} opened as a journal", path.display()),
    }
    assert_eq!(std::fs::read(path).unwrap(), before, "left as it was");
}

/// Regression: SQLite reports a 1-byte file as empty, so `open` used to
/// take a 1-byte garbage file (or a journal cut down to its first byte) for
/// a new journal and write an empty one over it: no error, every tenant
/// gone. Files shorter than a page are now refused, naming the file.
#[test]
fn a_garbage_file_is_refused_naming_it() {
    let dir = ScratchDir::new("rt-garbage");
    let path = dir.journal();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for size in [1, 2, 99, 100, 511, 512, 4096, 3 * 4096 + 17] {
        let garbage: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(&path, &garbage).unwrap();
        assert_refused_naming(&path);
    }
    // A valid SQLite header over garbage pages.
    let mut garbage = b"SQLite format 3\0".to_vec();
    garbage.resize(8192, 0xa5);
    std::fs::write(&path, &garbage).unwrap();
    assert_refused_naming(&path);
}

#[tokio::test]
async fn a_truncated_file_is_refused_naming_it() {
    let dir = ScratchDir::new("rt-truncated");
    let path = dir.journal();
    {
        let journal = open(&path);
        let runtime = start(Arc::clone(&journal) as Arc<dyn Journal>, 1000).await;
        let big = "x".repeat(400);
        for t in 0..30 {
            let tenant = runtime
                .create_tenant(&format!("tenant-{t}"), Doc::object())
                .await
                .unwrap();
            for i in 0..10 {
                tenant
                    .apply(patch(
                        json!([{"op": "add", "path": format!("/k{i}"), "value": big}]),
                    ))
                    .await
                    .unwrap();
            }
        }
        runtime.shutdown().await.unwrap();
    }
    // Fold the WAL into the file, then keep only the first half of it (the
    // WAL is not copied: the truncated file is all there is).
    raw(&path)
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap();
    let whole = std::fs::read(&path).unwrap();
    assert!(whole.len() > 100_000, "{} bytes: too small", whole.len());
    let truncated = dir.path().join("truncated.db");
    for keep in [whole.len() / 2, 4096 + 100, 50, 1] {
        std::fs::write(&truncated, &whole[..keep]).unwrap();
        match SqliteJournal::open(&truncated, SqliteOptions::default()) {
            Err(JournalError::Storage(message)) => {
                assert!(
                    message.contains(&truncated.display().to_string()),
                    "{message}"
                )
            }
            Err(other) => panic!("expected a storage error, got {other:?}"),
            Ok(journal) => {
                // SQLite may only notice on a read past the cut: the runtime
                // then refuses to start, naming the file, or fails every
                // tenant it cannot read; it never drops one silently.
                let journal: Arc<dyn Journal> = Arc::new(journal);
                match Runtime::<Doc>::builder().journal(journal).start().await {
                    Err(error) => assert!(
                        error.to_string().contains(&truncated.display().to_string()),
                        "{error}"
                    ),
                    Ok(runtime) => {
                        // Every tenant is read back or answers why not.
                        let mut restored = 0;
                        let mut failed = 0;
                        for (id, _) in runtime.tenants() {
                            match runtime.tenant(id.as_str()).await {
                                Ok(_) => restored += 1,
                                Err(Error::Unrecoverable { .. }) => failed += 1,
                                Err(other) => panic!("{id}: {other}"),
                            }
                        }
                        assert_eq!(restored + failed, 30, "every tenant is listed");
                        assert!(failed > 0, "the cut is noticed");
                        runtime.shutdown().await.unwrap();
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn a_schema_from_the_future_is_refused() {
    let dir = ScratchDir::new("rt-future");
    let path = dir.journal();
    let _ = write_file(&path, 1000).await;
    let future = SqliteJournal::SCHEMA_VERSION + 1;
    raw(&path)
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [future.to_string()],
        )
        .unwrap();
    match SqliteJournal::open(&path, SqliteOptions::default()) {
        Err(JournalError::SchemaTooNew {
            path: named,
            found,
            supported,
        }) => {
            assert_eq!(named, path.display().to_string());
            assert_eq!((found, supported), (future, SqliteJournal::SCHEMA_VERSION));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other:?}"),
        Ok(_) => panic!("a journal of schema {future} was opened"),
    }
    let stored: String = raw(&path)
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, future.to_string(), "the file is left alone");
}
