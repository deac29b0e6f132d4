//! [`Doc`]: the built-in persistent JSON document.
//!
//! Objects are [`Object`]s (a persistent B+tree of our own, see
//! `doc/object.rs`) and arrays `imbl::Vector`s, so a clone is O(1) and an
//! update copies only the path from the root to the change: every other
//! subtree stays shared with the previous version. Object keys are
//! [`Key`]s, stored inline up to [`Key::INLINE_CAP`] bytes; strings are
//! `Arc<str>`; numbers and booleans are inline in the value. A `Doc` is 24
//! bytes.

mod key;
mod object;
mod patch;
mod pointer;
mod serde_impl;

use std::fmt;
use std::sync::Arc;

use imbl::Vector;
use serde_json::{Number, Value};

use crate::error::InvalidInput;

pub use key::Key;
pub use object::{update_bytes, DiffItem, DiffIter, Iter, Object, NODE_BYTES};
pub use patch::{Patch, PatchOp};
pub use pointer::{InvalidPointer, Pointer};

/// A persistent JSON array.
pub type Array = Vector<Doc>;

/// Default limit on document nesting: containers inside containers.
pub const DEFAULT_MAX_DEPTH: usize = 128;

/// The estimated heap bytes one object member owns: its share of a leaf,
/// its key if spilled, and its value.
pub(crate) fn member_bytes(key: &Key, value: &Doc) -> usize {
    NODE_BYTES / object::LEAF_CAP + key.heap_bytes() + value.heap_bytes()
}

/// The estimated heap bytes that updating `changed` members (spread over
/// the keys) of an object of `len` members copies: at each level of its
/// tree, the nodes the changes land in, `nodes · (1 - (1 - 1/nodes)^changed)`
/// of them on average. One change: [`update_bytes`].
pub(crate) fn update_bytes_of(len: usize, changed: usize) -> usize {
    if changed <= 1 {
        return changed * update_bytes(len);
    }
    let mut nodes = len.div_ceil(object::LEAF_CAP).max(1);
    let mut touched = 0.0;
    loop {
        let n = nodes as f64;
        touched += n * (1.0 - (1.0 - 1.0 / n).powf(changed as f64));
        if nodes == 1 {
            break;
        }
        nodes = nodes.div_ceil(object::BRANCH_CAP);
    }
    (touched * NODE_BYTES as f64).round() as usize
}

/// A persistent JSON value.
///
/// `Clone` is O(1). Equality is structural, short-circuits on shared
/// subtrees, and compares numbers by value (`1 == 1.0`), as RFC 6902 `test`
/// requires.
#[derive(Clone, Default)]
pub enum Doc {
    /// `null`.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number (integer or finite float).
    Number(Number),
    /// A shared string.
    String(Arc<str>),
    /// An array. Boxed in an `Arc` to keep `Doc` at 24 bytes.
    Array(Arc<Array>),
    /// An object (16 bytes: its length and root pointer).
    Object(Object),
}

impl Doc {
    /// An empty object, `{}`. Time: O(1), no allocation.
    pub fn object() -> Doc {
        Doc::Object(Object::new())
    }

    /// An empty array, `[]`. Time: O(1).
    pub fn array() -> Doc {
        Doc::Array(Arc::new(Array::new()))
    }

    /// Converts a `serde_json::Value`, refusing input nested deeper than
    /// [`DEFAULT_MAX_DEPTH`]. Time: O(size of the value).
    pub fn from_json(value: &Value) -> Result<Doc, InvalidInput> {
        Doc::from_json_with_limit(value, DEFAULT_MAX_DEPTH)
    }

    /// Converts a `serde_json::Value`, refusing input nested deeper than
    /// `max_depth` containers. Recursion is bounded by `max_depth`, so hostile
    /// input cannot overflow the stack. Objects are built with full nodes.
    /// Time: O(size of the value).
    pub fn from_json_with_limit(value: &Value, max_depth: usize) -> Result<Doc, InvalidInput> {
        fn convert(value: &Value, depth_left: usize, limit: usize) -> Result<Doc, InvalidInput> {
            Ok(match value {
                Value::Null => Doc::Null,
                Value::Bool(b) => Doc::Bool(*b),
                Value::Number(n) => Doc::Number(n.clone()),
                Value::String(s) => Doc::String(s.as_str().into()),
                Value::Array(items) => {
                    let depth_left = depth_left
                        .checked_sub(1)
                        .ok_or(InvalidInput::TooDeep { limit })?;
                    let mut array = Array::new();
                    for item in items {
                        array.push_back(convert(item, depth_left, limit)?);
                    }
                    Doc::Array(Arc::new(array))
                }
                Value::Object(map) => {
                    let depth_left = depth_left
                        .checked_sub(1)
                        .ok_or(InvalidInput::TooDeep { limit })?;
                    let entries = map
                        .iter()
                        .map(|(key, item)| Ok((Key::from(key), convert(item, depth_left, limit)?)))
                        .collect::<Result<Vec<_>, InvalidInput>>()?;
                    Doc::Object(Object::from_entries(entries))
                }
            })
        }
        convert(value, max_depth, max_depth)
    }

