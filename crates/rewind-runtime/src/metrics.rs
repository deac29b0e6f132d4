//! Metric names (a contract: dashboards and alerts use them) and the helpers
//! that record them through the `metrics` facade.
//!
//! No metric has a tenant label (unbounded cardinality); labels are small
//! closed sets. Histograms are meant to be exported with explicit buckets:
//! [`DURATION_BUCKETS`] for every `*_duration_seconds` and
//! [`BATCH_BUCKETS`] for `rewind_journal_batch_records`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};
use rewind_core::{Pruned, SnapshotCounts, SnapshotKind, TargetKind, TransactionOutcome};

/// Counter, label `outcome` = `ok` | `rejected` | `failed`.
pub const TRANSITIONS_TOTAL: &str = "rewind_transitions_total";
/// Histogram of committed transitions, seconds.
pub const TRANSITION_DURATION_SECONDS: &str = "rewind_transition_duration_seconds";
/// Counter, label `kind` = `auto` | `named` | `checkpoint`.
pub const SNAPSHOTS_CREATED_TOTAL: &str = "rewind_snapshots_created_total";
/// Counter, label `kind`.
pub const SNAPSHOTS_PRUNED_TOTAL: &str = "rewind_snapshots_pruned_total";
/// Gauge of snapshots held over all tenants, label `kind`.
pub const SNAPSHOTS: &str = "rewind_snapshots";
/// Counter, labels `target` = `named` | `time` | `latest` | `checkpoint` |
/// `revision` and `outcome` = `ok` | `rejected` | `failed`.
pub const ROLLBACKS_TOTAL: &str = "rewind_rollbacks_total";
/// Histogram of rollbacks, seconds.
pub const ROLLBACK_DURATION_SECONDS: &str = "rewind_rollback_duration_seconds";
/// Counter, label `outcome` = `committed` | `rolled_back` | `failed`.
pub const TRANSACTIONS_TOTAL: &str = "rewind_transactions_total";
/// Gauge of live tenants (active and passivated).
pub const TENANTS: &str = "rewind_tenants";
/// Gauge of the estimated bytes of history held (deltas of cold
/// states and the unshared nodes of hot ones) over all active tenants:
/// the sum of their `Timeline::memory().history_bytes`.
pub const HISTORY_BYTES: &str = "rewind_history_bytes";
/// Gauge of active tenants: those whose timeline is in memory.
pub const TENANTS_ACTIVE: &str = "rewind_tenants_active";
/// Counter of passivated tenants made active again.
pub const TENANT_ACTIVATIONS_TOTAL: &str = "rewind_tenant_activations_total";
/// Counter of tenants passivated, label `reason` = `idle` | `capacity`
/// (`requested` for [`Runtime::passivate`](crate::Runtime::passivate)).
pub const TENANT_PASSIVATIONS_TOTAL: &str = "rewind_tenant_passivations_total";
/// Histogram of activations (reading the newest image and the entries
/// after it), seconds.
pub const TENANT_ACTIVATION_DURATION_SECONDS: &str = "rewind_tenant_activation_duration_seconds";
/// Counter of tenant restarts after a failure.
pub const TENANT_RESTARTS_TOTAL: &str = "rewind_tenant_restarts_total";
/// Histogram of journal commits, seconds.
pub const JOURNAL_COMMIT_DURATION_SECONDS: &str = "rewind_journal_commit_duration_seconds";
/// Histogram of records per journal commit.
pub const JOURNAL_BATCH_RECORDS: &str = "rewind_journal_batch_records";

/// Counter of ended deployments, label `outcome` = `promoted` |
/// `rolled_back` | `aborted`.
pub const DEPLOYMENTS_TOTAL: &str = "rewind_deployments_total";
/// Counter of deployment health measurements, label `result` = `pass` |
/// `fail` | `error`.
pub const DEPLOYMENT_CHECKS_TOTAL: &str = "rewind_deployment_checks_total";

