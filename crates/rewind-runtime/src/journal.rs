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

/// One journaled record of a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The tenant.
    pub tenant: TenantId,
    /// Position in the tenant's journal, from 1, dense and never reused.
    pub seq: u64,
    /// When the mutation happened (the instant the timeline recorded).
    pub at: Timestamp,
    /// What kind of record this is (`create`, `op`, `delete`): lets a reader
    /// refuse kinds it does not know.
    pub kind: String,
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
    pub seq: u64,
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
    /// A record or image of a tenant does not decode or fails its checksum.
    #[error("corrupt journal data for tenant '{tenant}' at seq {seq}: {reason}")]
    Corrupt {
        /// The tenant.
        tenant: String,
        /// The record.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A record kind this version does not know.
    #[error("unknown record kind '{kind}' for tenant '{tenant}' at seq {seq}")]
    UnknownKind {
        /// The tenant.
        tenant: String,
        /// The record.
        seq: u64,
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
        seq: u64,
        /// The highest stored seq.
        highest: u64,
    },
    /// The journal was closed.
    #[error("the journal is closed")]
    Closed,
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

    /// The tenant's entries with `from <= seq <= to`, in order.
    fn read(&self, tenant: &TenantId, from: u64, to: u64) -> Result<Vec<Entry>, JournalError>;

    /// The highest seq ever stored for the tenant (0 if none). Deleting
    /// entries or images never lowers it.
    fn highest_seq(&self, tenant: &TenantId) -> Result<u64, JournalError>;

    /// Deletes the tenant's entries with `seq <= to` (after an image covers
    /// them).
    fn delete_up_to(&self, tenant: &TenantId, to: u64) -> Result<(), JournalError>;

    /// Loads one image of the tenant.
    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError>;

    /// Deletes the tenant's image at `seq`.
    fn delete_image(&self, tenant: &TenantId, seq: u64) -> Result<(), JournalError>;
}
