//! Debug Session with Time-Travel, from the product guide.
//!
//! Run with `cargo run --example time_travel_debugging`.
//!
//! User report: "App crashed around 2:30 PM". Snapshots were taken at 2:00,
//! 2:15, 2:30, 2:45 and 3:00 PM (the runtime reads an injected
//! [`ManualClock`], so the times are exact). The debug session:
//!
//! 1. `rollback_to_time(2:30 PM)` restores snap3;
//! 2. inspect the state at crash time (exact reads `AsOf` a time, diffs);
//! 3. reproduce the crash; 4. check the fix against that state;
//! 5. `rollback_to_latest_snapshot()` returns to the present;
//! 6. apply the fix.
//!
//! Then it checks that no data was lost: every revision from before the
//! session reads exactly as it did, and the present is what it was plus the
//! fix. The example exits non-zero if any of that is wrong.

use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use rewind::core::{Cause, Clock, CommitMeta, ManualClock, RestoredKind};
use rewind::prelude::*;
use serde_json::{json, Value};

fn doc(value: Value) -> Result<Doc> {
    Ok(Doc::from_json(&value)?)
}

fn patch(value: Value) -> Result<Patch> {
    Ok(Patch::from_json(&value)?)
}

/// 2026-03-14 at `hh:mm` UTC.
fn at(hh_mm: &str) -> Result<Timestamp> {
    Ok(Timestamp::parse_rfc3339(&format!(
        "2026-03-14T{hh_mm}:00Z"
    ))?)
}

/// "2:30 PM" for a timestamp of the story's day.
fn pm(t: Timestamp) -> String {
    let text = t.to_string(); // RFC 3339: 2026-03-14T14:30:00Z
    let hour: u32 = text[11..13].parse().unwrap_or(0);
    let minute = &text[14..16];
    let (h12, half) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!("{h12}:{minute} {half}")
}

/// The service's session cleanup. Without `cleanup.null_check`, a session
/// whose `user` is null crashes it — the bug of the story.
fn session_cleanup(state: &Doc) -> Result<Vec<String>, String> {
    let null_check = state["cleanup"]["null_check"].as_bool() == Some(true);
    let sessions = state["sessions"]
        .as_object()
        .ok_or("state has no sessions object")?;
    let mut cleaned = Vec::new();
    for (id, session) in sessions {
        match session["user"].as_str() {
            Some(user) => cleaned.push(format!("{id}:{user}")),
            None if null_check => cleaned.push(format!("{id}:(no user, skipped)")),
            None => return Err(format!("null pointer in session cleanup (session '{id}')")),
        }
    }
    Ok(cleaned)
}

fn kind_label(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Added => "added",
        ChangeKind::Removed => "removed",
        ChangeKind::Changed => "changed",
    }
}

