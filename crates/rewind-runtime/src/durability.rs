//! How tenants are written to a [`Journal`] and read back.
//!
//! Each tenant's journal holds `create` (configuration, initial state and
//! creation instant), then one `op` entry per timeline mutation
//! ([`TimelineOp`] with the instant it recorded), and `delete` when the tenant
//! is deleted (a later `create` starts a new tenant with the same id). Every `image_every` entries the tenant stores a
//! [`TimelineImage`] so recovery replays at most that many entries; the
//! entries the image covers are then deleted.

use std::sync::Arc;

use rewind_core::ops::{FinishTransaction, Rollback};
use rewind_core::{
    Clock, CommitMeta, ForkInfo, Incarnation, ManualClock, Model, RollbackPolicy, TenantId,
    Timeline, TimelineImage, TimelineOp, Timestamp, TransactionOutcome,
};
use serde::{Deserialize, Serialize};

use crate::config::TenantConfig;
use crate::journal::{Entry, EntryKind, Image, ImageQuery, Journal, JournalError, JournalSeq};

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Create<M: Model> {
    /// `Model::VERSION` of the code that wrote it (1 before versions were
    /// recorded). First, so it is read without decoding the rest.
    #[serde(default = "first_version")]
    model_version: u32,
    config: TenantConfig,
    initial: M,
    /// Who created the tenant and why (revision 0's meta).
    #[serde(default)]
    meta: CommitMeta,
    /// For a fork: its parent, the parent's incarnation and the base
    /// revision (revision 0's cause).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fork: Option<ForkInfo>,
    /// Which creation of the tenant this is. Entries written before
    /// incarnations were recorded have none: replaying one derives
    /// [`Incarnation::legacy`] from its seq and instant, the same every
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    incarnation: Option<Incarnation>,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct TenantImage<M: Model> {
    /// As for [`Create`].
    #[serde(default = "first_version")]
    model_version: u32,
    config: TenantConfig,
    timeline: TimelineImage<M>,
}

/// The model version at the head of a `create` entry or an image: rewind
/// writes it as the record's first member, `{"model_version":N,...}`; a
/// record without it (written before versions were recorded) is version 1.
/// Reads no further than that member.
fn peek_version(payload: &[u8]) -> Result<u32, String> {
    const PREFIX: &[u8] = b"{\"model_version\":";
    let Some(rest) = payload.strip_prefix(PREFIX) else {
        return Ok(1);
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "model_version is not a number".to_owned())
}

fn first_version() -> u32 {
    1
}

/// Decodes a record. serde_json's own nesting limit is off: the records are
/// shallow and every document inside enforces its own depth limit as it
/// reads, so a document at the limit still reads back inside its record.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = T::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own records to JSON cannot fail: every key is a string.
    serde_json::to_vec(value).expect("journal records serialize to JSON")
}

/// The `create` entry of a tenant whose timeline is at revision 0.
pub(crate) fn create_entry<M: Model>(
    tenant: &TenantId,
    seq: u64,
    config: &TenantConfig,
    timeline: &Timeline<M>,
) -> Entry {
    Entry {
        tenant: tenant.clone(),
        seq: JournalSeq::new(seq),
        at: timeline.last_at(),
        kind: EntryKind::Create,
        payload: encode(&Create {
            config: *config,
            initial: timeline.head().clone(),
            meta: timeline.head_info().meta.clone(),
            fork: timeline.fork_info().cloned(),
            incarnation: timeline.incarnation(),
            model_version: M::VERSION,
        }),
    }
}

pub(crate) fn op_entry<M: Model>(
    tenant: &TenantId,
    seq: u64,
    op: &TimelineOp<M>,
    at: Timestamp,
) -> Entry {
    Entry {
        tenant: tenant.clone(),
        seq: JournalSeq::new(seq),
        at,
        kind: EntryKind::Op,
        payload: encode(op),
    }
}

