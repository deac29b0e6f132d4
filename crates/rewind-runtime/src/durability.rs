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
    Clock, CommitMeta, ManualClock, Model, RollbackPolicy, TenantId, Timeline, TimelineImage,
    TimelineOp, Timestamp, TransactionOutcome,
};
use serde::{Deserialize, Serialize};

use crate::config::TenantConfig;
use crate::journal::{Entry, EntryKind, Image, ImageQuery, Journal, JournalError, JournalSeq};

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Create<M: Model> {
    config: TenantConfig,
    initial: M,
    /// Who created the tenant and why (revision 0's meta).
    #[serde(default)]
    meta: CommitMeta,
}

#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct TenantImage<M: Model> {
    config: TenantConfig,
    timeline: TimelineImage<M>,
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
}

fn corrupt(tenant: &TenantId, seq: JournalSeq, reason: impl std::fmt::Display) -> JournalError {
    JournalError::Corrupt {
        tenant: tenant.to_string(),
        seq,
        reason: reason.to_string(),
    }
}

/// Rebuilds one tenant: its newest image, then every entry after it.
/// `Ok(None)` when the tenant was deleted.
pub(crate) fn recover<M: Model>(
    journal: &dyn Journal,
    tenant: &TenantId,
    clock: &Arc<dyn Clock>,
) -> Result<Option<Recovered<M>>, JournalError> {
    let highest = journal.highest_seq(tenant)?;
    let replay_clock = ManualClock::new(Timestamp::EPOCH);
    let (mut state, from) = match journal.load_image(tenant, &ImageQuery::Latest)? {
        Some(image) => {
            let decoded: TenantImage<M> = decode(&image.payload)
                .map_err(|e| corrupt(tenant, image.seq, format!("image does not decode: {e}")))?;
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
                let create: Create<M> = decode(&entry.payload)
                    .map_err(|e| corrupt(tenant, entry.seq, format!("does not decode: {e}")))?;
                let timeline = Timeline::new_with(
                    create.initial,
                    create.config.timeline,
                    Arc::new(replay_clock.clone()),
                    create.meta,
                )
                .map_err(|e| corrupt(tenant, entry.seq, e))?;
                state = Some(Recovered {
                    config: create.config,
                    timeline,
                    seq: entry.seq.get(),
                    replayed: 1,
                    image_seq: None,
                    interrupted: 0,
                });
            }
            EntryKind::Op => {
                let Some(recovered) = state.as_mut() else {
                    return Err(corrupt(tenant, entry.seq, "an op before the create entry"));
                };
                let op: TimelineOp<M> = decode(&entry.payload)
                    .map_err(|e| corrupt(tenant, entry.seq, format!("does not decode: {e}")))?;
                recovered
                    .timeline
                    .execute(&op)
                    .map_err(|e| corrupt(tenant, entry.seq, format!("does not replay: {e}")))?;
                recovered.seq = entry.seq.get();
                recovered.replayed += 1;
            }
            EntryKind::Delete => state = None,
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
            Ok(Some(recovered))
        }
        // Deleted (or never created: an id with only deleted history).
        None => Ok(None),
    }
}
