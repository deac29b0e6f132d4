//! `PgJournal` beyond the trait's contract: fencing by shard leases, scoped
//! listings, the schema and shard-count checks, an unreachable server,
//! damaged rows, dropped connections and group commit.
//!
//! Each test takes a fresh database of one throwaway PostgreSQL server per
//! test binary; where PostgreSQL is not installed they skip with a loud
//! line (`REWIND_REQUIRE_POSTGRES=1` makes that a failure). Every test body
//! is async: the journal must work from inside a tokio runtime.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use fixtures::{entries, entry, image, seqs, tenant};
use rewind_core::TenantId;
use rewind_runtime::{Entry, EntryKind, ImageQuery, Journal, JournalError, JournalSeq};
use rewind_store::testing::{print_skipped, PgServer};
use rewind_store::{shard_of, Fence, PgOptions, PgStore};

/// The PostgreSQL server of this test binary, started at its first use.
fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER.get_or_init(PgServer::start).as_ref()
}

/// The server, or skip the test (with the loud line).
macro_rules! server_or_skip {
    () => {
        match server() {
            Some(server) => server,
            None => {
                print_skipped();
                return;
            }
        }
    };
}

/// Shards of the tests that pick tenants by shard.
const SHARDS: u32 = 4;

fn options(shards: u32) -> PgOptions {
    PgOptions {
        shards,
        ..PgOptions::default()
    }
}

fn connect(url: &str, shards: u32) -> PgStore {
    PgStore::connect(url, options(shards)).expect("connect to the test database")
}

/// The first id `<prefix>-<n>` whose shard (of [`SHARDS`]) is `shard`.
fn tenant_in(shard: u32, prefix: &str) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| shard_of(&tenant(id), SHARDS) == shard)
        .expect("some id lands in every shard")
}

/// Gives `shard`'s lease to `owner` at `epoch`, as a lease holder would.
fn lease(server: &PgServer, db: &str, shard: u32, owner: &str, epoch: u64) {
    server.execute(
        db,
        &format!(
            "UPDATE rewind_shards SET owner = '{owner}', epoch = {epoch} WHERE shard = {shard}"
        ),
    );
}

fn fence(node: &str, epoch: u64) -> Fence {
    Fence {
        node: node.to_owned(),
        epoch,
    }
}

fn everything(journal: &impl Journal, id: &str) -> Vec<Entry> {
    journal
        .read(&tenant(id), JournalSeq::ZERO, JournalSeq::new(u64::MAX))
        .expect("read")
}

