//! Errors, one `#[non_exhaustive]` enum per family, converging on [`Error`].
//!
//! Messages name the object involved ("snapshot 'v2.0.0' not found") so a
//! user can act on them; the runtime adds the tenant.

use std::sync::Arc;

use crate::doc::Pointer;
use crate::id::{Revision, TransactionId};
use crate::name::SnapshotName;
use crate::time::Timestamp;
use crate::timeline::{DeploymentId, DeploymentStatus};

/// Any error of the core.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input rejected at the edge (names, times, documents).
    #[error(transparent)]
    Input(#[from] InvalidInput),
    /// A JSON Patch could not be parsed or applied.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// A timeline operation was refused.
    #[error(transparent)]
    Timeline(#[from] TimelineError),
}

/// Input that does not meet the rules; nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A snapshot or checkpoint name breaks the naming rules.
    #[error(
        "invalid snapshot name '{name}': {reason} (use 1-128 characters of A-Z a-z 0-9 . _ : -)"
    )]
    SnapshotName {
        /// The rejected name (shortened if long).
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A snapshot name uses a prefix or word reserved by rewind.
    #[error("snapshot name '{name}' is reserved: {reason}")]
    ReservedName {
        /// The rejected name.
        name: SnapshotName,
        /// What the name is reserved for.
        reason: &'static str,
    },
    /// A typed state (or change) does not round-trip through JSON, which
    /// diffs, rollbacks and the journal need: refused before anything is
    /// stored.
    #[error(
        "the {what} does not round-trip through JSON: {reason} (diffs, rollbacks and the \
         journal need it; keep map keys strings and derive Serialize and Deserialize \
         symmetrically)"
    )]
    ModelNotJson {
        /// `state` or `change`.
        what: &'static str,
        /// What serde said.
        reason: String,
    },
    /// A state reference or rollback target written as text does not parse.
    #[error("invalid {what} '{input}': expected {expected}")]
    Reference {
        /// `state reference` or `rollback target`.
        what: &'static str,
        /// The rejected text (shortened).
        input: String,
        /// The forms accepted.
        expected: &'static str,
    },
    /// A tenant id breaks the naming rules.
    #[error("invalid tenant id '{id}': {reason} (use 1-64 characters of A-Z a-z 0-9 _ . -)")]
    TenantId {
        /// The rejected id (shortened if long).
        id: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A time is not an RFC 3339 instant.
    #[error("invalid time '{input}': {reason} (expected RFC 3339, e.g. 2026-03-14T12:30:00Z)")]
    Timestamp {
        /// The rejected text (shortened).
        input: String,
        /// Parser message.
        reason: String,
    },
    /// A document nests deeper than allowed.
    #[error("document nests deeper than the limit of {limit} levels")]
    TooDeep {
        /// The depth limit in force.
        limit: usize,
    },
    /// A number cannot be represented in JSON (NaN or infinite).
    #[error("number {0} cannot be represented in JSON")]
    NonFiniteNumber(f64),
    /// A configuration value cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Input is not valid JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    Json(String),
}

/// A JSON Patch failed; the document is unchanged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{kind}", op.map(|i| format!("patch operation {i} failed: ")).unwrap_or_default())]
pub struct PatchError {
    /// Index of the failing operation in the patch, when one is to blame.
    pub op: Option<usize>,
    /// What went wrong.
    pub kind: PatchErrorKind,
}

impl PatchError {
    pub(crate) fn at(op: usize, kind: PatchErrorKind) -> Self {
        PatchError { op: Some(op), kind }
    }
}

/// Why a JSON Patch operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchErrorKind {
    /// The patch is not a JSON array of operation objects.
    #[error("a patch must be a JSON array of operations")]
    NotAnArray,
    /// An operation object is malformed (missing or mistyped member, unknown op).
    #[error("{0}")]
    Malformed(String),
    /// A `path` or `from` member is not a valid RFC 6901 JSON Pointer.
    #[error("invalid JSON Pointer '{pointer}': {reason}")]
    InvalidPointer {
        /// The pointer text (shortened).
        pointer: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// Nothing exists at the location.
    #[error("nothing at '{0}'")]
    PathNotFound(Pointer),
    /// An array index is not a valid index (leading zeros, sign, not a number).
    #[error("'{token}' is not a valid array index at '{path}'")]
    InvalidIndex {
        /// The location whose last token is bad.
        path: Pointer,
        /// The offending token.
        token: String,
    },
    /// An array index is past the end.
    #[error("index {index} is out of bounds at '{path}' (array length {len})")]
    IndexOutOfBounds {
        /// The location.
        path: Pointer,
        /// The index asked for.
        index: usize,
        /// The array length.
        len: usize,
    },
    /// The parent of the location is a scalar, so nothing can be put in it.
    #[error("'{0}' is not inside an object or array")]
    NotAContainer(Pointer),
    /// A `test` operation found a different value.
    #[error("test failed: the value at '{0}' differs")]
    TestFailed(Pointer),
    /// A `move` into one of the moved value's own children.
    #[error("cannot move '{from}' into its own child '{path}'")]
    MoveIntoChild {
        /// The source location.
        from: Pointer,
        /// The destination.
        path: Pointer,
    },
    /// The result would nest deeper than the document limit.
    #[error("the result would nest deeper than the limit of {limit} levels")]
    TooDeep {
        /// The depth limit in force.
        limit: usize,
    },
    /// A value in the patch is not a valid document.
    #[error(transparent)]
    Value(InvalidInput),
}

