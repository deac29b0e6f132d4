//! [`States`]: the states a timeline retains, hot ones as trees and cold
//! ones as deltas.
//!
//! One entry per retained revision (in the window, or pinned by a snapshot
//! or checkpoint), ordered by revision. The newest is the head, held apart
//! (reading it is a field access) and always whole. Every older entry holds
//! the delta between the next newer entry's state and its own (the values
//! of what changed, on both sides), made when the next newer one was
//! pushed. An entry in the hot set keeps its tree as well; demoting it drops
//! the tree and keeps the delta, in O(log n).
//!
//! Reading a cold entry walks both ways at once to the nearest entry held
//! whole or cached, and applies the deltas on the way back: backward from a
//! newer state, forward from an older one. `k` deltas of `c` changes each
//! cost O(k · c · log n), whatever the state's size. The last few rebuilds
//! are cached, so reading history in order costs a delta or two per read.
//!
//! Removing an entry (it left the window and nothing pins it) composes its
//! delta into its older neighbour's, so the chain stays exact.
//!
//! A model without deltas ([`Model::history_delta`] returns `None`) keeps
//! every entry as a tree, as before.

use std::sync::{Arc, Mutex};

use imbl::OrdMap;

use crate::delta::{DeltaMismatch, StateDelta};
use crate::id::Revision;
use crate::model::Model;

#[derive(Clone, Debug)]
struct Stored<M> {
    tree: Option<M>,
    /// Turns the next newer entry's state into this one's; `None` for the
    /// head, and for a model without deltas (which keeps `tree`).
    delta: Option<Arc<StateDelta>>,
    /// This state's identity, unique in the process: kept when the delta
    /// is recomposed (the state is the same), new for every state pushed,
    /// so the same revision number on another branch never shares it.
    id: StateId,
}

/// A state's identity for the rebuild cache.
type StateId = u64;

