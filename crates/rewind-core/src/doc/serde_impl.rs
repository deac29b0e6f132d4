//! Serde support for [`Doc`]: serialization as plain JSON, and a
//! deserializer that enforces the nesting limit while it reads, so deep input
//! fails before it can exhaust the stack.

use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Number;

use super::{Array, Doc, Key, Object, DEFAULT_MAX_DEPTH};
use crate::error::InvalidInput;

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Doc::Null => serializer.serialize_unit(),
            Doc::Bool(b) => serializer.serialize_bool(*b),
            Doc::Number(n) => n.serialize(serializer),
            Doc::String(s) => serializer.serialize_str(s),
            Doc::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Doc::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map.iter() {
                    out.serialize_entry(key, value)?;
                }
                out.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Doc {
    /// Deserializes with the default nesting limit ([`DEFAULT_MAX_DEPTH`]).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        DocSeed::new(DEFAULT_MAX_DEPTH).deserialize(deserializer)
    }
}

const TOO_DEEP: &str = "document nests deeper than the limit of";

/// Maps a deserializer error to [`InvalidInput`], recognising the depth limit.
pub(super) fn input_error(error: impl fmt::Display, limit: usize) -> InvalidInput {
    let text = error.to_string();
    if text.starts_with(TOO_DEEP) {
        InvalidInput::TooDeep { limit }
    } else {
        InvalidInput::Json(text)
    }
}

/// Reads one value with `depth_left` more levels of nesting allowed.
#[derive(Clone, Copy)]
pub(super) struct DocSeed {
    depth_left: usize,
    limit: usize,
}

impl DocSeed {
    pub(super) fn new(limit: usize) -> Self {
        DocSeed {
            depth_left: limit,
            limit,
        }
    }

    fn nested<E: serde::de::Error>(self) -> Result<DocSeed, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(DocSeed { depth_left, ..self }),
            None => Err(E::custom(format_args!("{TOO_DEEP} {} levels", self.limit))),
        }
    }
}

impl<'de> DeserializeSeed<'de> for DocSeed {
    type Value = Doc;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Doc, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DocSeed {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Doc, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Doc, E> {
        Ok(Doc::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Doc, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Doc, E> {
        Ok(Doc::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Doc, E> {
        Number::from_f64(v)
            .map(Doc::Number)
            .ok_or_else(|| E::custom(format_args!("number {v} cannot be represented in JSON")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Doc, E> {
        Ok(Doc::String(Arc::from(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        let inner = self.nested()?;
        let mut items = Array::new();
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push_back(item);
        }
        Ok(Doc::Array(Arc::new(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let inner = self.nested()?;
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(key) = map.next_key::<Key>()? {
            let value = map.next_value_seed(inner)?;
            entries.push((key, value));
        }
        Ok(Doc::Object(Object::from_entries(entries)))
    }
}
