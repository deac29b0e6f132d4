//! RFC 6902 JSON Patch over [`Doc`].

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::pointer::{parse_index, Pointer};
use super::{Doc, DEFAULT_MAX_DEPTH};
use crate::error::{PatchError, PatchErrorKind};

/// One RFC 6902 operation.
#[derive(Clone, Debug, PartialEq)]
pub enum PatchOp {
    /// Adds `value` at `path` (inserting into arrays, setting object members).
    Add {
        /// Where to add.
        path: Pointer,
        /// What to add.
        value: Doc,
    },
    /// Removes the value at `path`, which must exist.
    Remove {
        /// What to remove.
        path: Pointer,
    },
    /// Replaces the value at `path`, which must exist.
    Replace {
        /// What to replace.
        path: Pointer,
        /// The new value.
        value: Doc,
    },
    /// Removes the value at `from` and adds it at `path`.
    Move {
        /// Source location.
        from: Pointer,
        /// Destination.
        path: Pointer,
    },
    /// Adds a copy of the value at `from` at `path`.
    Copy {
        /// Source location.
        from: Pointer,
        /// Destination.
        path: Pointer,
    },
    /// Fails unless the value at `path` equals `value`.
    Test {
        /// Location to check.
        path: Pointer,
        /// Expected value.
        value: Doc,
    },
}

impl PatchOp {
    /// The operation's name as in RFC 6902 (`add`, `remove`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            PatchOp::Add { .. } => "add",
            PatchOp::Remove { .. } => "remove",
            PatchOp::Replace { .. } => "replace",
            PatchOp::Move { .. } => "move",
            PatchOp::Copy { .. } => "copy",
            PatchOp::Test { .. } => "test",
        }
    }

    /// The target location.
    pub fn path(&self) -> &Pointer {
        match self {
            PatchOp::Add { path, .. }
            | PatchOp::Remove { path }
            | PatchOp::Replace { path, .. }
            | PatchOp::Move { path, .. }
            | PatchOp::Copy { path, .. }
            | PatchOp::Test { path, .. } => path,
        }
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("op".into(), self.name().into());
        match self {
            PatchOp::Move { from, .. } | PatchOp::Copy { from, .. } => {
                out.insert("from".into(), from.to_string().into());
            }
            _ => {}
        }
        out.insert("path".into(), self.path().to_string().into());
        match self {
            PatchOp::Add { value, .. }
            | PatchOp::Replace { value, .. }
            | PatchOp::Test { value, .. } => {
                out.insert("value".into(), value.to_json());
            }
            _ => {}
        }
        Value::Object(out)
    }

    fn from_json(value: &Value, max_depth: usize) -> Result<PatchOp, PatchErrorKind> {
        let malformed = |text: &str| PatchErrorKind::Malformed(text.to_owned());
        let Value::Object(op) = value else {
            return Err(malformed("an operation must be a JSON object"));
        };
        let pointer = |member: &str| -> Result<Pointer, PatchErrorKind> {
            match op.get(member) {
                None => Err(PatchErrorKind::Malformed(format!(
                    "missing '{member}' member"
                ))),
                Some(Value::String(text)) => {
                    Pointer::parse(text).map_err(|e| PatchErrorKind::InvalidPointer {
                        pointer: e.pointer,
                        reason: e.reason,
                    })
                }
                Some(_) => Err(PatchErrorKind::Malformed(format!(
                    "'{member}' must be a string holding a JSON Pointer"
                ))),
            }
        };
        let doc_value = || -> Result<Doc, PatchErrorKind> {
            let value = op
                .get("value")
                .ok_or_else(|| malformed("missing 'value' member"))?;
            Doc::from_json_with_limit(value, max_depth).map_err(PatchErrorKind::Value)
        };
        let name = match op.get("op") {
            Some(Value::String(name)) => name.as_str(),
            Some(_) => return Err(malformed("'op' must be a string")),
            None => return Err(malformed("missing 'op' member")),
        };
        Ok(match name {
            "add" => PatchOp::Add {
                path: pointer("path")?,
                value: doc_value()?,
            },
            "remove" => PatchOp::Remove {
                path: pointer("path")?,
            },
            "replace" => PatchOp::Replace {
                path: pointer("path")?,
                value: doc_value()?,
            },
            "move" => PatchOp::Move {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "copy" => PatchOp::Copy {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "test" => PatchOp::Test {
                path: pointer("path")?,
                value: doc_value()?,
            },
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(PatchErrorKind::Malformed(format!(
                    "unknown op '{shown}' (expected add, remove, replace, move, copy or test)"
                )));
            }
        })
    }
}

/// An RFC 6902 JSON Patch: operations applied in order, all or nothing.
///
/// Serializes as the RFC's JSON array.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Patch {
    ops: Vec<PatchOp>,
}

impl Patch {
    /// A patch of these operations.
    pub fn new(ops: Vec<PatchOp>) -> Self {
        Patch { ops }
    }

    /// The operations in order.
    pub fn ops(&self) -> &[PatchOp] {
        &self.ops
    }

