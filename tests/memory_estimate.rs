//! `Timeline::memory()` estimates what a timeline's states hold within 20%
//! of what a counting allocator sees, for the shapes of the memory bench
//! (`benches/compare/memory.rs`): one flat object of 100,000 keys, then 60
//! snapshots with 0.1% and 1% of the keys changed between them.
//!
//! The allocator counts the whole process, so this file is a test binary
//! of its own, and its one test measures in sequence.

use std::alloc::System;

use cap::Cap;
use rewind::core::{
    AutoTrigger, Doc, NamedOptions, Patch, PatchOp, Pointer, SnapshotName, Timeline,
};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

const N: usize = 100_000;
const SNAPSHOTS: usize = 60;

fn key(i: usize) -> String {
    format!("key_{i:011}")
}

fn replace(keys: &[usize], value: i64) -> Patch {
    Patch::new(
        keys.iter()
            .map(|&k| PatchOp::Replace {
                path: Pointer::from_tokens([key(k)]),
                value: Doc::from(value),
            })
            .collect(),
    )
}

/// Distinct pseudo-random keys (xorshift), as the bench draws them.
fn distinct(seed: u64, k: usize) -> Vec<usize> {
    let mut x = seed.max(1);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let i = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % N as u64) as usize;
        if seen.insert(i) {
            out.push(i);
        }
    }
    out
}

fn build() -> Doc {
    (0..N).map(|i| (key(i), i as i64)).collect()
}

fn within(what: &str, estimate: usize, counted: usize) {
    let ratio = estimate as f64 / counted as f64;
    println!("{what}: estimate {estimate} B, counted {counted} B, ratio {ratio:.3}");
    assert!(
        (0.8..=1.2).contains(&ratio),
        "{what}: the estimate {estimate} B is {ratio:.3}x the {counted} B counted"
    );
}

#[test]
fn memory_estimates_what_the_allocator_counts() {
    let before = ALLOCATOR.allocated();
    let fresh = Timeline::with_defaults(build());
    let one_state = ALLOCATOR.allocated() - before;
    let memory = fresh.memory();
    assert_eq!(memory.history_bytes, 0);
    within(
        "one state",
        memory.shared_bytes + memory.unique_bytes,
        one_state,
    );
    drop(fresh);

    for percent in [0.1, 1.0] {
        let changes = (N as f64 * percent / 100.0) as usize;
        let patches: Vec<Patch> = (0..SNAPSHOTS)
            .map(|i| {
                replace(
                    &distinct(7 + i as u64 * 31 + changes as u64, changes),
                    -(i as i64) - 1,
                )
            })
            .collect();
        let names: Vec<SnapshotName> = (0..SNAPSHOTS)
            .map(|i| SnapshotName::new(format!("named_{i}")).unwrap())
            .collect();
        // The timeline owns its initial state alone: what it no longer
        // needs is freed, as in a service.
        let before = ALLOCATOR.allocated();
        let mut timeline = Timeline::with_defaults(build());
        for (i, (patch, name)) in patches.iter().zip(names).enumerate() {
            if i > 0 {
                timeline.apply(patch).unwrap();
            }
            if i % 6 == 5 {
                timeline.snapshot_auto(AutoTrigger::Requested);
            } else {
                timeline
                    .snapshot_named(name, NamedOptions::default())
                    .unwrap();
            }
        }
        let counted = ALLOCATOR.allocated() - before;
        let memory = timeline.memory();
        let estimate = memory.shared_bytes + memory.unique_bytes + memory.history_bytes;
        within(
            &format!("60 snapshots at {percent}% churn"),
            estimate,
            counted,
        );
        drop(timeline);
    }
}
