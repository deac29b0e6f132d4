//! [`StateDelta`]: what turns a newer document back into an older one.
//!
//! A timeline keeps the states of its cold history (revisions and
//! snapshots that are not recent) as a chain of these reverse deltas
//! against a newer retained state instead of whole trees: a delta holds
//! only the older values of what changed, so history costs what changed.
//!
//! The form is a tree shaped like the documents: at each object where both
//! sides are objects, the members that differ, sorted by key; elsewhere the
//! older value whole ([`Doc`]'s clone shares its subtrees) or "absent".
//! Keys are clones of the documents' own keys.

use serde::{Deserialize, Serialize};

use crate::doc::{member_bytes, Doc, Key, Object};
use imbl::ordmap::DiffItem;

/// A reverse delta between two documents: applied to the newer one, it
/// rebuilds the older one, sharing every untouched subtree with the newer.
///
/// Built by [`StateDelta::between`] in O(changes · depth · log n) (shared
/// subtrees are skipped); applied in O(changes · log n); two consecutive
/// deltas compose in O(changes of both).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateDelta {
    root: Change,
    /// Values set or removed (leaves of `root`).
    changes: usize,
    /// Estimated heap bytes this delta holds.
    bytes: usize,
    /// Estimated heap bytes a tree of the older state holds that the tree
    /// of the newer one does not (the nodes an update copies).
    tree_bytes: usize,
    /// Estimated heap bytes of the older document minus the newer's.
    size_change: isize,
}

/// One node of a delta.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Change {
    /// Equal on both sides (only ever the root of an empty delta).
    Same,
    /// The older value.
    Set(Doc),
    /// Absent in the older document.
    Remove,
    /// Both sides are objects: the members that differ, sorted by key.
    Object(Box<[(Key, Change)]>),
}

/// A delta was applied to a document it was not made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a history delta was applied to a state it was not made from")]
pub struct DeltaMismatch;

impl StateDelta {
    /// The delta that turns `newer` into `older`.
    pub fn between(newer: &Doc, older: &Doc) -> StateDelta {
        let mut delta = StateDelta {
            root: Change::Same,
            changes: 0,
            bytes: 0,
            tree_bytes: 0,
            size_change: 0,
        };
        if let Some(root) = delta.walk(newer, older) {
            delta.root = root;
        }
        delta
    }

    /// Whether both documents were equal.
    pub fn is_empty(&self) -> bool {
        matches!(self.root, Change::Same)
    }

    /// Number of values set or removed.
    pub fn changes(&self) -> usize {
        self.changes
    }

    /// Estimated heap bytes this delta holds. Time: O(1).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Estimated heap bytes a tree of the older document holds beyond the
    /// newer one's (the nodes its changes copied). Time: O(1).
    pub fn tree_bytes(&self) -> usize {
        self.tree_bytes
    }

    /// Estimated heap bytes of the older document minus the newer one's.
    pub fn size_change(&self) -> isize {
        self.size_change
    }

    /// Rebuilds the older document from `newer` (taken by value, so nodes
    /// it owns alone are updated in place). Time: O(changes · log n).
    pub fn apply(&self, newer: Doc) -> Result<Doc, DeltaMismatch> {
        match apply(&self.root, Some(newer))? {
            Some(doc) => Ok(doc),
            None => Err(DeltaMismatch),
        }
    }

    /// Replaces every older value this delta holds that equals the value
    /// at the same path in `reference` by `reference`'s own, so a delta
    /// read back from an image shares structure with the state it is
    /// applied near again. Time: O(changes · log n) plus the comparisons.
    pub fn share_with(&mut self, reference: &Doc) {
        share(&mut self.root, Some(reference));
    }

    /// The delta that does `self` then `older`: `self` turns a document A
    /// into B, `older` turns B into C; the result turns A into C.
    /// Time: O(changes of both).
    pub fn then(self, older: StateDelta) -> Result<StateDelta, DeltaMismatch> {
        let tree_bytes = self.tree_bytes.saturating_add(older.tree_bytes);
        let size_change = self.size_change.saturating_add(older.size_change);
        let root = compose(self.root, older.root)?;
        let (changes, bytes) = measure(&root);
        Ok(StateDelta {
            root,
            changes,
            bytes,
            tree_bytes,
            size_change,
        })
    }

