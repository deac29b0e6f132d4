//! Row "transition": a one-key patch through the tenant actor, the same
//! change on the core, and the seed's baseline (clone the whole map, modify
//! the copy).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use rewind::core::{Patch, Timeline};

use crate::fixtures::{key, one_key_patches, Rng};
use crate::measure::{compare, Batch, Kind, Variant};
use crate::report::{timed_lines, Line};
use crate::{Ctx, Fixture};

const ROW: &str = "transition (one-key patch)";

pub(crate) async fn run(ctx: &Ctx, fx: &Fixture) -> anyhow::Result<Vec<Line>> {
    let n = fx.n;
    let mut rng = Rng::new(0x7e57_0001 ^ n as u64);
    let patches = one_key_patches(&mut rng, n, 4096);
    let keys: Vec<String> = (0..4096).map(|_| key(rng.below(n))).collect();
    let id = format!("transition_{n}");
    let tenant = ctx.runtime.create_tenant(&id, fx.doc.clone()).await?;
    let mut timeline = Timeline::with_defaults(fx.doc.clone());
    let map = Arc::clone(&fx.map);

    let mut variants = vec![
        Variant::with_future(Kind::Actor, "Tenant::apply", Batch::PerOp, {
            let patches = Arc::clone(&patches);
            let mut next = 0;
            move |iters| {
                // The caller builds its patch; that is not rewind's time.
                let batch: Vec<Patch> = (0..iters)
                    .map(|_| {
                        next = (next + 1) % patches.len();
                        patches[next].clone()
                    })
                    .collect();
                let tenant = tenant.clone();
                Box::pin(async move {
                    let started = Instant::now();
                    for patch in batch {
                        tenant.apply(patch).await.expect("apply through the actor");
                    }
                    started.elapsed()
                })
            }
        }),
        Variant::sync(
            Kind::Direct,
            "Timeline::apply",
            Batch::Lasting(Ctx::SMALL_BATCH),
            {
                let patches = Arc::clone(&patches);
                let mut next = 0;
                move |iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        next = (next + 1) % patches.len();
                        black_box(timeline.apply(&patches[next]).expect("apply on the core"));
                    }
                    started.elapsed()
                }
            },
        ),
        Variant::sync(
            Kind::Baseline,
            "HashMap clone + modify the copy",
            Batch::PerOp,
            {
                let mut next = 0;
                move |iters| {
                    let mut copies = Vec::with_capacity(iters as usize);
                    let started = Instant::now();
                    for _ in 0..iters {
                        next = (next + 1) % keys.len();
                        let mut copy = (*map).clone();
                        *copy.get_mut(&keys[next]).expect("key exists") += 1;
                        copies.push(copy);
                    }
                    let took = started.elapsed();
                    // Freeing the copies is left out: generous to the baseline.
                    drop(copies);
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
    if n == ctx.goal_n {
        let (actor, baseline) = (&stats[0], &stats[2]);
        let met =
            actor.p50 <= 5_000.0 && actor.p99 <= 25_000.0 && baseline.p50 / actor.p50 >= 300.0;
        lines[0].set_goal("p50 <= 5 us, p99 <= 25 us, >= 300x the deep copy", met);
    }
    Ok(lines)
}
