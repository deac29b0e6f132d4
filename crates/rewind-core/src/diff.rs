//! Differences between two documents: entries, a summary and the RFC 6902
//! patch that turns one into the other.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::doc::{DiffItem, Doc, Patch, PatchOp, Pointer};

/// What happened at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The path exists only in the newer document.
    Added,
    /// The path exists only in the older document.
    Removed,
    /// The path exists in both with different values.
    Changed,
}

impl ChangeKind {
    /// The label: `added`, `removed` or `changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// Where.
    pub path: Pointer,
    /// What happened.
    pub kind: ChangeKind,
    /// The older value (absent for `added`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Doc>,
    /// The newer value (absent for `removed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Doc>,
}

/// Counts of entries by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    /// Paths added.
    pub added: usize,
    /// Paths removed.
    pub removed: usize,
    /// Paths changed.
    pub changed: usize,
}

/// The differences from document `a` to document `b`.
///
/// Invariant: `a.apply_patch(&diff.patch) == b`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    /// Summary counts.
    pub summary: DiffSummary,
    /// Every difference, in patch order.
    #[serde(rename = "changes")]
    pub entries: Vec<DiffEntry>,
    /// The RFC 6902 patch that turns `a` into `b`.
    pub patch: Patch,
}

impl Diff {
    /// Diffs two documents structurally. Subtrees shared by both (the same
    /// `Arc`) are skipped without being visited, so the cost follows the
    /// number of changes, not the size: O(changes · depth · log n) for
    /// objects. Arrays are compared index by index (O(length) pointer
    /// comparisons); a removal or insertion in the middle of an array shows as
    /// changes from that index on.
    pub fn between(a: &Doc, b: &Doc) -> Diff {
        let mut diff = Diff::default();
        diff.walk(&mut Pointer::root(), a, b);
        diff
    }

    /// Whether the two documents are equal.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changed numbers with their values before and after, as in
    /// "sessions: 100 → 150".
    pub fn numeric_changes(&self) -> impl Iterator<Item = (&Pointer, &Number, &Number)> {
        self.entries.iter().filter_map(|e| match (&e.old, &e.new) {
            (Some(Doc::Number(old)), Some(Doc::Number(new))) => Some((&e.path, old, new)),
            _ => None,
        })
    }

    /// The entries of one kind.
    pub fn of_kind(&self, kind: ChangeKind) -> impl Iterator<Item = &DiffEntry> {
        self.entries.iter().filter(move |e| e.kind == kind)
    }

    fn walk(&mut self, path: &mut Pointer, a: &Doc, b: &Doc) {
        if a.ptr_eq(b) {
            return;
        }
        match (a, b) {
            (Doc::Object(old), Doc::Object(new)) => {
                for item in old.diff(new) {
                    match item {
                        DiffItem::Add(key, value) => {
                            path.push(&**key);
                            self.added(path, value);
                            path.pop();
                        }
                        DiffItem::Remove(key, value) => {
                            path.push(&**key);
                            self.removed(path, value);
                            path.pop();
                        }
                        DiffItem::Update {
                            old: (key, old),
                            new: (_, new),
                        } => {
                            path.push(&**key);
                            self.walk(path, old, new);
                            path.pop();
                        }
                    }
                }
            }
            (Doc::Array(old), Doc::Array(new)) => {
                let common = old.len().min(new.len());
                for (i, (x, y)) in old.iter().zip(new.iter()).enumerate() {
                    if !x.ptr_eq(y) {
                        path.push(i.to_string());
                        self.walk(path, x, y);
                        path.pop();
                    }
                }
                // Remove from the end so every index stays valid while applying.
                for i in (common..old.len()).rev() {
                    path.push(i.to_string());
                    self.removed(path, &old[i]);
                    path.pop();
                }
                for (i, value) in new.iter().enumerate().skip(common) {
                    path.push(i.to_string());
                    self.added(path, value);
                    path.pop();
                }
            }
            _ if a == b => {}
            _ => {
                self.summary.changed += 1;
                self.patch.push(PatchOp::Replace {
                    path: path.clone(),
                    value: b.clone(),
                });
                self.entries.push(DiffEntry {
                    path: path.clone(),
                    kind: ChangeKind::Changed,
                    old: Some(a.clone()),
                    new: Some(b.clone()),
                });
            }
        }
    }

    fn added(&mut self, path: &Pointer, value: &Doc) {
        self.summary.added += 1;
        self.patch.push(PatchOp::Add {
            path: path.clone(),
            value: value.clone(),
        });
        self.entries.push(DiffEntry {
            path: path.clone(),
            kind: ChangeKind::Added,
            old: None,
            new: Some(value.clone()),
        });
    }

