//! Publication: a sealed batch becomes visible and is answered, strictly in
//! the order the actor sealed it, and only once it is durable.
//!
//! In memory mode the actor completes each batch itself as it seals it. With
//! a journal, the actor hands sealed batches to its publisher task and goes
//! on applying the next ones; the task awaits each batch's append in order,
//! then publishes the batch's timeline, tells watchers, answers its requests
//! and stores an image when one is due.
//!
//! # After a failed append
//!
//! The journal is the truth. When an append fails (refused, or its outcome
//! unknown), the batch and every later one the actor sealed before noticing
//! (the same *generation*) are held, unanswered and unpublished. No append
//! of that generation is sent after the failure is seen (the gate), and the
//! ones already sent are awaited. Then the task *resyncs*: it reads the
//! tenant back from the journal (as activation does), publishes what the
//! journal holds, and answers each held batch by what the journal says of
//! it: applied when its entries are there, refused when they are not, and
//! outcome unknown only when the journal could not be read within
//! [`RESYNC_WITHIN`]. The actor builds nothing on its working timeline
//! until it has taken the resynced one ([`Pipeline::resync`]). So a write
//! refused as "not applied" cannot be stored later, and no write is built
//! on a state the journal does not hold.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rewind_core::{Model, Revision, TenantId, Timeline};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{info, warn};

use super::shared::TenantShared;
use super::watcher::Published;
use crate::durability;
use crate::error::Error;
use crate::journal::{Durable, Entry, Journal, JournalError, JournalSeq};
use crate::metrics;

/// How long a resync keeps trying to read the journal before it answers
/// the held batches whose outcome it cannot tell as unknown. The actor asks
/// again on its next request, so writes resume as soon as the journal
/// answers.
pub(crate) const RESYNC_WITHIN: Duration = Duration::from_secs(5);

/// Waits between attempts to read the journal back: short first, so a
/// journal that is back takes writes again within a fraction of a second.
const RESYNC_DELAYS: [Duration; 5] = [
    Duration::from_millis(20),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(200),
];

/// An answer waiting for its batch: called with the journal failure, if the
/// batch failed, once every earlier batch is answered.
pub(crate) type Ack = Box<dyn FnOnce(Option<&JournalFailure>) + Send>;

/// Why a batch was not made durable.
pub(crate) struct JournalFailure {
    tenant: TenantId,
    source: JournalError,
}

impl JournalFailure {
    fn new(tenant: &TenantId, source: JournalError) -> Self {
        JournalFailure {
            tenant: tenant.clone(),
            source,
        }
    }

    /// The error a request of the failed batch is answered with.
    pub(crate) fn error(&self) -> Error {
        Error::journal(&self.tenant, self.source.clone())
    }
}

/// The journal entries of a sealed batch: seqs `first..=last`, and a
/// fingerprint of them, by which a resync tells whether the journal holds
/// this very batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Written {
    first: u64,
    last: u64,
    fingerprint: u64,
}

impl Written {
    /// Of `entries` (`None` if there are none).
    pub(crate) fn of(entries: &[Entry]) -> Option<Self> {
        Some(Written {
            first: entries.first()?.seq.get(),
            last: entries.last()?.seq.get(),
            fingerprint: fingerprint(entries),
        })
    }
}

/// FNV-1a over each entry's seq, instant, kind and payload.
fn fingerprint(entries: &[Entry]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for entry in entries {
        eat(&entry.seq.get().to_le_bytes());
        eat(&entry.at.as_unix_micros().to_le_bytes());
        eat(entry.kind.as_str().as_bytes());
        eat(&(entry.payload.len() as u64).to_le_bytes());
        eat(&entry.payload);
    }
    hash
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
    /// Its journal entries, if any (set as it is sent).
    pub(crate) written: Option<Written>,
}

/// What became of a held batch.
enum Verdict {
    /// The journal holds it: answered as a success.
    Applied,
    /// The journal does not hold it, and never will.
    NotApplied(JournalError),
    /// Nobody can tell now.
    Unknown(JournalError),
}

/// A batch of a failed generation waiting for the resync, with what its
/// own append said.
struct Held<M: Model> {
    batch: Sealed<M>,
    durable: Result<(), JournalError>,
}

