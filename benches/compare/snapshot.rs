//! Row "snapshot": auto and named snapshots through the actor, an auto
//! snapshot on the core, and the baseline deep clone.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use rewind::core::{AutoTrigger, NamedOptions, SnapshotName, Timeline};

use crate::measure::{compare, Batch, Kind, Variant};
use crate::report::{timed_lines, Line};
use crate::{Ctx, Fixture};

const ROW: &str = "snapshot";

pub(crate) async fn run(ctx: &Ctx, fx: &Fixture) -> anyhow::Result<Vec<Line>> {
    let n = fx.n;
    let id = format!("snapshot_{n}");
    let tenant = ctx.runtime.create_tenant(&id, fx.doc.clone()).await?;
    let mut timeline = Timeline::with_defaults(fx.doc.clone());
    let map = Arc::clone(&fx.map);
    // `replace` re-uses one name, so the named quota never runs out.
    let name = SnapshotName::new("bench")?;
    let replace = NamedOptions {
        replace: true,
        ..NamedOptions::default()
    };

    let mut variants = vec![
        Variant::with_future(Kind::Actor, "Tenant::snapshot (auto)", Batch::PerOp, {
            let tenant = tenant.clone();
            move |iters| {
                let tenant = tenant.clone();
                Box::pin(async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(tenant.snapshot().await.expect("auto snapshot"));
                    }
                    started.elapsed()
                })
            }
        }),
        Variant::with_future(
            Kind::Actor,
            "Tenant::snapshot_with (named, replace)",
            Batch::PerOp,
            {
                let tenant = tenant.clone();
                move |iters| {
                    let tenant = tenant.clone();
                    let name = name.clone();
                    Box::pin(async move {
                        let started = Instant::now();
                        for _ in 0..iters {
                            let taken = tenant.snapshot_with(name.clone(), replace).await;
                            black_box(taken.expect("named snapshot"));
                        }
                        started.elapsed()
                    })
                }
            },
        ),
        Variant::sync(
            Kind::Direct,
            "Timeline::snapshot_auto",
            Batch::Lasting(Ctx::SMALL_BATCH),
            move |iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(timeline.snapshot_auto(AutoTrigger::Requested));
                }
                started.elapsed()
            },
        ),
        Variant::sync(
            Kind::Baseline,
            "HashMap deep clone",
            Batch::PerOp,
            crate::fixtures::deep_clones(map),
        ),
    ];
    let stats = compare(&ctx.plan, &mut variants).await;
    let labels: Vec<_> = variants.iter().map(Variant::label).collect();
    drop(variants);
    ctx.runtime.delete_tenant(&id).await?;

    let mut lines = timed_lines(ROW, Some(n), &labels, &stats, 3);
    for i in [0, 1] {
        lines[i].set_goal("p50 <= 1 us", stats[i].p50 <= 1_000.0);
    }
    Ok(lines)
}
