//! Publication: a sealed batch becomes visible and is answered, strictly in
//! the order the actor sealed it, and only once it is durable.
//!
//! In memory mode the actor completes each batch itself as it seals it. With
//! a journal, the actor hands sealed batches to its publisher task and goes
//! on applying the next ones; the task awaits each batch's append in order,
//! then publishes the batch's timeline, tells watchers, answers its requests
//! and stores an image when one is due. When an append fails, that batch
//! and every later one the actor sealed before noticing (the same
//! *generation*) are answered with the journal error, and nothing of them is
//! published: the actor rewinds to the last publication.

use std::sync::Arc;

use rewind_core::{Model, Revision, TenantId, Timeline};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::warn;

use super::shared::TenantShared;
use super::watcher::Published;
use crate::durability;
use crate::error::Error;
use crate::journal::{Durable, Journal, JournalError, JournalSeq};
use crate::metrics;

/// An answer waiting for its batch: called with the journal failure, if the
/// batch failed, once every earlier batch is answered.
pub(crate) type Ack = Box<dyn FnOnce(Option<&JournalFailure>) + Send>;

/// Why a batch was not made durable.
pub(crate) struct JournalFailure {
    tenant: TenantId,
    source: JournalError,
}

impl JournalFailure {
    /// The error a request of the failed batch is answered with.
    pub(crate) fn error(&self) -> Error {
        Error::Journal {
            tenant: self.tenant.clone(),
            source: self.source.clone(),
        }
    }
}

/// A batch the actor has applied and closed.
pub(crate) struct Sealed<M: Model> {
    pub(crate) generation: u64,
    /// The timeline after the batch (an O(1) clone).
    pub(crate) timeline: Timeline<M>,
    /// Seq of the batch's last journal entry (the previous one's if none).
    pub(crate) seq: u64,
    /// Whether the batch changed the timeline.
    pub(crate) changed: bool,
    pub(crate) acks: Vec<Ack>,
}

/// Publishes completed batches of one tenant; see the module docs.
pub(crate) struct Publisher<M: Model> {
    shared: Arc<TenantShared<M>>,
    /// Newest revision sent to watchers.
    last_published: Revision,
    /// The generation whose append failed, and why.
    failure: Option<(u64, JournalFailure)>,
    /// Storing the newest image and pruning what it covers.
    image_task: Option<JoinHandle<()>>,
}

impl<M: Model> Publisher<M> {
    pub(crate) fn new(shared: Arc<TenantShared<M>>) -> Self {
        let last_published = shared.read(|t| t.revision());
        Publisher {
            shared,
            last_published,
            failure: None,
            image_task: None,
        }
    }

    /// Completes `batch`, whose append resolved with `durable`.
    pub(crate) fn complete(&mut self, batch: Sealed<M>, durable: Result<(), JournalError>) {
        if let Some((generation, failure)) = &self.failure {
            if *generation == batch.generation {
                // An earlier batch of this generation failed: this one built
                // on it, and the journal refused it as out of sequence.
                return answer(batch.acks, Some(failure));
            }
        }
        match durable {
            Ok(()) => {
                if batch.changed {
                    self.shared.set_durable_seq(batch.seq);
                    self.store_image_if_due(&batch);
                    self.publish(batch.timeline);
                }
                answer(batch.acks, None);
            }
            Err(source) => {
                warn!(tenant = %self.shared.id, error = %source, "journal append failed; rewinding to the last durable state");
                let failure = JournalFailure {
                    tenant: self.shared.id.clone(),
                    source,
                };
                self.shared.set_failed_generation(batch.generation);
                answer(batch.acks, Some(&failure));
                self.failure = Some((batch.generation, failure));
            }
        }
    }

    /// The failure of `generation` or a later one, if any.
    fn failure_since(&self, generation: u64) -> Option<Error> {
        self.failure
            .as_ref()
            .filter(|(failed, _)| *failed >= generation)
            .map(|(_, failure)| failure.error())
    }

    /// Publishes the timeline for lock-free readers and tells watchers about
    /// its new revisions.
    fn publish(&mut self, timeline: Timeline<M>) {
        let timeline = Arc::new(timeline);
        if let Some(old) = self.shared.published() {
            metrics::republished(&old, &timeline);
        }
        self.shared.publish(Arc::clone(&timeline));
        let head = timeline.revision();
        if head <= self.last_published {
            return;
        }
        let last = std::mem::replace(&mut self.last_published, head);
        let Some(events) = self.shared.watchers() else {
            return;
        };
        let new: Vec<_> = timeline
            .history()
            .rev()
            .take_while(|info| info.revision > last)
            .cloned()
            .collect();
        for info in new.into_iter().rev() {
            // A watcher that left is not an error.
            let _ = events.send(Published::Revision(info));
        }
    }

