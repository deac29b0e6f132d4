//! Truthful outcomes when the journal fails, on one node with SQLite.
//!
//! The story: a PostgreSQL restart cut `COMMIT`s in flight, and the writes
//! were answered "journal failed, the change was not applied" although
//! they had been committed; a client that believed it and retried applied
//! the change twice. The tenant then "rewound to the last durable state",
//! which was *behind* the journal, and refused every later write as out of
//! sequence while serving reads that missed committed entries.
//!
//! Here a [`FaultyJournal`] around a real SQLite journal fails appends
//! before they are written (nothing stored), after (stored, the answer
//! lost), and goes down altogether. Every write's answer must be the
//! truth: applied, refused with nothing applied, or unknown; the history
//! is checked as Jepsen's Elle checks a list-append workload, and again
//! after a restart on the same file.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fixtures::ScratchDir;
use rewind_core::{CommitMeta, Doc, IdempotencyKey, Patch, Revision};
use rewind_runtime::{Error, ErrorKind, Runtime, Tenant, WriteOptions};
use rewind_store::testing::{Fault, FaultyJournal};
use rewind_store::{SqliteJournal, SqliteOptions};
use serde_json::{json, Value};

async fn start(dir: &ScratchDir) -> (Runtime<Doc>, Arc<FaultyJournal>) {
    let sqlite = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    let faulty = FaultyJournal::new(Arc::new(sqlite));
    let runtime = Runtime::<Doc>::builder()
        .journal(Arc::clone(&faulty) as Arc<dyn rewind_runtime::Journal>)
        .start()
        .await
        .unwrap();
    (runtime, faulty)
}

fn append(value: u64) -> Patch {
    Patch::from_json(&json!([{"op": "add", "path": "/items/-", "value": value}])).unwrap()
}

fn keyed(key: &str, request: u64) -> WriteOptions {
    WriteOptions {
        meta: CommitMeta::default().with_idempotency(IdempotencyKey::new(key, request).unwrap()),
        expected_revision: None,
    }
}

