//! Transaction Builder with Checkpoints, from the product guide.
//!
//! Run with `cargo run --example transaction_checkpoints`.
//!
//! A four-step transaction — create a session, set the config, enable
//! features, notify users — takes a checkpoint after every step
//! (`session_created`, `config_set`, `features_enabled`). Step 4,
//! `send_notifications()`, is an async side effect that fails. The
//! transaction is run four times on fresh tenants, once per rollback option
//! of the guide:
//!
//! - to "features_enabled" (undo notifications only),
//! - to "config_set" (undo features + notifications),
//! - to "session_created" (undo everything except the session),
//! - to the initial state (undo all).
//!
//! Each report (steps, revisions, checkpoints, failure, rollback) is printed
//! and checked, with the state it leaves; the example exits non-zero if any
//! is wrong.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use rewind::core::{PatchError, RestoredKind};
use rewind::prelude::*;
use rewind::runtime::FailureReason;
use serde_json::{json, Value};

fn doc(value: Value) -> Result<Doc> {
    Ok(Doc::from_json(&value)?)
}

fn patch(value: Value) -> Result<Patch> {
    Ok(Patch::from_json(&value)?)
}

/// Step 3's change, computed from the state the transaction has reached:
/// beta is enabled for the users who have a session.
fn enable_features(state: &Doc) -> Result<Patch, PatchError> {
    let users: Vec<Value> = state["sessions"]
        .as_object()
        .map(|sessions| sessions.values().map(|s| s["user"].to_json()).collect())
        .unwrap_or_default();
    Patch::from_json(&json!([
        {"op": "replace", "path": "/features/new_ui", "value": true},
        {"op": "replace", "path": "/features/beta", "value": true},
        {"op": "add", "path": "/features/beta_users", "value": users}
    ]))
}

