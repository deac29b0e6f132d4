//! `SqliteJournal` beyond the trait's contract: restarts, group commit, the
//! `Buffered` mode, and bad files (garbage, truncation, damaged records, a
//! schema from the future) which must give typed errors, never panics.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fixtures::{entries, entry, image, seqs, tenant, ScratchDir};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rewind_runtime::metrics::JOURNAL_BATCH_RECORDS;
use rewind_runtime::{ImageQuery, Journal, JournalError, JournalSeq};
use rewind_store::{SqliteJournal, SqliteOptions, SyncMode};

fn open(path: &Path) -> SqliteJournal {
    SqliteJournal::open(path, SqliteOptions::default()).expect("open journal")
}

/// A raw connection to the file, as a tool or an attacker would have.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

/// The recorder of this test binary, installed once. Only `group_commit`
/// takes snapshots (they drain histograms).
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("install the debugging recorder");
        snapshotter
    })
}

/// Asserts a storage error whose message names the file.
fn assert_names_file<T: std::fmt::Debug>(outcome: Result<T, JournalError>, path: &Path) {
    match outcome {
        Err(JournalError::Storage(message)) => assert!(
            message.contains(&path.display().to_string()),
            "the error should name {}: {message}",
            path.display()
        ),
        other => panic!("expected a storage error naming the file, got {other:?}"),
    }
}

#[tokio::test]
async fn reopening_after_drop_or_close_keeps_everything() {
    let dir = ScratchDir::new("reopen");
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    {
        let journal = open(&dir.journal());
        journal.append(entries("acme", 1..=5)).await.unwrap();
        journal.append(entries("globex", 1..=2)).await.unwrap();
        journal
            .save_image(image("acme", 3, 300, Some("v1")))
            .await
            .unwrap();
        journal.delete_up_to(&acme, 2.into()).unwrap();
    } // dropped
    {
        let journal = open(&dir.journal());
        assert_eq!(
            journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
            entries("acme", 3..=5)
        );
        assert_eq!(journal.highest_seq(&acme).unwrap(), 5);
        journal.append(entries("globex", 3..=3)).await.unwrap();
        journal
            .save_image(image("globex", 3, 310, None))
            .await
            .unwrap();
        journal.close().unwrap();
    }
    let journal = open(&dir.journal());
    assert_eq!(journal.tenants().unwrap(), [acme.clone(), globex.clone()]);
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 3..=5)
    );
    assert_eq!(
        journal.read(&globex, 1.into(), (u64::MAX).into()).unwrap(),
        entries("globex", 1..=3)
    );
    assert_eq!(journal.highest_seq(&globex).unwrap(), 3);
    assert_eq!(
        journal
            .load_image(&acme, &ImageQuery::Named("v1".into()))
            .unwrap(),
        Some(image("acme", 3, 300, Some("v1")))
    );
    assert_eq!(
        journal.load_image(&globex, &ImageQuery::Latest).unwrap(),
        Some(image("globex", 3, 310, None))
    );
    // The sequence rule holds across restarts.
    let reused = journal.append(vec![entry("acme", 5)]).await;
    assert!(
        matches!(reused, Err(JournalError::OutOfSequence { .. })),
        "{reused:?}"
    );
}

/// 256 writers append at once while a raw connection holds SQLite's write
/// lock, so every append is queued before the writer can commit: the writer
/// must then take them all in (at most) two transactions, not 256.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_batches_concurrent_appends_of_all_tenants() {
    let snapshotter = snapshotter();
    let dir = ScratchDir::new("group-commit");
    let journal = Arc::new(open(&dir.journal()));
    let before = journal.commits();

    let lock = raw(&dir.journal());
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (queued, mut all_queued) = tokio::sync::mpsc::channel(256);
    let mut writers = Vec::new();
    for i in 0..256 {
        let journal = journal.clone();
        let queued = queued.clone();
        writers.push(tokio::spawn(async move {
            let durable = journal.append(vec![entry(&format!("tenant-{i}"), 1)]);
            queued.send(()).await.unwrap();
            durable.await
        }));
    }
    for _ in 0..256 {
        all_queued.recv().await.unwrap();
    }
    lock.execute_batch("COMMIT").unwrap();
    for writer in writers {
        writer.await.unwrap().expect("durable");
    }

    let commits = journal.commits() - before;
    assert!(
        (1..=2).contains(&commits),
        "{commits} commits for 256 appends"
    );
    for i in 0..256 {
        let tenant = tenant(&format!("tenant-{i}"));
        assert_eq!(
            seqs(&journal.read(&tenant, 1.into(), (u64::MAX).into()).unwrap()),
            [1]
        );
    }
    // The same seen through the metric (other tests of this binary may add
    // samples, never remove any).
    let batches: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == JOURNAL_BATCH_RECORDS)
        .flat_map(|(.., value)| match value {
            DebugValue::Histogram(values) => values.into_iter().map(|v| v.0).collect(),
            _ => Vec::new(),
        })
        .collect();
    let largest = batches.iter().copied().fold(0.0, f64::max);
    assert!(
        largest >= 128.0,
        "largest commit held {largest} records: {batches:?}"
    );
    assert!(batches.iter().sum::<f64>() >= 256.0, "{batches:?}");
}

