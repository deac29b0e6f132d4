//! Concurrency: many tasks writing to many tenants on a multi-thread runtime.
//! Every acknowledged write is in its tenant's history with its change,
//! revision numbers are dense per tenant, and lock-free readers only ever see
//! published states, never going backwards. Past `max_in_flight` a tenant
//! answers `Overloaded`, and the requests it accepted still complete.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rewind_core::{Cause, Doc, Patch, Revision, StateRef, TenantId};
use rewind_runtime::{
    AutoSnapshotPolicy, Error, Runtime, SupervisorMsg, Tenant, TenantConfig, TenantMsg,
    WriteOptions,
};
use serde_json::json;
use tokio::sync::{oneshot, Barrier};

mod support;
use support::accepted;

const TENANTS: usize = 8;
const WRITERS: usize = 16;
const WRITES_PER_WRITER: usize = 50;
const READERS_PER_TENANT: usize = 2;

fn config() -> TenantConfig {
    TenantConfig {
        auto_snapshot: AutoSnapshotPolicy::DISABLED,
        ..TenantConfig::default()
    }
}

fn key(writer: usize, write: usize) -> String {
    format!("k{writer}_{write}")
}

/// Every write adds one key under `/w`, so a state's key count is its
/// revision.
fn revision_of(state: &Doc) -> u64 {
    state["w"].as_object().expect("/w is an object").len() as u64
}

/// What a reader saw: each distinct published revision, with its state.
type Seen = Vec<(Revision, Doc)>;

async fn read_until(tenant: Tenant<Doc>, done: Arc<AtomicBool>) -> Seen {
    let mut seen: Seen = Vec::new();
    let mut last = Revision::ZERO;
    loop {
        // Checked before reading, so the last pass sees the final state.
        let finished = done.load(Ordering::Acquire);
        let before = tenant.revision();
        let state = tenant.current();
        let after = tenant.revision();
        let revision = Revision(revision_of(&state));
        assert!(
            before <= revision && revision <= after,
            "current() returned revision {revision}, outside {before}..={after}"
        );
        assert!(
            before >= last,
            "revision() went back from {last} to {before}"
        );
        assert!(
            revision >= last,
            "current() went back from {last} to {revision}"
        );
        // A whole timeline is one consistent value.
        let timeline = tenant.timeline();
        assert_eq!(Revision(revision_of(timeline.head())), timeline.revision());
        assert!(timeline.revision() >= after);
        if seen.last().is_none_or(|(r, _)| *r != revision) {
            seen.push((revision, state));
        }
        last = after.max(timeline.revision());
        if finished {
            return seen;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers_on_many_tenants() {
    let runtime = Runtime::<Doc>::builder()
        .tenant_defaults(config())
        .start()
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for t in 0..TENANTS {
        tenants.push(
            runtime
                .create_tenant(
                    &format!("tenant{t}"),
                    Doc::from_json(&json!({"w": {}})).unwrap(),
                )
                .await
                .unwrap(),
        );
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = tenants
        .iter()
        .flat_map(|t| std::iter::repeat_n(t, READERS_PER_TENANT))
        .map(|t| tokio::spawn(read_until(t.clone(), Arc::clone(&done))))
        .collect();

    // All writers start together.
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let tenants = tenants.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let mut acked = Vec::new();
                for i in 0..WRITES_PER_WRITER {
                    let t = (w + i) % TENANTS;
                    let change = Patch::from_json(&json!([
                        {"op": "add", "path": format!("/w/{}", key(w, i)), "value": i}
                    ]))
                    .unwrap();
                    let commit = tenants[t].apply(change).await.expect("write acknowledged");
                    acked.push((t, commit.revision, key(w, i)));
                }
                acked
            })
        })
        .collect();

    let mut acked: BTreeMap<usize, Vec<(Revision, String)>> = BTreeMap::new();
    for writer in writers {
        for (t, revision, key) in writer.await.unwrap() {
            acked.entry(t).or_default().push((revision, key));
        }
    }
    done.store(true, Ordering::Release);
    let mut seen_by_tenant: BTreeMap<usize, Vec<Seen>> = BTreeMap::new();
    for (i, reader) in readers.into_iter().enumerate() {
        seen_by_tenant
            .entry(i / READERS_PER_TENANT)
            .or_default()
            .push(reader.await.unwrap());
    }

    let per_tenant = WRITERS * WRITES_PER_WRITER / TENANTS;
    for (t, tenant) in tenants.iter().enumerate() {
        let mut writes = acked.remove(&t).unwrap_or_default();
        writes.sort();
        // Dense: exactly 1..=N, no gap, no duplicate.
        let revisions: Vec<u64> = writes.iter().map(|(r, _)| r.get()).collect();
        assert_eq!(revisions, (1..=per_tenant as u64).collect::<Vec<_>>());
        assert_eq!(tenant.revision(), Revision(per_tenant as u64));
        let history = tenant.history(usize::MAX);
        let numbers: Vec<u64> = history.iter().rev().map(|i| i.revision.get()).collect();
        assert_eq!(numbers, (0..=per_tenant as u64).collect::<Vec<_>>());

        // Each acknowledged write is the change at its revision.
        for (revision, key) in &writes {
            let info = tenant.timeline().revision_info(*revision).cloned().unwrap();
            assert_eq!(info.cause, Cause::Change);
            let at = tenant.read_at(&StateRef::Revision(*revision)).unwrap();
            let before = tenant
                .read_at(&StateRef::Revision(Revision(revision.get() - 1)))
                .unwrap();
            assert!(at["w"].as_object().unwrap().contains_key(key.as_str()));
            assert!(!before["w"].as_object().unwrap().contains_key(key.as_str()));
            assert_eq!(revision_of(&at), revision.get());
        }

        // Readers saw only published states.
        for seen in &seen_by_tenant[&t] {
            assert!(!seen.is_empty());
            assert_eq!(seen.last().unwrap().0, Revision(per_tenant as u64));
            for (revision, state) in seen {
                assert_eq!(
                    &tenant.read_at(&StateRef::Revision(*revision)).unwrap(),
                    state,
                    "tenant{t} revision {revision}"
                );
            }
        }
    }
    runtime.shutdown().await.unwrap();
}

