//! The durability port: what the runtime needs from a journal.
//!
//! A journal stores, per tenant, an append-only sequence of [`Entry`]s (each
//! a timeline mutation, encoded by the runtime) and [`Image`]s (a whole
//! timeline at some entry, so recovery replays a bounded number of entries).
//! The runtime acknowledges a write only after [`Journal::append`] reports it
//! durable. Implementations live in `rewind-store` (`MemoryJournal`,
//! `SqliteJournal`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use rewind_core::{TenantId, Timestamp};
use tokio::sync::oneshot;

/// A position in one tenant's journal: from 1, dense, never reused (0
/// means "none yet").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JournalSeq(pub u64);

impl JournalSeq {
    /// Before the first entry.
    pub const ZERO: JournalSeq = JournalSeq(0);

    /// The seq `n`.
    pub const fn new(n: u64) -> Self {
        JournalSeq(n)
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq after this one.
    pub const fn next(self) -> Self {
        JournalSeq(self.0 + 1)
    }
}

impl std::fmt::Display for JournalSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq<u64> for JournalSeq {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl From<u64> for JournalSeq {
    fn from(n: u64) -> Self {
        JournalSeq(n)
    }
}

/// What a journal entry records. Journals store it as its label
/// ([`as_str`](Self::as_str)); a label this version does not know reads
/// back as [`Unknown`](Self::Unknown), which recovery refuses with
/// [`JournalError::UnknownKind`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// A tenant created: its configuration and initial state (`create`).
    Create,
    /// One timeline mutation (`op`).
    Op,
    /// The tenant deleted (`delete`).
    Delete,
    /// A label this version does not know, as stored.
    Unknown(String),
}

impl EntryKind {
    /// The stored label.
    pub fn as_str(&self) -> &str {
        match self {
            EntryKind::Create => "create",
            EntryKind::Op => "op",
            EntryKind::Delete => "delete",
            EntryKind::Unknown(label) => label,
        }
    }

