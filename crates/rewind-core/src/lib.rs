//! The pure core of rewind: persistent documents, JSON Patch, timelines with
//! snapshots, retention, rollback and diff.
//!
//! Everything here is synchronous and does no I/O; the actors of
//! `rewind-runtime` drive it.
//!
//! # Layout
//!
//! - [`Model`] (`model.rs`): what a state type provides — `apply` a change,
//!   diff.
//! - [`Doc`] (`doc.rs`, `doc/`): the built-in persistent JSON model, with
//!   RFC 6901 [`Pointer`]s and RFC 6902 [`Patch`]es.
//! - [`Diff`] (`diff.rs`): entries, summary and patch between two documents,
//!   skipping shared subtrees.
//! - [`Timeline`] (`timeline.rs`, `timeline/`): revisions, the history window,
//!   auto / named / checkpoint snapshots with retention, rollback to the five
//!   [`RollbackTarget`]s, reads at any [`StateRef`].
//! - Validated names ([`SnapshotName`], [`TenantId`]), ids ([`Revision`],
//!   [`TransactionId`]), time ([`Timestamp`], [`Clock`]) and errors.
//!
//! # Example
//!
//! ```
//! use rewind_core::{Doc, Patch, RollbackTarget, SnapshotName, Timeline, NamedOptions};
//! use serde_json::json;
//!
//! let mut timeline = Timeline::with_defaults(Doc::from_json(&json!({"version": "1.0"}))?);
//! timeline.snapshot_named(SnapshotName::new("v1.0")?, NamedOptions::default())?;
//! timeline.apply(&Patch::from_json(&json!([
//!     {"op": "replace", "path": "/version", "value": "2.0"}
//! ]))?)?;
//! let outcome = timeline.rollback(&RollbackTarget::Named(SnapshotName::new("v1.0")?))?;
//! assert_eq!(timeline.head()["version"], "1.0");
//! assert_eq!(outcome.revision.get(), 2); // a rollback is a new revision
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod delta;
mod diff;
mod doc;
mod error;
mod id;
mod model;
mod name;
mod time;
mod timeline;

pub use delta::{DeltaMismatch, StateDelta};
pub use diff::{ChangeKind, Diff, DiffEntry, DiffSummary};
pub use doc::{
    update_bytes, Array, DiffItem, Doc, InvalidPointer, Key, Object, Patch, PatchOp, Pointer,
    DEFAULT_MAX_DEPTH,
};
/// The persistent map behind JSON objects, its iterators and its costs.
pub mod object {
    pub use crate::doc::{update_bytes, DiffItem, DiffIter, Iter, Key, Object, NODE_BYTES};
}
pub use error::{ChangeRejected, Error, InvalidInput, PatchError, PatchErrorKind, TimelineError};
pub use id::{Incarnation, Revision, TransactionId};
pub use model::Model;
pub use name::{SnapshotName, TenantId};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
/// Typed timeline mutations ([`Op`]) and their journal form.
pub use timeline::op as ops;
pub use timeline::{
    merge, Aborted, AutoTrigger, Cause, Commit, CommitMeta, ForkInfo, ForkRecord, IdempotencyKey,
    MemoryUsage, MergeConflict, MergeError, NamedOptions, Op, PolicyCheck, PromoteStrategy,
    Promotion, Pruned, Restored, RestoredKind, RevisionInfo, RevisionMismatch, RollbackOutcome,
    RollbackPolicy, RollbackPreview, RollbackTarget, SnapshotCounts, SnapshotInfo, SnapshotKind,
    SnapshotTaken, StateRef, TargetKind, Timeline, TimelineConfig, TimelineImage, TimelineOp,
    TransactionInfo, TransactionOutcome, START_CHECKPOINT,
};
/// Guarded deployments as a timeline records them.
pub mod deploy {
    pub use crate::timeline::{
        format_duration, parse_duration, CheckResult, CheckSpec, Comparison, Condition,
        DeployChange, DeploymentEnded, DeploymentId, DeploymentInfo, DeploymentSpec,
        DeploymentStarted, DeploymentStatus, FinishAction, Measurement, Observation,
        DEPLOYMENT_AUTHOR, KEPT_DEPLOYMENTS, MAX_CHECKS, MAX_ROUNDS, MIN_INTERVAL,
    };
}

/// The persistent collections `Doc`'s arrays and the timeline are built on.
pub use imbl;
