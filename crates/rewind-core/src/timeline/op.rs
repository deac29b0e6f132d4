//! Timeline mutations as typed values, and as data for journaling and replay.
//!
//! Each mutation of a [`Timeline`] is a small struct implementing [`Op`]: it
//! runs on a timeline and returns its own typed output (a [`Commit`], a
//! [`SnapshotTaken`], a [`RollbackOutcome`], ...). Every op converts into a
//! [`TimelineOp`], the serialisable form a journal stores; replay runs it
//! again with [`Timeline::execute`].
//!
//! Each mutation reads the clock once; a journal stores the op with
//! [`Timeline::last_at`] and a replay sets a
//! [`ManualClock`](crate::ManualClock) to that instant before executing it
//! again, which reproduces the timeline exactly (revisions, snapshot names,
//! times, transaction ids).
//!
//! Adding an operation: a struct here, its `impl Op`, and one line in the
//! `timeline_ops!` list, which derives the [`TimelineOp`] variant, the
//! conversion and the replay arm.

use serde::{Deserialize, Serialize};

use super::{
    AutoTrigger, Commit, CommitMeta, DeployChange, DeploymentEnded, DeploymentId, DeploymentSpec,
    DeploymentStarted, FinishAction, ForkRecord, NamedOptions, Observation, Promotion, Pruned,
    RollbackOutcome, RollbackPolicy, RollbackTarget, SnapshotInfo, SnapshotTaken, Timeline,
    TransactionOutcome,
};
use crate::error::Error;
use crate::id::{Revision, TransactionId};
use crate::model::Model;
use crate::name::{SnapshotName, TenantId};

/// A typed mutation of a timeline.
///
/// `run` either succeeds completely or returns an error and leaves the
/// timeline as it was. The op then converts into its journal form,
/// [`TimelineOp`].
pub trait Op<M: Model>: Into<TimelineOp<M>> {
    /// What running the op returns.
    type Output;

    /// Runs the op on `timeline`.
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Self::Output, Error>;
}

/// [`Timeline::apply_with`]: a change as a new revision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Apply<M: Model> {
    /// The change.
    pub change: M::Change,
    /// Attribution.
    #[serde(default)]
    pub meta: CommitMeta,
}

impl<M: Model> Op<M> for Apply<M> {
    type Output = Commit;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Commit, Error> {
        Ok(timeline.apply_with(&self.change, self.meta.clone())?)
    }
}

/// [`Timeline::replace_with`]: a whole new state as a new revision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Replace<M: Model> {
    /// The new state.
    pub state: M,
    /// Attribution.
    #[serde(default)]
    pub meta: CommitMeta,
}

impl<M: Model> Op<M> for Replace<M> {
    type Output = Commit;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Commit, Error> {
        Ok(timeline.replace_with(self.state.clone(), self.meta.clone()))
    }
}

/// [`Timeline::snapshot_auto`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct SnapshotAuto {
    /// Why.
    pub trigger: AutoTrigger,
}

impl<M: Model> Op<M> for SnapshotAuto {
    type Output = SnapshotTaken;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<SnapshotTaken, Error> {
        Ok(timeline.snapshot_auto(self.trigger))
    }
}

/// [`Timeline::snapshot_named`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotNamed {
    /// The name.
    pub name: SnapshotName,
    /// Protection and replace.
    #[serde(default)]
    pub options: NamedOptions,
}

impl<M: Model> Op<M> for SnapshotNamed {
    type Output = SnapshotTaken;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<SnapshotTaken, Error> {
        timeline.snapshot_named(self.name.clone(), self.options)
    }
}

/// [`Timeline::protect`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Protect {
    /// The snapshot.
    pub name: SnapshotName,
    /// Protect or unprotect.
    pub protected: bool,
}

impl<M: Model> Op<M> for Protect {
    type Output = SnapshotInfo;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<SnapshotInfo, Error> {
        Ok(timeline.protect(&self.name, self.protected)?)
    }
}

/// [`Timeline::delete_snapshot`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteSnapshot {
    /// The snapshot.
    pub name: SnapshotName,
}

impl<M: Model> Op<M> for DeleteSnapshot {
    type Output = SnapshotInfo;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<SnapshotInfo, Error> {
        Ok(timeline.delete_snapshot(&self.name)?)
    }
}

