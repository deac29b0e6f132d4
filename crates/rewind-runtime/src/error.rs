//! Errors of the runtime. Domain errors of the core travel inside
//! [`Error::Core`] with the tenant they concern.

use std::time::Duration;

use rewind_core::{InvalidInput, Revision, TenantId, TimelineError, TransactionId};

use crate::journal::JournalError;

/// A boxed error from user code (update closures, transaction effects).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any error of the runtime. Nothing was changed when one is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No tenant has this id.
    #[error("tenant '{0}' not found")]
    TenantNotFound(TenantId),
    /// A tenant with this id already exists.
    #[error("tenant '{0}' already exists")]
    TenantExists(TenantId),
    /// The tenant failed more often than its restart intensity allows and no
    /// longer serves requests. Other tenants are unaffected.
    #[error(
        "tenant '{tenant}' failed {restarts} times within {period:?} and was not restarted again"
    )]
    TenantFailed {
        /// The tenant.
        tenant: TenantId,
        /// Failures counted within the period.
        restarts: u32,
        /// The restart period.
        period: Duration,
    },
    /// Too many requests in flight for this tenant; retry later.
    #[error("tenant '{tenant}' is overloaded: {limit} requests already in flight")]
    Overloaded {
        /// The tenant.
        tenant: TenantId,
        /// Its `max_in_flight`.
        limit: usize,
    },
    /// A write waited too long for a transaction's write lease.
    #[error("tenant '{tenant}' is held by transaction {transaction}: gave up after waiting {waited:?} for the write lease")]
    LeaseTimeout {
        /// The tenant.
        tenant: TenantId,
        /// The transaction holding the lease.
        transaction: TransactionId,
        /// How long the write waited.
        waited: Duration,
    },
    /// The head is not at the revision the write expected.
    #[error("revision mismatch for tenant '{tenant}': expected {expected}, head is {actual}")]
    RevisionMismatch {
        /// The tenant.
        tenant: TenantId,
        /// The revision the caller expected.
        expected: Revision,
        /// The actual head revision.
        actual: Revision,
    },
    /// The core refused the operation (unknown snapshot, failing patch, ...).
    #[error("{source} for tenant '{tenant}'")]
    Core {
        /// The tenant.
        tenant: TenantId,
        /// What the core said.
        source: rewind_core::Error,
    },
    /// An update closure returned an error; nothing was applied.
    #[error("update refused for tenant '{tenant}': {source}")]
    UpdateRefused {
        /// The tenant.
        tenant: TenantId,
        /// The closure's error.
        source: BoxError,
    },
    /// User code (a closure or the model's `apply`) panicked. Nothing was
    /// applied; the tenant restarts from its last committed state.
    #[error("user code panicked in tenant '{tenant}': {message}")]
    Panicked {
        /// The tenant.
        tenant: TenantId,
        /// The panic message.
        message: String,
    },
    /// The tenant could not answer (it was stopping or restarting and did
    /// not come back in time).
    #[error("tenant '{tenant}' is unavailable: {reason}")]
    Unavailable {
        /// The tenant.
        tenant: TenantId,
        /// What happened.
        reason: String,
    },
    /// The journal could not make the change durable; it was not applied.
    #[error("journal failed for tenant '{tenant}', the change was not applied: {source}")]
    Journal {
        /// The tenant.
        tenant: TenantId,
        /// What the journal said.
        source: JournalError,
    },
    /// The tenant's journal could not be recovered at start; it serves
    /// nothing until the data is repaired.
    #[error("tenant '{tenant}' could not be recovered from the journal: {source}")]
    Unrecoverable {
        /// The tenant.
        tenant: TenantId,
        /// Why.
        source: JournalError,
    },
    /// The runtime is shutting down and takes no new requests.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// Input rejected at the edge (names, ids, configuration).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
}

impl Error {
    pub(crate) fn core(tenant: &TenantId, source: impl Into<rewind_core::Error>) -> Self {
        Error::Core {
            tenant: tenant.clone(),
            source: source.into(),
        }
    }

    /// The core's error, when the core refused the operation.
    pub fn core_error(&self) -> Option<&rewind_core::Error> {
        match self {
            Error::Core { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The timeline error, when a timeline operation was refused.
    pub fn timeline_error(&self) -> Option<&TimelineError> {
        match self.core_error() {
            Some(rewind_core::Error::Timeline(e)) => Some(e),
            _ => None,
        }
    }

    /// The model's own error, when the model refused a change: for
    /// [`Doc`](rewind_core::Doc), `err.rejected::<PatchError>()`.
    pub fn rejected<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self.timeline_error() {
            Some(TimelineError::Rejected(rejected)) => rejected.downcast_ref::<E>(),
            _ => None,
        }
    }

    /// Whether this is a [`TimelineError::SnapshotNotFound`].
    pub fn is_snapshot_not_found(&self) -> bool {
        matches!(
            self.timeline_error(),
            Some(TimelineError::SnapshotNotFound(_))
        )
    }

    /// Whether this is a [`TimelineError::RevisionNotFound`].
    pub fn is_revision_not_found(&self) -> bool {
        matches!(
            self.timeline_error(),
            Some(TimelineError::RevisionNotFound { .. })
        )
    }
}

/// The text of a caught panic's payload.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
