//! rewind: a multi-tenant snapshot & rollback runtime for async Rust services.
//!
//! This facade re-exports the crates of the workspace:
//!
//! - [`core`]: the pure model — persistent JSON documents, JSON Patch,
//!   timelines with snapshots, retention, rollback and diff.
//!
//! The [`prelude`] brings the names a service needs.

pub use rewind_core as core;

/// The names most services need.
pub mod prelude {
    pub use rewind_core::{
        ChangeKind, Diff, Doc, Model, NamedOptions, Patch, Pointer, Revision, RollbackPolicy,
        RollbackTarget, SnapshotInfo, SnapshotKind, SnapshotName, StateRef, TenantId, Timeline,
        TimelineConfig, Timestamp,
    };
}
