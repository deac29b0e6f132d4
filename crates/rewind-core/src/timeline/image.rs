//! A whole timeline as one serializable value, for durable images.
//!
//! Every state a timeline holds is the state of some revision, so the image
//! stores each distinct revision's state once: the oldest whole, every later
//! one as the patch from the one before ([`Model::diff`]). Rebuilding applies
//! the patches in order ([`Model::apply_diff`]); for [`Doc`](crate::Doc) each
//! rebuilt state shares every untouched subtree with the one before it, so a
//! restored timeline keeps the structural sharing of the original.

use std::collections::BTreeMap;
use std::sync::Arc;

use imbl::Vector;
use serde::{Deserialize, Serialize};

use super::states::States;
use super::Pruned;
use super::{
    Cause, DeploymentInfo, Entry, ForkBase, ForkInfo, ForkRecord, RevisionInfo, Snapshot,
    SnapshotInfo, Timeline, TimelineConfig, Transaction, TransactionOutcome,
};
use crate::delta::StateDelta;
use crate::doc::{Doc, Patch};
use crate::error::{Error, InvalidInput, TimelineError};
use crate::id::{Incarnation, Revision, TransactionId};
use crate::model::Model;
use crate::time::{Clock, Timestamp};

/// A serializable image of a whole [`Timeline`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct TimelineImage<M: Model> {
    config: TimelineConfig,
    next_seq: u64,
    next_transaction: u64,
    last_at: Timestamp,
    base_revision: Revision,
    base: M,
    /// Later states, oldest first.
    deltas: Vec<Delta>,
    history: Vec<RevisionInfo>,
    auto: Vec<SnapshotImage>,
    named: Vec<SnapshotImage>,
    transactions: Vec<TransactionImage>,
    /// Images written before deployments existed have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deployments: Vec<DeploymentInfo>,
    #[serde(default, skip_serializing_if = "is_zero")]
    next_deployment: u64,
    /// For a fork: where it came from (its base state is the state of
    /// revision 0 in the chain). Absent in images of other timelines and
    /// in those written before forks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fork: Option<ForkInfo>,
    /// Forks made of this timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forks: Vec<ForkRecord>,
    /// Which creation of its tenant this timeline is. Absent in images of
    /// timelines without one (written before incarnations were recorded,
    /// or never given one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    incarnation: Option<Incarnation>,
    /// For a model with history deltas: `base` is the head, and these
    /// rebuild every older state held, newest first, each from the one
    /// before it: the timeline's own chain, so a restored timeline holds
    /// the very same deltas (and accounts the same bytes). Empty in images
    /// of models without deltas and in those written before, which chain
    /// forward from the oldest state in `deltas`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    back: Vec<BackDelta>,
}

/// One state of the reverse chain: `delta` turns the state before it in
/// the chain (the next newer one) into this revision's.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BackDelta {
    revision: Revision,
    delta: StateDelta,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How a state is rebuilt from earlier ones.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
enum Delta {
    /// The patch from the previous state of the chain.
    Previous { revision: Revision, patch: Patch },
    /// The very state of an earlier revision (a rollback restored it).
    Same { revision: Revision, of: Revision },
}

/// [`Delta`] decoded the derived way (serde buffers the whole record to
/// find the tag): for a record whose tag is not first.
#[derive(Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
enum BufferedDelta {
    Previous { revision: Revision, patch: Patch },
    Same { revision: Revision, of: Revision },
}

#[derive(Deserialize)]
struct PreviousFields {
    revision: Revision,
    patch: Patch,
}

#[derive(Deserialize)]
struct SameFields {
    revision: Revision,
    of: Revision,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DeltaTag {
    Previous,
    Same,
}

impl<'de> Deserialize<'de> for Delta {
    /// Reads the tag first when it comes first, as rewind writes it, then
    /// the fields straight from the input: an image holds one delta per
    /// revision, and buffering each was a fifth of the time to read a
    /// tenant back.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error as _, MapAccess, Visitor};

        struct DeltaVisitor;

