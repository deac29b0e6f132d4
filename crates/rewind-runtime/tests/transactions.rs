//! Transactions: the guide's four steps (create_session, set_config,
//! enable_features, send_notifications) failing at every position, in every
//! way a step can fail (a refused change, a compute closure's error or panic,
//! an effect's error, panic or timeout), under every rollback policy, leave
//! exactly the policy's target state — computed here independently as plain
//! JSON — and a report that says what happened. Checkpoints stay addressable
//! after the transaction. Writers that arrive while a transaction holds the
//! lease wait and land after it, never between its steps; past the lease
//! timeout they are refused and nothing of theirs is applied.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rewind_core::{
    AutoTrigger, Cause, Doc, InvalidInput, Patch, RestoredKind, Revision, RollbackPolicy,
    RollbackTarget, SnapshotKind, SnapshotName, StateRef, TargetKind, TenantId, TimelineError,
    TransactionId, TransactionOutcome,
};
use rewind_runtime::{
    AutoSnapshotPolicy, Error, ErrorKind, FailureReason, Runtime, SupervisorMsg, Tenant,
    TenantConfig, TenantMsg, TransactionPlan, TransactionReport,
};
use serde_json::{json, Value};
use tokio::sync::oneshot;

mod support;
use support::{accepted, observe};

fn doc(value: &Value) -> Doc {
    Doc::from_json(value).expect("test documents are shallow")
}

fn patch(value: Value) -> Patch {
    Patch::from_json(&value).expect("test patches are well formed")
}

fn name(text: &str) -> SnapshotName {
    SnapshotName::new(text).expect("test names are valid")
}

const STEPS: [&str; 4] = [
    "create_session",
    "set_config",
    "enable_features",
    "send_notifications",
];

/// The state before the transaction and after each of its steps, written out
/// by hand: `expected(k)` is the state after `k` steps (`send_notifications`
/// changes nothing).
fn expected(steps_done: usize) -> Value {
    match steps_done {
        0 => json!({"user": "ada", "sessions": 0, "config": {}, "features": []}),
        1 => json!({
            "user": "ada", "sessions": 1, "config": {}, "features": [],
            "session": {"id": "s-1", "user": "ada"}
        }),
        2 => json!({
            "user": "ada", "sessions": 1,
            "config": {"theme": "dark", "max_sessions": 10}, "features": [],
            "session": {"id": "s-1", "user": "ada"}
        }),
        _ => json!({
            "user": "ada", "sessions": 1,
            "config": {"theme": "dark", "max_sessions": 10},
            "features": ["beta", "dark_mode"],
            "session": {"id": "s-1", "user": "ada"}
        }),
    }
}

/// How the failing step fails.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Failure {
    /// A change the model refuses (a JSON Patch `test` that does not hold).
    RefusedChange,
    /// A compute closure returning `Err`.
    ComputeError,
    /// A compute closure that panics.
    ComputePanic,
    /// An effect returning `Err` (the guide's `send_notifications`).
    EffectError,
    /// An effect that panics.
    EffectPanic,
    /// An effect that never finishes (the step timeout ends it).
    EffectTimeout,
}

const STEP_TIMEOUT: Duration = Duration::from_millis(250);

fn add_step(plan: TransactionPlan<Doc>, index: usize) -> TransactionPlan<Doc> {
    let step = STEPS[index];
    match index {
        0 => plan.step(
            step,
            patch(json!([
                {"op": "add", "path": "/session", "value": {"id": "s-1", "user": "ada"}},
                {"op": "replace", "path": "/sessions", "value": 1}
            ])),
        ),
        1 => plan.compute(step, |state: &Doc| {
            let sessions = state["sessions"]
                .as_i64()
                .ok_or("sessions is not a number")?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(patch(json!([
                {"op": "add", "path": "/config/theme", "value": "dark"},
                {"op": "add", "path": "/config/max_sessions", "value": sessions * 10}
            ])))
        }),
        2 => plan.step(
            step,
            patch(json!([
                {"op": "add", "path": "/features/-", "value": "beta"},
                {"op": "add", "path": "/features/-", "value": "dark_mode"}
            ])),
        ),
        _ => plan.effect(step, |state: Doc| async move {
            // Notifications see the state the earlier steps made.
            assert_eq!(state.to_json(), expected(3));
            Ok::<(), Error>(())
        }),
    }
}