/// Publishes completed batches of one tenant; see the module docs.
pub(crate) struct Publisher<M: Model> {
    shared: Arc<TenantShared<M>>,
    /// Newest revision sent to watchers.
    last_published: Revision,
    /// The generation whose append failed, and why.
    failure: Option<(u64, JournalFailure)>,
    /// The newest failed generation the published timeline was resynced
    /// after (0: none).
    synced: u64,
    /// Batches of the failed generation, until the resync answers them.
    held: Vec<Held<M>>,
    /// Storing the newest image and pruning what it covers.
    image_task: Option<JoinHandle<()>>,
}

impl<M: Model> Publisher<M> {
    pub(crate) fn new(shared: Arc<TenantShared<M>>) -> Self {
        let last_published = shared.read(|t| t.revision());
        let synced = shared.failed_generation();
        Publisher {
            shared,
            last_published,
            failure: None,
            synced,
            held: Vec::new(),
            image_task: None,
        }
    }

    /// Publishes and answers `batch`, which is durable (memory mode, and
    /// journaled batches of a generation that has not failed).
    pub(crate) fn complete(&mut self, batch: Sealed<M>) {
        if batch.changed {
            self.shared.set_durable_seq(batch.seq);
            self.store_image_if_due(&batch);
            self.publish(batch.timeline);
        }
        answer(batch.acks, None);
    }

    /// Takes a journaled batch whose append resolved with `durable`:
    /// completes it, or holds it when its generation failed. Returns true
    /// when this batch is the first failure of its generation.
    fn receive(&mut self, batch: Sealed<M>, durable: Result<(), JournalError>) -> bool {
        let failing = self
            .failure
            .as_ref()
            .is_some_and(|(generation, _)| *generation == batch.generation);
        if !failing && durable.is_ok() {
            self.complete(batch);
            return false;
        }
        if let Err(source) = &durable {
            if !failing {
                warn!(tenant = %self.shared.id, error = %source, "journal append failed; reading the tenant back from the journal before it writes again");
                self.failure = Some((
                    batch.generation,
                    JournalFailure::new(&self.shared.id, source.clone()),
                ));
            }
        }
        self.held.push(Held { batch, durable });
        !failing
    }

    /// The failure of `generation` or a later one, if any.
    fn failure_since(&self, generation: u64) -> Option<Error> {
        self.failure
            .as_ref()
            .filter(|(failed, _)| *failed >= generation)
            .map(|(_, failure)| failure.error())
    }

    /// Whether the published timeline is what the journal holds: no
    /// generation failed since the last resync.
    fn in_sync(&self) -> bool {
        self.failure
            .as_ref()
            .is_none_or(|(generation, _)| *generation <= self.synced)
    }

