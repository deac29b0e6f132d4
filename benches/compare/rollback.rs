//! Row "rollback": back and forth between two named snapshots one key
//! apart, through the actor and on the core; the baseline restores a saved
//! deep copy. Also: the same rollback at 1k and at the largest N, to show
//! that its cost does not follow the document's size.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use rewind::core::{Doc, RollbackTarget, SnapshotName, Timeline};
use rewind::runtime::Tenant;

use crate::fixtures::{self, replace_patch, Rng};
use crate::measure::{compare, Batch, Kind, Variant};
use crate::report::{size, timed_lines, Line};
use crate::{Ctx, Fixture};

const ROW: &str = "rollback";

/// The two targets: `rb_a`, then one key changed, then `rb_b`.
fn targets() -> anyhow::Result<[RollbackTarget; 2]> {
    Ok([
        RollbackTarget::Named(SnapshotName::new("rb_a")?),
        RollbackTarget::Named(SnapshotName::new("rb_b")?),
    ])
}

/// A tenant holding `doc` with the two target snapshots.
async fn prepared_tenant(ctx: &Ctx, id: &str, doc: Doc, n: usize) -> anyhow::Result<Tenant> {
    let tenant = ctx.runtime.create_tenant(id, doc).await?;
    let key = Rng::new(0x7e57_0003 ^ n as u64).below(n);
    tenant.snapshot_named("rb_a").await?;
    tenant.apply(replace_patch(&[key], -1)).await?;
    tenant.snapshot_named("rb_b").await?;
    Ok(tenant)
}

/// Rollbacks through the actor, alternating between the two targets.
fn via_actor<'a>(tenant: Tenant, what: String) -> anyhow::Result<Variant<'a>> {
    let targets = Arc::new(targets()?);
    let mut next = 0;
    Ok(Variant::with_future(Kind::Actor, what, Batch::PerOp, {
        move |iters| {
            let tenant = tenant.clone();
            let targets = Arc::clone(&targets);
            let first = next;
            next += iters as usize;
            Box::pin(async move {
                let started = Instant::now();
                for i in 0..iters as usize {
                    let target = targets[(first + i) % 2].clone();
                    black_box(tenant.rollback(target).await.expect("rollback"));
                }
                started.elapsed()
            })
        }
    }))
}

pub(crate) async fn run(ctx: &Ctx, fx: &Fixture) -> anyhow::Result<Vec<Line>> {
    let n = fx.n;
    let id = format!("rollback_{n}");
    let tenant = prepared_tenant(ctx, &id, fx.doc.clone(), n).await?;
    let targets = targets()?;
    let mut timeline = Timeline::with_defaults(fx.doc.clone());
    timeline.snapshot_named(SnapshotName::new("rb_a")?, Default::default())?;
    let key = Rng::new(0x7e57_0003 ^ n as u64).below(n);
    timeline.apply(&replace_patch(&[key], -1))?;
    timeline.snapshot_named(SnapshotName::new("rb_b")?, Default::default())?;
    let backup = Arc::clone(&fx.map);

    let mut variants = vec![
        via_actor(
            tenant,
            "Tenant::rollback(Named), two snapshots 1 key apart".into(),
        )?,
        Variant::sync(
            Kind::Direct,
            "Timeline::rollback(Named)",
            Batch::Lasting(Ctx::SMALL_BATCH),
            {
                let mut next = 0;
                move |iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        next = (next + 1) % 2;
                        black_box(timeline.rollback(&targets[next]).expect("rollback"));
                    }
                    started.elapsed()
                }
            },
        ),
        Variant::sync(
            Kind::Baseline,
            "restore: clone the saved HashMap back",
            Batch::PerOp,
            {
                let mut current = fixtures::Map::new();
                move |iters| {
                    let mut replaced = Vec::with_capacity(iters as usize);
                    let started = Instant::now();
                    for _ in 0..iters {
                        replaced.push(std::mem::replace(&mut current, (*backup).clone()));
                    }
                    let took = started.elapsed();
                    // Freeing the replaced states is left out: generous to
                    // the baseline.
                    drop(replaced);
                    took
                }
            },
        ),
    ];
    let stats = compare(&ctx.plan, &mut variants).await;
    let labels: Vec<_> = variants.iter().map(Variant::label).collect();
    drop(variants);
    ctx.runtime.delete_tenant(&id).await?;

    let mut lines = timed_lines(ROW, Some(n), &labels, &stats, 2);
    lines[0].set_goal("p50 <= 1 us", stats[0].p50 <= 1_000.0);
    Ok(lines)
}

/// Rollback through the actor at `small` keys and at `fx.n` keys,
/// interleaved. The ratio column is small p50 / large p50.
pub(crate) async fn size_independence(
    ctx: &Ctx,
    fx: &Fixture,
    small: usize,
) -> anyhow::Result<Vec<Line>> {
    let large = fx.n;
    let small_tenant = prepared_tenant(ctx, "rollback_small", fixtures::doc(small), small).await?;
    let large_tenant = prepared_tenant(ctx, "rollback_large", fx.doc.clone(), large).await?;
    let mut variants = vec![
        via_actor(
            small_tenant,
            format!("Tenant::rollback(Named) at {}", size(small)),
        )?,
        via_actor(
            large_tenant,
            format!("Tenant::rollback(Named) at {}", size(large)),
        )?,
    ];
    let stats = compare(&ctx.plan, &mut variants).await;
    let labels: Vec<_> = variants.iter().map(Variant::label).collect();
    drop(variants);
    ctx.runtime.delete_tenant("rollback_small").await?;
    ctx.runtime.delete_tenant("rollback_large").await?;

    let row = format!("rollback {} vs {}", size(small), size(large));
    let mut lines = timed_lines(&row, Some(small), &labels, &stats, 0);
    lines[1].n = Some(large);
    let growth = stats[1].p50 / stats[0].p50;
    lines[1].set_goal(
        format!(
            "{} within 1.5x of {}: {growth:.2}x",
            size(large),
            size(small)
        ),
        growth <= 1.5,
    );
    Ok(lines)
}
