//! Real-World Workflow: Safe Deployment (product guide). A stable v1.9.5,
//! a pre-deployment snapshot, the v2.0.0 deploy, a health check that finds
//! memory usage too high, and the emergency rollback — timed — back to
//! v1.9.5, with the failed deploy kept in history for offline investigation.
//! Then the same release as a guarded deployment (`tenant.deploy(...)`):
//! a health check watches memory every interval of the monitoring window and
//! rolls back by itself when it climbs to 95%, naming the check in the
//! rollback's message. (The guide's 5 minutes of monitoring run here as 1.2 s
//! with a check every 100 ms.)
//!
//! Run with `cargo run --example safe_deployment`. It checks its own story
//! and exits non-zero if the behaviour is wrong.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use rewind::core::deploy::{CheckResult, CheckSpec, DeploymentStatus};
use rewind::core::{Cause, CommitMeta, RestoredKind};
use rewind::prelude::*;
use rewind::runtime::deploy::{CheckFuture, CheckOutcome, HealthCheck};
use serde_json::json;

/// The guide promises "Service restored in <100ms".
const ROLLBACK_PROMISE: Duration = Duration::from_millis(100);
/// Memory usage above which the deploy is unhealthy.
const MEMORY_LIMIT_PCT: i64 = 90;

/// The guide's monitoring panel: each metric is OK or not.
fn health_check(state: &Doc) -> Vec<(&'static str, String, bool)> {
    let metrics = &state["metrics"];
    let response = metrics["response_time_ms"].as_i64().unwrap_or(i64::MAX);
    let errors = metrics["error_rate_pct"].as_f64().unwrap_or(f64::MAX);
    let memory = metrics["memory_usage_pct"].as_i64().unwrap_or(i64::MAX);
    vec![
        ("Response time", format!("{response} ms"), response <= 250),
        ("Error rate", format!("{errors}%"), errors <= 1.0),
        (
            "Memory usage",
            format!("{memory}%"),
            memory <= MEMORY_LIMIT_PCT,
        ),
    ]
}

fn healthy(state: &Doc) -> bool {
    health_check(state).iter().all(|(_, _, ok)| *ok)
}

fn print_health(state: &Doc) {
    for (metric, value, ok) in health_check(state) {
        let mark = if ok { "✅" } else { "❌" };
        let note = if ok { "OK" } else { "HIGH!" };
        println!("  {mark} {metric}: {value} ({note})");
    }
}

/// The monitoring system's memory gauge of the service, in percent: what a
/// `PrometheusCheck` of `max(app_memory_usage_ratio)` would read.
struct MemoryUsage(Arc<AtomicI64>);

impl HealthCheck for MemoryUsage {
    fn spec(&self) -> CheckSpec {
        CheckSpec::Custom {
            name: format!("memory_usage_pct <= {MEMORY_LIMIT_PCT}"),
        }
    }

    fn check(&self) -> CheckFuture<'_> {
        let memory = self.0.load(Ordering::SeqCst);
        Box::pin(async move {
            if memory <= MEMORY_LIMIT_PCT {
                CheckOutcome::Pass {
                    value: Some(memory as f64),
                }
            } else {
                CheckOutcome::Fail {
                    reason: format!("memory usage at {memory}%"),
                    value: Some(memory as f64),
                }
            }
        })
    }
}

