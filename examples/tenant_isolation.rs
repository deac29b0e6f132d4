//! Tenant Isolation, from the product guide.
//!
//! Run with `cargo run --example tenant_isolation`.
//!
//! Two tenants of one runtime: `acme_corp` (sessions 50, version "3.0";
//! snapshots "prod_deploy", "v3.0_release" and an auto one) and
//! `widgets_r_us` (sessions 30, version "2.5"; snapshots "beta_test",
//! "v2.5_stable" and an auto one). Every reference is resolved inside one
//! tenant, so `acme_corp.rollback_to_named_snapshot("beta_test")` fails with
//! snapshot-not-found, and so do reads, diffs and dry runs naming the other
//! tenant's snapshots. Even the auto snapshots, which happen to carry the
//! same generated name in both tenants, each resolve to their own tenant's
//! state. Both tenants are left unchanged. The example exits non-zero if
//! any of that is wrong.

use anyhow::{bail, ensure, Result};
use rewind::prelude::*;
use serde_json::{json, Value};

fn doc(value: Value) -> Result<Doc> {
    Ok(Doc::from_json(&value)?)
}

fn patch(value: Value) -> Result<Patch> {
    Ok(Patch::from_json(&value)?)
}

/// Builds a tenant's history: a named snapshot after each release, then
/// traffic and an auto snapshot.
async fn build(
    runtime: &Runtime<Doc>,
    id: &str,
    initial: Value,
    releases: [(&str, Value); 2],
    traffic: Value,
) -> Result<Tenant<Doc>> {
    let tenant = runtime.create_tenant(id, doc(initial)?).await?;
    for (name, change) in releases {
        tenant.apply(patch(change)?).await?;
        tenant.snapshot_named(name).await?;
    }
    tenant.apply(patch(traffic)?).await?;
    tenant.snapshot().await?;
    Ok(tenant)
}

