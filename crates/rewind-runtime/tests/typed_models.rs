//! Typed models are checked early: a state or a change that does not
//! round-trip through JSON (which diffs, rollbacks and the journal need) is
//! refused when it is given, not when a rollback first needs it.

use std::collections::BTreeMap;

use rewind_core::{InvalidInput, Model};
use rewind_runtime::{Error, Runtime};
use serde::{Deserialize, Serialize};

/// Seats by (row, column): tuple keys are not JSON object keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Venue {
    name: String,
    seats: BTreeMap<(u32, u32), bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum VenueChange {
    Rename(String),
    /// Carries a map with tuple keys: not JSON either.
    Book(BTreeMap<(u32, u32), bool>),
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Model for Venue {
    type Change = VenueChange;
    type Error = Never;

    fn apply(&self, change: &VenueChange) -> Result<Self, Never> {
        let mut next = self.clone();
        match change {
            VenueChange::Rename(name) => next.name = name.clone(),
            VenueChange::Book(seats) => next.seats.extend(seats.clone()),
        }
        Ok(next)
    }
}

fn not_json(result: Result<impl std::fmt::Debug, Error>, what: &str) {
    match result {
        Err(Error::Invalid(InvalidInput::ModelNotJson {
            what: found,
            reason,
        })) => {
            assert_eq!(found, what);
            assert!(reason.contains("key must be a string"), "{reason}");
        }
        other => panic!("expected ModelNotJson for the {what}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_state_or_change_that_is_not_json_is_refused_when_given() {
    let runtime = Runtime::<Venue>::start().await.unwrap();
    let booked = Venue {
        name: "hall".into(),
        seats: BTreeMap::from([((1, 2), true)]),
    };
    not_json(runtime.create_tenant("hall", booked.clone()).await, "state");
    assert_eq!(runtime.tenant_count(), 0, "nothing was created");

    // An empty map serializes fine: the tenant exists.
    let venue = runtime
        .create_tenant("hall", Venue::default())
        .await
        .unwrap();
    not_json(venue.replace(booked).await, "state");
    not_json(
        venue
            .apply(VenueChange::Book(BTreeMap::from([((3, 4), true)])))
            .await,
        "change",
    );
    assert_eq!(venue.revision().get(), 0, "nothing was applied");
    let renamed = venue
        .apply(VenueChange::Rename("big hall".into()))
        .await
        .unwrap();
    assert_eq!(renamed.revision.get(), 1);
    assert_eq!(venue.current().name, "big hall");
    runtime.shutdown().await.unwrap();
}
