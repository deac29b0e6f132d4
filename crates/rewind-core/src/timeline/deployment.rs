//! Guarded deployments as a timeline records them: what was deployed, the
//! checks and limits, every measurement, and how it ended.
//!
//! The decisions are pure and live here, so a replay of the journal makes
//! them again exactly: [`Timeline::start_deployment`] takes the protected
//! `pre_<name>` snapshot and applies the change in one step;
//! [`Timeline::record_measurements`] appends one round of measurements and
//! rolls back to `pre_<name>` when the failures pass `failure_limit` or a
//! check errs more than `error_limit` times in a row;
//! [`Timeline::finish_deployment`] promotes (unprotects the snapshot) or
//! aborts (rolls back). Running the checks on a schedule is the runtime's
//! job.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Cause, Commit, CommitMeta, NamedOptions, RollbackOutcome, RollbackTarget, SnapshotTaken,
    Timeline,
};
use crate::error::{Error, InvalidInput, TimelineError};
use crate::id::Revision;
use crate::model::Model;
use crate::name::SnapshotName;
use crate::time::Timestamp;

/// Finished deployments a timeline keeps (the running one is always kept).
pub const KEPT_DEPLOYMENTS: usize = 16;

/// Most checks one deployment may run.
pub const MAX_CHECKS: usize = 16;

/// Most measurement rounds one deployment may take (`window / interval`).
pub const MAX_ROUNDS: u64 = 10_000;

/// Shortest check interval.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The author recorded on revisions a deployment makes by itself.
pub const DEPLOYMENT_AUTHOR: &str = "rewind-deploy";

/// Identifies a deployment within its tenant; numbered from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub u64);

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a [`Condition`] compares a value with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Comparison {
    /// The operator as written: `<`, `<=`, `>` or `>=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// A healthy value, as a comparison with a number: `< 0.9`, `>= 100`.
///
/// Written and read as that text (`"< 0.9"`). A value that is not a number
/// (NaN) never holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Condition {
    /// The comparison.
    pub comparison: Comparison,
    /// The number compared with.
    pub threshold: f64,
}

impl Condition {
    /// Whether `value` is healthy.
    pub fn holds(&self, value: f64) -> bool {
        match self.comparison {
            Comparison::Less => value < self.threshold,
            Comparison::LessOrEqual => value <= self.threshold,
            Comparison::Greater => value > self.threshold,
            Comparison::GreaterOrEqual => value >= self.threshold,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.comparison.as_str(), self.threshold)
    }
}

impl FromStr for Condition {
    type Err = InvalidInput;

    /// `< 0.9`, `<=0.9`, `> 10`, `>= 1e3` (spaces optional).
    fn from_str(text: &str) -> Result<Self, InvalidInput> {
        let invalid = || InvalidInput::Reference {
            what: "condition",
            input: text.chars().take(64).collect(),
            expected: "a comparison and a number, e.g. '< 0.9', '<= 100', '> 0', '>= 0.5'",
        };
        let trimmed = text.trim();
        let (comparison, rest) = if let Some(rest) = trimmed.strip_prefix("<=") {
            (Comparison::LessOrEqual, rest)
        } else if let Some(rest) = trimmed.strip_prefix(">=") {
            (Comparison::GreaterOrEqual, rest)
        } else if let Some(rest) = trimmed.strip_prefix('<') {
            (Comparison::Less, rest)
        } else if let Some(rest) = trimmed.strip_prefix('>') {
            (Comparison::Greater, rest)
        } else {
            return Err(invalid());
        };
        let threshold: f64 = rest.trim().parse().map_err(|_| invalid())?;
        if !threshold.is_finite() {
            return Err(invalid());
        }
        Ok(Condition {
            comparison,
            threshold,
        })
    }
}

impl Serialize for Condition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A health check, as data: what a deployment records and what a runtime
/// rebuilds the check from when it resumes a deployment after a restart.
///
/// Written `{"prometheus": {"url", "query", "condition"}}`,
/// `{"http": {"url", "expect_status"}}` or `{"custom": {"name"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckSpec {
    /// A Prometheus instant query whose result (a scalar, or a vector of
    /// exactly one sample) must meet `condition`.
    Prometheus {
        /// The Prometheus base URL, e.g. `http://127.0.0.1:9090`.
        url: String,
        /// The PromQL expression.
        query: String,
        /// What a healthy value is.
        condition: Condition,
    },
    /// An HTTP `GET` that must answer `expect_status`.
    Http {
        /// The URL fetched.
        url: String,
        /// The healthy status code.
        #[serde(default = "ok_status")]
        expect_status: u16,
    },
    /// A check the embedding program supplies, found by name when a
    /// deployment resumes.
    Custom {
        /// The check's name.
        name: String,
    },
}