    /// The kind a stored label stands for.
    pub fn from_label(label: &str) -> Self {
        match label {
            "create" => EntryKind::Create,
            "op" => EntryKind::Op,
            "delete" => EntryKind::Delete,
            other => EntryKind::Unknown(other.to_owned()),
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One journaled record of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The tenant.
    pub tenant: TenantId,
    /// Position in the tenant's journal.
    pub seq: JournalSeq,
    /// When the mutation happened (the instant the timeline recorded).
    pub at: Timestamp,
    /// What the record is; a reader refuses kinds it does not know.
    pub kind: EntryKind,
    /// The encoded record.
    pub payload: Vec<u8>,
}

/// A whole timeline encoded at an entry: recovery starts from the newest
/// image and replays only the entries after `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The tenant.
    pub tenant: TenantId,
    /// The last entry the image includes.
    pub seq: JournalSeq,
    /// When it was taken.
    pub at: Timestamp,
    /// An optional label.
    pub name: Option<String>,
    /// The encoded timeline.
    pub payload: Vec<u8>,
}

/// Which image to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageQuery {
    /// The one with the highest `seq`.
    Latest,
    /// The newest with this label.
    Named(String),
    /// The newest taken at or before this instant.
    AtOrBefore(Timestamp),
}

/// A journal failure. Carries the tenant or file involved.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The storage failed (I/O, SQLite).
    #[error("journal storage failed: {0}")]
    Storage(String),
    /// This journal does not implement the feature.
    #[error("this journal does not support {0}")]
    Unsupported(&'static str),
    /// A record or image of a tenant does not decode or fails its checksum.
    #[error("corrupt journal data for tenant '{tenant}' at seq {seq}: {reason}")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The record.
        seq: JournalSeq,
        /// What is wrong.
        reason: String,
    },
    /// A record is intact but does not decode with the model as it is now:
    /// the model changed without a version bump and an upgrade.
    #[error(
        "tenant '{tenant}' at seq {seq} does not decode with the current model (version \
         {model_version}): {reason}; add `#[serde(default)]` to new fields, or bump \
         `Model::VERSION` and add an upgrade from version {recorded_version}"
    )]
    ModelMismatch {
        /// The tenant.
        tenant: String,
        /// The record.
        seq: JournalSeq,
        /// The code's `Model::VERSION`.
        model_version: u32,
        /// The version the record was written by.
        recorded_version: u32,
        /// What serde said.
        reason: String,
    },
    /// A tenant was recorded by a newer version of the model than this
    /// code knows.
    #[error(
        "tenant '{tenant}' at seq {seq} was recorded by model version {recorded_version}, \
         newer than this code's version {model_version}: run the newer build"
    )]
    ModelTooNew {
        /// The tenant.
        tenant: String,
        /// The record.
        seq: JournalSeq,
        /// The code's `Model::VERSION`.
        model_version: u32,
        /// The version the record was written by.
        recorded_version: u32,
    },
    /// A record kind this version does not know.
    #[error("unknown record kind '{kind}' for tenant '{tenant}' at seq {seq}")]
    UnknownKind {
        /// The tenant.
        tenant: String,
        /// The record.
        seq: JournalSeq,
        /// The kind found.
        kind: String,
    },
    /// The file was written by a newer version of rewind.
    #[error("journal file {path} has schema version {found}, newer than the {supported} this version knows; upgrade rewind")]
    SchemaTooNew {
        /// The file.
        path: String,
        /// Version in the file.
        found: u32,
        /// Newest version this code knows.
        supported: u32,
    },
    /// A batch's entries do not continue the tenant's sequence.
    #[error("entry seq {seq} for tenant '{tenant}' does not follow {highest}")]
    OutOfSequence {
        /// The tenant.
        tenant: String,
        /// The seq offered.
        seq: JournalSeq,
        /// The highest stored seq.
        highest: JournalSeq,
    },
    /// The journal is open already, by this process or another: a journal
    /// serves one runtime at a time, or the two would interleave their
    /// writes.
    #[error("journal file {path} is already open {}; a journal serves one runtime at a time: stop the other or use another file", holder_text(.holder))]
    AlreadyOpen {
        /// The file.
        path: String,
        /// Who holds it, when it has recorded itself (a holder that has just
        /// taken the lock may not have yet).
        holder: Option<JournalHolder>,
    },
    /// The journal was closed.
    #[error("the journal is closed")]
    Closed,
    /// The journal cannot store anything now (its database is starting,
    /// restarting or unreachable). Nothing of the write was stored; it may
    /// be retried.
    #[error("the journal is unavailable, nothing was stored: {0}")]
    Unavailable(String),
    /// The write was handed to the storage but its answer was lost (a
    /// connection cut while `COMMIT` was under way, an I/O error after the
    /// commit was written) and the journal could not tell afterwards
    /// whether it was stored. The only failure after which the write may
    /// be stored: every other [`JournalError`] of an append means nothing
    /// of it was.
    #[error("the journal cannot tell whether the write was stored: {0}")]
    OutcomeUnknown(String),
    /// A write of a shard's tenant was refused because the writer no longer
    /// owns the shard at the epoch it writes with: another node took the
    /// shard over (its lease expired, say after a pause). Nothing of the
    /// batch is stored; the tenant must be read back by the shard's owner.
    #[error(
        "shard {shard} is no longer owned at epoch {epoch}: the write was refused and \
         nothing of it was stored (another node owns the shard now)"
    )]
    Fenced {
        /// The shard.
        shard: u32,
        /// The epoch the write carried.
        epoch: u64,
    },
}

impl JournalError {
    /// Whether the write may have been stored after all
    /// ([`OutcomeUnknown`](Self::OutcomeUnknown)). Every other error of an
    /// append or image is definite: nothing of it was stored.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, JournalError::OutcomeUnknown(_))
    }
}

fn holder_text(holder: &Option<JournalHolder>) -> String {
    match holder {
        Some(holder) => format!("by {holder}"),
        None => "by another runtime (holder not recorded yet)".to_owned(),
    }
}

/// The process holding a journal open, as it recorded itself: what
/// [`JournalError::AlreadyOpen`] names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalHolder {
    /// Its process id (on its host).
    pub pid: u32,
    /// Its host name, when the platform told it.
    pub host: Option<String>,
    /// When it opened the journal.
    pub since: Timestamp,
}

impl std::fmt::Display for JournalHolder {
    /// `pid 4242 on host 'web-1' since 2026-03-14T14:29:41.907Z`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(host) = &self.host {
            write!(f, " on host '{host}'")?;
        }
        write!(f, " since {}", self.since)
    }
}

