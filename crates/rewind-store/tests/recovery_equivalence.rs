//! Recovery equivalence: a runtime restarted on its journal holds the very
//! timelines it held before, whatever happened to them.
//!
//! The property test drives random operation sequences (changes, failing
//! changes, replaces, auto / named / protected snapshots, protection,
//! deletion, rollbacks to every kind of target including ones that fail,
//! transactions whose steps may fail under every rollback policy) through a
//! `Runtime<Doc>` on a `MemoryJournal`, with small retention limits and a
//! small `image_every` in some cases. It then restarts the runtime on the
//! same journal and compares every tenant: the whole timeline image, head,
//! every revision in the window, snapshots, transactions and diffs between
//! random references. A second batch of operations then runs on the
//! recovered runtime and it is restarted again, so a recovered tenant must
//! also journal correctly.
//!
//! The same operation sequences also run on two runtimes side by side, one
//! never passivating and one passivating every tenant after every
//! operation: every answer and every tenant must be equal throughout.
//!
//! `PROPTEST_CASES` overrides the 256 cases.

use std::sync::Arc;

use proptest::prelude::*;
use rewind_core::{
    Doc, ManualClock, NamedOptions, Patch, Revision, RollbackPolicy, RollbackTarget, SnapshotName,
    StateRef, Timeline, TimelineConfig, Timestamp, TransactionId,
};
use rewind_runtime::{AutoSnapshotPolicy, Journal, Runtime, TenantConfig};
use rewind_store::MemoryJournal;
use serde_json::json;

const TENANTS: usize = 2;

fn tenant_name(index: usize) -> String {
    format!("tenant-{index}")
}

fn start_time() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-14T09:00:00Z").expect("a valid instant")
}

fn name(text: &str) -> SnapshotName {
    SnapshotName::new(text).expect("a valid snapshot name")
}

fn patch(value: serde_json::Value) -> Patch {
    Patch::from_json(&value).expect("a valid patch")
}

/// A change to key `k<key>`: sets it to `value`, or, if `fails`, a test
/// that never holds (the change is refused and nothing is recorded).
fn change(key: u8, value: i16, fails: bool) -> Patch {
    if fails {
        patch(json!([{"op": "test", "path": format!("/k{key}"), "value": "never"}]))
    } else {
        patch(json!([{"op": "add", "path": format!("/k{key}"), "value": value}]))
    }
}

/// A rollback target, resolved against the tenant when the op runs.
#[derive(Clone, Debug)]
enum Target {
    /// `n<i>` (named) or `auto_<i>`: may not exist.
    Named(String),
    /// `start + seconds`: may be before every snapshot.
    Time(u16),
    Latest,
    /// May name a transaction or checkpoint that does not exist.
    Checkpoint {
        transaction: u64,
        name: String,
    },
    /// `head - back`; `back = -1` is the revision after the head (fails).
    Revision(i8),
}

#[derive(Clone, Debug)]
enum StepKind {
    Change { key: u8, value: i16, fails: bool },
    Effect { fails: bool },
}

#[derive(Clone, Debug)]
enum Policy {
    Start,
    LastCheckpoint,
    /// Checkpoint `s<i>`; an index past the steps is an invalid plan.
    Checkpoint(u8),
}

#[derive(Clone, Debug)]
enum Op {
    Tick(u16),
    Apply {
        tenant: usize,
        key: u8,
        value: i16,
        fails: bool,
    },
    Replace {
        tenant: usize,
        keys: u8,
    },
    Snapshot {
        tenant: usize,
    },
    Named {
        tenant: usize,
        name: u8,
        protected: bool,
        replace: bool,
    },
    Protect {
        tenant: usize,
        name: u8,
        protected: bool,
    },
    Delete {
        tenant: usize,
        name: String,
    },
    Rollback {
        tenant: usize,
        target: Target,
    },
    Transaction {
        tenant: usize,
        steps: Vec<StepKind>,
        policy: Policy,
    },
}

