//! Forks: a timeline whose revision 0 is another tenant's state at some
//! reference, and the promotion of a fork's head back to its parent.
//!
//! The core knows a fork by its [`ForkInfo`] (kept in the fork's timeline
//! with its base state, so a merge works after revision 0 has left the
//! history window) and a parent by its [`ForkRecord`]s. The three-way
//! [`merge`] that a `merge` promotion makes is pure and lives here too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diff::Diff;
use crate::doc::{Doc, Patch, Pointer};
use crate::error::InvalidInput;
use crate::id::{Incarnation, Revision};
use crate::model::Model;
use crate::name::TenantId;
use crate::time::Timestamp;

/// Where a fork came from: its parent, which creation of it (a later
/// tenant of the same name is not the parent), and the parent's revision
/// its revision 0 holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForkInfo {
    /// The tenant forked.
    pub parent: TenantId,
    /// The parent's revision whose state is the fork's revision 0.
    pub base_revision: Revision,
    /// The parent's incarnation when the fork was made. `None` in forks
    /// recorded before incarnations were, and in forks of a parent that
    /// has none: the runtime then takes the parent's own record of the
    /// fork as the proof of the link (see `Tenant::fork_status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_incarnation: Option<Incarnation>,
}

impl ForkInfo {
    /// A fork of `parent` (incarnation `parent_incarnation`) at
    /// `base_revision`.
    pub fn new(
        parent: TenantId,
        base_revision: Revision,
        parent_incarnation: Option<Incarnation>,
    ) -> Self {
        ForkInfo {
            parent,
            base_revision,
            parent_incarnation,
        }
    }
}

/// A fork as its parent records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkRecord {
    /// The fork's tenant id.
    pub fork: TenantId,
    /// The fork's incarnation (`None` in records made before incarnations
    /// were): a later tenant of the fork's name is not this fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_incarnation: Option<Incarnation>,
    /// The parent's revision the fork started from.
    pub base_revision: Revision,
    /// When the parent recorded it.
    pub created_at: Timestamp,
}

/// How a promotion writes a fork's head to its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromoteStrategy {
    /// The parent becomes exactly the fork's head.
    Replace,
    /// The fork's changes since its base are applied onto the parent's
    /// head; paths both changed are a conflict and nothing is written.
    Merge,
}

impl PromoteStrategy {
    /// The label: `replace` or `merge`.
    pub fn as_str(self) -> &'static str {
        match self {
            PromoteStrategy::Replace => "replace",
            PromoteStrategy::Merge => "merge",
        }
    }
}

impl fmt::Display for PromoteStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a promotion writes on the parent, as its journal stores it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", bound = "")]
pub enum Promotion<M: Model> {
    /// The whole new state (the fork's head).
    Replace {
        /// The state.
        state: M,
    },
    /// The merged changes, applied to the parent's head.
    Merge {
        /// From the parent's head to the merged state.
        patch: Patch,
    },
}

impl<M: Model> Promotion<M> {
    /// The strategy this promotion follows.
    pub fn strategy(&self) -> PromoteStrategy {
        match self {
            Promotion::Replace { .. } => PromoteStrategy::Replace,
            Promotion::Merge { .. } => PromoteStrategy::Merge,
        }
    }
}

/// A `merge` promotion refused: the fork and the parent both changed these
/// paths since the fork's base.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the fork and its parent both changed {}", show_paths(.paths))]
pub struct MergeConflict {
    /// The fork's changed paths that overlap a change of the parent (equal,
    /// inside or around it), in the fork's patch order.
    pub paths: Vec<Pointer>,
}

fn show_paths(paths: &[Pointer]) -> String {
    let shown: Vec<String> = paths.iter().take(10).map(|p| format!("'{p}'")).collect();
    match paths.len() {
        n if n > 10 => format!("{} and {} more", shown.join(", "), n - 10),
        _ => shown.join(", "),
    }
}