/// The same pile-up with `max_batch` 16: commits stay within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_batch_bounds_each_commit() {
    let dir = ScratchDir::new("max-batch");
    let options = SqliteOptions {
        mode: SyncMode::Sync,
        max_batch: 16,
    };
    let journal = Arc::new(SqliteJournal::open(dir.journal(), options).unwrap());
    let before = journal.commits();

    let lock = raw(&dir.journal());
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let durables: Vec<_> = (0..256)
        .map(|i| journal.append(vec![entry(&format!("tenant-{i}"), 1)]))
        .collect();
    lock.execute_batch("COMMIT").unwrap();
    for durable in durables {
        durable.await.expect("durable");
    }
    // The first commit takes what was queued when the writer woke (1 to
    // 16), then full groups of 16.
    let commits = journal.commits() - before;
    assert!((16..=17).contains(&commits), "{commits} commits");
}

/// Many tasks, many tenants, several appends each, no tricks: everything
/// acknowledged is stored, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_lose_nothing() {
    let dir = ScratchDir::new("concurrent");
    let journal = Arc::new(open(&dir.journal()));
    let writers: Vec<_> = (0..32)
        .map(|t| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let id = format!("tenant-{t}");
                for seq in 1..=8 {
                    journal.append(vec![entry(&id, seq)]).await?;
                }
                Ok::<_, JournalError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap().unwrap();
    }
    for t in 0..32 {
        let id = format!("tenant-{t}");
        assert_eq!(
            journal
                .read(&tenant(&id), 1.into(), (u64::MAX).into())
                .unwrap(),
            entries(&id, 1..=8)
        );
    }
}

#[tokio::test]
async fn buffered_appends_are_acknowledged_at_once_and_committed_by_flush() {
    let dir = ScratchDir::new("buffered");
    // An interval no test outlives: only flush, a deletion or the end of
    // the journal commits.
    let options = SqliteOptions {
        mode: SyncMode::Buffered {
            interval: Duration::from_secs(3600),
        },
        ..SqliteOptions::default()
    };
    let acme = tenant("acme");
    let journal = SqliteJournal::open(dir.journal(), options).unwrap();

    let durable = journal.append(entries("acme", 1..=3));
    // Ready without the writer: the first poll resolves it.
    assert!(matches!(futures_poll_once(durable), Some(Ok(()))));
    assert!(
        journal
            .read(&acme, 1.into(), (u64::MAX).into())
            .unwrap()
            .is_empty(),
        "not yet committed"
    );
    journal.flush().await.unwrap();
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 1..=3)
    );

    // A deletion waits for the writes queued before it.
    journal.append(entries("acme", 4..=6)).await.unwrap();
    journal.delete_up_to(&acme, 4.into()).unwrap();
    assert_eq!(
        seqs(&journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap()),
        [5, 6]
    );

    // A refused batch was acknowledged, so the next flush reports it, once.
    journal.append(vec![entry("acme", 9)]).await.unwrap();
    let flushed = journal.flush().await;
    assert!(
        matches!(
            flushed,
            Err(JournalError::OutOfSequence {
                seq: JournalSeq(9),
                highest: JournalSeq(6),
                ..
            })
        ),
        "{flushed:?}"
    );
    journal.flush().await.unwrap();

    // Dropping the journal commits what is queued.
    journal.append(entries("acme", 7..=8)).await.unwrap();
    drop(journal);
    let journal = open(&dir.journal());
    assert_eq!(
        seqs(&journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap()),
        [5, 6, 7, 8]
    );
}

/// Polls `future` once with a no-op waker.
fn futures_poll_once<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Some(output),
        std::task::Poll::Pending => None,
    }
}

#[test]
fn a_garbage_file_is_a_storage_error_naming_it() {
    let dir = ScratchDir::new("garbage");
    let path = dir.journal();
    // Not a database, of a few sizes (under and over SQLite's 100-byte
    // header and one page).
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for size in [5, 100, 4096, 65536] {
        let garbage: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(&path, &garbage).unwrap();
        assert_names_file(SqliteJournal::open(&path, SqliteOptions::default()), &path);
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "left as it was");
    }
    std::fs::write(&path, b"just some text, not SQLite at all\n").unwrap();
    assert_names_file(SqliteJournal::open(&path, SqliteOptions::default()), &path);
}