    /// Parses JSON text into a document (depth limited to [`DEFAULT_MAX_DEPTH`]).
    /// Objects are built with full nodes. Time: O(length of the text), plus
    /// a sort of each object whose keys are out of order.
    pub fn parse(text: &str) -> Result<Doc, InvalidInput> {
        let mut de = serde_json::Deserializer::from_str(text);
        // `DocSeed` bounds the recursion itself, at the document limit.
        de.disable_recursion_limit();
        let doc = serde::de::DeserializeSeed::deserialize(
            serde_impl::DocSeed::new(DEFAULT_MAX_DEPTH),
            &mut de,
        )
        .map_err(|e| serde_impl::input_error(e, DEFAULT_MAX_DEPTH))?;
        de.end().map_err(|e| InvalidInput::Json(e.to_string()))?;
        Ok(doc)
    }

    /// Converts to a `serde_json::Value`. Time: O(size).
    pub fn to_json(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.to_string()),
            Doc::Array(items) => Value::Array(items.iter().map(Doc::to_json).collect()),
            Doc::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Pretty-printed JSON text. Time: O(size).
    pub fn to_string_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| self.to_string())
    }

    /// The value at an RFC 6901 pointer, if any. Time: O(depth · log n).
    pub fn get(&self, pointer: &Pointer) -> Option<&Doc> {
        pointer
            .tokens()
            .iter()
            .try_fold(self, |doc, token| doc.child(token))
    }

    /// The value at a pointer given as text (`"/features/new_ui"`); `None` if
    /// the pointer is invalid or nothing is there. Time: O(depth · log n).
    pub fn pointer(&self, pointer: &str) -> Option<&Doc> {
        self.get(&Pointer::parse(pointer).ok()?)
    }

    /// The member `token` of an object, or element of an array when `token`
    /// is a valid index.
    fn child(&self, token: &str) -> Option<&Doc> {
        match self {
            Doc::Object(map) => map.get(token),
            Doc::Array(items) => pointer::parse_index(token).and_then(|i| items.get(i)),
            _ => None,
        }
    }

    /// The object's map, if this is an object. Time: O(1).
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Doc::Object(map) => Some(map),
            _ => None,
        }
    }

    /// The array, if this is an array. Time: O(1).
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Doc::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The string, if this is a string. Time: O(1).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Doc::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one. Time: O(1).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Doc::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as `i64`, if it is an integer that fits. Time: O(1).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Doc::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The number as `f64`, if this is a number. Time: O(1).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Doc::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The number, if this is one. Time: O(1).
    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Doc::Number(n) => Some(n),
            _ => None,
        }
    }

    /// Whether this is `null`. Time: O(1).
    pub fn is_null(&self) -> bool {
        matches!(self, Doc::Null)
    }

    /// JSON type name: `null`, `boolean`, `number`, `string`, `array`, `object`.
    /// Time: O(1).
    pub fn type_name(&self) -> &'static str {
        match self {
            Doc::Null => "null",
            Doc::Bool(_) => "boolean",
            Doc::Number(_) => "number",
            Doc::String(_) => "string",
            Doc::Array(_) => "array",
            Doc::Object(_) => "object",
        }
    }

    /// Whether both values are the same shared data: containers and strings
    /// compare by pointer, scalars (which are stored inline) by value.
    /// Time: O(1).
    pub fn ptr_eq(&self, other: &Doc) -> bool {
        match (self, other) {
            (Doc::Null, Doc::Null) => true,
            (Doc::Bool(a), Doc::Bool(b)) => a == b,
            (Doc::Number(a), Doc::Number(b)) => a == b,
            (Doc::String(a), Doc::String(b)) => Arc::ptr_eq(a, b),
            (Doc::Array(a), Doc::Array(b)) => Arc::ptr_eq(a, b) || a.ptr_eq(b),
            (Doc::Object(a), Doc::Object(b)) => a.ptr_eq(b),
            _ => false,
        }
    }

    /// Nesting depth: 0 for a scalar, 1 for a container of scalars, and so
    /// on. Time: O(size).
    pub fn depth(&self) -> usize {
        match self {
            Doc::Array(items) => 1 + items.iter().map(Doc::depth).max().unwrap_or(0),
            Doc::Object(map) => 1 + map.values().map(Doc::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Applies an RFC 6902 patch atomically with the default depth limit.
    /// On error the document is unchanged (it is never modified in place).
    /// Time: O(operations · depth · log n), plus the depth check of values
    /// added below the root.
    pub fn apply_patch(&self, patch: &Patch) -> Result<Doc, crate::error::PatchError> {
        patch.apply_to(self, DEFAULT_MAX_DEPTH)
    }

    /// Applies a patch with no depth limit: for rebuilding stored states,
    /// which were within limits when they were made.
    pub(crate) fn apply_patch_unlimited(
        &self,
        patch: &Patch,
    ) -> Result<Doc, crate::error::PatchError> {
        patch.apply_to(self, usize::MAX)
    }

    /// Estimated heap bytes this value owns, walking all of it: object
    /// nodes ([`NODE_BYTES`] each), keys longer than [`Key::INLINE_CAP`],
    /// strings, arrays (the `Arc`, and the chunks of an `imbl::Vector`
    /// that outgrew its inline storage) and everything nested. A subtree
    /// reachable twice is counted twice; subtrees shared with other
    /// versions are counted as if owned. Time: O(size).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Doc::Null | Doc::Bool(_) | Doc::Number(_) => 0,
            Doc::String(s) => key::arc_str_bytes(s.len()),
            Doc::Array(items) => {
                ARC_ARRAY_BYTES
                    + vector_chunk_bytes(items)
                    + items.iter().map(Doc::heap_bytes).sum::<usize>()
            }
            Doc::Object(map) => map.heap_bytes(),
        }
    }
}