fn snapshot_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u8..4).prop_map(|i| format!("n{i}")),
        1 => (1u8..10).prop_map(|i| format!("auto_{i}")),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        snapshot_name().prop_map(Target::Named),
        (0u16..600).prop_map(Target::Time),
        Just(Target::Latest),
        (
            1u64..4,
            prop_oneof![
                Just("start".to_owned()),
                (0u8..3).prop_map(|i| format!("s{i}"))
            ]
        )
            .prop_map(|(transaction, name)| Target::Checkpoint { transaction, name }),
        (-1i8..12).prop_map(Target::Revision),
    ]
}

fn step() -> impl Strategy<Value = StepKind> {
    prop_oneof![
        4 => (0u8..6, any::<i16>(), prop::bool::weighted(0.2))
            .prop_map(|(key, value, fails)| StepKind::Change { key, value, fails }),
        1 => prop::bool::weighted(0.3).prop_map(|fails| StepKind::Effect { fails }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Start),
        Just(Policy::LastCheckpoint),
        (0u8..4).prop_map(Policy::Checkpoint),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let tenant = 0..TENANTS;
    prop_oneof![
        2 => (1u16..90).prop_map(Op::Tick),
        8 => (tenant.clone(), 0u8..6, any::<i16>(), prop::bool::weighted(0.15))
            .prop_map(|(tenant, key, value, fails)| Op::Apply { tenant, key, value, fails }),
        1 => (tenant.clone(), 0u8..6).prop_map(|(tenant, keys)| Op::Replace { tenant, keys }),
        2 => tenant.clone().prop_map(|tenant| Op::Snapshot { tenant }),
        2 => (tenant.clone(), 0u8..4, any::<bool>(), any::<bool>()).prop_map(
            |(tenant, name, protected, replace)| Op::Named { tenant, name, protected, replace }
        ),
        1 => (tenant.clone(), 0u8..4, any::<bool>())
            .prop_map(|(tenant, name, protected)| Op::Protect { tenant, name, protected }),
        1 => (tenant.clone(), snapshot_name()).prop_map(|(tenant, name)| Op::Delete { tenant, name }),
        3 => (tenant.clone(), target()).prop_map(|(tenant, target)| Op::Rollback { tenant, target }),
        2 => (tenant, prop::collection::vec(step(), 1..4), policy())
            .prop_map(|(tenant, steps, policy)| Op::Transaction { tenant, steps, policy }),
    ]
}

fn config() -> impl Strategy<Value = TenantConfig> {
    let timeline = prop_oneof![
        Just(TimelineConfig::default()),
        (2usize..8, 1usize..4, 1usize..4, 0usize..3, 0usize..3).prop_map(
            |(history_limit, auto_limit, named_limit, finished_transactions_kept, hot)| {
                TimelineConfig {
                    history_limit,
                    auto_limit,
                    named_limit,
                    finished_transactions_kept,
                    // Often a tiny hot set: most states cold, as deltas.
                    hot_revisions: hot,
                    ..TimelineConfig::default()
                }
            }
        ),
    ];
    (timeline, prop::option::of(1u64..5)).prop_map(|(timeline, every_revisions)| TenantConfig {
        timeline,
        // No interval: the ticker would run on wall-clock time.
        auto_snapshot: AutoSnapshotPolicy {
            every_revisions,
            interval: None,
        },
        ..TenantConfig::default()
    })
}

#[derive(Clone, Debug)]
struct Case {
    image_every: u64,
    configs: Vec<TenantConfig>,
    before: Vec<Op>,
    after: Vec<Op>,
    /// Pairs of indexes into the references of a timeline, for diffs.
    probes: Vec<(usize, usize)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1000u64), 2u64..20],
        prop::collection::vec(config(), TENANTS),
        prop::collection::vec(op(), 1..50),
        prop::collection::vec(op(), 0..20),
        prop::collection::vec((any::<usize>(), any::<usize>()), 8),
    )
        .prop_map(|(image_every, configs, before, after, probes)| Case {
            image_every,
            configs,
            before,
            after,
            probes,
        })
}