fn assert_fenced<T: std::fmt::Debug>(outcome: Result<T, JournalError>, shard: u32, epoch: u64) {
    match outcome {
        Err(JournalError::Fenced {
            shard: refused,
            epoch: carried,
        }) => assert_eq!((refused, carried), (shard, epoch)),
        other => panic!("expected Fenced {{ shard: {shard}, epoch: {epoch} }}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stale_fence_stores_nothing_while_other_writes_commit() {
    let server = server_or_skip!();
    let db = "stale_fence";
    let store = connect(&server.create_database(db), SHARDS);
    let shard = 1;
    let (fenced_id, other_id) = (tenant_in(shard, "fenced"), tenant_in(2, "other"));
    lease(server, db, shard, "node-a", 3);

    let stale = store.shard_journal(shard, fence("node-a", 2));
    let unscoped = store.journal();
    // Queued back to back: the writer takes both into one transaction as a
    // rule; either way the fenced write fails alone.
    let refused = stale.append(entries(&fenced_id, 1..=2));
    let free = unscoped.append(entries(&other_id, 1..=1));
    let (refused, free) = tokio::join!(refused, free);
    assert_fenced(refused, shard, 2);
    free.expect("the unscoped write commits");
    assert!(everything(&unscoped, &fenced_id).is_empty());
    assert_eq!(unscoped.highest_seq(&tenant(&fenced_id)).unwrap(), 0);
    assert_eq!(everything(&unscoped, &other_id), entries(&other_id, 1..=1));
    assert_eq!(unscoped.tenants().unwrap(), [tenant(&other_id)]);

    // Another node at the right epoch is no owner either.
    let stranger = store.shard_journal(shard, fence("node-b", 3));
    assert_fenced(stranger.append(entries(&fenced_id, 1..=1)).await, shard, 3);

    // Every kind of write is fenced.
    let owner = store.shard_journal(shard, fence("node-a", 3));
    owner
        .append(entries(&fenced_id, 1..=3))
        .await
        .expect("the owner at its epoch writes");
    owner
        .save_image(image(&fenced_id, 3, 30, Some("v1")))
        .await
        .expect("the owner saves an image");
    assert_fenced(
        stale
            .save_image(image(&fenced_id, 3, 31, Some("forged")))
            .await,
        shard,
        2,
    );
    assert_fenced(stale.delete_up_to(&tenant(&fenced_id), 3.into()), shard, 2);
    assert_fenced(stale.delete_image(&tenant(&fenced_id), 3.into()), shard, 2);
    assert_eq!(
        everything(&owner, &fenced_id),
        entries(&fenced_id, 1..=3),
        "nothing of the fenced writes happened"
    );
    assert_eq!(
        owner
            .load_image(&tenant(&fenced_id), &ImageQuery::Latest)
            .unwrap(),
        Some(image(&fenced_id, 3, 30, Some("v1")))
    );
    // A fenced write in the same transaction as a good one of the same
    // shard: the good one commits.
    let refused = stale.append(vec![entry(&fenced_id, 4)]);
    let written = owner.append(vec![entry(&fenced_id, 4)]);
    let (refused, written) = tokio::join!(refused, written);
    assert_fenced(refused, shard, 2);
    written.expect("the owner's write commits");
    assert_eq!(seqs(&everything(&owner, &fenced_id)), [1, 2, 3, 4]);
    owner.flush().await.unwrap();
    store.close().unwrap();
}

#[tokio::test]
async fn a_takeover_fences_the_old_owner() {
    let server = server_or_skip!();
    let db = "takeover";
    let store = connect(&server.create_database(db), SHARDS);
    let shard = 3;
    let id = tenant_in(shard, "moving");
    lease(server, db, shard, "node-a", 1);
    let old = store.shard_journal(shard, fence("node-a", 1));
    old.append(entries(&id, 1..=1)).await.unwrap();

    // node-b takes the shard over: the epoch grows.
    server.execute(
        db,
        &format!(
            "UPDATE rewind_shards SET owner = 'node-b', epoch = epoch + 1 WHERE shard = {shard}"
        ),
    );
    assert_fenced(old.append(vec![entry(&id, 2)]).await, shard, 1);
    let new = store.shard_journal(shard, fence("node-b", 2));
    new.append(vec![entry(&id, 2)])
        .await
        .expect("the new owner continues the tenant");
    assert_eq!(everything(&new, &id), entries(&id, 1..=2));

    // node-a acquires it again, at a new epoch: both earlier fences fail.
    lease(server, db, shard, "node-a", 3);
    assert_fenced(old.append(vec![entry(&id, 3)]).await, shard, 1);
    assert_fenced(new.append(vec![entry(&id, 3)]).await, shard, 2);
    let again = store.shard_journal(shard, fence("node-a", 3));
    again.append(vec![entry(&id, 3)]).await.unwrap();
    assert_eq!(seqs(&everything(&again, &id)), [1, 2, 3]);
}

#[tokio::test]
async fn a_scoped_journal_lists_and_writes_only_its_shard() {
    let server = server_or_skip!();
    let db = "scoped_listing";
    let store = connect(&server.create_database(db), SHARDS);
    for shard in 0..SHARDS {
        lease(server, db, shard, "node-a", 1);
    }
    let journals: Vec<_> = (0..SHARDS)
        .map(|shard| store.shard_journal(shard, fence("node-a", 1)))
        .collect();
    let mut expected: BTreeMap<u32, Vec<TenantId>> = BTreeMap::new();
    for n in 0..24 {
        let id = format!("t{n:02}");
        let shard = shard_of(&tenant(&id), SHARDS);
        journals[shard as usize]
            .append(entries(&id, 1..=2))
            .await
            .unwrap();
        expected.entry(shard).or_default().push(tenant(&id));
    }
    // A deleted tenant of shard 0 is listed, but not as live.
    let gone = tenant_in(0, "gone");
    let delete = Entry {
        kind: EntryKind::Delete,
        ..entry(&gone, 2)
    };
    journals[0]
        .append(vec![entry(&gone, 1), delete])
        .await
        .unwrap();
    for (shard, journal) in journals.iter().enumerate() {
        let shard = shard as u32;
        let mut live = expected.get(&shard).cloned().unwrap_or_default();
        live.sort();
        assert_eq!(journal.live_tenants().unwrap(), live, "shard {shard}");
        let mut all = live.clone();
        if shard == 0 {
            all.push(tenant(&gone));
            all.sort();
        }
        assert_eq!(journal.tenants().unwrap(), all, "shard {shard}");
        assert_eq!(journal.shard(), Some(shard));
    }
    let unscoped = store.journal();
    assert_eq!(unscoped.tenants().unwrap().len(), 25);
    assert_eq!(unscoped.live_tenants().unwrap().len(), 24);

    // Reads of a tenant work through any journal; writes of another
    // shard's tenant are refused as a routing bug and store nothing.
    let stray = tenant_in(1, "stray");
    assert_eq!(journals[0].highest_seq(&tenant("t00")).unwrap(), 2);
    match journals[0].append(entries(&stray, 1..=1)).await {
        Err(JournalError::Storage(message)) => {
            assert!(message.contains("shard 1"), "{message}");
            assert!(message.contains("routing"), "{message}");
        }
        other => panic!("expected a routing refusal, got {other:?}"),
    }
    assert!(matches!(
        journals[0].delete_up_to(&tenant(&stray), 1.into()),
        Err(JournalError::Storage(_))
    ));
    assert_eq!(unscoped.highest_seq(&tenant(&stray)).unwrap(), 0);
}

#[tokio::test]
async fn a_schema_from_the_future_is_refused() {
    let server = server_or_skip!();
    let db = "future_schema";
    let url = server.create_database(db);
    connect(&url, 256).close().unwrap();
    server.execute(
        db,
        "UPDATE rewind_meta SET value = '99' WHERE key = 'schema_version'",
    );
    // A password in the URL is never shown (the test server trusts all).
    let with_password = url.replace("rewind@", "rewind:hunter2@");
    match PgStore::connect(&with_password, PgOptions::default()) {
        Err(JournalError::SchemaTooNew {
            path,
            found,
            supported,
        }) => {
            assert_eq!((found, supported), (99, PgStore::SCHEMA_VERSION));
            assert_eq!(path, url, "the URL without its password");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_different_shard_count_is_refused() {
    let server = server_or_skip!();
    let url = server.create_database("shard_count");
    let store = connect(&url, 256);
    assert_eq!(store.shards(), 256);
    store.close().unwrap();
    match PgStore::connect(&url, options(64)) {
        Err(JournalError::Storage(message)) => {
            assert!(
                message.contains("initialised with 256 shards") && message.contains("--shards 64"),
                "{message}"
            );
        }
        other => panic!("expected a shard count refusal, got {other:?}"),
    }
    // The same count connects again; the schema is there already.
    let again = connect(&url, 256);
    assert_eq!(again.url(), url);
    assert!(matches!(
        PgStore::connect(&url, options(0)),
        Err(JournalError::Storage(_))
    ));
}

#[tokio::test]
async fn concurrent_first_connects_create_the_schema_once() {
    let server = server_or_skip!();
    let url = server.create_database("concurrent_init");
    let connects: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::connect(&url, PgOptions::default()))
        })
        .collect();
    let stores: Vec<PgStore> = connects
        .into_iter()
        .map(|thread| {
            thread
                .join()
                .expect("connect thread")
                .expect("every node connects")
        })
        .collect();
    stores[0]
        .journal()
        .append(entries("acme", 1..=2))
        .await
        .unwrap();
    assert_eq!(stores[5].journal().highest_seq(&tenant("acme")).unwrap(), 2);
}

/// Needs no server: nothing listens on the port.
#[tokio::test]
async fn an_unreachable_server_fails_fast_naming_it() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://rewind:secret@127.0.0.1:{port}/rewind");
    let started = Instant::now();
    match PgStore::connect(&url, PgOptions::default()) {
        Err(JournalError::Storage(message)) => {
            let shown = format!("postgres://rewind@127.0.0.1:{port}/rewind");
            assert!(message.contains(&shown), "{message}");
            assert!(message.contains("unreachable"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        PgStore::connect("postgres://[not a url", PgOptions::default()),
        Err(JournalError::Storage(_))
    ));
}

#[tokio::test]
async fn a_damaged_row_fails_its_tenant_alone() {
    let server = server_or_skip!();
    let db = "damaged_rows";
    let store = connect(&server.create_database(db), 256);
    let journal = store.journal();
    journal.append(entries("acme", 1..=3)).await.unwrap();
    journal.append(entries("globex", 1..=2)).await.unwrap();
    journal.append(entries("initech", 1..=2)).await.unwrap();
    journal
        .save_image(image("acme", 3, 30, Some("v1")))
        .await
        .unwrap();
    server.execute(
        db,
        "UPDATE rewind_entries SET payload = 'tampered'::BYTEA WHERE tenant = 'acme' AND seq = 2;
         UPDATE rewind_images SET name = 'forged' WHERE tenant = 'acme';
         UPDATE rewind_tenants SET highest_seq = -1 WHERE tenant = 'initech';",
    );
    match journal.read(&tenant("acme"), 1.into(), 3.into()) {
        Err(JournalError::Corrupt {
            tenant,
            seq,
            reason,
        }) => {
            assert_eq!((tenant.as_str(), seq.get()), ("acme", 2));
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(
        journal.load_image(&tenant("acme"), &ImageQuery::Latest),
        Err(JournalError::Corrupt { .. })
    ));
    assert!(matches!(
        journal.highest_seq(&tenant("initech")),
        Err(JournalError::Corrupt { .. })
    ));
    // The intact records, and the other tenants, read normally.
    assert_eq!(
        journal.read(&tenant("acme"), 3.into(), 3.into()).unwrap(),
        entries("acme", 3..=3)
    );
    assert_eq!(everything(&journal, "globex"), entries("globex", 1..=2));
    assert_eq!(everything(&journal, "initech"), entries("initech", 1..=2));
    assert_eq!(
        journal.tenants().unwrap(),
        [tenant("acme"), tenant("globex"), tenant("initech")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_reopened_and_nothing_acknowledged_is_lost() {
    let server = server_or_skip!();
    let db = "dropped_connections";
    let store = connect(&server.create_database(db), 256);
    let journal = store.journal();
    journal.append(entries("acme", 1..=3)).await.unwrap();
    assert_eq!(seqs(&everything(&journal, "acme")), [1, 2, 3]);

    // Between appends: the next append and read get new connections.
    for round in 0..3u64 {
        server.kill_connections(db);
        let seq = 4 + round;
        append_until_stored(&journal, "acme", seq).await;
        assert_eq!(journal.highest_seq(&tenant("acme")).unwrap(), seq);
    }
    assert_eq!(seqs(&everything(&journal, "acme")), [1, 2, 3, 4, 5, 6]);

    // While appenders run: every acknowledged entry is there afterwards.
    let writers: Vec<_> = (0..8)
        .map(|n| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let id = format!("writer-{n}");
                for seq in 1..=30 {
                    append_until_stored(&journal, &id, seq).await;
                }
                id
            })
        })
        .collect();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        tokio::task::spawn_blocking(move || server.kill_connections(db))
            .await
            .unwrap();
    }
    for writer in writers {
        let id = writer.await.unwrap();
        assert_eq!(
            everything(&journal, &id),
            entries(&id, 1..=30),
            "every acknowledged entry of {id}, dense"
        );
    }
    store.close().unwrap();
    assert!(matches!(
        journal.append(vec![entry("acme", 7)]).await,
        Err(JournalError::Closed)
    ));
    assert!(matches!(
        journal.read(&tenant("acme"), 1.into(), 1.into()),
        Err(JournalError::Closed)
    ));
}

/// Appends `seq` of `id` until it is stored: a failure (a connection lost
/// at the commit) is tried again, and an `OutOfSequence` saying the entry
/// is there after all (the commit went through unanswered) ends it.
async fn append_until_stored(journal: &impl Journal, id: &str, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match journal.append(vec![entry(id, seq)]).await {
            Ok(()) => return,
            Err(JournalError::OutOfSequence { highest, .. }) if highest.get() >= seq => return,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "{id} #{seq} still fails: {error}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_share_commits() {
    let server = server_or_skip!();
    let store = connect(&server.create_database("group_commit"), 256);
    let journal = Arc::new(store.journal());
    let before = store.commits();
    const WRITERS: u64 = 64;
    const EACH: u64 = 10;
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let id = format!("writer-{n}");
                for seq in 1..=EACH {
                    journal.append(vec![entry(&id, seq)]).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let commits = store.commits() - before;
    assert!(
        commits < WRITERS * EACH,
        "{commits} commits for {} appends",
        WRITERS * EACH
    );
    for n in 0..WRITERS {
        assert_eq!(
            journal
                .highest_seq(&tenant(&format!("writer-{n}")))
                .unwrap(),
            EACH
        );
    }
}

/// Appends queued together commit together; one that does not continue its
/// tenant's sequence (a gap, or a seq stored already) fails alone, and the
/// others of the same commit are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_out_of_sequence_fails_alone_in_a_shared_commit() {
    let server = server_or_skip!();
    let store = connect(&server.create_database("shared_commit"), 256);
    let journal = store.journal();
    journal.append(vec![entry("dup", 1)]).await.unwrap();
    for round in 0..20u64 {
        // Queued without waiting: the writer takes them into one commit.
        let good: Vec<_> = (0..16)
            .map(|n| journal.append(vec![entry(&format!("good-{n}"), round + 1)]))
            .collect();
        let gap = journal.append(vec![entry(&format!("gap-{round}"), 5)]);
        let twice = journal.append(vec![entry("dup", 1)]);
        for durable in good {
            durable.await.unwrap();
        }
        assert!(
            matches!(gap.await, Err(JournalError::OutOfSequence { .. })),
            "a gap is refused"
        );
        assert!(
            matches!(twice.await, Err(JournalError::OutOfSequence { .. })),
            "a seq stored already is refused"
        );
    }
    for n in 0..16 {
        let id = format!("good-{n}");
        assert_eq!(journal.highest_seq(&tenant(&id)).unwrap(), 20);
        assert_eq!(everything(&journal, &id).len(), 20);
    }
    assert_eq!(journal.highest_seq(&tenant("dup")).unwrap(), 1);
    assert_eq!(journal.highest_seq(&tenant("gap-0")).unwrap(), 0);
}

/// A server of its own, stopped under the journal: writes and reads fail
/// with a storage error in bounded time (the writer's reconnect backoff),
/// and nothing hangs.
#[tokio::test]
async fn a_stopped_server_fails_writes_in_bounded_time() {
    if server().is_none() {
        print_skipped();
        return;
    }
    let Some(own) = PgServer::start() else {
        return;
    };
    let store = connect(&own.create_database("stopping"), 256);
    let journal = store.journal();
    journal.append(entries("acme", 1..=2)).await.unwrap();
    own.stop();
    let started = Instant::now();
    match journal.append(vec![entry("acme", 3)]).await {
        Err(JournalError::Storage(message)) => {
            assert!(message.contains(store.url()), "{message}")
        }
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert!(matches!(
        journal.read(&tenant("acme"), 1.into(), 2.into()),
        Err(JournalError::Storage(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    store.close().unwrap();
}

/// Resume marks are fenced like every write of a shard's journal, and a
/// shard's journal lists only its shard's marks.
#[tokio::test]
async fn resume_marks_are_fenced_and_listed_per_shard() {
    let server = server_or_skip!();
    let db = "resume_marks";
    let store = connect(&server.create_database(db), SHARDS);
    let (mine, other) = (tenant_in(1, "deploying"), tenant_in(2, "deploying"));
    lease(server, db, 1, "node-a", 1);
    lease(server, db, 2, "node-b", 1);
    let journal = store.shard_journal(1, fence("node-a", 1));
    journal.set_resume_mark(&tenant(&mine), true).unwrap();
    store
        .shard_journal(2, fence("node-b", 1))
        .set_resume_mark(&tenant(&other), true)
        .unwrap();
    assert_eq!(journal.resume_marks().unwrap(), [tenant(&mine)]);
    assert_eq!(
        store.journal().resume_marks().unwrap().len(),
        2,
        "the unscoped journal lists every shard's"
    );
    // node-b takes shard 1 over: node-a can neither clear nor set.
    lease(server, db, 1, "node-b", 2);
    assert_fenced(journal.set_resume_mark(&tenant(&mine), false), 1, 1);
    let taken = store.shard_journal(1, fence("node-b", 2));
    assert_eq!(taken.resume_marks().unwrap(), [tenant(&mine)]);
    taken.set_resume_mark(&tenant(&mine), false).unwrap();
    assert!(taken.resume_marks().unwrap().is_empty());
    store.close().unwrap();
}