pub(crate) fn delete_entry(tenant: &TenantId, seq: u64, at: Timestamp) -> Entry {
    Entry {
        tenant: tenant.clone(),
        seq: JournalSeq::new(seq),
        at,
        kind: EntryKind::Delete,
        payload: b"{}".to_vec(),
    }
}

pub(crate) fn image<M: Model>(
    tenant: &TenantId,
    seq: u64,
    config: &TenantConfig,
    timeline: &Timeline<M>,
) -> Result<Image, rewind_core::Error> {
    Ok(Image {
        tenant: tenant.clone(),
        seq: JournalSeq::new(seq),
        at: timeline.last_at(),
        name: None,
        payload: encode(&TenantImage {
            config: *config,
            timeline: timeline.to_image()?,
            model_version: M::VERSION,
        }),
    })
}

/// Closes transactions a crash interrupted: each is rolled back to its start
/// and finished as failed (its caller never got a report). Returns how many
/// were closed and the entries to journal for that, continuing after `seq`.
pub(crate) fn close_interrupted<M: Model>(
    tenant: &TenantId,
    timeline: &mut Timeline<M>,
    seq: &mut u64,
) -> Result<(usize, Vec<Entry>), rewind_core::Error> {
    let mut entries = Vec::new();
    let open: Vec<_> = timeline
        .transactions()
        .into_iter()
        .filter(|t| t.outcome.is_none())
        .map(|t| t.id)
        .collect();
    for &transaction in &open {
        let target = timeline.transaction_target(transaction, &RollbackPolicy::Start)?;
        let ops: [TimelineOp<M>; 2] = [
            Rollback {
                target,
                meta: CommitMeta::message("transaction interrupted by a restart"),
            }
            .into(),
            FinishTransaction {
                transaction,
                outcome: TransactionOutcome::Failed,
            }
            .into(),
        ];
        for op in ops {
            timeline.execute(&op)?;
            *seq += 1;
            entries.push(op_entry(tenant, *seq, &op, timeline.last_at()));
        }
    }
    Ok((open.len(), entries))
}

/// A tenant read back from the journal.
pub(crate) struct Recovered<M: Model> {
    pub(crate) config: TenantConfig,
    pub(crate) timeline: Timeline<M>,
    /// The seq of the last entry applied.
    pub(crate) seq: u64,
    /// Entries replayed (after the image, if any).
    pub(crate) replayed: u64,
    /// Seq of the image recovery started from.
    pub(crate) image_seq: Option<u64>,
    /// Transactions a crash interrupted, closed as it was read back.
    pub(crate) interrupted: usize,
    /// The older model version the tenant was recorded by, upgraded as it
    /// was read back (`None`: the current one).
    pub(crate) upgraded_from: Option<u32>,
}

fn corrupt(tenant: &TenantId, seq: JournalSeq, reason: impl std::fmt::Display) -> JournalError {
    JournalError::Corrupt {
        tenant: tenant.to_string(),
        seq,
        reason: reason.to_string(),
    }
}

/// A model that takes any JSON as its state and its changes: a record that
/// decodes with it but not with the tenant's model is intact, and the
/// model is what changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AnyJson(serde_json::Value);

impl Model for AnyJson {
    type Change = serde_json::Value;
    type Error = std::convert::Infallible;

    fn apply(&self, _: &serde_json::Value) -> Result<AnyJson, Self::Error> {
        Ok(self.clone())
    }
}

/// Decodes a typed record of `M`. A payload that is not a record rewind
/// wrote (not JSON, an unknown op) is damage; one whose envelope is fine
/// but whose states or changes do not fit `M` means the model changed
/// since the record was written.
fn typed<M: Model, T: serde::de::DeserializeOwned>(
    tenant: &TenantId,
    seq: JournalSeq,
    recorded_version: u32,
    payload: &[u8],
    intact: fn(&[u8]) -> bool,
    what: &str,
) -> Result<T, JournalError> {
    decode(payload).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data && intact(payload) {
            JournalError::ModelMismatch {
                tenant: tenant.to_string(),
                seq,
                model_version: M::VERSION,
                recorded_version,
                reason: e.to_string(),
            }
        } else {
            corrupt(tenant, seq, format!("{what} does not decode: {e}"))
        }
    })
}