fn show(tenant: &Tenant<Doc>) {
    let state = tenant.current();
    println!("Tenant: \"{}\"", tenant.id());
    println!(
        "  Current State: sessions: {}, version: {}, data: {}",
        state["sessions"], state["version"], state["data"]
    );
    let snapshots: Vec<String> = tenant
        .snapshots()
        .iter()
        .map(|s| format!("📸 \"{}\" ({}, revision {})", s.name, s.kind, s.revision))
        .collect();
    println!("  Snapshots: {}", snapshots.join("  "));
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let acme = build(
        &runtime,
        "acme_corp",
        json!({"sessions": 0, "version": "2.9", "data": {"plan": "enterprise"}}),
        [
            (
                "prod_deploy",
                json!([{"op": "replace", "path": "/sessions", "value": 20}]),
            ),
            (
                "v3.0_release",
                json!([{"op": "replace", "path": "/version", "value": "3.0"}]),
            ),
        ],
        json!([{"op": "replace", "path": "/sessions", "value": 50}]),
    )
    .await?;
    let widgets = build(
        &runtime,
        "widgets_r_us",
        json!({"sessions": 0, "version": "2.5-rc1", "data": {"plan": "startup"}}),
        [
            (
                "beta_test",
                json!([{"op": "replace", "path": "/sessions", "value": 5}]),
            ),
            (
                "v2.5_stable",
                json!([{"op": "replace", "path": "/version", "value": "2.5"}]),
            ),
        ],
        json!([{"op": "replace", "path": "/sessions", "value": 30}]),
    )
    .await?;

    println!("== Global State Manager ==");
    let tenants: Vec<String> = runtime
        .tenants()
        .iter()
        .map(|(id, revision)| match revision {
            Some(revision) => format!("{id} @ revision {revision}"),
            // Only a tenant passivated before this runtime read it.
            None => format!("{id} (passivated)"),
        })
        .collect();
    println!("tenants: {}", tenants.join(", "));
    show(&acme);
    show(&widgets);
    ensure!(
        acme.current()["sessions"].as_i64() == Some(50) && acme.current()["version"] == "3.0",
        "acme_corp must hold sessions 50, version 3.0"
    );
    ensure!(
        widgets.current()["sessions"].as_i64() == Some(30) && widgets.current()["version"] == "2.5",
        "widgets_r_us must hold sessions 30, version 2.5"
    );

    let before = [
        (acme.current(), acme.revision(), acme.snapshots()),
        (widgets.current(), widgets.revision(), widgets.snapshots()),
    ];

    println!("\n❌ ISOLATION ❌  No Cross-Access!");
    println!("Attempt: acme_corp.rollback_to_named_snapshot(\"beta_test\")");
    match acme.rollback_to_named_snapshot("beta_test").await {
        Ok(outcome) => bail!(
            "acme_corp rolled back to widgets_r_us's snapshot: {:?}",
            outcome.restored
        ),
        Err(err) => {
            println!("Result:  ❌ ERROR - {err}");
            ensure!(
                err.is_snapshot_not_found(),
                "the error must be snapshot-not-found, got {err:?}"
            );
        }
    }

    // Every other operation taking a reference stays inside its tenant too.
    let stable = SnapshotName::new("v2.5_stable")?;
    let reads = [
        (
            "read_at(Snapshot(\"v2.5_stable\"))",
            acme.read_at(&StateRef::Snapshot(stable.clone())).err(),
        ),
        (
            "diff(Head, Snapshot(\"v2.5_stable\"))",
            acme.diff(&StateRef::Head, &StateRef::Snapshot(stable.clone()))
                .err(),
        ),
        (
            "rollback_dry_run(Named(\"v2.5_stable\"))",
            acme.rollback_dry_run(&RollbackTarget::Named(stable.clone()))
                .err(),
        ),
    ];
    for (what, err) in reads {
        match err {
            Some(err) if err.is_snapshot_not_found() => {
                println!("acme_corp.{what}: ❌ {err}");
            }
            Some(err) => bail!("acme_corp.{what} must be snapshot-not-found, got {err}"),
            None => bail!("acme_corp.{what} reached widgets_r_us's data"),
        }
    }
    match widgets.rollback_to_named_snapshot("prod_deploy").await {
        Err(err) if err.is_snapshot_not_found() => {
            println!("widgets_r_us.rollback_to_named_snapshot(\"prod_deploy\"): ❌ {err}");
        }
        other => bail!("widgets_r_us must not reach acme_corp's prod_deploy: {other:?}"),
    }

    // Both tenants have an auto snapshot with the same generated name; each
    // name resolves to its own tenant's state.
    let acme_auto = acme
        .snapshots()
        .into_iter()
        .find(|s| s.kind == SnapshotKind::Auto);
    let widgets_auto = widgets
        .snapshots()
        .into_iter()
        .find(|s| s.kind == SnapshotKind::Auto);
    let (Some(acme_auto), Some(widgets_auto)) = (acme_auto, widgets_auto) else {
        bail!("both tenants must have an auto snapshot");
    };
    let mine = acme.read_at(&StateRef::Snapshot(widgets_auto.name.clone()))?;
    println!(
        "acme_corp reading \"{}\" (widgets_r_us also has one by that name) gets its own: version {}",
        widgets_auto.name, mine["version"]
    );
    ensure!(
        acme_auto.name == widgets_auto.name && mine == acme.current(),
        "an auto snapshot name must resolve inside the tenant that reads it"
    );

    let after = [
        (acme.current(), acme.revision(), acme.snapshots()),
        (widgets.current(), widgets.revision(), widgets.snapshots()),
    ];
    ensure!(
        before == after,
        "failed cross-tenant attempts must leave both tenants unchanged"
    );
    println!("\nboth tenants unchanged:");
    show(&acme);
    show(&widgets);

    runtime.shutdown().await?;
    println!("\ntenant isolation checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