/// [`Timeline::rollback_with`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rollback {
    /// Where to.
    pub target: RollbackTarget,
    /// Attribution.
    #[serde(default)]
    pub meta: CommitMeta,
}

impl<M: Model> Op<M> for Rollback {
    type Output = RollbackOutcome;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<RollbackOutcome, Error> {
        timeline.rollback_with(&self.target, self.meta.clone())
    }
}

/// [`Timeline::begin_transaction`].
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct BeginTransaction {}

impl<M: Model> Op<M> for BeginTransaction {
    type Output = TransactionId;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<TransactionId, Error> {
        Ok(timeline.begin_transaction())
    }
}

/// [`Timeline::apply_step`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct ApplyStep<M: Model> {
    /// The transaction.
    pub transaction: TransactionId,
    /// The step name.
    pub step: SnapshotName,
    /// The change.
    pub change: M::Change,
    /// Attribution.
    #[serde(default)]
    pub meta: CommitMeta,
}

impl<M: Model> Op<M> for ApplyStep<M> {
    type Output = Commit;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Commit, Error> {
        Ok(timeline.apply_step_with(
            self.transaction,
            &self.step,
            &self.change,
            self.meta.clone(),
        )?)
    }
}

/// [`Timeline::checkpoint`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The transaction.
    pub transaction: TransactionId,
    /// The checkpoint name.
    pub name: SnapshotName,
}

impl<M: Model> Op<M> for Checkpoint {
    type Output = SnapshotInfo;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<SnapshotInfo, Error> {
        Ok(timeline.checkpoint(self.transaction, self.name.clone())?)
    }
}

/// [`Timeline::finish_transaction`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct FinishTransaction {
    /// The transaction.
    pub transaction: TransactionId,
    /// How it ended.
    pub outcome: TransactionOutcome,
}

impl<M: Model> Op<M> for FinishTransaction {
    type Output = Pruned;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Pruned, Error> {
        Ok(timeline.finish_transaction(self.transaction, self.outcome)?)
    }
}

/// [`Timeline::abort_transaction`]: ends a failed transaction, rolled back
/// per its policy where that is possible.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AbortTransaction {
    /// The transaction.
    pub transaction: TransactionId,
    /// Where to roll back to.
    pub policy: RollbackPolicy,
    /// Attribution of the rollback revision.
    #[serde(default)]
    pub meta: CommitMeta,
    /// Make no rollback when the target is the head's own revision (see
    /// [`Timeline::abort_transaction`]). Records journaled before this
    /// field existed decode as `false` and replay as they ran.
    #[serde(default)]
    pub quiet: bool,
}

impl<M: Model> Op<M> for AbortTransaction {
    type Output = super::Aborted;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<super::Aborted, Error> {
        timeline.abort_transaction_as(
            self.transaction,
            &self.policy,
            self.meta.clone(),
            self.quiet,
        )
    }
}

/// [`Timeline::start_deployment`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct StartDeployment<M: Model> {
    /// What runs and how it decides.
    pub spec: DeploymentSpec,
    /// What is deployed.
    pub change: DeployChange<M>,
    /// Attribution of the deployed revision.
    #[serde(default)]
    pub meta: CommitMeta,
}

impl<M: Model> Op<M> for StartDeployment<M> {
    type Output = DeploymentStarted;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<DeploymentStarted, Error> {
        timeline.start_deployment(self.spec.clone(), &self.change, self.meta.clone())
    }
}

/// [`Timeline::record_measurements`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordMeasurements {
    /// The deployment.
    pub deployment: DeploymentId,
    /// One round: a result per check.
    pub round: Vec<Observation>,
}

impl<M: Model> Op<M> for RecordMeasurements {
    type Output = Option<DeploymentEnded>;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Option<DeploymentEnded>, Error> {
        timeline.record_measurements(self.deployment, self.round.clone())
    }
}

/// [`Timeline::finish_deployment`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FinishDeployment {
    /// The deployment.
    pub deployment: DeploymentId,
    /// Promote or abort.
    pub action: FinishAction,
}

impl<M: Model> Op<M> for FinishDeployment {
    type Output = DeploymentEnded;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<DeploymentEnded, Error> {
        timeline.finish_deployment(self.deployment, &self.action)
    }
}