fn intact_op(payload: &[u8]) -> bool {
    decode::<TimelineOp<AnyJson>>(payload).is_ok()
}

fn intact_create(payload: &[u8]) -> bool {
    decode::<Create<AnyJson>>(payload).is_ok()
}

fn intact_image(payload: &[u8]) -> bool {
    decode::<TenantImage<AnyJson>>(payload).is_ok()
}

/// The model version a `create` entry or an image was written by; refused
/// when newer than the code's.
fn recorded_version<M: Model>(
    tenant: &TenantId,
    seq: JournalSeq,
    payload: &[u8],
) -> Result<u32, JournalError> {
    let recorded =
        peek_version(payload).map_err(|e| corrupt(tenant, seq, format!("does not decode: {e}")))?;
    if recorded > M::VERSION {
        return Err(JournalError::ModelTooNew {
            tenant: tenant.to_string(),
            seq,
            model_version: M::VERSION,
            recorded_version: recorded,
        });
    }
    Ok(recorded)
}

/// Runs a model's upgrade hook on one JSON value of `tenant`'s record.
fn upgraded(
    tenant: &TenantId,
    seq: JournalSeq,
    from: u32,
    value: serde_json::Value,
    upgrade: fn(u32, serde_json::Value) -> Result<serde_json::Value, String>,
) -> Result<serde_json::Value, JournalError> {
    upgrade(from, value).map_err(|reason| {
        corrupt(
            tenant,
            seq,
            format!("the upgrade from model version {from} failed: {reason}"),
        )
    })
}

/// The image of a tenant recorded by model version `from`, upgraded.
fn upgrade_image<M: Model>(
    tenant: &TenantId,
    image: &Image,
    from: u32,
) -> Result<TenantImage<M>, JournalError> {
    let old: TenantImage<rewind_core::Doc> = typed::<M, _>(
        tenant,
        image.seq,
        from,
        &image.payload,
        intact_image,
        "image",
    )?;
    let timeline = old
        .timeline
        .upgrade_states(|state| {
            upgraded(tenant, image.seq, from, state, M::upgrade).map_err(|e| e.to_string())
        })
        .map_err(|reason| corrupt(tenant, image.seq, reason))?;
    let value = serde_json::to_value(&timeline)
        .map_err(|e| corrupt(tenant, image.seq, format!("the upgraded image: {e}")))?;
    Ok(TenantImage {
        config: old.config,
        timeline: from_upgraded::<M, _>(tenant, image.seq, from, value)?,
        model_version: M::VERSION,
    })
}

/// An op entry recorded by model version `from`, upgraded.
fn upgrade_op<M: Model>(
    tenant: &TenantId,
    entry: &Entry,
    from: u32,
) -> Result<TimelineOp<M>, JournalError> {
    let mut value: serde_json::Value = decode(&entry.payload)
        .map_err(|e| corrupt(tenant, entry.seq, format!("does not decode: {e}")))?;
    let tag = value
        .get("op")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_owned();
    let field = match tag.as_str() {
        "apply" | "apply_step" => Some(("change", M::upgrade_change as fn(_, _) -> _)),
        "replace" => Some(("state", M::upgrade as fn(_, _) -> _)),
        _ => None,
    };
    if let Some((field, upgrade)) = field {
        if let Some(slot) = value.get_mut(field) {
            *slot = upgraded(tenant, entry.seq, from, slot.take(), upgrade)?;
        }
    }
    from_upgraded::<M, _>(tenant, entry.seq, from, value)
}

