//! Row "diff": 1 and 1000 changes in one document, diffed structurally
//! (shared subtrees skipped by pointer) against full scans of both versions.

use std::hint::black_box;
use std::time::Instant;

use rewind::core::{Diff, Doc, StateRef};

use crate::fixtures::{self, key, replace_patch, Map, Rng};
use crate::measure::{compare, Batch, Kind, Variant};
use crate::report::{timed_lines, Line};
use crate::Ctx;

/// Changes found by comparing every entry of both maps.
fn scan_maps(a: &Map, b: &Map) -> usize {
    let changed = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).count();
    changed + b.keys().filter(|k| !a.contains_key(*k)).count()
}

/// Changes found by walking both (sorted) objects in step, without using
/// the sharing between them.
fn scan_docs(a: &Doc, b: &Doc) -> usize {
    let (a, b) = (
        a.as_object().expect("object"),
        b.as_object().expect("object"),
    );
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    let mut changed = 0;
    loop {
        match (x.peek(), y.peek()) {
            (None, None) => return changed,
            (Some(_), None) | (None, Some(_)) => {
                changed += 1;
                x.next().or_else(|| y.next());
            }
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Equal => {
                    changed += usize::from(va != vb);
                    x.next();
                    y.next();
                }
                std::cmp::Ordering::Less => {
                    changed += 1;
                    x.next();
                }
                std::cmp::Ordering::Greater => {
                    changed += 1;
                    y.next();
                }
            },
        }
    }
}

pub(crate) async fn run(ctx: &Ctx, n: usize) -> anyhow::Result<Vec<Line>> {
    let a = fixtures::doc(n);
    let map_a = fixtures::map(n);
    let mut lines = Vec::new();
    for changes in [1, 1000] {
        let changed = Rng::new(0x7e57_0005 ^ changes as u64).distinct(n, changes);
        let patch = replace_patch(&changed, -1);
        let b = a.apply_patch(&patch)?;
        let mut map_b = map_a.clone();
        for &k in &changed {
            *map_b.get_mut(&key(k)).expect("key") = -1;
        }
        let id = format!("diff_{changes}");
        let tenant = ctx.runtime.create_tenant(&id, a.clone()).await?;
        let to = StateRef::Revision(tenant.apply(patch).await?.revision);
        let from = StateRef::Revision(rewind::core::Revision::ZERO);
        assert_eq!(Diff::between(&a, &b).entries.len(), changes);
        assert_eq!(scan_maps(&map_a, &map_b), changes);
        assert_eq!(scan_docs(&a, &b), changes);

        let mut variants = vec![
            Variant::sync(
                Kind::Handle,
                "Tenant::diff(revision, revision)",
                Batch::Lasting(Ctx::SMALL_BATCH),
                move |iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(tenant.diff(&from, &to).expect("diff"));
                    }
                    started.elapsed()
                },
            ),
            Variant::sync(
                Kind::Direct,
                "Diff::between (skips shared nodes)",
                Batch::Lasting(Ctx::SMALL_BATCH),
                |iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(Diff::between(&a, &b));
                    }
                    started.elapsed()
                },
            ),
            Variant::sync(
                Kind::Baseline,
                "full scan of both Docs",
                Batch::Lasting(Ctx::SMALL_BATCH),
                |iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(scan_docs(&a, &b));
                    }
                    started.elapsed()
                },
            ),
            Variant::sync(
                Kind::Baseline,
                "full scan of both HashMaps",
                Batch::Lasting(Ctx::SMALL_BATCH),
                |iters| {
                    let started = Instant::now();
                    for _ in 0..iters {
                        black_box(scan_maps(&map_a, &map_b));
                    }
                    started.elapsed()
                },
            ),
        ];
        let stats = compare(&ctx.plan, &mut variants).await;
        let labels: Vec<_> = variants.iter().map(Variant::label).collect();
        drop(variants);
        ctx.runtime.delete_tenant(&id).await?;

        let row = format!(
            "diff, {changes} change{}",
            if changes == 1 { "" } else { "s" }
        );
        let mut group = timed_lines(&row, Some(n), &labels, &stats, 3);
        // The Doc scan is a second baseline, not measured against the first.
        group[2].ratio = None;
        if changes == 1 {
            for i in [0, 1] {
                let ratio = stats[3].p50 / stats[i].p50;
                group[i].set_goal(
                    "p50 <= 2 us, >= 100x a full scan",
                    stats[i].p50 <= 2_000.0 && ratio >= 100.0,
                );
            }
        }
        lines.extend(group);
    }
    Ok(lines)
}