fn ok_status() -> u16 {
    200
}

impl CheckSpec {
    /// How measurements and rollback messages name the check:
    /// `prometheus max(x) < 0.9`, `http http://host/health == 200`, or the
    /// custom name.
    pub fn label(&self) -> String {
        match self {
            CheckSpec::Prometheus {
                query, condition, ..
            } => format!("prometheus {query} {condition}"),
            CheckSpec::Http { url, expect_status } => format!("http {url} == {expect_status}"),
            CheckSpec::Custom { name } => name.clone(),
        }
    }
}

/// What a deployment runs and how it decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    /// The deployment's name; its snapshot is `pre_<name>`.
    pub name: SnapshotName,
    /// The checks evaluated every interval.
    pub checks: Vec<CheckSpec>,
    /// Time between measurement rounds, in milliseconds.
    pub interval_ms: u64,
    /// How long the deployment is monitored, in milliseconds.
    pub window_ms: u64,
    /// Failed measurements tolerated; one more rolls back (0: the first
    /// failure rolls back).
    pub failure_limit: u32,
    /// Errors of one check tolerated in a row (an unreachable Prometheus);
    /// one more rolls back.
    pub error_limit: u32,
}

impl DeploymentSpec {
    /// A spec with the defaults: no checks, 60 s interval, 5 min window,
    /// failure limit 0, error limit 4.
    pub fn new(name: SnapshotName) -> Self {
        DeploymentSpec {
            name,
            checks: Vec::new(),
            interval_ms: 60_000,
            window_ms: 300_000,
            failure_limit: 0,
            error_limit: 4,
        }
    }

    /// The check interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The monitoring window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// The measurement rounds a whole window holds.
    pub fn rounds(&self) -> u64 {
        self.window_ms / self.interval_ms.max(1)
    }

    /// The protected snapshot taken before the change: `pre_<name>`.
    pub fn pre_snapshot(&self) -> Result<SnapshotName, InvalidInput> {
        SnapshotName::new(format!("pre_{}", self.name))
    }

    /// Checks the limits: at most [`MAX_CHECKS`] checks, an interval of at
    /// least [`MIN_INTERVAL`], a window of at least one interval and at most
    /// [`MAX_ROUNDS`] of them, and a valid `pre_<name>`.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let config = |reason: String| Err(InvalidInput::Config(reason));
        self.pre_snapshot()?;
        if self.checks.len() > MAX_CHECKS {
            return config(format!(
                "a deployment runs at most {MAX_CHECKS} checks, not {}",
                self.checks.len()
            ));
        }
        if self.interval() < MIN_INTERVAL {
            return config(format!(
                "the check interval must be at least {}, not {}",
                format_duration(MIN_INTERVAL),
                format_duration(self.interval())
            ));
        }
        if self.window_ms < self.interval_ms {
            return config(format!(
                "the window ({}) must hold at least one interval ({})",
                format_duration(self.window()),
                format_duration(self.interval())
            ));
        }
        if self.rounds() > MAX_ROUNDS {
            return config(format!(
                "the window holds {} intervals; at most {MAX_ROUNDS} are allowed",
                self.rounds()
            ));
        }
        for check in &self.checks {
            if let CheckSpec::Custom { name } = check {
                if name.is_empty() || name.len() > 128 {
                    return config("a custom check needs a name of 1-128 characters".into());
                }
            }
        }
        Ok(())
    }
}

/// What the deployment changes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", bound = "")]
pub enum DeployChange<M: Model> {
    /// A change applied through the model (for `Doc`, a JSON Patch).
    Change(M::Change),
    /// A whole new state.
    State(M),
}

/// The result of one check in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    /// Healthy.
    Pass,
    /// Unhealthy: counts towards `failure_limit`.
    Fail,
    /// Could not tell (unreachable, timed out, no data): counts towards
    /// `error_limit` in a row.
    Error,
}

impl CheckResult {
    /// The label: `pass`, `fail` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckResult::Pass => "pass",
            CheckResult::Fail => "fail",
            CheckResult::Error => "error",
        }
    }
}