/// Decodes an upgraded record: it failing means the upgrade does not
/// produce the current model's form.
fn from_upgraded<M: Model, T: serde::de::DeserializeOwned>(
    tenant: &TenantId,
    seq: JournalSeq,
    from: u32,
    value: serde_json::Value,
) -> Result<T, JournalError> {
    serde_json::from_value(value).map_err(|e| JournalError::ModelMismatch {
        tenant: tenant.to_string(),
        seq,
        model_version: M::VERSION,
        recorded_version: from,
        reason: format!("after the upgrade from version {from}: {e}"),
    })
}

/// Brings `timeline`, the tenant's state at journal seq `seq`, up to what
/// the journal holds now: the `op` entries after `seq`, replayed at their
/// recorded instants, as recovery would. Time: O(k) for k new entries, where
/// reading the tenant back whole replays everything since its image.
/// `Ok(None)` when it cannot (the journal is not ahead of `seq` by `op`
/// entries only): read the tenant back whole instead.
pub(crate) fn catch_up<M: Model>(
    journal: &dyn Journal,
    tenant: &TenantId,
    timeline: &Timeline<M>,
    seq: u64,
    clock: &Arc<dyn Clock>,
) -> Result<Option<(Timeline<M>, u64)>, JournalError> {
    let highest = journal.highest_seq(tenant)?.get();
    if highest < seq {
        return Ok(None);
    }
    if highest == seq {
        return Ok(Some((timeline.clone(), seq)));
    }
    let entries = journal.read(tenant, JournalSeq::new(seq + 1), JournalSeq::new(highest))?;
    if entries.len() as u64 != highest - seq {
        return Ok(None);
    }
    let mut next = timeline.clone();
    let replay_clock = ManualClock::new(Timestamp::EPOCH);
    next.set_clock(Arc::new(replay_clock.clone()));
    for (expected, entry) in (seq + 1..).zip(&entries) {
        if entry.seq.get() != expected || entry.kind != EntryKind::Op {
            return Ok(None);
        }
        replay_clock.set(entry.at);
        let Ok(op) = decode::<TimelineOp<M>>(&entry.payload) else {
            return Ok(None);
        };
        if next.execute(&op).is_err() {
            return Ok(None);
        }
    }
    next.set_clock(Arc::clone(clock));
    Ok(Some((next, highest)))
}

