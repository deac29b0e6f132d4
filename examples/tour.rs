//! A tour of rewind: the stories of the product guide, end to end.
//!
//! Run with `cargo run --release --example tour`. Each story checks its own
//! outcome; the tour exits non-zero if any behaviour is wrong.
//!
//! Stories: State Evolution Timeline, Named Snapshot Rollback, Time-Travel
//! Debugging, Snapshot Retention, State Diff.

use std::sync::Arc;

use anyhow::{ensure, Result};
use rewind::core::{
    Doc, ManualClock, NamedOptions, Patch, RollbackTarget, SnapshotName, StateRef, Timeline,
    TimelineConfig, Timestamp,
};
use serde_json::json;

fn doc(value: serde_json::Value) -> Result<Doc> {
    Ok(Doc::from_json(&value)?)
}

fn patch(value: serde_json::Value) -> Result<Patch> {
    Ok(Patch::from_json(&value)?)
}

fn name(text: &str) -> Result<SnapshotName> {
    Ok(SnapshotName::new(text)?)
}

fn at(text: &str) -> Result<Timestamp> {
    Ok(Timestamp::parse_rfc3339(text)?)
}

fn main() -> Result<()> {
    state_evolution_and_named_rollback()?;
    time_travel_debugging()?;
    retention()?;
    state_diff()?;
    println!("\nall stories checked ✔");
    Ok(())
}

fn state_evolution_and_named_rollback() -> Result<()> {
    println!("== State Evolution Timeline & Named Snapshot Rollback ==");
    let mut timeline = Timeline::with_defaults(doc(json!({
        "version": "1.0.0", "features": {"new_ui": false, "beta": false}, "sessions": 0
    }))?);
    let steps = [
        (
            "S1",
            json!([{"op": "replace", "path": "/sessions", "value": 50}]),
        ),
        (
            "S2",
            json!([{"op": "replace", "path": "/sessions", "value": 80}]),
        ),
        (
            "S3",
            json!([{"op": "replace", "path": "/features/new_ui", "value": true}]),
        ),
        (
            "S4",
            json!([{"op": "replace", "path": "/version", "value": "2.0.0"},
                      {"op": "replace", "path": "/sessions", "value": 100}]),
        ),
        (
            "S5",
            json!([{"op": "replace", "path": "/features/beta", "value": true}]),
        ),
        (
            "S6",
            json!([{"op": "replace", "path": "/version", "value": "2.5.0"},
                      {"op": "replace", "path": "/sessions", "value": 150}]),
        ),
    ];
    for (label, change) in steps {
        let commit = timeline.apply(&patch(change)?)?;
        let snap = match label {
            "S1" => Some(
                timeline
                    .snapshot_named(name("v1.0.0")?, NamedOptions::default())?
                    .snapshot,
            ),
            "S3" => Some(
                timeline
                    .snapshot_auto(rewind::core::AutoTrigger::Requested)
                    .snapshot,
            ),
            "S4" => Some(
                timeline
                    .snapshot_named(name("v2.0.0")?, NamedOptions::default())?
                    .snapshot,
            ),
            _ => None,
        };
        let shown = snap
            .map(|s| format!("  📸 {} ({})", s.name, s.kind))
            .unwrap_or_default();
        println!(
            "{label} = revision {}: {}{shown}",
            commit.revision,
            timeline.head()
        );
    }
    println!("before rollback: {}", timeline.head());
    let outcome = timeline.rollback(&RollbackTarget::Named(name("v2.0.0")?))?;
    println!(
        "rollback_to_named_snapshot(\"v2.0.0\") -> revision {} restored from revision {}",
        outcome.revision, outcome.restored.revision
    );
    println!("after rollback:  {}", timeline.head());
    ensure!(
        *timeline.head()
            == doc(
                json!({"version": "2.0.0", "features": {"new_ui": true, "beta": false}, "sessions": 100})
            )?,
        "v2.0.0 must be restored exactly"
    );
    ensure!(outcome.revision.get() == 7, "a rollback is a new revision");
    timeline.rollback(&RollbackTarget::Latest)?;
    ensure!(
        timeline.head()["version"] == "2.5.0",
        "Latest returns to the present"
    );
    println!(
        "rollback to Latest returns to the present: {}",
        timeline.head()
    );
    Ok(())
}