fn describe(cause: &Cause) -> String {
    match cause {
        Cause::Initial => "initial state".into(),
        Cause::Change => "change".into(),
        Cause::Replace => "replace".into(),
        Cause::Rollback {
            target,
            restored,
            from,
        } => format!(
            "rollback ({target}) from revision {from} to {} (revision {})",
            restored
                .name
                .as_ref()
                .map_or_else(|| "a revision".to_owned(), |n| format!("'{n}'")),
            restored.revision
        ),
        Cause::TransactionStep { transaction, step } => {
            format!("step '{step}' of transaction {transaction}")
        }
        other => other.to_string(),
    }
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let clock = ManualClock::new(at("13:50")?);
    let runtime = Runtime::<Doc>::builder()
        .clock(Arc::new(clock.clone()))
        .start()
        .await?;
    let app = runtime
        .create_tenant(
            "acme_corp",
            doc(json!({"sessions": {}, "cleanup": {"null_check": false}}))?,
        )
        .await?;

    println!("== The afternoon: a snapshot every 15 minutes ==");
    let afternoon = [
        ("14:00", "s1", json!({"user": "alice"})),
        ("14:15", "s2", json!({"user": "bob"})),
        ("14:30", "s3", json!({"user": null})), // the session that crashes cleanup
        ("14:45", "s4", json!({"user": "carol"})),
        ("15:00", "s5", json!({"user": "dave"})),
    ];
    for (i, (time, id, session)) in afternoon.into_iter().enumerate() {
        clock.set(at(time)?);
        app.apply(patch(
            json!([{"op": "add", "path": format!("/sessions/{id}"), "value": session}]),
        )?)
        .await?;
        let snap = app.snapshot_named(&format!("snap{}", i + 1)).await?;
        let health = match session_cleanup(&app.current()) {
            Ok(_) => "cleanup ok".to_owned(),
            Err(e) => format!("🐛 {e}"),
        };
        println!(
            "{:>8}  📸 {}  revision {}  +session {id}  {health}",
            pm(snap.created_at),
            snap.name,
            snap.revision
        );
    }

    clock.set(at("15:10")?);
    println!(
        "\n{}  User report: \"App crashed around 2:30 PM\"",
        pm(clock.now())
    );
    let present = app.current();
    let before = app.timeline(); // an immutable copy of the whole history
    ensure!(
        session_cleanup(&present).is_err(),
        "the present state must crash cleanup"
    );

    println!("\n== Debug process ==");
    clock.set(at("15:12")?);
    let crash = at("14:30")?;
    let outcome = app.rollback_to_time(crash).await?;
    let restored = outcome
        .restored
        .name
        .clone()
        .context("a time rollback restores a snapshot")?;
    println!(
        "1. rollback_to_time({}) → restores {restored} (revision {}) as revision {}",
        pm(crash),
        outcome.restored.revision,
        outcome.revision
    );
    ensure!(
        restored.as_str() == "snap3" && outcome.restored.revision == Revision(3),
        "2:30 PM must restore snap3 (revision 3), got {restored} (revision {})",
        outcome.restored.revision
    );
    ensure!(
        app.current() == app.read_at(&StateRef::AsOf(crash))?,
        "the restored state must be the state as of 2:30 PM"
    );

    let just_before = app.read_at(&StateRef::AsOf(at("14:29")?))?;
    let arrived = app.diff(&StateRef::AsOf(at("14:29")?), &StateRef::Head)?;
    let since = app.diff(
        &StateRef::Head,
        &StateRef::Snapshot(outcome.pre_rollback.name.clone()),
    )?;
    println!("2. state at crash time: {}", app.current());
    println!("   state as of 2:29 PM (exact read, nothing changed): {just_before}");
    for entry in &arrived.entries {
        println!(
            "   what arrived at 2:30 PM: {} {} = {}",
            kind_label(entry.kind),
            entry.path,
            entry.new.as_ref().map_or("-".into(), ToString::to_string)
        );
    }
    println!(
        "   between crash time and the present: {} session(s) added ({})",
        since.summary.added,
        since
            .entries
            .iter()
            .map(|e| e.path.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    ensure!(
        arrived.summary.added == 1 && arrived.entries[0].path.to_string() == "/sessions/s3",
        "the diff must show session s3 arriving at 2:30 PM"
    );
    ensure!(
        since.summary.added == 2 && since.summary.changed == 0 && since.summary.removed == 0,
        "the present must differ from crash time by sessions s4 and s5 only"
    );

    let crash_state = app.current();
    match session_cleanup(&crash_state) {
        Err(e) => println!("3. reproduced: {e}"),
        Ok(_) => bail!("the crash must reproduce on the 2:30 PM state"),
    }
    ensure!(
        session_cleanup(&just_before).is_ok(),
        "cleanup must work on the state just before 2:30 PM"
    );

    let fix = patch(json!([{"op": "replace", "path": "/cleanup/null_check", "value": true}]))?;
    let fixed = session_cleanup(&crash_state.apply_patch(&fix)?)
        .map_err(|e| anyhow::anyhow!("the fix must handle the crash state: {e}"))?;
    println!("4. fix (add a null check) tried on the crash state: cleanup ok {fixed:?}");

    clock.set(at("15:20")?);
    let back = app.rollback_to_latest_snapshot().await?;
    println!(
        "5. rollback_to_latest_snapshot() → restores {} (the present, kept by the pre-rollback snapshot at {}) as revision {}",
        back.restored.name.as_ref().map_or("?", SnapshotName::as_str),
        pm(outcome.pre_rollback.created_at),
        back.revision
    );
    ensure!(
        back.restored.kind == RestoredKind::Auto
            && back.restored.name == Some(outcome.pre_rollback.name.clone()),
        "Latest must restore the pre-rollback snapshot of the present"
    );
    ensure!(app.current() == present, "back in the present, unchanged");

    clock.set(at("15:25")?);
    let commit = app
        .apply_with(
            fix.clone(),
            WriteOptions {
                meta: CommitMeta::message("add a null check to session cleanup"),
                ..WriteOptions::default()
            },
        )
        .await?;
    let cleaned = session_cleanup(&app.current())
        .map_err(|e| anyhow::anyhow!("the fix must work on the present: {e}"))?;
    println!(
        "6. fix applied as revision {}: cleanup ok over {} sessions",
        commit.revision,
        cleaned.len()
    );

    println!("\n== Result ==");
    // No data lost: every revision recorded before the session reads the
    // same, the snapshots are all there, and the present is the old present
    // plus the fix.
    for info in before.history() {
        let then = before.state_at(&StateRef::Revision(info.revision))?;
        let now = app.read_at(&StateRef::Revision(info.revision))?;
        ensure!(
            then == now,
            "revision {} changed during debugging",
            info.revision
        );
    }
    for i in 1..=5 {
        let name = SnapshotName::new(format!("snap{i}"))?;
        ensure!(
            app.read_at(&StateRef::Snapshot(name.clone()))?
                == before.state_at(&StateRef::Snapshot(name))?,
            "snap{i} changed during debugging"
        );
    }
    ensure!(
        app.current() == present.apply_patch(&fix)?,
        "the present must be the state before debugging plus the fix"
    );
    let history = app.history(usize::MAX);
    let revisions: Vec<u64> = history.iter().rev().map(|i| i.revision.get()).collect();
    ensure!(
        revisions == (0..=8).collect::<Vec<_>>(),
        "revisions must be 0..=8 with none missing, got {revisions:?}"
    );
    for info in history.iter().rev() {
        let message = info
            .meta
            .message
            .as_deref()
            .map(|m| format!(" — \"{m}\""))
            .unwrap_or_default();
        println!(
            "   revision {}  {:>8}  {}{message}",
            info.revision,
            pm(info.at),
            describe(&info.cause)
        );
    }
    println!("✅ Bug identified: null pointer in session cleanup");
    println!("✅ Fix applied: added null check");
    println!("✅ State restored to current");
    println!("✅ No data loss during debugging");

    runtime.shutdown().await?;
    println!("\ntime-travel debugging checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