fn add_failing_step(
    plan: TransactionPlan<Doc>,
    index: usize,
    failure: Failure,
) -> TransactionPlan<Doc> {
    let step = STEPS[index];
    match failure {
        Failure::RefusedChange => plan.step(
            step,
            patch(json!([
                {"op": "add", "path": "/touched", "value": true},
                {"op": "test", "path": "/user", "value": "grace"}
            ])),
        ),
        Failure::ComputeError => plan.compute(step, |_: &Doc| {
            Err::<Patch, _>("the config service is unreachable")
        }),
        Failure::ComputePanic => plan.compute(step, |_: &Doc| -> Result<Patch, Error> {
            panic!("compute exploded")
        }),
        Failure::EffectError => {
            plan.effect(step, |_: Doc| async { Err::<(), _>("smtp server down") })
        }
        Failure::EffectPanic => plan.effect(step, |_: Doc| async {
            if true {
                panic!("effect exploded");
            }
            Ok::<(), Error>(())
        }),
        Failure::EffectTimeout => plan
            .effect(step, |_: Doc| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<(), Error>(())
            })
            .step_timeout(STEP_TIMEOUT),
    }
}

fn assert_reason(failure: Failure, reason: &FailureReason) {
    let ok = match (failure, reason) {
        (Failure::RefusedChange, FailureReason::Error(e)) => e.contains("test failed"),
        (Failure::ComputeError, FailureReason::Error(e)) => {
            e.contains("the config service is unreachable")
        }
        (Failure::ComputePanic, FailureReason::Panic(p)) => p.contains("compute exploded"),
        (Failure::EffectError, FailureReason::Error(e)) => e.contains("smtp server down"),
        (Failure::EffectPanic, FailureReason::Panic(p)) => p.contains("effect exploded"),
        (Failure::EffectTimeout, FailureReason::Timeout(d)) => *d == STEP_TIMEOUT,
        _ => false,
    };
    assert!(ok, "{failure:?} reported as {reason:?}");
}

/// The policies to try when step `position` (1-based) fails, with the
/// number of steps whose state each one keeps.
fn policies(position: usize) -> Vec<(RollbackPolicy, usize)> {
    let mut policies = vec![
        (RollbackPolicy::Start, 0),
        (RollbackPolicy::LastCheckpoint, position - 1),
        (RollbackPolicy::Checkpoint(name("start")), 0),
    ];
    for kept in 1..position {
        policies.push((RollbackPolicy::Checkpoint(name(STEPS[kept - 1])), kept));
    }
    policies
}

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
        .expect("runtime starts")
}

/// A tenant at revision 1 holding `expected(0)`.
async fn seeded(runtime: &Runtime<Doc>, id: &str) -> Tenant<Doc> {
    let tenant = runtime
        .create_tenant(id, doc(&json!({"user": "ada"})))
        .await
        .unwrap();
    tenant
        .apply(patch(json!([
            {"op": "add", "path": "/sessions", "value": 0},
            {"op": "add", "path": "/config", "value": {}},
            {"op": "add", "path": "/features", "value": []}
        ])))
        .await
        .unwrap();
    assert_eq!(tenant.current().to_json(), expected(0));
    tenant
}

const BASE: u64 = 1;

fn checkpoint(transaction: TransactionId, step: &str) -> StateRef {
    StateRef::Checkpoint {
        transaction,
        name: name(step),
    }
}

/// Step `position` (1-based) fails with `failure`, under every policy.
async fn fail_everywhere(failure: Failure) {
    let runtime = runtime().await;
    for position in 1..=STEPS.len() {
        for (p, (policy, kept)) in policies(position).into_iter().enumerate() {
            let case = format!("{failure:?} at step {position}, policy {policy:?}");
            let tenant = seeded(&runtime, &format!("t{position}_{p}")).await;
            let mut plan = TransactionPlan::new().on_failure(policy.clone());
            for index in 0..position - 1 {
                plan = add_step(plan, index);
            }
            plan = add_failing_step(plan, position - 1, failure);
            let report = tenant.run_transaction_report(plan).await.expect(&case);
            check_rolled_back(&tenant, &report, failure, position, &policy, kept, &case).await;
        }
    }
    runtime.shutdown().await.unwrap();
}