fn new_state_id() -> StateId {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl<M> Stored<M> {
    /// Estimated bytes this entry holds beyond the next newer one.
    fn cost(&self) -> usize {
        self.delta.as_ref().map_or(0, |d| {
            d.bytes()
                + if self.tree.is_some() {
                    d.tree_bytes()
                } else {
                    0
                }
        })
    }
}

/// The retained states of one timeline. `clone` is O(1).
#[derive(Clone, Debug)]
pub(super) struct States<M> {
    head_revision: Revision,
    head: M,
    head_id: StateId,
    /// Every other held revision.
    entries: OrdMap<Revision, Stored<M>>,
    /// Estimated heap bytes of the head state.
    head_bytes: usize,
    /// Estimated bytes the older entries hold (their deltas, and the nodes
    /// their trees do not share with a newer one).
    history_bytes: usize,
    /// Recent rebuilds of cold states, newest first, keyed by the state's
    /// identity (`Stored::id`): the same revision number on another branch
    /// (after a journal failure rewound the timeline) is another state and
    /// never matches. Shared by the timeline's clones; readers only
    /// `try_lock` it and skip it when busy, so a read never waits.
    cache: Arc<Mutex<Vec<CacheEntry<M>>>>,
    cache_size: usize,
}

impl<M: Model> States<M> {
    pub(super) fn new(revision: Revision, state: M, cache_size: usize) -> Self {
        let head_bytes = state.heap_bytes();
        States {
            head_revision: revision,
            head: state,
            head_id: new_state_id(),
            entries: OrdMap::new(),
            head_bytes,
            history_bytes: 0,
            cache: Arc::new(Mutex::new(Vec::new())),
            cache_size,
        }
    }

    /// The head's state. Time: O(1).
    pub(super) fn head(&self) -> &M {
        &self.head
    }

    pub(super) fn head_bytes(&self) -> usize {
        self.head_bytes
    }

    pub(super) fn history_bytes(&self) -> usize {
        self.history_bytes
    }

    /// Estimated bytes of the head no older tree shares: what changed
    /// since the nearest older entry still held whole (all of it if none).
    pub(super) fn unique_bytes(&self) -> usize {
        let mut changed = 0usize;
        // Bounded: a long run of cold entries means little is shared.
        for (_, entry) in self.entries.iter().rev().take(64) {
            changed = changed.saturating_add(entry.delta.as_ref().map_or(0, |d| d.tree_bytes()));
            if entry.tree.is_some() {
                return changed.min(self.head_bytes);
            }
        }
        self.head_bytes
    }

    pub(super) fn contains(&self, revision: Revision) -> bool {
        revision == self.head_revision || self.entries.contains_key(&revision)
    }

    /// Whether `revision` is held as a tree.
    pub(super) fn is_whole(&self, revision: Revision) -> bool {
        revision == self.head_revision
            || self
                .entries
                .get(&revision)
                .is_some_and(|e| e.tree.is_some())
    }

    /// Revisions held, oldest first.
    pub(super) fn revisions(&self) -> impl Iterator<Item = Revision> + '_ {
        self.entries
            .keys()
            .copied()
            .chain(std::iter::once(self.head_revision))
    }

    /// The chain as it is held: the head's revision and state, then every
    /// older revision with the delta from the one before, newest first.
    /// `None` for a model without deltas.
    pub(super) fn chain(&self) -> Option<Chain<M>> {
        let mut back = Vec::with_capacity(self.entries.len());
        for (revision, entry) in self.entries.iter().rev() {
            back.push((*revision, StateDelta::clone(entry.delta.as_deref()?)));
        }
        Some((self.head_revision, self.head.clone(), back))
    }

    /// Rebuilds what [`chain`](Self::chain) gave, every state whole (the
    /// timeline then demotes the cold ones). Time: the size of the deltas.
    pub(super) fn from_chain(
        head_revision: Revision,
        head: M,
        back: impl IntoIterator<Item = (Revision, StateDelta)>,
        cache_size: usize,
    ) -> Result<Self, DeltaMismatch> {
        let mut states = States::new(head_revision, head, cache_size);
        let mut newer = (head_revision, states.head().clone());
        for (revision, mut delta) in back {
            // Values equal to the head's are the head's again, as they
            // were before the image was written.
            states.head().share_history_delta(&mut delta);
            if revision >= newer.0 {
                return Err(DeltaMismatch);
            }
            let state = newer.1.apply_history_delta(&delta)?;
            let entry = Stored {
                tree: Some(state.clone()),
                delta: Some(Arc::new(delta)),
                id: new_state_id(),
            };
            states.history_bytes += entry.cost();
            states.entries.insert(revision, entry);
            newer = (revision, state);
        }
        Ok(states)
    }

    /// Appends a new head; the old head keeps its tree and gains the delta
    /// back from the new one. Time: one diff of what changed.
    pub(super) fn push(&mut self, revision: Revision, state: M) {
        let delta = state.history_delta(&self.head);
        self.push_with(revision, state, delta, true);
    }

    /// [`push`](Self::push) with the delta back to the old head already
    /// made (`None`: keep the old head whole, for a model without deltas).
    ///
    /// `keep_whole`: whether the old head stays in the hot set; if not, and
    /// it has a delta, it goes in cold at once.
    pub(super) fn push_with(
        &mut self,
        revision: Revision,
        state: M,
        delta: Option<StateDelta>,
        keep_whole: bool,
    ) {
        debug_assert!(revision > self.head_revision);
        self.head_bytes = match &delta {
            Some(d) => self.head_bytes.saturating_add_signed(-d.size_change()),
            None => state.heap_bytes(),
        };
        let old_tree = std::mem::replace(&mut self.head, state);
        let cold = !keep_whole && delta.is_some();
        let old = Stored {
            tree: (!cold).then(|| old_tree.clone()),
            delta: delta.map(Arc::new),
            id: std::mem::replace(&mut self.head_id, new_state_id()),
        };
        self.history_bytes += old.cost();
        let old_revision = std::mem::replace(&mut self.head_revision, revision);
        self.entries.insert(old_revision, old);
        // A cold old head's nodes that the new head does not share are
        // freed here.
        drop(old_tree);
    }

    /// Drops the tree of an older entry that has a delta. Time: O(log n).
    pub(super) fn demote(&mut self, revision: Revision) {
        if revision == self.head_revision {
            return;
        }
        let Some(entry) = self.entries.get_mut(&revision) else {
            return;
        };
        if entry.tree.is_none() || entry.delta.is_none() {
            return;
        }
        let before = entry.cost();
        let tree = entry.tree.take();
        let after = entry.cost();
        self.history_bytes = self.history_bytes - before + after;
        // The tree is freed here, after the entry is settled.
        drop(tree);
    }

    /// Keeps `revision`'s state whole again (rebuilding it if cold).
    pub(super) fn promote(&mut self, revision: Revision) -> Result<(), DeltaMismatch> {
        if self.is_whole(revision) || !self.contains(revision) {
            return Ok(());
        }
        let state = self.get(revision)?;
        let mut entry = self.entries.get(&revision).cloned().expect("checked");
        let before = entry.cost();
        entry.tree = Some(state);
        self.history_bytes = self.history_bytes - before + entry.cost();
        self.entries.insert(revision, entry);
        Ok(())
    }

    /// Forgets an older entry; its older neighbour's delta absorbs its own.
    /// Time: O(changes of both deltas).
    pub(super) fn remove(&mut self, revision: Revision) -> Result<(), DeltaMismatch> {
        if revision == self.head_revision {
            return Ok(());
        }
        let older = self
            .entries
            .range(..revision)
            .next_back()
            .map(|(r, e)| (*r, e.delta.clone()));
        let Some((older_revision, Some(older_delta))) = older else {
            // The oldest entry (or an older one without a delta, which
            // does not depend on it): nothing to compose.
            if let Some(gone) = self.entries.remove(&revision) {
                self.history_bytes -= gone.cost();
            }
            return Ok(());
        };
        let Some(gone) = self.entries.get(&revision) else {
            return Ok(());
        };
        let gone_cost = gone.cost();
        let composed = match &gone.delta {
            Some(d) => unwrap_arc(Arc::clone(d)).then(unwrap_arc(older_delta)),
            None => Err(DeltaMismatch),
        };
        // Cannot fail for deltas this chain made; if it did, the older
        // state is kept whole rather than lost (rebuilt while the chain
        // still holds `revision`).
        let fallback = match composed {
            Ok(_) => None,
            Err(_) => Some(self.get(older_revision)?),
        };
        if let Some(older) = self.entries.get_mut(&older_revision) {
            let before = older.cost();
            match (composed, fallback) {
                (Ok(delta), _) => older.delta = Some(Arc::new(delta)),
                (Err(_), tree) => {
                    older.tree = tree;
                    older.delta = None;
                }
            }
            let after = older.cost();
            self.history_bytes = self.history_bytes - before + after;
        }
        self.history_bytes -= gone_cost;
        self.entries.remove(&revision);
        Ok(())
    }

    /// The state of a held revision: O(1) for a tree or a cached rebuild,
    /// else rebuilt from the nearest whole or cached state, newer (its
    /// deltas applied back) or older (applied forward): `k` deltas of `c`
    /// changes each, O(k · c · log n).
    pub(super) fn get(&self, revision: Revision) -> Result<M, DeltaMismatch> {
        if revision == self.head_revision {
            return Ok(self.head.clone());
        }
        let entry = self.entries.get(&revision).ok_or(DeltaMismatch)?;
        if let Some(tree) = &entry.tree {
            return Ok(tree.clone());
        }
        let own = entry.delta.as_ref().ok_or(DeltaMismatch)?;
        if let Some(hit) = self.cached(entry.id) {
            return Ok(hit);
        }
        let cached: Vec<StateId> = self
            .cache
            .try_lock()
            .map(|c| c.iter().map(|(id, _)| *id).collect())
            .unwrap_or_default();
        // Walk both ways at once, one entry each, to the nearest whole or
        // cached state: up (each delta then applied back) or down (each
        // delta from there to the one below this applied forward). The
        // head closes the way up.
        let mut up_path = vec![(entry.id, own)];
        let mut down_path = Vec::new();
        let mut ups = self.entries.range(revision..).skip(1);
        let mut downs = self.entries.range(..revision).rev();
        let (mut up_open, mut down_open) = (true, true);
        let found = loop {
            if up_open {
                match ups.next() {
                    None => break Found::Up(self.head.clone()),
                    Some((_, e)) => {
                        if let Some(tree) = &e.tree {
                            break Found::Up(tree.clone());
                        }
                        match e.delta.as_ref() {
                            Some(delta) => {
                                // (Another reader may have evicted it: walk on.)
                                let hit = cached.contains(&e.id).then(|| self.cached(e.id));
                                if let Some(hit) = hit.flatten() {
                                    break Found::Up(hit);
                                }
                                up_path.push((e.id, delta));
                            }
                            None => up_open = false,
                        }
                    }
                }
            }
            if down_open {
                match downs.next() {
                    Some((_, e)) if e.delta.is_some() => {
                        let delta = e.delta.as_ref().ok_or(DeltaMismatch)?;
                        down_path.push(delta);
                        if let Some(tree) = &e.tree {
                            break Found::Down(tree.clone());
                        }
                        let hit = cached.contains(&e.id).then(|| self.cached(e.id));
                        if let Some(hit) = hit.flatten() {
                            break Found::Down(hit);
                        }
                    }
                    _ => down_open = false,
                }
            }
            if !up_open && !down_open {
                return Err(DeltaMismatch);
            }
        };
        let state = match found {
            Found::Down(mut state) => {
                for delta in down_path.into_iter().rev() {
                    state = state.apply_history_delta_forward(delta)?;
                }
                state
            }
            Found::Up(mut state) => {
                // On the way down, also remember the states 1, 2, 4...
                // entries above the one read, with half the cache (the
                // other half keeps what a sweep read last).
                let below = 1usize << (self.cache_size / 2).min(16);
                for (steps_left, (id, delta)) in up_path.into_iter().enumerate().rev() {
                    state = state.apply_history_delta(delta)?;
                    if steps_left > 0 && steps_left < below && steps_left.is_power_of_two() {
                        self.remember(id, &state);
                    }
                }
                state
            }
        };
        self.remember(entry.id, &state);
        Ok(state)
    }

    /// A cached rebuild of the state `id`, made the most recent on a hit.
    fn cached(&self, id: StateId) -> Option<M> {
        let mut cache = self.cache.try_lock().ok()?;
        let at = cache.iter().position(|(i, _)| *i == id)?;
        let hit = cache.remove(at);
        let state = hit.1.clone();
        cache.insert(0, hit);
        Some(state)
    }

    fn remember(&self, id: StateId, state: &M) {
        if self.cache_size == 0 {
            return;
        }
        if let Ok(mut cache) = self.cache.try_lock() {
            cache.retain(|(i, _)| *i != id);
            cache.insert(0, (id, state.clone()));
            cache.truncate(self.cache_size);
        }
    }
}