/// One check's result in one round, before the timeline stamps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The check's label ([`CheckSpec::label`]).
    pub check: String,
    /// Pass, fail or error.
    pub result: CheckResult,
    /// The value measured, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Why it failed or erred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One recorded measurement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// When it was recorded.
    pub at: Timestamp,
    /// What was observed.
    #[serde(flatten)]
    pub observation: Observation,
}

/// Where a deployment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// In its window: checks are evaluated every interval.
    Monitoring,
    /// The window ended healthy (or promotion was asked for early).
    Promoted,
    /// A check failed past its limit: rolled back to `pre_<name>`.
    RolledBack,
    /// Aborted on request: rolled back to `pre_<name>`.
    Aborted,
}

impl DeploymentStatus {
    /// The label: `monitoring`, `promoted`, `rolled_back` or `aborted`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Monitoring => "monitoring",
            DeploymentStatus::Promoted => "promoted",
            DeploymentStatus::RolledBack => "rolled_back",
            DeploymentStatus::Aborted => "aborted",
        }
    }
}

impl fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deployment as the timeline holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentInfo {
    /// Its id within the tenant.
    pub id: DeploymentId,
    /// What it runs.
    pub spec: DeploymentSpec,
    /// Where it is.
    pub status: DeploymentStatus,
    /// The protected snapshot of the state before it (`pre_<name>`).
    pub pre_snapshot: SnapshotName,
    /// The revision `pre_<name>` pins.
    pub base_revision: Revision,
    /// The revision the change made.
    pub revision: Revision,
    /// When it started (the change's commit time).
    pub started_at: Timestamp,
    /// When its window ends.
    pub ends_at: Timestamp,
    /// When it was promoted, rolled back or aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
    /// Why it ended that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Every measurement, oldest first.
    pub measurements: Vec<Measurement>,
    /// The rollback it made, if it rolled back or was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackOutcome>,
}

impl DeploymentInfo {
    /// Whether it is still monitoring.
    pub fn is_open(&self) -> bool {
        self.status == DeploymentStatus::Monitoring
    }

    /// Failed measurements so far.
    pub fn failures(&self) -> usize {
        self.measurements
            .iter()
            .filter(|m| m.observation.result == CheckResult::Fail)
            .count()
    }

    /// How many of `check`'s newest measurements in a row are errors.
    pub fn errors_in_a_row(&self, check: &str) -> usize {
        self.measurements
            .iter()
            .rev()
            .filter(|m| m.observation.check == check)
            .take_while(|m| m.observation.result == CheckResult::Error)
            .count()
    }

    /// Why the measurements so far call for a rollback, if they do.
    fn verdict(&self, round: &[Observation]) -> Option<String> {
        if self.failures() > self.spec.failure_limit as usize {
            let failed = round
                .iter()
                .find(|o| o.result == CheckResult::Fail)
                .map(describe)
                .unwrap_or_default();
            return Some(format!(
                "check {failed}; {} failures, limit {}",
                self.failures(),
                self.spec.failure_limit
            ));
        }
        round.iter().find_map(|o| {
            let errors = self.errors_in_a_row(&o.check);
            (errors > self.spec.error_limit as usize).then(|| {
                format!(
                    "check {} erred {errors} times in a row (limit {})",
                    describe(o),
                    self.spec.error_limit
                )
            })
        })
    }
}

/// `'label' failed: reason (value 0.95)`.
fn describe(observation: &Observation) -> String {
    let mut text = format!("'{}' {}", observation.check, verb(observation.result));
    if let Some(reason) = &observation.reason {
        text.push_str(": ");
        text.push_str(reason);
    }
    if let Some(value) = observation.value {
        text.push_str(&format!(" (value {value})"));
    }
    text
}

fn verb(result: CheckResult) -> &'static str {
    match result {
        CheckResult::Pass => "passed",
        CheckResult::Fail => "failed",
        CheckResult::Error => "erred",
    }
}

/// How [`Timeline::finish_deployment`] ends a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishAction {
    /// Keep the change: unprotect `pre_<name>`.
    Promote {
        /// Why (e.g. `window ended` or `promoted on request`).
        reason: String,
    },
    /// Roll back to `pre_<name>` now.
    Abort {
        /// Why.
        reason: String,
    },
}

/// What [`Timeline::start_deployment`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentStarted {
    /// The deployment, monitoring.
    pub deployment: DeploymentInfo,
    /// The revision the change made.
    pub commit: Commit,
    /// The protected `pre_<name>` snapshot (and what retention pruned).
    pub snapshot: SnapshotTaken,
}

