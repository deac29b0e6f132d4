//! Configuration of tenants and of the supervisor.

use std::time::Duration;

use rewind_core::{InvalidInput, TimelineConfig};
use serde::{Deserialize, Serialize};

/// When a tenant takes auto snapshots on its own. Either trigger fires only
/// if the head moved since the last auto snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AutoSnapshotPolicy {
    /// Take one after this many new revisions (default 100; `None` disables).
    pub every_revisions: Option<u64>,
    /// Take one at this interval (default 60 s; `None` disables).
    pub interval: Option<Duration>,
}

impl Default for AutoSnapshotPolicy {
    fn default() -> Self {
        AutoSnapshotPolicy {
            every_revisions: Some(100),
            interval: Some(Duration::from_secs(60)),
        }
    }
}

impl AutoSnapshotPolicy {
    /// A policy that never takes snapshots on its own.
    pub const DISABLED: AutoSnapshotPolicy = AutoSnapshotPolicy {
        every_revisions: None,
        interval: None,
    };
}

/// Configuration of one tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantConfig {
    /// Retention limits of the tenant's timeline.
    pub timeline: TimelineConfig,
    /// Auto snapshot policy.
    pub auto_snapshot: AutoSnapshotPolicy,
    /// Requests accepted but not yet answered, past which new ones get
    /// `Overloaded` (default 1024).
    pub max_in_flight: usize,
    /// How long a write waits while a transaction holds the write lease
    /// before it fails with `LeaseTimeout` (default 30 s).
    pub lease_timeout: Duration,
    /// Default limit on one transaction step (default 30 s).
    pub step_timeout: Duration,
    /// With a journal, the tenant is passivated (its timeline dropped from
    /// memory, read back from the journal on its next request) once no
    /// handle holds it and it was idle this long (default 2 min; `None`:
    /// never for being idle; the runtime's `max_active` still applies).
    /// Without a journal nothing is passivated.
    pub passivate_after: Option<Duration>,
    /// How many idempotency keys, and for how long, the tenant remembers.
    pub idempotency: IdempotencyWindow,
}

/// How long a tenant remembers the idempotency key of a write: a retry
/// with the key is answered with the original revision while the key is
/// among the newest `keys` keyed writes, younger than `max_age`, and its
/// revision is still in the retained history (`timeline.history_limit`).
/// The key is recorded with the revision, in the same journal entry as the
/// change, so it survives restarts, passivation and (in cluster mode)
/// takeovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IdempotencyWindow {
    /// Keys remembered at most (default 1,000).
    pub keys: usize,
    /// Age after which a key is forgotten (default 24 h).
    pub max_age: Duration,
}

impl Default for IdempotencyWindow {
    fn default() -> Self {
        IdempotencyWindow {
            keys: 1000,
            max_age: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Default of [`TenantConfig::passivate_after`].
pub const DEFAULT_PASSIVATE_AFTER: Duration = Duration::from_secs(120);

impl Default for TenantConfig {
    fn default() -> Self {
        TenantConfig {
            timeline: TimelineConfig::default(),
            auto_snapshot: AutoSnapshotPolicy::default(),
            max_in_flight: 1024,
            lease_timeout: Duration::from_secs(30),
            step_timeout: Duration::from_secs(30),
            passivate_after: Some(DEFAULT_PASSIVATE_AFTER),
            idempotency: IdempotencyWindow::default(),
        }
    }
}

impl TenantConfig {
    /// Checks every limit.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.timeline.validate()?;
        if self.max_in_flight == 0 {
            return Err(InvalidInput::Config(
                "max_in_flight must be at least 1".into(),
            ));
        }
        if self.auto_snapshot.every_revisions == Some(0) {
            return Err(InvalidInput::Config(
                "auto_snapshot.every_revisions must be at least 1 (or None)".into(),
            ));
        }
        if self.auto_snapshot.interval == Some(Duration::ZERO) {
            return Err(InvalidInput::Config(
                "auto_snapshot.interval must be positive (or None)".into(),
            ));
        }
        Ok(())
    }
}

/// OTP-style restart intensity: a tenant that fails more than
/// `max_restarts` times within `period` is not restarted again and answers
/// `TenantFailed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartIntensity {
    /// Restarts allowed within `period` (default 3).
    pub max_restarts: u32,
    /// The sliding window (default 10 s).
    pub period: Duration,
}

impl Default for RestartIntensity {
    fn default() -> Self {
        RestartIntensity {
            max_restarts: 3,
            period: Duration::from_secs(10),
        }
    }
}
