//! A runtime restarted on the same journal has every tenant back: head,
//! revision counter, history, snapshots with names, kinds, times and
//! protection, and transaction checkpoints.

use std::sync::Arc;

use rewind_core::{
    Doc, NamedOptions, Patch, RollbackPolicy, RollbackTarget, SnapshotName, StateRef,
};
use rewind_runtime::{AutoSnapshotPolicy, Journal, Runtime, TenantConfig};
use rewind_store::MemoryJournal;
use serde_json::json;

fn patch(value: serde_json::Value) -> Patch {
    Patch::from_json(&value).unwrap()
}

fn config() -> TenantConfig {
    TenantConfig {
        auto_snapshot: AutoSnapshotPolicy {
            every_revisions: Some(4),
            interval: None,
        },
        ..TenantConfig::default()
    }
}

async fn start(journal: &Arc<MemoryJournal>, image_every: u64) -> Runtime<Doc> {
    start_with(journal, image_every, false).await
}

/// `eager`: every tenant read back at start, rather than on its first
/// lookup.
async fn start_with(journal: &Arc<MemoryJournal>, image_every: u64, eager: bool) -> Runtime<Doc> {
    Runtime::<Doc>::builder()
        .tenant_defaults(config())
        .journal(Arc::clone(journal) as Arc<dyn Journal>)
        .image_every(image_every)
        .eager_recovery(eager)
        .start()
        .await
        .unwrap()
}

fn ids(listing: &[(rewind_core::TenantId, Option<rewind_core::Revision>)]) -> Vec<String> {
    listing.iter().map(|(id, _)| id.to_string()).collect()
}

async fn image_json(runtime: &Runtime<Doc>, tenant: &str) -> serde_json::Value {
    let timeline = runtime.tenant(tenant).await.unwrap().timeline();
    serde_json::to_value(timeline.to_image().unwrap()).unwrap()
}

async fn workload(runtime: &Runtime<Doc>) {
    let acme = runtime
        .create_tenant(
            "acme_corp",
            Doc::from_json(&json!({"n": 0, "list": []})).unwrap(),
        )
        .await
        .unwrap();
    let widgets = runtime
        .create_tenant("widgets_r_us", Doc::object())
        .await
        .unwrap();
    for i in 1..=9 {
        acme.apply(patch(json!([
            {"op": "replace", "path": "/n", "value": i},
            {"op": "add", "path": "/list/-", "value": i}
        ])))
        .await
        .unwrap();
        widgets
            .apply(patch(
                json!([{"op": "add", "path": format!("/k{i}"), "value": i}]),
            ))
            .await
            .unwrap();
    }
    acme.snapshot_with(
        SnapshotName::new("v1.0").unwrap(),
        NamedOptions {
            protected: true,
            replace: false,
        },
    )
    .await
    .unwrap();
    acme.snapshot().await.unwrap();
    acme.rollback(RollbackTarget::Revision(rewind_core::Revision(3)))
        .await
        .unwrap();
    let report = acme
        .transaction()
        .step(
            "one",
            patch(json!([{"op": "add", "path": "/tx", "value": 1}])),
        )
        .step(
            "two",
            patch(json!([{"op": "test", "path": "/tx", "value": 2}])),
        )
        .on_failure(RollbackPolicy::LastCheckpoint)
        .run_report()
        .await
        .unwrap();
    assert!(!report.is_committed());
    widgets.delete_snapshot("auto_1").await.ok();
    runtime.create_tenant("gone", Doc::object()).await.unwrap();
    runtime.delete_tenant("gone").await.unwrap();
}

#[tokio::test]
async fn a_restarted_runtime_has_everything_back() {
    for (image_every, eager) in [(1000, false), (3, false), (1000, true), (3, true)] {
        let journal = Arc::new(MemoryJournal::new());
        let runtime = start(&journal, image_every).await;
        workload(&runtime).await;
        let before = [
            image_json(&runtime, "acme_corp").await,
            image_json(&runtime, "widgets_r_us").await,
        ];
        let tenants = runtime.tenants();
        runtime.shutdown().await.unwrap();

        let restarted = start_with(&journal, image_every, eager).await;
        let case = format!("image_every {image_every}, eager {eager}");
        assert_eq!(ids(&restarted.tenants()), ids(&tenants), "{case}");
        assert_eq!(restarted.recovery().tenants, 2, "{case}");
        assert!(restarted.recovery().failures.is_empty());
        let after = [
            image_json(&restarted, "acme_corp").await,
            image_json(&restarted, "widgets_r_us").await,
        ];
        assert_eq!(after, before, "{case}");
        // Read back, every tenant lists its revision again.
        assert_eq!(restarted.tenants(), tenants, "{case}");
        assert!(matches!(
            restarted.tenant("gone").await,
            Err(rewind_runtime::Error::TenantNotFound(_))
        ));
        // Revision numbers continue; checkpoints stay addressable.
        let acme = restarted.tenant("acme_corp").await.unwrap();
        let head = acme.revision();
        let commit = acme
            .apply(patch(
                json!([{"op": "replace", "path": "/n", "value": 100}]),
            ))
            .await
            .unwrap();
        assert_eq!(commit.revision, head.next());
        let tx = acme.timeline().transactions()[0].id;
        acme.read_at(&StateRef::Checkpoint {
            transaction: tx,
            name: SnapshotName::new("one").unwrap(),
        })
        .unwrap();
        restarted.shutdown().await.unwrap();
    }
}

/// A process that dies while a transaction runs leaves it open in the
/// journal: reading the tenant back (at its first lookup, or at start when
/// eager) rolls it back to its start and finishes it as failed; an eager
/// start counts it in the report.
#[tokio::test]
async fn a_transaction_interrupted_by_a_crash_is_rolled_back_when_read_back() {
    for eager in [false, true] {
        interrupted_transaction(eager).await;
    }
}

async fn interrupted_transaction(eager: bool) {
    let journal = Arc::new(MemoryJournal::new());
    let crashed = start(&journal, 1000).await;
    let acme = crashed
        .create_tenant("acme", Doc::from_json(&json!({"n": 0})).unwrap())
        .await
        .unwrap();
    let running = tokio::spawn({
        let acme = acme.clone();
        async move {
            acme.transaction()
                .step(
                    "one",
                    patch(json!([{"op": "replace", "path": "/n", "value": 1}])),
                )
                // Never returns: the process "dies" here.
                .effect("wait", |_| {
                    std::future::pending::<Result<(), std::io::Error>>()
                })
                .run()
                .await
        }
    });
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while acme.current()["n"] != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the first step is durable");
    // The crash: nothing of the first runtime runs from here on.
    running.abort();
    std::mem::forget(crashed);

    let restarted = start_with(&journal, 1000, eager).await;
    let report = restarted.recovery();
    assert_eq!(report.interrupted_transactions, usize::from(eager));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let acme = restarted.tenant("acme").await.unwrap();
    assert_eq!(
        acme.current()["n"],
        0,
        "rolled back to the transaction's start"
    );
    let transactions = acme.timeline().transactions();
    assert_eq!(
        transactions[0].outcome,
        Some(rewind_core::TransactionOutcome::Failed)
    );
    // A second start finds nothing left to close.
    restarted.shutdown().await.unwrap();
    let again = start_with(&journal, 1000, true).await;
    assert_eq!(again.recovery().interrupted_transactions, 0);
    again.shutdown().await.unwrap();
}