/// A deployment that ended, and the rollback it made if any.
#[derive(Clone, Debug, PartialEq)]
pub struct DeploymentEnded {
    /// The deployment as it ended.
    pub deployment: DeploymentInfo,
}

impl<M: Model> Timeline<M> {
    /// The deployments kept (the running one and the last
    /// [`KEPT_DEPLOYMENTS`] finished), oldest first.
    pub fn deployments(&self) -> Vec<DeploymentInfo> {
        self.deployments.iter().cloned().collect()
    }

    /// One kept deployment.
    pub fn deployment(&self, id: DeploymentId) -> Option<&DeploymentInfo> {
        self.deployments.iter().find(|d| d.id == id)
    }

    /// The deployment in its window, if one is.
    pub fn open_deployment(&self) -> Option<&DeploymentInfo> {
        self.deployments.iter().rev().find(|d| d.is_open())
    }

    /// Starts a guarded deployment, in one step: takes the protected named
    /// snapshot `pre_<name>` of the head, applies `change` as a new
    /// revision, and records the deployment as monitoring until
    /// `started_at + window`.
    ///
    /// Errors (nothing changed): an invalid spec; another deployment
    /// monitoring (`DeploymentRunning`); `pre_<name>` already taken
    /// (`SnapshotExists`); the named snapshot quota; a change the model
    /// refuses.
    pub fn start_deployment(
        &mut self,
        spec: DeploymentSpec,
        change: &DeployChange<M>,
        meta: CommitMeta,
    ) -> Result<DeploymentStarted, Error> {
        spec.validate()?;
        if let Some(open) = self.open_deployment() {
            return Err(TimelineError::DeploymentRunning(open.id).into());
        }
        let pre_snapshot = spec.pre_snapshot()?;
        let mut next = self.clone();
        let at = next.stamp();
        let snapshot = next.snapshot_named_at(
            pre_snapshot.clone(),
            NamedOptions {
                protected: true,
                replace: false,
            },
            at,
        )?;
        let base_revision = next.revision();
        let (state, cause) = match change {
            DeployChange::Change(change) => (
                next.head().apply(change).map_err(super::reject)?,
                Cause::Change,
            ),
            DeployChange::State(state) => (state.clone(), Cause::Replace),
        };
        let meta = if meta == CommitMeta::default() {
            CommitMeta::by(DEPLOYMENT_AUTHOR, format!("deploy {}", spec.name))
        } else {
            meta
        };
        let commit = next.push_revision_at(state, cause, meta, at);
        next.next_deployment += 1;
        let window = i64::try_from(spec.window_ms.saturating_mul(1000)).unwrap_or(i64::MAX);
        let deployment = DeploymentInfo {
            id: DeploymentId(next.next_deployment),
            status: DeploymentStatus::Monitoring,
            pre_snapshot,
            base_revision,
            revision: commit.revision,
            started_at: at,
            ends_at: at.add_micros(window),
            ended_at: None,
            reason: None,
            measurements: Vec::new(),
            rollback: None,
            spec,
        };
        next.deployments.push_back(deployment.clone());
        next.prune_deployments();
        *self = next;
        Ok(DeploymentStarted {
            deployment,
            commit,
            snapshot,
        })
    }

    /// Records one round of measurements of the monitoring deployment `id`.
    /// When the failures pass `failure_limit`, or a check has erred more
    /// than `error_limit` times in a row, it rolls back to `pre_<name>` in
    /// the same step (the rollback revision's message names the check and
    /// its reason) and returns the ended deployment; otherwise `None`.
    pub fn record_measurements(
        &mut self,
        id: DeploymentId,
        round: Vec<Observation>,
    ) -> Result<Option<DeploymentEnded>, Error> {
        let index = self.monitoring(id)?;
        let mut next = self.clone();
        let at = next.stamp();
        let mut deployment = next.deployments[index].clone();
        deployment.measurements.extend(
            round
                .iter()
                .cloned()
                .map(|observation| Measurement { at, observation }),
        );
        let verdict = deployment.verdict(&round);
        next.deployments[index] = deployment;
        let ended = match verdict {
            Some(reason) => {
                Some(next.end_deployment(index, DeploymentStatus::RolledBack, reason, at)?)
            }
            None => None,
        };
        *self = next;
        Ok(ended)
    }