/// A cached rebuild: the state's identity and the state.
type CacheEntry<M> = (StateId, M);

/// A head and the deltas back from it, newest first.
pub(super) type Chain<M> = (Revision, M, Vec<(Revision, StateDelta)>);

/// Where a rebuild starts: a state above the one read, or below it.
enum Found<M> {
    Up(M),
    Down(M),
}

fn unwrap_arc(delta: Arc<StateDelta>) -> StateDelta {
    Arc::try_unwrap(delta).unwrap_or_else(|shared| (*shared).clone())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::{Doc, Patch, Revision, StateRef, SystemClock, Timeline, TimelineConfig};

    fn set(n: i64) -> Patch {
        Patch::from_json(&json!([{"op": "replace", "path": "/n", "value": n}])).unwrap()
    }

    /// After a journal failure the tenant actor goes back to its last
    /// durable timeline and numbers the next revisions again. Its clones
    /// share the rebuild cache, so a state rebuilt on the abandoned branch
    /// must never answer for the same revision number on the new one.
    #[test]
    fn a_rebuild_cached_on_one_branch_is_not_read_on_another() {
        let config = TimelineConfig {
            hot_revisions: 0,
            ..TimelineConfig::default()
        };
        let initial = Doc::from_json(&json!({"n": 0})).unwrap();
        let mut durable = Timeline::new(initial, config, Arc::new(SystemClock)).unwrap();
        let mut abandoned = durable.clone();
        abandoned.apply(&set(1)).unwrap();
        abandoned.apply(&set(2)).unwrap();
        let one = StateRef::Revision(Revision(1));
        assert!(!abandoned.is_hot_state(Revision(1)));
        assert_eq!(abandoned.state_at(&one).unwrap()["n"], 1);

        durable.apply(&set(10)).unwrap();
        durable.apply(&set(20)).unwrap();
        assert!(!durable.is_hot_state(Revision(1)));
        assert_eq!(durable.state_at(&one).unwrap()["n"], 10);
        // And the abandoned branch still reads its own.
        assert_eq!(abandoned.state_at(&one).unwrap()["n"], 1);
    }
}
