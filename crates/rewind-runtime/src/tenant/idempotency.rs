//! Idempotency keys: a retry of a keyed write is answered with the revision
//! the first attempt made, and applies nothing.
//!
//! The key travels in the write's [`CommitMeta`](rewind_core::CommitMeta)
//! and is recorded with the revision it makes, so it is in the same journal
//! entry as the change: whatever made the first answer get lost (a cut
//! connection, a crash, a takeover by another node), the key is durable
//! exactly when the change is. The tenant's timeline is therefore the only
//! record of keys; this index is a cache of it, built from the history on
//! the first keyed write an actor sees and dropped whenever the working
//! timeline is replaced (after a failed append).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use rewind_core::{IdempotencyKey, Model, Revision, RevisionInfo, Timeline, Timestamp};

use crate::config::IdempotencyWindow;

/// What a keyed write finds.
pub(crate) enum Seen {
    /// The key is not remembered: the write runs, and records it.
    New,
    /// The same request made this revision: answer it again.
    Replay(RevisionInfo),
    /// The key made a revision for another request.
    Reused,
}

/// The keys of the newest keyed revisions: key to revision, and the keys in
/// the order they were recorded (oldest first) to forget the oldest.
pub(crate) struct KeyIndex {
    by_key: HashMap<Arc<str>, Revision>,
    order: VecDeque<Arc<str>>,
}

impl KeyIndex {
    /// The keys of `timeline`'s retained history within `window`.
    /// Time: O(h) for a history of h revisions (once per actor, on its
    /// first keyed write).
    pub(crate) fn build<M: Model>(
        timeline: &Timeline<M>,
        window: &IdempotencyWindow,
        now: Timestamp,
    ) -> Self {
        let mut index = KeyIndex {
            by_key: HashMap::new(),
            order: VecDeque::new(),
        };
        let mut newest_first = Vec::new();
        for info in timeline.history().rev() {
            if newest_first.len() >= window.keys || too_old(info.at, window, now) {
                break;
            }
            if let Some(key) = &info.meta.idempotency {
                if !index.by_key.contains_key(&key.key) {
                    index.by_key.insert(Arc::clone(&key.key), info.revision);
                    newest_first.push(Arc::clone(&key.key));
                }
            }
        }
        index.order.extend(newest_first.into_iter().rev());
        index
    }

    /// What `key` finds in `timeline`. Time: O(log h).
    pub(crate) fn look_up<M: Model>(
        &self,
        timeline: &Timeline<M>,
        key: &IdempotencyKey,
        window: &IdempotencyWindow,
        now: Timestamp,
    ) -> Seen {
        let Some(revision) = self.by_key.get(&key.key) else {
            return Seen::New;
        };
        // The history is the record: a revision pruned since, or a key
        // past its age, is forgotten.
        match timeline.revision_info(*revision) {
            Some(info) if !too_old(info.at, window, now) => match &info.meta.idempotency {
                Some(recorded) if recorded.key == key.key => {
                    if recorded.request == key.request {
                        Seen::Replay(info.clone())
                    } else {
                        Seen::Reused
                    }
                }
                _ => Seen::New,
            },
            _ => Seen::New,
        }
    }

    /// Remembers that `key` made `revision`, forgetting the oldest key past
    /// the window's count. Time: O(1) amortized.
    pub(crate) fn record(
        &mut self,
        key: &IdempotencyKey,
        revision: Revision,
        window: &IdempotencyWindow,
    ) {
        if self.by_key.insert(Arc::clone(&key.key), revision).is_none() {
            self.order.push_back(Arc::clone(&key.key));
        }
        while self.order.len() > window.keys {
            if let Some(oldest) = self.order.pop_front() {
                self.by_key.remove(&oldest);
            }
        }
    }
}

fn too_old(at: Timestamp, window: &IdempotencyWindow, now: Timestamp) -> bool {
    let age_us = now.as_unix_micros().saturating_sub(at.as_unix_micros());
    u128::try_from(age_us).unwrap_or(0) > window.max_age.as_micros()
}
