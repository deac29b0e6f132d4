//! References to past states: what to read, diff or roll back to.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{Revision, TransactionId};
use crate::name::SnapshotName;
use crate::time::Timestamp;

/// A state of the timeline to read or diff.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateRef {
    /// The current state.
    Head,
    /// A revision in the history window or held by a snapshot.
    Revision(Revision),
    /// An auto or named snapshot, by name.
    Snapshot(SnapshotName),
    /// A transaction checkpoint.
    Checkpoint {
        /// The transaction.
        transaction: TransactionId,
        /// The checkpoint (step) name; `start` is the state before the first step.
        name: SnapshotName,
    },
    /// The exact state at an instant: the newest revision committed at or
    /// before it, when the history window reaches back that far.
    AsOf(Timestamp),
}

impl StateRef {
    /// A snapshot by name, validating the name.
    pub fn snapshot(name: &str) -> Result<StateRef, crate::error::InvalidInput> {
        Ok(StateRef::Snapshot(SnapshotName::new(name)?))
    }
}

impl fmt::Display for StateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateRef::Head => f.write_str("head"),
            StateRef::Revision(r) => write!(f, "revision {r}"),
            StateRef::Snapshot(name) => write!(f, "snapshot '{name}'"),
            StateRef::Checkpoint { transaction, name } => {
                write!(f, "checkpoint '{name}' of transaction {transaction}")
            }
            StateRef::AsOf(t) => write!(f, "state as of {t}"),
        }
    }
}

/// Where a rollback goes. A rollback never rewrites history: it appends a
/// new revision whose state is the target's.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// A snapshot by name (named or auto).
    Named(SnapshotName),
    /// The newest snapshot (of any kind) taken at or before this instant.
    Time(Timestamp),
    /// The newest snapshot of any kind. Right after a rollback this is the
    /// `pre-rollback` snapshot, so `Latest` returns to the present.
    Latest,
    /// A transaction checkpoint.
    Checkpoint {
        /// The transaction.
        transaction: TransactionId,
        /// The checkpoint name; `start` is the state before the first step.
        name: SnapshotName,
    },
    /// A revision in the history window or held by a snapshot.
    Revision(Revision),
}

impl RollbackTarget {
    /// A named snapshot target, validating the name.
    pub fn named(name: &str) -> Result<RollbackTarget, crate::error::InvalidInput> {
        Ok(RollbackTarget::Named(SnapshotName::new(name)?))
    }

    /// Which of the five kinds of target this is.
    pub fn kind(&self) -> TargetKind {
        match self {
            RollbackTarget::Named(_) => TargetKind::Named,
            RollbackTarget::Time(_) => TargetKind::Time,
            RollbackTarget::Latest => TargetKind::Latest,
            RollbackTarget::Checkpoint { .. } => TargetKind::Checkpoint,
            RollbackTarget::Revision(_) => TargetKind::Revision,
        }
    }
}

impl fmt::Display for RollbackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RollbackTarget::Named(name) => write!(f, "snapshot '{name}'"),
            RollbackTarget::Time(t) => write!(f, "the newest snapshot at or before {t}"),
            RollbackTarget::Latest => f.write_str("the latest snapshot"),
            RollbackTarget::Checkpoint { transaction, name } => {
                write!(f, "checkpoint '{name}' of transaction {transaction}")
            }
            RollbackTarget::Revision(r) => write!(f, "revision {r}"),
        }
    }
}

/// The kind of a [`RollbackTarget`], a closed set used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// [`RollbackTarget::Named`].
    Named,
    /// [`RollbackTarget::Time`].
    Time,
    /// [`RollbackTarget::Latest`].
    Latest,
    /// [`RollbackTarget::Checkpoint`].
    Checkpoint,
    /// [`RollbackTarget::Revision`].
    Revision,
}

impl TargetKind {
    /// All kinds, in declaration order.
    pub const ALL: [TargetKind; 5] = [
        TargetKind::Named,
        TargetKind::Time,
        TargetKind::Latest,
        TargetKind::Checkpoint,
        TargetKind::Revision,
    ];

    /// The label: `named`, `time`, `latest`, `checkpoint` or `revision`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Named => "named",
            TargetKind::Time => "time",
            TargetKind::Latest => "latest",
            TargetKind::Checkpoint => "checkpoint",
            TargetKind::Revision => "revision",
        }
    }
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const STATE_REF_FORMS: &str = "head, a revision number, revision:N, snapshot:NAME, \
     checkpoint:TRANSACTION:NAME or time:RFC3339";
const TARGET_FORMS: &str = "latest, snapshot:NAME, revision:N, checkpoint:TRANSACTION:NAME \
     or time:RFC3339";