/// The allocation of `Arc<Array>`: two counters and the vector.
const ARC_ARRAY_BYTES: usize = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Array>();

/// Estimated bytes of an `imbl::Vector`'s chunks (shared `Arc`s of 64
/// elements, two indices and two counters), as measured on imbl 7: none
/// while it is inline (up to 2 elements), one chunk up to 64, and past that
/// at least its four edge chunks, about one chunk per 64 elements plus one,
/// and a small middle node.
fn vector_chunk_bytes(items: &Array) -> usize {
    const CHUNK: usize = 64;
    const CHUNK_BYTES: usize =
        4 * std::mem::size_of::<usize>() + CHUNK * std::mem::size_of::<Doc>();
    const MIDDLE_BYTES: usize = 40;
    if items.is_inline() {
        0
    } else if items.len() <= CHUNK {
        CHUNK_BYTES
    } else {
        (items.len().div_ceil(CHUNK) + 1).max(4) * CHUNK_BYTES + MIDDLE_BYTES
    }
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    if a.is_f64() || b.is_f64() {
        return a.as_f64() == b.as_f64();
    }
    false
}

#[cfg(test)]
thread_local! {
    /// Number of container pairs compared by `PartialEq`; lets tests check that
    /// equality and diff skip shared subtrees.
    pub(crate) static CONTAINER_COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl PartialEq for Doc {
    fn eq(&self, other: &Doc) -> bool {
        match (self, other) {
            (Doc::Null, Doc::Null) => true,
            (Doc::Bool(a), Doc::Bool(b)) => a == b,
            (Doc::Number(a), Doc::Number(b)) => numbers_equal(a, b),
            (Doc::String(a), Doc::String(b)) => a == b,
            (Doc::Array(a), Doc::Array(b)) => {
                #[cfg(test)]
                CONTAINER_COMPARISONS.with(|c| c.set(c.get() + 1));
                Arc::ptr_eq(a, b) || a.ptr_eq(b) || **a == **b
            }
            (Doc::Object(a), Doc::Object(b)) => {
                #[cfg(test)]
                CONTAINER_COMPARISONS.with(|c| c.set(c.get() + 1));
                // `diff` skips nodes shared by both maps, so a changed copy of
                // a large object compares in O(changes · log n).
                a.ptr_eq(b) || (a.len() == b.len() && a.diff(b).next().is_none())
            }
            _ => false,
        }
    }
}

impl fmt::Display for Doc {
    /// Compact JSON text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl fmt::Debug for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl TryFrom<Value> for Doc {
    type Error = InvalidInput;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Doc::from_json(&value)
    }
}

impl TryFrom<&Value> for Doc {
    type Error = InvalidInput;
    fn try_from(value: &Value) -> Result<Self, Self::Error> {
        Doc::from_json(value)
    }
}

impl From<Doc> for Value {
    fn from(doc: Doc) -> Value {
        doc.to_json()
    }
}

impl From<&Doc> for Value {
    fn from(doc: &Doc) -> Value {
        doc.to_json()
    }
}