/// Resolves when the records handed to the journal are durable (or failed).
pub struct Durable(DurableInner);

enum DurableInner {
    Ready(Option<Result<(), JournalError>>),
    Pending(oneshot::Receiver<Result<(), JournalError>>),
}

impl Durable {
    /// Already durable (or already failed).
    pub fn ready(result: Result<(), JournalError>) -> Self {
        Durable(DurableInner::Ready(Some(result)))
    }

    /// Durable when `receiver` says so; a dropped sender means `Closed`.
    pub fn pending(receiver: oneshot::Receiver<Result<(), JournalError>>) -> Self {
        Durable(DurableInner::Pending(receiver))
    }
}

impl Future for Durable {
    type Output = Result<(), JournalError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            DurableInner::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(JournalError::Closed)))
            }
            DurableInner::Pending(receiver) => Pin::new(receiver)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(JournalError::Closed))),
        }
    }
}

/// Durable storage of tenants' entries and images.
///
/// `append` and `save_image` must not block the caller (they run on actor
/// threads): they queue the work and return a [`Durable`]. Reads are used at
/// recovery and by tools, and may block. A batch given to `append` is atomic:
/// all its entries become durable, or none.
///
/// An append resolves to one of three outcomes: `Ok` (durable), an error
/// that means nothing of the batch was stored, or
/// [`JournalError::OutcomeUnknown`] when the storage took the batch and its
/// answer was lost. An implementation resolves a lost answer itself where
/// it can (reading back whether the batch is there) and answers unknown
/// only when it cannot tell. After any failed append the runtime reads the
/// tenant back from the journal before it writes again.
pub trait Journal: Send + Sync + 'static {
    /// Queues entries (of any tenants) for one atomic append. Each tenant's
    /// entries must continue its sequence (`highest_seq + 1`, ...).
    fn append(&self, entries: Vec<Entry>) -> Durable;

    /// Queues an image for storage.
    fn save_image(&self, image: Image) -> Durable;

    /// Durable once everything queued before it is durable.
    fn flush(&self) -> Durable;

    /// Every tenant with at least one stored entry or image, ordered by id.
    fn tenants(&self) -> Result<Vec<TenantId>, JournalError>;

    /// The tenants that exist: those of [`tenants`](Self::tenants) whose
    /// newest entry is not a `delete`, ordered by id. A runtime lists them
    /// at start without reading them back, so this should be cheap (one
    /// index scan); the default reads each tenant's newest entry.
    fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        let mut live = Vec::new();
        for tenant in self.tenants()? {
            let highest = self.highest_seq(&tenant)?;
            let newest = self.read(&tenant, highest, highest)?;
            let deleted = newest
                .last()
                .is_some_and(|entry| entry.kind == EntryKind::Delete);
            if !deleted {
                live.push(tenant);
            }
        }
        Ok(live)
    }

    /// The tenant's entries with `from <= seq <= to`, in order.
    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError>;

    /// The highest seq ever stored for the tenant (0 if none). Deleting
    /// entries or images never lowers it.
    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError>;

    /// Deletes the tenant's entries with `seq <= to` (after an image covers
    /// them).
    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError>;

    /// Loads one image of the tenant.
    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError>;

    /// Deletes the tenant's image at `seq`.
    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError>;

    /// Records durably that `tenant` has work to resume after a restart (a
    /// guarded deployment in its window), or clears the mark. A runtime
    /// reads the marks at start ([`resume_marks`](Self::resume_marks)) and
    /// reads those tenants back at once, where every other tenant waits
    /// for its first request. May block until the mark is durable.
    ///
    /// The default refuses ([`JournalError::Unsupported`]): with such a
    /// journal a deployment resumes only when its tenant is next read back.
    fn set_resume_mark(&self, tenant: &TenantId, marked: bool) -> Result<(), JournalError> {
        let _ = (tenant, marked);
        Err(JournalError::Unsupported("resume marks"))
    }

    /// The tenants marked by [`set_resume_mark`](Self::set_resume_mark),
    /// ordered by id. The default has none.
    fn resume_marks(&self) -> Result<Vec<TenantId>, JournalError> {
        Ok(Vec::new())
    }
}
