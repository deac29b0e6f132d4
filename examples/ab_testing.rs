//! A/B Testing with live forks (product guide): three variants of a
//! storefront, each a fork of its "baseline" snapshot, all serving
//! (simulated) traffic at the same time while the storefront itself keeps
//! serving and changing; the best-scoring variant is promoted back by
//! merge, which keeps the storefront's own change, and the others are
//! deleted.
//!
//! Run with `cargo run --example ab_testing`. It checks its own story and
//! exits non-zero if the behaviour is wrong.
//!
//! The traffic is deterministic: a variant converts exactly its score in
//! percent of its visits, so the story gives the guide's 85 / 92 / 78.

use anyhow::{ensure, Context, Result};
use rewind::prelude::*;
use serde_json::json;

/// Visits each variant serves.
const VISITS: u64 = 1_000;

/// Points each setting earns in the (simulated) experiment.
fn score(state: &Doc) -> Result<u64> {
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

/// Serves `VISITS` visits from the fork's live state (a lock-free read per
/// visit) and returns the conversions: visit `i` converts when `i * 37 mod
/// 100` is below the state's score, i.e. exactly `score` percent of them.
async fn serve(fork: Tenant<Doc>) -> Result<(TenantId, u64)> {
    let mut conversions = 0;
    for visit in 0..VISITS {
        let state = fork.current();
        if (visit * 37) % 100 < score(&state)? {
            conversions += 1;
        }
        if visit % 100 == 99 {
            // Let the other variants and the storefront serve too.
            tokio::task::yield_now().await;
        }
    }
    Ok((fork.id().clone(), conversions))
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let catalog: Doc = (0..500)
        .map(|i| (format!("sku_{i}"), format!("product {i}")))
        .collect();
    let mut initial = json!({"ui": "classic", "algorithm": "v1", "features": "standard"});
    initial["catalog"] = catalog.to_json();
    let app = runtime
        .create_tenant("storefront", Doc::from_json(&initial)?)
        .await?;
    app.snapshot_named("baseline").await?;
    let baseline = app.current();
    println!(
        "📸 Snapshot \"baseline\": ui {}, algorithm {}, features {} (+ {} catalog entries)",
        baseline["ui"], baseline["algorithm"], baseline["features"], 500
    );

    // Three live forks of the baseline: O(1) each, sharing its structure.
    let mut forks = Vec::new();
    for label in ["A", "B", "C"] {
        let name = format!("storefront.variant_{}", label.to_lowercase());
        let fork = app.fork(&name, "snapshot:baseline".parse()?).await?;
        ensure!(
            fork.current()["catalog"].ptr_eq(&baseline["catalog"]),
            "variant {label} shares the catalog with the baseline"
        );
        fork.apply(variant(label)?).await?;
        println!(
            "🍴 Fork {name}: {} (catalog shared: {})",
            fork.diff(&StateRef::Revision(Revision::ZERO), &StateRef::Head)?
                .patch
                .to_json(),
            fork.current()["catalog"].ptr_eq(&baseline["catalog"])
        );
        forks.push(fork);
    }
    ensure!(
        app.forks().len() == 3,
        "the storefront lists its three forks"
    );

    // All three serve at once; the storefront keeps serving and changes too.
    let traffic: Vec<_> = forks
        .iter()
        .map(|fork| tokio::spawn(serve(fork.clone())))
        .collect();
    let storefront = app.clone();
    let live = tokio::spawn(async move {
        storefront
            .apply(Patch::from_json(&json!([
                {"op": "add", "path": "/banner", "value": "summer sale"}
            ]))?)
            .await?;
        anyhow::Ok(())
    });
    let mut scores = Vec::new();
    for task in traffic {
        let (fork, conversions) = task.await??;
        let rate = conversions * 100 / VISITS;
        println!("📈 {fork}: {conversions} of {VISITS} visits converted — score {rate}");
        scores.push((fork, rate));
    }
    live.await??;
    println!(
        "🛍  Meanwhile the storefront set its banner: {}",
        app.current()["banner"]
    );

    let got: Vec<u64> = scores.iter().map(|(_, rate)| *rate).collect();
    ensure!(
        got == [85, 92, 78],
        "scores must be A 85, B 92, C 78: {got:?}"
    );
    let (winner, best) = scores
        .iter()
        .max_by_key(|(_, rate)| *rate)
        .cloned()
        .context("three variants were scored")?;
    ensure!(
        winner.as_str() == "storefront.variant_b",
        "variant B must win"
    );
    println!("\nWinner: {winner} (score {best}) ⭐");

    // Promote the winner by merge: its changes since the baseline, on top
    // of the storefront's own change (the banner stays).
    let winning = runtime.tenant(winner.as_str()).await?;
    let promoted = winning.promote(PromoteStrategy::Merge).await?;
    println!(
        "promote({winner}, merge) -> storefront revision {}: {}",
        promoted.revision,
        app.history(1)[0].cause
    );
    let head = app.current();
    ensure!(
        head["ui"] == "modern"
            && head["algorithm"] == "v2"
            && head["features"] == "standard"
            && head["banner"] == "summer sale",
        "the storefront is the baseline with variant B and its banner: {head}"
    );
    ensure!(
        head["catalog"].ptr_eq(&baseline["catalog"]),
        "the promotion copied nothing it did not change"
    );
    ensure!(score(&head)? == 92, "the winner's score holds");
    let from_baseline = app.diff(&"snapshot:baseline".parse()?, &StateRef::Head)?;
    print!("change from baseline:\n{from_baseline}");
    ensure!(
        from_baseline.summary.changed == 2 && from_baseline.summary.added == 1,
        "variant B changes ui and algorithm; the banner is the storefront's own"
    );

    // The losers are deleted; history keeps the promotion.
    drop((winning, forks));
    for (fork, _) in scores.iter().filter(|(fork, _)| *fork != winner) {
        runtime.delete_tenant(fork.as_str()).await?;
    }
    let left: Vec<String> = app.forks().iter().map(|f| f.fork.to_string()).collect();
    ensure!(
        left == [winner.to_string()],
        "only the winner is left: {left:?}"
    );
    ensure!(
        matches!(app.history(1)[0].cause, Cause::Promote { .. }),
        "the head says it was promoted"
    );

    drop(app);
    runtime.shutdown().await?;
    println!("\nA/B testing with live forks checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
