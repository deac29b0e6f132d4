//! JSON Merge Patch (RFC 7396) on a [`Doc`]: `PATCH .../state` with
//! `Content-Type: application/merge-patch+json`. The merged document is
//! turned into its RFC 6902 equivalent ([`Diff::between`]), which is what
//! the tenant applies, journals and diffs: a merge patch is an ordinary
//! change.

use std::sync::Arc;

use rewind_core::{Doc, Object};
use serde_json::Value;

use super::input::document;
use crate::error::ApiError;
use crate::limits::Limits;

/// The media type of a merge patch.
pub(crate) const MEDIA_TYPE: &str = "application/merge-patch+json";

/// `target` with `patch` merged in, per RFC 7396 section 2: an object
/// patch merges member by member (`null` removes), anything else replaces.
/// Members the patch does not name keep their subtrees shared with
/// `target`, so the diff to the result costs only what changed.
///
/// Refused (413) when the result would nest deeper than
/// `limits.max_depth`. Time: O(size of the patch · log n).
pub(crate) fn merge(target: &Doc, patch: &Value, limits: &Limits) -> Result<Doc, ApiError> {
    merge_at(target, patch, 0, limits)
}

/// [`merge`] at `level` containers below the root. Untouched members keep
/// their place, so only what the patch brings needs checking for depth.
fn merge_at(target: &Doc, patch: &Value, level: usize, limits: &Limits) -> Result<Doc, ApiError> {
    let Value::Object(members) = patch else {
        let value = document(patch, limits)?;
        if level + value.depth() > limits.max_depth {
            return Err(too_deep(limits));
        }
        return Ok(value);
    };
    if level + 1 > limits.max_depth {
        return Err(too_deep(limits));
    }
    let mut object = match target {
        Doc::Object(object) => object.clone(),
        _ => Object::new(),
    };
    for (name, value) in members {
        let key: Arc<str> = Arc::from(name.as_str());
        if value.is_null() {
            object.remove(&key);
        } else {
            let current = object.get(&key).cloned().unwrap_or(Doc::Null);
            let merged = merge_at(&current, value, level + 1, limits)?;
            object.insert(key, merged);
        }
    }
    Ok(Doc::Object(object))
}

fn too_deep(limits: &Limits) -> ApiError {
    ApiError::too_large(format!(
        "the merge patch would nest the document deeper than the limit of {} levels",
        limits.max_depth
    ))
}

/// Whether a `Content-Type` value names a merge patch (parameters such as
/// `; charset=utf-8` aside).
pub(crate) fn is_merge_patch(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_core::Diff;
    use serde_json::json;

    /// RFC 7396, Appendix A: every example, with the RFC 6902 equivalent
    /// turning the original into the result.
    #[test]
    fn rfc_7396_appendix_a() {
        for (original, patch, result) in appendix_a() {
            let target = Doc::from_json(&original).unwrap();
            let merged = merge(&target, &patch, &Limits::default()).unwrap();
            assert_eq!(merged.to_json(), result, "{original} + {patch}");
            let equivalent = Diff::between(&target, &merged).patch;
            assert_eq!(
                target.apply_patch(&equivalent).unwrap().to_json(),
                result,
                "{original} + {patch} as RFC 6902"
            );
        }
    }

    /// The examples of RFC 7396 Appendix A as (original, patch, result).
    fn appendix_a() -> Vec<(Value, Value, Value)> {
        vec![
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ]
    }

    #[test]
    fn untouched_members_stay_shared() {
        let target = Doc::from_json(&json!({"big": {"x": [1, 2, 3]}, "n": 1})).unwrap();
        let merged = merge(&target, &json!({"n": 2}), &Limits::default()).unwrap();
        assert!(merged
            .pointer("/big")
            .unwrap()
            .ptr_eq(target.pointer("/big").unwrap()));
        assert_eq!(
            serde_json::to_value(Diff::between(&target, &merged).patch).unwrap(),
            json!([{"op": "replace", "path": "/n", "value": 2}])
        );
    }

    #[test]
    fn too_deep_is_refused() {
        let limits = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let error = merge(&Doc::object(), &json!({"a": {"b": {"c": [1]}}}), &limits).unwrap_err();
        assert_eq!(error.status.as_u16(), 413);
    }

    #[test]
    fn media_types() {
        assert!(is_merge_patch("application/merge-patch+json"));
        assert!(is_merge_patch(
            "Application/Merge-Patch+JSON; charset=utf-8"
        ));
        assert!(!is_merge_patch("application/json-patch+json"));
        assert!(!is_merge_patch("application/json"));
    }
}