    /// Reads the tenant back from the journal, trying for up to `within`;
    /// publishes it and answers the held batches by what the journal holds.
    /// Err (the journal could not be read) leaves the tenant out of sync:
    /// the held batches are answered from their own appends, as far as
    /// those tell.
    async fn resync(&mut self, within: Duration) -> Result<(), JournalError> {
        let Some((generation, _)) = &self.failure else {
            return Ok(());
        };
        let generation = *generation;
        if generation <= self.synced {
            return Ok(());
        }
        // An image being stored deletes the entries it covers: reading the
        // journal meanwhile could miss them.
        self.settle_images().await;
        let Some(journaling) = self.shared.journaling().cloned() else {
            return Ok(());
        };
        let written: Vec<Option<Written>> =
            self.held.iter().map(|held| held.batch.written).collect();
        let deadline = Instant::now() + within;
        let mut delays = RESYNC_DELAYS
            .iter()
            .chain(std::iter::repeat(&RESYNC_DELAYS[4]));
        let read = loop {
            let (journal, tenant, clock) = (
                Arc::clone(&journaling.journal),
                self.shared.id.clone(),
                Arc::clone(&self.shared.context.clock),
            );
            let written = written.clone();
            let durable = self
                .shared
                .published()
                .map(|published| (published, self.shared.durable_seq()));
            let attempt = tokio::task::spawn_blocking(move || {
                read_back_with_verdicts::<M>(&*journal, &tenant, &clock, durable, &written)
            })
            .await
            .unwrap_or_else(|e| Err(JournalError::Storage(format!("reading back stopped: {e}"))));
            match attempt {
                Ok(read) => break Ok(read),
                Err(error) => {
                    let delay = *delays.next().unwrap_or(&RESYNC_DELAYS[4]);
                    if Instant::now() + delay >= deadline {
                        break Err(error);
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        };
        let held = std::mem::take(&mut self.held);
        match read {
            Ok((recovered, present)) => {
                match recovered {
                    ReadBack::CaughtUp(timeline, seq) => {
                        info!(tenant = %self.shared.id, seq, "tenant caught up with the journal after a failed append");
                        self.shared.set_durable_seq(seq);
                        self.publish(*timeline);
                    }
                    ReadBack::Whole(Some(recovered)) => {
                        let recovered = *recovered;
                        info!(tenant = %self.shared.id, seq = recovered.seq, "tenant read back from the journal after a failed append");
                        self.shared.set_image_seq(recovered.image_seq.unwrap_or(0));
                        self.shared.set_durable_seq(recovered.seq);
                        self.publish(recovered.timeline);
                    }
                    ReadBack::Whole(None) => {
                        warn!(tenant = %self.shared.id, "the journal says the tenant was deleted; keeping the last published state");
                    }
                }
                self.synced = generation;
                answer_held(&self.shared.id, held, |index, held| {
                    let stored = present[index];
                    match (held.batch.written, stored) {
                        (_, Some(true)) => Verdict::Applied,
                        (Some(_), Some(false)) => Verdict::NotApplied(not_stored(&held.durable)),
                        // No entries of its own: it stands or falls with
                        // the batches before it (`answer_held`).
                        (None, _) => Verdict::Applied,
                        (Some(_), None) => Verdict::Unknown(JournalError::OutcomeUnknown(
                            "the journal no longer holds the entries to compare".into(),
                        )),
                    }
                });
                Ok(())
            }
            Err(error) => {
                warn!(tenant = %self.shared.id, %error, "the journal could not be read back; the tenant takes no write until it can");
                answer_held(&self.shared.id, held, |_, held| match &held.durable {
                    Err(e) if !e.is_outcome_unknown() => Verdict::NotApplied(e.clone()),
                    _ if held.batch.written.is_none() => Verdict::NotApplied(
                        JournalError::Unavailable("an earlier write failed".into()),
                    ),
                    _ => Verdict::Unknown(JournalError::OutcomeUnknown(format!(
                        "the journal could not be read back to find out: {error}"
                    ))),
                });
                Err(error)
            }
        }
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

/// The error a batch the journal does not hold is answered with: its own
/// append's, when that said nothing was stored.
fn not_stored(durable: &Result<(), JournalError>) -> JournalError {
    match durable {
        Err(error) if !error.is_outcome_unknown() => error.clone(),
        Err(error) => JournalError::Unavailable(format!(
            "the journal does not hold the write after all ({error})"
        )),
        Ok(()) => JournalError::Unavailable("an earlier write of the tenant failed".into()),
    }
}

/// Answers held batches in order by `verdict`. A batch after one that was
/// not applied cannot have been (it built on it): it is refused too, and
/// one after an unknown outcome is unknown unless the journal said.
fn answer_held<M: Model>(
    tenant: &TenantId,
    held: Vec<Held<M>>,
    verdict: impl Fn(usize, &Held<M>) -> Verdict,
) {
    let mut broken: Option<Verdict> = None;
    for (index, held) in held.into_iter().enumerate() {
        let mut decided = verdict(index, &held);
        if matches!(decided, Verdict::Applied) && held.batch.written.is_none() {
            // A read or a refusal computed on the working timeline stands
            // only if everything before it was applied.
            decided = match &broken {
                None => Verdict::Applied,
                Some(_) => Verdict::NotApplied(JournalError::Unavailable(
                    "an earlier write of the tenant failed".into(),
                )),
            };
        }
        let failure = match &decided {
            Verdict::Applied => None,
            Verdict::NotApplied(error) | Verdict::Unknown(error) => Some(error.clone()),
        };
        if !matches!(decided, Verdict::Applied) {
            broken.get_or_insert(decided);
        }
        let failure = failure.map(|source| JournalFailure::new(tenant, source));
        answer(held.batch.acks, failure.as_ref());
    }
}

/// What the journal holds of a tenant after a failed append.
enum ReadBack<M: Model> {
    /// The published timeline with the entries stored after it, and the
    /// seq it is at.
    CaughtUp(Box<Timeline<M>>, u64),
    /// Read back whole, as activation does (`None`: deleted).
    Whole(Option<Box<durability::Recovered<M>>>),
}

/// Reads `tenant` back and says, for each batch written (`None`: no
/// entries), whether the journal holds it (`None`: the entries are no
/// longer there to compare). `durable` is the published timeline and the
/// seq it reflects: the journal's entries after it are replayed onto it
/// when they can be (usually none, or the batch whose answer was lost);
/// else the tenant is read back whole, as activation does, without closing
/// a running transaction (its actor still runs it).
#[allow(clippy::type_complexity)]
fn read_back_with_verdicts<M: Model>(
    journal: &dyn Journal,
    tenant: &TenantId,
    clock: &Arc<dyn rewind_core::Clock>,
    durable: Option<(Arc<Timeline<M>>, u64)>,
    written: &[Option<Written>],
) -> Result<(ReadBack<M>, Vec<Option<bool>>), JournalError> {
    let caught_up = match &durable {
        Some((published, seq)) => durability::catch_up(journal, tenant, published, *seq, clock)?,
        None => None,
    };
    let recovered = match caught_up {
        Some((timeline, seq)) => ReadBack::CaughtUp(Box::new(timeline), seq),
        None => ReadBack::Whole(durability::recover::<M>(journal, tenant, clock)?.map(Box::new)),
    };
    let highest = match &recovered {
        ReadBack::CaughtUp(_, seq) => *seq,
        ReadBack::Whole(recovered) => recovered.as_ref().map_or(0, |r| r.seq),
    };
    let mut present = Vec::with_capacity(written.len());
    for written in written {
        let verdict = match written {
            None => Some(true),
            Some(written) if written.last > highest => Some(false),
            Some(written) => {
                let entries = journal.read(
                    tenant,
                    JournalSeq::new(written.first),
                    JournalSeq::new(written.last),
                )?;
                let complete = entries.len() as u64 == written.last - written.first + 1;
                complete.then(|| fingerprint(&entries) == written.fingerprint)
            }
        };
        present.push(verdict);
    }
    Ok((recovered, present))
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
    Batch(Box<Sealed<M>>, Append),
    /// Answered once every earlier batch is completed and any image stored:
    /// the failure of `generation` or later, if any.
    Barrier {
        generation: u64,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Answered once the published timeline is what the journal holds
    /// (after a resync, if a generation failed); Err if the journal could
    /// not be read.
    Resync {
        done: oneshot::Sender<Result<(), JournalError>>,
    },
}

/// What became of a batch's entries.
enum Append {
    /// None to make durable.
    Nothing,
    /// Handed to the journal.
    Sent(Durable),
    /// Not sent: its generation had failed already (see the gate).
    Withheld,
}

/// The publisher task of a journaled tenant and the way to it.
pub(crate) struct Pipeline<M: Model> {
    journal: Arc<dyn Journal>,
    shared: Arc<TenantShared<M>>,
    /// Held while an append is sent and queued, and while the task marks a
    /// generation failed: once the mark is set, every append of the
    /// generation that was sent is in the queue, and no other is sent.
    gate: Arc<Mutex<()>>,
    /// `None` once closed.
    stages: Option<mpsc::UnboundedSender<Stage<M>>>,
    task: Option<JoinHandle<()>>,
}

impl<M: Model> Pipeline<M> {
    /// Starts the task; it ends when the pipeline is dropped and every
    /// batch sent is completed.
    pub(crate) fn start(journal: Arc<dyn Journal>, publisher: Publisher<M>) -> Self {
        let (stages, queue) = mpsc::unbounded_channel();
        let gate = Arc::new(Mutex::new(()));
        let shared = Arc::clone(&publisher.shared);
        let task = tokio::spawn(run(publisher, queue, Arc::clone(&gate)));
        Pipeline {
            journal,
            shared,
            gate,
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
    /// for completion once they are durable. A batch of a generation that
    /// failed is not appended: it is answered as refused.
    pub(crate) fn send(&self, mut batch: Sealed<M>, entries: Vec<Entry>) {
        let Some(stages) = &self.stages else {
            return;
        };
        batch.written = Written::of(&entries);
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let append = if entries.is_empty() {
            Append::Nothing
        } else if self.shared.failed_generation() >= batch.generation {
            Append::Withheld
        } else {
            Append::Sent(self.journal.append(entries))
        };
        // The task outlives every sender; a send fails only if it panicked
        // (or after `close`, which only a stopped actor calls).
        let _ = stages.send(Stage::Batch(Box::new(batch), append));
        drop(gate);
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

    /// Waits until the published timeline is what the journal holds: after
    /// a failed append, the task reads the tenant back (trying for up to
    /// [`RESYNC_WITHIN`]). Err when the journal could not be read.
    pub(crate) async fn resync(&self) -> Result<(), JournalError> {
        let (done, wait) = oneshot::channel();
        let Some(stages) = &self.stages else {
            return Err(JournalError::Closed);
        };
        if stages.send(Stage::Resync { done }).is_err() {
            return Err(JournalError::Closed);
        }
        wait.await.unwrap_or(Err(JournalError::Closed))
    }
}

/// The publisher task: completes each stage in order.
async fn run<M: Model>(
    mut publisher: Publisher<M>,
    mut queue: mpsc::UnboundedReceiver<Stage<M>>,
    gate: Arc<Mutex<()>>,
) {
    while let Some(stage) = queue.recv().await {
        let first_failure = match stage {
            Stage::Batch(batch, append) => await_append(&mut publisher, *batch, append).await,
            Stage::Barrier { generation, done } => {
                publisher.settle_images().await;
                let _ = done.send(publisher.failure_since(generation).map_or(Ok(()), Err));
                false
            }
            Stage::Resync { done } => {
                let result = if publisher.in_sync() {
                    Ok(())
                } else {
                    publisher.resync(RESYNC_WITHIN).await
                };
                let _ = done.send(result);
                false
            }
        };
        if first_failure {
            fail_over(&mut publisher, &mut queue, &gate).await;
        }
    }
    publisher.settle_images().await;
}

/// Awaits a batch's append and hands it to the publisher; true when it is
/// the first failure of its generation.
async fn await_append<M: Model>(
    publisher: &mut Publisher<M>,
    batch: Sealed<M>,
    append: Append,
) -> bool {
    let durable = match append {
        Append::Nothing => Ok(()),
        Append::Sent(durable) => durable.await,
        Append::Withheld => Err(JournalError::Unavailable(
            "an earlier write of the tenant failed and it is being read back from the journal"
                .into(),
        )),
    };
    publisher.receive(batch, durable)
}

/// After the first failed append of a generation: closes the gate on it,
/// awaits every append of it already sent, then resyncs, so the held
/// batches are answered even if the actor sends nothing more. Barriers and
/// resyncs queued meanwhile are answered after the resync.
async fn fail_over<M: Model>(
    publisher: &mut Publisher<M>,
    queue: &mut mpsc::UnboundedReceiver<Stage<M>>,
    gate: &Mutex<()>,
) {
    if let Some((generation, _)) = &publisher.failure {
        let _gate = gate.lock().unwrap_or_else(|e| e.into_inner());
        publisher.shared.set_failed_generation(*generation);
    }
    let mut deferred = Vec::new();
    while let Ok(stage) = queue.try_recv() {
        match stage {
            Stage::Batch(batch, append) => {
                await_append(publisher, *batch, append).await;
            }
            other => deferred.push(other),
        }
    }
    let result = publisher.resync(RESYNC_WITHIN).await;
    for stage in deferred {
        match stage {
            Stage::Barrier { generation, done } => {
                let _ = done.send(publisher.failure_since(generation).map_or(Ok(()), Err));
            }
            Stage::Resync { done } => {
                let _ = done.send(result.clone());
            }
            Stage::Batch(batch, append) => {
                await_append(publisher, *batch, append).await;
            }
        }
    }
}