/// Why a three-way [`merge`] made no patch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError {
    /// Overlapping changes.
    #[error(transparent)]
    Conflict(#[from] MergeConflict),
    /// A state has no document form to diff.
    #[error(transparent)]
    Input(#[from] InvalidInput),
}

/// The patch that applies the changes from `base` to `theirs` onto `ours`:
/// a three-way merge by paths.
///
/// Conflict rule: a path `theirs` changed conflicts with a path `ours`
/// changed when they are equal or one contains the other. Inside an array
/// both sides are compared at the array itself (an insertion or removal
/// shifts every later index, so element paths do not identify values). The
/// patch is checked to apply to `ours`; if it does not (it should not
/// happen once paths are disjoint), the paths it fails on are reported as
/// a conflict.
///
/// Cost: two structural diffs, so it follows the number of changes for
/// [`Doc`] (shared subtrees are skipped), plus O(a · b) path comparisons for
/// `a` and `b` changed paths.
pub fn merge<M: Model>(base: &M, ours: &M, theirs: &M) -> Result<Patch, MergeError> {
    let base_doc = base.to_doc()?;
    let ours_doc = ours.to_doc()?;
    let theirs_doc = theirs.to_doc()?;
    let fork_changes = Diff::between(&base_doc, &theirs_doc);
    let parent_changes = Diff::between(&base_doc, &ours_doc);
    let parent_paths: Vec<Pointer> = parent_changes
        .entries
        .iter()
        .map(|e| conflict_key(&base_doc, &e.path))
        .collect();
    let mut conflicts: Vec<Pointer> = Vec::new();
    for entry in &fork_changes.entries {
        let key = conflict_key(&base_doc, &entry.path);
        let overlaps = parent_paths
            .iter()
            .any(|p| *p == key || p.is_proper_prefix_of(&key) || key.is_proper_prefix_of(p));
        if overlaps && !conflicts.contains(&entry.path) {
            conflicts.push(entry.path.clone());
        }
    }
    if !conflicts.is_empty() {
        return Err(MergeConflict { paths: conflicts }.into());
    }
    let patch = fork_changes.patch;
    if let Err(e) = ours_doc.apply_patch_unlimited(&patch) {
        let path =
            e.op.and_then(|i| patch.ops().get(i))
                .map_or_else(Pointer::root, |op| op.path().clone());
        return Err(MergeConflict { paths: vec![path] }.into());
    }
    Ok(patch)
}

/// The path a change is compared at: `path`, cut at the first array of
/// `base` it enters.
fn conflict_key(base: &Doc, path: &Pointer) -> Pointer {
    let mut at = base;
    let mut key = Pointer::root();
    for token in path.tokens() {
        match at {
            Doc::Array(_) => return key,
            Doc::Object(members) => match members.get(token.as_str()) {
                Some(child) => at = child,
                // Below here nothing exists in the base: no array to cut at.
                None => return path.clone(),
            },
            _ => return path.clone(),
        }
        key.push(token.clone());
    }
    key
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: serde_json::Value) -> Doc {
        Doc::from_json(&value).unwrap()
    }

    #[test]
    fn disjoint_changes_merge() {
        let base = doc(json!({"a": 1, "b": {"x": 1}, "c": [1, 2]}));
        let ours = doc(json!({"a": 2, "b": {"x": 1}, "c": [1, 2]}));
        let theirs = doc(json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": true}));
        let patch = merge(&base, &ours, &theirs).unwrap();
        let merged = ours.apply_patch(&patch).unwrap();
        assert_eq!(
            merged.to_json(),
            json!({"a": 2, "b": {"x": 1, "y": 2}, "c": [1, 2], "d": true})
        );
    }

    #[test]
    fn overlapping_paths_conflict() {
        let base = doc(json!({"a": {"x": 1}, "b": 1}));
        // Same path.
        let ours = doc(json!({"a": {"x": 2}, "b": 1}));
        let theirs = doc(json!({"a": {"x": 3}, "b": 2}));
        let conflict = merge(&base, &ours, &theirs).unwrap_err();
        let MergeError::Conflict(conflict) = conflict else {
            panic!("{conflict}")
        };
        assert_eq!(conflict.paths, vec![Pointer::parse("/a/x").unwrap()]);
        // A parent path around the fork's.
        let ours = doc(json!({"b": 1}));
        let MergeError::Conflict(conflict) = merge(&base, &ours, &theirs).unwrap_err() else {
            panic!()
        };
        assert_eq!(conflict.paths, vec![Pointer::parse("/a/x").unwrap()]);
    }

    #[test]
    fn arrays_compare_whole() {
        let base = doc(json!({"list": [1, 2, 3]}));
        let ours = doc(json!({"list": [1, 2, 3, 4]}));
        let theirs = doc(json!({"list": [1, 2]}));
        let MergeError::Conflict(conflict) = merge(&base, &ours, &theirs).unwrap_err() else {
            panic!()
        };
        assert_eq!(conflict.paths, vec![Pointer::parse("/list/2").unwrap()]);
    }

    /// A fork keeps its base after revision 0 leaves the window, and its
    /// image carries the base, the fork info and the parent's records.
    #[test]
    fn a_fork_keeps_its_base_through_the_window_and_its_image() {
        use std::sync::Arc;

        use crate::timeline::{Cause, CommitMeta, Timeline, TimelineConfig};
        use crate::{ManualClock, Patch, TenantId};

        let config = TimelineConfig {
            history_limit: 2,
            ..TimelineConfig::default()
        };
        let clock = Arc::new(ManualClock::new(Timestamp::EPOCH));
        let base = doc(json!({"a": 1, "b": {"deep": [1, 2, 3]}}));
        let info = ForkInfo::new(
            TenantId::new("shop").unwrap(),
            Revision(7),
            Some(Incarnation::from_u128(42)),
        );
        let mut fork = Timeline::new_fork(
            base.clone(),
            config,
            clock.clone(),
            CommitMeta::default(),
            info.clone(),
        )
        .unwrap();
        assert_eq!(
            fork.head_info().cause,
            Cause::Fork {
                parent: info.parent.clone(),
                base_revision: Revision(7)
            }
        );
        for n in 2..5 {
            let patch = Patch::from_json(&json!([{"op": "replace", "path": "/a", "value": n}]));
            fork.apply(&patch.unwrap()).unwrap();
        }
        assert!(fork.oldest_revision() > Revision::ZERO);
        assert!(fork.fork_base().unwrap().ptr_eq(&base));
        fork.set_incarnation(Incarnation::from_u128(7));
        fork.record_fork(
            TenantId::new("shop.b.c").unwrap(),
            Revision(3),
            Some(Incarnation::from_u128(9)),
        );
        let image = serde_json::to_string(&fork.to_image().unwrap()).unwrap();
        let back: Timeline<Doc> =
            Timeline::from_image(serde_json::from_str(&image).unwrap(), clock).unwrap();
        assert_eq!(back.fork_info(), Some(&info));
        assert_eq!(back.incarnation(), Some(Incarnation::from_u128(7)));
        assert_eq!(
            back.forks()[0].fork_incarnation,
            Some(Incarnation::from_u128(9))
        );
        assert_eq!(back.fork_base().unwrap(), &base);
        assert_eq!(back.forks(), fork.forks());
        assert_eq!(back.head(), fork.head());
        let merged = back.merge_patch(back.fork_base().unwrap(), &base).unwrap();
        assert!(merged.ops().is_empty());
    }
}
