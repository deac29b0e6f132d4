//! [`StateDelta`]: what changed between two documents, applicable both
//! ways.
//!
//! A timeline keeps the states of its cold history (revisions and
//! snapshots that are not recent) as a chain of these deltas against a
//! newer retained state instead of whole trees: a delta holds only the
//! values of what changed, so history costs what changed.
//!
//! The form is a tree shaped like the documents: at each object where both
//! sides are objects, the members that differ, sorted by key; elsewhere the
//! value on each side whole ([`Doc`]'s clone shares its subtrees), or
//! "absent". Keys are clones of the documents' own keys.

use serde::{Deserialize, Serialize};

use crate::doc::{
    member_bytes, update_bytes_of, DiffItem, Doc, Key, Object, Patch, PatchOp, Pointer,
};

/// A delta between two documents: applied back to the newer one it
/// rebuilds the older one, applied forward to the older one it rebuilds the
/// newer, sharing every untouched subtree with the one it starts from.
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
    /// The value on each side (`None`: absent there). Both are kept so a
    /// delta can be applied either way: back from the newer state, or
    /// forward from the older one.
    Value {
        older: Option<Doc>,
        newer: Option<Doc>,
    },
    /// Both sides are objects: the members that differ, sorted by key.
    Object(Box<[(Key, Change)]>),
}

/// A delta was applied to a document it was not made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a history delta was applied to a state it was not made from")]
pub struct DeltaMismatch;

impl StateDelta {
    /// No change: both documents equal.
    fn empty() -> StateDelta {
        StateDelta {
            root: Change::Same,
            changes: 0,
            bytes: 0,
            tree_bytes: 0,
            size_change: 0,
        }
    }

    /// The delta that turns `newer` into `older`.
    pub fn between(newer: &Doc, older: &Doc) -> StateDelta {
        let mut delta = StateDelta::empty();
        if let Some(root) = delta.walk(newer, older) {
            delta.root = root;
        }
        delta
    }

    /// The delta back from `newer`, which is `patch` applied to `older`,
    /// made from the paths the patch touches instead of a diff: one lookup
    /// per operation. A path is cut at the first array or absent member
    /// on its way (that whole value is restored), and a path inside
    /// another is covered by it. Equal to [`between`](Self::between) in
    /// effect: applied to `newer`, it rebuilds `older`.
    pub fn of_patch(older: &Doc, patch: &Patch, newer: &Doc) -> StateDelta {
        if let [op] = patch.ops() {
            if let Some(delta) = Self::of_member_op(older, op) {
                return delta;
            }
        }
        let paths = patch.ops().iter().flat_map(|op| {
            let (first, second) = match op {
                PatchOp::Add { path, .. }
                | PatchOp::Remove { path }
                | PatchOp::Replace { path, .. }
                | PatchOp::Copy { path, .. } => (Some(path), None),
                PatchOp::Move { from, path } => (Some(from), Some(path)),
                PatchOp::Test { .. } => (None, None),
            };
            [first, second].into_iter().flatten()
        });
        Self::of_paths(older, paths, newer)
    }

    /// The delta between `newer` and `older` from `diff`, the diff from
    /// `older` to `newer`: its entries carry both values, so when they are
    /// all members of the top object (the common case) no lookup is made;
    /// otherwise as [`of_paths`](Self::of_paths) on its paths.
    pub fn of_diff(older: &Doc, diff: &crate::Diff, newer: &Doc) -> StateDelta {
        let flat = matches!((older, newer), (Doc::Object(_), Doc::Object(_)))
            && diff.entries.iter().all(|e| e.path.tokens().len() == 1);
        if !flat {
            return Self::of_paths(older, diff.entries.iter().map(|e| &e.path), newer);
        }
        let mut delta = StateDelta::empty();
        // Entries are in key order, one per member.
        let mut members: Vec<(Key, Change)> = Vec::with_capacity(diff.entries.len());
        for entry in &diff.entries {
            let key = Key::from(entry.path.tokens()[0].as_str());
            let (o, n) = (entry.old.as_ref(), entry.new.as_ref());
            match (o, n) {
                (Some(o), Some(n)) => delta.grow(o.heap_bytes(), n.heap_bytes()),
                (Some(o), None) => delta.grow(member_bytes(&key, o), 0),
                (None, Some(n)) => delta.grow(0, member_bytes(&key, n)),
                (None, None) => continue,
            }
            let change = delta.value(o, n);
            members.push((key, change));
        }
        if let (false, Doc::Object(o)) = (members.is_empty(), older) {
            delta.tree_bytes += update_bytes_of(o.len(), members.len());
            delta.bytes += members.len() * std::mem::size_of::<(Key, Change)>();
            delta.root = Change::Object(members.into_boxed_slice());
        }
        delta
    }

