//! Typed state: a user struct implementing `rewind_core::Model` instead of
//! the built-in JSON `Doc` — the product guide's snapshots, rollback and
//! State Diff on an inventory whose changes are an enum of domain events.
//!
//! Run with `cargo run --example typed_state`. It checks its own story and
//! exits non-zero if the behaviour is wrong.

use std::fmt;

use anyhow::{ensure, Context, Result};
use rewind::core::imbl::OrdMap;
use rewind::core::TimelineError;
use rewind::prelude::*;
use serde::{Deserialize, Serialize};

/// Stock per item. `OrdMap` is persistent: a clone is O(1) and a change
/// copies only the path to it, so every revision shares the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Inventory {
    items: OrdMap<String, u32>,
    version: u32,
}

/// The events that change an inventory.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum InventoryChange {
    /// Receive stock.
    Add { item: String, qty: u32 },
    /// Ship stock; refused when there is not enough.
    Remove { item: String, qty: u32 },
    /// A new catalogue version.
    Bump,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InventoryError {
    OutOfStock {
        item: String,
        requested: u32,
        available: u32,
    },
    Overflow {
        item: String,
    },
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InventoryError::OutOfStock {
                item,
                requested,
                available,
            } => write!(
                f,
                "cannot remove {requested} '{item}': only {available} in stock"
            ),
            InventoryError::Overflow { item } => write!(f, "stock of '{item}' would overflow"),
        }
    }
}

impl std::error::Error for InventoryError {}

impl Model for Inventory {
    type Change = InventoryChange;
    type Error = InventoryError;

    fn apply(&self, change: &InventoryChange) -> Result<Inventory, InventoryError> {
        let mut next = self.clone();
        match change {
            InventoryChange::Add { item, qty } => {
                let stock = next.items.entry(item.clone()).or_default();
                *stock = stock
                    .checked_add(*qty)
                    .ok_or_else(|| InventoryError::Overflow { item: item.clone() })?;
            }
            InventoryChange::Remove { item, qty } => {
                let available = self.items.get(item).copied().unwrap_or(0);
                if *qty > available {
                    return Err(InventoryError::OutOfStock {
                        item: item.clone(),
                        requested: *qty,
                        available,
                    });
                }
                if *qty == available {
                    next.items.remove(item);
                } else {
                    next.items.insert(item.clone(), available - qty);
                }
            }
            InventoryChange::Bump => next.version += 1,
        }
        Ok(next)
    }
    // `to_doc` and `diff` keep their defaults: through serde.
}

fn add(item: &str, qty: u32) -> InventoryChange {
    InventoryChange::Add {
        item: item.into(),
        qty,
    }
}

fn remove(item: &str, qty: u32) -> InventoryChange {
    InventoryChange::Remove {
        item: item.into(),
        qty,
    }
}

fn show(inventory: &Inventory) -> String {
    let items: Vec<_> = inventory
        .items
        .iter()
        .map(|(item, qty)| format!("{item}: {qty}"))
        .collect();
    format!("v{} {{{}}}", inventory.version, items.join(", "))
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Inventory>::start().await?;
    let warehouse = runtime
        .create_tenant("warehouse_eu", Inventory::default())
        .await?;

    for change in [add("bolts", 100), add("nuts", 40), add("gears", 12)] {
        let commit = warehouse.apply(change.clone()).await?;
        println!("revision {}: {change:?}", commit.revision);
    }
    println!("stock: {}", show(&warehouse.current()));

    // A refused change is an error for the caller; the state is untouched.
    let before = warehouse.current();
    let refused = warehouse
        .apply(remove("gears", 20))
        .await
        .err()
        .context("removing more gears than in stock must be refused")?;
    println!("Remove 20 gears -> ❌ {refused}");
    let model_error = match refused.timeline_error() {
        Some(TimelineError::Rejected(rejected)) => rejected.downcast_ref::<InventoryError>(),
        _ => None,
    };
    ensure!(
        model_error
            == Some(&InventoryError::OutOfStock {
                item: "gears".into(),
                requested: 20,
                available: 12
            }),
        "the model's own error comes back typed: {refused:?}"
    );
    ensure!(
        warehouse.current() == before && warehouse.revision() == Revision(3),
        "a refused change leaves state and revision unchanged"
    );

    let v1 = warehouse.snapshot_named("before_shipping").await?;
    println!("📸 'before_shipping' pins revision {}", v1.revision);

    warehouse.apply(remove("bolts", 40)).await?;
    warehouse.apply(remove("gears", 12)).await?;
    warehouse.apply(add("washers", 500)).await?;
    warehouse.apply(InventoryChange::Bump).await?;
    println!("after shipping: {}", show(&warehouse.current()));

    let diff = warehouse.diff(
        &StateRef::Snapshot(SnapshotName::new("before_shipping")?),
        &StateRef::Head,
    )?;
    println!("diff (through serde):");
    for line in diff.to_string().lines() {
        println!("  {line}");
    }
    let paths: Vec<_> = diff
        .entries
        .iter()
        .map(|e| (e.path.to_string(), e.kind))
        .collect();
    ensure!(
        paths
            == [
                ("/items/bolts".to_owned(), ChangeKind::Changed),
                ("/items/gears".to_owned(), ChangeKind::Removed),
                ("/items/washers".to_owned(), ChangeKind::Added),
                ("/version".to_owned(), ChangeKind::Changed),
            ],
        "diff entries: {paths:?}"
    );
    ensure!(
        diff.to_string()
            .lines()
            .any(|l| l == "items.bolts: 100 → 60"),
        "the summary shows bolts 100 → 60"
    );

    let outcome = warehouse
        .rollback_to_named_snapshot("before_shipping")
        .await?;
    println!(
        "rollback_to_named_snapshot(\"before_shipping\") -> revision {}: {}",
        outcome.revision,
        show(&warehouse.current())
    );
    ensure!(
        warehouse.current() == before,
        "the rollback restores the snapshot exactly"
    );
    ensure!(
        outcome.revision == Revision(8),
        "a rollback is a new revision"
    );
    // The shipped state is still there, typed.
    let shipped = warehouse.read_at(&StateRef::Snapshot(outcome.pre_rollback.name.clone()))?;
    ensure!(
        shipped.items.get("washers") == Some(&500) && shipped.version == 1,
        "the pre-rollback snapshot keeps the shipped state: {}",
        show(&shipped)
    );
    // And the model's own diff agrees with the timeline's.
    ensure!(
        before.diff(&shipped)? == diff,
        "Model::diff and Tenant::diff agree"
    );

    runtime.shutdown().await?;
    println!("\ntyped state checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
