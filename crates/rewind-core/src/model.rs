//! The [`Model`] trait: what a tenant's state must provide.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::delta::{DeltaMismatch, StateDelta};
use crate::diff::Diff;
use crate::doc::{Doc, Patch, DEFAULT_MAX_DEPTH};
use crate::error::{Error, InvalidInput, PatchError};

/// A state type that is cheap to clone (persistent collections inside) and
/// changes only through data.
///
/// `apply` is pure: it returns the next state or an error, and never changes
/// `self`. The runtime calls it under `catch_unwind`, so a panicking model
/// cannot corrupt a timeline.
///
/// [`Doc`] is the built-in model; a typed model is shown in the
/// `typed_state` example.
pub trait Model: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// A serializable description of one transition (an event).
    type Change: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;
    /// Why a change was refused.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The version of this model's serialized form, recorded with every
    /// tenant's `create` entry and every image. Bump it when a change to the
    /// type (a renamed field, a new one without `#[serde(default)]`) means
    /// older records no longer decode, and teach [`upgrade`](Model::upgrade)
    /// the step. Default 1; [`Doc`] is 1 and needs nothing.
    const VERSION: u32 = 1;

    /// Rewrites a state recorded by version `from` (older than
    /// [`VERSION`](Model::VERSION)) into the current form, on its JSON
    /// representation. Recovery and activation call it for every state of a
    /// tenant recorded by an older version (its initial state, the states
    /// of its image, replaced states), then store an image at the current
    /// version. The default changes nothing, so a type that still decodes
    /// its old form (new fields with `#[serde(default)]`) needs no code.
    ///
    /// ```
    /// use rewind_core::Model;
    /// use serde::{Deserialize, Serialize};
    /// use serde_json::{json, Value};
    ///
    /// // Version 2 renamed `name` to `title` and added `env`.
    /// #[derive(Clone, Debug, Serialize, Deserialize)]
    /// struct Flags {
    ///     title: String,
    ///     env: String,
    /// }
    ///
    /// impl Model for Flags {
    ///     type Change = Flags;
    ///     type Error = std::convert::Infallible;
    ///     const VERSION: u32 = 2;
    ///     fn apply(&self, change: &Flags) -> Result<Flags, Self::Error> {
    ///         Ok(change.clone())
    ///     }
    ///     fn upgrade(from: u32, mut state: Value) -> Result<Value, String> {
    ///         if from < 2 {
    ///             let name = state["name"].take();
    ///             state = json!({"title": name, "env": "production"});
    ///         }
    ///         Ok(state)
    ///     }
    ///     fn upgrade_change(from: u32, change: Value) -> Result<Value, String> {
    ///         Self::upgrade(from, change)
    ///     }
    /// }
    ///
    /// let upgraded = Flags::upgrade(1, json!({"name": "checkout"})).unwrap();
    /// assert_eq!(upgraded, json!({"title": "checkout", "env": "production"}));
    /// ```
    fn upgrade(from: u32, state: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = from;
        Ok(state)
    }

    /// As [`upgrade`](Model::upgrade), for a change recorded by version
    /// `from` (a journal entry written before the upgrade). The default
    /// changes nothing.
    fn upgrade_change(from: u32, change: serde_json::Value) -> Result<serde_json::Value, String> {
        let _ = from;
        Ok(change)
    }

    /// The state after `change`, or why it cannot be applied.
    fn apply(&self, change: &Self::Change) -> Result<Self, Self::Error>;

    /// This state as a JSON document, for diffs and views. The default goes
    /// through serde.
    fn to_doc(&self) -> Result<Doc, InvalidInput> {
        let value = serde_json::to_value(self).map_err(|e| InvalidInput::Json(e.to_string()))?;
        Doc::from_json_with_limit(&value, usize::MAX)
    }

    /// The differences from `self` to `other`. The default diffs the
    /// [`to_doc`](Model::to_doc) forms; [`Doc`] diffs structurally, skipping
    /// shared subtrees.
    fn diff(&self, other: &Self) -> Result<Diff, InvalidInput> {
        Ok(Diff::between(&self.to_doc()?, &other.to_doc()?))
    }

    /// Rebuilds a state from its [`to_doc`](Model::to_doc) form. The default
    /// goes through serde.
    fn from_doc(doc: &Doc) -> Result<Self, InvalidInput> {
        serde_json::from_value(doc.to_json()).map_err(|e| InvalidInput::Json(e.to_string()))
    }

    /// Checks that this state round-trips through its document form
    /// ([`to_doc`](Model::to_doc) then [`from_doc`](Model::from_doc)), which
    /// diffs, rollbacks and the journal rely on; the runtime calls it when
    /// a tenant is created or replaced, so a state that cannot is refused
    /// with [`InvalidInput::ModelNotJson`] before anything is stored.
    /// [`Doc`] always does.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use rewind_core::{InvalidInput, Model};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize)]
    /// struct Seats(BTreeMap<(u32, u32), bool>);
    /// # impl Model for Seats {
    /// #     type Change = ();
    /// #     type Error = std::convert::Infallible;
    /// #     fn apply(&self, _: &()) -> Result<Self, Self::Error> { Ok(self.clone()) }
    /// # }
    ///
    /// let seats = Seats(BTreeMap::from([((1, 2), true)]));
    /// assert!(matches!(seats.check_json(), Err(InvalidInput::ModelNotJson { .. })));
    /// ```
    fn check_json(&self) -> Result<(), InvalidInput> {
        let not_json = |e: InvalidInput| InvalidInput::ModelNotJson {
            what: "state",
            reason: e.to_string(),
        };
        let doc = self.to_doc().map_err(not_json)?;
        Self::from_doc(&doc).map_err(not_json)?;
        Ok(())
    }

    /// Checks that `change` round-trips through JSON, as the journal stores
    /// it; the runtime calls it on a tenant's first change. [`Doc`]'s
    /// patches always do.
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use rewind_core::{InvalidInput, Model};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    /// struct Seats(Vec<(u32, u32)>);
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize)]
    /// enum Booking {
    ///     Seat(u32, u32),
    ///     Block(BTreeMap<(u32, u32), bool>),
    /// }
    /// # impl Model for Seats {
    /// #     type Change = Booking;
    /// #     type Error = std::convert::Infallible;
    /// #     fn apply(&self, _: &Booking) -> Result<Self, Self::Error> { Ok(self.clone()) }
    /// # }
    ///
    /// assert!(Seats::check_change_json(&Booking::Seat(1, 2)).is_ok());
    /// let block = Booking::Block(BTreeMap::from([((1, 2), true)]));
    /// assert!(matches!(
    ///     Seats::check_change_json(&block),
    ///     Err(InvalidInput::ModelNotJson { what: "change", .. })
    /// ));
    /// ```
    fn check_change_json(change: &Self::Change) -> Result<(), InvalidInput> {
        let not_json = |e: serde_json::Error| InvalidInput::ModelNotJson {
            what: "change",
            reason: e.to_string(),
        };
        let value = serde_json::to_value(change).map_err(not_json)?;
        serde_json::from_value::<Self::Change>(value).map_err(not_json)?;
        Ok(())
    }

    /// An estimate of the heap bytes this state owns, for
    /// [`Timeline::memory`](crate::Timeline::memory). A timeline calls it
    /// once for its initial state and, for a model with
    /// [`history_delta`](Model::history_delta), follows later states
    /// through their deltas; without deltas it calls it on every new head,
    /// so an override must be cheap. The default is 0 (unknown); [`Doc`]
    /// walks itself once.
    fn heap_bytes(&self) -> usize {
        0
    }

    /// The delta between `self` (a newer state) and `older`, so a timeline
    /// can keep cold history as deltas instead of whole states. The default is `None`: every retained state stays a
    /// whole value (with whatever sharing the type has). [`Doc`] returns a
    /// [`StateDelta`] of what changed.
    fn history_delta(&self, older: &Self) -> Option<StateDelta> {
        let _ = older;
        None
    }

    /// The delta between `next` (which is `change` applied to `self`) and
    /// `self`: what [`history_delta`](Model::history_delta) on
    /// `next` gives, which is the default; a model that knows where a
    /// change writes can make it without a diff ([`Doc`] does, from the
    /// patch's paths).
    fn history_delta_of_change(&self, change: &Self::Change, next: &Self) -> Option<StateDelta> {
        let _ = change;
        next.history_delta(self)
    }

    /// The delta between `next` and `self`, given `diff`, the diff from
    /// `self` to `next` already made (a rollback makes it for its
    /// outcome). The default is [`history_delta`](Model::history_delta)
    /// on `next`; [`Doc`] makes it from the diff's paths.
    fn history_delta_of_diff(&self, diff: &Diff, next: &Self) -> Option<StateDelta> {
        let _ = diff;
        next.history_delta(self)
    }

    /// Rebuilds the older state from `self` and a delta made by
    /// [`history_delta`](Model::history_delta) on the same pair of
    /// states. Only called for models whose `history_delta` returns
    /// deltas.
    fn apply_history_delta(self, delta: &StateDelta) -> Result<Self, DeltaMismatch> {
        let _ = delta;
        Err(DeltaMismatch)
    }

    /// Rebuilds the newer state from `self` (the older one) and a delta
    /// made by [`history_delta`](Model::history_delta) on that pair: the
    /// delta applied the other way, for reads that walk forward from an
    /// older state held whole or cached.
    fn apply_history_delta_forward(self, delta: &StateDelta) -> Result<Self, DeltaMismatch> {
        let _ = delta;
        Err(DeltaMismatch)
    }

    /// Makes a delta read back from an image share the values it holds
    /// with `self` where they are equal (see [`StateDelta::share_with`]).
    /// The default does nothing.
    fn share_history_delta(&self, delta: &mut StateDelta) {
        let _ = delta;
    }

    /// Applies a patch made by [`diff`](Model::diff) to this state. Used to
    /// store a timeline's states as a chain of diffs and rebuild them. The
    /// default goes through the document form (no sharing with `self`);
    /// [`Doc`] patches in place, sharing every untouched subtree.
    fn apply_diff(&self, patch: &Patch) -> Result<Self, Error> {
        let doc = self.to_doc()?.apply_patch_unlimited(patch)?;
        Ok(Self::from_doc(&doc)?)
    }
}