async fn check_rolled_back(
    tenant: &Tenant<Doc>,
    report: &TransactionReport,
    failure: Failure,
    position: usize,
    policy: &RollbackPolicy,
    kept: usize,
    case: &str,
) {
    let completed = position - 1;
    let transaction = report.transaction;

    // The head is exactly the policy's target.
    assert_eq!(tenant.current().to_json(), expected(kept), "{case}");
    assert_eq!(report.outcome, TransactionOutcome::RolledBack, "{case}");
    assert!(!report.is_committed());

    // The completed steps, their revisions and checkpoints.
    assert_eq!(report.steps.len(), completed, "{case}");
    for (i, step) in report.steps.iter().enumerate() {
        let revision = Revision(BASE + i as u64 + 1);
        assert_eq!(step.name.as_str(), STEPS[i], "{case}");
        assert_eq!(step.revision, Some(revision), "{case}");
        assert_eq!(step.checkpoint.name.as_str(), STEPS[i], "{case}");
        assert_eq!(step.checkpoint.kind, SnapshotKind::Checkpoint, "{case}");
        assert_eq!(step.checkpoint.revision, revision, "{case}");
        assert_eq!(step.checkpoint.transaction, Some(transaction), "{case}");
    }

    // The failure.
    let failed = report.failure.as_ref().expect(case);
    assert_eq!(failed.index, position - 1, "{case}");
    assert_eq!(failed.step.as_str(), STEPS[position - 1], "{case}");
    assert_reason(failure, &failed.reason);

    let history = tenant.history(usize::MAX);
    let mut causes: Vec<Cause> = history.iter().rev().map(|i| i.cause.clone()).collect();
    if kept == completed {
        // The target is the head itself: nothing to undo, so no rollback
        // revision and no pre-rollback snapshot.
        assert!(report.unchanged, "{case}");
        assert!(report.rollback.is_none(), "{case}");
        assert_eq!(
            tenant.revision(),
            Revision(BASE + completed as u64),
            "{case}"
        );
        assert!(
            report
                .to_string()
                .ends_with("; rollback: not needed (state unchanged)"),
            "{case}: {report}"
        );
        assert!(
            !tenant
                .snapshots()
                .iter()
                .any(|s| s.trigger == Some(AutoTrigger::PreRollback)),
            "{case}: no pre-rollback snapshot"
        );
    } else {
        assert!(!report.unchanged, "{case}");
        // The rollback: a new revision after the completed steps.
        let rollback = report.rollback.as_ref().expect(case);
        let rollback_revision = Revision(BASE + completed as u64 + 1);
        let target_name = match policy {
            RollbackPolicy::Start => "start".to_owned(),
            RollbackPolicy::LastCheckpoint if completed == 0 => "start".to_owned(),
            RollbackPolicy::LastCheckpoint => STEPS[completed - 1].to_owned(),
            RollbackPolicy::Checkpoint(name) => name.as_str().to_owned(),
        };
        assert_eq!(rollback.revision, rollback_revision, "{case}");
        assert_eq!(rollback.restored.kind, RestoredKind::Checkpoint, "{case}");
        assert_eq!(rollback.restored.transaction, Some(transaction), "{case}");
        assert_eq!(
            rollback.restored.name.as_ref().map(|n| n.as_str()),
            Some(target_name.as_str()),
            "{case}"
        );
        assert_eq!(
            rollback.restored.revision,
            Revision(BASE + kept as u64),
            "{case}"
        );
        assert_eq!(
            rollback.pre_rollback.revision,
            Revision(BASE + completed as u64),
            "{case}"
        );
        assert_eq!(tenant.revision(), rollback_revision, "{case}");

        // The history ends with the rollback.
        let rollback_cause = causes.pop().unwrap();
        assert!(
            matches!(
                &rollback_cause,
                Cause::Rollback { target: TargetKind::Checkpoint, from, .. }
                    if *from == Revision(BASE + completed as u64)
            ),
            "{case}: {rollback_cause:?}"
        );
    }
    // The steps' revisions (then the rollback's, popped above).
    let step_causes: Vec<Cause> = (0..completed)
        .map(|i| Cause::TransactionStep {
            transaction,
            step: name(STEPS[i]),
        })
        .collect();
    assert_eq!(causes[BASE as usize + 1..], step_causes[..], "{case}");

    // The transaction is finished and its checkpoints stay addressable.
    let info = tenant
        .timeline()
        .transactions()
        .into_iter()
        .find(|t| t.id == transaction)
        .expect(case);
    assert_eq!(info.outcome, Some(TransactionOutcome::RolledBack), "{case}");
    assert_eq!(info.checkpoints.len(), completed + 1, "{case}");
    assert_eq!(
        tenant
            .read_at(&checkpoint(transaction, "start"))
            .unwrap()
            .to_json(),
        expected(0),
        "{case}"
    );
    for (i, step) in STEPS.iter().enumerate().take(completed) {
        assert_eq!(
            tenant
                .read_at(&checkpoint(transaction, step))
                .unwrap()
                .to_json(),
            expected(i + 1),
            "{case}"
        );
    }
    let missing = tenant
        .read_at(&checkpoint(transaction, STEPS[position - 1]))
        .unwrap_err();
    assert!(
        matches!(
            missing.timeline_error(),
            Some(TimelineError::CheckpointNotFound { .. })
        ),
        "{case}: {missing:?}"
    );

    // Rolling back to them later works.
    if completed > 0 {
        tenant
            .rollback(RollbackTarget::Checkpoint {
                transaction,
                name: name(STEPS[completed - 1]),
            })
            .await
            .expect(case);
        assert_eq!(tenant.current().to_json(), expected(completed), "{case}");
    }
    tenant
        .rollback(RollbackTarget::Checkpoint {
            transaction,
            name: name("start"),
        })
        .await
        .expect(case);
    assert_eq!(tenant.current().to_json(), expected(0), "{case}");

    // The lease is free.
    tenant
        .apply(patch(
            json!([{"op": "add", "path": "/after", "value": true}]),
        ))
        .await
        .expect(case);
}

