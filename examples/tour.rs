//! A tour of rewind: every story of the product guide, end to end.
//!
//! Run with `cargo run --release --example tour`. It runs the same stories as
//! the single examples (`cargo run --example named_rollback`, ...), in order;
//! each checks its own outcome, and the tour exits non-zero if any behaviour
//! is wrong.

use std::future::Future;

use anyhow::{Context, Result};

#[allow(dead_code)]
#[path = "ab_testing.rs"]
mod ab_testing;
#[allow(dead_code)]
#[path = "actor_messaging.rs"]
mod actor_messaging;
#[allow(dead_code)]
#[path = "named_rollback.rs"]
mod named_rollback;
#[allow(dead_code)]
#[path = "restart_recovery.rs"]
mod restart_recovery;
#[allow(dead_code)]
#[path = "retention.rs"]
mod retention;
#[allow(dead_code)]
#[path = "safe_deployment.rs"]
mod safe_deployment;
#[allow(dead_code)]
#[path = "state_diff.rs"]
mod state_diff;
#[allow(dead_code)]
#[path = "structural_sharing.rs"]
mod structural_sharing;
#[allow(dead_code)]
#[path = "tenant_isolation.rs"]
mod tenant_isolation;
#[allow(dead_code)]
#[path = "time_travel_debugging.rs"]
mod time_travel_debugging;
#[allow(dead_code)]
#[path = "transaction_checkpoints.rs"]
mod transaction_checkpoints;
#[allow(dead_code)]
#[path = "typed_state.rs"]
mod typed_state;

async fn story(title: &str, run: impl Future<Output = Result<()>>) -> Result<()> {
    println!("\n══════ {title} ══════\n");
    run.await.with_context(|| format!("story '{title}' failed"))
}

#[tokio::main]
async fn main() -> Result<()> {
    story(
        "State Evolution Timeline & Named Snapshot Rollback",
        named_rollback::run(),
    )
    .await?;
    story(
        "Debug Session with Time-Travel",
        time_travel_debugging::run(),
    )
    .await?;
    story("Structural Sharing", structural_sharing::run()).await?;
    story(
        "Transaction Builder with Checkpoints",
        transaction_checkpoints::run(),
    )
    .await?;
    story("Tenant Isolation", tenant_isolation::run()).await?;
    story("Snapshot Retention Policy", retention::run()).await?;
    story("State Diff", state_diff::run()).await?;
    story("Safe Deployment", safe_deployment::run()).await?;
    story("A/B Testing with Snapshots", ab_testing::run()).await?;
    story(
        "Driven by messages from another actor",
        actor_messaging::run(),
    )
    .await?;
    story("Typed state", typed_state::run()).await?;
    story(
        "Restart and recovery on the embedded SQLite journal",
        restart_recovery::run(),
    )
    .await?;
    println!("\nall stories checked ✔");
    Ok(())
}