impl Model for Doc {
    type Change = Patch;
    type Error = PatchError;

    /// Always: a document is its own JSON form.
    fn check_json(&self) -> Result<(), InvalidInput> {
        Ok(())
    }

    /// Always: a patch is JSON.
    fn check_change_json(_: &Patch) -> Result<(), InvalidInput> {
        Ok(())
    }

    /// Applies an RFC 6902 patch atomically, results limited to
    /// [`DEFAULT_MAX_DEPTH`] levels.
    fn apply(&self, patch: &Patch) -> Result<Doc, PatchError> {
        patch.apply_to(self, DEFAULT_MAX_DEPTH)
    }

    fn to_doc(&self) -> Result<Doc, InvalidInput> {
        Ok(self.clone())
    }

    fn diff(&self, other: &Doc) -> Result<Diff, InvalidInput> {
        Ok(Diff::between(self, other))
    }

    fn from_doc(doc: &Doc) -> Result<Doc, InvalidInput> {
        Ok(doc.clone())
    }

    fn apply_diff(&self, patch: &Patch) -> Result<Doc, Error> {
        Ok(self.apply_patch_unlimited(patch)?)
    }

    fn heap_bytes(&self) -> usize {
        Doc::heap_bytes(self)
    }

    fn history_delta(&self, older: &Doc) -> Option<StateDelta> {
        Some(StateDelta::between(self, older))
    }

    fn history_delta_of_change(&self, patch: &Patch, next: &Doc) -> Option<StateDelta> {
        Some(StateDelta::of_patch(self, patch, next))
    }

    fn history_delta_of_diff(&self, diff: &Diff, next: &Doc) -> Option<StateDelta> {
        Some(StateDelta::of_diff(self, diff, next))
    }

    fn apply_history_delta(self, delta: &StateDelta) -> Result<Doc, DeltaMismatch> {
        delta.apply(self)
    }

    fn apply_history_delta_forward(self, delta: &StateDelta) -> Result<Doc, DeltaMismatch> {
        delta.apply_forward(self)
    }

    fn share_history_delta(&self, delta: &mut StateDelta) {
        delta.share_with(self);
    }
}