/// [`Timeline::record_fork`]: a fork of this timeline was made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordFork {
    /// The fork's id.
    pub fork: TenantId,
    /// The revision it was made from.
    pub base_revision: Revision,
    /// The fork's incarnation (absent in entries written before
    /// incarnations were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork_incarnation: Option<crate::Incarnation>,
}

impl<M: Model> Op<M> for RecordFork {
    type Output = ForkRecord;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<ForkRecord, Error> {
        Ok(timeline.record_fork(self.fork.clone(), self.base_revision, self.fork_incarnation))
    }
}

/// [`Timeline::promote`]: a fork's head written onto this timeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Promote<M: Model> {
    /// The fork promoted.
    pub fork: TenantId,
    /// Its revision promoted.
    pub fork_revision: Revision,
    /// The state or the merged patch.
    pub promotion: Promotion<M>,
    /// Attribution.
    #[serde(default)]
    pub meta: CommitMeta,
}

impl<M: Model> Op<M> for Promote<M> {
    type Output = Commit;
    fn run(&self, timeline: &mut Timeline<M>) -> Result<Commit, Error> {
        timeline.promote(
            self.fork.clone(),
            self.fork_revision,
            &self.promotion,
            self.meta.clone(),
        )
    }
}

/// Declares [`TimelineOp`] from the list of ops: one variant per op (the
/// journal form, internally tagged by `op`), `From` for each, and replay.
///
/// Decoding reads the tag first when it comes first, as it does in
/// everything rewind writes, and then the op's fields straight from the
/// input; serde's derived decoding of an internally tagged enum buffers
/// the whole record first (a third of the time a tenant took to read back).
/// A record with the tag elsewhere is decoded the derived way.
macro_rules! timeline_ops {
    ($($(#[$doc:meta])* $variant:ident($op:ty),)*) => {
        /// One mutation of a timeline, as a journal stores it: `{"op":
        /// "apply", "change": ..., "meta": ...}`. Built from the typed ops of
        /// this module with `From`.
        #[derive(Clone, Debug, Serialize)]
        #[serde(tag = "op", rename_all = "snake_case", bound = "")]
        #[non_exhaustive]
        pub enum TimelineOp<M: Model> {
            $($(#[$doc])* $variant($op),)*
        }

        /// The derived decoding, for records whose tag is not first.
        #[derive(Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case", bound = "")]
        enum Buffered<M: Model> {
            $($variant($op),)*
        }

        /// The tag, decoded on its own.
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum Tag {
            $($variant,)*
        }

        impl<'de, M: Model> Deserialize<'de> for TimelineOp<M> {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor<M>(std::marker::PhantomData<fn() -> M>);

                impl<'de, M: Model> serde::de::Visitor<'de> for Visitor<M> {
                    type Value = TimelineOp<M>;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a timeline op: an object with an \"op\" tag")
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Self::Value, A::Error> {
                        let Some(first) = map.next_key::<String>()? else {
                            return Err(serde::de::Error::missing_field("op"));
                        };
                        if first != "op" {
                            // Slow path: gather the record, then decode it
                            // the derived way.
                            let mut record = serde_json::Map::new();
                            record.insert(first, map.next_value()?);
                            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                                record.insert(key, value);
                            }
                            let buffered: Buffered<M> =
                                serde_json::from_value(serde_json::Value::Object(record))
                                    .map_err(serde::de::Error::custom)?;
                            return Ok(match buffered {
                                $(Buffered::$variant(op) => TimelineOp::$variant(op),)*
                            });
                        }
                        let tag: Tag = map.next_value()?;
                        let rest = serde::de::value::MapAccessDeserializer::new(map);
                        Ok(match tag {
                            $(Tag::$variant => TimelineOp::$variant(<$op>::deserialize(rest)?),)*
                        })
                    }
                }

                deserializer.deserialize_map(Visitor(std::marker::PhantomData))
            }
        }

        $(impl<M: Model> From<$op> for TimelineOp<M> {
            fn from(op: $op) -> Self {
                TimelineOp::$variant(op)
            }
        })*

        impl<M: Model> Timeline<M> {
            /// Runs one mutation from its journal form (replay). On error
            /// nothing changed.
            pub fn execute(&mut self, op: &TimelineOp<M>) -> Result<(), Error> {
                match op {
                    $(TimelineOp::$variant(op) => Op::<M>::run(op, self).map(drop),)*
                }
            }
        }
    };
}

timeline_ops! {
    /// [`Apply`].
    Apply(Apply<M>),
    /// [`Replace`].
    Replace(Replace<M>),
    /// [`SnapshotAuto`].
    SnapshotAuto(SnapshotAuto),
    /// [`SnapshotNamed`].
    SnapshotNamed(SnapshotNamed),
    /// [`Protect`].
    Protect(Protect),
    /// [`DeleteSnapshot`].
    DeleteSnapshot(DeleteSnapshot),
    /// [`Rollback`].
    Rollback(Rollback),
    /// [`BeginTransaction`].
    BeginTransaction(BeginTransaction),
    /// [`ApplyStep`].
    ApplyStep(ApplyStep<M>),
    /// [`Checkpoint`].
    Checkpoint(Checkpoint),
    /// [`FinishTransaction`].
    FinishTransaction(FinishTransaction),
    /// [`AbortTransaction`].
    AbortTransaction(AbortTransaction),
    /// [`StartDeployment`].
    StartDeployment(StartDeployment<M>),
    /// [`RecordMeasurements`].
    RecordMeasurements(RecordMeasurements),
    /// [`FinishDeployment`].
    FinishDeployment(FinishDeployment),
    /// [`RecordFork`].
    RecordFork(RecordFork),
    /// [`Promote`].
    Promote(Promote<M>),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Doc, Patch};

    /// The journal form is the one earlier versions wrote: old journals
    /// replay.
    #[test]
    fn journal_form_is_stable() {
        let patch = Patch::from_json(&json!([{"op": "add", "path": "/a", "value": 1}])).unwrap();
        let op: TimelineOp<Doc> = Apply {
            change: patch,
            meta: CommitMeta::default(),
        }
        .into();
        let encoded = serde_json::to_value(&op).unwrap();
        assert_eq!(encoded["op"], "apply");
        assert_eq!(encoded["change"][0]["path"], "/a");
        let begin: TimelineOp<Doc> = BeginTransaction {}.into();
        assert_eq!(
            serde_json::to_value(&begin).unwrap(),
            json!({"op": "begin_transaction"})
        );
        let back: TimelineOp<Doc> =
            serde_json::from_value(json!({"op": "begin_transaction"})).unwrap();
        assert!(matches!(back, TimelineOp::BeginTransaction(_)));
        let named: TimelineOp<Doc> =
            serde_json::from_value(json!({"op": "snapshot_named", "name": "v1"})).unwrap();
        assert!(
            matches!(named, TimelineOp::SnapshotNamed(SnapshotNamed { ref name, .. }) if name.as_str() == "v1")
        );
    }

    /// Read from text, as a journal is: the tag first (what rewind writes)
    /// or anywhere else decode to the same op; a missing or unknown tag is
    /// an error.
    #[test]
    fn an_op_decodes_wherever_its_tag_is() {
        let records = [
            r#"{"op":"apply","change":[{"op":"add","path":"/a","value":1}],"meta":{"author":"ci"}}"#,
            r#"{"change":[{"op":"add","path":"/a","value":1}],"op":"apply","meta":{"author":"ci"}}"#,
            r#"{"meta":{"author":"ci"},"change":[{"op":"add","path":"/a","value":1}],"op":"apply"}"#,
        ];
        let decoded: Vec<serde_json::Value> = records
            .iter()
            .map(|text| {
                let op: TimelineOp<Doc> = serde_json::from_str(text).unwrap();
                serde_json::to_value(&op).unwrap()
            })
            .collect();
        assert_eq!(decoded[0]["meta"]["author"], "ci");
        assert!(decoded.iter().all(|d| *d == decoded[0]), "{decoded:?}");
        let begin: TimelineOp<Doc> = serde_json::from_str(r#"{"op":"begin_transaction"}"#).unwrap();
        assert!(matches!(begin, TimelineOp::BeginTransaction(_)));
        for bad in [
            r#"{}"#,
            r#"{"name":"v1"}"#,
            r#"{"op":"frobnicate"}"#,
            r#"{"op":"snapshot_named"}"#,
            r#"[1, 2]"#,
        ] {
            assert!(
                serde_json::from_str::<TimelineOp<Doc>>(bad).is_err(),
                "{bad} must not decode"
            );
        }
    }
}