fn time_travel_debugging() -> Result<()> {
    println!("\n== Time-Travel Debugging ==");
    let clock = ManualClock::new(at("2026-03-14T13:55:00Z")?);
    let mut timeline = Timeline::new(
        doc(json!({"sessions": 0, "cleanup": "ok"}))?,
        TimelineConfig::default(),
        Arc::new(clock.clone()),
    )?;
    for (i, time) in ["14:00", "14:15", "14:30", "14:45", "15:00"]
        .iter()
        .enumerate()
    {
        clock.set(at(&format!("2026-03-14T{time}:00Z"))?);
        let cleanup = if *time >= "14:30" {
            "null pointer"
        } else {
            "ok"
        };
        timeline.apply(&patch(json!([
            {"op": "replace", "path": "/sessions", "value": (i + 1) * 10},
            {"op": "replace", "path": "/cleanup", "value": cleanup}
        ]))?)?;
        let snap =
            timeline.snapshot_named(name(&format!("snap{}", i + 1))?, NamedOptions::default())?;
        println!("{time}  📸 {}  {}", snap.snapshot.name, timeline.head());
    }
    clock.set(at("2026-03-14T15:10:00Z")?);
    let present = timeline.head().clone();
    let crash = at("2026-03-14T14:30:00Z")?;
    let outcome = timeline.rollback(&RollbackTarget::Time(crash))?;
    println!(
        "rollback_to_time(14:30) restores {:?}: {}",
        outcome.restored.name.as_ref().map(|n| n.to_string()),
        timeline.head()
    );
    ensure!(
        outcome.restored.name == Some(name("snap3")?),
        "14:30 restores snap3"
    );
    ensure!(
        timeline.head()["cleanup"] == "null pointer",
        "the bug is visible at 14:30"
    );
    let before = timeline.state_at(&StateRef::AsOf(at("2026-03-14T14:20:00Z")?))?;
    println!("state as of 14:20 (exact read, nothing changed): {before}");
    timeline.rollback(&RollbackTarget::Latest)?;
    ensure!(
        *timeline.head() == present,
        "back to the present, no data lost"
    );
    timeline.apply(&patch(
        json!([{"op": "replace", "path": "/cleanup", "value": "ok"}]),
    )?)?;
    println!(
        "returned to the present and applied the fix: {}",
        timeline.head()
    );
    Ok(())
}

fn retention() -> Result<()> {
    println!("\n== Snapshot Retention ==");
    let mut timeline = Timeline::with_defaults(doc(json!({"n": 0}))?);
    let mut first = None;
    for i in 1..=11 {
        timeline.apply(&patch(
            json!([{"op": "replace", "path": "/n", "value": i}]),
        )?)?;
        let taken = timeline.snapshot_auto(rewind::core::AutoTrigger::Policy);
        first.get_or_insert(taken.snapshot.name.clone());
        if i == 11 {
            println!(
                "11th auto snapshot pruned {} (the oldest)",
                taken.pruned.auto
            );
            ensure!(
                taken.pruned.auto == 1,
                "the 11th auto snapshot prunes the 1st"
            );
        }
    }
    let names: Vec<_> = timeline
        .snapshots()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    println!("auto ring now: {names:?}");
    ensure!(
        timeline.snapshot(first.as_ref().expect("taken")).is_none(),
        "1st pruned"
    );
    timeline.snapshot_named(
        name("v1.0")?,
        NamedOptions {
            protected: true,
            replace: false,
        },
    )?;
    for i in 0..50 {
        timeline.snapshot_named(name(&format!("release-{i}"))?, NamedOptions::default())?;
    }
    ensure!(
        timeline.snapshot(&name("v1.0")?).is_some(),
        "protected snapshots are kept"
    );
    ensure!(
        timeline.snapshot(&name("release-0")?).is_none(),
        "oldest unprotected pruned"
    );
    println!("51 named snapshots: protected 'v1.0' kept, oldest unprotected 'release-0' pruned");
    Ok(())
}

fn state_diff() -> Result<()> {
    println!("\n== State Diff ==");
    let mut timeline = Timeline::with_defaults(doc(json!({
        "sessions": 100, "app_data": {"theme": "light", "lang": "en"}, "cache_entries": 50
    }))?);
    timeline.snapshot_named(name("v1.0")?, NamedOptions::default())?;
    timeline.apply(&patch(json!([
        {"op": "replace", "path": "/sessions", "value": 150},
        {"op": "replace", "path": "/app_data/theme", "value": "dark"},
        {"op": "add", "path": "/app_data/beta", "value": true},
        {"op": "replace", "path": "/cache_entries", "value": 75}
    ]))?)?;
    timeline.snapshot_named(name("v2.0")?, NamedOptions::default())?;
    let diff = timeline.diff(
        &StateRef::Snapshot(name("v1.0")?),
        &StateRef::Snapshot(name("v2.0")?),
    )?;
    print!("{diff}");
    println!("patch: {}", serde_json::to_string(&diff.patch)?);
    ensure!(
        diff.summary.added == 1 && diff.summary.changed == 3,
        "1 added, 3 changed"
    );
    Ok(())
}
