//! Restart and recovery: everything acknowledged survives a restart.
//!
//! Run with `cargo run --example restart_recovery`.
//!
//! A runtime on an embedded SQLite journal (in `sync` mode: a write is
//! acknowledged only once it is fsynced) takes writes, named and auto
//! snapshots, a rollback and a transaction that rolls back; then it shuts
//! down and a new runtime opens the same file. Every tenant comes back with
//! its head, revision counter, history, snapshots (names, kinds, times,
//! protection) and transaction checkpoints, and revision numbers continue
//! where they stopped. The example checks it all and exits non-zero if
//! anything is missing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use rewind::prelude::*;
use serde_json::{json, Value};

fn patch(value: Value) -> Result<Patch> {
    Ok(Patch::from_json(&value)?)
}

async fn open(path: &PathBuf) -> Result<Runtime<Doc>> {
    let journal = SqliteJournal::open(path, SqliteOptions::default())
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(Runtime::<Doc>::builder()
        .journal(Arc::new(journal))
        .start()
        .await?)
}

/// Everything about a tenant that must survive a restart.
fn fingerprint(tenant: &Tenant<Doc>) -> Result<Value> {
    Ok(serde_json::to_value(tenant.timeline().to_image()?)?)
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("rewind-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("rewind.db");
    let _ = std::fs::remove_file(&path);

    println!("== first run: {} ==", path.display());
    let runtime = open(&path).await?;
    let acme = runtime
        .create_tenant(
            "acme_corp",
            Doc::from_json(&json!({"version": "1.9.5", "sessions": 0}))?,
        )
        .await?;
    for sessions in [10, 20, 30] {
        acme.apply(patch(
            json!([{"op": "replace", "path": "/sessions", "value": sessions}]),
        )?)
        .await?;
    }
    acme.snapshot_with(
        SnapshotName::new("pre_v2_deploy")?,
        NamedOptions {
            protected: true,
            replace: false,
        },
    )
    .await?;
    acme.apply(patch(
        json!([{"op": "replace", "path": "/version", "value": "2.0.0"}]),
    )?)
    .await?;
    acme.snapshot().await?;
    acme.rollback_to_named_snapshot("pre_v2_deploy").await?;
    let report = acme
        .transaction()
        .step(
            "session_created",
            patch(json!([{"op": "add", "path": "/session", "value": "s-1"}]))?,
        )
        .effect("notify_users", |_state: Doc| async {
            Err::<(), _>("mail server down")
        })
        .on_failure(RollbackPolicy::Start)
        .run_report()
        .await?;
    ensure!(!report.is_committed(), "the transaction rolls back");
    let widgets = runtime
        .create_tenant("widgets_r_us", Doc::from_json(&json!({"sessions": 30}))?)
        .await?;
    widgets.snapshot_named("beta_test").await?;

    let before = [fingerprint(&acme)?, fingerprint(&widgets)?];
    let revision = acme.revision();
    println!(
        "acme_corp at revision {revision}: {}; {} snapshots",
        acme.current(),
        acme.snapshots().len()
    );
    runtime.shutdown().await?;
    // The journal stays locked while anything holds it: the runtime and the
    // tenant handles do. Dropped, the file can be opened again.
    drop((runtime, acme, widgets));
    println!("runtime stopped");

    println!("\n== second run on the same file ==");
    let runtime = open(&path).await?;
    let recovery = runtime.recovery();
    println!(
        "recovered {} tenants, replayed {} entries in {:?}",
        recovery.tenants, recovery.entries, recovery.elapsed
    );
    ensure!(recovery.failures.is_empty(), "no tenant fails to recover");
    let acme = runtime.tenant("acme_corp").await?;
    let widgets = runtime.tenant("widgets_r_us").await?;
    ensure!(
        [fingerprint(&acme)?, fingerprint(&widgets)?] == before,
        "head, history, snapshots and checkpoints are all back"
    );
    for snapshot in acme.snapshots() {
        println!(
            "  📸 {:<16} {:<6} revision {:>2}  {}{}",
            snapshot.name,
            snapshot.kind.as_str(),
            snapshot.revision.get(),
            snapshot.created_at,
            if snapshot.protected {
                "  (protected)"
            } else {
                ""
            }
        );
    }
    let commit = acme
        .apply(patch(
            json!([{"op": "replace", "path": "/sessions", "value": 40}]),
        )?)
        .await?;
    ensure!(
        commit.revision == revision.next(),
        "revision numbers continue, never reused"
    );
    println!(
        "next write is revision {} — numbering continues after the restart",
        commit.revision
    );
    runtime.shutdown().await?;
    std::fs::remove_dir_all(&dir)?;
    println!("\nrestart and recovery checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
