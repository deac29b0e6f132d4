//! Guarded deployments, with paused tokio time and scripted health checks:
//! each case is checked against its exact revisions and snapshots.
//! - a healthy deployment is promoted at the end of its window;
//! - a failing one rolls back after `failure_limit + 1` failures, to exactly
//!   the `pre_<name>` state, and writes made during the window are undone
//!   (and listed in the rollback's diff);
//! - errors count up to `error_limit` in a row, and a pass resets them;
//! - abort and promote end it at once; one deployment runs at a time;
//! - a deployment in progress when the runtime stopped resumes after a
//!   restart for what remains of its window.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rewind::core::deploy::{CheckResult, CheckSpec, DeploymentStatus, DEPLOYMENT_AUTHOR};
use rewind::core::{
    Cause, Doc, ManualClock, Patch, Revision, SnapshotKind, SnapshotName, TimelineError, Timestamp,
};
use rewind::runtime::deploy::{CheckFuture, CheckOutcome, DeploymentBuilder, HealthCheck};
use rewind::runtime::{DeleteOptions, Error, ErrorKind, Runtime, Tenant};
use rewind::store::MemoryJournal;
use serde_json::{json, Value};

/// A check that answers from a script, then passes; counts its calls.
struct Scripted {
    name: String,
    script: Mutex<VecDeque<CheckOutcome>>,
    calls: AtomicUsize,
}