    /// Ends the monitoring deployment `id` now: `Promote` keeps the change
    /// and unprotects `pre_<name>`; `Abort` rolls back to it.
    pub fn finish_deployment(
        &mut self,
        id: DeploymentId,
        action: &FinishAction,
    ) -> Result<DeploymentEnded, Error> {
        let index = self.monitoring(id)?;
        let mut next = self.clone();
        let at = next.stamp();
        let ended = match action {
            FinishAction::Promote { reason } => {
                next.end_deployment(index, DeploymentStatus::Promoted, reason.clone(), at)?
            }
            FinishAction::Abort { reason } => {
                next.end_deployment(index, DeploymentStatus::Aborted, reason.clone(), at)?
            }
        };
        *self = next;
        Ok(ended)
    }

    /// Index of deployment `id`, if it is monitoring.
    fn monitoring(&self, id: DeploymentId) -> Result<usize, TimelineError> {
        match self.deployments.iter().position(|d| d.id == id) {
            None => Err(TimelineError::DeploymentNotFound(id)),
            Some(i) if !self.deployments[i].is_open() => Err(TimelineError::DeploymentFinished {
                id,
                status: self.deployments[i].status,
            }),
            Some(i) => Ok(i),
        }
    }

    /// Rolls back (unless promoting), unprotects `pre_<name>`, and records
    /// the end. Runs on a working copy: an error leaves it to be dropped.
    fn end_deployment(
        &mut self,
        index: usize,
        status: DeploymentStatus,
        reason: String,
        at: Timestamp,
    ) -> Result<DeploymentEnded, Error> {
        let mut deployment = self.deployments[index].clone();
        if status != DeploymentStatus::Promoted {
            let meta = CommitMeta::by(
                DEPLOYMENT_AUTHOR,
                format!(
                    "deployment '{}' ({}) {}: {reason}",
                    deployment.spec.name,
                    deployment.id,
                    match status {
                        DeploymentStatus::Aborted => "aborted",
                        _ => "rolled back",
                    }
                ),
            );
            let target = RollbackTarget::Named(deployment.pre_snapshot.clone());
            deployment.rollback = Some(self.rollback_at(&target, meta, at)?);
        }
        deployment.status = status;
        deployment.ended_at = Some(at);
        deployment.reason = Some(reason);
        self.deployments[index] = deployment.clone();
        self.protect(&deployment.pre_snapshot, false)?;
        self.prune_deployments();
        Ok(DeploymentEnded { deployment })
    }

    /// Drops the oldest finished deployments past [`KEPT_DEPLOYMENTS`].
    fn prune_deployments(&mut self) {
        let finished = self.deployments.iter().filter(|d| !d.is_open()).count();
        for _ in KEPT_DEPLOYMENTS..finished {
            if let Some(oldest) = self.deployments.iter().position(|d| !d.is_open()) {
                self.deployments.remove(oldest);
            }
        }
    }
}

/// Reads a Go/Prometheus-style duration: `250ms`, `10s`, `5m`, `1h`,
/// `1h30m`, `1.5s`. Units: `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Result<Duration, InvalidInput> {
    let invalid = || InvalidInput::Reference {
        what: "duration",
        input: text.chars().take(64).collect(),
        expected: "a number and a unit (ms, s, m, h, d), e.g. '10s', '5m', '1h30m'",
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let millis = match &rest[..unit_len] {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return Err(invalid()),
        };
        rest = &rest[unit_len..];
        total += number * millis;
    }
    if !total.is_finite() || total > 1e15 {
        return Err(invalid());
    }
    Ok(Duration::from_millis(total.round() as u64))
}

