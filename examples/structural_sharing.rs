//! Structural Sharing Visualization, from the product guide.
//!
//! Run with `cargo run --example structural_sharing`.
//!
//! A tenant holds an object of 100 keys, `key_1 → "value_1"` ..
//! `key_100 → "value_100"`. Snapshot "v1.0" shares the whole document with
//! the head (no copy). Modifying `key_1` copies only the path to it: the 99
//! other values stay the very same allocations in the snapshot and in the
//! head, checked with [`Doc::ptr_eq`] (strings are shared `Arc<str>`, so
//! pointer equality means no data was duplicated). The example exits
//! non-zero if the sharing is not what the guide draws.

use anyhow::{ensure, Context, Result};
use rewind::prelude::*;
use serde_json::{json, Map, Value};

/// Counts the keys of `a` whose value is the same allocation in `b`, and
/// lists the keys whose value is not.
fn sharing(a: &Doc, b: &Doc) -> Result<(usize, Vec<String>)> {
    let a = a.as_object().context("an object")?;
    let b = b.as_object().context("an object")?;
    let mut shared = 0;
    let mut new = Vec::new();
    for (key, value) in a {
        match b.get(key) {
            Some(other) if value.ptr_eq(other) => shared += 1,
            _ => new.push(key.to_string()),
        }
    }
    Ok((shared, new))
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let values: Map<String, Value> = (1..=100)
        .map(|i| (format!("key_{i}"), Value::String(format!("value_{i}"))))
        .collect();
    let initial = Doc::from_json(&Value::Object(values.clone()))?;
    let tenant = runtime.create_tenant("acme_corp", initial).await?;

    println!("== State S0 ==");
    println!(
        "persistent map (a B+tree of shared nodes) of {} keys: key_1 → {}, key_2 → {}, ..., key_100 → {}",
        tenant.current().as_object().map_or(0, |o| o.len()),
        tenant.current()["key_1"],
        tenant.current()["key_2"],
        tenant.current()["key_100"]
    );

    println!("\n== After Snapshot Creation ==");
    let snap = tenant.snapshot_named("v1.0").await?;
    let v1 = tenant.read_at(&StateRef::Snapshot(snap.name.clone()))?;
    let head = tenant.current();
    let (shared, new) = sharing(&v1, &head)?;
    println!(
        "📸 \"{}\" at revision {}: the whole document is shared with S0: {}",
        snap.name,
        snap.revision,
        v1.ptr_eq(&head)
    );
    println!("{shared} of 100 values shared (only Arc pointers, no data duplication!)");
    ensure!(
        v1.ptr_eq(&head),
        "a snapshot must share the head, not copy it"
    );
    ensure!(
        shared == 100 && new.is_empty(),
        "all 100 values must be shared"
    );

    println!("\n== After Modifying One Key ==");
    let commit = tenant
        .apply(Patch::from_json(&json!([
            {"op": "replace", "path": "/key_1", "value": "NEW!"}
        ]))?)
        .await?;
    let s1 = tenant.current();
    let v1 = tenant.read_at(&StateRef::Snapshot(snap.name.clone()))?;
    let (shared, new) = sharing(&v1, &s1)?;
    println!(
        "S1 (revision {}): key_1 → {}    snapshot \"v1.0\": key_1 → {}  ← Original preserved!",
        commit.revision, s1["key_1"], v1["key_1"]
    );
    for key in ["key_2", "key_3", "key_100"] {
        println!(
            "  {key:>7} → {:<11} ◄──shared──► {:<11} same allocation: {}",
            s1[key].to_string(),
            v1[key].to_string(),
            s1[key].ptr_eq(&v1[key])
        );
    }
    println!(
        "Only {} new value! {shared} values still shared!",
        new.len()
    );
    ensure!(
        shared == 99 && new == ["key_1"],
        "99 values must be shared and only key_1 new; got {shared} shared, new {new:?}"
    );
    ensure!(
        s1["key_1"] == "NEW!" && v1["key_1"] == "value_1",
        "the head has the new value and the snapshot the original"
    );
    ensure!(
        !v1.ptr_eq(&s1),
        "the modified document is a new version, not the snapshot"
    );

    // The diff only visits what changed: shared values are skipped by
    // pointer, so it finds exactly one change among 100 keys.
    let diff = tenant.diff(&StateRef::Snapshot(snap.name.clone()), &StateRef::Head)?;
    println!(
        "diff v1.0 → head: {} change(s): {}",
        diff.entries.len(),
        serde_json::to_string(&diff.patch)?
    );
    ensure!(
        diff.entries.len() == 1 && diff.summary.changed == 1,
        "the diff must hold the one changed key"
    );

    // Control: an equal document built separately shares nothing, so the
    // counts above measure sharing, not equality.
    let copy = Doc::from_json(&Value::Object(values))?;
    let (copy_shared, _) = sharing(&v1, &copy)?;
    println!("control: an equal document built from scratch shares {copy_shared} of 100 values");
    ensure!(copy == v1, "the control copy is equal by value");
    ensure!(copy_shared == 0, "the control copy must share nothing");

    runtime.shutdown().await?;
    println!("\nstructural sharing checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