async fn start(
    journal: &Arc<MemoryJournal>,
    clock: &ManualClock,
    image_every: u64,
) -> Runtime<Doc> {
    Runtime::<Doc>::builder()
        .journal(Arc::clone(journal) as Arc<dyn Journal>)
        .clock(Arc::new(clock.clone()))
        .image_every(image_every)
        // Every tenant read back at start, so the report covers them all.
        .eager_recovery(true)
        .start()
        .await
        .expect("the runtime starts")
}

/// Runs `op` and returns its answer, as text; refused ops are part of the
/// workload (they must leave no trace).
async fn run(runtime: &Runtime<Doc>, clock: &ManualClock, op: &Op) -> String {
    let tenant = |index: usize| async move {
        runtime
            .tenant(&tenant_name(index))
            .await
            .expect("the tenant")
    };
    match op {
        Op::Tick(seconds) => {
            clock.advance_secs(i64::from(*seconds));
            String::new()
        }
        Op::Apply {
            tenant: t,
            key,
            value,
            fails,
        } => {
            format!(
                "{:?}",
                tenant(*t).await.apply(change(*key, *value, *fails)).await
            )
        }
        Op::Replace { tenant: t, keys } => {
            let state: serde_json::Map<_, _> = (0..*keys)
                .map(|k| (format!("k{k}"), json!(format!("replaced {k}"))))
                .collect();
            format!(
                "{:?}",
                tenant(*t)
                    .await
                    .replace(Doc::from_json(&json!(state)).expect("a document"))
                    .await
            )
        }
        Op::Snapshot { tenant: t } => {
            format!("{:?}", tenant(*t).await.snapshot().await)
        }
        Op::Named {
            tenant: t,
            name: n,
            protected,
            replace,
        } => {
            let options = NamedOptions {
                protected: *protected,
                replace: *replace,
            };
            format!(
                "{:?}",
                tenant(*t)
                    .await
                    .snapshot_with(name(&format!("n{n}")), options)
                    .await
            )
        }
        Op::Protect {
            tenant: t,
            name: n,
            protected,
        } => {
            format!(
                "{:?}",
                tenant(*t).await.protect(&format!("n{n}"), *protected).await
            )
        }
        Op::Delete { tenant: t, name: n } => {
            format!("{:?}", tenant(*t).await.delete_snapshot(n).await)
        }
        Op::Rollback { tenant: t, target } => {
            let tenant = tenant(*t).await;
            let target = match target {
                Target::Named(n) => RollbackTarget::Named(name(n)),
                Target::Time(seconds) => {
                    RollbackTarget::Time(start_time().add_secs(i64::from(*seconds)))
                }
                Target::Latest => RollbackTarget::Latest,
                Target::Checkpoint {
                    transaction,
                    name: n,
                } => RollbackTarget::Checkpoint {
                    transaction: TransactionId(*transaction),
                    name: name(n),
                },
                Target::Revision(back) => {
                    let head = tenant.revision().get() as i64;
                    RollbackTarget::Revision(Revision((head - i64::from(*back)).max(0) as u64))
                }
            };
            format!("{:?}", tenant.rollback(target).await)
        }
        Op::Transaction {
            tenant: t,
            steps,
            policy,
        } => {
            let mut transaction = tenant(*t).await.transaction();
            for (i, step) in steps.iter().enumerate() {
                let step_name = format!("s{i}");
                transaction = match step {
                    StepKind::Change { key, value, fails } => {
                        transaction.step(step_name, change(*key, *value, *fails))
                    }
                    StepKind::Effect { fails } => {
                        let fails = *fails;
                        transaction.effect(step_name, move |_state: Doc| async move {
                            if fails {
                                Err("the effect failed")
                            } else {
                                Ok(())
                            }
                        })
                    }
                };
            }
            let policy = match policy {
                Policy::Start => RollbackPolicy::Start,
                Policy::LastCheckpoint => RollbackPolicy::LastCheckpoint,
                Policy::Checkpoint(i) => RollbackPolicy::Checkpoint(name(&format!("s{i}"))),
            };
            format!("{:?}", transaction.on_failure(policy).run().await)
        }
    }
}

