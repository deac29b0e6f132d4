//! `Doc::heap_bytes` against a counting global allocator: the estimate must
//! be within 10% of what building the document really allocated. One test
//! in its own binary, so nothing else allocates while it counts.

use std::alloc::System;

use cap::Cap;
use rewind_core::{update_bytes, Doc, Patch};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Live heap bytes held by what `build` returns (built and kept while
/// counting).
fn measured<T>(build: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATOR.allocated();
    let value = build();
    (value, ALLOCATOR.allocated() - before)
}

fn assert_close(what: &str, estimate: usize, real: usize) {
    let error = (estimate as f64 - real as f64).abs() / real as f64;
    assert!(
        error <= 0.10,
        "{what}: heap_bytes {estimate} vs {real} allocated ({:.1}% off)",
        100.0 * error
    );
}

#[test]
fn heap_bytes_matches_the_allocator() {
    // The bench's shape: 100k keys of 15 bytes, small integers.
    let (flat, real) = measured(|| {
        (0..100_000)
            .map(|i| (format!("key_{i:011}"), i as i64))
            .collect::<Doc>()
    });
    assert_close("flat object", flat.heap_bytes(), real);

    // Nested: objects of objects, long and short keys, strings, small and
    // large arrays, parsed from text.
    let text = {
        let users: serde_json::Map<String, serde_json::Value> = (0..2_000)
            .map(|i| {
                (
                    format!("user_{i:05}"),
                    json!({
                        "name": format!("User number {i}"),
                        "email": format!("user{i}@example.com"),
                        "a_rather_long_attribute_name": i % 7 == 0,
                        "score": i as f64 * 0.5,
                        "tags": ["a", "b", format!("t{}", i % 13)],
                        "history": (0..(i % 100)).collect::<Vec<_>>(),
                        "prefs": {"theme": "dark", "lang": "en", "n": i},
                    }),
                )
            })
            .collect();
        serde_json::to_string(&json!({"users": users, "version": "1.2.3"})).unwrap()
    };
    let (nested, real) = measured(|| Doc::parse(&text).unwrap());
    assert_close("nested document", nested.heap_bytes(), real);

    // One update copies about `update_bytes` (the new path; the old one
    // stays alive in `flat`).
    let patch =
        Patch::from_json(&json!([{"op": "replace", "path": "/key_00000050000", "value": -1}]))
            .unwrap();
    let (updated, real) = measured(|| flat.apply_patch(&patch).unwrap());
    assert_close("one update", update_bytes(100_000), real);
    drop((updated, nested, flat));
}