/// A timeline operation was refused; the timeline is unchanged.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TimelineError {
    /// A cold state could not be rebuilt from its history deltas. This is
    /// a defect in rewind, not in the input: please report it.
    #[error("the state of revision {revision} could not be rebuilt from its history deltas")]
    HistoryCorrupt {
        /// The revision whose state was read.
        revision: Revision,
    },
    /// No snapshot (auto or named) has this name.
    #[error("snapshot '{0}' not found")]
    SnapshotNotFound(SnapshotName),
    /// A named snapshot with this name already exists.
    #[error("snapshot '{0}' already exists (ask for replace to overwrite it)")]
    SnapshotExists(SnapshotName),
    /// The snapshot is protected; unprotect it before deleting it.
    #[error("snapshot '{0}' is protected; unprotect it before deleting it")]
    SnapshotProtected(SnapshotName),
    /// The revision is neither in the history window nor held by a snapshot.
    #[error("revision {revision} not found (history holds {oldest}..={head})")]
    RevisionNotFound {
        /// The revision asked for.
        revision: Revision,
        /// Oldest revision still in the window.
        oldest: Revision,
        /// The head revision.
        head: Revision,
    },
    /// No snapshot was taken at or before the time (rollback to time).
    #[error("no snapshot taken at or before {0}")]
    NoSnapshotBefore(Timestamp),
    /// The time is older than the history window (read as of a time).
    #[error("no revision known at {at} (history starts at {oldest})")]
    TimeOutOfRange {
        /// The time asked for.
        at: Timestamp,
        /// Time of the oldest revision in the window.
        oldest: Timestamp,
    },
    /// The timeline holds no snapshot at all (rollback to latest).
    #[error("no snapshot to roll back to")]
    NoSnapshots,
    /// The transaction is unknown or its checkpoints were pruned.
    #[error("transaction {0} not found")]
    TransactionNotFound(TransactionId),
    /// The transaction has already finished.
    #[error("transaction {0} has already finished")]
    TransactionFinished(TransactionId),
    /// The transaction has no checkpoint with this name.
    #[error("checkpoint '{name}' not found in transaction {transaction}")]
    CheckpointNotFound {
        /// The transaction.
        transaction: TransactionId,
        /// The checkpoint name asked for.
        name: SnapshotName,
    },
    /// The transaction already has a checkpoint with this name.
    #[error("checkpoint '{name}' already exists in transaction {transaction}")]
    CheckpointExists {
        /// The transaction.
        transaction: TransactionId,
        /// The duplicate name.
        name: SnapshotName,
    },
    /// Only named snapshots can be protected.
    #[error("snapshot '{0}' is an auto snapshot; only named snapshots can be protected")]
    NotProtectable(SnapshotName),
    /// A retention limit cannot make room (every named snapshot is protected).
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The model refused the change.
    #[error("change rejected: {0}")]
    Rejected(ChangeRejected),
    /// Another deployment of the tenant is monitoring; one runs at a time.
    #[error("deployment {0} is in progress; abort or promote it first")]
    DeploymentRunning(DeploymentId),
    /// No kept deployment has this id.
    #[error("deployment {0} not found")]
    DeploymentNotFound(DeploymentId),
    /// The deployment has already ended.
    #[error("deployment {id} has already ended ({status})")]
    DeploymentFinished {
        /// The deployment.
        id: DeploymentId,
        /// How it ended.
        status: DeploymentStatus,
    },
    /// The snapshot is the `pre_<name>` of a deployment in progress, which
    /// must be able to roll back to it.
    #[error("snapshot '{name}' is held by deployment {deployment} until it ends")]
    HeldByDeployment {
        /// The snapshot.
        name: SnapshotName,
        /// The deployment.
        deployment: DeploymentId,
    },
}

/// The model's own error for a refused change, kept whole so callers can
/// downcast it (for [`Doc`](crate::Doc) it is a [`PatchError`]).
#[derive(Debug, Clone)]
pub struct ChangeRejected(Arc<dyn std::error::Error + Send + Sync>);

impl ChangeRejected {
    /// Wraps a model error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        ChangeRejected(Arc::new(error))
    }

    /// The model's error, if it is of type `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl std::fmt::Display for ChangeRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ChangeRejected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}
