//! Wall-clock instants and the injectable clock the timeline reads them from.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::InvalidInput;

/// A UTC instant with microsecond precision, shown and parsed as RFC 3339.
///
/// Stored as microseconds since the Unix epoch, so it is `Copy`, totally
/// ordered and cheap to compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The instant `micros` microseconds after the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_unix_micros(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000) as i64)
    }

    /// Parses an RFC 3339 instant such as `2026-03-14T12:30:00Z`; offsets are
    /// converted to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, InvalidInput> {
        let parsed =
            OffsetDateTime::parse(text, &Rfc3339).map_err(|e| InvalidInput::Timestamp {
                input: text.chars().take(64).collect(),
                reason: e.to_string(),
            })?;
        Ok(Timestamp((parsed.unix_timestamp_nanos() / 1_000) as i64))
    }

    /// This instant moved by `micros` microseconds (saturating).
    pub fn add_micros(self, micros: i64) -> Self {
        Timestamp(self.0.saturating_add(micros))
    }

    /// This instant moved forward by `seconds` seconds (saturating).
    pub fn add_secs(self, seconds: i64) -> Self {
        self.add_micros(seconds.saturating_mul(1_000_000))
    }

    fn to_offset(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_offset().and_then(|t| t.format(&Rfc3339).ok()) {
            Some(text) => f.write_str(&text),
            None => write!(f, "@{}us", self.0),
        }
    }
}

impl FromStr for Timestamp {
    type Err = InvalidInput;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Where a timeline reads the time. Injected so tests and replays control it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant. May step backwards; the timeline makes the times it
    /// records non-decreasing anyway.
    fn now(&self) -> Timestamp;
}

/// The system wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Clones share the same instant.
#[derive(Clone, Debug)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            micros: Arc::new(AtomicI64::new(start.as_unix_micros())),
        }
    }

    /// Sets the clock to `at` (which may be in the past).
    pub fn set(&self, at: Timestamp) {
        self.micros.store(at.as_unix_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance_secs(&self, seconds: i64) {
        self.micros
            .fetch_add(seconds.saturating_mul(1_000_000), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.micros.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t = Timestamp::parse_rfc3339("2026-03-14T12:30:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-03-14T12:30:00Z");
        let offset = Timestamp::parse_rfc3339("2026-03-14T13:30:00+01:00").unwrap();
        assert_eq!(offset, t);
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn manual_clock_is_shared_by_clones() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let other = clock.clone();
        clock.advance_secs(5);
        assert_eq!(other.now(), Timestamp::from_unix_micros(5_000_000));
    }
}