/// Counter of tenants read back from the journal at start.
pub const RECOVERED_TENANTS_TOTAL: &str = "rewind_recovered_tenants_total";
/// Counter of journal entries replayed at start.
pub const RECOVERED_ENTRIES_TOTAL: &str = "rewind_recovered_entries_total";

/// Buckets for `*_duration_seconds` histograms: 1 µs to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
];

/// Buckets for `rewind_journal_batch_records`.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Registers a description for every metric with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(TRANSITIONS_TOTAL, "State transitions by outcome");
    describe_histogram!(
        TRANSITION_DURATION_SECONDS,
        Unit::Seconds,
        "Time to commit a transition"
    );
    describe_counter!(SNAPSHOTS_CREATED_TOTAL, "Snapshots created by kind");
    describe_counter!(
        SNAPSHOTS_PRUNED_TOTAL,
        "Snapshots pruned by retention, by kind"
    );
    describe_gauge!(SNAPSHOTS, "Snapshots held over all tenants, by kind");
    describe_counter!(ROLLBACKS_TOTAL, "Rollbacks by target and outcome");
    describe_histogram!(
        ROLLBACK_DURATION_SECONDS,
        Unit::Seconds,
        "Time to make a rollback"
    );
    describe_counter!(TRANSACTIONS_TOTAL, "Transactions by outcome");
    describe_gauge!(TENANTS, "Live tenants, active and passivated");
    describe_gauge!(
        HISTORY_BYTES,
        Unit::Bytes,
        "Estimated bytes of history held over all active tenants"
    );
    describe_gauge!(TENANTS_ACTIVE, "Tenants whose timeline is in memory");
    describe_counter!(
        TENANT_ACTIVATIONS_TOTAL,
        "Passivated tenants read back from the journal on demand"
    );
    describe_counter!(TENANT_PASSIVATIONS_TOTAL, "Tenants passivated, by reason");
    describe_histogram!(
        TENANT_ACTIVATION_DURATION_SECONDS,
        Unit::Seconds,
        "Time to activate a passivated tenant"
    );
    describe_counter!(TENANT_RESTARTS_TOTAL, "Tenant restarts after a failure");
    describe_histogram!(
        JOURNAL_COMMIT_DURATION_SECONDS,
        Unit::Seconds,
        "Time to commit and fsync one journal batch"
    );
    describe_histogram!(JOURNAL_BATCH_RECORDS, "Records per journal commit");
    describe_counter!(
        RECOVERED_TENANTS_TOTAL,
        "Tenants read back from the journal"
    );
    describe_counter!(RECOVERED_ENTRIES_TOTAL, "Journal entries replayed at start");
    describe_counter!(DEPLOYMENTS_TOTAL, "Guarded deployments ended, by outcome");
    describe_counter!(
        DEPLOYMENT_CHECKS_TOTAL,
        "Deployment health measurements, by result"
    );
}

/// Outcome label of a transition or rollback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Rejected,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}

