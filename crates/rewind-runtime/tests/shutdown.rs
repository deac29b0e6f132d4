//! Lifecycle: graceful shutdown drains what was accepted (also writes waiting
//! for a transaction, and the transaction itself) and refuses what comes
//! after; deleting a tenant drains it too and makes it unknown; ids are
//! unique; `watch` reports every new revision in order.

use std::time::Duration;

use rewind_core::{
    Cause, Commit, Doc, Patch, Revision, RevisionInfo, RollbackTarget, SnapshotName, StateRef,
};
use rewind_runtime::{
    AutoSnapshotPolicy, Error, Runtime, Tenant, TenantConfig, TransactionReport, WatchEnd,
    WatchError, Watcher,
};
use serde_json::json;
use tokio::sync::oneshot;

mod support;
use support::accepted;

fn config() -> TenantConfig {
    TenantConfig {
        auto_snapshot: AutoSnapshotPolicy::DISABLED,
        ..TenantConfig::default()
    }
}

async fn runtime() -> Runtime<Doc> {
    Runtime::builder()
        .tenant_defaults(config())
        .start()
        .await
        .unwrap()
}

fn doc() -> Doc {
    Doc::from_json(&json!({"w": {}})).unwrap()
}

fn add(key: &str) -> Patch {
    Patch::from_json(&json!([{"op": "add", "path": format!("/w/{key}"), "value": key}])).unwrap()
}

/// Sends `count` writes without awaiting their answers; each is accepted
/// when this returns.
async fn send_writes(
    tenant: &Tenant<Doc>,
    prefix: &str,
    count: usize,
) -> Vec<tokio::task::JoinHandle<(String, Result<Commit, Error>)>> {
    let already = tenant.in_flight();
    let mut writes = Vec::new();
    for i in 0..count {
        let tenant = tenant.clone();
        let key = format!("{prefix}{i}");
        writes.push(
            accepted(async move {
                let result = tenant.apply(add(&key)).await;
                (key, result)
            })
            .await,
        );
    }
    assert_eq!(
        tenant.in_flight(),
        already + count,
        "every write was accepted"
    );
    writes
}

/// Starts a transaction whose effect waits for the returned sender.
async fn hold_lease(
    tenant: &Tenant<Doc>,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<TransactionReport, Error>>,
) {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let running = tokio::spawn(
        tenant
            .transaction()
            .step("before", add("txn_before"))
            .effect("wait", move |_: Doc| async move {
                started_tx.send(()).unwrap();
                release_rx.await.unwrap();
                Ok::<(), Error>(())
            })
            .step("after", add("txn_after"))
            .run(),
    );
    started_rx.await.unwrap();
    (release_tx, running)
}

fn assert_in_timeline(tenant: &Tenant<Doc>, key: &str, revision: Revision) {
    let timeline = tenant.timeline();
    let state = timeline.state_at(&StateRef::Revision(revision)).unwrap();
    assert_eq!(state["w"][key], key, "revision {revision}");
    let before = timeline
        .state_at(&StateRef::Revision(Revision(revision.get() - 1)))
        .unwrap();
    assert!(before["w"].as_object().unwrap().get(key).is_none());
}