    /// The delta between `newer` and `older`, given every path where they
    /// may differ (each cut as in [`of_patch`](Self::of_patch)): from a
    /// patch's operations, or from a [`Diff`](crate::Diff)'s entries, so no
    /// second diff is made. Time: O(paths · depth · log n).
    pub fn of_paths<'p>(
        older: &Doc,
        paths: impl IntoIterator<Item = &'p Pointer>,
        newer: &Doc,
    ) -> StateDelta {
        let mut touched: Vec<Vec<Key>> = paths
            .into_iter()
            .map(|path| cut(older, path.tokens()))
            .collect();
        if touched.len() > 1 {
            touched.sort();
            touched.dedup();
            // A path inside another is covered by it (sorted: it follows).
            let mut kept = 0;
            for i in 0..touched.len() {
                if kept == 0 || !touched[i].starts_with(&touched[kept - 1]) {
                    touched.swap(kept, i);
                    kept += 1;
                }
            }
            touched.truncate(kept);
        }
        let paths: Vec<&[Key]> = touched.iter().map(Vec::as_slice).collect();
        let mut delta = StateDelta::empty();
        if let Some(root) = delta.build(&paths, Some(older), Some(newer)) {
            delta.root = root;
        }
        delta
    }

    /// The common case of one `add`, `replace` or `remove` of an object
    /// member reached through objects only: the older value is found on
    /// the way down (one lookup per level) and the newer is the
    /// operation's own value. `None` for anything else.
    fn of_member_op(older: &Doc, op: &PatchOp) -> Option<StateDelta> {
        let (path, value) = match op {
            PatchOp::Add { path, value } | PatchOp::Replace { path, value } => (path, Some(value)),
            PatchOp::Remove { path } => (path, None),
            _ => return None,
        };
        let (last, parents) = path.tokens().split_last()?;
        // Walk down, keeping each object and the key taken.
        let mut levels: Vec<(&Object, Key)> = Vec::with_capacity(parents.len() + 1);
        let mut node = older;
        for token in parents {
            let Doc::Object(map) = node else {
                return None;
            };
            let (key, child) = map.get_key_value(token.as_str())?;
            levels.push((map, key.clone()));
            node = child;
        }
        let Doc::Object(map) = node else {
            return None;
        };
        let old = map.get_key_value(last.as_str());
        let key = old.map_or_else(|| Key::from(last.as_str()), |(k, _)| k.clone());
        let mut delta = StateDelta::empty();
        let leaf = match (old.map(|(_, v)| v), value) {
            (Some(o), Some(n)) if o.ptr_eq(n) || o == n => return Some(delta),
            (Some(o), Some(n)) => {
                delta.grow(o.heap_bytes(), n.heap_bytes());
                delta.value(Some(o), Some(n))
            }
            (Some(o), None) => {
                delta.grow(member_bytes(&key, o), 0);
                delta.value(Some(o), None)
            }
            (None, Some(n)) => {
                delta.grow(0, member_bytes(&key, n));
                delta.value(None, Some(n))
            }
            // Removing an absent member fails: the patch did not apply.
            (None, None) => return None,
        };
        levels.push((map, key));
        let mut change = leaf;
        for (map, key) in levels.into_iter().rev() {
            delta.tree_bytes += update_bytes_of(map.len(), 1);
            delta.bytes += std::mem::size_of::<(Key, Change)>();
            change = Change::Object(Box::new([(key, change)]));
        }
        delta.root = change;
        Some(delta)
    }

    /// The change for `paths` (sorted, none inside another, all below the
    /// current value), given the values here in both documents.
    fn build(
        &mut self,
        paths: &[&[Key]],
        older: Option<&Doc>,
        newer: Option<&Doc>,
    ) -> Option<Change> {
        if paths.first()?.is_empty() {
            return self.leaf(older, newer);
        }
        let (Some(Doc::Object(o)), Some(Doc::Object(n))) = (older, newer) else {
            // Cut paths only go on through objects on both sides; restore
            // the whole value otherwise.
            return self.leaf(older, newer);
        };
        let mut members: Vec<(Key, Change)> = Vec::new();
        let mut rest = paths;
        while let Some(first) = rest.first() {
            let key = &first[0];
            let end = rest.iter().position(|p| &p[0] != key).unwrap_or(rest.len());
            let (ov, nv) = (o.get(key.as_ref()), n.get(key.as_ref()));
            let change = match (ov, nv) {
                // A member added or removed: its slot and key count too.
                (None, Some(nv)) => {
                    self.grow(0, member_bytes(key, nv));
                    Some(self.value(None, Some(nv)))
                }
                (Some(ov), None) => {
                    self.grow(member_bytes(key, ov), 0);
                    Some(self.value(Some(ov), None))
                }
                (None, None) => None,
                (Some(_), Some(_)) if end == 1 && first.len() == 1 => self.leaf(ov, nv),
                (Some(_), Some(_)) => {
                    let below: Vec<&[Key]> = rest[..end].iter().map(|p| &p[1..]).collect();
                    self.build(&below, ov, nv)
                }
            };
            if let Some(change) = change {
                members.push((key.clone(), change));
            }
            rest = &rest[end..];
        }
        if members.is_empty() {
            return None;
        }
        self.tree_bytes += update_bytes_of(o.len(), members.len());
        self.bytes += members.len() * std::mem::size_of::<(Key, Change)>();
        Some(Change::Object(members.into_boxed_slice()))
    }

    /// Restores `older` (absent: removed) where `newer` is now.
    fn leaf(&mut self, older: Option<&Doc>, newer: Option<&Doc>) -> Option<Change> {
        match (older, newer) {
            (Some(o), Some(n)) if o.ptr_eq(n) || o == n => None,
            (None, None) => None,
            (Some(o), n) => {
                self.grow(o.heap_bytes(), n.map_or(0, Doc::heap_bytes));
                Some(self.value(Some(o), n))
            }
            (None, Some(n)) => {
                self.grow(0, n.heap_bytes());
                Some(self.value(None, Some(n)))
            }
        }
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
        match apply(&self.root, Some(newer), Way::Back)? {
            Some(doc) => Ok(doc),
            None => Err(DeltaMismatch),
        }
    }

    /// Rebuilds the newer document from `older`: the delta applied the
    /// other way. Time: O(changes · log n).
    pub fn apply_forward(&self, older: Doc) -> Result<Doc, DeltaMismatch> {
        match apply(&self.root, Some(older), Way::Forward)? {
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
                            members.push((key.clone(), self.value(Some(value), None)));
                        }
                        DiffItem::Remove(key, value) => {
                            self.grow(0, member_bytes(key, value));
                            members.push((key.clone(), self.value(None, Some(value))));
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
                self.tree_bytes += update_bytes_of(o.len(), members.len());
                self.bytes += members.len() * std::mem::size_of::<(Key, Change)>();
                Some(Change::Object(members.into_boxed_slice()))
            }
            _ if newer == older => None,
            _ => {
                self.grow(older.heap_bytes(), newer.heap_bytes());
                Some(self.value(Some(older), Some(newer)))
            }
        }
    }

    fn grow(&mut self, older: usize, newer: usize) {
        let by = older as isize - newer as isize;
        self.size_change = self.size_change.saturating_add(by);
    }

    fn value(&mut self, older: Option<&Doc>, newer: Option<&Doc>) -> Change {
        self.changes += 1;
        self.bytes += older.map_or(0, Doc::heap_bytes) + newer.map_or(0, Doc::heap_bytes);
        Change::Value {
            older: older.cloned(),
            newer: newer.cloned(),
        }
    }
}