/// Every reference worth diffing in `timeline`: head, each revision in the
/// window, each snapshot and checkpoint, and instants across the run.
fn references(timeline: &Timeline<Doc>) -> Vec<StateRef> {
    let mut refs = vec![StateRef::Head];
    for revision in timeline.oldest_revision().get()..=timeline.revision().get() {
        refs.push(StateRef::Revision(Revision(revision)));
    }
    for snapshot in timeline.snapshots() {
        refs.push(StateRef::Snapshot(snapshot.name));
    }
    for transaction in timeline.transactions() {
        for checkpoint in transaction.checkpoints {
            refs.push(StateRef::Checkpoint {
                transaction: transaction.id,
                name: checkpoint.name,
            });
        }
    }
    for seconds in [0, 60, 300, 1200, 6000] {
        refs.push(StateRef::AsOf(start_time().add_secs(seconds)));
    }
    refs
}

fn image_json(timeline: &Timeline<Doc>) -> serde_json::Value {
    serde_json::to_value(timeline.to_image().expect("an image")).expect("image JSON")
}

/// Asserts `recovered` is `original` in every observable way.
fn assert_equivalent(
    id: &str,
    original: &Timeline<Doc>,
    recovered: &Timeline<Doc>,
    probes: &[(usize, usize)],
) {
    assert_eq!(image_json(recovered), image_json(original), "{id}: image");
    assert_eq!(
        recovered.revision(),
        original.revision(),
        "{id}: head revision"
    );
    assert_eq!(recovered.head(), original.head(), "{id}: head state");
    assert_eq!(
        recovered.head_info(),
        original.head_info(),
        "{id}: head info"
    );
    assert_eq!(
        recovered.oldest_revision(),
        original.oldest_revision(),
        "{id}: history window"
    );
    for revision in original.oldest_revision().get()..=original.revision().get() {
        let at = StateRef::Revision(Revision(revision));
        assert_eq!(
            recovered.state_at(&at).ok(),
            original.state_at(&at).ok(),
            "{id}: state at revision {revision}"
        );
        assert_eq!(
            recovered.revision_info(Revision(revision)),
            original.revision_info(Revision(revision)),
            "{id}: revision {revision}"
        );
    }
    assert_eq!(
        recovered.snapshots(),
        original.snapshots(),
        "{id}: snapshots"
    );
    assert_eq!(
        recovered.transactions(),
        original.transactions(),
        "{id}: transactions"
    );
    assert_eq!(
        recovered.snapshot_counts(),
        original.snapshot_counts(),
        "{id}: snapshot counts"
    );
    let refs = references(original);
    for &(from, to) in probes {
        let (from, to) = (&refs[from % refs.len()], &refs[to % refs.len()]);
        let expected = original.diff(from, to).map_err(|e| e.to_string());
        let actual = recovered.diff(from, to).map_err(|e| e.to_string());
        assert_eq!(actual, expected, "{id}: diff from {from} to {to}");
    }
}

/// Every tenant's timeline, by index.
async fn timelines(runtime: &Runtime<Doc>) -> Vec<Arc<Timeline<Doc>>> {
    let mut timelines = Vec::new();
    for t in 0..TENANTS {
        let tenant = runtime.tenant(&tenant_name(t)).await.expect("the tenant");
        timelines.push(tenant.timeline());
    }
    timelines
}

