//! Properties of `Diff::between` on random documents: its patch turns `a`
//! into `b`, a document has no difference with itself, the summary counts the
//! entries, the patch survives its JSON form, and the result does not depend
//! on whether `a` and `b` share structure.
//!
//! Documents are small and keys come from a tiny alphabet (including `~`,
//! `/`, `""`, `0` and `-`, which need escaping or look like array indexes) so
//! independently generated documents overlap and collide. A second family
//! derives `b` from `a` by patching the `Doc`, so most subtrees are shared and
//! the diff's pointer-equality shortcuts are exercised.

use proptest::prelude::*;
use rewind_core::{ChangeKind, Diff, Doc, Patch, PatchOp, Pointer};
use serde_json::{json, Map, Value};

const KEYS: [&str; 8] = ["a", "b", "c", "0", "-", "", "x~y", "p/q"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(&KEYS[..]).prop_map(str::to_owned)
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(Value::from),
        prop::sample::select(&[0.5f64, -1.5, 2.0, 1e300][..]).prop_map(Value::from),
        prop::sample::select(&["", "x", "y", "value"][..]).prop_map(Value::from),
    ]
}

/// JSON values up to 4 levels deep, about 48 nodes, 5 members per container.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn doc(value: &Value) -> Doc {
    Doc::from_json(value).expect("generated documents are shallow")
}

/// One random edit: which existing location (`at`, modulo the number of
/// locations), what to do there, and a value to write.
#[derive(Clone, Debug)]
struct Edit {
    at: usize,
    action: u8,
    key: String,
    value: Value,
}

fn edit() -> impl Strategy<Value = Edit> {
    (any::<usize>(), 0u8..5, key(), json_value()).prop_map(|(at, action, key, value)| Edit {
        at,
        action,
        key,
        value,
    })
}

/// Every location in `doc`, root first.
fn locations(doc: &Doc) -> Vec<Pointer> {
    fn walk(doc: &Doc, here: &Pointer, out: &mut Vec<Pointer>) {
        out.push(here.clone());
        if let Some(map) = doc.as_object() {
            for (k, v) in map.iter() {
                walk(v, &here.child(&**k), out);
            }
        } else if let Some(items) = doc.as_array() {
            for (i, v) in items.iter().enumerate() {
                walk(v, &here.child(i.to_string()), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(doc, &Pointer::root(), &mut out);
    out
}

/// Applies edits through JSON Patch on the `Doc` itself, so the result shares
/// every untouched subtree with `start`. Edits that do not fit the document
/// (a remove of the root, say) are skipped.
fn derive(start: &Doc, edits: &[Edit]) -> Doc {
    let mut current = start.clone();
    for edit in edits {
        let places = locations(&current);
        let path = places[edit.at % places.len()].clone();
        let target = current.get(&path).expect("listed location exists").clone();
        let value = doc(&edit.value);
        let op = match edit.action {
            0 => PatchOp::Replace { path, value },
            1 if !path.is_root() => PatchOp::Remove { path },
            2 if target.as_object().is_some() => PatchOp::Add {
                path: path.child(edit.key.clone()),
                value,
            },
            2 if target.as_array().is_some() => {
                let len = target.as_array().map_or(0, |a| a.len());
                PatchOp::Add {
                    path: path.child((edit.at % (len + 1)).to_string()),
                    value,
                }
            }
            3 if target.as_array().is_some() => PatchOp::Add {
                path: path.child("-"),
                value,
            },
            4 if !path.is_root() => {
                // Copy the edited location somewhere under the root object.
                if current.as_object().is_none() {
                    continue;
                }
                PatchOp::Copy {
                    from: path,
                    path: Pointer::from_tokens([edit.key.clone()]),
                }
            }
            _ => continue,
        };
        if let Ok(next) = current.apply_patch(&Patch::new(vec![op])) {
            current = next;
        }
    }
    current
}

/// The properties every diff must have.
fn check_diff(a: &Doc, b: &Doc) -> Result<(), TestCaseError> {
    let diff = Diff::between(a, b);

    let applied = a
        .apply_patch(&diff.patch)
        .map_err(|e| TestCaseError::fail(format!("patch {} failed: {e}", diff.patch.to_json())))?;
    prop_assert_eq!(&applied, b, "patch {}", diff.patch.to_json());
    prop_assert_eq!(diff.is_empty(), a == b);

    let count = |kind| diff.entries.iter().filter(|e| e.kind == kind).count();
    prop_assert_eq!(diff.summary.added, count(ChangeKind::Added));
    prop_assert_eq!(diff.summary.removed, count(ChangeKind::Removed));
    prop_assert_eq!(diff.summary.changed, count(ChangeKind::Changed));
    prop_assert_eq!(diff.patch.len(), diff.entries.len());
    for entry in &diff.entries {
        let (has_old, has_new) = match entry.kind {
            ChangeKind::Added => (false, true),
            ChangeKind::Removed => (true, false),
            ChangeKind::Changed => (true, true),
        };
        prop_assert_eq!(entry.old.is_some(), has_old, "{:?}", entry);
        prop_assert_eq!(entry.new.is_some(), has_new, "{:?}", entry);
    }

    let json = diff.patch.to_json();
    let reparsed = Patch::from_json(&json)
        .map_err(|e| TestCaseError::fail(format!("patch {json} does not parse back: {e}")))?;
    prop_assert_eq!(&reparsed, &diff.patch);
    prop_assert_eq!(&a.apply_patch(&reparsed).expect("same patch"), b);

    prop_assert!(Diff::between(a, a).is_empty());
    prop_assert!(Diff::between(b, b).is_empty());
    Ok(())
}

proptest! {
    #[test]
    fn diff_of_independent_documents_round_trips(a in json_value(), b in json_value()) {
        check_diff(&doc(&a), &doc(&b))?;
    }

    #[test]
    fn diff_of_derived_documents_round_trips(a in json_value(), edits in prop::collection::vec(edit(), 0..8)) {
        let a = doc(&a);
        let b = derive(&a, &edits);
        check_diff(&a, &b)?;
        // Skipping shared subtrees must not change the answer: the same diff
        // comes out of copies that share nothing.
        let unshared = Diff::between(&doc(&a.to_json()), &doc(&b.to_json()));
        prop_assert_eq!(Diff::between(&a, &b), unshared);
    }

    #[test]
    fn a_document_has_no_difference_with_itself_or_its_copy(a in json_value()) {
        let a = doc(&a);
        prop_assert!(Diff::between(&a, &a).is_empty());
        prop_assert!(Diff::between(&a, &a.clone()).is_empty());
        prop_assert!(Diff::between(&a, &doc(&a.to_json())).is_empty());
    }
}

#[test]
fn keys_that_need_escaping_round_trip_through_the_patch() {
    let a = doc(&json!({"x~y": 1, "p/q": [1], "": {"-": 0}}));
    let b = doc(&json!({"x~y": 2, "p/q": [1, 2], "": {}}));
    let diff = Diff::between(&a, &b);
    assert_eq!(a.apply_patch(&diff.patch).unwrap(), b);
    let paths: Vec<String> = diff.entries.iter().map(|e| e.path.to_string()).collect();
    assert_eq!(paths, ["//-", "/p~1q/1", "/x~0y"]);
}
