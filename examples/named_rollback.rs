//! Named Snapshot Rollback, on the State Evolution Timeline of the product
//! guide.
//!
//! Run with `cargo run --example named_rollback`.
//!
//! A tenant goes through states S0..S6, with a named snapshot "v1.0.0" at S1,
//! an auto snapshot at S3 and a named snapshot "v2.0.0" at S4 (the guide's
//! Scenario 1 restores "S4 = v2.0.0"). At S6, `rollback_to_named_snapshot
//! ("v2.0.0")` restores exactly the v2.0.0 state, as a new revision: history
//! is never rewritten, and the present is kept in a `pre-rollback` snapshot.
//! The example checks every step and exits non-zero if one is wrong.

use anyhow::{ensure, Context, Result};
use rewind::core::RestoredKind;
use rewind::prelude::*;
use serde_json::{json, Value};

fn doc(value: Value) -> Result<Doc> {
    Ok(Doc::from_json(&value)?)
}

fn patch(value: Value) -> Result<Patch> {
    Ok(Patch::from_json(&value)?)
}

/// The snapshot taken after a state of the timeline.
enum Snap {
    Named(&'static str),
    Auto,
    None,
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let app = runtime
        .create_tenant(
            "acme_corp",
            doc(json!({
                "version": "1.0.0",
                "features": {"new_ui": false, "beta": false},
                "sessions": 0
            }))?,
        )
        .await?;

    println!("== State Evolution Timeline ==");
    println!("S0 = revision 0  {}  └─ Initial State", app.current());
    // (state, change, snapshot taken after it, label)
    let evolution = [
        (
            "S1",
            json!([{"op": "replace", "path": "/sessions", "value": 20}]),
            Snap::Named("v1.0.0"),
            "",
        ),
        (
            "S2",
            json!([{"op": "replace", "path": "/sessions", "value": 60}]),
            Snap::None,
            "└─ +Sessions Added",
        ),
        (
            "S3",
            json!([{"op": "replace", "path": "/sessions", "value": 80}]),
            Snap::Auto,
            "",
        ),
        (
            "S4",
            json!([
                {"op": "replace", "path": "/version", "value": "2.0.0"},
                {"op": "replace", "path": "/features/new_ui", "value": true},
                {"op": "replace", "path": "/sessions", "value": 100}
            ]),
            Snap::Named("v2.0.0"),
            "└─ +Features Enabled",
        ),
        (
            "S5",
            json!([
                {"op": "replace", "path": "/features/beta", "value": true},
                {"op": "replace", "path": "/sessions", "value": 120}
            ]),
            Snap::None,
            "",
        ),
        (
            "S6",
            json!([
                {"op": "replace", "path": "/version", "value": "2.5.0"},
                {"op": "replace", "path": "/sessions", "value": 150}
            ]),
            Snap::None,
            "└─ Current State",
        ),
    ];
    for (label, change, snapshot, note) in evolution {
        let commit = app.apply(patch(change)?).await?;
        let taken = match snapshot {
            Snap::Auto => Some(app.snapshot().await?),
            Snap::Named(name) => Some(app.snapshot_named(name).await?),
            Snap::None => None,
        };
        let shown = taken
            .map(|s| format!("  📸 {} ({})", s.name, s.kind))
            .unwrap_or_default();
        let line = format!(
            "{label} = revision {}  {}{shown}  {note}",
            commit.revision,
            app.current()
        );
        println!("{}", line.trim_end());
    }

    let kinds: Vec<(String, SnapshotKind, u64)> = app
        .snapshots()
        .into_iter()
        .map(|s| (s.name.to_string(), s.kind, s.revision.get()))
        .collect();
    ensure!(
        kinds.len() == 3
            && kinds[0] == ("v1.0.0".into(), SnapshotKind::Named, 1)
            && kinds[1].1 == SnapshotKind::Auto
            && kinds[1].2 == 3
            && kinds[2] == ("v2.0.0".into(), SnapshotKind::Named, 4),
        "snapshots must be v1.0.0 at S1, an auto one at S3, v2.0.0 at S4; got {kinds:?}"
    );

    println!("\n== Scenario 1: Named Snapshot Rollback ==");
    let present = app.current();
    println!("before rollback (S6): {present}");
    ensure!(
        present
            == doc(json!({
                "version": "2.5.0",
                "features": {"new_ui": true, "beta": true},
                "sessions": 150
            }))?,
        "S6 must be the guide's current state"
    );

    let target = RollbackTarget::Named(SnapshotName::new("v2.0.0")?);
    let preview = app.rollback_dry_run(&target)?;
    print!(
        "dry run, nothing changed yet — the rollback would do:\n{}",
        preview.diff
    );
    ensure!(
        app.revision() == Revision(6),
        "a dry run must not change anything"
    );

    let outcome = app.rollback_to_named_snapshot("v2.0.0").await?;
    println!(
        "rollback_to_named_snapshot(\"v2.0.0\") -> new revision {}, state of revision {} restored",
        outcome.revision, outcome.restored.revision
    );
    println!("after rollback:      {}", app.current());
    ensure!(
        app.current()
            == doc(json!({
                "version": "2.0.0",
                "features": {"new_ui": true, "beta": false},
                "sessions": 100
            }))?,
        "v2.0.0 must be restored exactly, got {}",
        app.current()
    );
    ensure!(
        outcome.restored.kind == RestoredKind::Named
            && outcome.restored.name.as_ref().map(SnapshotName::as_str) == Some("v2.0.0")
            && outcome.restored.revision == Revision(4),
        "the rollback must restore snapshot v2.0.0 (revision 4), got {:?}",
        outcome.restored
    );
    ensure!(
        outcome.revision == Revision(7),
        "a rollback is a new revision (7), got {}",
        outcome.revision
    );
    ensure!(
        outcome.diff == preview.diff,
        "the rollback must change what its dry run said"
    );

    // History is not rewritten: S0..S6 are all still there, and the present
    // we left is kept in the pre-rollback snapshot.
    let history = app.history(usize::MAX);
    ensure!(
        history.len() == 8,
        "revisions 0..=7 must all be in the history, got {}",
        history.len()
    );
    let kept = app.read_at(&StateRef::Snapshot(outcome.pre_rollback.name.clone()))?;
    ensure!(kept == present, "the pre-rollback snapshot must hold S6");
    let s6 = app.read_at(&StateRef::Revision(Revision(6)))?;
    ensure!(s6 == present, "revision 6 must still read as S6");
    println!(
        "history kept: revisions 0..={} ; the state rolled back from is in 📸 {} ({})",
        app.revision(),
        outcome.pre_rollback.name,
        outcome
            .pre_rollback
            .trigger
            .map(|t| t.as_str())
            .context("a pre-rollback snapshot has a trigger")?
    );

    runtime.shutdown().await?;
    println!("\nnamed rollback checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