fn items(tenant: &Tenant<Doc>) -> Vec<u64> {
    let value: Value = serde_json::to_value(tenant.current()).unwrap();
    value["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// What a write was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Applied,
    Refused,
    Unknown,
}

fn answer_of(result: &Result<rewind_core::Commit, Error>) -> Answer {
    match result {
        Ok(_) => Answer::Applied,
        Err(e) if e.kind() == ErrorKind::OutcomeUnknown => Answer::Unknown,
        Err(e) => {
            // A refusal must be one that says nothing was applied.
            assert!(
                matches!(e.kind(), ErrorKind::Journal | ErrorKind::Unavailable),
                "unexpected refusal: {e}"
            );
            Answer::Refused
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_append_is_answered_with_the_truth_and_retries_with_the_key_apply_once() {
    let dir = ScratchDir::new("outcomes-story");
    let (runtime, journal) = start(&dir).await;
    let tenant = runtime
        .create_tenant("shop", Doc::from_json(&json!({"items": []})).unwrap())
        .await
        .unwrap();

    // Stored, its answer lost: the tenant reads the journal back and finds
    // it there, so the write is answered as applied.
    journal.plan([Fault::After]);
    let first = tenant.apply(append(1)).await.expect("stored: applied");
    assert_eq!(items(&tenant), [1]);

    // Refused before it reached the journal: refused, and never applied.
    journal.plan([Fault::Before]);
    let refused = tenant.apply(append(2)).await;
    assert_eq!(answer_of(&refused), Answer::Refused, "{refused:?}");
    // The next write goes through at once, on the state the journal holds.
    tenant
        .apply(append(3))
        .await
        .expect("the tenant writes again");
    assert_eq!(items(&tenant), [1, 3]);
    assert!(first.revision < tenant.revision());

    // Stored, its answer lost, and the journal down before anyone can read
    // it back: nobody can tell, so the answer says so.
    journal.plan([Fault::AfterThenDown]);
    let unknown = tenant.apply_with(append(4), keyed("write-4", 4)).await;
    assert_eq!(answer_of(&unknown), Answer::Unknown, "{unknown:?}");
    // While the journal is down the tenant applies nothing, and says so.
    let while_down = tenant.apply(append(5)).await;
    assert_eq!(answer_of(&while_down), Answer::Refused, "{while_down:?}");
    assert_eq!(items(&tenant), [1, 3], "no read newer than what is durable");

    // Back up: the tenant takes writes again within 2 s.
    journal.set_down(false);
    let up = Instant::now();
    loop {
        match tenant.apply(append(6)).await {
            Ok(_) => break,
            Err(e) => {
                assert!(up.elapsed() < Duration::from_secs(2), "still refused: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(up.elapsed() < Duration::from_secs(2));
    // The unknown write had been stored: the read-back state has it.
    assert_eq!(items(&tenant), [1, 3, 4, 6]);

    // Its retry with the same key is answered with its revision and
    // applies nothing.
    let retried = tenant
        .apply_with(append(4), keyed("write-4", 4))
        .await
        .expect("a retry of an applied write");
    assert_eq!(items(&tenant), [1, 3, 4, 6]);
    let recorded = tenant
        .timeline()
        .revision_info(retried.revision)
        .and_then(|info| info.meta.idempotency.clone())
        .expect("the key is recorded with the revision");
    assert_eq!(&*recorded.key, "write-4");
    // The same key for another request is refused.
    let reused = tenant.apply_with(append(7), keyed("write-4", 7)).await;
    assert!(
        matches!(reused, Err(Error::IdempotencyKeyReused { .. })),
        "{reused:?}"
    );

    // After a restart on the same file: the same list, and the key still
    // answers the same revision.
    runtime.shutdown().await.unwrap();
    drop((runtime, tenant, journal));
    let (runtime, _journal) = start(&dir).await;
    let tenant = runtime.tenant("shop").await.unwrap();
    assert_eq!(items(&tenant), [1, 3, 4, 6]);
    let again = tenant
        .apply_with(append(4), keyed("write-4", 4))
        .await
        .unwrap();
    assert_eq!(again.revision, retried.revision);
    assert_eq!(items(&tenant), [1, 3, 4, 6]);
    runtime.shutdown().await.unwrap();
}

/// One write of the list-append history.
#[derive(Clone, Debug)]
struct Write {
    value: u64,
    answer: Answer,
    /// When it was answered (for the stale-read check).
    answered: Instant,
}

/// One read: when it began, and the list it saw.
#[derive(Clone, Debug)]
struct Read {
    began: Instant,
    items: Vec<u64>,
}

#[derive(Default)]
struct Counts {
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    refused_but_applied: usize,
    non_prefix_reads: usize,
    stale_reads: usize,
    unknown: usize,
}

/// Checks a list-append history against the final list: every
/// acknowledged value once, no refused value anywhere, every read a prefix
/// of the final list and holding every write acknowledged before it began.
fn check(writes: &[Write], reads: &[Read], last: &[u64]) -> Counts {
    let mut counts = Counts::default();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for value in last {
        *seen.entry(*value).or_default() += 1;
    }
    counts.duplicated = seen.values().filter(|n| **n > 1).count();
    let mut refused = HashSet::new();
    for write in writes {
        match write.answer {
            Answer::Applied => {
                counts.acknowledged += 1;
                if !seen.contains_key(&write.value) {
                    counts.lost += 1;
                }
            }
            Answer::Refused => {
                refused.insert(write.value);
                if seen.contains_key(&write.value) {
                    counts.refused_but_applied += 1;
                }
            }
            Answer::Unknown => counts.unknown += 1,
        }
    }
    for read in reads {
        if !last.starts_with(&read.items) {
            counts.non_prefix_reads += 1;
        }
        if read.items.iter().any(|v| refused.contains(v)) {
            counts.refused_but_applied += 1;
        }
        let stale = writes.iter().any(|w| {
            w.answer == Answer::Applied && w.answered < read.began && !read.items.contains(&w.value)
        });
        if stale {
            counts.stale_reads += 1;
        }
    }
    counts
}

/// Writers append unique values concurrently while appends fail at random
/// before and after they are stored and the journal goes down for a moment
/// now and then; `retry` clients retry every unknown outcome with its key.
async fn run_history(retry: bool, seed: u64) -> Counts {
    let dir = ScratchDir::new("outcomes-history");
    let (runtime, journal) = start(&dir).await;
    let tenant = runtime
        .create_tenant("list", Doc::from_json(&json!({"items": []})).unwrap())
        .await
        .unwrap();
    journal.randomly(60, 60, seed);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let reads = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for writer in 0..4u64 {
        let (tenant, writes) = (tenant.clone(), Arc::clone(&writes));
        tasks.push(tokio::spawn(async move {
            for n in 0..50u64 {
                let value = writer * 1000 + n;
                let key = format!("w{value}");
                let mut result = tenant.apply_with(append(value), keyed(&key, value)).await;
                let mut tries = 0;
                while retry && answer_of(&result) == Answer::Unknown && tries < 50 {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    result = tenant.apply_with(append(value), keyed(&key, value)).await;
                }
                writes.lock().unwrap().push(Write {
                    value,
                    answer: answer_of(&result),
                    answered: Instant::now(),
                });
            }
        }));
    }
    {
        let (tenant, reads) = (tenant.clone(), Arc::clone(&reads));
        tasks.push(tokio::spawn(async move {
            for _ in 0..300 {
                let began = Instant::now();
                let items = items(&tenant);
                reads.lock().unwrap().push(Read { began, items });
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    {
        let journal = Arc::clone(&journal);
        tasks.push(tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(150)).await;
                journal.set_down(true);
                tokio::time::sleep(Duration::from_millis(100)).await;
                journal.set_down(false);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    journal.calm();
    journal.set_down(false);
    let (before, after) = journal.injected();
    assert!(
        before > 0 && after > 0,
        "faults were injected: {before} / {after}"
    );
    // One more write through: the tenant took writes again.
    tenant.apply(append(999_999)).await.unwrap();
    let last = items(&tenant);
    runtime.shutdown().await.unwrap();
    drop((runtime, tenant, journal));
    // The journal holds exactly what was read last.
    let (runtime, _journal) = start(&dir).await;
    let reopened = runtime.tenant("list").await.unwrap();
    assert_eq!(items(&reopened), last, "after a restart");
    runtime.shutdown().await.unwrap();
    let writes = writes.lock().unwrap().clone();
    let reads = reads.lock().unwrap().clone();
    let counts = check(&writes, &reads, &last);
    eprintln!(
        "sqlite faults{}: {} acknowledged, {} lost, {} duplicated, {} refused-but-applied, \
         {} non-prefix reads, {} stale reads, {} unknown outcomes ({before} refused before, \
         {after} answers lost after the write)",
        if retry {
            " (retrying unknown outcomes with their keys)"
        } else {
            ""
        },
        counts.acknowledged,
        counts.lost,
        counts.duplicated,
        counts.refused_but_applied,
        counts.non_prefix_reads,
        counts.stale_reads,
        counts.unknown,
    );
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_append_history_under_journal_faults_is_truthful() {
    let counts = run_history(false, 0x5eed_0001).await;
    assert!(counts.acknowledged > 100, "{}", counts.acknowledged);
    assert_eq!(counts.lost, 0, "lost");
    assert_eq!(counts.duplicated, 0, "duplicated");
    assert_eq!(counts.refused_but_applied, 0, "refused but applied");
    assert_eq!(counts.non_prefix_reads, 0, "non-prefix reads");
    assert_eq!(counts.stale_reads, 0, "stale reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrying_unknown_outcomes_with_their_keys_loses_and_duplicates_nothing() {
    let counts = run_history(true, 0x5eed_0002).await;
    assert_eq!(counts.lost, 0, "lost");
    assert_eq!(counts.duplicated, 0, "duplicated");
    assert_eq!(counts.refused_but_applied, 0, "refused but applied");
    assert_eq!(counts.non_prefix_reads, 0, "non-prefix reads");
    assert_eq!(counts.stale_reads, 0, "stale reads");
    assert_eq!(
        counts.unknown, 0,
        "every unknown outcome resolved by its retry"
    );
}

/// A keyed write and its retry in the same batch: the retry waits for the
/// first and is answered with its revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_racing_its_first_attempt_applies_once() {
    let dir = ScratchDir::new("outcomes-race");
    let (runtime, _journal) = start(&dir).await;
    let tenant = runtime
        .create_tenant("race", Doc::from_json(&json!({"items": []})).unwrap())
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        tenant.apply_with(append(1), keyed("once", 1)),
        tenant.apply_with(append(1), keyed("once", 1)),
    );
    assert_eq!(a.unwrap().revision, b.unwrap().revision);
    assert_eq!(items(&tenant), [1]);
    assert_eq!(tenant.revision(), Revision(1));
    runtime.shutdown().await.unwrap();
}
