//! The guide's "Only 1 new value! 99 values still shared!": after one key of a
//! 100-key object is replaced through the timeline, the old revision, the
//! snapshot and the new head hold the very same string allocations for the
//! other 99 values (and keys); only the replaced value is new.

use std::sync::Arc;

use anyhow::Result;
use rewind_core::{
    Doc, ManualClock, NamedOptions, Patch, Revision, SnapshotName, StateRef, Timeline,
    TimelineConfig, Timestamp,
};
use serde_json::json;

/// The same allocation: `Doc::ptr_eq`, and for strings the `Arc<str>` itself.
fn same_string(a: &Doc, b: &Doc) -> bool {
    match (a, b) {
        (Doc::String(x), Doc::String(y)) => a.ptr_eq(b) && Arc::ptr_eq(x, y),
        _ => false,
    }
}

#[test]
fn replacing_one_key_of_100_shares_the_other_99_values() -> Result<()> {
    let s0: Doc = (1..=100)
        .map(|i| (format!("key_{i}"), format!("value_{i}")))
        .collect();
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-03-14T10:00:00Z")?);
    let mut timeline = Timeline::new(s0, TimelineConfig::default(), Arc::new(clock))?;
    timeline.snapshot_named(SnapshotName::new("v1.0")?, NamedOptions::default())?;

    timeline.apply(&Patch::from_json(&json!([
        {"op": "replace", "path": "/key_1", "value": "NEW!"}
    ]))?)?;

    let old = timeline.state_at(&StateRef::Revision(Revision(0)))?;
    let snapshot = timeline.state_at(&StateRef::Snapshot(SnapshotName::new("v1.0")?))?;
    let new = timeline.head();
    assert_eq!(old["key_1"], "value_1", "original preserved");
    assert_eq!(snapshot["key_1"], "value_1", "original preserved");
    assert_eq!(new["key_1"], "NEW!");
    assert!(!old["key_1"].ptr_eq(&new["key_1"]));
    assert!(!same_string(&old["key_1"], &new["key_1"]));

    let (old_map, new_map) = (old.as_object().unwrap(), new.as_object().unwrap());
    assert_eq!((old_map.len(), new_map.len()), (100, 100));
    let mut shared = 0;
    for ((old_key, old_value), (new_key, new_value)) in old_map.iter().zip(new_map.iter()) {
        // Short keys are stored inline in the map's leaves: nothing on the
        // heap to share, and `ptr_eq` holds for equal inline keys. A key
        // spilled to the heap must be the very same `Arc<str>`.
        assert!(old_key.ptr_eq(new_key), "key {old_key} was copied");
        if &**old_key == "key_1" {
            continue;
        }
        assert!(
            same_string(old_value, new_value),
            "value of {old_key} was copied"
        );
        assert!(
            same_string(&snapshot[&**old_key], new_value),
            "snapshot value of {old_key} was copied"
        );
        shared += 1;
    }
    assert_eq!(shared, 99, "99 values still shared");
    Ok(())
}