    /// Stores an image of `batch`'s timeline when `image_every` entries
    /// passed since the last one; once it is durable, the entries it covers
    /// and the previous image are deleted.
    fn store_image_if_due(&mut self, batch: &Sealed<M>) {
        let Some(journaling) = self.shared.journaling() else {
            return;
        };
        if batch.seq < self.shared.image_seq() + journaling.image_every
            || self.image_task.as_ref().is_some_and(|t| !t.is_finished())
        {
            // Not due, or the previous image is still being stored (the
            // next batch tries again).
            return;
        }
        let previous = self.shared.image_seq();
        self.shared.set_image_seq(batch.seq);
        let journal = Arc::clone(&journaling.journal);
        let (tenant, seq, config) = (self.shared.id.clone(), batch.seq, self.shared.config());
        // Immutable and O(1) to clone: the image is encoded off the actor.
        let timeline = batch.timeline.clone();
        self.image_task = Some(tokio::spawn(store_image(
            journal, tenant, seq, previous, config, timeline,
        )));
    }

    /// Waits for the image being stored, if any.
    async fn settle_images(&mut self) {
        if let Some(task) = self.image_task.take() {
            let _ = task.await;
        }
    }
}

fn answer(acks: Vec<Ack>, failure: Option<&JournalFailure>) {
    for ack in acks {
        ack(failure);
    }
}

async fn store_image<M: Model>(
    journal: Arc<dyn Journal>,
    tenant: TenantId,
    seq: u64,
    previous: u64,
    config: crate::config::TenantConfig,
    timeline: Timeline<M>,
) {
    let encoded = tokio::task::spawn_blocking(move || {
        let image = durability::image(&tenant, seq, &config, &timeline)
            .map_err(|e| format!("could not encode an image: {e}"))?;
        Ok::<_, String>((tenant, image))
    })
    .await;
    let (tenant, image) = match encoded {
        Ok(Ok(encoded)) => encoded,
        Ok(Err(e)) => return warn!("{e}"),
        Err(e) => return warn!(error = %e, "image encoding stopped"),
    };
    if let Err(e) = journal.save_image(image).await {
        return warn!(%tenant, error = %e, "could not store an image");
    }
    let pruned = tokio::task::spawn_blocking(move || {
        journal.delete_up_to(&tenant, JournalSeq::new(seq))?;
        if previous > 0 {
            journal.delete_image(&tenant, JournalSeq::new(previous))?;
        }
        Ok::<_, JournalError>(())
    })
    .await;
    if let Ok(Err(e)) = pruned {
        warn!(error = %e, "could not prune journal entries covered by an image");
    }
}

enum Stage<M: Model> {
    /// A sealed batch and its append (`None`: nothing to make durable).
    Batch(Box<Sealed<M>>, Option<Durable>),
    /// Answered once every earlier batch is completed and any image stored:
    /// the failure of `generation` or later, if any.
    Barrier {
        generation: u64,
        done: oneshot::Sender<Result<(), Error>>,
    },
}

/// The publisher task of a journaled tenant and the way to it.
pub(crate) struct Pipeline<M: Model> {
    journal: Arc<dyn Journal>,
    /// `None` once closed.
    stages: Option<mpsc::UnboundedSender<Stage<M>>>,
    task: Option<JoinHandle<()>>,
}

impl<M: Model> Pipeline<M> {
    /// Starts the task; it ends when the pipeline is dropped and every
    /// batch sent is completed.
    pub(crate) fn start(journal: Arc<dyn Journal>, mut publisher: Publisher<M>) -> Self {
        let (stages, mut queue) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(stage) = queue.recv().await {
                match stage {
                    Stage::Batch(batch, durable) => {
                        let result = match durable {
                            Some(durable) => durable.await,
                            None => Ok(()),
                        };
                        publisher.complete(*batch, result);
                    }
                    Stage::Barrier { generation, done } => {
                        publisher.settle_images().await;
                        let _ = done.send(publisher.failure_since(generation).map_or(Ok(()), Err));
                    }
                }
            }
            publisher.settle_images().await;
        });
        Pipeline {
            journal,
            stages: Some(stages),
            task: Some(task),
        }
    }

    /// Completes everything sent, then ends the task (which holds the
    /// tenant, so its journal): a stopped tenant leaves nothing running.
    pub(crate) async fn close(&mut self) {
        self.stages.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Appends the batch's entries (one atomic append) and queues the batch
    /// for completion once they are durable.
    pub(crate) fn send(&self, batch: Sealed<M>, entries: Vec<crate::journal::Entry>) {
        let durable = (!entries.is_empty()).then(|| self.journal.append(entries));
        // The task outlives every sender; a send fails only if it panicked
        // (or after `close`, which only a stopped actor calls).
        if let Some(stages) = &self.stages {
            let _ = stages.send(Stage::Batch(Box::new(batch), durable));
        }
    }

    /// Waits until every batch sent so far is completed; the failure of
    /// `generation` or later, if any.
    pub(crate) async fn barrier(&self, generation: u64) -> Result<(), Error> {
        let (done, wait) = oneshot::channel();
        let Some(stages) = &self.stages else {
            return Ok(());
        };
        if stages.send(Stage::Barrier { generation, done }).is_err() {
            return Ok(());
        }
        wait.await.unwrap_or(Ok(()))
    }
}
