//! Retention by budget: a timeline with `history_budget` never holds more
//! history than the budget after any step, unless all that is left is what
//! the budget may not drop (the head, protected snapshots, running
//! transactions); protected snapshots always survive with their exact
//! state; and every snapshot still listed can be read.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rewind::core::{
    AutoTrigger, Doc, NamedOptions, Patch, PatchOp, Pointer, RollbackTarget, SnapshotKind,
    SnapshotName, StateRef, Timeline, TimelineConfig, TransactionOutcome,
};

#[derive(Clone, Debug)]
enum Step {
    Set { key: u8, value: i64, wide: bool },
    Remove { key: u8 },
    Auto,
    Named { name: u8, protected: bool },
    RollbackLatest,
    RollbackRevision { back: u8 },
    Transaction { steps: u8, commit: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..24, any::<i64>(), any::<bool>())
            .prop_map(|(key, value, wide)| Step::Set { key, value, wide }),
        1 => (0u8..24).prop_map(|key| Step::Remove { key }),
        3 => Just(Step::Auto),
        3 => (0u8..8, prop::bool::weighted(0.3))
            .prop_map(|(name, protected)| Step::Named { name, protected }),
        1 => Just(Step::RollbackLatest),
        1 => (0u8..6).prop_map(|back| Step::RollbackRevision { back }),
        1 => (1u8..4, any::<bool>()).prop_map(|(steps, commit)| Step::Transaction { steps, commit }),
    ]
}

fn set(key: u8, value: i64, wide: bool) -> Patch {
    let value = if wide {
        // A larger value: a string, so deltas differ in size.
        Doc::from(format!("{value:x}").repeat(8))
    } else {
        Doc::from(value)
    };
    Patch::new(vec![PatchOp::Add {
        path: Pointer::from_tokens([format!("k{key}")]),
        value,
    }])
}

fn initial() -> Doc {
    (0..24).map(|i| (format!("k{i}"), i as i64)).collect()
}

/// Whether the budget may still drop something.
fn droppable(timeline: &Timeline<Doc>) -> bool {
    timeline.history().count() > 1
        || timeline.snapshots().iter().any(|s| {
            s.kind == SnapshotKind::Auto || (s.kind == SnapshotKind::Named && !s.protected)
        })
        || timeline.transactions().iter().any(|t| t.outcome.is_some())
}

fn run(budget: usize, hot: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    let config = TimelineConfig {
        history_budget: Some(budget),
        hot_revisions: hot,
        ..TimelineConfig::default()
    };
    let mut timeline = Timeline::new(
        initial(),
        config,
        std::sync::Arc::new(rewind::core::SystemClock),
    )
    .unwrap();
    let mut protected: BTreeMap<SnapshotName, Doc> = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Set { key, value, wide } => {
                timeline.apply(&set(*key, *value, *wide)).unwrap();
            }
            Step::Remove { key } => {
                let patch = Patch::new(vec![PatchOp::Remove {
                    path: Pointer::from_tokens([format!("k{key}")]),
                }]);
                // Absent keys are refused, and change nothing.
                let _ = timeline.apply(&patch);
            }
            Step::Auto => {
                timeline.snapshot_auto(AutoTrigger::Requested);
            }
            Step::Named {
                name,
                protected: protect,
            } => {
                let name = SnapshotName::new(format!("n{name}")).unwrap();
                let options = NamedOptions {
                    protected: *protect,
                    replace: true,
                };
                if timeline.snapshot_named(name.clone(), options).is_ok() && *protect {
                    protected.insert(name, timeline.head().clone());
                }
            }
            Step::RollbackLatest => {
                let _ = timeline.rollback(&RollbackTarget::Latest);
            }
            Step::RollbackRevision { back } => {
                let revision = timeline.revision().get().saturating_sub(*back as u64);
                let _ =
                    timeline.rollback(&RollbackTarget::Revision(rewind::core::Revision(revision)));
            }
            Step::Transaction { steps, commit } => {
                let tx = timeline.begin_transaction();
                for s in 0..*steps {
                    let name = SnapshotName::new(format!("s{s}")).unwrap();
                    timeline
                        .apply_step(tx, &name, &set(s, -(s as i64), false))
                        .unwrap();
                    timeline.checkpoint(tx, name).unwrap();
                }
                let outcome = if *commit {
                    TransactionOutcome::Committed
                } else {
                    let target = timeline
                        .transaction_target(tx, &rewind::core::RollbackPolicy::Start)
                        .unwrap();
                    timeline.rollback(&target).unwrap();
                    TransactionOutcome::RolledBack
                };
                timeline.finish_transaction(tx, outcome).unwrap();
            }
        }
        let memory = timeline.memory();
        prop_assert!(
            memory.history_bytes <= budget || !droppable(&timeline),
            "step {i} {step:?}: {memory:?} over the budget {budget} with history left to drop"
        );
        for (name, state) in &protected {
            let held = timeline.state_at(&StateRef::Snapshot(name.clone()));
            prop_assert!(
                held.as_ref().ok() == Some(state),
                "protected {} after step {}",
                name,
                i
            );
        }
        for snapshot in timeline.snapshots() {
            prop_assert!(timeline
                .state_at(&StateRef::Snapshot(snapshot.name.clone()))
                .is_ok());
        }
        for info in timeline.history() {
            prop_assert!(timeline
                .state_at(&StateRef::Revision(info.revision))
                .is_ok());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/history_budget.txt"
        )))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_budget_holds_after_every_step_and_protected_snapshots_survive(
        budget in prop_oneof![0usize..2_000, 2_000usize..40_000],
        hot in 0usize..3,
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        run(budget, hot, &steps)?;
    }
}

/// Without a budget nothing is dropped for bytes: the limits alone apply.
#[test]
fn without_a_budget_the_limits_alone_apply() {
    let mut timeline = Timeline::with_defaults(initial());
    for i in 0..40 {
        timeline.apply(&set(1, i, true)).unwrap();
        timeline.snapshot_auto(AutoTrigger::Requested);
    }
    assert_eq!(timeline.history().count(), 41);
    assert_eq!(timeline.snapshot_counts().auto, 10);
    assert!(timeline.budget_pruned().is_empty());
    assert!(timeline.memory().history_bytes > 0);
}

/// A budget that history exceeds drops the oldest first: auto snapshots
/// and window revisions, then unprotected named ones, never protected ones.
#[test]
fn the_oldest_goes_first_and_named_after_auto() {
    let mut timeline = Timeline::new(
        initial(),
        TimelineConfig {
            history_budget: Some(0),
            ..TimelineConfig::default()
        },
        std::sync::Arc::new(rewind::core::SystemClock),
    )
    .unwrap();
    let keep = SnapshotName::new("keep").unwrap();
    timeline
        .snapshot_named(
            keep.clone(),
            NamedOptions {
                protected: true,
                replace: false,
            },
        )
        .unwrap();
    let kept = timeline.head().clone();
    timeline
        .snapshot_named(SnapshotName::new("old").unwrap(), NamedOptions::default())
        .unwrap();
    for i in 0..5 {
        timeline.apply(&set(2, i, true)).unwrap();
        timeline.snapshot_auto(AutoTrigger::Requested);
    }
    // Budget 0: everything that may go has gone; the protected one stays.
    let names: Vec<String> = timeline
        .snapshots()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, ["keep"]);
    assert_eq!(timeline.history().count(), 1);
    assert_eq!(timeline.state_at(&StateRef::Snapshot(keep)).unwrap(), kept);
    let pruned = timeline.budget_pruned();
    assert_eq!((pruned.auto, pruned.named), (5, 1));
}