    fn walk(&mut self, newer: &Doc, older: &Doc) -> Option<Change> {
        if newer.ptr_eq(older) {
            return None;
        }
        match (newer, older) {
            (Doc::Object(n), Doc::Object(o)) => {
                let mut members: Vec<(Key, Change)> = Vec::new();
                for item in n.diff(o) {
                    match item {
                        DiffItem::Add(key, value) => {
                            self.grow(member_bytes(key, value), 0);
                            members.push((key.clone(), self.set(value)));
                        }
                        DiffItem::Remove(key, value) => {
                            self.grow(0, member_bytes(key, value));
                            self.changes += 1;
                            members.push((key.clone(), Change::Remove));
                        }
                        DiffItem::Update {
                            old: (key, n),
                            new: (_, o),
                        } => {
                            if let Some(change) = self.walk(n, o) {
                                members.push((key.clone(), change));
                            }
                        }
                    }
                }
                if members.is_empty() {
                    return None;
                }
                self.tree_bytes += crate::doc::update_bytes(o.len(), members.len());
                self.bytes += members.len() * std::mem::size_of::<(Key, Change)>();
                Some(Change::Object(members.into_boxed_slice()))
            }
            _ if newer == older => None,
            _ => {
                self.grow(older.heap_bytes(), newer.heap_bytes());
                Some(self.set(older))
            }
        }
    }

    fn grow(&mut self, older: usize, newer: usize) {
        let by = older as isize - newer as isize;
        self.size_change = self.size_change.saturating_add(by);
    }

    fn set(&mut self, older: &Doc) -> Change {
        self.changes += 1;
        self.bytes += older.heap_bytes();
        Change::Set(older.clone())
    }
}

/// Applies `change` to the value at its path (`None`: absent); `None` back
/// means absent in the older document.
fn apply(change: &Change, newer: Option<Doc>) -> Result<Option<Doc>, DeltaMismatch> {
    match change {
        Change::Same => Ok(newer),
        Change::Set(value) => Ok(Some(value.clone())),
        Change::Remove => Ok(None),
        Change::Object(members) => {
            let Some(Doc::Object(mut map)) = newer else {
                return Err(DeltaMismatch);
            };
            apply_members(&mut map, members)?;
            Ok(Some(Doc::Object(map)))
        }
    }
}

fn apply_members(map: &mut Object, members: &[(Key, Change)]) -> Result<(), DeltaMismatch> {
    for (key, change) in members {
        match change {
            Change::Set(value) => {
                map.insert(key.clone(), value.clone());
            }
            Change::Remove => {
                map.remove(key);
            }
            Change::Object(inner) => match map.get_mut(key) {
                Some(Doc::Object(child)) => apply_members(child, inner)?,
                _ => return Err(DeltaMismatch),
            },
            Change::Same => {}
        }
    }
    Ok(())
}

fn share(change: &mut Change, reference: Option<&Doc>) {
    let Some(reference) = reference else {
        return;
    };
    match change {
        Change::Set(value) => {
            if !value.ptr_eq(reference) && *value == *reference {
                *value = reference.clone();
            }
        }
        Change::Object(members) => {
            let map = reference.as_object();
            for (key, member) in members.iter_mut() {
                share(member, map.and_then(|m| m.get(key)));
            }
        }
        Change::Same | Change::Remove => {}
    }
}

