//! Differences between two documents: entries, a summary and the RFC 6902
//! patch that turns one into the other.

use std::fmt;

use imbl::ordmap::DiffItem;
use serde::{Deserialize, Serialize};
use serde_json::Number;

use crate::doc::{Doc, Patch, PatchOp, Pointer};

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
    /// A readable summary in the style of the product guide:
    ///
    /// ```text
    /// sessions: 100 → 150
    /// added_keys: ["beta"]
    /// changed_keys: ["theme"]
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
                .map(|e| e.path.last().unwrap_or("(root)").to_owned())
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