    /// Appends an operation.
    pub fn push(&mut self, op: PatchOp) {
        self.ops.push(op);
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the patch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Parses the RFC 6902 JSON form, with values limited to
    /// [`DEFAULT_MAX_DEPTH`]. Errors name the index of the bad operation.
    pub fn from_json(value: &Value) -> Result<Patch, PatchError> {
        Patch::from_json_with_limit(value, DEFAULT_MAX_DEPTH)
    }

    /// Parses the RFC 6902 JSON form with values limited to `max_depth`.
    pub fn from_json_with_limit(value: &Value, max_depth: usize) -> Result<Patch, PatchError> {
        let Value::Array(items) = value else {
            return Err(PatchError {
                op: None,
                kind: PatchErrorKind::NotAnArray,
            });
        };
        let ops = items
            .iter()
            .enumerate()
            .map(|(i, item)| PatchOp::from_json(item, max_depth).map_err(|k| PatchError::at(i, k)))
            .collect::<Result<_, _>>()?;
        Ok(Patch { ops })
    }

    /// Parses RFC 6902 JSON text.
    pub fn parse(text: &str) -> Result<Patch, PatchError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PatchError {
            op: None,
            kind: PatchErrorKind::Malformed(format!("invalid JSON: {e}")),
        })?;
        Patch::from_json(&value)
    }

    /// The RFC 6902 JSON form.
    pub fn to_json(&self) -> Value {
        Value::Array(self.ops.iter().map(PatchOp::to_json).collect())
    }

    /// Applies the patch to `doc`, returning the new document; results may
    /// nest at most `max_depth` levels. `doc` itself is never modified, so a
    /// failing operation leaves nothing half-done.
    ///
    /// Time: O(ops · depth · log n), plus the size of values copied or moved
    /// deeper.
    pub fn apply_to(&self, doc: &Doc, max_depth: usize) -> Result<Doc, PatchError> {
        let mut out = doc.clone();
        for (i, op) in self.ops.iter().enumerate() {
            apply_op(&mut out, op, max_depth).map_err(|kind| PatchError::at(i, kind))?;
        }
        Ok(out)
    }
}

impl From<Vec<PatchOp>> for Patch {
    fn from(ops: Vec<PatchOp>) -> Self {
        Patch { ops }
    }
}

impl Serialize for Patch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Patch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Patch::from_json(&value).map_err(serde::de::Error::custom)
    }
}

fn apply_op(doc: &mut Doc, op: &PatchOp, max_depth: usize) -> Result<(), PatchErrorKind> {
    match op {
        PatchOp::Add { path, value } => {
            check_depth(path, value, max_depth)?;
            add(doc, path, value.clone())
        }
        PatchOp::Remove { path } => remove(doc, path).map(drop),
        PatchOp::Replace { path, value } => {
            check_depth(path, value, max_depth)?;
            *lookup_mut(doc, path.tokens(), path)? = value.clone();
            Ok(())
        }
        PatchOp::Move { from, path } => {
            if from == path {
                return doc
                    .get(from)
                    .map(drop)
                    .ok_or_else(|| PatchErrorKind::PathNotFound(from.clone()));
            }
            if from.is_proper_prefix_of(path) {
                return Err(PatchErrorKind::MoveIntoChild {
                    from: from.clone(),
                    path: path.clone(),
                });
            }
            let value = remove(doc, from)?;
            if path.len() > from.len() {
                check_depth(path, &value, max_depth)?;
            }
            add(doc, path, value)
        }
        PatchOp::Copy { from, path } => {
            let value = doc
                .get(from)
                .cloned()
                .ok_or_else(|| PatchErrorKind::PathNotFound(from.clone()))?;
            if path.len() > from.len() {
                check_depth(path, &value, max_depth)?;
            }
            add(doc, path, value)
        }
        PatchOp::Test { path, value } => match doc.get(path) {
            Some(found) if found == value => Ok(()),
            Some(_) => Err(PatchErrorKind::TestFailed(path.clone())),
            None => Err(PatchErrorKind::PathNotFound(path.clone())),
        },
    }
}

fn check_depth(path: &Pointer, value: &Doc, limit: usize) -> Result<(), PatchErrorKind> {
    if limit == usize::MAX {
        return Ok(());
    }
    if path.len() + value.depth() > limit {
        return Err(PatchErrorKind::TooDeep { limit });
    }
    Ok(())
}

/// The value at `tokens` (a prefix of `path`), copied on write along the way.
fn lookup_mut<'a>(
    doc: &'a mut Doc,
    tokens: &[String],
    path: &Pointer,
) -> Result<&'a mut Doc, PatchErrorKind> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Doc::Object(map) => map
                .get_mut(token.as_str())
                .ok_or_else(|| PatchErrorKind::PathNotFound(path.clone()))?,
            Doc::Array(items) => {
                let index = array_index(token, path)?;
                let items = Arc::make_mut(items);
                let len = items.len();
                items
                    .get_mut(index)
                    .ok_or_else(|| out_of_bounds(path, index, len))?
            }
            _ => return Err(PatchErrorKind::PathNotFound(path.clone())),
        };
    }
    Ok(current)
}