/// The same release, guarded: the deployment watches memory and rolls back
/// by itself.
async fn guarded(service: &Tenant<Doc>) -> Result<()> {
    println!("\nGuarded: the same release with tenant.deploy(...)");
    let before = service.current();
    let memory = Arc::new(AtomicI64::new(61));
    let deployment = service
        .deploy(Patch::from_json(&json!([
            {"op": "replace", "path": "/version", "value": "2.0.0"},
            {"op": "replace", "path": "/features/new_ui", "value": true}
        ]))?)
        .name("v2.0.0-guarded")
        .check(MemoryUsage(Arc::clone(&memory)))
        .interval(Duration::from_millis(100))
        .window(Duration::from_millis(1200))
        .start()
        .await?;
    println!(
        "  📸 protected snapshot '{}' pins revision {}; v2.0.0 is revision {}",
        deployment.started().pre_snapshot,
        deployment.started().base_revision,
        deployment.started().revision
    );
    // The release warms up, then memory climbs.
    tokio::time::sleep(Duration::from_millis(350)).await;
    memory.store(95, Ordering::SeqCst);
    let ended = deployment.wait().await?;
    for m in &ended.measurements {
        let mark = if m.observation.result == CheckResult::Pass {
            "✅"
        } else {
            "❌"
        };
        println!(
            "  {mark} {}: {} ({})",
            m.observation.check,
            m.observation.value.unwrap_or(f64::NAN),
            m.observation.result.as_str()
        );
    }
    ensure!(
        ended.status == DeploymentStatus::RolledBack,
        "memory at 95% must roll the guarded deployment back: {:?}",
        ended.status
    );
    ensure!(
        service.current() == before,
        "the pre-deployment state is back"
    );
    let rollback = service.history(1).remove(0);
    let message = rollback.meta.message.clone().unwrap_or_default();
    println!(
        "  🔄 rolled back by itself at revision {}: {message}",
        rollback.revision
    );
    ensure!(
        message.contains("memory usage at 95%"),
        "the rollback's message names the failed check: {message}"
    );
    Ok(())
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let service = runtime
        .create_tenant(
            "checkout",
            Doc::from_json(&json!({
                "version": "1.9.5",
                "features": {"new_ui": false, "smart_cache": false},
                "sessions": {"active": 1200, "store": "v1"},
                "metrics": {"response_time_ms": 120, "error_rate_pct": 0.1, "memory_usage_pct": 61}
            }))?,
        )
        .await?;

    println!("Step 1: Pre-Deployment Snapshot");
    println!(
        "  current state: v{} (stable)",
        service.current()["version"].as_str().unwrap_or("?")
    );
    ensure!(healthy(&service.current()), "v1.9.5 must start healthy");
    let pre = service.snapshot_named("pre_v2_deploy").await?;
    println!(
        "  📸 create_snapshot(\"pre_v2_deploy\") pins revision {}",
        pre.revision
    );
    let stable = service.current();

    println!("\nStep 2: Deploy v2.0.0");
    let deploy = service
        .apply_with(
            Patch::from_json(&json!([
                // Update version
                {"op": "replace", "path": "/version", "value": "2.0.0"},
                // Enable new features
                {"op": "replace", "path": "/features/new_ui", "value": true},
                {"op": "replace", "path": "/features/smart_cache", "value": true},
                // Migrate data structures: the session store moves to v2
                {"op": "move", "from": "/sessions/active", "path": "/sessions/live"},
                {"op": "replace", "path": "/sessions/store", "value": "v2"},
                // What monitoring will observe after the rollout
                {"op": "replace", "path": "/metrics/memory_usage_pct", "value": 95}
            ]))?,
            WriteOptions {
                meta: CommitMeta::by("deploy-bot", "deploy v2.0.0"),
                expected_revision: Some(service.revision()),
            },
        )
        .await?;
    println!(
        "  apply_transition(deploy_v2_0_0) -> revision {}",
        deploy.revision
    );
    println!("  state: {}", service.current());

    println!("\nStep 3: Monitor & Verify");
    let deployed = service.current();
    print_health(&deployed);
    if healthy(&deployed) {
        bail!("the v2.0.0 health check was expected to fail on memory usage");
    }

    println!("\nStep 4: Emergency Rollback");
    println!("  ⚠️  High memory usage detected!");
    let started = Instant::now();
    let rollback = service.rollback_to_named_snapshot("pre_v2_deploy").await?;
    let elapsed = started.elapsed();
    println!(
        "  🔄 rollback_to_named_snapshot(\"pre_v2_deploy\") -> revision {} in {} µs",
        rollback.revision,
        elapsed.as_micros()
    );
    print_health(&service.current());
    ensure!(
        elapsed < ROLLBACK_PROMISE,
        "service must be restored in < {ROLLBACK_PROMISE:?}, took {elapsed:?}"
    );
    ensure!(
        service.current() == stable,
        "the state must be exactly the pre-deploy one"
    );
    ensure!(
        service.current()["version"] == "1.9.5" && healthy(&service.current()),
        "v1.9.5 must be back and healthy"
    );
    ensure!(
        rollback.restored.kind == RestoredKind::Named && rollback.restored.revision == pre.revision,
        "the rollback restores the pre_v2_deploy snapshot: {:?}",
        rollback.restored
    );
    println!(
        "  ✅ Service restored: v{}",
        service.current()["version"].as_str().unwrap_or("?")
    );

    println!("\n📝 Investigate the memory issue offline:");
    let history = service.history(10);
    for info in &history {
        let what = match &info.cause {
            Cause::Initial => "initial".to_owned(),
            Cause::Change => "change".to_owned(),
            Cause::Rollback { restored, from, .. } => {
                format!(
                    "rollback from revision {from} to revision {}",
                    restored.revision
                )
            }
            other => format!("{other:?}"),
        };
        let by = match (&info.meta.message, &info.meta.author) {
            (Some(message), Some(author)) => format!(": {message} (by {author})"),
            (Some(message), None) => format!(": {message}"),
            _ => String::new(),
        };
        println!("  revision {}: {what}{by}", info.revision);
    }
    ensure!(
        history.iter().any(|info| info.revision == deploy.revision
            && info.cause == Cause::Change
            && info.meta.message.as_deref() == Some("deploy v2.0.0")),
        "the failed deploy stays in history"
    );
    let failed = service.read_at(&StateRef::Revision(deploy.revision))?;
    ensure!(
        failed == deployed && failed["metrics"]["memory_usage_pct"] == 95,
        "the failed deploy's state is still readable"
    );
    ensure!(
        service.read_at(&StateRef::Snapshot(rollback.pre_rollback.name.clone()))? == deployed,
        "the pre-rollback snapshot holds the failed deploy"
    );
    let what_changed = service.diff(
        &StateRef::Snapshot(SnapshotName::new("pre_v2_deploy")?),
        &StateRef::Revision(deploy.revision),
    )?;
    println!(
        "  what v2.0.0 changed (snapshot '{}' of the failed state kept):",
        rollback.pre_rollback.name
    );
    for line in what_changed.to_string().lines() {
        println!("    {line}");
    }
    ensure!(
        what_changed
            .numeric_changes()
            .any(
                |(path, old, new)| path.to_string() == "/metrics/memory_usage_pct"
                    && old.as_i64() == Some(61)
                    && new.as_i64() == Some(95)
            ),
        "the diff shows memory usage 61 → 95"
    );

    guarded(&service).await?;

    runtime.shutdown().await?;
    println!("\nsafe deployment checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