        impl<'de> Visitor<'de> for DeltaVisitor {
            type Value = Delta;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a delta: an object with a \"from\" tag")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Delta, A::Error> {
                let Some(first) = map.next_key::<String>()? else {
                    return Err(A::Error::missing_field("from"));
                };
                if first != "from" {
                    let mut record = serde_json::Map::new();
                    record.insert(first, map.next_value()?);
                    while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                        record.insert(key, value);
                    }
                    let buffered: BufferedDelta =
                        serde_json::from_value(serde_json::Value::Object(record))
                            .map_err(A::Error::custom)?;
                    return Ok(match buffered {
                        BufferedDelta::Previous { revision, patch } => {
                            Delta::Previous { revision, patch }
                        }
                        BufferedDelta::Same { revision, of } => Delta::Same { revision, of },
                    });
                }
                let tag: DeltaTag = map.next_value()?;
                let rest = serde::de::value::MapAccessDeserializer::new(map);
                Ok(match tag {
                    DeltaTag::Previous => {
                        let PreviousFields { revision, patch } = PreviousFields::deserialize(rest)?;
                        Delta::Previous { revision, patch }
                    }
                    DeltaTag::Same => {
                        let SameFields { revision, of } = SameFields::deserialize(rest)?;
                        Delta::Same { revision, of }
                    }
                })
            }
        }

        deserializer.deserialize_map(DeltaVisitor)
    }
}