impl From<bool> for Doc {
    fn from(value: bool) -> Doc {
        Doc::Bool(value)
    }
}

impl From<&str> for Doc {
    fn from(value: &str) -> Doc {
        Doc::String(value.into())
    }
}

impl From<String> for Doc {
    fn from(value: String) -> Doc {
        Doc::String(value.into())
    }
}

impl From<i64> for Doc {
    fn from(value: i64) -> Doc {
        Doc::Number(value.into())
    }
}

impl From<u64> for Doc {
    fn from(value: u64) -> Doc {
        Doc::Number(value.into())
    }
}

impl From<i32> for Doc {
    fn from(value: i32) -> Doc {
        Doc::Number(value.into())
    }
}

impl TryFrom<f64> for Doc {
    type Error = InvalidInput;
    fn try_from(value: f64) -> Result<Doc, InvalidInput> {
        Number::from_f64(value)
            .map(Doc::Number)
            .ok_or(InvalidInput::NonFiniteNumber(value))
    }
}

impl<K: Into<Key>, V: Into<Doc>> FromIterator<(K, V)> for Doc {
    /// Builds an object with full nodes; of equal keys the last wins.
    /// Time: O(n) for input sorted by key, else O(n log n).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Doc {
        Doc::Object(iter.into_iter().collect())
    }
}

impl From<Object> for Doc {
    fn from(object: Object) -> Doc {
        Doc::Object(object)
    }
}

impl std::ops::Index<&str> for Doc {
    type Output = Doc;
    /// The member `key` of an object; `Null` when absent or not an object.
    fn index(&self, key: &str) -> &Doc {
        static NULL: Doc = Doc::Null;
        self.as_object().and_then(|m| m.get(key)).unwrap_or(&NULL)
    }
}

impl std::ops::Index<usize> for Doc {
    type Output = Doc;
    /// The element `index` of an array; `Null` when absent or not an array.
    fn index(&self, index: usize) -> &Doc {
        static NULL: Doc = Doc::Null;
        self.as_array().and_then(|a| a.get(index)).unwrap_or(&NULL)
    }
}

impl PartialEq<str> for Doc {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Doc {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<i64> for Doc {
    fn eq(&self, other: &i64) -> bool {
        matches!(self, Doc::Number(n) if numbers_equal(n, &Number::from(*other)))
    }
}

impl PartialEq<bool> for Doc {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip() {
        let value = json!({"a": [1, 2.5, "x", null, true], "b": {"c": {}}});
        let doc = Doc::from_json(&value).unwrap();
        assert_eq!(doc.to_json(), value);
        assert_eq!(Doc::parse(&doc.to_string()).unwrap(), doc);
        assert_eq!(serde_json::from_str::<Doc>(&doc.to_string()).unwrap(), doc);
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(Doc::parse("1").unwrap(), Doc::parse("1.0").unwrap());
        assert_ne!(Doc::parse("1").unwrap(), Doc::parse("2").unwrap());
        assert_ne!(Doc::parse("-1").unwrap(), Doc::from(u64::MAX));
    }

    #[test]
    fn depth_is_limited_without_recursing_past_the_limit() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            Doc::parse(&deep),
            Err(InvalidInput::TooDeep { limit: 128 })
        ));
        let ok = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert_eq!(Doc::parse(&ok).unwrap().depth(), 128);
        let over = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(matches!(
            Doc::parse(&over),
            Err(InvalidInput::TooDeep { .. })
        ));
        let mut value = json!(1);
        for _ in 0..200 {
            value = json!({ "x": value });
        }
        assert!(matches!(
            Doc::from_json(&value),
            Err(InvalidInput::TooDeep { limit: 128 })
        ));
        assert!(Doc::from_json_with_limit(&value, 256).is_ok());
    }

    #[test]
    fn size_stays_small() {
        assert_eq!(std::mem::size_of::<Doc>(), 24);
        assert_eq!(std::mem::size_of::<Object>(), 16);
        assert_eq!(std::mem::size_of::<Key>(), 24);
    }

    #[test]
    fn pointer_access_and_index() {
        let doc = Doc::from_json(&json!({"features": {"new_ui": true}, "list": [10, 20]})).unwrap();
        assert_eq!(doc.pointer("/features/new_ui"), Some(&Doc::Bool(true)));
        assert_eq!(doc.pointer("/list/1"), Some(&Doc::from(20)));
        assert_eq!(doc.pointer("/list/01"), None);
        assert_eq!(doc["features"]["new_ui"], true);
        assert!(doc["missing"].is_null());
        assert_eq!(doc["list"][0], 10);
    }
}
