//! Numeric identifiers: revisions, transactions and incarnations.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A revision number of a timeline. Revision 0 is the initial state; every
/// committed change, replace or rollback adds one. Revisions never go
/// backwards and are never reused.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The initial revision.
    pub const ZERO: Revision = Revision(0);

    /// The revision number as `u64`.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The revision after this one.
    pub const fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for Revision {
    fn from(value: u64) -> Self {
        Revision(value)
    }
}

/// Identifies a transaction within one timeline. Assigned in increasing order
/// by [`Timeline::begin_transaction`](crate::Timeline::begin_transaction).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct TransactionId(pub u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u64> for TransactionId {
    fn from(value: u64) -> Self {
        TransactionId(value)
    }
}

/// The identity of one creation of a tenant: a tenant deleted and created
/// again under the same id is another incarnation. Links between tenants
/// (a fork's parent) name the incarnation as well as the id, so a later
/// tenant of the same name is never taken for the one linked.
///
/// 128 bits, chosen at creation by the runtime (random), recorded in the
/// tenant's `create` entry and carried in its images, so it is the same
/// after a replay, a passivation or a restart. Written as 32 lowercase hex
/// digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(u128);

impl Incarnation {
    /// The incarnation with this value.
    pub const fn from_u128(value: u128) -> Self {
        Incarnation(value)
    }

    /// Its value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The incarnation of a tenant created before incarnations were
    /// recorded, derived from what its `create` entry holds: its journal
    /// seq (never reused for an id) and its creation instant. Deterministic,
    /// so every replay of that entry derives the same value.
    pub fn legacy(create_seq: u64, created_at: crate::Timestamp) -> Self {
        let at = created_at.as_unix_micros() as u64;
        Incarnation((u128::from(at) << 64) | u128::from(create_seq))
    }

    /// Parses 32 hex digits. Time: O(1).
    pub fn parse(text: &str) -> Result<Self, crate::InvalidInput> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(crate::InvalidInput::Json(format!(
                "an incarnation is 32 hex digits, not '{}'",
                text.chars().take(40).collect::<String>()
            )));
        }
        u128::from_str_radix(text, 16)
            .map(Incarnation)
            .map_err(|e| crate::InvalidInput::Json(e.to_string()))
    }
}

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for Incarnation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Incarnation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Incarnation::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incarnation_round_trips_as_hex() {
        let incarnation = Incarnation::from_u128(0xabc);
        let text = serde_json::to_string(&incarnation).unwrap();
        assert_eq!(text, "\"00000000000000000000000000000abc\"");
        assert_eq!(
            serde_json::from_str::<Incarnation>(&text).unwrap(),
            incarnation
        );
        assert!(serde_json::from_str::<Incarnation>("\"xyz\"").is_err());
        let legacy = Incarnation::legacy(3, crate::Timestamp::from_unix_micros(5));
        assert_eq!(
            legacy,
            Incarnation::legacy(3, crate::Timestamp::from_unix_micros(5))
        );
        assert_ne!(
            legacy,
            Incarnation::legacy(4, crate::Timestamp::from_unix_micros(5))
        );
    }
}