impl TimelineImage<Doc> {
    /// Rewrites every state of this image, in its document form, with
    /// `upgrade`, keeping revisions, history, snapshots and transactions:
    /// how an image recorded by an older version of a typed model is read
    /// back ([`Model::upgrade`]). Each state is rebuilt from the old chain of
    /// patches, upgraded, and the chain is diffed again between the
    /// upgraded states.
    pub fn upgrade_states(
        mut self,
        upgrade: impl Fn(serde_json::Value) -> Result<serde_json::Value, String>,
    ) -> Result<Self, String> {
        let upgraded = |doc: &Doc| -> Result<Doc, String> {
            let value = upgrade(doc.to_json())?;
            Doc::from_json_with_limit(&value, usize::MAX).map_err(|e| e.to_string())
        };
        if !self.back.is_empty() {
            return Err("an image chained back from its head holds no older model version".into());
        }
        let new_base = upgraded(&self.base)?;
        let mut old_states = BTreeMap::from([(self.base_revision, self.base.clone())]);
        let mut new_states = BTreeMap::from([(self.base_revision, new_base.clone())]);
        let (mut previous_old, mut previous_new) = (self.base.clone(), new_base.clone());
        let mut deltas = Vec::with_capacity(self.deltas.len());
        for delta in &self.deltas {
            let (revision, old, new) = match delta {
                Delta::Previous { revision, patch } => {
                    let old = previous_old
                        .apply_patch_unlimited(patch)
                        .map_err(|e| format!("revision {revision} does not rebuild: {e}"))?;
                    let new = upgraded(&old)?;
                    deltas.push(Delta::Previous {
                        revision: *revision,
                        patch: crate::Diff::between(&previous_new, &new).patch,
                    });
                    (*revision, old, new)
                }
                Delta::Same { revision, of } => {
                    let missing = || format!("revision {revision} refers to unknown revision {of}");
                    let old = old_states.get(of).cloned().ok_or_else(missing)?;
                    let new = new_states.get(of).cloned().ok_or_else(missing)?;
                    deltas.push(delta.clone());
                    (*revision, old, new)
                }
            };
            old_states.insert(revision, old.clone());
            new_states.insert(revision, new.clone());
            (previous_old, previous_new) = (old, new);
        }
        self.base = new_base;
        self.deltas = deltas;
        Ok(self)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotImage {
    seq: u64,
    #[serde(flatten)]
    info: SnapshotInfo,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct TransactionImage {
    id: TransactionId,
    start_revision: Revision,
    started_at: Timestamp,
    outcome: Option<TransactionOutcome>,
    checkpoints: Vec<SnapshotImage>,
}

fn snapshot_images(snapshots: &Vector<Snapshot>) -> Vec<SnapshotImage> {
    snapshots
        .iter()
        .map(|s| SnapshotImage {
            seq: s.info.seq,
            info: s.info.clone(),
        })
        .collect()
}

fn invalid(reason: String) -> Error {
    InvalidInput::Json(format!("invalid timeline image: {reason}")).into()
}

impl<M: Model> Timeline<M> {
    /// The image of this timeline. Time: for a model with history deltas,
    /// the size of the deltas held; otherwise one diff per distinct state
    /// held.
    pub fn to_image(&self) -> Result<TimelineImage<M>, Error> {
        let corrupt = |revision| TimelineError::HistoryCorrupt { revision };
        let (base_revision, base, deltas, back) = match self.states.chain() {
            Some((head_revision, head, mut back)) => {
                // A fork's base is revision 0's state, held even when
                // nothing else needs it: chain it last.
                if let Some(fork) = &self.fork {
                    if !self.states.contains(Revision::ZERO) {
                        let oldest = back.last().map_or(head_revision, |b| b.0);
                        let oldest_state = self.state_of(oldest)?;
                        let delta = oldest_state
                            .history_delta(&fork.state)
                            .ok_or_else(|| corrupt(Revision::ZERO))?;
                        back.push((Revision::ZERO, delta));
                    }
                }
                let back = back
                    .into_iter()
                    .map(|(revision, delta)| BackDelta { revision, delta })
                    .collect();
                (head_revision, head, Vec::new(), back)
            }
            None => {
                let (base_revision, base, deltas) = self.forward_chain()?;
                (base_revision, base, deltas, Vec::new())
            }
        };
        Ok(TimelineImage {
            config: self.config,
            next_seq: self.next_seq,
            next_transaction: self.next_transaction,
            last_at: self.last_at,
            base_revision,
            base,
            deltas,
            back,
            history: self.history.iter().map(|e| e.info.clone()).collect(),
            auto: snapshot_images(&self.auto),
            named: snapshot_images(&self.named),
            transactions: self
                .transactions
                .iter()
                .map(|t| TransactionImage {
                    id: t.id,
                    start_revision: t.start_revision,
                    started_at: t.started_at,
                    outcome: t.outcome,
                    checkpoints: snapshot_images(&t.checkpoints),
                })
                .collect(),
            deployments: self.deployments.iter().cloned().collect(),
            next_deployment: self.next_deployment,
            fork: self.fork.as_ref().map(|f| f.info.clone()),
            forks: self.forks.iter().cloned().collect(),
            incarnation: self.incarnation,
        })
    }

    /// The states held as a chain from the oldest, each later one the
    /// patch from the one before (the form for models without deltas).
    fn forward_chain(&self) -> Result<(Revision, M, Vec<Delta>), Error> {
        let mut states: BTreeMap<Revision, M> = BTreeMap::new();
        for revision in self.states.revisions() {
            states.insert(revision, self.state_of(revision)?);
        }
        // A fork's base is revision 0's state, held even out of the window.
        if let Some(fork) = &self.fork {
            states
                .entry(Revision::ZERO)
                .or_insert_with(|| fork.state.clone());
        }
        // A rollback's state is the restored revision's state itself: say so
        // instead of diffing, so the rebuilt states share it again.
        let restored: BTreeMap<Revision, Revision> = self
            .history
            .iter()
            .filter_map(|e| match &e.info.cause {
                Cause::Rollback { restored, .. } if states.contains_key(&restored.revision) => {
                    Some((e.info.revision, restored.revision))
                }
                _ => None,
            })
            .collect();
        let mut chain = states.iter();
        let (&base_revision, base) = chain.next().expect("a timeline holds its head");
        let mut deltas = Vec::new();
        let mut previous = base;
        for (&revision, state) in chain {
            deltas.push(match restored.get(&revision) {
                Some(&of) => Delta::Same { revision, of },
                None => Delta::Previous {
                    revision,
                    patch: previous.diff(state)?.patch,
                },
            });
            previous = state;
        }
        Ok((base_revision, base.clone(), deltas))
    }

    /// Rebuilds a timeline from its image; it reads time from `clock` from
    /// now on.
    pub fn from_image(image: TimelineImage<M>, clock: Arc<dyn Clock>) -> Result<Self, Error> {
        image.config.validate()?;
        let cache = image.config.rebuild_cache;
        let states = if image.back.is_empty() {
            let mut states: BTreeMap<Revision, M> = BTreeMap::new();
            let mut previous_revision = image.base_revision;
            states.insert(previous_revision, image.base);
            for delta in &image.deltas {
                let (revision, next) = match delta {
                    Delta::Previous { revision, patch } => {
                        (*revision, states[&previous_revision].apply_diff(patch)?)
                    }
                    Delta::Same { revision, of } => {
                        let same = states
                            .get(of)
                            .cloned()
                            .ok_or_else(|| invalid(format!("no state for revision {of}")))?;
                        (*revision, same)
                    }
                };
                if revision <= previous_revision {
                    return Err(invalid(format!("state {revision} is out of order")));
                }
                states.insert(revision, next);
                previous_revision = revision;
            }
            let mut chain = states.into_iter();
            let (revision, state) = chain.next().expect("inserted above");
            let mut held = States::new(revision, state, cache);
            for (revision, state) in chain {
                held.push(revision, state);
            }
            held
        } else {
            let back = image.back.into_iter().map(|b| (b.revision, b.delta));
            States::from_chain(image.base_revision, image.base, back, cache)
                .map_err(|e| invalid(e.to_string()))?
        };
        let snapshots = |list: Vec<SnapshotImage>| -> Result<Vector<Snapshot>, Error> {
            list.into_iter()
                .map(|s| {
                    let mut info = s.info;
                    info.seq = s.seq;
                    if !states.contains(info.revision) {
                        return Err(invalid(format!("no state for revision {}", info.revision)));
                    }
                    Ok(Snapshot { info })
                })
                .collect()
        };
        let mut history = super::log::Log::new();
        for info in image.history {
            if let Some(last) = history.back() {
                let last: &Arc<Entry> = last;
                if info.revision != last.info.revision.next() {
                    return Err(invalid("history revisions are not consecutive".into()));
                }
            }
            if !states.contains(info.revision) {
                return Err(invalid(format!("no state for revision {}", info.revision)));
            }
            history.push_back(Arc::new(Entry { info }));
        }
        if history.is_empty() {
            return Err(invalid("the history is empty".into()));
        }
        let mut transactions = Vector::new();
        for t in image.transactions {
            transactions.push_back(Transaction {
                id: t.id,
                start_revision: t.start_revision,
                started_at: t.started_at,
                outcome: t.outcome,
                checkpoints: snapshots(t.checkpoints)?,
            });
        }
        let fork = match image.fork {
            Some(info) => Some(Arc::new(ForkBase {
                info,
                state: states
                    .get(Revision::ZERO)
                    .map_err(|_| invalid("no state for revision 0 (the fork's base)".into()))?,
            })),
            None => None,
        };
        let mut timeline = Timeline {
            fork,
            forks: image.forks.into_iter().collect(),
            incarnation: image.incarnation,
            config: image.config,
            clock,
            history,
            auto: snapshots(image.auto)?,
            named: snapshots(image.named)?,
            transactions,
            deployments: image.deployments.into_iter().collect(),
            next_seq: image.next_seq,
            next_transaction: image.next_transaction,
            next_deployment: image.next_deployment,
            last_at: image.last_at,
            states,
            budget_pruned: Pruned::default(),
        };
        timeline.settle_restored();
        Ok(timeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{
        AutoTrigger, NamedOptions, RollbackPolicy, RollbackTarget, TimelineOp, TransactionOutcome,
    };
    use crate::{CommitMeta, Doc, ManualClock, SnapshotName};
    use serde_json::json;

    fn patch(value: serde_json::Value) -> Patch {
        Patch::from_json(&value).unwrap()
    }

    fn image_json(timeline: &Timeline<Doc>) -> serde_json::Value {
        serde_json::to_value(timeline.to_image().unwrap()).unwrap()
    }

    /// From text, as a journal holds it: the tag first (what rewind
    /// writes) or anywhere else decode to the same delta.
    #[test]
    fn a_delta_decodes_wherever_its_tag_is() {
        let forms = [
            r#"{"from":"previous","patch":[{"op":"add","path":"/a","value":1}],"revision":3}"#,
            r#"{"revision":3,"from":"previous","patch":[{"op":"add","path":"/a","value":1}]}"#,
            r#"{"patch":[{"op":"add","path":"/a","value":1}],"revision":3,"from":"previous"}"#,
        ];
        let decoded: Vec<serde_json::Value> = forms
            .iter()
            .map(|text| serde_json::to_value(serde_json::from_str::<Delta>(text).unwrap()).unwrap())
            .collect();
        assert_eq!(decoded[0]["revision"], 3);
        assert!(decoded.iter().all(|d| *d == decoded[0]), "{decoded:?}");
        let same: Delta = serde_json::from_str(r#"{"from":"same","revision":4,"of":2}"#).unwrap();
        assert!(matches!(
            same,
            Delta::Same {
                revision: Revision(4),
                of: Revision(2)
            }
        ));
        for bad in [
            r#"{}"#,
            r#"{"from":"elsewhere","revision":1}"#,
            r#"{"from":"same","revision":1}"#,
        ] {
            assert!(
                serde_json::from_str::<Delta>(bad).is_err(),
                "{bad} must not decode"
            );
        }
    }

    /// A workload touching every kind of op, journaled as (op, instant).
    fn workload(
        clock: &ManualClock,
        timeline: &mut Timeline<Doc>,
    ) -> Vec<(TimelineOp<Doc>, Timestamp)> {
        let name = |s: &str| SnapshotName::new(s).unwrap();
        let mut ops: Vec<TimelineOp<Doc>> = vec![
            crate::timeline::op::Apply {
                change: patch(json!([{"op": "add", "path": "/a", "value": {"x": 1}}])),
                meta: Default::default(),
            }
            .into(),
            crate::timeline::op::SnapshotNamed {
                name: name("v1"),
                options: NamedOptions {
                    protected: true,
                    replace: false,
                },
            }
            .into(),
            crate::timeline::op::Apply {
                change: patch(json!([{"op": "replace", "path": "/n", "value": 2}])),
                meta: Default::default(),
            }
            .into(),
            crate::timeline::op::SnapshotAuto {
                trigger: AutoTrigger::Policy,
            }
            .into(),
            crate::timeline::op::Replace {
                state: Doc::from_json(&json!({"n": 9, "a": {"x": 1}})).unwrap(),
                meta: Default::default(),
            }
            .into(),
            crate::timeline::op::Rollback {
                target: RollbackTarget::Named(name("v1")),
                meta: Default::default(),
            }
            .into(),
            crate::timeline::op::BeginTransaction {}.into(),
        ];
        let mut journal = Vec::new();
        for op in ops.drain(..) {
            clock.advance_secs(7);
            timeline.execute(&op).unwrap();
            journal.push((op, timeline.last_at()));
        }
        let tx = crate::TransactionId(1);
        let more: Vec<TimelineOp<Doc>> = vec![
            crate::timeline::op::ApplyStep {
                transaction: tx,
                step: name("s1"),
                change: patch(json!([{"op": "add", "path": "/t", "value": true}])),
                meta: CommitMeta::message("a step's meta survives the image"),
            }
            .into(),
            crate::timeline::op::Checkpoint {
                transaction: tx,
                name: name("s1"),
            }
            .into(),
        ];
        for op in more {
            clock.advance_secs(3);
            timeline.execute(&op).unwrap();
            journal.push((op, timeline.last_at()));
        }
        let target = timeline
            .transaction_target(tx, &RollbackPolicy::Start)
            .unwrap();
        let last: [TimelineOp<Doc>; 3] = [
            crate::timeline::op::Rollback {
                target,
                meta: Default::default(),
            }
            .into(),
            crate::timeline::op::FinishTransaction {
                transaction: tx,
                outcome: TransactionOutcome::RolledBack,
            }
            .into(),
            crate::timeline::op::DeleteSnapshot {
                name: SnapshotName::new("auto_2").unwrap(),
            }
            .into(),
        ];
        for op in last {
            clock.advance_secs(1);
            timeline.execute(&op).unwrap();
            journal.push((op, timeline.last_at()));
        }
        journal
    }

    #[test]
    fn replaying_journaled_ops_reproduces_the_timeline() {
        let start = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let clock = ManualClock::new(start);
        let initial = Doc::from_json(&json!({"n": 1})).unwrap();
        let mut original = Timeline::new(
            initial.clone(),
            TimelineConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let journal = workload(&clock, &mut original);

        let replay_clock = ManualClock::new(start);
        let mut replayed = Timeline::new(
            initial,
            TimelineConfig::default(),
            Arc::new(replay_clock.clone()),
        )
        .unwrap();
        for (op, at) in &journal {
            // Ops travel through JSON, as in a journal.
            let op: TimelineOp<Doc> =
                serde_json::from_str(&serde_json::to_string(op).unwrap()).unwrap();
            replay_clock.set(*at);
            replayed.execute(&op).unwrap();
        }
        assert_eq!(image_json(&replayed), image_json(&original));
    }

    #[test]
    fn image_round_trip_keeps_everything_and_rebuilds_sharing() {
        let clock = ManualClock::new(Timestamp::EPOCH);
        let mut big: serde_json::Map<String, serde_json::Value> = (0..200)
            .map(|i| (format!("key_{i}"), json!({"v": i})))
            .collect();
        big.insert("n".into(), json!(1));
        let mut timeline = Timeline::new(
            Doc::from_json(&json!(big)).unwrap(),
            TimelineConfig::default(),
            Arc::new(clock.clone()),
        )
        .unwrap();
        workload(&clock, &mut timeline);
        let text = serde_json::to_string(&timeline.to_image().unwrap()).unwrap();
        let image: TimelineImage<Doc> = serde_json::from_str(&text).unwrap();
        let restored = Timeline::from_image(image, Arc::new(clock.clone())).unwrap();
        assert_eq!(image_json(&restored), image_json(&timeline));
        assert_eq!(restored.head(), timeline.head());
        // Untouched subtrees are shared between restored revisions again.
        let first = restored
            .state_at(&crate::StateRef::Revision(Revision(0)))
            .unwrap();
        let head = restored.head();
        assert!(first["key_7"].ptr_eq(&head["key_7"]));
    }
}