async fn restart_and_compare(
    runtime: Runtime<Doc>,
    journal: &Arc<MemoryJournal>,
    clock: &ManualClock,
    case: &Case,
) -> Runtime<Doc> {
    let before = timelines(&runtime).await;
    let heads = runtime.tenants();
    runtime.shutdown().await.expect("shutdown");
    let restarted = start(journal, clock, case.image_every).await;
    let report = restarted.recovery();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.tenants, TENANTS);
    assert_eq!(report.interrupted_transactions, 0);
    assert_eq!(restarted.tenants(), heads);
    let after = timelines(&restarted).await;
    for (t, (original, recovered)) in before.iter().zip(&after).enumerate() {
        assert_equivalent(&tenant_name(t), original, recovered, &case.probes);
    }
    restarted
}

async fn check(case: Case) {
    let journal = Arc::new(MemoryJournal::new());
    let clock = ManualClock::new(start_time());
    let runtime = start(&journal, &clock, case.image_every).await;
    for (t, config) in case.configs.iter().enumerate() {
        let id = rewind_core::TenantId::new(tenant_name(t)).expect("a valid id");
        let initial = Doc::from_json(&json!({"k0": 0, "nested": {"a": [1, 2, 3]}})).unwrap();
        runtime
            .create_tenant_with(id, initial, Some(*config))
            .await
            .expect("create the tenant");
    }
    for op in &case.before {
        run(&runtime, &clock, op).await;
    }
    let restarted = restart_and_compare(runtime, &journal, &clock, &case).await;
    for op in &case.after {
        run(&restarted, &clock, op).await;
    }
    let again = restart_and_compare(restarted, &journal, &clock, &case).await;
    again.shutdown().await.expect("shutdown");
}

/// Passivation equivalence: the same operations on two runtimes, one that
/// never passivates and one where every tenant is passivated after every
/// operation (so every operation reads its tenant back from the journal).
/// Every answer, and every tenant after every operation, must be equal.
async fn check_passivation(case: Case) {
    let clocks = [
        ManualClock::new(start_time()),
        ManualClock::new(start_time()),
    ];
    let journals = [
        Arc::new(MemoryJournal::new()),
        Arc::new(MemoryJournal::new()),
    ];
    let never = start(&journals[0], &clocks[0], case.image_every).await;
    let always = start(&journals[1], &clocks[1], case.image_every).await;
    for (t, config) in case.configs.iter().enumerate() {
        let config = TenantConfig {
            passivate_after: None,
            ..*config
        };
        for runtime in [&never, &always] {
            let id = rewind_core::TenantId::new(tenant_name(t)).expect("a valid id");
            let initial = Doc::from_json(&json!({"k0": 0, "nested": {"a": [1, 2, 3]}})).unwrap();
            runtime
                .create_tenant_with(id, initial, Some(config))
                .await
                .expect("create the tenant");
        }
    }
    let passivate_all = |runtime: &Runtime<Doc>| {
        let runtime = runtime.clone();
        async move {
            for t in 0..TENANTS {
                let passivated = runtime.passivate(&tenant_name(t)).await;
                assert!(
                    matches!(passivated, Ok(true)),
                    "passivate {t}: {passivated:?}"
                );
            }
            assert_eq!(runtime.active_count(), 0);
        }
    };
    passivate_all(&always).await;
    for (step, op) in case.before.iter().chain(&case.after).enumerate() {
        let expected = run(&never, &clocks[0], op).await;
        let actual = run(&always, &clocks[1], op).await;
        assert_eq!(actual, expected, "step {step}: the answer to {op:?}");
        passivate_all(&always).await;
        // Listed without being read back, with the revision it had.
        let listed: Vec<_> = never
            .tenants()
            .into_iter()
            .map(|(id, r)| (id, r.unwrap()))
            .collect();
        let passive: Vec<_> = always
            .tenants()
            .into_iter()
            .map(|(id, r)| (id, r.expect("remembered at passivation")))
            .collect();
        assert_eq!(passive, listed, "step {step}: listing");
        assert_eq!(always.active_count(), 0, "listing reads nothing back");
        let (expected, actual) = (timelines(&never).await, timelines(&always).await);
        for (t, (expected, actual)) in expected.iter().zip(&actual).enumerate() {
            let id = format!("step {step}: {}", tenant_name(t));
            // Two tenants created apart: each has its own incarnation.
            let mut actual = Timeline::clone(actual);
            if let Some(incarnation) = expected.incarnation() {
                actual.set_incarnation(incarnation);
            }
            assert_equivalent(&id, expected, &actual, &case.probes);
        }
        passivate_all(&always).await;
    }
    never.shutdown().await.expect("shutdown");
    always.shutdown().await.expect("shutdown");
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn a_passivated_tenant_answers_as_if_it_never_was(case in case()) {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        tokio.block_on(check_passivation(case));
    }

    #[test]
    fn a_recovered_timeline_equals_the_original(case in case()) {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        tokio.block_on(check(case));
    }
}