impl Scripted {
    fn new(name: &str, script: Vec<CheckOutcome>) -> Arc<Self> {
        Arc::new(Scripted {
            name: name.into(),
            script: Mutex::new(script.into()),
            calls: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl HealthCheck for Scripted {
    fn spec(&self) -> CheckSpec {
        CheckSpec::Custom {
            name: self.name.clone(),
        }
    }

    fn check(&self) -> CheckFuture<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = self.script.lock().unwrap().pop_front();
        Box::pin(async move { next.unwrap_or(CheckOutcome::Pass { value: Some(0.4) }) })
    }
}

fn pass() -> CheckOutcome {
    CheckOutcome::Pass { value: Some(0.4) }
}

fn fail() -> CheckOutcome {
    CheckOutcome::Fail {
        reason: "memory at 95%".into(),
        value: Some(0.95),
    }
}

fn error() -> CheckOutcome {
    CheckOutcome::Error {
        reason: "prometheus unreachable".into(),
    }
}

fn patch(value: Value) -> Patch {
    Patch::from_json(&value).unwrap()
}

fn v2() -> Patch {
    patch(json!([{"op": "replace", "path": "/version", "value": "2.0.0"}]))
}

async fn tenant(runtime: &Runtime<Doc>) -> Tenant<Doc> {
    runtime
        .create_tenant(
            "shop",
            Doc::from_json(&json!({"version": "1.0.0", "memory": 0.4})).unwrap(),
        )
        .await
        .unwrap()
}

/// `tenant.deploy(v2())` named `name`, checked by `check` every
/// `interval` seconds for `window` seconds.
fn guarded(
    tenant: &Tenant<Doc>,
    name: &str,
    check: &Arc<Scripted>,
    interval: u64,
    window: u64,
) -> DeploymentBuilder<Doc> {
    tenant
        .deploy(v2())
        .name(name)
        .check_arc(check.clone())
        .interval(Duration::from_secs(interval))
        .window(Duration::from_secs(window))
}

fn pre(name: &str) -> SnapshotName {
    SnapshotName::new(format!("pre_{name}")).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_healthy_deployment_is_promoted_when_its_window_ends() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    let check = Scripted::new("memory", vec![]);
    let deployment = guarded(&tenant, "v2.0.0", &check, 10, 60)
        .start()
        .await
        .unwrap();
    // Started: revision 1 is the change, pre_v2.0.0 pins revision 0 and is
    // protected while the window runs.
    assert_eq!(deployment.started().revision, Revision(1));
    assert_eq!(deployment.started().base_revision, Revision(0));
    let snapshot = tenant
        .snapshots()
        .into_iter()
        .find(|s| s.name == pre("v2.0.0"))
        .unwrap();
    assert!(snapshot.protected);
    assert_eq!(snapshot.revision, Revision(0));
    assert_eq!(tenant.current()["version"], "2.0.0");
    let unprotect = tenant.protect("pre_v2.0.0", false).await.unwrap_err();
    assert!(matches!(
        unprotect.timeline_error(),
        Some(TimelineError::HeldByDeployment { .. })
    ));

    let ended = deployment.wait().await.unwrap();
    assert_eq!(ended.status, DeploymentStatus::Promoted);
    assert_eq!(ended.measurements.len(), 6, "{:?}", ended.measurements);
    assert_eq!(check.calls(), 6);
    assert!(ended
        .measurements
        .iter()
        .all(|m| m.observation.result == CheckResult::Pass && m.observation.check == "memory"));
    assert!(ended.rollback.is_none());
    // Promotion makes no revision: the change stays at revision 1; the
    // snapshot stays, unprotected.
    assert_eq!(tenant.revision(), Revision(1));
    assert_eq!(tenant.current()["version"], "2.0.0");
    let snapshot = tenant
        .snapshots()
        .into_iter()
        .find(|s| s.name == pre("v2.0.0"))
        .unwrap();
    assert!(!snapshot.protected);
    assert_eq!(tenant.deployments().len(), 1);
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_deployment_rolls_back_after_failure_limit_plus_one_failures() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    let before = tenant.current();
    let check = Scripted::new("memory", vec![pass(), fail(), pass(), fail(), fail()]);
    let deployment = guarded(&tenant, "v2.0.0", &check, 10, 300)
        .failure_limit(2)
        .start()
        .await
        .unwrap();
    // A write during the window (revision 2): the rollback undoes it too.
    tenant
        .apply(patch(json!([{"op": "add", "path": "/cart", "value": 3}])))
        .await
        .unwrap();
    let ended = deployment.wait().await.unwrap();
    assert_eq!(ended.status, DeploymentStatus::RolledBack);
    // The third failure is the fifth round: nothing measured after it.
    assert_eq!(ended.measurements.len(), 5);
    assert_eq!(check.calls(), 5);
    assert_eq!(ended.failures(), 3);
    let rollback = ended.rollback.clone().unwrap();
    assert_eq!(rollback.revision, Revision(3));
    assert_eq!(rollback.restored.revision, Revision(0));
    assert_eq!(tenant.revision(), Revision(3));
    assert_eq!(tenant.current(), before);
    let paths: Vec<String> = rollback
        .diff
        .entries
        .iter()
        .map(|e| e.path.to_string())
        .collect();
    assert!(paths.contains(&"/cart".to_owned()), "{paths:?}");
    assert!(paths.contains(&"/version".to_owned()), "{paths:?}");
    // The rollback revision names the deployment, the check and its reason.
    let info = tenant.history(1).remove(0);
    assert!(matches!(info.cause, Cause::Rollback { .. }));
    assert_eq!(info.meta.author.as_deref(), Some(DEPLOYMENT_AUTHOR));
    let message = info.meta.message.unwrap();
    assert!(message.contains("v2.0.0"), "{message}");
    assert!(
        message.contains("'memory' failed: memory at 95%"),
        "{message}"
    );
    assert!(ended.reason.unwrap().contains("3 failures, limit 2"));
    // The pre-rollback auto snapshot keeps what was rolled back from.
    assert!(tenant
        .snapshots()
        .iter()
        .any(|s| s.kind == SnapshotKind::Auto && s.revision == Revision(2)));
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_first_failure_rolls_back_by_default() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    let ended = tenant
        .deploy(v2())
        .name("v2")
        .check_arc(Scripted::new("memory", vec![fail()]))
        .interval(Duration::from_secs(1))
        .window(Duration::from_secs(10))
        .run()
        .await
        .unwrap();
    assert_eq!(ended.status, DeploymentStatus::RolledBack);
    assert_eq!(ended.measurements.len(), 1);
    assert_eq!(tenant.revision(), Revision(2));
    assert_eq!(tenant.current()["version"], "1.0.0");
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn errors_count_in_a_row_up_to_the_error_limit() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    // Two errors, a pass (resets), then three errors: the third in a row
    // passes error_limit 2.
    let flaky = Scripted::new(
        "prometheus",
        vec![error(), error(), pass(), error(), error(), error()],
    );
    let steady = Scripted::new("http", vec![]);
    let ended = tenant
        .deploy(v2())
        .name("v2")
        .check_arc(flaky.clone())
        .check_arc(steady.clone())
        .interval(Duration::from_secs(5))
        .window(Duration::from_secs(60))
        .error_limit(2)
        .run()
        .await
        .unwrap();
    assert_eq!(ended.status, DeploymentStatus::RolledBack);
    // Six rounds of two checks; errors are not failures.
    assert_eq!(ended.measurements.len(), 12);
    assert_eq!(ended.failures(), 0);
    assert_eq!(ended.errors_in_a_row("prometheus"), 3);
    assert_eq!(steady.calls(), 6);
    let reason = ended.reason.unwrap();
    assert!(
        reason.contains("'prometheus' erred") && reason.contains("3 times in a row (limit 2)"),
        "{reason}"
    );
    assert_eq!(tenant.current()["version"], "1.0.0");
    assert_eq!(tenant.revision(), Revision(2));

    // With the default limit of 4, four errors in a row are tolerated.
    let tolerated = tenant
        .deploy(v2())
        .name("v2.again")
        .check_arc(Scripted::new(
            "prometheus",
            vec![error(), error(), error(), error()],
        ))
        .interval(Duration::from_secs(5))
        .window(Duration::from_secs(30))
        .run()
        .await
        .unwrap();
    assert_eq!(tolerated.status, DeploymentStatus::Promoted);
    assert_eq!(tolerated.measurements.len(), 6);
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_and_promote_ends_the_window_early() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    let check = Scripted::new("memory", vec![]);
    let deployment = guarded(&tenant, "v2", &check, 10, 600)
        .start()
        .await
        .unwrap();
    // One at a time: a second deployment is a conflict and changes nothing.
    let second = tenant.deploy(v2()).name("v3").start().await.unwrap_err();
    assert_eq!(second.kind(), ErrorKind::Conflict);
    assert_eq!(tenant.revision(), Revision(1));
    tokio::time::sleep(Duration::from_secs(25)).await;
    let aborted = deployment.abort("operator saw errors").await.unwrap();
    assert_eq!(aborted.deployment.status, DeploymentStatus::Aborted);
    assert_eq!(aborted.deployment.measurements.len(), 2);
    assert_eq!(tenant.revision(), Revision(2));
    assert_eq!(tenant.current()["version"], "1.0.0");
    let message = tenant.history(1).remove(0).meta.message.unwrap();
    assert!(
        message.contains("aborted: operator saw errors"),
        "{message}"
    );
    // The monitor notices at its next tick and stops measuring.
    let ended = deployment.wait().await.unwrap();
    assert_eq!(ended.status, DeploymentStatus::Aborted);
    assert_eq!(check.calls(), 2);
    // Ending twice is refused.
    let again = tenant
        .abort_deployment(ended.id, "again".into())
        .await
        .unwrap_err();
    assert!(matches!(
        again.timeline_error(),
        Some(TimelineError::DeploymentFinished { .. })
    ));

    let deployment = guarded(&tenant, "v2.1", &check, 10, 600)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let promoted = deployment.promote().await.unwrap();
    assert_eq!(promoted.deployment.status, DeploymentStatus::Promoted);
    assert_eq!(promoted.deployment.measurements.len(), 1);
    assert_eq!(tenant.revision(), Revision(3));
    assert_eq!(tenant.current()["version"], "2.0.0");
    assert_eq!(deployment.wait().await.unwrap().measurements.len(), 1);
    assert_eq!(tenant.deployments().len(), 2);
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bad_deployments_are_refused_and_change_nothing() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    let unnamed = tenant.deploy(v2()).start().await.unwrap_err();
    assert_eq!(unnamed.kind(), ErrorKind::Invalid);
    let short = tenant
        .deploy(v2())
        .name("v2")
        .interval(Duration::from_secs(10))
        .window(Duration::from_secs(5))
        .start()
        .await
        .unwrap_err();
    assert_eq!(short.kind(), ErrorKind::Invalid);
    let failing_patch = tenant
        .deploy(patch(json!([{"op": "remove", "path": "/missing"}])))
        .name("v2")
        .start()
        .await
        .unwrap_err();
    assert_eq!(failing_patch.kind(), ErrorKind::Rejected);
    tenant.snapshot_named("pre_v9").await.unwrap();
    let taken = tenant.deploy(v2()).name("v9").start().await.unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::Exists);
    assert_eq!(tenant.revision(), Revision(0));
    assert!(tenant.deployments().is_empty());
    assert_eq!(tenant.snapshots().len(), 1);
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_deployment_in_progress_resumes_after_a_restart() {
    let journal = Arc::new(MemoryJournal::new());
    let start = Timestamp::parse_rfc3339("2026-03-14T12:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let check = Scripted::new("memory", vec![]);
    let runtime = Runtime::<Doc>::builder()
        .journal(journal.clone())
        .clock(clock.clone())
        .health_check(check.clone())
        .start()
        .await
        .unwrap();
    let tenant = tenant(&runtime).await;
    let deployment = guarded(&tenant, "v2.0.0", &check, 10, 60)
        .start()
        .await
        .unwrap();
    let id = deployment.id();
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(tenant.deployment(id).unwrap().measurements.len(), 2);
    drop((tenant, deployment));
    // The process stops 20 s into the window.
    runtime.shutdown().await.unwrap();
    clock.advance_secs(20);

    let runtime = Runtime::<Doc>::builder()
        .journal(journal.clone())
        .clock(clock.clone())
        .health_check(check.clone())
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tenant = runtime.tenant("shop").await.unwrap();
    let resumed = tenant.deployment(id).unwrap();
    assert_eq!(resumed.status, DeploymentStatus::Monitoring);
    // 40 s of window are left: four more rounds, then promotion.
    tokio::time::sleep(Duration::from_secs(45)).await;
    let ended = tenant.deployment(id).unwrap();
    assert_eq!(ended.status, DeploymentStatus::Promoted, "{ended:?}");
    assert_eq!(ended.measurements.len(), 6);
    assert_eq!(check.calls(), 6);
    assert_eq!(tenant.revision(), Revision(1));
    runtime.shutdown().await.unwrap();

    // Resumed without its custom check registered, the deployment errs
    // every round and rolls back after error_limit + 1 of them.
    let runtime = Runtime::<Doc>::builder()
        .journal(journal.clone())
        .clock(clock.clone())
        .start()
        .await
        .unwrap();
    let tenant = runtime.tenant("shop").await.unwrap();
    let second = guarded(&tenant, "v2.0.1", &check, 10, 600)
        .start()
        .await
        .unwrap()
        .id();
    drop(tenant);
    runtime.shutdown().await.unwrap();
    let runtime = Runtime::<Doc>::builder()
        .journal(journal)
        .clock(clock)
        .start()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let tenant = runtime.tenant("shop").await.unwrap();
    let ended = tenant.deployment(second).unwrap();
    assert_eq!(ended.status, DeploymentStatus::RolledBack, "{ended:?}");
    assert_eq!(ended.errors_in_a_row("memory"), 5);
    assert!(ended.reason.unwrap().contains("not registered"));
    runtime.shutdown().await.unwrap();
}

/// A tenant with a deployment in progress is not deleted by default: the
/// refusal names the deployment and its protected `pre_` snapshot, and
/// nothing changes; `force` deletes it, and its monitor ends.
#[tokio::test(start_paused = true)]
async fn deleting_a_tenant_mid_deployment_needs_force() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant(&runtime).await;
    let check = Scripted::new("memory", vec![]);
    let deployment = guarded(&tenant, "v2", &check, 10, 600)
        .start()
        .await
        .unwrap();
    let refused = runtime.delete_tenant("shop").await.unwrap_err();
    let Error::DeleteRefused(refusal) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(refusal.deployment.as_ref().unwrap().name, "v2");
    assert_eq!(refusal.protected_snapshots, vec![pre("v2")]);
    assert!(refused.to_string().contains("deployment 'v2'"), "{refused}");
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert_eq!(tenant.revision(), Revision(1));
    assert!(tenant.timeline().open_deployment().is_some());
    // Detaching forks is not forcing.
    assert!(runtime
        .delete_tenant_with("shop", DeleteOptions::default().detach_forks())
        .await
        .is_err());
    runtime
        .delete_tenant_with("shop", DeleteOptions::default().force())
        .await
        .unwrap();
    assert!(!runtime.tenant_exists(tenant.id()));
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(deployment.wait().await.is_err());
    runtime.shutdown().await.unwrap();
}
