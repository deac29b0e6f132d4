//! What a transaction reports.

use std::time::Duration;

use rewind_core::{
    Revision, RollbackOutcome, SnapshotInfo, SnapshotName, TransactionId, TransactionOutcome,
};
use serde::Serialize;

/// One completed step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    /// The step name (also its checkpoint's name).
    pub name: SnapshotName,
    /// The revision the step committed; `None` for an effect, which changes
    /// no state.
    pub revision: Option<Revision>,
    /// The checkpoint taken after the step.
    pub checkpoint: SnapshotInfo,
}

/// Why a step failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum FailureReason {
    /// The step returned an error (or its change was refused).
    Error(String),
    /// The step panicked.
    Panic(String),
    /// The step did not finish within the step timeout.
    Timeout(Duration),
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureReason::Error(e) => write!(f, "error: {e}"),
            FailureReason::Panic(p) => write!(f, "panic: {p}"),
            FailureReason::Timeout(d) => write!(f, "timed out after {d:?}"),
        }
    }
}

/// The failed step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepFailure {
    /// Its position in the plan (0-based).
    pub index: usize,
    /// Its name.
    pub step: SnapshotName,
    /// What went wrong.
    pub reason: FailureReason,
}

/// The outcome of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransactionReport {
    /// The transaction id; its checkpoints stay addressable by it.
    pub transaction: TransactionId,
    /// Committed, rolled back, or failed (rollback impossible).
    pub outcome: TransactionOutcome,
    /// The steps that completed, in order.
    pub steps: Vec<StepRecord>,
    /// The step that failed, if any.
    pub failure: Option<StepFailure>,
    /// The rollback made after the failure, if any.
    pub rollback: Option<RollbackOutcome>,
    /// The transaction failed having changed nothing (its policy's target
    /// was the head's own revision): `outcome` is `RolledBack` and no
    /// rollback was needed, so none was made: no new revision, no
    /// pre-rollback snapshot.
    pub unchanged: bool,
}

/// `transaction 3: committed (2 steps)`, `transaction 4: rolled back after
/// step 'charge' failed: ...; rollback to revision 7`, or `...; rollback:
/// not needed (state unchanged)` when the transaction had changed nothing.
///
/// ```
/// # use rewind_core::{Doc, Patch, RollbackPolicy};
/// # use rewind_runtime::Runtime;
/// # use serde_json::json;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let runtime = Runtime::<Doc>::start().await?;
/// let tenant = runtime.create_tenant("shop", Doc::object()).await?;
/// let report = tenant
///     .transaction()
///     .step("price", Patch::from_json(&json!([{"op": "add", "path": "/p", "value": 5}]))?)
///     .effect("notify", |_: Doc| async { Err::<(), _>("mail is down") })
///     .on_failure(RollbackPolicy::LastCheckpoint)
///     .run_report()
///     .await?;
/// assert_eq!(
///     report.to_string(),
///     "transaction 1: rolled back after step 'notify' failed: error: mail is down; \
///      rollback: not needed (state unchanged)"
/// );
/// assert_eq!(tenant.revision().get(), 1, "no rollback revision");
/// # runtime.shutdown().await?;
/// # Ok(())
/// # }
/// ```
impl std::fmt::Display for TransactionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transaction {}: ", self.transaction.0)?;
        let Some(failure) = &self.failure else {
            return write!(f, "committed ({} steps)", self.steps.len());
        };
        let outcome = match self.outcome {
            TransactionOutcome::RolledBack => "rolled back",
            _ => "failed",
        };
        write!(
            f,
            "{outcome} after step '{}' failed: {}",
            failure.step, failure.reason
        )?;
        match (&self.rollback, self.unchanged) {
            (Some(rollback), _) => {
                write!(f, "; rollback to revision {}", rollback.restored.revision)
            }
            (None, true) => f.write_str("; rollback: not needed (state unchanged)"),
            (None, false) => f.write_str("; no rollback (its checkpoint was never reached)"),
        }
    }
}

impl TransactionReport {
    /// Whether every step succeeded.
    pub fn is_committed(&self) -> bool {
        self.outcome == TransactionOutcome::Committed
    }
}