/// Handles of the metrics recorded on every request, registered once (at the
/// first runtime start) instead of building and hashing a key per call. The
/// `metrics` facade binds a handle to the recorder installed when it is
/// registered: install the recorder before starting a runtime (as `rewind
/// serve` does).
struct Handles {
    transitions: [Counter; 3],
    transition_duration: Histogram,
    /// By target kind, then outcome.
    rollbacks: [[Counter; 3]; 5],
    rollback_duration: Histogram,
    created: [Counter; 3],
    pruned: [Counter; 3],
    held: [Gauge; 3],
    transactions: [Counter; 3],
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

const OUTCOMES: [Outcome; 3] = [Outcome::Ok, Outcome::Rejected, Outcome::Failed];
const TARGETS: [TargetKind; 5] = [
    TargetKind::Named,
    TargetKind::Time,
    TargetKind::Latest,
    TargetKind::Checkpoint,
    TargetKind::Revision,
];
const TRANSACTION_OUTCOMES: [TransactionOutcome; 3] = [
    TransactionOutcome::Committed,
    TransactionOutcome::RolledBack,
    TransactionOutcome::Failed,
];

impl Handles {
    fn register() -> Self {
        let by_kind = |name: &'static str| {
            SnapshotKind::ALL.map(|kind| counter!(name, "kind" => kind.as_str()))
        };
        Handles {
            transitions: OUTCOMES
                .map(|outcome| counter!(TRANSITIONS_TOTAL, "outcome" => outcome.as_str())),
            transition_duration: histogram!(TRANSITION_DURATION_SECONDS),
            rollbacks: TARGETS.map(|target| {
                OUTCOMES.map(|outcome| {
                    counter!(ROLLBACKS_TOTAL, "target" => target.as_str(), "outcome" => outcome.as_str())
                })
            }),
            rollback_duration: histogram!(ROLLBACK_DURATION_SECONDS),
            created: by_kind(SNAPSHOTS_CREATED_TOTAL),
            pruned: by_kind(SNAPSHOTS_PRUNED_TOTAL),
            held: SnapshotKind::ALL.map(|kind| gauge!(SNAPSHOTS, "kind" => kind.as_str())),
            transactions: TRANSACTION_OUTCOMES
                .map(|outcome| counter!(TRANSACTIONS_TOTAL, "outcome" => outcome.as_str())),
        }
    }

    fn get() -> &'static Handles {
        HANDLES.get_or_init(Handles::register)
    }
}

/// Registers the per-request handles with the installed recorder; called
/// when a runtime starts.
pub(crate) fn register_handles() {
    Handles::get();
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ok => 0,
        Outcome::Rejected => 1,
        Outcome::Failed => 2,
    }
}

fn kind_index(kind: SnapshotKind) -> usize {
    match kind {
        SnapshotKind::Auto => 0,
        SnapshotKind::Named => 1,
        SnapshotKind::Checkpoint => 2,
    }
}

pub(crate) fn transition(outcome: Outcome, elapsed: Duration) {
    let handles = Handles::get();
    handles.transitions[outcome_index(outcome)].increment(1);
    if outcome == Outcome::Ok {
        handles.transition_duration.record(elapsed.as_secs_f64());
    }
}

pub(crate) fn rollback(target: TargetKind, outcome: Outcome, elapsed: Duration) {
    let handles = Handles::get();
    let target = TARGETS.iter().position(|t| *t == target).unwrap_or(0);
    handles.rollbacks[target][outcome_index(outcome)].increment(1);
    if outcome == Outcome::Ok {
        handles.rollback_duration.record(elapsed.as_secs_f64());
    }
}

pub(crate) fn snapshot_created(kind: SnapshotKind) {
    let handles = Handles::get();
    handles.created[kind_index(kind)].increment(1);
    handles.held[kind_index(kind)].increment(1.0);
}

pub(crate) fn snapshot_deleted(kind: SnapshotKind) {
    Handles::get().held[kind_index(kind)].decrement(1.0);
}

pub(crate) fn pruned(pruned: &Pruned) {
    if pruned.is_empty() {
        return;
    }
    let handles = Handles::get();
    for kind in SnapshotKind::ALL {
        let count = pruned.of(kind);
        if count > 0 {
            handles.pruned[kind_index(kind)].increment(count as u64);
            handles.held[kind_index(kind)].decrement(count as f64);
        }
    }
}

/// Adds (`sign` = 1.0) or removes (-1.0) a whole tenant's snapshots from the
/// gauge.
pub(crate) fn snapshots_held(counts: &SnapshotCounts, sign: f64) {
    let handles = Handles::get();
    for kind in SnapshotKind::ALL {
        let count = counts.of(kind);
        if count > 0 {
            handles.held[kind_index(kind)].increment(sign * count as f64);
        }
    }
}

pub(crate) fn transaction(outcome: TransactionOutcome) {
    let index = TRANSACTION_OUTCOMES
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or(0);
    Handles::get().transactions[index].increment(1);
}

pub(crate) fn tenants(delta: f64) {
    gauge!(TENANTS).increment(delta);
}

pub(crate) fn history_bytes(delta: f64) {
    if delta != 0.0 {
        gauge!(HISTORY_BYTES).increment(delta);
    }
}

