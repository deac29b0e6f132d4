//! A/B Testing with Snapshots (product guide): a "baseline" snapshot, three
//! variants each forked from it and scored, and the winner applied
//! permanently on top of the baseline.
//!
//! Run with `cargo run --example ab_testing`. It checks its own story and
//! exits non-zero if the behaviour is wrong.
//!
//! The score stands in for "collect metrics": a deterministic function of
//! the variant's state, so the story gives the guide's 85 / 92 / 78.

use anyhow::{ensure, Context, Result};
use rewind::prelude::*;
use serde_json::json;

/// Points each setting earns in the (simulated) experiment.
fn score(state: &Doc) -> Result<i64> {
    let ui = match state["ui"].as_str() {
        Some("classic") => 30,
        Some("modern") => 40,
        other => anyhow::bail!("unknown ui {other:?}"),
    };
    let algorithm = match state["algorithm"].as_str() {
        Some("v1") => 30,
        Some("v2") => 37,
        other => anyhow::bail!("unknown algorithm {other:?}"),
    };
    let features = match state["features"].as_str() {
        Some("standard") => 15,
        Some("extended") => 11,
        other => anyhow::bail!("unknown features {other:?}"),
    };
    Ok(ui + algorithm + features)
}

fn variant(label: &str) -> Result<Patch> {
    let ops = match label {
        "A" => json!([{"op": "replace", "path": "/ui", "value": "modern"}]),
        "B" => json!([
            {"op": "replace", "path": "/ui", "value": "modern"},
            {"op": "replace", "path": "/algorithm", "value": "v2"}
        ]),
        "C" => json!([
            {"op": "replace", "path": "/algorithm", "value": "v2"},
            {"op": "replace", "path": "/features", "value": "extended"}
        ]),
        _ => anyhow::bail!("no variant {label}"),
    };
    Ok(Patch::from_json(&ops)?)
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let app = runtime
        .create_tenant(
            "storefront",
            Doc::from_json(&json!({"ui": "classic", "algorithm": "v1", "features": "standard"}))?,
        )
        .await?;
    app.snapshot_named("baseline").await?;
    let baseline = app.current();
    println!("📸 Snapshot \"baseline\": {baseline}");

    let mut scores = Vec::new();
    for label in ["A", "B", "C"] {
        // Every variant starts from the baseline, not from the previous variant.
        app.rollback_to_named_snapshot("baseline").await?;
        ensure!(
            app.current() == baseline,
            "variant {label} must fork from the baseline"
        );
        app.apply(variant(label)?).await?;
        let name = format!("variant_{}", label.to_lowercase());
        app.snapshot_named(&name).await?;
        let points = score(&app.current())?;
        println!(
            "Test Variant {label}: {}  📸 \"{name}\"  Score: {points}",
            app.current()
        );
        scores.push((label, name, points));
    }

    let (winner, winner_snapshot, best) = scores
        .iter()
        .max_by_key(|(_, _, points)| *points)
        .cloned()
        .context("three variants were scored")?;
    println!("\nWinner: Variant {winner} (score {best}) ⭐");
    let got: Vec<_> = scores.iter().map(|(l, _, p)| (*l, *p)).collect();
    ensure!(
        got == [("A", 85), ("B", 92), ("C", 78)],
        "scores must be A 85, B 92, C 78: {got:?}"
    );
    ensure!(winner == "B", "variant B must win");

    // Each variant stays available for later analysis, scored the same.
    for (label, name, points) in &scores {
        let state = app.read_at(&StateRef::Snapshot(SnapshotName::new(name)?))?;
        ensure!(
            score(&state)? == *points,
            "snapshot {name} keeps variant {label}"
        );
    }

    app.rollback_to_named_snapshot("baseline").await?;
    println!("rollback_to_named_snapshot(\"baseline\")");
    app.apply_with(
        variant(winner)?,
        WriteOptions {
            meta: rewind::core::CommitMeta::message("apply variant B permanently"),
            expected_revision: Some(app.revision()),
        },
    )
    .await?;
    println!("apply_variant_b_permanently() -> {}", app.current());

    let expected =
        Doc::from_json(&json!({"ui": "modern", "algorithm": "v2", "features": "standard"}))?;
    ensure!(
        app.current() == expected,
        "final state must be the baseline with variant B: {}",
        app.current()
    );
    ensure!(
        app.diff(
            &StateRef::Snapshot(SnapshotName::new(&winner_snapshot)?),
            &StateRef::Head
        )?
        .is_empty(),
        "the head equals the winning variant's snapshot"
    );
    ensure!(score(&app.current())? == 92, "the winner's score holds");
    let from_baseline = app.diff(
        &StateRef::Snapshot(SnapshotName::new("baseline")?),
        &StateRef::Head,
    )?;
    print!("change from baseline:\n{from_baseline}");
    ensure!(
        from_baseline.summary.changed == 2 && from_baseline.entries.len() == 2,
        "variant B changes exactly ui and algorithm"
    );

    runtime.shutdown().await?;
    println!("\nA/B testing checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