/// A 10,000-key document: recovered revisions share the untouched subtrees
/// with each other, as the original's do, whether recovery replays entries
/// or rebuilds from an image.
#[tokio::test]
async fn a_recovered_timeline_shares_structure_like_the_original() {
    let big: serde_json::Map<String, serde_json::Value> = (0..10_000)
        .map(|i| (format!("key_{i}"), json!({"v": i, "tags": ["a", "b"]})))
        .collect();
    let initial = Doc::from_json(&json!({"big": big, "small": {"n": 0}})).unwrap();
    for image_every in [1000, 3] {
        let journal = Arc::new(MemoryJournal::new());
        let clock = ManualClock::new(start_time());
        let runtime = start(&journal, &clock, image_every).await;
        let tenant = runtime
            .create_tenant("acme_corp", initial.clone())
            .await
            .unwrap();
        for n in 1..=5 {
            clock.advance_secs(1);
            tenant
                .apply(patch(json!([
                    {"op": "replace", "path": "/small/n", "value": n},
                    {"op": "replace", "path": format!("/big/key_{n}/v"), "value": -n}
                ])))
                .await
                .unwrap();
        }
        tenant.snapshot_named("v1").await.unwrap();
        tenant
            .rollback(RollbackTarget::Revision(Revision(2)))
            .await
            .unwrap();
        let original = tenant.timeline();
        runtime.shutdown().await.unwrap();

        let restarted = start(&journal, &clock, image_every).await;
        let recovered = restarted.tenant("acme_corp").await.unwrap().timeline();
        assert_eq!(image_json(&recovered), image_json(&original));
        for timeline in [&original, &recovered] {
            let state = |r: u64| timeline.state_at(&StateRef::Revision(Revision(r))).unwrap();
            let (first, third, head) = (&state(0), &state(3), timeline.head());
            // An untouched entry of the big object is one shared value in
            // every revision; a touched one is not.
            let untouched = |doc: &Doc| doc.pointer("/big/key_9000").unwrap().clone();
            assert!(
                untouched(first).ptr_eq(&untouched(third)),
                "image_every {image_every}"
            );
            assert!(
                untouched(third).ptr_eq(&untouched(head)),
                "image_every {image_every}"
            );
            let touched = |doc: &Doc| doc.pointer("/big/key_3").unwrap().clone();
            assert!(!touched(first).ptr_eq(&touched(third)));
            // A rollback's state is the restored revision's state: equal,
            // and sharing every untouched subtree (revision 2 is cold, so
            // reading it rebuilds its root from deltas).
            assert_eq!(*head, state(2), "image_every {image_every}");
            assert!(untouched(head).ptr_eq(&untouched(&state(2))));
            let snapshot = timeline
                .state_at(&StateRef::snapshot("v1").unwrap())
                .unwrap();
            assert!(snapshot.ptr_eq(&state(5)), "image_every {image_every}");
        }
        // Diffs between recovered revisions skip the shared subtrees and
        // find exactly what changed.
        let diff = recovered
            .diff(
                &StateRef::Revision(Revision(0)),
                &StateRef::Revision(Revision(5)),
            )
            .unwrap();
        assert_eq!(diff.entries.len(), 6, "{:?}", diff.patch.to_json());
        restarted.shutdown().await.unwrap();
    }
}
