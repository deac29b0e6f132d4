//! State Diff Visualization (product guide): State A (v1.0) and State B (v2.0)
//! of one tenant, taken as two named snapshots, and the diff between them —
//! the guide's Diff Summary and the RFC 6902 patch that turns A into B.
//!
//! Run with `cargo run --example state_diff`. It checks its own story and
//! exits non-zero if the diff is wrong.

use anyhow::{ensure, Result};
use rewind::prelude::*;
use serde_json::json;

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let tenant = runtime
        .create_tenant(
            "acme_corp",
            Doc::from_json(&json!({
                "sessions": 100,
                "app_data": {"theme": "light", "lang": "en"},
                "cache_entries": 50
            }))?,
        )
        .await?;
    tenant.snapshot_named("v1.0").await?;
    println!("State A (v1.0): {}", tenant.current());

    tenant
        .apply(Patch::from_json(&json!([
            {"op": "replace", "path": "/sessions", "value": 150},
            {"op": "replace", "path": "/app_data/theme", "value": "dark"},
            {"op": "add", "path": "/app_data/beta", "value": true},
            {"op": "replace", "path": "/cache_entries", "value": 75}
        ]))?)
        .await?;
    tenant.snapshot_named("v2.0").await?;
    println!("State B (v2.0): {}", tenant.current());

    let a = StateRef::Snapshot(SnapshotName::new("v1.0")?);
    let b = StateRef::Snapshot(SnapshotName::new("v2.0")?);
    let diff = tenant.diff(&a, &b)?;

    println!("\nDiff Summary:");
    for line in diff.to_string().lines() {
        println!("  {line}");
    }
    println!("\nRFC 6902 patch A → B:");
    for op in diff.patch.to_json().as_array().into_iter().flatten() {
        println!("  {op}");
    }

    // The guide's summary, line by line.
    let summary = diff.to_string();
    for expected in [
        "sessions: 100 → 150",
        "cache_entries: 50 → 75",
        r#"added_keys: ["app_data.beta"]"#,
        r#"changed_keys: ["app_data.theme"]"#,
    ] {
        ensure!(
            summary.lines().any(|line| line == expected),
            "the summary must show {expected:?}, got:\n{summary}"
        );
    }
    let numbers: Vec<_> = diff
        .numeric_changes()
        .map(|(path, old, new)| (path.to_string(), old.as_i64(), new.as_i64()))
        .collect();
    ensure!(
        numbers
            == [
                ("/cache_entries".to_owned(), Some(50), Some(75)),
                ("/sessions".to_owned(), Some(100), Some(150)),
            ],
        "numeric changes: {numbers:?}"
    );
    let added: Vec<_> = diff
        .of_kind(ChangeKind::Added)
        .map(|e| e.path.to_string())
        .collect();
    ensure!(added == ["/app_data/beta"], "added: {added:?}");
    ensure!(
        diff.summary.added == 1 && diff.summary.changed == 3 && diff.summary.removed == 0,
        "1 added, 3 changed, 0 removed: {:?}",
        diff.summary
    );

    // The patch is exact: applied to A it gives B.
    let state_a = tenant.read_at(&a)?;
    let state_b = tenant.read_at(&b)?;
    ensure!(
        state_a.apply_patch(&diff.patch)? == state_b,
        "apply(A, diff(A, B).patch) must equal B"
    );
    // And the reverse diff undoes it.
    let back = tenant.diff(&b, &a)?;
    ensure!(
        state_b.apply_patch(&back.patch)? == state_a,
        "apply(B, diff(B, A).patch) must equal A"
    );
    // A diff is a read: nothing was committed.
    ensure!(tenant.revision() == Revision(1), "diffs change nothing");

    runtime.shutdown().await?;
    println!("\nstate diff checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