/// `a` then `b`.
fn compose(a: Change, b: Change) -> Result<Change, DeltaMismatch> {
    Ok(match (a, b) {
        (a, Change::Same) => a,
        (Change::Same, b) => b,
        (_, b @ (Change::Set(_) | Change::Remove)) => b,
        (Change::Set(value), Change::Object(members)) => match value {
            Doc::Object(mut map) => {
                apply_members(&mut map, &members)?;
                Change::Set(Doc::Object(map))
            }
            _ => return Err(DeltaMismatch),
        },
        (Change::Remove, Change::Object(_)) => return Err(DeltaMismatch),
        (Change::Object(a), Change::Object(b)) => {
            let mut merged = Vec::with_capacity(a.len().max(b.len()));
            let mut a = a.into_vec().into_iter().peekable();
            let mut b = b.into_vec().into_iter().peekable();
            loop {
                let order = match (a.peek(), b.peek()) {
                    (None, None) => break,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
                };
                match order {
                    std::cmp::Ordering::Less => merged.extend(a.next()),
                    std::cmp::Ordering::Greater => merged.extend(b.next()),
                    std::cmp::Ordering::Equal => {
                        let (key, ca) = a.next().ok_or(DeltaMismatch)?;
                        let (_, cb) = b.next().ok_or(DeltaMismatch)?;
                        merged.push((key, compose(ca, cb)?));
                    }
                }
            }
            Change::Object(merged.into_boxed_slice())
        }
    })
}

/// Changes and estimated bytes of a delta tree.
fn measure(change: &Change) -> (usize, usize) {
    match change {
        Change::Same => (0, 0),
        Change::Set(value) => (1, value.heap_bytes()),
        Change::Remove => (1, 0),
        Change::Object(members) => members.iter().fold(
            (0, members.len() * std::mem::size_of::<(Key, Change)>()),
            |(c, b), (_, m)| {
                let (mc, mb) = measure(m);
                (c + mc, b + mb)
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: serde_json::Value) -> Doc {
        Doc::from_json(&value).unwrap()
    }

    #[test]
    fn a_delta_rebuilds_the_older_document() {
        let older = doc(json!({"a": 1, "b": {"x": [1, 2], "y": "s"}, "gone": true}));
        let newer = doc(json!({"a": 2, "b": {"x": [1, 3], "y": "s", "z": null}, "c": {}}));
        let delta = StateDelta::between(&newer, &older);
        assert_eq!(delta.changes(), 5);
        assert_eq!(delta.apply(newer.clone()).unwrap(), older);
        assert!(StateDelta::between(&newer, &newer.clone()).is_empty());
        let same = StateDelta::between(&newer, &newer);
        assert_eq!(same.apply(newer.clone()).unwrap(), newer);
    }

    #[test]
    fn composed_deltas_rebuild_the_oldest() {
        let states = [
            json!({"a": 1, "b": {"x": 1}}),
            json!({"a": 2, "b": {"x": 1, "y": 2}}),
            json!({"a": 2, "b": 7}),
            json!({"b": {"x": 5}, "c": [1]}),
            json!({"a": 2, "b": {"x": 1}}),
        ]
        .map(doc);
        for oldest in 0..states.len() {
            for newest in oldest + 1..states.len() {
                let mut delta: Option<StateDelta> = None;
                for i in (oldest..newest).rev() {
                    let step = StateDelta::between(&states[i + 1], &states[i]);
                    delta = Some(match delta {
                        None => step,
                        Some(d) => d.then(step).unwrap(),
                    });
                }
                let delta = delta.unwrap();
                assert_eq!(
                    delta.apply(states[newest].clone()).unwrap(),
                    states[oldest],
                    "{oldest} from {newest}"
                );
            }
        }
    }

    #[test]
    fn a_delta_on_the_wrong_document_is_a_mismatch() {
        let delta = StateDelta::between(&doc(json!({"a": {"x": 2}})), &doc(json!({"a": {"x": 1}})));
        assert_eq!(delta.apply(doc(json!({"a": 3}))), Err(DeltaMismatch));
        assert_eq!(delta.apply(doc(json!([1]))), Err(DeltaMismatch));
    }

    #[test]
    fn a_delta_round_trips_through_json() {
        let delta = StateDelta::between(
            &doc(json!({"a": {"x": 2}, "b": 1})),
            &doc(json!({"a": {"x": 1}})),
        );
        let text = serde_json::to_string(&delta).unwrap();
        let back: StateDelta = serde_json::from_str(&text).unwrap();
        assert_eq!(back, delta);
    }
}