/// The prefix of `tokens` whose older value is restored whole: cut at the
/// first array or scalar (that value), or at the first absent member.
fn cut(older: &Doc, tokens: &[String]) -> Vec<Key> {
    let mut path = Vec::with_capacity(tokens.len());
    let mut node = older;
    for token in tokens {
        let Doc::Object(map) = node else {
            break;
        };
        match map.get_key_value(token.as_str()) {
            Some((key, child)) => {
                path.push(key.clone());
                node = child;
            }
            None => {
                path.push(Key::from(token.as_str()));
                break;
            }
        }
    }
    path
}

/// Which way a delta is applied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the newer document to the older.
    Back,
    /// From the older document to the newer.
    Forward,
}

/// The value a leaf leaves, applied `way`.
fn side(older: &Option<Doc>, newer: &Option<Doc>, way: Way) -> Option<Doc> {
    match way {
        Way::Back => older.clone(),
        Way::Forward => newer.clone(),
    }
}

/// Applies `change` to the value at its path (`None`: absent); `None` back
/// means absent on the other side.
fn apply(change: &Change, value: Option<Doc>, way: Way) -> Result<Option<Doc>, DeltaMismatch> {
    match change {
        Change::Same => Ok(value),
        Change::Value { older, newer } => Ok(side(older, newer, way)),
        Change::Object(members) => {
            let Some(Doc::Object(mut map)) = value else {
                return Err(DeltaMismatch);
            };
            apply_members(&mut map, members, way)?;
            Ok(Some(Doc::Object(map)))
        }
    }
}

