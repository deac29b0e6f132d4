//! Errors of the runtime. Domain errors of the core travel inside
//! [`Error::Core`] with the tenant they concern.

use std::time::Duration;

use rewind_core::{InvalidInput, MergeConflict, Revision, TenantId, TimelineError, TransactionId};

use crate::journal::JournalError;
use crate::supervisor::links::{DeleteRefusal, Detached};
use crate::transaction::TransactionReport;

/// A boxed error from user code (update closures, transaction effects).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any error of the runtime. Nothing was changed when one is returned,
/// except [`Error::OutcomeUnknown`], which says it cannot tell, and
/// [`Error::TransactionFailed`]: a transaction that ran and did not commit,
/// whose report says what it wrote and what it rolled back.
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
    /// The write was handed to the journal and its answer was lost: it may
    /// or may not have been applied, and the journal could not tell within
    /// the time it had. The tenant reads itself back from the journal
    /// before it takes another write, so a read of its history (or a retry
    /// with the same idempotency key) finds out.
    #[error(
        "the outcome of the write to tenant '{tenant}' is unknown: {reason}; read the \
         tenant's history to see whether it was applied, or retry it with the same \
         idempotency key"
    )]
    OutcomeUnknown {
        /// The tenant.
        tenant: TenantId,
        /// What was lost.
        reason: String,
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
    /// The journal failed outside any tenant's write: opening it
    /// (`JournalError::AlreadyOpen`, `SchemaTooNew`, ...) or reading it
    /// whole. What `?` makes of a [`JournalError`].
    #[error(transparent)]
    Store(#[from] JournalError),
    /// The runtime is shutting down and takes no new requests.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// Input rejected at the edge (names, ids, configuration).
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// An idempotency key the tenant remembers was sent with a different
    /// request than the one it was first used with; nothing was applied.
    #[error(
        "idempotency key '{key}' of tenant '{tenant}' was first used with a different \
         request; use a new key for a new request"
    )]
    IdempotencyKeyReused {
        /// The tenant.
        tenant: TenantId,
        /// The key.
        key: String,
    },
    /// A fork operation (promote) on a tenant that is not a fork.
    #[error("tenant '{0}' is not a fork: it has no parent to promote to")]
    NotAFork(TenantId),
    /// A promotion of a fork whose parent is gone: deleted, or its name now
    /// belongs to a later tenant (another incarnation). Nothing was written
    /// anywhere.
    #[error("fork '{fork}' is detached from '{parent}': {why}; nothing was written (a detached fork cannot be promoted)")]
    ForkDetached {
        /// The fork.
        fork: TenantId,
        /// The parent's name, as the fork recorded it.
        parent: TenantId,
        /// What became of the parent.
        why: Detached,
    },
    /// A deletion refused: the tenant has attached forks, protected
    /// snapshots or a deployment in progress, and the options did not say
    /// to delete them anyway. Nothing was deleted.
    #[error(transparent)]
    DeleteRefused(Box<DeleteRefusal>),
    /// A transaction ran and a step failed: it was rolled back per its
    /// policy (`report.outcome` is `RolledBack`), or no rollback could be
    /// made (`Failed`: the policy's checkpoint was never reached, so the
    /// steps before the failure stay). Unlike every other error, revisions
    /// may have been written: the steps' and the rollback's, all in the
    /// history. The report says which step failed and why; take it with
    /// [`Error::transaction_report`] or [`Error::into_transaction_report`].
    #[error("tenant '{tenant}': {report}")]
    TransactionFailed {
        /// The tenant.
        tenant: TenantId,
        /// What the transaction did: its steps, the failure, the rollback.
        report: Box<TransactionReport>,
    },
    /// A `merge` promotion found changes of the fork and of its parent on
    /// the same paths since the fork's base; nothing was written.
    #[error("promoting fork '{fork}' into '{parent}' conflicts: {conflict}")]
    MergeConflict {
        /// The parent, unchanged.
        parent: TenantId,
        /// The fork.
        fork: TenantId,
        /// The paths.
        conflict: MergeConflict,
    },
}