/// Rebuilds one tenant: its newest image, then every entry after it.
/// Records written by an older version of the model go through
/// [`Model::upgrade`]; the caller then stores an image at the current
/// version (see [`Recovered::upgraded_from`]).
/// `Ok(None)` when the tenant was deleted.
pub(crate) fn recover<M: Model>(
    journal: &dyn Journal,
    tenant: &TenantId,
    clock: &Arc<dyn Clock>,
) -> Result<Option<Recovered<M>>, JournalError> {
    let highest = journal.highest_seq(tenant)?;
    let replay_clock = ManualClock::new(Timestamp::EPOCH);
    // The model version of the newest create or image read: the entries
    // after it were written by the same version.
    let mut version = M::VERSION;
    let mut upgraded_from = None;
    let (mut state, from) = match journal.load_image(tenant, &ImageQuery::Latest)? {
        Some(image) => {
            version = recorded_version::<M>(tenant, image.seq, &image.payload)?;
            let decoded: TenantImage<M> = if version < M::VERSION {
                upgraded_from = Some(version);
                upgrade_image(tenant, &image, version)?
            } else {
                typed::<M, _>(
                    tenant,
                    image.seq,
                    version,
                    &image.payload,
                    intact_image,
                    "image",
                )?
            };
            let timeline = Timeline::from_image(decoded.timeline, Arc::new(replay_clock.clone()))
                .map_err(|e| {
                corrupt(tenant, image.seq, format!("image does not rebuild: {e}"))
            })?;
            let state = Recovered {
                config: decoded.config,
                timeline,
                seq: image.seq.get(),
                replayed: 0,
                image_seq: Some(image.seq.get()),
                interrupted: 0,
                upgraded_from: None,
            };
            (Some(state), image.seq.next())
        }
        None => (None, JournalSeq::new(1)),
    };
    let entries = journal.read(tenant, from, highest)?;
    let mut expected = from;
    for entry in entries {
        if entry.seq != expected {
            return Err(corrupt(
                tenant,
                expected,
                format!("entry missing (next stored is {})", entry.seq),
            ));
        }
        expected = expected.next();
        replay_clock.set(entry.at);
        match &entry.kind {
            EntryKind::Create => {
                if state.is_some() {
                    return Err(corrupt(
                        tenant,
                        entry.seq,
                        "create for a tenant that exists",
                    ));
                }
                version = recorded_version::<M>(tenant, entry.seq, &entry.payload)?;
                let create: Create<M> = if version < M::VERSION {
                    upgraded_from = Some(version);
                    let mut value: serde_json::Value = decode(&entry.payload)
                        .map_err(|e| corrupt(tenant, entry.seq, format!("does not decode: {e}")))?;
                    if let Some(initial) = value.get_mut("initial") {
                        *initial =
                            upgraded(tenant, entry.seq, version, initial.take(), M::upgrade)?;
                    }
                    from_upgraded::<M, _>(tenant, entry.seq, version, value)?
                } else {
                    typed::<M, _>(
                        tenant,
                        entry.seq,
                        version,
                        &entry.payload,
                        intact_create,
                        "entry",
                    )?
                };
                let clock = Arc::new(replay_clock.clone());
                let incarnation = create
                    .incarnation
                    .unwrap_or_else(|| Incarnation::legacy(entry.seq.get(), entry.at));
                let mut timeline = match create.fork {
                    Some(fork) => Timeline::new_fork(
                        create.initial,
                        create.config.timeline,
                        clock,
                        create.meta,
                        fork,
                    ),
                    None => Timeline::new_with(
                        create.initial,
                        create.config.timeline,
                        clock,
                        create.meta,
                    ),
                }
                .map_err(|e| corrupt(tenant, entry.seq, e))?;
                timeline.set_incarnation(incarnation);
                state = Some(Recovered {
                    config: create.config,
                    timeline,
                    seq: entry.seq.get(),
                    replayed: 1,
                    image_seq: None,
                    interrupted: 0,
                    upgraded_from: None,
                });
            }
            EntryKind::Op => {
                let Some(recovered) = state.as_mut() else {
                    return Err(corrupt(tenant, entry.seq, "an op before the create entry"));
                };
                let op: TimelineOp<M> = if version < M::VERSION {
                    upgrade_op(tenant, &entry, version)?
                } else {
                    typed::<M, _>(
                        tenant,
                        entry.seq,
                        version,
                        &entry.payload,
                        intact_op,
                        "entry",
                    )?
                };
                recovered
                    .timeline
                    .execute(&op)
                    .map_err(|e| corrupt(tenant, entry.seq, format!("does not replay: {e}")))?;
                recovered.seq = entry.seq.get();
                recovered.replayed += 1;
            }
            EntryKind::Delete => {
                state = None;
                upgraded_from = None;
                version = M::VERSION;
            }
            other => {
                return Err(JournalError::UnknownKind {
                    tenant: tenant.to_string(),
                    seq: entry.seq,
                    kind: other.as_str().chars().take(64).collect(),
                })
            }
        }
    }
    if expected <= highest {
        return Err(corrupt(tenant, expected, "entry missing"));
    }
    match state {
        Some(mut recovered) => {
            recovered.timeline.set_clock(Arc::clone(clock));
            recovered.upgraded_from = upgraded_from;
            Ok(Some(recovered))
        }
        // Deleted (or never created: an id with only deleted history).
        None => Ok(None),
    }
}