#[tokio::test]
async fn shutdown_drains_accepted_requests_and_refuses_later_ones() {
    let runtime = runtime().await;
    let a = runtime.create_tenant("a", doc()).await.unwrap();
    let b = runtime.create_tenant("b", doc()).await.unwrap();
    let writes_a = send_writes(&a, "a", 100).await;
    let writes_b = send_writes(&b, "b", 50).await;

    runtime.shutdown().await.unwrap();

    for (tenant, writes, count) in [(&a, writes_a, 100u64), (&b, writes_b, 50)] {
        let mut revisions = Vec::new();
        for write in writes {
            let (key, result) = write.await.unwrap();
            let commit = result.expect("accepted before shutdown, so handled");
            assert_in_timeline(tenant, &key, commit.revision);
            revisions.push(commit.revision.get());
        }
        revisions.sort_unstable();
        assert_eq!(revisions, (1..=count).collect::<Vec<_>>());
        assert_eq!(tenant.revision(), Revision(count));
    }

    // Everything after is refused, through every door.
    assert!(matches!(
        a.apply(add("late")).await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(a.snapshot().await, Err(Error::ShuttingDown)));
    assert!(matches!(
        a.rollback(RollbackTarget::Revision(Revision(1))).await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(
        a.transaction().step("x", add("x")).run().await,
        Err(Error::ShuttingDown)
    ));
    // A lookup after shutdown says so too, rather than pretending the tenant
    // never existed.
    let looked_up = runtime.tenant("b").await;
    assert!(
        matches!(&looked_up, Err(Error::ShuttingDown)),
        "{looked_up:?}"
    );
    assert!(matches!(
        runtime.create_tenant("c", doc()).await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(
        runtime.delete_tenant("a").await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(runtime.shutdown().await, Err(Error::ShuttingDown)));
    // Published state stays readable, and nothing late got in.
    assert_eq!(a.revision(), Revision(100));
    assert!(a.current()["w"].as_object().unwrap().get("late").is_none());
    assert_eq!(b.history(usize::MAX).len(), 51);
}

/// The story of a hang: shutdown marked every tenant as shut down before
/// draining it, so a running transaction could no longer reach its tenant to
/// run its next step or give the lease back — and the drain waited for the
/// lease forever.
#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_running_transaction_finish_and_its_waiting_writes_follow() {
    let runtime = runtime().await;
    let tenant = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    let (release, running) = hold_lease(&tenant).await;
    let waiting = send_writes(&tenant, "waiting", 3).await;

    let shutdown = {
        let runtime = runtime.clone();
        accepted(async move { runtime.shutdown().await }).await
    };
    // Answered after the supervisor took the shutdown.
    assert!(matches!(
        runtime.create_tenant("late", doc()).await,
        Err(Error::ShuttingDown)
    ));
    // Neither a second shutdown nor a delete disturbs the drain.
    assert!(matches!(runtime.shutdown().await, Err(Error::ShuttingDown)));
    assert!(matches!(
        runtime.delete_tenant("acme_corp").await,
        Err(Error::ShuttingDown)
    ));
    assert!(matches!(
        tenant.apply(add("late")).await,
        Err(Error::ShuttingDown)
    ));
    release.send(()).unwrap();

    // A guard against the hang: paused time runs ahead only when every task
    // is stuck.
    tokio::time::timeout(Duration::from_secs(3600), shutdown)
        .await
        .expect("shutdown finishes once the transaction does")
        .unwrap()
        .unwrap();
    let report = running.await.unwrap().unwrap();
    assert!(report.is_committed(), "{report:?}");
    let steps: Vec<Option<Revision>> = report.steps.iter().map(|s| s.revision).collect();
    assert_eq!(steps, vec![Some(Revision(1)), None, Some(Revision(2))]);
    for (i, write) in waiting.into_iter().enumerate() {
        let (key, result) = write.await.unwrap();
        let commit = result.expect("a write waiting for the lease is drained");
        assert_eq!(commit.revision, Revision(3 + i as u64));
        assert_in_timeline(&tenant, &key, commit.revision);
    }
    assert_eq!(tenant.revision(), Revision(5));
}

#[tokio::test(start_paused = true)]
async fn delete_drains_the_tenant_then_forgets_it() {
    let runtime = runtime().await;
    let tenant = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    let other = runtime.create_tenant("widgets_r_us", doc()).await.unwrap();
    tenant.snapshot_named("v1").await.unwrap();
    let (release, running) = hold_lease(&tenant).await;
    let waiting = send_writes(&tenant, "waiting", 2).await;

    let delete = {
        let runtime = runtime.clone();
        accepted(async move { runtime.delete_tenant("acme_corp").await }).await
    };
    // Answered after the supervisor took the first delete.
    assert!(matches!(
        runtime.delete_tenant("acme_corp").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        tenant.apply(add("late")).await,
        Err(Error::TenantNotFound(_))
    ));
    release.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3600), delete)
        .await
        .expect("delete finishes once the transaction does")
        .unwrap()
        .unwrap();
    assert!(running.await.unwrap().unwrap().is_committed());
    for write in waiting {
        let (_, result) = write.await.unwrap();
        result.expect("accepted before the delete, so handled");
    }

    // Later lookups and requests: unknown.
    assert!(matches!(
        runtime.tenant("acme_corp").await,
        Err(Error::TenantNotFound(id)) if id.as_str() == "acme_corp"
    ));
    assert!(matches!(
        tenant.apply(add("late")).await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(matches!(
        runtime.delete_tenant("acme_corp").await,
        Err(Error::TenantNotFound(_))
    ));
    assert!(runtime
        .tenants()
        .iter()
        .all(|(id, _)| id.as_str() != "acme_corp"));
    other.apply(add("still_here")).await.unwrap();

    // The id can be used again, for a new tenant from revision 0.
    let again = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    assert_eq!(again.revision(), Revision::ZERO);
    assert!(again.snapshots().is_empty());
    assert!(again
        .rollback_to_named_snapshot("v1")
        .await
        .unwrap_err()
        .is_snapshot_not_found());
    assert!(matches!(
        tenant.apply(add("old_handle")).await,
        Err(Error::TenantNotFound(_))
    ));
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn tenant_ids_are_unique_and_validated() {
    let runtime = runtime().await;
    let first = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    first.apply(add("x")).await.unwrap();
    let err = runtime.create_tenant("acme_corp", doc()).await.unwrap_err();
    assert!(
        matches!(&err, Error::TenantExists(id) if id.as_str() == "acme_corp"),
        "{err:?}"
    );
    assert_eq!(
        first.revision(),
        Revision(1),
        "the existing tenant is untouched"
    );
    // Found, not replaced.
    let found = runtime
        .tenant_or_create("acme_corp", || panic!("must not build a new state"))
        .await
        .unwrap();
    assert_eq!(found.revision(), Revision(1));
    for bad in ["", "acme corp", "acme/corp", &"x".repeat(65)] {
        assert!(matches!(
            runtime.create_tenant(bad, doc()).await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(runtime.tenant(bad).await, Err(Error::Invalid(_))));
    }
    assert!(matches!(
        runtime.tenant("nobody").await,
        Err(Error::TenantNotFound(_))
    ));
    let listed: Vec<String> = runtime
        .tenants()
        .into_iter()
        .map(|(id, r)| format!("{id}@{}", r.expect("an active tenant")))
        .collect();
    assert_eq!(listed, vec!["acme_corp@1"]);
    runtime.shutdown().await.unwrap();
}

fn drain(watch: &mut Watcher) -> Vec<RevisionInfo> {
    let mut seen = Vec::new();
    loop {
        match watch.try_recv() {
            Ok(Some(info)) => seen.push(info),
            Ok(None) => return seen,
            Err(e) => panic!("watch: {e}"),
        }
    }
}

#[tokio::test]
async fn watch_receives_every_new_revision_in_order() {
    let runtime = runtime().await;
    let tenant = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    tenant.apply(add("before_watch")).await.unwrap();
    let mut watch = tenant.watch();

    tenant.apply(add("one")).await.unwrap();
    tenant.snapshot_named("v1").await.unwrap(); // not a revision
    tenant.replace(doc()).await.unwrap();
    tenant
        .update(|_: &Doc| Ok::<_, Error>(add("two")))
        .await
        .unwrap();
    tenant
        .rollback(RollbackTarget::Named(SnapshotName::new("v1").unwrap()))
        .await
        .unwrap();
    tenant
        .transaction()
        .step("s1", add("t1"))
        .step("s2", add("t2"))
        .run()
        .await
        .unwrap();
    tenant
        .transaction()
        .step("s1", add("t3"))
        .effect("fail", |_: Doc| async { Err::<(), _>("no") })
        .run_report()
        .await
        .unwrap();
    // Refused and panicking writes make no revision; the restart loses none.
    tenant
        .apply(Patch::from_json(&json!([{"op": "test", "path": "/w", "value": 0}])).unwrap())
        .await
        .unwrap_err();
    tenant
        .update(|_: &Doc| -> Result<Patch, Error> { panic!("boom") })
        .await
        .unwrap_err();
    tenant.apply(add("after_restart")).await.unwrap();

    let seen = drain(&mut watch);
    let history: Vec<RevisionInfo> = tenant
        .history(usize::MAX)
        .into_iter()
        .rev()
        .skip(2)
        .collect();
    assert_eq!(seen, history);
    let revisions: Vec<u64> = seen.iter().map(|i| i.revision.get()).collect();
    assert_eq!(revisions, (2..=10).collect::<Vec<_>>());
    assert!(matches!(seen[0].cause, Cause::Change));
    assert!(matches!(seen[1].cause, Cause::Replace));
    assert!(matches!(seen[3].cause, Cause::Rollback { .. }));
    assert!(matches!(seen[4].cause, Cause::TransactionStep { .. }));

    // A watcher sees revisions made after it subscribed, as they come.
    let mut late = tenant.watch();
    let next = tokio::spawn(async move { late.recv().await.unwrap() });
    let commit = tenant.apply(add("last")).await.unwrap();
    assert_eq!(next.await.unwrap().revision, commit.revision);
    assert_eq!(drain(&mut watch).len(), 1);
    runtime.shutdown().await.unwrap();
    assert_eq!(
        watch.recv().await,
        Err(WatchError::Ended(WatchEnd::ShutDown))
    );
}

/// A watcher learns why the revisions stopped: every revision the tenant
/// accepted, then `Deleted` — also the revisions of a transaction still
/// running when the tenant was deleted, which it finishes first. A watcher
/// made after the deletion is ended at once, and a later tenant of the
/// same id is watched afresh.
#[tokio::test]
async fn a_watcher_is_told_the_tenant_was_deleted_after_its_last_revision() {
    let runtime = runtime().await;
    let tenant = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    let mut watch = tenant.watch();
    tenant.apply(add("one")).await.unwrap();
    let (release, running) = hold_lease(&tenant).await;
    let deleting = tokio::spawn({
        let runtime = runtime.clone();
        async move { runtime.delete_tenant("acme_corp").await }
    });
    // The deletion has begun: the tenant is no longer found...
    while runtime.tenant("acme_corp").await.is_ok() {
        tokio::task::yield_now().await;
    }
    assert!(watch.ended().is_none());
    assert_eq!(
        tenant.watch().recv().await,
        Err(WatchError::Ended(WatchEnd::Deleted))
    );
    // ...and finishes the transaction it accepted before saying so.
    release.send(()).unwrap();
    running.await.unwrap().unwrap();
    deleting.await.unwrap().unwrap();
    let revisions: Vec<u64> = drain_until_end(&mut watch);
    assert_eq!(revisions, [1, 2, 3]);
    assert_eq!(watch.ended(), Some(WatchEnd::Deleted));
    assert_eq!(
        watch.recv().await,
        Err(WatchError::Ended(WatchEnd::Deleted))
    );

    let again = runtime.create_tenant("acme_corp", doc()).await.unwrap();
    let mut fresh = again.watch();
    again.apply(add("new")).await.unwrap();
    assert_eq!(fresh.recv().await.unwrap().revision, Revision(1));
    runtime.shutdown().await.unwrap();
}

/// The revisions a watcher holds, up to its end message.
fn drain_until_end(watch: &mut Watcher) -> Vec<u64> {
    let mut seen = Vec::new();
    loop {
        match watch.try_recv() {
            Ok(Some(info)) => seen.push(info.revision.get()),
            Ok(None) => panic!("no end message after {seen:?}"),
            Err(WatchError::Ended(_)) => return seen,
            Err(e) => panic!("watch: {e}"),
        }
    }
}