fn apply_members(
    map: &mut Object,
    members: &[(Key, Change)],
    way: Way,
) -> Result<(), DeltaMismatch> {
    for (key, change) in members {
        match change {
            Change::Value { older, newer } => match side(older, newer, way) {
                Some(value) => {
                    map.insert(key.clone(), value);
                }
                None => {
                    map.remove(key);
                }
            },
            Change::Object(inner) => match map.get_mut(key) {
                Some(Doc::Object(child)) => apply_members(child, inner, way)?,
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
        Change::Value { older, newer } => {
            for value in [older, newer].into_iter().flatten() {
                if !value.ptr_eq(reference) && *value == *reference {
                    *value = reference.clone();
                }
            }
        }
        Change::Object(members) => {
            let map = reference.as_object();
            for (key, member) in members.iter_mut() {
                share(member, map.and_then(|m| m.get(key)));
            }
        }
        Change::Same => {}
    }
}

/// A leaf, or nothing when both sides are equal (so a composed delta
/// holds exactly what a diff of its two ends would).
fn leaf(older: Option<Doc>, newer: Option<Doc>) -> Change {
    match (&older, &newer) {
        (None, None) => Change::Same,
        (Some(o), Some(n)) if o.ptr_eq(n) || o == n => Change::Same,
        _ => Change::Value { older, newer },
    }
}

/// `a` then `b`: `a` turns A into B (back), `b` turns B into C.
fn compose(a: Change, b: Change) -> Result<Change, DeltaMismatch> {
    Ok(match (a, b) {
        (a, Change::Same) => a,
        (Change::Same, b) => b,
        (Change::Value { newer, .. }, Change::Value { older, .. }) => leaf(older, newer),
        (
            Change::Value {
                older: middle,
                newer,
            },
            Change::Object(members),
        ) => {
            // `b` changes inside the middle value, an object.
            let older = apply(&Change::Object(members), middle, Way::Back)?;
            leaf(older, newer)
        }
        (
            Change::Object(members),
            Change::Value {
                older,
                newer: middle,
            },
        ) => {
            // The newest value is `a` applied forward to the middle one.
            let newer = apply(&Change::Object(members), middle, Way::Forward)?;
            leaf(older, newer)
        }
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
                let (key, change) = match order {
                    std::cmp::Ordering::Less => a.next().ok_or(DeltaMismatch)?,
                    std::cmp::Ordering::Greater => b.next().ok_or(DeltaMismatch)?,
                    std::cmp::Ordering::Equal => {
                        let (key, ca) = a.next().ok_or(DeltaMismatch)?;
                        let (_, cb) = b.next().ok_or(DeltaMismatch)?;
                        (key, compose(ca, cb)?)
                    }
                };
                if !matches!(change, Change::Same) {
                    merged.push((key, change));
                }
            }
            if merged.is_empty() {
                Change::Same
            } else {
                Change::Object(merged.into_boxed_slice())
            }
        }
    })
}

