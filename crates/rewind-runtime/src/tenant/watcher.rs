//! [`Watcher`]: a tenant's new revisions as they are published, then why
//! they stopped coming.
//!
//! The tenant's commit pipeline sends each published revision on one
//! broadcast channel; the supervisor sends one last message, the
//! [`WatchEnd`], once the tenant is deleted (after it drained what it had
//! accepted), failed for good, or shut down. Nothing else is shared: a
//! watcher holds only its receiver, so it keeps nothing of the tenant
//! alive.

use rewind_core::RevisionInfo;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

/// What travels on a tenant's watch channel.
#[derive(Clone, Debug)]
pub(crate) enum Published {
    /// A revision, once published.
    Revision(RevisionInfo),
    /// The last message: no revision follows.
    End(WatchEnd),
}

/// Why a tenant's revisions stopped coming: the last thing a [`Watcher`]
/// says, for ever after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WatchEnd {
    /// The tenant was deleted. A tenant created later under the same id is
    /// another tenant: its revisions start again at 0, so a client must
    /// re-read it rather than resume.
    Deleted,
    /// The tenant failed more often than its restart intensity allows, or
    /// could not be recovered from its journal: it serves nothing more
    /// (its requests answer why).
    Failed,
    /// The runtime shut down (or was dropped).
    ShutDown,
}

impl std::fmt::Display for WatchEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WatchEnd::Deleted => "the tenant was deleted",
            WatchEnd::Failed => "the tenant failed and serves no more",
            WatchEnd::ShutDown => "the runtime shut down",
        })
    }
}

/// Why [`Watcher::recv`] gave no revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The watcher fell more than 1024 revisions behind and missed this
    /// many (the oldest ones); it goes on with the oldest still buffered.
    /// Read the missed ones from the tenant's history.
    #[error("the watcher fell behind and missed {0} revisions")]
    Lagged(u64),
    /// No revision will come again, and why.
    #[error("the watch ended: {0}")]
    Ended(WatchEnd),
}

/// Every revision a tenant publishes after [`Tenant::watch`] was called,
/// in order, then why the tenant's revisions stopped
/// ([`WatchError::Ended`]).
///
/// [`Tenant::watch`]: crate::Tenant::watch
#[derive(Debug)]
pub struct Watcher {
    events: broadcast::Receiver<Published>,
    /// Set by the end message, or at subscription for a tenant already
    /// ended (it will send no end message this receiver would see).
    ended: Option<WatchEnd>,
}

impl Watcher {
    pub(crate) fn new(events: broadcast::Receiver<Published>, ended: Option<WatchEnd>) -> Self {
        Watcher { events, ended }
    }

    /// The next revision, waiting for it. `Err(Ended(why))` once the
    /// tenant is deleted, failed or shut down — every revision it published
    /// before came first — and on every call after. Cancel safe: nothing
    /// is lost when the future is dropped (in a `select!`, say).
    pub async fn recv(&mut self) -> Result<RevisionInfo, WatchError> {
        if let Some(end) = self.ended {
            return Err(WatchError::Ended(end));
        }
        let received = self.events.recv().await;
        self.take(received)
    }

    /// The next revision if one is waiting (`Ok(None)` if not), without
    /// waiting; errors as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Option<RevisionInfo>, WatchError> {
        if let Some(end) = self.ended {
            return Err(WatchError::Ended(end));
        }
        let received = match self.events.try_recv() {
            Ok(published) => Ok(published),
            Err(TryRecvError::Empty) => return Ok(None),
            Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        };
        self.take(received).map(Some)
    }

    /// Why the watch ended, once [`recv`](Self::recv) or
    /// [`try_recv`](Self::try_recv) said it did (or the tenant had ended
    /// when the watcher was made).
    pub fn ended(&self) -> Option<WatchEnd> {
        self.ended
    }

    fn take(&mut self, received: Result<Published, RecvError>) -> Result<RevisionInfo, WatchError> {
        let end = match received {
            Ok(Published::Revision(info)) => return Ok(info),
            Err(RecvError::Lagged(missed)) => return Err(WatchError::Lagged(missed)),
            Ok(Published::End(end)) => end,
            // The sender went without a word: the runtime was dropped.
            Err(RecvError::Closed) => WatchEnd::ShutDown,
        };
        self.ended = Some(end);
        Err(WatchError::Ended(end))
    }
}