/// What changed between two timelines one tenant published in a row:
/// the history bytes it holds, and snapshots its history budget dropped.
pub(crate) fn republished<M: rewind_core::Model>(
    old: &rewind_core::Timeline<M>,
    new: &rewind_core::Timeline<M>,
) {
    let delta = new.history_bytes() as f64 - old.history_bytes() as f64;
    history_bytes(delta);
    let (o, n) = (old.budget_pruned(), new.budget_pruned());
    pruned(&Pruned {
        auto: n.auto.saturating_sub(o.auto),
        named: n.named.saturating_sub(o.named),
        checkpoint: n.checkpoint.saturating_sub(o.checkpoint),
    });
}

pub(crate) fn tenants_active(delta: f64) {
    gauge!(TENANTS_ACTIVE).increment(delta);
}

/// Why a tenant was passivated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PassivationReason {
    /// Idle for its `passivate_after`.
    Idle,
    /// The least recently used once `max_active` was exceeded.
    Capacity,
    /// [`Runtime::passivate`](crate::Runtime::passivate).
    Requested,
}

impl PassivationReason {
    const ALL: [PassivationReason; 3] = [
        PassivationReason::Idle,
        PassivationReason::Capacity,
        PassivationReason::Requested,
    ];

    fn as_str(self) -> &'static str {
        match self {
            PassivationReason::Idle => "idle",
            PassivationReason::Capacity => "capacity",
            PassivationReason::Requested => "requested",
        }
    }
}

pub(crate) fn passivated(reason: PassivationReason) {
    counter!(TENANT_PASSIVATIONS_TOTAL, "reason" => reason.as_str()).increment(1);
}

pub(crate) fn activated(elapsed: Duration) {
    counter!(TENANT_ACTIVATIONS_TOTAL).increment(1);
    histogram!(TENANT_ACTIVATION_DURATION_SECONDS).record(elapsed.as_secs_f64());
}

pub(crate) fn recovered(tenants: u64, entries: u64) {
    counter!(RECOVERED_TENANTS_TOTAL).increment(tenants);
    counter!(RECOVERED_ENTRIES_TOTAL).increment(entries);
}

/// Makes the series without labels exist from the start (adding zero), so a
/// scrape shows them before their first event and `increase()` sees the
/// first one.
pub(crate) fn register_series() {
    counter!(TENANT_RESTARTS_TOTAL).increment(0);
    counter!(RECOVERED_TENANTS_TOTAL).increment(0);
    counter!(RECOVERED_ENTRIES_TOTAL).increment(0);
    gauge!(TENANTS).increment(0.0);
    gauge!(TENANTS_ACTIVE).increment(0.0);
    gauge!(HISTORY_BYTES).increment(0.0);
    counter!(TENANT_ACTIVATIONS_TOTAL).increment(0);
    for reason in PassivationReason::ALL {
        counter!(TENANT_PASSIVATIONS_TOTAL, "reason" => reason.as_str()).increment(0);
    }
    for outcome in ["promoted", "rolled_back", "aborted"] {
        counter!(DEPLOYMENTS_TOTAL, "outcome" => outcome).increment(0);
    }
    for result in ["pass", "fail", "error"] {
        counter!(DEPLOYMENT_CHECKS_TOTAL, "result" => result).increment(0);
    }
}

/// A deployment ended (`promoted`, `rolled_back` or `aborted`).
pub(crate) fn deployment_ended(status: rewind_core::deploy::DeploymentStatus) {
    counter!(DEPLOYMENTS_TOTAL, "outcome" => status.as_str()).increment(1);
}

/// Measurements recorded.
pub(crate) fn deployment_checks(round: &[rewind_core::deploy::Observation]) {
    for observation in round {
        counter!(DEPLOYMENT_CHECKS_TOTAL, "result" => observation.result.as_str()).increment(1);
    }
}

pub(crate) fn tenant_restarted() {
    counter!(TENANT_RESTARTS_TOTAL).increment(1);
}