/// Changes and estimated bytes of a delta tree.
fn measure(change: &Change) -> (usize, usize) {
    match change {
        Change::Same => (0, 0),
        Change::Value { older, newer } => (
            1,
            older.as_ref().map_or(0, Doc::heap_bytes) + newer.as_ref().map_or(0, Doc::heap_bytes),
        ),
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
        assert_eq!(delta.apply_forward(older.clone()).unwrap(), newer);
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
                assert_eq!(
                    delta.apply_forward(states[oldest].clone()).unwrap(),
                    states[newest],
                    "{newest} from {oldest}"
                );
                // Composed, it holds no more than a diff of its two ends.
                let direct = StateDelta::between(&states[newest], &states[oldest]);
                assert!(
                    delta.changes() <= direct.changes().max(1),
                    "{oldest}..{newest}"
                );
                assert_eq!(delta.is_empty(), direct.is_empty(), "{oldest}..{newest}");
            }
        }
    }

    #[test]
    fn a_delta_from_a_patch_rebuilds_the_older_document() {
        let older = doc(json!({
            "a": 1, "b": {"x": [1, 2, {"y": 3}], "y": "s"}, "c": {"d": {"e": 5}}, "s": 7
        }));
        let patches = [
            json!([{"op": "replace", "path": "/a", "value": 2}]),
            json!([{"op": "add", "path": "/new", "value": {"k": 1}}, {"op": "add", "path": "/new/j", "value": 2}]),
            json!([{"op": "add", "path": "/tmp", "value": 1}, {"op": "remove", "path": "/tmp"}]),
            json!([{"op": "replace", "path": "/b/x/2/y", "value": 4}]),
            json!([{"op": "add", "path": "/b/x/-", "value": 9}, {"op": "remove", "path": "/b/y"}]),
            json!([{"op": "move", "from": "/c/d", "path": "/moved"}]),
            json!([{"op": "copy", "from": "/c", "path": "/b/c"}, {"op": "replace", "path": "/c/d/e", "value": 6}]),
            json!([{"op": "replace", "path": "/s", "value": {"now": "an object"}}, {"op": "add", "path": "/s/more", "value": 1}]),
            json!([{"op": "replace", "path": "/a", "value": 1}, {"op": "test", "path": "/s", "value": 7}]),
            json!([{"op": "replace", "path": "", "value": [1, 2]}]),
            json!([{"op": "remove", "path": "/c/d/e"}]),
            json!([{"op": "add", "path": "/c/z", "value": {"q": [1]}}]),
            json!([{"op": "replace", "path": "/c/d/e", "value": 5}]),
            json!([{"op": "add", "path": "/b/y", "value": "t"}]),
        ];
        for patch in patches {
            let patch = Patch::from_json(&patch).unwrap();
            let newer = older.apply_patch_unlimited(&patch).unwrap();
            let delta = StateDelta::of_patch(&older, &patch, &newer);
            assert_eq!(delta.apply(newer.clone()).unwrap(), older, "{patch:?}");
            assert_eq!(
                delta.apply_forward(older.clone()).unwrap(),
                newer,
                "{patch:?}"
            );
            let diff = crate::Diff::between(&older, &newer);
            let of_diff =
                StateDelta::of_paths(&older, diff.entries.iter().map(|e| &e.path), &newer);
            assert_eq!(of_diff.apply(newer.clone()).unwrap(), older, "{patch:?}");
            assert_eq!(
                of_diff.apply_forward(older.clone()).unwrap(),
                newer,
                "{patch:?}"
            );
            let diffed = StateDelta::between(&newer, &older);
            assert_eq!(delta.changes(), diffed.changes(), "{patch:?}");
            assert_eq!(delta.size_change(), diffed.size_change(), "{patch:?}");
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