/// The text forms shared by [`StateRef`] and [`RollbackTarget`]: `None`
/// when `text` is none of them.
fn parse_shared(text: &str) -> Option<Result<Parsed, crate::error::InvalidInput>> {
    if let Some(name) = text.strip_prefix("snapshot:") {
        return Some(SnapshotName::new(name).map(Parsed::Snapshot));
    }
    if let Some(revision) = text.strip_prefix("revision:") {
        return revision
            .parse()
            .ok()
            .map(|r| Ok(Parsed::Revision(Revision(r))));
    }
    if let Some(time) = text.strip_prefix("time:") {
        return Some(Timestamp::parse_rfc3339(time).map(Parsed::Time));
    }
    if let Some(rest) = text.strip_prefix("checkpoint:") {
        let (transaction, name) = rest.split_once(':')?;
        let transaction = TransactionId(transaction.parse().ok()?);
        return Some(SnapshotName::new(name).map(|name| Parsed::Checkpoint(transaction, name)));
    }
    None
}

enum Parsed {
    Snapshot(SnapshotName),
    Revision(Revision),
    Time(Timestamp),
    Checkpoint(TransactionId, SnapshotName),
}

fn unknown(what: &'static str, text: &str, expected: &'static str) -> crate::error::InvalidInput {
    crate::error::InvalidInput::Reference {
        what,
        input: text.chars().take(64).collect(),
        expected,
    }
}

/// `head`, a revision number (or `revision:N`), `snapshot:NAME`,
/// `checkpoint:TRANSACTION:NAME` or `time:RFC3339`, as the HTTP API spells
/// references.
///
/// ```
/// use rewind_core::{Revision, StateRef};
///
/// assert_eq!("head".parse::<StateRef>()?, StateRef::Head);
/// assert_eq!(StateRef::try_from("7")?, StateRef::Revision(Revision(7)));
/// assert_eq!(StateRef::try_from("snapshot:v1")?, StateRef::snapshot("v1")?);
/// assert!(StateRef::try_from("nowhere").is_err());
/// # Ok::<(), rewind_core::InvalidInput>(())
/// ```
impl std::str::FromStr for StateRef {
    type Err = crate::error::InvalidInput;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "head" {
            return Ok(StateRef::Head);
        }
        if let Ok(revision) = text.parse::<u64>() {
            return Ok(StateRef::Revision(Revision(revision)));
        }
        match parse_shared(text) {
            Some(parsed) => Ok(match parsed? {
                Parsed::Snapshot(name) => StateRef::Snapshot(name),
                Parsed::Revision(revision) => StateRef::Revision(revision),
                Parsed::Time(at) => StateRef::AsOf(at),
                Parsed::Checkpoint(transaction, name) => StateRef::Checkpoint { transaction, name },
            }),
            None => Err(unknown("state reference", text, STATE_REF_FORMS)),
        }
    }
}

impl TryFrom<&str> for StateRef {
    type Error = crate::error::InvalidInput;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}

/// `latest`, `snapshot:NAME`, `revision:N`, `checkpoint:TRANSACTION:NAME`
/// or `time:RFC3339` (the newest snapshot at or before it).
///
/// ```
/// use rewind_core::{Revision, RollbackTarget};
///
/// assert_eq!("latest".parse::<RollbackTarget>()?, RollbackTarget::Latest);
/// assert_eq!(RollbackTarget::try_from("revision:3")?, RollbackTarget::Revision(Revision(3)));
/// assert_eq!(RollbackTarget::try_from("snapshot:v1")?, RollbackTarget::named("v1")?);
/// assert!(RollbackTarget::try_from("head").is_err());
/// # Ok::<(), rewind_core::InvalidInput>(())
/// ```
impl std::str::FromStr for RollbackTarget {
    type Err = crate::error::InvalidInput;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "latest" {
            return Ok(RollbackTarget::Latest);
        }
        match parse_shared(text) {
            Some(parsed) => Ok(match parsed? {
                Parsed::Snapshot(name) => RollbackTarget::Named(name),
                Parsed::Revision(revision) => RollbackTarget::Revision(revision),
                Parsed::Time(at) => RollbackTarget::Time(at),
                Parsed::Checkpoint(transaction, name) => {
                    RollbackTarget::Checkpoint { transaction, name }
                }
            }),
            None => Err(unknown("rollback target", text, TARGET_FORMS)),
        }
    }
}

impl TryFrom<&str> for RollbackTarget {
    type Error = crate::error::InvalidInput;

    fn try_from(text: &str) -> Result<Self, Self::Error> {
        text.parse()
    }
}
