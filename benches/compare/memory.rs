//! Row "memory": one document, then 60 retained snapshots (10 auto + 50
//! named, the default limits) with 0.1% and 1% of the keys changed between
//! snapshots. Bytes are live heap bytes from the counting allocator.
//!
//! Each interval applies its changes as one patch, so the history window
//! holds exactly the snapshotted states: 60 distinct states in all, the head
//! being the last of them. The baseline holds them as 60 deep copies.

use rewind::core::{AutoTrigger, NamedOptions, SnapshotName, Timeline, TimelineConfig};

use crate::fixtures::{self, replace_patch, Rng};
use crate::heap_bytes;
use crate::report::{Line, Value};

const SNAPSHOTS: usize = 60;

fn line(row: &str, n: usize, variant: &str, held: usize, overhead: Option<f64>) -> Line {
    Line {
        row: row.to_owned(),
        n: Some(n),
        variant: variant.to_owned(),
        p50: Value::Bytes(held as f64),
        p99: overhead.map_or(Value::None, Value::Percent),
        ratio: None,
        goal: None,
    }
}

pub(crate) fn run(n: usize) -> anyhow::Result<Vec<Line>> {
    let config = TimelineConfig::default();
    assert_eq!(config.auto_limit + config.named_limit, SNAPSHOTS);

    let before = heap_bytes();
    let doc = fixtures::doc(n);
    let one_state = heap_bytes() - before;
    let map = fixtures::map(n);
    let before = heap_bytes();
    let copy = map.clone();
    let one_copy = heap_bytes() - before;
    drop((map, copy));
    let deep_copies = SNAPSHOTS * one_copy;

    let row = "memory, 60 snapshots";
    let mut lines = vec![
        line(row, n, "rewind: one state (Doc)", one_state, None),
        line(row, n, "baseline: one state (HashMap copy)", one_copy, None),
        line(
            row,
            n,
            "baseline: 60 deep copies",
            deep_copies,
            Some(100.0 * (deep_copies as f64 / one_copy as f64 - 1.0)),
        ),
    ];
    for (percent, goal) in [(0.1, 15.0), (1.0, 100.0)] {
        let changes = ((n as f64 * percent / 100.0).round() as usize).max(1);
        let mut rng = Rng::new(0x7e57_0006 ^ changes as u64);
        // Built before counting starts: the patches are the callers'.
        let patches: Vec<_> = (0..SNAPSHOTS)
            .map(|i| replace_patch(&rng.distinct(n, changes), -(i as i64) - 1))
            .collect();
        let names: Vec<_> = (0..SNAPSHOTS)
            .map(|i| SnapshotName::new(format!("named_{i}")))
            .collect::<Result<_, _>>()?;

        let before = heap_bytes();
        let mut timeline = Timeline::with_defaults(doc.clone());
        for (i, (patch, name)) in patches.iter().zip(names).enumerate() {
            if i > 0 {
                timeline.apply(patch)?;
            }
            // Every 6th is auto: 10 auto + 50 named, none pruned.
            if i % 6 == 5 {
                timeline.snapshot_auto(AutoTrigger::Requested);
            } else {
                timeline.snapshot_named(name, NamedOptions::default())?;
            }
        }
        let counts = timeline.snapshot_counts();
        assert_eq!((counts.auto, counts.named), (10, 50));
        // The initial document was counted in `one_state`.
        let held = one_state + (heap_bytes() - before);
        let overhead = 100.0 * (held as f64 / one_state as f64 - 1.0);
        let mut rewind = line(
            &format!("{row}, {percent}% churn"),
            n,
            &format!("rewind: 1 Timeline, {changes} keys changed per snapshot"),
            held,
            Some(overhead),
        );
        rewind.ratio = Some(deep_copies as f64 / held as f64);
        rewind.set_goal(format!("<= +{goal:.0}% over one state"), overhead <= goal);
        lines.push(rewind);
        drop(timeline);
    }
    Ok(lines)
}
