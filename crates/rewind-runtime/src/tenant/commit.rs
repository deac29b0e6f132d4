//! The open batch: ops run on the actor's working timeline, their journal
//! entries and the answers waiting for them; sealing it hands it to
//! publication ([`super::publish`]).
//!
//! The working timeline runs ahead of the published one while batches are
//! being made durable. After a failed append the actor takes the timeline
//! read back from the journal before running anything else.

use ractor::RpcReplyPort;
use rewind_core::{Model, Op, Timeline};

use super::actor::{Committer, TenantState};
use super::publish::{Ack, Sealed};
use super::shared::Permit;
use crate::durability;
use crate::error::Error;
use crate::journal::Entry;

/// What the actor has run since it last sealed.
pub(crate) struct Batch {
    entries: Vec<Entry>,
    acks: Vec<Ack>,
    changed: bool,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Batch {
            entries: Vec::new(),
            acks: Vec::new(),
            changed: false,
        }
    }
}

impl<M: Model> TenantState<M> {
    /// Runs a typed op on the working timeline and, with a journal, adds its
    /// entry to the open batch. On error nothing changed.
    pub(super) fn run<O: Op<M>>(&mut self, op: O) -> Result<O::Output, rewind_core::Error> {
        let output = op.run(&mut self.timeline)?;
        self.batch.changed = true;
        if self.shared.journaling().is_some() {
            self.seq += 1;
            let at = self.timeline.last_at();
            self.batch.entries.push(durability::op_entry(
                &self.shared.id,
                self.seq,
                &op.into(),
                at,
            ));
        }
        Ok(output)
    }

    /// Answers `reply` with `result` once everything run before it is
    /// durable and published (or with the journal error if it is not).
    /// `done` hears whether the answer is a success, for metrics.
    pub(super) fn answer_later<T: Send + 'static>(
        &mut self,
        reply: RpcReplyPort<Result<T, Error>>,
        permit: Option<Permit<M>>,
        result: Result<T, Error>,
        done: impl FnOnce(bool) + Send + 'static,
    ) {
        self.push_ack(Box::new(move |failure| {
            let result = match failure {
                Some(failure) => Err(failure.error()),
                None => result,
            };
            done(result.is_ok());
            // A caller that went away does not need the answer.
            let _ = reply.send(result);
            drop(permit);
        }));
    }

    /// Adds an answer to the open batch.
    pub(super) fn push_ack(&mut self, ack: Ack) {
        self.batch.acks.push(ack);
    }

    /// Closes the open batch: its entries go to the journal in one append
    /// and it is published and answered once they are durable (at once in
    /// memory mode).
    pub(super) fn seal(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Batch::new());
        if batch.acks.is_empty() && !batch.changed {
            return;
        }
        let sealed = Sealed {
            generation: self.generation,
            timeline: self.timeline.clone(),
            seq: self.seq,
            changed: batch.changed,
            acks: batch.acks,
            written: None,
        };
        match &mut self.committer {
            Committer::Inline(publisher) => publisher.complete(sealed),
            Committer::Pipelined(pipeline) => pipeline.send(sealed, batch.entries),
        }
    }

    /// Seals, then waits until everything sealed is durable, published and
    /// answered. Errors if an append of this generation failed; the working
    /// timeline is then what the journal holds (or, if the journal could not
    /// be read back, the tenant stays failed until it can).
    pub(super) async fn settle(&mut self) -> Result<(), Error> {
        self.seal();
        let result = match &self.committer {
            Committer::Inline(_) => Ok(()),
            Committer::Pipelined(pipeline) => pipeline.barrier(self.generation).await,
        };
        let resynced = self.resync_if_failed().await;
        result.and(resynced)
    }

    /// After a failed append: waits until the publisher has read the tenant
    /// back from the journal, then takes that timeline as the working one.
    /// Err while the journal cannot be read: nothing may be run on the
    /// working timeline, which may differ from the journal.
    pub(super) async fn resync_if_failed(&mut self) -> Result<(), Error> {
        let failed = self.shared.failed_generation();
        if failed < self.generation {
            return Ok(());
        }
        if let Committer::Pipelined(pipeline) = &self.committer {
            pipeline
                .resync()
                .await
                .map_err(|source| Error::Unavailable {
                    tenant: self.shared.id.clone(),
                    reason: format!(
                        "a write failed and the tenant cannot be read back from the journal \
                         yet, so nothing was applied: {source}"
                    ),
                })?;
        }
        self.timeline = self.shared.read(Timeline::clone);
        self.seq = self.shared.durable_seq();
        self.generation = failed + 1;
        self.keys = None;
        Ok(())
    }
}
