//! Row "cold read": the state of a snapshot 50 snapshots back, 100 keys
//! changed between snapshots, at two document sizes with the same changes.
//! Cold states are kept as reverse deltas, so the read rebuilds the state
//! from the nearest hot one: its cost should follow the changes replayed
//! (about 4,800 here), not the size of the state.
//!
//! The timelines keep no rebuild cache (`rebuild_cache: 0`), so every read
//! rebuilds; one more variant reads with the default cache (a repeated read
//! is a cache hit). The hot read of the newest snapshot and a deep copy of
//! the `HashMap` (what restoring a state costs the seed's baseline) stand
//! beside them.

use std::hint::black_box;
use std::time::Instant;

use rewind::core::{
    AutoTrigger, Doc, NamedOptions, SnapshotName, StateRef, Timeline, TimelineConfig,
};

use crate::fixtures::{self, replace_patch, Rng};
use crate::measure::{compare, Batch, Kind, Variant};
use crate::report::{size, timed_lines, Line};
use crate::Ctx;
use anyhow::Context as _;

const ROW: &str = "cold read (50 snapshots back, 100 keys changed per snapshot)";
const SNAPSHOTS: usize = 60;
const BACK: usize = 50;
const CHANGES: usize = 100;

/// A timeline of `n` keys with 60 snapshots (every 6th auto, the others
/// named `named_<i>`), `CHANGES` keys changed between two.
fn timeline(n: usize, config: TimelineConfig) -> anyhow::Result<Timeline<Doc>> {
    let mut rng = Rng::new(0x7e57_00c0 ^ n as u64);
    let mut timeline = Timeline::new(
        fixtures::doc(n),
        config,
        std::sync::Arc::new(rewind::core::SystemClock),
    )?;
    for i in 0..SNAPSHOTS {
        if i > 0 {
            timeline.apply(&replace_patch(&rng.distinct(n, CHANGES), -(i as i64)))?;
        }
        if i % 6 == 5 {
            timeline.snapshot_auto(AutoTrigger::Requested);
        } else {
            timeline.snapshot_named(
                SnapshotName::new(format!("named_{i}"))?,
                NamedOptions::default(),
            )?;
        }
    }
    Ok(timeline)
}

fn read(timeline: Timeline<Doc>, at: StateRef) -> impl FnMut(u64) -> std::time::Duration + Send {
    move |iters| {
        let started = Instant::now();
        for _ in 0..iters {
            black_box(timeline.state_at(&at).expect("a held state"));
        }
        started.elapsed()
    }
}

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Line>> {
    let (small, large) = if ctx.quick {
        (10_000, 100_000)
    } else {
        (100_000, 1_000_000)
    };
    let uncached = TimelineConfig {
        rebuild_cache: 0,
        ..TimelineConfig::default()
    };
    let back = StateRef::Snapshot(SnapshotName::new(format!(
        "named_{}",
        SNAPSHOTS - 1 - BACK
    ))?);
    let at_small = timeline(small, uncached)?;
    // The newest snapshot, held whole.
    let newest = StateRef::Snapshot(
        at_small
            .snapshots()
            .last()
            .map(|s| s.name.clone())
            .context("the timeline has snapshots")?,
    );
    let at_large = timeline(large, uncached)?;
    let cached = timeline(small, TimelineConfig::default())?;
    anyhow::ensure!(
        at_small.is_hot_state(at_small.revision_at(&newest)?),
        "the newest snapshot is cold: the hot variant would measure a rebuild"
    );
    anyhow::ensure!(
        !at_small.is_hot_state(at_small.revision_at(&back)?),
        "the state read cold is held whole: the row would measure nothing"
    );
    let map = fixtures::map(small);

    let mut variants = vec![
        Variant::sync(
            Kind::Direct,
            format!(
                "Timeline::state_at, {BACK} snapshots back, at {}",
                size(small)
            ),
            Batch::PerOp,
            read(at_small.clone(), back.clone()),
        ),
        Variant::sync(
            Kind::Direct,
            format!(
                "Timeline::state_at, {BACK} snapshots back, at {}",
                size(large)
            ),
            Batch::PerOp,
            read(at_large, back.clone()),
        ),
        Variant::sync(
            Kind::Direct,
            format!("the same with the rebuild cache, at {}", size(small)),
            Batch::Lasting(Ctx::SMALL_BATCH),
            read(cached, back),
        ),
        Variant::sync(
            Kind::Direct,
            format!(
                "Timeline::state_at, the newest snapshot (hot), at {}",
                size(small)
            ),
            Batch::Lasting(Ctx::SMALL_BATCH),
            read(at_small, newest),
        ),
        Variant::sync(
            Kind::Baseline,
            format!("HashMap deep clone at {}", size(small)),
            Batch::PerOp,
            fixtures::deep_clones(std::sync::Arc::new(map)),
        ),
    ];
    let stats = compare(&ctx.plan, &mut variants).await;
    let labels: Vec<_> = variants.iter().map(Variant::label).collect();
    drop(variants);

    let mut lines = timed_lines(ROW, Some(small), &labels, &stats, 4);
    lines[1].n = Some(large);
    lines[0].set_goal("p50 <= 2 ms", stats[0].p50 <= 2e6);
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
