//! Row "memory": one document, then 60 retained snapshots (10 auto + 50
//! named, the default limits) with 0.1% and 1% of the keys changed between
//! snapshots. Bytes are live heap bytes from the counting allocator.
//!
//! The counting allocator sees the whole process, so the row runs in a
//! child process of its own ([`in_child`]): no runtime, no tenant of an
//! earlier row freeing memory while it counts. A figure that is still
//! impossible (the heap shrinking while a value is built) is an error, not
//! a line.
//!
//! Each interval applies its changes as one patch, so the history window
//! holds exactly the snapshotted states: 60 distinct states in all, the head
//! being the last of them. The baseline holds them as 60 deep copies.

use rewind::core::{AutoTrigger, NamedOptions, SnapshotName, Timeline, TimelineConfig};

use anyhow::{bail, Context as _};

use crate::fixtures::{self, replace_patch, Rng};
use crate::heap_bytes;
use crate::report::{Goal, Line, Value};

/// Set in the child process that measures this row: the document size.
pub(crate) const CHILD_ENV: &str = "REWIND_COMPARE_MEMORY_CHILD";

/// Live heap bytes added since `before`; an error if the heap shrank,
/// which would wrap around into an impossible figure.
fn grown_since(before: usize, what: &str) -> anyhow::Result<usize> {
    let now = heap_bytes();
    if now < before {
        bail!(
            "impossible figure for {what}: the heap shrank by {} bytes while it was measured \
             (something else in the process freed memory)",
            before - now
        );
    }
    Ok(now - before)
}

/// Runs the row in a child process (this bench binary, with
/// [`CHILD_ENV`] set) and reads its lines back.
pub(crate) fn in_child(n: usize) -> anyhow::Result<Vec<Line>> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let output = std::process::Command::new(exe)
        .env(CHILD_ENV, n.to_string())
        .output()
        .context("running the memory row in a child process")?;
    if !output.status.success() {
        bail!(
            "the memory row failed in its child process ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout)?
        .lines()
        .map(decode_line)
        .collect()
}

/// The child's side: measures and prints one line per figure.
pub(crate) fn child_main(n: &str) -> anyhow::Result<()> {
    let n: usize = n.parse().context("the memory child's document size")?;
    for line in run(n)? {
        println!("{}", encode_line(&line));
    }
    Ok(())
}

/// `row \t n \t variant \t bytes \t overhead% \t ratio \t goal \t met`, with
/// empty fields for what a line lacks.
fn encode_line(line: &Line) -> String {
    let bytes = match line.p50 {
        Value::Bytes(b) => b.to_string(),
        _ => String::new(),
    };
    let overhead = match line.p99 {
        Value::Percent(p) => p.to_string(),
        _ => String::new(),
    };
    let (goal, met) = line
        .goal
        .as_ref()
        .map_or((String::new(), String::new()), |g| {
            (g.text.clone(), g.met.to_string())
        });
    [
        line.row.clone(),
        line.n.map_or(String::new(), |n| n.to_string()),
        line.variant.clone(),
        bytes,
        overhead,
        line.ratio.map_or(String::new(), |r| r.to_string()),
        goal,
        met,
    ]
    .join("\t")
}

fn decode_line(text: &str) -> anyhow::Result<Line> {
    let fields: Vec<&str> = text.split('\t').collect();
    let [row, n, variant, bytes, overhead, ratio, goal, met] = fields[..] else {
        bail!("unexpected line from the memory child: {text:?}");
    };
    let number = |field: &str| -> anyhow::Result<Option<f64>> {
        Ok(if field.is_empty() {
            None
        } else {
            Some(field.parse()?)
        })
    };
    Ok(Line {
        row: row.to_owned(),
        n: if n.is_empty() { None } else { Some(n.parse()?) },
        variant: variant.to_owned(),
        p50: number(bytes)?.map_or(Value::None, Value::Bytes),
        p99: number(overhead)?.map_or(Value::None, Value::Percent),
        ratio: number(ratio)?,
        goal: (!goal.is_empty()).then(|| Goal::new(goal, met == "true")),
    })
}

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
    let one_state = grown_since(before, "one state")?;
    drop(doc);
    let map = fixtures::map(n);
    let before = heap_bytes();
    let copy = map.clone();
    let one_copy = grown_since(before, "one HashMap copy")?;
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

        // The timeline owns its initial state alone (built inside the
        // count): a state it no longer needs is freed, as in a service.
        let before = heap_bytes();
        let mut timeline = Timeline::with_defaults(fixtures::doc(n));
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
        let held = grown_since(before, "the timeline")?;
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
