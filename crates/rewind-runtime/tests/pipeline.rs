//! Batched and pipelined commits of the tenant actor, against a journal whose
//! appends the test completes one by one: in order or out of order, durable
//! or failed.
//!
//! - requests queued together run as one batch, appended once;
//! - a failing write in the middle of a batch fails only that write;
//! - the actor applies the next batch while the previous one is being made
//!   durable, but nothing is visible or acknowledged before it is durable,
//!   and answers come back in order;
//! - a failed append acknowledges nothing after it and loses nothing before
//!   it; the tenant goes on from the last durable state, also after a
//!   restart on the same journal.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rewind_core::{Doc, Revision, TenantId};
use rewind_runtime::journal::{
    Durable, Entry, Image, ImageQuery, Journal, JournalError, JournalSeq,
};
use rewind_runtime::{Error, Runtime, Tenant};
use serde_json::json;
use tokio::sync::oneshot;

use support::{accepted, doc, patch};

/// An append the test has not completed yet.
struct Held {
    entries: Vec<Entry>,
    done: oneshot::Sender<Result<(), JournalError>>,
}

#[derive(Default)]
struct Stored {
    entries: BTreeMap<(TenantId, JournalSeq), Entry>,
    highest: HashMap<TenantId, JournalSeq>,
    images: Vec<Image>,
    /// Entries per append call, in call order.
    appends: Vec<usize>,
    holding: bool,
    held: Vec<Option<Held>>,
}

impl Stored {
    /// Stores a batch if it continues every tenant's sequence, like the real
    /// journals (all or nothing).
    fn store(&mut self, entries: Vec<Entry>) -> Result<(), JournalError> {
        let mut highest = self.highest.clone();
        for entry in &entries {
            let previous = highest
                .get(&entry.tenant)
                .copied()
                .unwrap_or(JournalSeq::ZERO);
            if entry.seq != previous.next() {
                return Err(JournalError::OutOfSequence {
                    tenant: entry.tenant.to_string(),
                    seq: entry.seq,
                    highest: previous,
                });
            }
            highest.insert(entry.tenant.clone(), entry.seq);
        }
        self.highest = highest;
        for entry in entries {
            self.entries
                .insert((entry.tenant.clone(), entry.seq), entry);
        }
        Ok(())
    }
}

/// A journal whose appends can be held and then completed by the test.
#[derive(Clone, Default)]
struct Scripted(Arc<Mutex<Stored>>);

impl Scripted {
    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.0.lock().unwrap()
    }

    /// From now on, appends wait for [`complete`](Self::complete).
    fn hold(&self) {
        self.stored().holding = true;
    }

    /// Appends made durable at once again (held ones stay held).
    fn pass(&self) {
        self.stored().holding = false;
    }

    fn held(&self) -> usize {
        self.stored().held.iter().filter(|h| h.is_some()).count()
    }

    /// Completes the `index`-th held append (in call order): stored if
    /// `durable` and in sequence, else failed.
    fn complete(&self, index: usize, durable: bool) {
        let mut stored = self.stored();
        let held = stored.held[index].take().expect("held once");
        let result = if durable {
            stored.store(held.entries)
        } else {
            Err(JournalError::Storage("disk on fire (injected)".into()))
        };
        drop(stored);
        let _ = held.done.send(result);
    }

    fn seqs(&self, tenant: &str) -> Vec<u64> {
        self.stored()
            .entries
            .keys()
            .filter(|(t, _)| t.as_str() == tenant)
            .map(|(_, seq)| seq.get())
            .collect()
    }
}

impl Journal for Scripted {
    fn append(&self, entries: Vec<Entry>) -> Durable {
        let mut stored = self.stored();
        stored.appends.push(entries.len());
        if stored.holding {
            let (done, wait) = oneshot::channel();
            stored.held.push(Some(Held { entries, done }));
            Durable::pending(wait)
        } else {
            Durable::ready(stored.store(entries))
        }
    }

    fn save_image(&self, image: Image) -> Durable {
        self.stored().images.push(image);
        Durable::ready(Ok(()))
    }