/// For the conversions that cannot fail (a [`SnapshotName`](rewind_core::SnapshotName)
/// passed where a name is taken).
impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl Error {
    /// A failed append of `tenant`: [`Error::OutcomeUnknown`] when the
    /// journal cannot tell whether it was stored, else [`Error::Journal`]
    /// (nothing was stored).
    pub(crate) fn journal(tenant: &TenantId, source: JournalError) -> Self {
        match source {
            JournalError::OutcomeUnknown(reason) => Error::OutcomeUnknown {
                tenant: tenant.clone(),
                reason,
            },
            source => Error::Journal {
                tenant: tenant.clone(),
                source,
            },
        }
    }

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

    /// What kind of failure this is, one level deep (the core's errors
    /// included). Time: O(1).
    ///
    /// ```
    /// use rewind_core::{SnapshotName, TimelineError, TenantId};
    /// use rewind_runtime::{Error, ErrorKind, JournalError};
    ///
    /// let tenant = TenantId::new("acme_corp").unwrap();
    /// let missing = Error::Core {
    ///     tenant: tenant.clone(),
    ///     source: TimelineError::SnapshotNotFound(SnapshotName::new("v2").unwrap()).into(),
    /// };
    /// assert_eq!(missing.kind(), ErrorKind::NotFound);
    /// assert_eq!(Error::TenantExists(tenant).kind(), ErrorKind::Exists);
    /// assert_eq!(Error::from(JournalError::Closed).kind(), ErrorKind::Journal);
    /// assert_eq!(Error::ShuttingDown.kind(), ErrorKind::Unavailable);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::TenantNotFound(_) => ErrorKind::NotFound,
            Error::TenantExists(_) => ErrorKind::Exists,
            Error::TenantFailed { .. } | Error::Unavailable { .. } | Error::ShuttingDown => {
                ErrorKind::Unavailable
            }
            Error::Overloaded { .. } => ErrorKind::Overloaded,
            Error::LeaseTimeout { .. } | Error::RevisionMismatch { .. } => ErrorKind::Conflict,
            Error::Core { source, .. } => core_kind(source),
            Error::UpdateRefused { .. } => ErrorKind::Rejected,
            Error::Panicked { .. } => ErrorKind::Panicked,
            Error::Journal { .. } | Error::Unrecoverable { .. } | Error::Store(_) => {
                ErrorKind::Journal
            }
            Error::OutcomeUnknown { .. } => ErrorKind::OutcomeUnknown,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::NotAFork(_) => ErrorKind::Invalid,
            Error::IdempotencyKeyReused { .. } => ErrorKind::Conflict,
            Error::MergeConflict { .. } | Error::ForkDetached { .. } | Error::DeleteRefused(_) => {
                ErrorKind::Conflict
            }
            Error::TransactionFailed { .. } => ErrorKind::TransactionFailed,
        }
    }

    /// The report of a transaction that did not commit
    /// ([`Error::TransactionFailed`]).
    pub fn transaction_report(&self) -> Option<&TransactionReport> {
        match self {
            Error::TransactionFailed { report, .. } => Some(report),
            _ => None,
        }
    }

    /// Takes the report out of an [`Error::TransactionFailed`]; any other
    /// error comes back as it was.
    pub fn into_transaction_report(self) -> Result<TransactionReport, Error> {
        match self {
            Error::TransactionFailed { report, .. } => Ok(*report),
            other => Err(other),
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

fn core_kind(error: &rewind_core::Error) -> ErrorKind {
    match error {
        rewind_core::Error::Input(_) => ErrorKind::Invalid,
        rewind_core::Error::Patch(_) => ErrorKind::Rejected,
        rewind_core::Error::Timeline(error) => match error {
            TimelineError::SnapshotNotFound(_)
            | TimelineError::RevisionNotFound { .. }
            | TimelineError::NoSnapshotBefore(_)
            | TimelineError::TimeOutOfRange { .. }
            | TimelineError::NoSnapshots
            | TimelineError::TransactionNotFound(_)
            | TimelineError::CheckpointNotFound { .. }
            | TimelineError::DeploymentNotFound(_) => ErrorKind::NotFound,
            TimelineError::SnapshotExists(_) | TimelineError::CheckpointExists { .. } => {
                ErrorKind::Exists
            }
            TimelineError::SnapshotProtected(_)
            | TimelineError::NotProtectable(_)
            | TimelineError::TransactionFinished(_)
            | TimelineError::DeploymentRunning(_)
            | TimelineError::DeploymentFinished { .. }
            | TimelineError::HeldByDeployment { .. } => ErrorKind::Conflict,
            TimelineError::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            TimelineError::Rejected(_) => ErrorKind::Rejected,
            TimelineError::HistoryCorrupt { .. } => ErrorKind::Internal,
            _ => ErrorKind::Invalid,
        },
        _ => ErrorKind::Invalid,
    }
}

/// What kind of failure an [`Error`] is, one level deep: what a service
/// matches on to answer (say, 404, 409 or 503) without walking the core's
/// errors. See [`Error::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A tenant, snapshot, revision, transaction or checkpoint is not there
    /// (or no snapshot or revision matches the time asked for).
    NotFound,
    /// A tenant, named snapshot or checkpoint with this name exists.
    Exists,
    /// Input refused at the edge: an id, a name, a time, a configuration.
    Invalid,
    /// The change was refused: a failing patch, the model's own check, an
    /// update closure's error.
    Rejected,
    /// The tenant's state does not allow it now: a revision mismatch, a
    /// protected snapshot, a finished transaction, a held write lease.
    Conflict,
    /// A quota (snapshots, tenants) is used up.
    QuotaExceeded,
    /// Too many requests in flight; retry later.
    Overloaded,
    /// Not served now: the tenant failed, restarts or is stopping, or the
    /// runtime is shutting down.
    Unavailable,
    /// User code panicked; nothing was applied.
    Panicked,
    /// The journal failed, or holds data the tenant cannot be recovered
    /// from.
    Journal,
    /// A defect in rewind (a cold state that does not rebuild); nothing
    /// was changed.
    Internal,
    /// The write may or may not have been applied
    /// ([`Error::OutcomeUnknown`]): read the history, or retry with the same
    /// idempotency key.
    OutcomeUnknown,
    /// A transaction ran and a step failed
    /// ([`Error::TransactionFailed`]): the one kind after which revisions
    /// may have been written (its steps, then its rollback), so it is not a
    /// refusal. Its own kind, so that a service tells it from a refusal of
    /// the transaction before it ran (`Invalid`, `Conflict`, ...).
    TransactionFailed,
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