#[tokio::test]
async fn a_truncated_file_is_a_storage_error_naming_it() {
    let dir = ScratchDir::new("truncated");
    let path = dir.journal();
    let tenants: Vec<String> = (0..40).map(|t| format!("tenant-{t}")).collect();
    {
        let journal = open(&path);
        for id in &tenants {
            let mut batch = entries(id, 1..=20);
            for e in &mut batch {
                e.payload = vec![b'x'; 300];
            }
            journal.append(batch).await.unwrap();
        }
        journal.close().unwrap();
    }
    assert!(
        !dir.path().join("journal.db-wal").exists(),
        "a clean close folds the WAL into the file"
    );
    let length = std::fs::metadata(&path).unwrap().len();
    assert!(
        length > 100_000,
        "{length} bytes: too small to truncate usefully"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length / 2)
        .unwrap();

    // SQLite notices the file is shorter than its header says on the first
    // read, so opening fails; were it to open, reading must fail instead.
    match SqliteJournal::open(&path, SqliteOptions::default()) {
        Err(error) => assert_names_file::<()>(Err(error), &path),
        Ok(journal) => {
            let failure = tenants
                .iter()
                .map(|id| journal.read(&tenant(id), 1.into(), (u64::MAX).into()))
                .find(Result::is_err)
                .expect("a read past the truncation fails");
            assert_names_file(failure, &path);
        }
    }
}

#[tokio::test]
async fn a_damaged_record_is_corrupt_naming_tenant_and_seq_and_others_still_read() {
    let dir = ScratchDir::new("damaged");
    let path = dir.journal();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    {
        let journal = open(&path);
        journal.append(entries("acme", 1..=3)).await.unwrap();
        journal.append(entries("globex", 1..=3)).await.unwrap();
        journal
            .save_image(image("globex", 3, 30, Some("v1")))
            .await
            .unwrap();
        journal.close().unwrap();
    }
    {
        // One flipped payload byte of globex #2, one of globex's image name.
        let raw = raw(&path);
        let mut payload: Vec<u8> = raw
            .query_row(
                "SELECT payload FROM entries WHERE tenant = 'globex' AND seq = 2",
                [],
                |row| row.get(0),
            )
            .unwrap();
        payload[0] ^= 0x01;
        raw.execute(
            "UPDATE entries SET payload = ?1 WHERE tenant = 'globex' AND seq = 2",
            [&payload],
        )
        .unwrap();
        raw.execute("UPDATE images SET name = 'v2' WHERE tenant = 'globex'", [])
            .unwrap();
    }

    let journal = open(&path);
    match journal.read(&globex, 1.into(), (u64::MAX).into()) {
        Err(JournalError::Corrupt {
            tenant,
            seq,
            reason,
        }) => {
            assert_eq!((tenant.as_str(), seq.get()), ("globex", 2));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The undamaged records of the tenant and the other tenant read fine.
    assert_eq!(
        journal.read(&globex, 1.into(), 1.into()).unwrap(),
        entries("globex", 1..=1)
    );
    assert_eq!(
        journal.read(&globex, 3.into(), 3.into()).unwrap(),
        entries("globex", 3..=3)
    );
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 1..=3)
    );
    match journal.load_image(&globex, &ImageQuery::Latest) {
        Err(JournalError::Corrupt { tenant, seq, .. }) => {
            assert_eq!((tenant.as_str(), seq.get()), ("globex", 3));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    journal.close().unwrap();

    // A payload of the wrong type is corrupt too, not a panic.
    raw(&path)
        .execute(
            "UPDATE entries SET payload = 'text' WHERE tenant = 'acme' AND seq = 3",
            [],
        )
        .unwrap();
    let journal = open(&path);
    assert!(matches!(
        journal.read(&acme, 1.into(), (u64::MAX).into()),
        Err(JournalError::Corrupt {
            seq: JournalSeq(3),
            ..
        })
    ));
}

#[test]
fn a_schema_from_the_future_is_refused_and_left_alone() {
    let dir = ScratchDir::new("future");
    let path = dir.journal();
    open(&path).close().unwrap();
    raw(&path)
        .execute(
            "UPDATE meta SET value = '999' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();

    match SqliteJournal::open(&path, SqliteOptions::default()) {
        Err(JournalError::SchemaTooNew {
            path: named,
            found,
            supported,
        }) => {
            assert_eq!(named, path.display().to_string());
            assert_eq!((found, supported), (999, SqliteJournal::SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let version: String = raw(&path)
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, "999");
}

#[test]
fn another_sqlite_database_is_not_taken_for_a_journal() {
    let dir = ScratchDir::new("foreign");
    let path = dir.journal();
    raw(&path)
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
        .unwrap();
    assert_names_file(SqliteJournal::open(&path, SqliteOptions::default()), &path);

    let missing_dir = dir.path().join("no-such-dir").join("journal.db");
    assert_names_file(
        SqliteJournal::open(&missing_dir, SqliteOptions::default()),
        &missing_dir,
    );
}

#[test]
fn a_fresh_file_records_the_schema_version_and_wal_mode() {
    let dir = ScratchDir::new("fresh");
    let path = dir.journal();
    let journal = open(&path);
    let raw = raw(&path);
    let version: String = raw
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, SqliteJournal::SCHEMA_VERSION.to_string());
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(raw);
    journal.close().unwrap();
}