    fn flush(&self) -> Durable {
        Durable::ready(Ok(()))
    }

    fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        let mut tenants: Vec<_> = self.stored().highest.keys().cloned().collect();
        tenants.sort();
        Ok(tenants)
    }

    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError> {
        Ok(self
            .stored()
            .entries
            .range((tenant.clone(), from)..=(tenant.clone(), to))
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        Ok(self
            .stored()
            .highest
            .get(tenant)
            .copied()
            .unwrap_or(JournalSeq::ZERO))
    }

    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError> {
        self.stored()
            .entries
            .retain(|(t, seq), _| t != tenant || *seq > to);
        Ok(())
    }

    fn load_image(
        &self,
        tenant: &TenantId,
        _query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        Ok(self
            .stored()
            .images
            .iter()
            .filter(|i| &i.tenant == tenant)
            .max_by_key(|i| i.seq)
            .cloned())
    }

    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError> {
        self.stored()
            .images
            .retain(|i| &i.tenant != tenant || i.seq != seq);
        Ok(())
    }
}

async fn start(journal: &Scripted) -> Runtime<Doc> {
    Runtime::<Doc>::builder()
        .journal(Arc::new(journal.clone()))
        .start()
        .await
        .expect("runtime starts")
}

fn set(n: i64) -> rewind_core::Patch {
    patch(json!([{"op": "replace", "path": "/n", "value": n}]))
}

/// Queues `apply(set(n))` on the tenant's lane (this test runtime has one
/// thread, so the actor has not run yet) and returns the pending answer.
async fn queue_set(
    acme: &Tenant<Doc>,
    n: i64,
) -> tokio::task::JoinHandle<Result<rewind_core::Commit, Error>> {
    let acme = acme.clone();
    accepted(async move { acme.apply(set(n)).await }).await
}

/// Lets the tenant's actor and publisher run until they wait for the test.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

async fn tenant(runtime: &Runtime<Doc>) -> Tenant<Doc> {
    runtime
        .create_tenant("acme", doc(json!({"n": 0})))
        .await
        .expect("created")
}