/// Past `max_in_flight` accepted-but-unanswered requests, new ones are
/// refused at once; the accepted ones complete once the lease is released.
#[tokio::test]
async fn past_max_in_flight_requests_are_overloaded() {
    const LIMIT: usize = 3;
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let id = TenantId::new("busy").unwrap();
    let tenant = runtime
        .create_tenant_with(
            id.clone(),
            Doc::from_json(&json!({"n": 0})).unwrap(),
            Some(TenantConfig {
                max_in_flight: LIMIT,
                ..config()
            }),
        )
        .await
        .unwrap();
    let other = runtime
        .create_tenant("quiet", Doc::from_json(&json!({})).unwrap())
        .await
        .unwrap();

    // A transaction holds the lease until released.
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let running = tokio::spawn(
        tenant
            .transaction()
            .step(
                "one",
                Patch::from_json(&json!([{"op": "replace", "path": "/n", "value": 1}])).unwrap(),
            )
            .effect("wait", move |_: Doc| async move {
                started_tx.send(()).unwrap();
                release_rx.await.unwrap();
                Ok::<(), Error>(())
            })
            .run(),
    );
    started_rx.await.unwrap();
    assert_eq!(tenant.in_flight(), 0);

    let add = |i: usize| {
        Patch::from_json(&json!([{"op": "add", "path": format!("/a{i}"), "value": i}])).unwrap()
    };
    let mut waiting = Vec::new();
    for i in 0..LIMIT {
        let tenant = tenant.clone();
        let change = add(i);
        waiting.push(accepted(async move { tenant.apply(change).await }).await);
    }
    assert_eq!(tenant.in_flight(), LIMIT);

    // Through the handle and through the supervisor, every kind of request.
    let err = tenant.apply(add(99)).await.unwrap_err();
    match &err {
        Error::Overloaded { tenant, limit } => {
            assert_eq!(tenant.as_str(), "busy");
            assert_eq!(*limit, LIMIT);
        }
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert!(matches!(
        tenant.snapshot().await.unwrap_err(),
        Error::Overloaded { .. }
    ));
    assert!(matches!(
        tenant
            .transaction()
            .step("x", add(98))
            .run()
            .await
            .unwrap_err(),
        Error::Overloaded { .. }
    ));
    let by_message = ractor::call!(runtime.supervisor(), |reply| SupervisorMsg::Tenant {
        id: id.clone(),
        msg: TenantMsg::Apply {
            change: add(97),
            options: WriteOptions::default(),
            reply,
        },
    })
    .unwrap();
    assert!(matches!(by_message, Err(Error::Overloaded { .. })));
    assert_eq!(tenant.in_flight(), LIMIT);
    // Lock-free reads and other tenants are not affected.
    assert_eq!(tenant.current()["n"], 1);
    other
        .apply(Patch::from_json(&json!([{"op": "add", "path": "/x", "value": 1}])).unwrap())
        .await
        .unwrap();

    release_tx.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert!(report.is_committed());
    let mut revisions = Vec::new();
    for write in waiting {
        revisions.push(
            write
                .await
                .unwrap()
                .expect("accepted writes complete")
                .revision,
        );
    }
    assert_eq!(revisions, vec![Revision(2), Revision(3), Revision(4)]);
    assert_eq!(tenant.in_flight(), 0);
    let head = tenant.current();
    for i in 0..LIMIT {
        assert_eq!(head[format!("a{i}").as_str()], i as i64);
    }
    assert!(head.pointer("/a99").is_none() && head.pointer("/a97").is_none());
    tenant.apply(add(5)).await.unwrap();
    runtime.shutdown().await.unwrap();
}