#[tokio::test(start_paused = true)]
async fn a_refused_change_at_any_step_rolls_back_per_policy() {
    fail_everywhere(Failure::RefusedChange).await;
}

#[tokio::test(start_paused = true)]
async fn a_compute_error_at_any_step_rolls_back_per_policy() {
    fail_everywhere(Failure::ComputeError).await;
}

#[tokio::test(start_paused = true)]
async fn a_compute_panic_at_any_step_rolls_back_per_policy() {
    fail_everywhere(Failure::ComputePanic).await;
}

#[tokio::test(start_paused = true)]
async fn an_effect_error_at_any_step_rolls_back_per_policy() {
    fail_everywhere(Failure::EffectError).await;
}

#[tokio::test(start_paused = true)]
async fn an_effect_panic_at_any_step_rolls_back_per_policy() {
    fail_everywhere(Failure::EffectPanic).await;
}

#[tokio::test(start_paused = true)]
async fn an_effect_timeout_at_any_step_rolls_back_per_policy() {
    fail_everywhere(Failure::EffectTimeout).await;
}

/// The tenant's `step_timeout` applies when the plan sets none, and the
/// timed-out effect is cancelled.
#[tokio::test(start_paused = true)]
async fn the_tenant_step_timeout_applies_by_default_and_cancels_the_effect() {
    let runtime = runtime().await;
    let tenant = runtime
        .create_tenant_with(
            TenantId::new("slow").unwrap(),
            doc(&expected(0)),
            Some(TenantConfig {
                step_timeout: Duration::from_secs(2),
                ..config()
            }),
        )
        .await
        .unwrap();
    let (dropped_tx, dropped_rx) = oneshot::channel::<()>();
    let started = tokio::time::Instant::now();
    let report = tenant
        .transaction()
        .step(
            "one",
            patch(json!([{"op": "add", "path": "/one", "value": 1}])),
        )
        .effect("hang", move |_: Doc| async move {
            // Dropped (and so sent as closed) when the effect is cancelled.
            let _guard = dropped_tx;
            std::future::pending::<()>().await;
            Ok::<(), Error>(())
        })
        .on_failure(RollbackPolicy::Start)
        .run_report()
        .await
        .unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let failure = report.failure.unwrap();
    assert_eq!(
        failure.reason,
        FailureReason::Timeout(Duration::from_secs(2))
    );
    assert_eq!(report.outcome, TransactionOutcome::RolledBack);
    assert_eq!(tenant.current().to_json(), expected(0));
    assert!(dropped_rx.await.is_err(), "the effect was cancelled");
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_committed_transaction_has_consecutive_revisions_and_addressable_checkpoints() {
    let runtime = runtime().await;
    let tenant = seeded(&runtime, "acme_corp").await;
    let mut plan = TransactionPlan::new().on_failure(RollbackPolicy::LastCheckpoint);
    for index in 0..STEPS.len() {
        plan = add_step(plan, index);
    }
    let report = tenant.run_transaction(plan).await.unwrap();
    assert_eq!(report.outcome, TransactionOutcome::Committed);
    assert!(report.is_committed());
    assert!(report.failure.is_none());
    assert!(report.rollback.is_none());
    assert_eq!(tenant.current().to_json(), expected(3));
    assert_eq!(tenant.revision(), Revision(BASE + 3));

    let revisions: Vec<Option<Revision>> = report.steps.iter().map(|s| s.revision).collect();
    assert_eq!(
        revisions,
        vec![
            Some(Revision(BASE + 1)),
            Some(Revision(BASE + 2)),
            Some(Revision(BASE + 3)),
            None, // an effect changes no state
        ]
    );
    let checkpoints: Vec<(String, Revision)> = report
        .steps
        .iter()
        .map(|s| (s.checkpoint.name.as_str().to_owned(), s.checkpoint.revision))
        .collect();
    assert_eq!(
        checkpoints,
        vec![
            ("create_session".to_owned(), Revision(BASE + 1)),
            ("set_config".to_owned(), Revision(BASE + 2)),
            ("enable_features".to_owned(), Revision(BASE + 3)),
            ("send_notifications".to_owned(), Revision(BASE + 3)),
        ]
    );
    let steps: Vec<Cause> = tenant
        .history(3)
        .into_iter()
        .rev()
        .map(|i| i.cause)
        .collect();
    assert_eq!(
        steps,
        STEPS[..3]
            .iter()
            .map(|s| Cause::TransactionStep {
                transaction: report.transaction,
                step: name(s),
            })
            .collect::<Vec<_>>()
    );

    // Checkpoints outlive the transaction.
    let t = report.transaction;
    assert_eq!(
        tenant.read_at(&checkpoint(t, "start")).unwrap().to_json(),
        expected(0)
    );
    for (i, step) in STEPS.iter().enumerate() {
        assert_eq!(
            tenant.read_at(&checkpoint(t, step)).unwrap().to_json(),
            expected((i + 1).min(3))
        );
    }
    let diff = tenant
        .diff(
            &checkpoint(t, "set_config"),
            &checkpoint(t, "enable_features"),
        )
        .unwrap();
    assert!(!diff.is_empty());
    tenant
        .rollback(RollbackTarget::Checkpoint {
            transaction: t,
            name: name("set_config"),
        })
        .await
        .unwrap();
    assert_eq!(tenant.current().to_json(), expected(2));
    let info = &tenant.timeline().transactions()[0];
    assert_eq!(info.outcome, Some(TransactionOutcome::Committed));
    assert_eq!(info.start_revision, Revision(BASE));
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_plans_are_refused_and_change_nothing() {
    let runtime = runtime().await;
    let tenant = seeded(&runtime, "acme_corp").await;
    let before = observe(&tenant);
    let ran = Arc::new(AtomicBool::new(false));
    let effect = |ran: &Arc<AtomicBool>| {
        let ran = Arc::clone(ran);
        move |_: Doc| async move {
            ran.store(true, Ordering::SeqCst);
            Ok::<(), Error>(())
        }
    };
    let one = || patch(json!([{"op": "add", "path": "/one", "value": 1}]));

    let plans: Vec<(&str, TransactionPlan<Doc>)> = vec![
        (
            "bad step name",
            TransactionPlan::new()
                .effect("notify", effect(&ran))
                .step("create session!", one()),
        ),
        (
            "empty step name",
            TransactionPlan::new()
                .effect("notify", effect(&ran))
                .step("", one()),
        ),
        (
            "duplicate step",
            TransactionPlan::new()
                .effect("notify", effect(&ran))
                .step("create_session", one())
                .step("create_session", one()),
        ),
        (
            "step named start",
            TransactionPlan::new()
                .effect("notify", effect(&ran))
                .step("start", one()),
        ),
        (
            "unknown checkpoint policy",
            TransactionPlan::new()
                .effect("notify", effect(&ran))
                .step("create_session", one())
                .on_failure(RollbackPolicy::Checkpoint(name("config_set"))),
        ),
    ];
    for (what, plan) in plans {
        let err = tenant.run_transaction(plan).await.unwrap_err();
        let expected_kind = match what {
            "bad step name" | "empty step name" => {
                matches!(err, Error::Invalid(InvalidInput::SnapshotName { .. }))
            }
            "step named start" => {
                matches!(err, Error::Invalid(InvalidInput::ReservedName { .. }))
            }
            _ => matches!(err, Error::Invalid(InvalidInput::Config(_))),
        };
        assert!(expected_kind, "{what}: {err:?}");
        assert_eq!(observe(&tenant), before, "{what}");
        assert!(!ran.load(Ordering::SeqCst), "{what}: a step ran");
    }
    // The same through the builder.
    let err = tenant
        .transaction()
        .step("a", one())
        .step("a", one())
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    assert_eq!(observe(&tenant), before);

    // The lease was never taken.
    tenant.apply(one()).await.unwrap();
    assert_eq!(tenant.revision(), before.revision.next());
    runtime.shutdown().await.unwrap();
}

/// A named checkpoint the transaction never reached cannot be restored: the
/// transaction ends `Failed` without a rollback, the head stays after the
/// last completed step (the failing step itself committed nothing), and the
/// lease is released.
#[tokio::test]
async fn a_named_checkpoint_not_reached_leaves_the_last_completed_step() {
    let runtime = runtime().await;
    let tenant = seeded(&runtime, "acme_corp").await;
    let mut plan =
        TransactionPlan::new().on_failure(RollbackPolicy::Checkpoint(name("enable_features")));
    plan = add_step(plan, 0);
    plan = add_failing_step(plan, 1, Failure::ComputeError);
    plan = add_step(plan, 2);
    let err = tenant.run_transaction(plan).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TransactionFailed, "{err}");
    let report = err.into_transaction_report().unwrap();
    assert_eq!(report.outcome, TransactionOutcome::Failed);
    assert!(report.rollback.is_none());
    assert_eq!(report.failure.as_ref().unwrap().index, 1);
    assert_eq!(tenant.current().to_json(), expected(1));
    assert_eq!(tenant.revision(), Revision(BASE + 1));
    assert_eq!(
        tenant.timeline().transactions()[0].outcome,
        Some(TransactionOutcome::Failed)
    );
    tenant
        .apply(patch(
            json!([{"op": "add", "path": "/after", "value": true}]),
        ))
        .await
        .unwrap();
    runtime.shutdown().await.unwrap();
}

/// Starts a transaction whose second step is an effect that waits for the
/// returned sender; returns once that effect runs (so the lease is held and
/// the first step committed).
async fn hold_lease(
    tenant: &Tenant<Doc>,
    fail_after_release: bool,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<TransactionReport, Error>>,
) {
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let plan = tenant
        .transaction()
        .step(
            "create_session",
            patch(json!([{"op": "replace", "path": "/sessions", "value": 1}])),
        )
        .effect("wait", move |_: Doc| async move {
            started_tx.send(()).expect("the test waits for the effect");
            release_rx.await.expect("the test releases the effect");
            if fail_after_release {
                Err::<(), _>("notifications failed")
            } else {
                Ok(())
            }
        })
        .step(
            "enable_features",
            patch(json!([{"op": "add", "path": "/features/-", "value": "beta"}])),
        )
        .on_failure(RollbackPolicy::Start);
    let running = tokio::spawn(plan.run_report());
    started_rx.await.expect("the effect starts");
    (release_tx, running)
}

/// A read through the tenant's mailbox: when it is answered, every request
/// sent to the tenant before it has been handled (or queued for the lease).
async fn mailbox_barrier(runtime: &Runtime<Doc>, tenant: &str) {
    let id = TenantId::new(tenant).unwrap();
    let read = ractor::call!(runtime.supervisor(), |reply| SupervisorMsg::Tenant {
        id,
        msg: TenantMsg::Read {
            at: StateRef::Head,
            reply,
        },
    })
    .expect("the supervisor answers");
    read.expect("reads are served while a transaction holds the lease");
}

fn writer_patch(i: usize) -> Patch {
    patch(json!([{"op": "add", "path": format!("/writer{i}"), "value": i}]))
}

async fn concurrent_writers(fail_transaction: bool) {
    let runtime = runtime().await;
    let tenant = seeded(&runtime, "acme_corp").await;
    let (release, running) = hold_lease(&tenant, fail_transaction).await;
    let during = tenant.revision();
    assert_eq!(during, Revision(BASE + 1));

    let mut writers = Vec::new();
    for i in 0..5 {
        let tenant = tenant.clone();
        writers.push(accepted(async move { tenant.apply(writer_patch(i)).await }).await);
    }
    assert_eq!(tenant.in_flight(), 5, "every write was accepted");
    mailbox_barrier(&runtime, "acme_corp").await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "writes wait for the lease"
    );
    assert_eq!(tenant.revision(), during);
    assert!(tenant.current().pointer("/writer0").is_none());

    release.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    let mut commits = Vec::new();
    for writer in writers {
        commits.push(writer.await.unwrap().expect("a waiting write is not lost"));
    }
    assert_eq!(tenant.in_flight(), 0);

    let t = report.transaction;
    let mut expected_causes = vec![Cause::TransactionStep {
        transaction: t,
        step: name("create_session"),
    }];
    let mut state = expected(0);
    if fail_transaction {
        assert_eq!(report.outcome, TransactionOutcome::RolledBack);
        expected_causes.push(Cause::Rollback {
            target: TargetKind::Checkpoint,
            restored: report.rollback.as_ref().unwrap().restored.clone(),
            from: Revision(BASE + 1),
        });
    } else {
        assert_eq!(report.outcome, TransactionOutcome::Committed);
        expected_causes.push(Cause::TransactionStep {
            transaction: t,
            step: name("enable_features"),
        });
        state["sessions"] = json!(1);
        state["features"] = json!(["beta"]);
    }
    // The transaction's revisions are contiguous; the writes follow, in the
    // order they arrived, and none is lost.
    let first_write = BASE + 3;
    for (i, commit) in commits.iter().enumerate() {
        assert_eq!(commit.revision, Revision(first_write + i as u64));
        expected_causes.push(Cause::Change);
        state[format!("writer{i}")] = json!(i);
    }
    let causes: Vec<Cause> = tenant
        .history(usize::MAX)
        .into_iter()
        .rev()
        .skip(BASE as usize + 1)
        .map(|i| i.cause)
        .collect();
    assert_eq!(causes, expected_causes);
    assert_eq!(tenant.current().to_json(), state);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn writers_during_a_committed_transaction_wait_and_follow_it() {
    concurrent_writers(false).await;
}

#[tokio::test]
async fn writers_during_a_rolled_back_transaction_wait_and_follow_the_rollback() {
    concurrent_writers(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_writer_waiting_past_the_lease_timeout_is_refused_and_not_applied() {
    let runtime = runtime().await;
    let tenant = runtime
        .create_tenant_with(
            TenantId::new("acme_corp").unwrap(),
            doc(&json!({"user": "ada", "sessions": 0, "features": []})),
            Some(TenantConfig {
                lease_timeout: Duration::from_secs(1),
                ..config()
            }),
        )
        .await
        .unwrap();
    let (release, running) = hold_lease(&tenant, false).await;
    let holder = tenant
        .timeline()
        .transactions()
        .into_iter()
        .find(|t| t.outcome.is_none())
        .expect("a transaction holds the lease")
        .id;

    let early = {
        let tenant = tenant.clone();
        accepted(async move { tenant.apply(writer_patch(0)).await }).await
    };
    mailbox_barrier(&runtime, "acme_corp").await;
    tokio::time::advance(Duration::from_millis(600)).await;
    let late = {
        let tenant = tenant.clone();
        accepted(async move { tenant.apply(writer_patch(1)).await }).await
    };
    mailbox_barrier(&runtime, "acme_corp").await;
    assert_eq!(tenant.in_flight(), 2);

    // Paused time runs on to the first writer's deadline.
    let err = early.await.unwrap().unwrap_err();
    match &err {
        Error::LeaseTimeout {
            tenant: id,
            transaction,
            waited,
        } => {
            assert_eq!(id.as_str(), "acme_corp");
            assert_eq!(*transaction, holder);
            assert!(*waited >= Duration::from_secs(1), "{waited:?}");
        }
        other => panic!("expected LeaseTimeout, got {other:?}"),
    }
    assert!(!late.is_finished(), "the later writer has its own deadline");

    let err = late.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::LeaseTimeout { .. }), "{err:?}");
    assert_eq!(tenant.in_flight(), 0);

    release.send(()).unwrap();
    let report = running.await.unwrap().unwrap();
    assert!(report.is_committed());
    // Nothing the refused writers asked for was applied.
    let head = tenant.current().to_json();
    assert_eq!(
        head,
        json!({"user": "ada", "sessions": 1, "features": ["beta"]})
    );
    assert!(tenant
        .history(usize::MAX)
        .iter()
        .all(|i| i.cause != Cause::Change));
    assert_eq!(tenant.revision(), Revision(2));

    // With the lease free, writes go through at once.
    tenant.apply(writer_patch(2)).await.unwrap();
    assert_eq!(tenant.revision(), Revision(3));
    runtime.shutdown().await.unwrap();
}

/// The story of the bug: a newcomer wrote `tenant.transaction()...run().await?`
/// in a function returning `Result`, and a failing step went unnoticed: `run`
/// answered `Ok(report)` with a rolled-back outcome, so `?` passed it on as
/// success. A transaction that does not commit is an `Err` now, carrying the
/// report; `run_report` still answers the report whatever the outcome.
#[tokio::test]
async fn a_failed_transaction_is_an_err_for_the_question_mark() {
    async fn checkout(tenant: &Tenant<Doc>) -> Result<TransactionReport, Error> {
        let report = tenant
            .transaction()
            .step(
                "create_session",
                patch(json!([{"op": "replace", "path": "/sessions", "value": 1}])),
            )
            .effect("charge", |_: Doc| async { Err::<(), _>("card declined") })
            .run()
            .await?;
        Ok(report)
    }
    let runtime = runtime().await;
    let tenant = seeded(&runtime, "acme_corp").await;
    let result = checkout(&tenant).await;
    assert!(
        result.is_err(),
        "a rolled-back transaction must be an Err, got {result:?}"
    );
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TransactionFailed);
    let Error::TransactionFailed { tenant: id, report } = &err else {
        panic!("expected TransactionFailed, got {err:?}");
    };
    assert_eq!(id.as_str(), "acme_corp");
    assert_eq!(report.outcome, TransactionOutcome::RolledBack);
    assert_eq!(report.failure.as_ref().unwrap().step.as_str(), "charge");
    assert_eq!(err.transaction_report(), Some(&**report));
    assert!(
        err.to_string().starts_with(
            "tenant 'acme_corp': transaction 1: rolled back after step 'charge' failed: \
             error: card declined"
        ),
        "{err}"
    );
    assert_eq!(tenant.current().to_json(), expected(0), "rolled back");

    // The report whatever the outcome, and `Ok` for a committed one.
    let report = tenant
        .transaction()
        .effect("charge", |_: Doc| async { Err::<(), _>("card declined") })
        .run_report()
        .await
        .unwrap();
    assert_eq!(report.outcome, TransactionOutcome::RolledBack);
    let report = tenant
        .transaction()
        .step(
            "create_session",
            patch(json!([{"op": "replace", "path": "/sessions", "value": 1}])),
        )
        .run()
        .await
        .unwrap();
    assert!(report.is_committed());
    runtime.shutdown().await.unwrap();
}