#[tokio::test]
async fn requests_queued_together_run_as_one_batch_and_a_failing_write_fails_alone() {
    let journal = Scripted::default();
    let runtime = start(&journal).await;
    let acme = tenant(&runtime).await;
    let appends_before = journal.stored().appends.len();

    // Queued before the actor runs (this test's runtime has one thread).
    let first = queue_set(&acme, 1).await;
    let bad = accepted({
        let acme = acme.clone();
        async move {
            acme.apply(patch(json!([{"op": "remove", "path": "/missing"}])))
                .await
        }
    })
    .await;
    let third = queue_set(&acme, 3).await;

    assert_eq!(first.await.unwrap().unwrap().revision, Revision(1));
    let refused = bad.await.unwrap().unwrap_err();
    assert!(
        matches!(refused, Error::Core { .. }),
        "the bad patch is refused for itself: {refused:?}"
    );
    assert_eq!(third.await.unwrap().unwrap().revision, Revision(2));
    assert_eq!(acme.current()["n"], 3);
    // One append for the whole batch: the two writes that ran.
    assert_eq!(journal.stored().appends[appends_before..], [2]);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_next_batch_runs_while_one_is_made_durable_and_answers_stay_in_order() {
    let journal = Scripted::default();
    let runtime = start(&journal).await;
    let acme = tenant(&runtime).await;
    journal.hold();

    let one = queue_set(&acme, 1).await;
    settle().await;
    // The actor did not wait for the first append: the second write ran
    // on top of it and was appended too.
    let two = queue_set(&acme, 2).await;
    settle().await;
    assert_eq!(journal.held(), 2, "both batches were appended");
    // Nothing is visible or acknowledged before it is durable.
    assert_eq!(acme.revision(), Revision(0));
    assert!(!one.is_finished() && !two.is_finished());

    journal.complete(0, true);
    settle().await;
    assert_eq!(one.await.unwrap().unwrap().revision, Revision(1));
    assert_eq!(acme.revision(), Revision(1));
    assert!(!two.is_finished(), "the second is not durable yet");
    journal.complete(1, true);
    assert_eq!(two.await.unwrap().unwrap().revision, Revision(2));
    assert_eq!(acme.current()["n"], 2);
    journal.pass();
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn answers_are_released_strictly_in_order() {
    let journal = Scripted::default();
    let runtime = start(&journal).await;
    let acme = tenant(&runtime).await;
    journal.hold();
    let mut answers = Vec::new();
    for n in 1..=5 {
        answers.push(queue_set(&acme, n).await);
        settle().await;
    }
    assert_eq!(journal.held(), 5);
    for i in 0..5 {
        journal.complete(i, true);
        settle().await;
        for (j, answer) in answers.iter().enumerate() {
            assert_eq!(answer.is_finished(), j <= i, "after batch {i}, answer {j}");
        }
        assert_eq!(acme.revision(), Revision(i as u64 + 1));
    }
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(
            answer.await.unwrap().unwrap().revision,
            Revision(i as u64 + 1)
        );
    }
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_append_acknowledges_nothing_after_it_and_loses_nothing_before_it() {
    let journal = Scripted::default();
    let runtime = start(&journal).await;
    let acme = tenant(&runtime).await;
    journal.hold();
    let mut answers = Vec::new();
    for n in 1..=3 {
        answers.push(queue_set(&acme, n).await);
        settle().await;
    }
    assert_eq!(journal.held(), 3);
    journal.complete(0, true);
    journal.complete(1, false);
    // The third, built on the failed second, does not continue the stored
    // sequence: refused.
    journal.complete(2, true);
    settle().await;
    let mut answers = answers.into_iter();
    let first = answers.next().unwrap().await.unwrap().unwrap();
    assert_eq!(first.revision, Revision(1));
    for answer in answers {
        let refused = answer.await.unwrap();
        assert!(
            matches!(refused, Err(Error::Journal { .. })),
            "nothing after the failure is acknowledged: {refused:?}"
        );
    }
    // Published: exactly what is durable.
    assert_eq!(acme.revision(), Revision(1));
    assert_eq!(acme.current()["n"], 1);

    // The tenant goes on from the durable state: the next revision is 2
    // again, and the journal's sequence stays dense.
    journal.pass();
    let next = acme.apply(set(40)).await.unwrap();
    assert_eq!(next.revision, Revision(2));
    let seqs = journal.seqs("acme");
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    runtime.shutdown().await.unwrap();

    // And a restart on the same journal sees exactly the acknowledged writes.
    let runtime = start(&journal).await;
    let acme = runtime.tenant("acme").await.unwrap();
    assert_eq!(acme.revision(), Revision(2));
    assert_eq!(acme.current()["n"], 40);
    let states: Vec<_> = acme
        .history(10)
        .into_iter()
        .map(|info| info.revision)
        .collect();
    assert_eq!(states, [Revision(2), Revision(1), Revision(0)]);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn reads_sent_as_messages_see_the_writes_sent_before_them() {
    use rewind_runtime::{SupervisorMsg, TenantMsg};

    let journal = Scripted::default();
    let runtime = start(&journal).await;
    let acme = tenant(&runtime).await;
    journal.hold();
    let supervisor = runtime.supervisor();
    let (write_tx, write_rx) = oneshot::channel();
    let (read_tx, read_rx) = oneshot::channel();
    supervisor
        .send_message(SupervisorMsg::Tenant {
            id: acme.id().clone(),
            msg: TenantMsg::Apply {
                change: set(7),
                options: Default::default(),
                reply: write_tx.into(),
            },
        })
        .unwrap();
    supervisor
        .send_message(SupervisorMsg::Tenant {
            id: acme.id().clone(),
            msg: TenantMsg::Read {
                at: rewind_core::StateRef::Head,
                reply: read_tx.into(),
            },
        })
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while journal.held() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the write reaches the journal");
    settle().await;
    journal.complete(0, true);
    journal.pass();
    assert_eq!(write_rx.await.unwrap().unwrap().revision, Revision(1));
    assert_eq!(read_rx.await.unwrap().unwrap()["n"], 7);
    runtime.shutdown().await.unwrap();
}
