//! Metrics move as DESIGN.md says: transitions by outcome, snapshots created
//! and pruned by kind, the snapshot gauge equal to what the tenants hold,
//! rollbacks by target and outcome, transactions by outcome, the tenant gauge
//! and restarts, and samples in the duration histograms.
//!
//! The debugging recorder is global, so this binary holds a single test and
//! installs it once. Its snapshots drain counters and gauges, so
//! [`Recorded`] keeps running totals.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use rewind_core::{
    Doc, Patch, Revision, RollbackPolicy, RollbackTarget, SnapshotKind, SnapshotName, TenantId,
    TimelineConfig, Timestamp,
};
use rewind_runtime::metrics::{
    HISTORY_BYTES, ROLLBACKS_TOTAL, ROLLBACK_DURATION_SECONDS, SNAPSHOTS, SNAPSHOTS_CREATED_TOTAL,
    SNAPSHOTS_PRUNED_TOTAL, TENANTS, TENANT_RESTARTS_TOTAL, TRANSACTIONS_TOTAL, TRANSITIONS_TOTAL,
    TRANSITION_DURATION_SECONDS,
};
use rewind_runtime::{AutoSnapshotPolicy, Error, Runtime, Tenant, TenantConfig, WriteOptions};
use serde_json::json;

mod support;
use support::{doc, patch};

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        rewind_runtime::metrics::describe();
        snapshotter
    })
}

type Labels = Vec<(String, String)>;

/// Running totals of everything recorded so far.
#[derive(Default)]
struct Recorded {
    /// Counters and gauges by name and sorted labels.
    values: BTreeMap<(String, Labels), f64>,
    /// Number of samples per histogram name.
    samples: BTreeMap<String, usize>,
}

impl Recorded {
    fn refresh(&mut self) {
        for (key, _, _, value) in snapshotter().snapshot().into_vec() {
            let (_, key) = key.into_parts();
            let name = key.name().to_owned();
            let mut labels: Labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            match value {
                DebugValue::Counter(n) => {
                    *self.values.entry((name, labels)).or_default() += n as f64
                }
                DebugValue::Gauge(g) => {
                    *self.values.entry((name, labels)).or_default() += g.into_inner()
                }
                DebugValue::Histogram(h) => *self.samples.entry(name).or_default() += h.len(),
            }
        }
    }