    fn removed(&mut self, path: &Pointer, value: &Doc) {
        self.summary.removed += 1;
        self.patch.push(PatchOp::Remove { path: path.clone() });
        self.entries.push(DiffEntry {
            path: path.clone(),
            kind: ChangeKind::Removed,
            old: Some(value.clone()),
            new: None,
        });
    }
}

impl fmt::Display for Diff {
    /// A readable summary in the style of the product guide; every change
    /// names its path from the root, dotted:
    ///
    /// ```text
    /// sessions: 100 → 150
    /// added_keys: ["beta"]
    /// changed_keys: ["features.new_checkout", "theme"]
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(f, "no changes");
        }
        for (path, old, new) in self.numeric_changes() {
            writeln!(f, "{}: {old} → {new}", display_path(path))?;
        }
        let keys = |kind: ChangeKind| -> Vec<String> {
            self.of_kind(kind)
                .filter(|e| !(kind == ChangeKind::Changed && is_numeric_change(e)))
                .map(|e| display_path(&e.path))
                .collect()
        };
        for (label, kind) in [
            ("added_keys", ChangeKind::Added),
            ("removed_keys", ChangeKind::Removed),
            ("changed_keys", ChangeKind::Changed),
        ] {
            let list = keys(kind);
            if !list.is_empty() {
                writeln!(f, "{label}: {list:?}")?;
            }
        }
        Ok(())
    }
}

fn is_numeric_change(entry: &DiffEntry) -> bool {
    matches!(
        (&entry.old, &entry.new),
        (Some(Doc::Number(_)), Some(Doc::Number(_)))
    )
}