fn array_index(token: &str, path: &Pointer) -> Result<usize, PatchErrorKind> {
    parse_index(token).ok_or_else(|| PatchErrorKind::InvalidIndex {
        path: path.clone(),
        token: token.chars().take(32).collect(),
    })
}

fn out_of_bounds(path: &Pointer, index: usize, len: usize) -> PatchErrorKind {
    PatchErrorKind::IndexOutOfBounds {
        path: path.clone(),
        index,
        len,
    }
}

fn add(doc: &mut Doc, path: &Pointer, value: Doc) -> Result<(), PatchErrorKind> {
    let Some((parent, last)) = path.split_last() else {
        *doc = value;
        return Ok(());
    };
    match lookup_mut(doc, parent, path)? {
        Doc::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Doc::Array(items) => {
            let len = items.len();
            let index = if last == "-" {
                len
            } else {
                array_index(last, path)?
            };
            if index > len {
                return Err(out_of_bounds(path, index, len));
            }
            Arc::make_mut(items).insert(index, value);
            Ok(())
        }
        _ => Err(PatchErrorKind::NotAContainer(path.clone())),
    }
}

fn remove(doc: &mut Doc, path: &Pointer) -> Result<Doc, PatchErrorKind> {
    let Some((parent, last)) = path.split_last() else {
        return Err(PatchErrorKind::Malformed(
            "cannot remove the whole document; replace it instead".into(),
        ));
    };
    match lookup_mut(doc, parent, path)? {
        Doc::Object(map) => map
            .remove(last)
            .ok_or_else(|| PatchErrorKind::PathNotFound(path.clone())),
        Doc::Array(items) => {
            let index = array_index(last, path)?;
            let len = items.len();
            if index >= len {
                return Err(out_of_bounds(path, index, len));
            }
            Ok(Arc::make_mut(items).remove(index))
        }
        _ => Err(PatchErrorKind::PathNotFound(path.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(value: Value) -> Doc {
        Doc::from_json(&value).unwrap()
    }

    #[test]
    fn failing_op_reports_its_index_and_changes_nothing() {
        let before = doc(json!({"a": 1, "list": [1, 2]}));
        let patch = Patch::from_json(&json!([
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/missing"}
        ]))
        .unwrap();
        let err = before.apply_patch(&patch).unwrap_err();
        assert_eq!(err.op, Some(2));
        assert!(matches!(err.kind, PatchErrorKind::PathNotFound(_)));
        assert_eq!(
            err.to_string(),
            "patch operation 2 failed: nothing at '/missing'"
        );
        assert_eq!(before, doc(json!({"a": 1, "list": [1, 2]})));
    }

    #[test]
    fn malformed_ops_are_rejected_at_parse_with_their_index() {
        let err = Patch::from_json(
            &json!([{"op": "add", "path": "/a", "value": 1}, {"op": "spam", "path": "/a"}]),
        )
        .unwrap_err();
        assert_eq!(err.op, Some(1));
        assert!(err.to_string().contains("unknown op 'spam'"));
        assert!(matches!(
            Patch::from_json(&json!({"op": "add"})).unwrap_err().kind,
            PatchErrorKind::NotAnArray
        ));
    }

    #[test]
    fn json_form_round_trips() {
        let value = json!([
            {"op": "add", "path": "/a~1b", "value": {"x": [1]}},
            {"op": "remove", "path": "/c"},
            {"op": "replace", "path": "/d", "value": null},
            {"op": "move", "from": "/e", "path": "/f"},
            {"op": "copy", "from": "/g", "path": "/h"},
            {"op": "test", "path": "/i", "value": "j"}
        ]);
        let patch = Patch::from_json(&value).unwrap();
        assert_eq!(patch.to_json(), value);
        let text = serde_json::to_string(&patch).unwrap();
        assert_eq!(serde_json::from_str::<Patch>(&text).unwrap(), patch);
    }

    #[test]
    fn depth_limit_applies_to_results() {
        let mut nested = json!(1);
        for _ in 0..3 {
            nested = json!([nested]);
        }
        let patch =
            Patch::from_json(&json!([{"op": "add", "path": "/a/b", "value": nested}])).unwrap();
        let start = doc(json!({"a": {}}));
        assert!(patch.apply_to(&start, 5).is_ok());
        let err = patch.apply_to(&start, 4).unwrap_err();
        assert_eq!(err.kind, PatchErrorKind::TooDeep { limit: 4 });
        let copy =
            Patch::from_json(&json!([{"op": "copy", "from": "/a", "path": "/a/b/c/d"}])).unwrap();
        let start = doc(json!({"a": {"b": {"c": {"x": [[1]]}}}}));
        assert!(matches!(
            copy.apply_to(&start, 6).unwrap_err().kind,
            PatchErrorKind::TooDeep { .. }
        ));
    }

    #[test]
    fn move_into_own_child_is_refused() {
        let patch =
            Patch::from_json(&json!([{"op": "move", "from": "/a", "path": "/a/b"}])).unwrap();
        let err = doc(json!({"a": {}})).apply_patch(&patch).unwrap_err();
        assert!(matches!(err.kind, PatchErrorKind::MoveIntoChild { .. }));
    }
}