    fn value(&mut self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.refresh();
        let mut labels: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        labels.sort();
        self.values
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    fn samples(&mut self, name: &str) -> usize {
        self.refresh();
        self.samples.get(name).copied().unwrap_or(0)
    }

    fn transitions(&mut self, outcome: &str) -> f64 {
        self.value(TRANSITIONS_TOTAL, &[("outcome", outcome)])
    }

    fn created(&mut self, kind: &str) -> f64 {
        self.value(SNAPSHOTS_CREATED_TOTAL, &[("kind", kind)])
    }

    fn pruned(&mut self, kind: &str) -> f64 {
        self.value(SNAPSHOTS_PRUNED_TOTAL, &[("kind", kind)])
    }

    fn held(&mut self, kind: &str) -> f64 {
        self.value(SNAPSHOTS, &[("kind", kind)])
    }

    fn rollbacks(&mut self, target: &str, outcome: &str) -> f64 {
        self.value(ROLLBACKS_TOTAL, &[("target", target), ("outcome", outcome)])
    }

    fn transactions(&mut self, outcome: &str) -> f64 {
        self.value(TRANSACTIONS_TOTAL, &[("outcome", outcome)])
    }

    /// The `rewind_snapshots` and `rewind_history_bytes` gauges equal what
    /// the live tenants hold.
    fn assert_gauge_matches(&mut self, tenants: &[&Tenant<Doc>]) {
        let history: usize = tenants.iter().map(|t| t.memory().history_bytes).sum();
        assert_eq!(
            self.value(HISTORY_BYTES, &[]),
            history as f64,
            "rewind_history_bytes"
        );
        for kind in SnapshotKind::ALL {
            let held: usize = tenants
                .iter()
                .map(|t| t.timeline().snapshot_counts().of(kind))
                .sum();
            assert_eq!(
                self.held(kind.as_str()),
                held as f64,
                "rewind_snapshots{{kind={kind}}}"
            );
        }
    }
}

/// Asserts that `op` changes each listed metric by exactly its delta.
macro_rules! moves {
    ($m:expr, [$(($metric:expr, $delta:expr)),* $(,)?], $op:expr) => {{
        let before = [$( { let f: &dyn Fn(&mut Recorded) -> f64 = &$metric; f($m) } ),*];
        let result = $op;
        let after = [$( { let f: &dyn Fn(&mut Recorded) -> f64 = &$metric; f($m) } ),*];
        let deltas = [$( $delta as f64 ),*];
        for (i, delta) in deltas.iter().enumerate() {
            assert_eq!(after[i] - before[i], *delta, "metric #{i} of {}", stringify!($op));
        }
        result
    }};
}

fn set(n: i64) -> Patch {
    patch(json!([{"op": "add", "path": "/n", "value": n}]))
}

fn name(text: &str) -> SnapshotName {
    SnapshotName::new(text).unwrap()
}

#[tokio::test]
async fn metrics_move_as_designed() {
    // The names are the contract dashboards use.
    assert_eq!(TRANSITIONS_TOTAL, "rewind_transitions_total");
    assert_eq!(
        TRANSITION_DURATION_SECONDS,
        "rewind_transition_duration_seconds"
    );
    assert_eq!(SNAPSHOTS_CREATED_TOTAL, "rewind_snapshots_created_total");
    assert_eq!(SNAPSHOTS_PRUNED_TOTAL, "rewind_snapshots_pruned_total");
    assert_eq!(SNAPSHOTS, "rewind_snapshots");
    assert_eq!(ROLLBACKS_TOTAL, "rewind_rollbacks_total");
    assert_eq!(
        ROLLBACK_DURATION_SECONDS,
        "rewind_rollback_duration_seconds"
    );
    assert_eq!(TRANSACTIONS_TOTAL, "rewind_transactions_total");
    assert_eq!(TENANTS, "rewind_tenants");
    assert_eq!(TENANT_RESTARTS_TOTAL, "rewind_tenant_restarts_total");

    let m = &mut Recorded::default();
    m.refresh();
    let runtime = Runtime::<Doc>::builder()
        .tenant_defaults(TenantConfig {
            timeline: TimelineConfig {
                auto_limit: 2,
                named_limit: 2,
                finished_transactions_kept: 1,
                ..TimelineConfig::default()
            },
            auto_snapshot: AutoSnapshotPolicy::DISABLED,
            ..TenantConfig::default()
        })
        .start()
        .await
        .unwrap();

    // Tenants.
    let a = moves!(
        m,
        [(|m| m.value(TENANTS, &[]), 1)],
        runtime
            .create_tenant("a", doc(json!({"n": 0})))
            .await
            .unwrap()
    );
    let b = moves!(
        m,
        [(|m| m.value(TENANTS, &[]), 1)],
        runtime
            .create_tenant("b", doc(json!({"n": 0})))
            .await
            .unwrap()
    );

    // Transitions by outcome, with a duration sample for each committed one.
    moves!(
        m,
        [
            (|m| m.transitions("ok"), 2),
            (|m| m.transitions("rejected"), 0),
            (|m| m.samples(TRANSITION_DURATION_SECONDS) as f64, 2),
        ],
        {
            a.apply(set(1)).await.unwrap();
            b.apply(set(1)).await.unwrap();
        }
    );
    moves!(
        m,
        [
            (|m| m.transitions("ok"), 0),
            (|m| m.transitions("rejected"), 3),
            (|m| m.transitions("failed"), 0),
        ],
        {
            a.apply(patch(json!([{"op": "test", "path": "/n", "value": 42}])))
                .await
                .unwrap_err();
            a.apply_with(
                set(2),
                WriteOptions {
                    expected_revision: Some(Revision(0)),
                    ..WriteOptions::default()
                },
            )
            .await
            .unwrap_err();
            a.update(|_: &Doc| Err::<Patch, _>("refused by the caller"))
                .await
                .unwrap_err();
        }
    );
    moves!(
        m,
        [
            (|m| m.transitions("failed"), 1),
            (|m| m.transitions("ok"), 1),
            (|m| m.value(TENANT_RESTARTS_TOTAL, &[]), 1),
            (|m| m.value(TENANTS, &[]), 0),
        ],
        {
            let err = a
                .update(|_: &Doc| -> Result<Patch, Error> { panic!("boom") })
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Panicked { .. }));
            // Served by the restarted actor.
            a.apply(set(3)).await.unwrap();
        }
    );
    m.assert_gauge_matches(&[&a, &b]);

    // Named snapshots; the third prunes the oldest.
    moves!(
        m,
        [
            (|m| m.created("named"), 2),
            (|m| m.held("named"), 2),
            (|m| m.pruned("named"), 0)
        ],
        {
            a.snapshot_named("one").await.unwrap();
            a.snapshot_named("two").await.unwrap();
        }
    );
    moves!(
        m,
        [
            (|m| m.created("named"), 1),
            (|m| m.held("named"), 0),
            (|m| m.pruned("named"), 1)
        ],
        a.snapshot_named("three").await.unwrap()
    );
    // Auto snapshots: a ring of two.
    moves!(
        m,
        [
            (|m| m.created("auto"), 3),
            (|m| m.held("auto"), 2),
            (|m| m.pruned("auto"), 1)
        ],
        {
            for _ in 0..3 {
                a.snapshot().await.unwrap();
            }
        }
    );
    moves!(
        m,
        [(|m| m.created("named"), 1), (|m| m.held("named"), 1)],
        b.snapshot_named("b_one").await.unwrap()
    );
    m.assert_gauge_matches(&[&a, &b]);

    // Rollbacks by target and outcome; each successful one takes a
    // pre-rollback auto snapshot (pushing one out of the full ring) and
    // records a duration.
    let targets = [
        ("named", RollbackTarget::Named(name("three"))),
        ("revision", RollbackTarget::Revision(Revision(1))),
        ("latest", RollbackTarget::Latest),
        (
            "time",
            RollbackTarget::Time(Timestamp::parse_rfc3339("2999-01-01T00:00:00Z").unwrap()),
        ),
    ];
    for (label, target) in targets {
        moves!(
            m,
            [
                (|m| m.rollbacks(label, "ok"), 1),
                (|m| m.rollbacks(label, "rejected"), 0),
                (|m| m.created("auto"), 1),
                (|m| m.pruned("auto"), 1),
                (|m| m.held("auto"), 0),
                (|m| m.samples(ROLLBACK_DURATION_SECONDS) as f64, 1),
                (|m| m.transitions("ok"), 0),
            ],
            a.rollback(target.clone()).await.unwrap()
        );
    }
    let refused = [
        ("named", RollbackTarget::Named(name("missing"))),
        ("revision", RollbackTarget::Revision(Revision(999))),
        ("time", RollbackTarget::Time(Timestamp::EPOCH)),
    ];
    for (label, target) in refused {
        moves!(
            m,
            [
                (|m| m.rollbacks(label, "rejected"), 1),
                (|m| m.rollbacks(label, "ok"), 0),
                (|m| m.created("auto"), 0),
                (|m| m.samples(ROLLBACK_DURATION_SECONDS) as f64, 0),
            ],
            a.rollback(target.clone()).await.unwrap_err()
        );
    }
    m.assert_gauge_matches(&[&a, &b]);

    // Transactions: a committed one (a checkpoint at the start and after
    // each step, each change a transition).
    let committed = moves!(
        m,
        [
            (|m| m.transactions("committed"), 1),
            (|m| m.created("checkpoint"), 3),
            (|m| m.held("checkpoint"), 3),
            (|m| m.transitions("ok"), 2),
            (|m| m.rollbacks("checkpoint", "ok"), 0),
        ],
        a.transaction()
            .step("s1", set(10))
            .step("s2", set(11))
            .run()
            .await
            .unwrap()
    );
    assert!(committed.is_committed());
    m.assert_gauge_matches(&[&a, &b]);
    // A rolled back one: its rollback is a checkpoint rollback, and only one
    // finished transaction is kept, so the first one's checkpoints go.
    let rolled_back = moves!(
        m,
        [
            (|m| m.transactions("rolled_back"), 1),
            (|m| m.transactions("committed"), 0),
            (|m| m.created("checkpoint"), 2),
            (|m| m.pruned("checkpoint"), 3),
            (|m| m.held("checkpoint"), -1),
            (|m| m.rollbacks("checkpoint", "ok"), 1),
            (|m| m.created("auto"), 1),
        ],
        a.transaction()
            .step("s1", set(20))
            .effect("notify", |_: Doc| async { Err::<(), _>("smtp down") })
            .on_failure(RollbackPolicy::Start)
            .run_report()
            .await
            .unwrap()
    );
    m.assert_gauge_matches(&[&a, &b]);
    moves!(
        m,
        [(|m| m.rollbacks("checkpoint", "ok"), 1)],
        a.rollback(RollbackTarget::Checkpoint {
            transaction: rolled_back.transaction,
            name: name("s1"),
        })
        .await
        .unwrap()
    );
    // A transaction whose rollback cannot be made.
    moves!(
        m,
        [
            (|m| m.transactions("failed"), 1),
            (|m| m.rollbacks("checkpoint", "ok"), 0),
        ],
        a.transaction()
            .effect("notify", |_: Doc| async { Err::<(), _>("smtp down") })
            .step("later", set(30))
            .on_failure(RollbackPolicy::Checkpoint(name("later")))
            .run_report()
            .await
            .unwrap()
    );
    m.assert_gauge_matches(&[&a, &b]);

    // Deleting snapshots moves the gauge, not the pruned counter.
    let auto = a
        .snapshots()
        .into_iter()
        .find(|s| s.kind == SnapshotKind::Auto)
        .unwrap();
    moves!(
        m,
        [(|m| m.held("auto"), -1), (|m| m.pruned("auto"), 0)],
        a.delete_snapshot(auto.name.as_str()).await.unwrap()
    );
    moves!(
        m,
        [(|m| m.held("named"), -1), (|m| m.pruned("named"), 0)],
        a.delete_snapshot("three").await.unwrap()
    );
    m.assert_gauge_matches(&[&a, &b]);

    // A deleted tenant takes its snapshots out of the gauge.
    let c = runtime
        .create_tenant("c", doc(json!({"n": 0})))
        .await
        .unwrap();
    c.snapshot_named("c_one").await.unwrap();
    c.snapshot().await.unwrap();
    m.assert_gauge_matches(&[&a, &b, &c]);
    moves!(
        m,
        [
            (|m| m.value(TENANTS, &[]), -1),
            (|m| m.held("named"), -1),
            (|m| m.held("auto"), -1)
        ],
        runtime.delete_tenant("c").await.unwrap()
    );
    m.assert_gauge_matches(&[&a, &b]);
    assert_eq!(m.value(TENANTS, &[]), 2.0);

    // A history budget drops the oldest history; what it drops counts as
    // pruned, and the gauges follow.
    // Room for a few one-key deltas, not for the ten the auto ring pins.
    let budget = 300;
    let d = runtime
        .create_tenant_with(
            TenantId::new("d").unwrap(),
            doc(json!({"n": 0, "pad": "x".repeat(200)})),
            Some(TenantConfig {
                timeline: TimelineConfig {
                    history_budget: Some(budget),
                    hot_revisions: 0,
                    ..TimelineConfig::default()
                },
                auto_snapshot: AutoSnapshotPolicy::DISABLED,
                ..TenantConfig::default()
            }),
        )
        .await
        .unwrap();
    let pruned_before = m.pruned("auto");
    for i in 1..=30 {
        d.apply(set(i)).await.unwrap();
        d.snapshot().await.unwrap();
        assert!(d.memory().history_bytes <= budget, "{:?}", d.memory());
    }
    // Every auto snapshot taken and no longer held was pruned, by the ring
    // or by the budget, and counted once.
    let held = d.timeline().snapshot_counts().auto;
    assert_eq!(m.pruned("auto") - pruned_before, (30 - held) as f64);
    assert!(
        d.timeline().budget_pruned().auto > 0,
        "the budget pruned nothing: {:?}",
        d.memory()
    );
    m.assert_gauge_matches(&[&a, &b, &d]);
    runtime.delete_tenant("d").await.unwrap();
    m.assert_gauge_matches(&[&a, &b]);

    assert!(m.samples(TRANSITION_DURATION_SECONDS) > 0);
    assert!(m.samples(ROLLBACK_DURATION_SECONDS) > 0);

    // Shutdown empties the gauges.
    runtime.shutdown().await.unwrap();
    assert_eq!(m.value(TENANTS, &[]), 0.0);
    for kind in SnapshotKind::ALL {
        assert_eq!(m.held(kind.as_str()), 0.0, "{kind}");
    }
}