fn display_path(path: &Pointer) -> String {
    if path.is_root() {
        "(root)".to_owned()
    } else {
        path.tokens().join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::CONTAINER_COMPARISONS;
    use serde_json::{json, Value};

    fn doc(value: Value) -> Doc {
        Doc::from_json(&value).unwrap()
    }

    fn replace(doc: &Doc, path: &str, value: Value) -> Doc {
        let patch = Patch::from_json(&json!([{"op": "replace", "path": path, "value": value}]));
        doc.apply_patch(&patch.unwrap()).unwrap()
    }

    /// The diff and the number of container pairs `Doc`'s equality compared
    /// while computing it.
    fn counted_diff(a: &Doc, b: &Doc) -> (Diff, usize) {
        CONTAINER_COMPARISONS.with(|c| c.set(0));
        let diff = Diff::between(a, b);
        (diff, CONTAINER_COMPARISONS.with(|c| c.get()))
    }

    /// The same document rebuilt from JSON: equal, but sharing nothing.
    fn unshared(doc: &Doc) -> Doc {
        Doc::from_json(&doc.to_json()).unwrap()
    }

    fn paths(diff: &Diff) -> Vec<(String, ChangeKind)> {
        diff.entries
            .iter()
            .map(|e| (e.path.to_string(), e.kind))
            .collect()
    }

    /// The story: with several flags, `changed_keys: ["enabled"]` did not
    /// say which flag changed; numbers kept their path, nothing else did.
    #[test]
    fn the_summary_names_every_change_by_its_path_from_the_root() {
        let a = doc(json!({
            "flags": {"new_checkout": {"enabled": false, "rollout_pct": 0}, "dark_mode": {"enabled": true}},
            "legacy": {"banner": "x"},
            "version": "1.9.5"
        }));
        let b = doc(json!({
            "flags": {"new_checkout": {"enabled": true, "rollout_pct": 25, "owner": "web"}, "dark_mode": {"enabled": true}},
            "legacy": {},
            "version": "2.0.0"
        }));
        assert_eq!(
            Diff::between(&a, &b).to_string(),
            "flags.new_checkout.rollout_pct: 0 → 25\n\
             added_keys: [\"flags.new_checkout.owner\"]\n\
             removed_keys: [\"legacy.banner\"]\n\
             changed_keys: [\"flags.new_checkout.enabled\", \"version\"]\n"
        );
    }

    #[test]
    fn one_change_in_100_000_keys_compares_few_values() {
        // Each value is a small array so that comparing it is counted.
        let a: Doc = (0..100_000)
            .map(|i| (format!("key_{i:06}"), Doc::from_json(&json!([i])).unwrap()))
            .collect();
        let b = replace(&a, "/key_050000/0", json!("changed"));

        let (diff, shared_cost) = counted_diff(&a, &b);
        assert_eq!(
            paths(&diff),
            [("/key_050000/0".into(), ChangeKind::Changed)]
        );
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);
        assert!(
            shared_cost < 200,
            "{shared_cost} comparisons for one change in 100k keys"
        );

        // Without sharing every value has to be compared.
        let (same, unshared_cost) = counted_diff(&unshared(&a), &b);
        assert_eq!(same, diff);
        assert!(unshared_cost >= 99_999, "{unshared_cost}");
    }

    #[test]
    fn one_leaf_changed_in_1000_objects_of_100_keys_skips_the_rest() {
        let a: Doc = (0..1000)
            .map(|i| {
                let inner: Doc = (0..100)
                    .map(|j| (format!("leaf_{j:03}"), format!("value_{i}_{j}")))
                    .collect();
                (format!("obj_{i:04}"), inner)
            })
            .collect();
        let b = replace(&a, "/obj_0500/leaf_050", json!("NEW!"));
        let leaves: usize = a
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_object().unwrap().len())
            .sum();
        assert_eq!(leaves, 100_000);

        let (diff, shared_cost) = counted_diff(&a, &b);
        assert_eq!(diff.entries.len(), 1);
        assert_eq!(
            paths(&diff),
            [("/obj_0500/leaf_050".into(), ChangeKind::Changed)]
        );
        assert_eq!(diff.entries[0].old, Some(Doc::from("value_500_50")));
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);
        assert!(shared_cost < 200, "{shared_cost} comparisons");

        let (same, unshared_cost) = counted_diff(&unshared(&a), &b);
        assert_eq!(same, diff);
        assert!(unshared_cost >= 999, "{unshared_cost}");
        assert!(unshared_cost > 10 * shared_cost.max(1));
    }

    #[test]
    fn identical_and_shared_documents_diff_without_comparing() {
        let a = doc(json!({"a": {"b": [1, 2, {"c": 3}]}, "d": "e"}));
        let (diff, cost) = counted_diff(&a, &a.clone());
        assert!(diff.is_empty());
        assert_eq!(cost, 0);
        let (diff, _) = counted_diff(&a, &unshared(&a));
        assert!(diff.is_empty());
    }

    #[test]
    fn array_append() {
        let a = doc(json!({"list": [1, 2]}));
        let b = doc(json!({"list": [1, 2, 3, {"x": 4}]}));
        let diff = Diff::between(&a, &b);
        assert_eq!(
            paths(&diff),
            [
                ("/list/2".into(), ChangeKind::Added),
                ("/list/3".into(), ChangeKind::Added)
            ]
        );
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);
        assert_eq!(
            diff.summary,
            DiffSummary {
                added: 2,
                removed: 0,
                changed: 0
            }
        );
    }

    #[test]
    fn array_truncate_removes_from_the_end() {
        let a = doc(json!([1, 2, 3, 4, 5]));
        let b = doc(json!([1, 2]));
        let diff = Diff::between(&a, &b);
        assert_eq!(
            paths(&diff),
            [
                ("/4".into(), ChangeKind::Removed),
                ("/3".into(), ChangeKind::Removed),
                ("/2".into(), ChangeKind::Removed)
            ]
        );
        assert_eq!(diff.entries[0].old, Some(Doc::from(5)));
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);
        let emptied = Diff::between(&a, &doc(json!([])));
        assert_eq!(a.apply_patch(&emptied.patch).unwrap(), doc(json!([])));
        assert_eq!(emptied.summary.removed, 5);
    }

    #[test]
    fn array_change_in_the_middle() {
        let a = doc(json!({"items": [{"id": 1}, {"id": 2, "tags": ["x"]}, {"id": 3}]}));
        let b = replace(&a, "/items/1/tags/0", json!("y"));
        let diff = Diff::between(&a, &b);
        assert_eq!(
            paths(&diff),
            [("/items/1/tags/0".into(), ChangeKind::Changed)]
        );
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);

        // An insertion in the middle shows as changes from that index on,
        // plus an append; the patch still produces `b`.
        let c = doc(json!({"items": [{"id": 1}, {"id": 9}, {"id": 2, "tags": ["x"]}, {"id": 3}]}));
        let diff = Diff::between(&a, &c);
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), c);
        let touched = paths(&diff);
        assert!(
            touched.iter().all(|(p, _)| !p.starts_with("/items/0")),
            "{touched:?}"
        );
        assert_eq!(
            touched.last(),
            Some(&("/items/3".into(), ChangeKind::Added))
        );
        let back = Diff::between(&c, &a);
        assert_eq!(c.apply_patch(&back.patch).unwrap(), a);
    }

    #[test]
    fn type_changes_replace_the_whole_value() {
        let a = doc(json!({"v": [1, 2], "w": {"x": 1}, "n": 1}));
        let b = doc(json!({"v": {"0": 1}, "w": "x", "n": 1.0}));
        let diff = Diff::between(&a, &b);
        assert_eq!(
            paths(&diff),
            [
                ("/v".into(), ChangeKind::Changed),
                ("/w".into(), ChangeKind::Changed)
            ]
        );
        assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);
        let root = Diff::between(&doc(json!([1])), &doc(json!("x")));
        assert_eq!(paths(&root), [(String::new(), ChangeKind::Changed)]);
    }
}
