//! Fault containment: user code that panics — an update closure, a typed
//! model's `apply`, also inside a transaction step — is answered with
//! `Panicked`, and the tenant restarts from its last published timeline with
//! every committed revision and snapshot intact, while other tenants keep
//! serving. Past its restart intensity a tenant answers `TenantFailed`, alone;
//! failures spread wider than the intensity period never add up.
//!

use std::time::Duration;

use rewind_core::{
    imbl::Vector, Doc, Model, Patch, Revision, RollbackPolicy, RollbackTarget, SnapshotName,
    StateRef, TransactionOutcome,
};
use rewind_runtime::{
    AutoSnapshotPolicy, Error, FailureReason, RestartIntensity, Runtime, Tenant, TenantConfig,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::oneshot;

mod support;
use support::{accepted, doc, observe, patch};

fn set(path: &str, value: Value) -> Patch {
    patch(json!([{"op": "add", "path": path, "value": value}]))
}

/// A typed model: a ledger whose `apply` panics on `Entry::Explode`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ledger {
    balance: i64,
    entries: Vector<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Entry {
    Credit(i64),
    Debit(i64),
    /// A bug in the model: `apply` panics.
    Explode,
}

#[derive(Debug)]
struct Overdrawn;

impl std::fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the balance cannot go below zero")
    }
}

impl std::error::Error for Overdrawn {}

impl Model for Ledger {
    type Change = Entry;
    type Error = Overdrawn;

    fn apply(&self, change: &Entry) -> Result<Self, Overdrawn> {
        let amount = match change {
            Entry::Credit(n) => *n,
            Entry::Debit(n) if *n > self.balance => return Err(Overdrawn),
            Entry::Debit(n) => -*n,
            Entry::Explode => panic!("ledger model exploded"),
        };
        let mut entries = self.entries.clone();
        entries.push_back(amount);
        Ok(Ledger {
            balance: self.balance + amount,
            entries,
        })
    }
}

fn ledger() -> Ledger {
    Ledger {
        balance: 0,
        entries: Vector::new(),
    }
}

fn config() -> TenantConfig {
    TenantConfig {
        auto_snapshot: AutoSnapshotPolicy::DISABLED,
        ..TenantConfig::default()
    }
}

async fn runtime<M: Model>(intensity: RestartIntensity) -> Runtime<M> {
    Runtime::builder()
        .tenant_defaults(config())
        .restart_intensity(intensity)
        .start()
        .await
        .expect("runtime starts")
}

const LENIENT: RestartIntensity = RestartIntensity {
    max_restarts: 100,
    period: Duration::from_secs(60),
};

const STRICT: RestartIntensity = RestartIntensity {
    max_restarts: 2,
    period: Duration::from_secs(60),
};