/// Writes a duration the way [`parse_duration`] reads it: `10s`, `5m`,
/// `1h30m`, `250ms`.
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    let mut text = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if millis >= size {
            text.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_hold() {
        let c: Condition = "< 0.9".parse().unwrap();
        assert!(c.holds(0.4) && !c.holds(0.9) && !c.holds(f64::NAN));
        let c: Condition = ">=100".parse().unwrap();
        assert!(c.holds(100.0) && !c.holds(99.9));
        assert_eq!(c.to_string(), ">= 100");
        for bad in ["", "0.9", "== 1", "< x", "< inf", "<"] {
            assert!(bad.parse::<Condition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_go_style() {
        let ms = |t: &str| parse_duration(t).unwrap().as_millis();
        assert_eq!(ms("10s"), 10_000);
        assert_eq!(ms("5m"), 300_000);
        assert_eq!(ms("1h30m"), 5_400_000);
        assert_eq!(ms("250ms"), 250);
        assert_eq!(ms("1.5s"), 1_500);
        for bad in ["", "10", "s", "10x", "-1s", "1s-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for text in ["10s", "5m", "1h30m", "250ms", "1m1s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }

    use crate::timeline::{TimelineConfig, TimelineOp};
    use crate::{Doc, ManualClock, Patch, Timestamp};
    use std::sync::Arc;

    fn spec(name: &str) -> DeploymentSpec {
        DeploymentSpec {
            checks: vec![CheckSpec::Custom {
                name: "memory".into(),
            }],
            interval_ms: 1_000,
            window_ms: 10_000,
            ..DeploymentSpec::new(SnapshotName::new(name).unwrap())
        }
    }

    fn round(result: CheckResult) -> Vec<Observation> {
        vec![Observation {
            check: "memory".into(),
            result,
            value: Some(0.5),
            reason: Some("scripted".into()),
        }]
    }

    /// The ops of a deployment replay to the same timeline, through the
    /// journal form and through an image.
    #[test]
    fn deployments_replay_and_survive_images() {
        let start = Timestamp::parse_rfc3339("2026-03-14T12:00:00Z").unwrap();
        let clock = Arc::new(ManualClock::new(start));
        let initial = Doc::from_json(&serde_json::json!({"v": 1})).unwrap();
        let mut timeline =
            Timeline::new(initial.clone(), TimelineConfig::default(), clock.clone()).unwrap();
        let patch =
            Patch::from_json(&serde_json::json!([{"op": "replace", "path": "/v", "value": 2}]))
                .unwrap();
        let ops: Vec<TimelineOp<Doc>> = vec![
            crate::ops::StartDeployment {
                spec: spec("v2"),
                change: DeployChange::Change(patch),
                meta: CommitMeta::default(),
            }
            .into(),
            crate::ops::RecordMeasurements {
                deployment: DeploymentId(1),
                round: round(CheckResult::Pass),
            }
            .into(),
            crate::ops::RecordMeasurements {
                deployment: DeploymentId(1),
                round: round(CheckResult::Fail),
            }
            .into(),
        ];
        let mut recorded = Vec::new();
        for op in &ops {
            clock.advance_secs(1);
            timeline.execute(op).unwrap();
            let text = serde_json::to_string(op).unwrap();
            recorded.push((
                serde_json::from_str::<TimelineOp<Doc>>(&text).unwrap(),
                timeline.last_at(),
            ));
        }
        let ended = timeline.deployment(DeploymentId(1)).unwrap().clone();
        assert_eq!(ended.status, DeploymentStatus::RolledBack);
        assert_eq!(timeline.head(), &initial);
        assert_eq!(timeline.revision(), Revision(2));
        // Replay: each op at its recorded instant.
        let replay_clock = Arc::new(ManualClock::new(start));
        let mut replayed =
            Timeline::new(initial, TimelineConfig::default(), replay_clock.clone()).unwrap();
        for (op, at) in &recorded {
            replay_clock.set(*at);
            replayed.execute(op).unwrap();
        }
        assert_eq!(replayed.deployments(), timeline.deployments());
        assert_eq!(replayed.snapshots(), timeline.snapshots());
        let image = serde_json::to_string(&timeline.to_image().unwrap()).unwrap();
        let back =
            Timeline::<Doc>::from_image(serde_json::from_str(&image).unwrap(), clock).unwrap();
        // As written (a snapshot's creation order is not part of it).
        let json = |t: &Timeline<Doc>| serde_json::to_value(t.deployments()).unwrap();
        assert_eq!(json(&back), json(&timeline));
        // Ended: a second end is refused and changes nothing.
        let again = back.clone().finish_deployment(
            DeploymentId(1),
            &FinishAction::Promote {
                reason: "late".into(),
            },
        );
        assert!(matches!(
            again,
            Err(Error::Timeline(TimelineError::DeploymentFinished { .. }))
        ));
    }

    #[test]
    fn check_specs_read_the_http_form() {
        let spec: CheckSpec = serde_json::from_value(serde_json::json!({
            "prometheus": {"url": "http://p:9090", "query": "max(m)", "condition": "< 0.9"}
        }))
        .unwrap();
        assert_eq!(spec.label(), "prometheus max(m) < 0.9");
        let http: CheckSpec =
            serde_json::from_value(serde_json::json!({"http": {"url": "http://a/h"}})).unwrap();
        assert_eq!(http.label(), "http http://a/h == 200");
        assert!(serde_json::from_value::<CheckSpec>(serde_json::json!({"ftp": {}})).is_err());
    }
}
