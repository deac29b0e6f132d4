//! Snapshot Retention Policy, from the product guide, through the runtime.
//!
//! Run with `cargo run --example retention`.
//!
//! - Automatic snapshots live in a ring of 10: the 11th prunes the oldest.
//! - Named snapshots have a higher limit, 50: the 51st prunes the oldest
//!   unprotected one, and protected snapshots (critical checkpoints such as
//!   "v1.0" or "prod_deploy") are never pruned.
//! - When every named snapshot is protected there is nothing to prune: the
//!   next one fails with a quota error until one is unprotected or deleted
//!   (shown with a tenant configured for 3 named snapshots).
//!
//! The example exits non-zero if retention does not behave so.

use anyhow::{bail, ensure, Result};
use rewind::core::{TimelineConfig, TimelineError};
use rewind::prelude::*;
use serde_json::json;

fn names(tenant: &Tenant<Doc>, kind: SnapshotKind) -> Vec<String> {
    tenant
        .snapshots()
        .into_iter()
        .filter(|s| s.kind == kind)
        .map(|s| s.name.to_string())
        .collect()
}

async fn bump(tenant: &Tenant<Doc>) -> Result<()> {
    tenant
        .update(|state: &Doc| {
            let n = state["n"].as_i64().unwrap_or(0);
            Patch::from_json(&json!([{"op": "replace", "path": "/n", "value": n + 1}]))
        })
        .await?;
    Ok(())
}

fn protected() -> NamedOptions {
    NamedOptions {
        protected: true,
        ..NamedOptions::default()
    }
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    // The auto snapshot policy is off, so the ring holds only the snapshots
    // this example takes.
    let quiet = TenantConfig {
        auto_snapshot: AutoSnapshotPolicy::DISABLED,
        ..TenantConfig::default()
    };
    let runtime = Runtime::<Doc>::builder()
        .tenant_defaults(quiet)
        .start()
        .await?;
    let tenant = runtime
        .create_tenant("acme_corp", Doc::from_json(&json!({"n": 0}))?)
        .await?;
    let limits = *tenant.timeline().config();

    println!("== Automatic Snapshots (max: {}) ==", limits.auto_limit);
    let mut taken = Vec::new();
    for _ in 0..10 {
        bump(&tenant).await?;
        taken.push(tenant.snapshot().await?);
    }
    let ring = names(&tenant, SnapshotKind::Auto);
    println!("Oldest ──► Newest: {}", ring.join(" "));
    ensure!(ring.len() == 10, "the ring must hold 10 auto snapshots");

    bump(&tenant).await?;
    let eleventh = tenant.snapshot().await?;
    println!("New snapshot created ──► 📸 {}", eleventh.name);
    let after = names(&tenant, SnapshotKind::Auto);
    println!("Oldest ──► Newest: {}", after.join(" "));
    println!("Result: oldest ({}) is pruned", taken[0].name);
    ensure!(
        after.len() == 10,
        "the ring must still hold 10 after the 11th"
    );
    ensure!(
        !after.contains(&taken[0].name.to_string()),
        "the 11th auto snapshot must prune the 1st"
    );
    ensure!(
        after[..9] == ring[1..] && after[9] == eleventh.name.as_str(),
        "the ring must be 2..=11, got {after:?}"
    );
    let pruned = tenant.read_at(&StateRef::Snapshot(taken[0].name.clone()));
    ensure!(
        pruned.as_ref().is_err_and(Error::is_snapshot_not_found),
        "a pruned snapshot must be gone"
    );

    println!("\n== Named Snapshots (max: {}) ==", limits.named_limit);
    for name in ["v1.0", "prod_deploy"] {
        tenant
            .snapshot_with(SnapshotName::new(name)?, protected())
            .await?;
    }
    for name in ["v1.5", "v2.0", "beta", "staging"] {
        tenant.snapshot_named(name).await?;
    }
    for i in 0..44 {
        bump(&tenant).await?;
        tenant.snapshot_named(&format!("build-{i}")).await?;
    }
    let named = names(&tenant, SnapshotKind::Named);
    println!(
        "📌 {} ... ({} named, protected: v1.0, prod_deploy)",
        named[..6].join("  📌 "),
        named.len()
    );
    ensure!(named.len() == 50, "50 named snapshots, got {}", named.len());

    let v21 = tenant.snapshot_named("v2.1").await?;
    let named = names(&tenant, SnapshotKind::Named);
    println!(
        "51st named snapshot \"{}\": the oldest unprotected one (v1.5) is pruned; now {}",
        v21.name,
        named[..5].join(", ")
    );
    ensure!(named.len() == 50, "still 50 named snapshots");
    ensure!(
        named.iter().any(|n| n == "v1.0") && named.iter().any(|n| n == "prod_deploy"),
        "protected snapshots must survive retention"
    );
    ensure!(
        !named.iter().any(|n| n == "v1.5"),
        "the oldest unprotected snapshot (v1.5) must be pruned"
    );
    ensure!(
        names(&tenant, SnapshotKind::Auto) == after,
        "named retention must not touch the auto ring"
    );

    println!("\n== All protected: quota exceeded ==");
    let tight = TenantConfig {
        timeline: TimelineConfig {
            named_limit: 3,
            ..TimelineConfig::default()
        },
        ..quiet
    };
    let small = runtime
        .create_tenant_with(
            TenantId::new("widgets_r_us")?,
            Doc::from_json(&json!({"n": 0}))?,
            Some(tight),
        )
        .await?;
    for name in ["v1.0", "v2.0", "prod_deploy"] {
        small
            .snapshot_with(SnapshotName::new(name)?, protected())
            .await?;
    }
    println!(
        "widgets_r_us (named_limit 3): 📌 {} — all protected",
        names(&small, SnapshotKind::Named).join("  📌 ")
    );
    let before = small.snapshots();
    match small.snapshot_named("staging").await {
        Ok(s) => bail!(
            "a 4th named snapshot must not fit, but {} was taken",
            s.name
        ),
        Err(err) => {
            println!("snapshot_named(\"staging\") → ❌ {err}");
            ensure!(
                matches!(err.timeline_error(), Some(TimelineError::QuotaExceeded(_))),
                "the error must be QuotaExceeded, got {err:?}"
            );
        }
    }
    ensure!(
        small.snapshots() == before,
        "a refused snapshot must change nothing"
    );

    small.protect("v1.0", false).await?;
    small.snapshot_named("staging").await?;
    let now = names(&small, SnapshotKind::Named);
    println!(
        "after protect(\"v1.0\", false): \"staging\" fits, v1.0 pruned → {}",
        now.join(", ")
    );
    ensure!(
        now == ["v2.0", "prod_deploy", "staging"],
        "unprotecting v1.0 must let it be pruned, got {now:?}"
    );

    runtime.shutdown().await?;
    println!("\nretention checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