/// Step 4: an async call to a notification service, which is down.
async fn send_notifications(state: Doc) -> Result<(), String> {
    let recipients = state["sessions"].as_object().map_or(0, |s| s.len());
    tokio::time::sleep(Duration::from_millis(5)).await; // the network
    Err(format!(
        "notification service unavailable (503) while notifying {recipients} user(s)"
    ))
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let initial = doc(json!({
        "sessions": {},
        "config": {},
        "features": {"new_ui": false, "beta": false}
    }))?;
    let session_created = doc(json!({
        "sessions": {"alice": {"user": "alice"}},
        "config": {},
        "features": {"new_ui": false, "beta": false}
    }))?;
    let config_set = doc(json!({
        "sessions": {"alice": {"user": "alice"}},
        "config": {"theme": "dark", "lang": "en"},
        "features": {"new_ui": false, "beta": false}
    }))?;
    let features_enabled = doc(json!({
        "sessions": {"alice": {"user": "alice"}},
        "config": {"theme": "dark", "lang": "en"},
        "features": {"new_ui": true, "beta": true, "beta_users": ["alice"]}
    }))?;

    // (checkpoint, what rolling back to it undoes, the state it leaves, the
    // revision whose state it restores)
    let options = [
        (
            "features_enabled",
            "undo notifications only",
            &features_enabled,
            Revision(3),
        ),
        (
            "config_set",
            "undo features + notifications",
            &config_set,
            Revision(2),
        ),
        (
            "session_created",
            "undo everything except session",
            &session_created,
            Revision(1),
        ),
        ("start", "undo all", &initial, Revision(0)),
    ];

    for (target, meaning, expected, restored_revision) in options {
        let policy = if target == "start" {
            RollbackPolicy::Start
        } else {
            RollbackPolicy::Checkpoint(SnapshotName::new(target)?)
        };
        println!("== Rollback option: to \"{target}\" ({meaning}) ==");
        let tenant = runtime
            .create_tenant(&format!("app-{target}"), initial.clone())
            .await?;

        // `run` is `Ok` only for a committed transaction: a failed step is
        // `Error::TransactionFailed`, which carries the report.
        let outcome = tenant
            .transaction()
            .step(
                "session_created",
                patch(
                    json!([{"op": "add", "path": "/sessions/alice", "value": {"user": "alice"}}]),
                )?,
            )
            .step(
                "config_set",
                patch(json!([
                    {"op": "add", "path": "/config/theme", "value": "dark"},
                    {"op": "add", "path": "/config/lang", "value": "en"}
                ]))?,
            )
            .compute("features_enabled", enable_features)
            .effect("notify_users", send_notifications)
            .on_failure(policy.clone())
            .run()
            .await;
        let report = match outcome {
            Err(rewind::Error::TransactionFailed { report, .. }) => *report,
            Ok(report) => bail!(
                "step 4 must fail, yet transaction {} committed",
                report.transaction
            ),
            Err(other) => return Err(other.into()),
        };

        // The report, as the guide draws it.
        println!(
            "transaction {} → {}",
            report.transaction,
            report.outcome.as_str()
        );
        for step in &report.steps {
            println!(
                "  Step: {:<17} revision {}  📸 checkpoint \"{}\" (revision {})",
                step.name.as_str(),
                step.revision.map_or("-".into(), |r| r.to_string()),
                step.checkpoint.name,
                step.checkpoint.revision
            );
        }
        let failure = report.failure.as_ref().context("step 4 must fail")?;
        println!(
            "  Step: {:<17} ❌ ERROR! ({})",
            failure.step.as_str(),
            failure.reason
        );
        // Rolling back to the last checkpoint undoes nothing (a notification
        // changes no state): no revision is made for it.
        let head_is_target = restored_revision == Revision(3);
        match &report.rollback {
            None => println!(
                "  ↩ rollback to checkpoint \"{target}\": not needed (state unchanged: a \
                 notification changes none)"
            ),
            Some(rollback) => {
                let undone: Vec<String> = rollback
                    .diff
                    .entries
                    .iter()
                    .map(|e| e.path.to_string())
                    .collect();
                println!(
                    "  ↩ rolled back to checkpoint \"{}\" (revision {}) as revision {}; undone: {}",
                    rollback
                        .restored
                        .name
                        .as_ref()
                        .map_or("?", SnapshotName::as_str),
                    rollback.restored.revision,
                    rollback.revision,
                    undone.join(", ")
                );
            }
        }
        println!("  state: {}\n", tenant.current());

        // Checks.
        ensure!(
            report.outcome == TransactionOutcome::RolledBack,
            "the transaction must roll back, got {:?}",
            report.outcome
        );
        let names: Vec<&str> = report.steps.iter().map(|s| s.name.as_str()).collect();
        ensure!(
            names == ["session_created", "config_set", "features_enabled"],
            "three steps must complete, got {names:?}"
        );
        for (i, step) in report.steps.iter().enumerate() {
            let revision = Revision(i as u64 + 1);
            ensure!(
                step.revision == Some(revision)
                    && step.checkpoint.revision == revision
                    && step.checkpoint.name == step.name
                    && step.checkpoint.kind == SnapshotKind::Checkpoint
                    && step.checkpoint.transaction == Some(report.transaction),
                "step {} must commit revision {revision} and checkpoint it under its name",
                step.name
            );
        }
        ensure!(
            failure.index == 3 && failure.step.as_str() == "notify_users",
            "step 4 (notify_users) must be the failure, got {failure:?}"
        );
        match &failure.reason {
            FailureReason::Error(e) if e.contains("503") => {}
            other => bail!("step 4 must fail with the service's error, got {other}"),
        }
        if head_is_target {
            ensure!(
                report.rollback.is_none() && report.unchanged,
                "rolling back to the head's own checkpoint makes no revision, got {:?}",
                report.rollback
            );
        } else {
            let rollback = report
                .rollback
                .as_ref()
                .context("a rollback must be made")?;
            ensure!(
                rollback.restored.kind == RestoredKind::Checkpoint
                    && rollback.restored.name.as_ref().map(SnapshotName::as_str) == Some(target)
                    && rollback.restored.transaction == Some(report.transaction)
                    && rollback.restored.revision == restored_revision,
                "the rollback must restore checkpoint {target} (revision {restored_revision}), got {:?}",
                rollback.restored
            );
            ensure!(
                rollback.revision == Revision(4),
                "the rollback is a new revision (4), got {}",
                rollback.revision
            );
        }
        ensure!(
            tenant.current() == *expected,
            "rolling back to {target} must leave {expected}, got {}",
            tenant.current()
        );
        // The history keeps the steps; the checkpoints stay addressable after
        // the transaction ended.
        let revisions = if head_is_target { 4 } else { 5 };
        ensure!(
            tenant.history(usize::MAX).len() == revisions,
            "revisions 0..{revisions} must all be kept"
        );
        for (name, state) in [
            ("start", &initial),
            ("session_created", &session_created),
            ("config_set", &config_set),
            ("features_enabled", &features_enabled),
        ] {
            let at = StateRef::Checkpoint {
                transaction: report.transaction,
                name: SnapshotName::new(name)?,
            };
            ensure!(
                tenant.read_at(&at)? == *state,
                "checkpoint {name} must still read as its state"
            );
        }
    }

    runtime.shutdown().await?;
    println!("all four rollback options checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