fn assert_panicked(err: &Error, tenant: &str, text: &str) {
    match err {
        Error::Panicked { tenant: t, message } => {
            assert_eq!(t.as_str(), tenant);
            assert!(message.contains(text), "{message}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
}

/// A tenant with revisions, named, auto and pre-rollback snapshots, and a
/// committed and a rolled back transaction.
async fn busy_doc_tenant(runtime: &Runtime<Doc>, id: &str) -> Tenant<Doc> {
    let tenant = runtime
        .create_tenant(id, doc(json!({"n": 0, "log": []})))
        .await
        .unwrap();
    for n in 1..=3 {
        tenant.apply(set("/n", json!(n))).await.unwrap();
    }
    tenant.snapshot_named("v1").await.unwrap();
    tenant.snapshot().await.unwrap();
    tenant.apply(set("/log/-", json!("a"))).await.unwrap();
    let committed = tenant
        .transaction()
        .step("one", set("/t", json!(1)))
        .step("two", set("/t", json!(2)))
        .run()
        .await
        .unwrap();
    assert!(committed.is_committed());
    let rolled_back = tenant
        .transaction()
        .step("three", set("/t", json!(3)))
        .effect("fail", |_: Doc| async { Err::<(), _>("smtp down") })
        .run_report()
        .await
        .unwrap();
    assert_eq!(rolled_back.outcome, TransactionOutcome::RolledBack);
    tenant
        .rollback(RollbackTarget::Named(SnapshotName::new("v1").unwrap()))
        .await
        .unwrap();
    tenant.apply(set("/n", json!(4))).await.unwrap();
    tenant
}

#[tokio::test]
async fn a_panicking_update_closure_restarts_the_tenant_with_its_timeline_intact() {
    let runtime = runtime::<Doc>(LENIENT).await;
    let victim = busy_doc_tenant(&runtime, "victim").await;
    let bystander = runtime
        .create_tenant("bystander", doc(json!({"count": 0})))
        .await
        .unwrap();

    // The bystander writes throughout, on its own task.
    let writer = {
        let bystander = bystander.clone();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 1..=60 {
                let commit = bystander
                    .apply(set("/count", json!(i)))
                    .await
                    .expect("the bystander keeps serving");
                revisions.push(commit.revision.get());
                tokio::task::yield_now().await;
            }
            revisions
        })
    };

    for round in 0..5 {
        let before = observe(&victim);
        bystander
            .apply(set(&format!("/round{round}"), json!(true)))
            .await
            .unwrap();
        let err = victim
            .update(|_: &Doc| -> Result<Patch, Error> { panic!("closure boom") })
            .await
            .unwrap_err();
        assert_panicked(&err, "victim", "closure boom");
        bystander
            .apply(set(&format!("/after{round}"), json!(true)))
            .await
            .unwrap();
        // The restarted tenant serves, from exactly the committed timeline.
        let snapshots = victim.timeline().snapshots();
        let read = victim
            .read_at(&StateRef::Revision(before.revision))
            .unwrap();
        assert_eq!(read, before.head);
        let commit = victim
            .apply(set("/round", json!(round)))
            .await
            .expect("the tenant serves again after its restart");
        assert_eq!(commit.revision, before.revision.next());
        let after = observe(&victim);
        assert_eq!(after.history[..after.history.len() - 1], before.history[..]);
        assert_eq!(after.snapshots, before.snapshots);
        assert_eq!(snapshots, before.snapshots);
        assert_eq!(after.transactions, before.transactions);
        assert_eq!(
            after.head,
            before
                .head
                .apply_patch(&set("/round", json!(round)))
                .unwrap()
        );
    }

    let revisions = writer.await.unwrap();
    let mut sorted = revisions.clone();
    sorted.sort_unstable();
    assert_eq!(revisions, sorted);
    // 60 writer revisions and 10 round markers, dense.
    assert_eq!(bystander.revision(), Revision(70));
    let history: Vec<u64> = bystander
        .history(usize::MAX)
        .iter()
        .rev()
        .map(|i| i.revision.get())
        .collect();
    assert_eq!(history, (0..=70).collect::<Vec<_>>());
    runtime.shutdown().await.unwrap();
}

/// The story of a lost retry: the tenant answered `Panicked` while its
/// actor was still registered, so on a multi-thread runtime about half of
/// the requests a caller sent on seeing that answer went into the dying
/// actor's mailbox and came back `Unavailable`. The failing actor now leaves
/// routing before it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_sent_after_a_panicked_answer_reaches_the_restarted_tenant() {
    let runtime = runtime::<Doc>(RestartIntensity {
        max_restarts: 1000,
        period: Duration::from_secs(60),
    })
    .await;
    let tenant = runtime
        .create_tenant("retrying", doc(json!({"n": 0})))
        .await
        .unwrap();
    for n in 1..=100 {
        let err = tenant
            .update(|_: &Doc| -> Result<Patch, Error> { panic!("boom") })
            .await
            .unwrap_err();
        assert_panicked(&err, "retrying", "boom");
        let commit = tenant
            .apply(set("/n", json!(n)))
            .await
            .unwrap_or_else(|e| panic!("retry {n} after a panic: {e:?}"));
        assert_eq!(commit.revision, Revision(n));
    }
    assert_eq!(tenant.current()["n"], 100);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_panicking_model_apply_restarts_the_tenant_with_its_timeline_intact() {
    let runtime = runtime::<Ledger>(LENIENT).await;
    let victim = runtime.create_tenant("victim", ledger()).await.unwrap();
    let bystander = runtime.create_tenant("bystander", ledger()).await.unwrap();
    victim.apply(Entry::Credit(100)).await.unwrap();
    victim.snapshot_named("funded").await.unwrap();
    victim.apply(Entry::Debit(30)).await.unwrap();
    victim.snapshot().await.unwrap();
    let refused = victim.apply(Entry::Debit(1000)).await.unwrap_err();
    assert!(
        matches!(
            refused.timeline_error(),
            Some(rewind_core::TimelineError::Rejected(_))
        ),
        "{refused:?}"
    );
    let before = observe(&victim);

    for (step, attempt) in ["apply", "update", "replace-then-apply"].iter().enumerate() {
        bystander.apply(Entry::Credit(1)).await.unwrap();
        let err = match *attempt {
            "apply" => victim.apply(Entry::Explode).await.unwrap_err(),
            "update" => victim
                .update(|_: &Ledger| Ok::<_, Error>(Entry::Explode))
                .await
                .unwrap_err(),
            _ => {
                // A write accepted right before the panic stays committed.
                let kept = victim.apply(Entry::Credit(5)).await.unwrap();
                assert_eq!(kept.revision, before.revision.next());
                let err = victim.apply(Entry::Explode).await.unwrap_err();
                assert_eq!(victim.revision(), kept.revision);
                err
            }
        };
        assert_panicked(&err, "victim", "ledger model exploded");
        bystander.apply(Entry::Credit(1)).await.unwrap();
        assert_eq!(bystander.revision(), Revision(2 * step as u64 + 2));
        if step < 2 {
            assert_eq!(observe(&victim), before);
        }
    }
    let after = observe(&victim);
    assert_eq!(after.history[..before.history.len()], before.history[..]);
    assert_eq!(after.snapshots, before.snapshots);
    assert_eq!(after.head.balance, 75);
    assert_eq!(
        victim
            .read_at(&StateRef::Snapshot(SnapshotName::new("funded").unwrap()))
            .unwrap()
            .balance,
        100
    );
    victim
        .rollback(RollbackTarget::Named(SnapshotName::new("funded").unwrap()))
        .await
        .unwrap();
    assert_eq!(victim.current().balance, 100);
    assert_eq!(bystander.current().balance, 6);
    runtime.shutdown().await.unwrap();
}

/// A model panic inside a transaction step restarts the tenant while the
/// transaction holds the lease. The transaction still ends by its own policy.
/// A write that waited behind it is either applied after the rollback or
/// refused as `Unavailable` — never applied between the transaction's
/// revisions, never silently dropped.
#[tokio::test]
async fn a_model_panic_in_a_transaction_step_rolls_back_by_the_plans_policy() {
    let runtime = runtime::<Ledger>(LENIENT).await;
    let policies = [
        (RollbackPolicy::Start, 0),
        (RollbackPolicy::LastCheckpoint, 30),
        (
            RollbackPolicy::Checkpoint(SnapshotName::new("first").unwrap()),
            10,
        ),
    ];
    for (i, (policy, balance)) in policies.into_iter().enumerate() {
        let tenant = runtime
            .create_tenant(&format!("t{i}"), ledger())
            .await
            .unwrap();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let running = tokio::spawn(
            tenant
                .transaction()
                .step("first", Entry::Credit(10))
                .step("second", Entry::Credit(20))
                .effect("wait", move |_: Ledger| async move {
                    started_tx.send(()).unwrap();
                    release_rx.await.unwrap();
                    Ok::<(), Error>(())
                })
                .step("third", Entry::Explode)
                .step("fourth", Entry::Credit(40))
                .on_failure(policy.clone())
                .run_report(),
        );
        started_rx.await.unwrap();
        let waiting = {
            let tenant = tenant.clone();
            accepted(async move { tenant.apply(Entry::Credit(1000)).await }).await
        };
        assert_eq!(tenant.in_flight(), 1);
        release_tx.send(()).unwrap();

        let report = running.await.unwrap().unwrap();
        assert_eq!(report.outcome, TransactionOutcome::RolledBack, "{policy:?}");
        let failure = report.failure.as_ref().unwrap();
        assert_eq!(failure.index, 3);
        assert!(
            matches!(&failure.reason, FailureReason::Panic(m) if m.contains("ledger model exploded")),
            "{failure:?}"
        );
        assert_eq!(report.steps.len(), 3);
        // The last checkpoint is the head itself (the effect changed
        // nothing): no rollback revision is needed.
        let unchanged = policy == RollbackPolicy::LastCheckpoint;
        assert_eq!(report.unchanged, unchanged, "{policy:?}");
        let settled = if unchanged {
            assert!(report.rollback.is_none());
            Revision(2)
        } else {
            let rollback = report.rollback.as_ref().expect("rolled back");
            assert_eq!(rollback.revision, Revision(3));
            Revision(3)
        };
        match waiting.await.unwrap() {
            Ok(commit) => {
                assert_eq!(commit.revision, settled.next());
                assert_eq!(tenant.current().balance, balance + 1000);
            }
            Err(Error::Unavailable { .. }) => {
                assert_eq!(tenant.revision(), settled);
                assert_eq!(tenant.current().balance, balance, "policy {policy:?}");
            }
            Err(other) => panic!("the waiting write got {other:?}"),
        }
        assert_eq!(
            tenant
                .read_at(&StateRef::Revision(settled))
                .unwrap()
                .balance,
            balance,
            "policy {policy:?} after a panic"
        );
        // The tenant serves again and the lease is free.
        let before = tenant.current().balance;
        tenant.apply(Entry::Credit(1)).await.unwrap();
        assert_eq!(tenant.current().balance, before + 1);
    }
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn past_its_restart_intensity_a_tenant_fails_alone() {
    let runtime = runtime::<Doc>(STRICT).await;
    let victim = busy_doc_tenant(&runtime, "victim").await;
    let bystander = busy_doc_tenant(&runtime, "bystander").await;
    let before = observe(&victim);
    let mut watch = victim.watch();
    let panic = |_: &Doc| -> Result<Patch, Error> { panic!("boom") };

    // Two failures within the period are restarted.
    for _ in 0..2 {
        assert_panicked(&victim.update(panic).await.unwrap_err(), "victim", "boom");
        assert_eq!(victim.read_at(&StateRef::Head).unwrap(), before.head);
        victim.snapshot().await.unwrap();
        victim
            .delete_snapshot(victim.snapshots().last().unwrap().name.as_str())
            .await
            .unwrap();
        bystander.apply(set("/b", json!(1))).await.unwrap();
    }
    // The bystander's failure counts for the bystander only.
    assert_panicked(
        &bystander.update(panic).await.unwrap_err(),
        "bystander",
        "boom",
    );
    bystander.apply(set("/b", json!(2))).await.unwrap();

    // The third one is not.
    assert_panicked(&victim.update(panic).await.unwrap_err(), "victim", "boom");
    let failed = victim.apply(set("/n", json!(99))).await.unwrap_err();
    match &failed {
        Error::TenantFailed {
            tenant,
            restarts,
            period,
        } => {
            assert_eq!(tenant.as_str(), "victim");
            assert_eq!(*restarts, 3);
            assert_eq!(*period, Duration::from_secs(60));
        }
        other => panic!("expected TenantFailed, got {other:?}"),
    }
    assert!(failed.to_string().contains("victim"), "{failed}");
    // Its watchers are told, after no revision (snapshots make none).
    assert_eq!(
        watch.recv().await,
        Err(rewind_runtime::WatchError::Ended(
            rewind_runtime::WatchEnd::Failed
        ))
    );
    for err in [
        victim.snapshot().await.unwrap_err(),
        victim
            .rollback_to_named_snapshot("v1")
            .await
            .map(|_| ())
            .unwrap_err(),
        victim
            .transaction()
            .step("x", set("/x", json!(1)))
            .run()
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(matches!(err, Error::TenantFailed { .. }), "{err:?}");
    }
    let by_message = ractor::call!(runtime.supervisor(), |reply| {
        rewind_runtime::SupervisorMsg::Tenant {
            id: rewind_core::TenantId::new("victim").unwrap(),
            msg: rewind_runtime::TenantMsg::Read {
                at: StateRef::Head,
                reply,
            },
        }
    })
    .expect("the supervisor answers");
    assert!(matches!(by_message, Err(Error::TenantFailed { .. })));

    // Its published state can still be read, unchanged.
    let after = observe(&victim);
    assert_eq!(after, before);
    assert_eq!(victim.current(), before.head);
    assert!(victim.read_at(&StateRef::Revision(Revision(1))).is_ok());
    assert!(victim
        .diff(
            &StateRef::Snapshot(SnapshotName::new("v1").unwrap()),
            &StateRef::Head
        )
        .is_ok());
    assert!(victim.rollback_dry_run(&RollbackTarget::Latest).is_ok());
    assert_eq!(
        runtime.tenant("victim").await.unwrap().revision(),
        before.revision
    );

    // Everyone else is fine.
    let revision = bystander.revision();
    bystander.apply(set("/b", json!(3))).await.unwrap();
    assert_eq!(bystander.revision(), revision.next());
    let newcomer = runtime
        .create_tenant("newcomer", doc(json!({})))
        .await
        .unwrap();
    newcomer.apply(set("/x", json!(1))).await.unwrap();

    // A failed tenant can be deleted and its id reused.
    runtime.delete_tenant("victim").await.unwrap();
    let fresh = runtime
        .create_tenant("victim", doc(json!({"fresh": true})))
        .await
        .unwrap();
    fresh.apply(set("/n", json!(1))).await.unwrap();
    assert_eq!(fresh.revision(), Revision(1));
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn failures_spread_beyond_the_period_do_not_accumulate() {
    let runtime = runtime::<Doc>(STRICT).await;
    let tenant = runtime
        .create_tenant("flaky", doc(json!({"n": 0})))
        .await
        .unwrap();
    let panic = |_: &Doc| -> Result<Patch, Error> { panic!("boom") };

    // Two failures per 61 s, six times: never more than two within 60 s.
    for n in 1..=6 {
        for _ in 0..2 {
            assert_panicked(&tenant.update(panic).await.unwrap_err(), "flaky", "boom");
        }
        tenant
            .apply(set("/n", json!(n)))
            .await
            .expect("failures older than the period are forgotten");
        tokio::time::advance(Duration::from_secs(61)).await;
    }
    assert_eq!(tenant.revision(), Revision(6));

    // Three within the period are too many.
    for _ in 0..2 {
        assert_panicked(&tenant.update(panic).await.unwrap_err(), "flaky", "boom");
    }
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_panicked(&tenant.update(panic).await.unwrap_err(), "flaky", "boom");
    let err = tenant.apply(set("/n", json!(7))).await.unwrap_err();
    assert!(
        matches!(err, Error::TenantFailed { restarts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(tenant.current()["n"], 6);
    runtime.shutdown().await.unwrap();
}
