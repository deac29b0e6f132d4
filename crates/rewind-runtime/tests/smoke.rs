//! Quick end-to-end checks of the runtime's main paths.

use rewind_core::{Doc, Patch, RollbackPolicy, TransactionOutcome};
use rewind_runtime::{Error, Runtime};
use serde_json::json;

fn patch(v: serde_json::Value) -> Patch {
    Patch::from_json(&v).unwrap()
}

#[tokio::test]
async fn apply_transaction_and_panic_restart() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let t = runtime
        .create_tenant("t1", Doc::from_json(&json!({"n": 0})).unwrap())
        .await
        .unwrap();
    t.apply(patch(json!([{"op": "replace", "path": "/n", "value": 1}])))
        .await
        .unwrap();
    assert_eq!(t.current()["n"], 1);

    let report = t
        .transaction()
        .step("a", patch(json!([{"op": "add", "path": "/a", "value": 1}])))
        .step("b", patch(json!([{"op": "add", "path": "/b", "value": 2}])))
        .effect("notify", |_s: Doc| async { Err::<(), _>("smtp down") })
        .on_failure(RollbackPolicy::LastCheckpoint)
        .run()
        .await
        .unwrap();
    assert_eq!(report.outcome, TransactionOutcome::RolledBack);
    assert_eq!(report.steps.len(), 2);
    assert_eq!(t.current()["b"], 2);

    let err = t
        .update(|_d: &Doc| -> Result<Patch, Error> { panic!("boom") })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Panicked { .. }), "{err}");
    // The tenant restarted with its history intact and serves again.
    t.apply(patch(json!([{"op": "replace", "path": "/n", "value": 5}])))
        .await
        .unwrap();
    assert_eq!(t.current()["n"], 5);
    assert!(t.history(100).len() >= 5);
    runtime.shutdown().await.unwrap();
    assert!(matches!(
        t.apply(patch(json!([]))).await.unwrap_err(),
        Error::ShuttingDown
    ));
}
