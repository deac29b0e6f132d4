//! A journal that fails on purpose, for the tests of what the runtime
//! answers when its journal fails.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rewind_core::TenantId;
use rewind_runtime::journal::{
    Durable, Entry, Image, ImageQuery, Journal, JournalError, JournalSeq,
};

/// What the next append meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Refused before it reaches the journal: nothing stored, and the
    /// answer says so.
    Before,
    /// Stored by the journal, then the answer is lost: the caller hears
    /// [`JournalError::OutcomeUnknown`].
    After,
    /// As `After`, and the journal goes down (as [`FaultyJournal::set_down`])
    /// before the answer is given, so nobody can read it back to find out.
    AfterThenDown,
}

/// Wraps a journal: appends fail as planned ([`FaultyJournal::plan`]) or at
/// random ([`FaultyJournal::randomly`]), and the whole journal can be made
/// unreachable ([`FaultyJournal::set_down`]: appends refused, reads fail).
/// Images, deletions and flushes pass through while it is up.
///
/// An `After` append needs a tokio runtime (its answer is turned on a
/// task).
pub struct FaultyJournal {
    inner: Arc<dyn Journal>,
    planned: Mutex<std::collections::VecDeque<Fault>>,
    /// Per mille of appends failing `Before` and `After`, and the random
    /// state (xorshift).
    random: Mutex<Option<(u32, u32, u64)>>,
    down_flag: Arc<AtomicBool>,
    before: AtomicU64,
    after: AtomicU64,
}

impl FaultyJournal {
    /// `inner`, failing nothing yet.
    pub fn new(inner: Arc<dyn Journal>) -> Arc<Self> {
        Arc::new(FaultyJournal {
            inner,
            planned: Mutex::new(Default::default()),
            random: Mutex::new(None),
            down_flag: Arc::new(AtomicBool::new(false)),
            before: AtomicU64::new(0),
            after: AtomicU64::new(0),
        })
    }

    /// The next appends meet these faults, in order (then the random ones,
    /// if any).
    pub fn plan(&self, faults: impl IntoIterator<Item = Fault>) {
        self.planned.lock().unwrap().extend(faults);
    }

    /// From now on, each append fails `Before` with probability
    /// `before_per_mille` / 1000 and `After` with `after_per_mille` / 1000,
    /// drawn from `seed`.
    pub fn randomly(&self, before_per_mille: u32, after_per_mille: u32, seed: u64) {
        *self.random.lock().unwrap() = Some((before_per_mille, after_per_mille, seed | 1));
    }

    /// No more random faults.
    pub fn calm(&self) {
        *self.random.lock().unwrap() = None;
    }

    /// Makes the journal unreachable (appends refused, reads failing) or
    /// reachable again.
    pub fn set_down(&self, down: bool) {
        self.down_flag.store(down, Ordering::SeqCst);
    }

    /// How many appends failed `Before` and `After` so far.
    pub fn injected(&self) -> (u64, u64) {
        (
            self.before.load(Ordering::SeqCst),
            self.after.load(Ordering::SeqCst),
        )
    }

    fn next_fault(&self) -> Option<Fault> {
        if let Some(fault) = self.planned.lock().unwrap().pop_front() {
            return Some(fault);
        }
        let mut random = self.random.lock().unwrap();
        let (before, after, state) = random.as_mut()?;
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let draw = (*state % 1000) as u32;
        if draw < *before {
            Some(Fault::Before)
        } else if draw < *before + *after {
            Some(Fault::After)
        } else {
            None
        }
    }

    fn unreachable() -> JournalError {
        JournalError::Unavailable("the journal is down (a fault injected by a test)".into())
    }

    fn check_up(&self) -> Result<(), JournalError> {
        if self.down_flag.load(Ordering::SeqCst) {
            Err(Self::unreachable())
        } else {
            Ok(())
        }
    }
}

impl Journal for FaultyJournal {
    fn append(&self, entries: Vec<Entry>) -> Durable {
        if self.down_flag.load(Ordering::SeqCst) {
            return Durable::ready(Err(Self::unreachable()));
        }
        match self.next_fault() {
            None => self.inner.append(entries),
            Some(Fault::Before) => {
                self.before.fetch_add(1, Ordering::SeqCst);
                Durable::ready(Err(JournalError::Storage(
                    "refused before the write (a fault injected by a test)".into(),
                )))
            }
            Some(fault @ (Fault::After | Fault::AfterThenDown)) => {
                self.after.fetch_add(1, Ordering::SeqCst);
                let stored = self.inner.append(entries);
                let (done, answer) = tokio::sync::oneshot::channel();
                let down = (fault == Fault::AfterThenDown).then(|| Arc::clone(&self.down_flag));
                tokio::spawn(async move {
                    let stored = stored.await;
                    if let Some(down) = down {
                        down.store(true, Ordering::SeqCst);
                    }
                    let outcome = match stored {
                        Ok(()) => Err(JournalError::OutcomeUnknown(
                            "the answer was lost after the write (a fault injected by a test)"
                                .into(),
                        )),
                        Err(error) => Err(error),
                    };
                    let _ = done.send(outcome);
                });
                Durable::pending(answer)
            }
        }
    }

    fn save_image(&self, image: Image) -> Durable {
        if self.down_flag.load(Ordering::SeqCst) {
            return Durable::ready(Err(Self::unreachable()));
        }
        self.inner.save_image(image)
    }

    fn flush(&self) -> Durable {
        self.inner.flush()
    }

    fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        self.check_up()?;
        self.inner.tenants()
    }

    fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        self.check_up()?;
        self.inner.live_tenants()
    }

    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError> {
        self.check_up()?;
        self.inner.read(tenant, from, to)
    }

    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        self.check_up()?;
        self.inner.highest_seq(tenant)
    }

    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError> {
        self.check_up()?;
        self.inner.delete_up_to(tenant, to)
    }

    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        self.check_up()?;
        self.inner.load_image(tenant, query)
    }

    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError> {
        self.check_up()?;
        self.inner.delete_image(tenant, seq)
    }

    fn set_resume_mark(&self, tenant: &TenantId, marked: bool) -> Result<(), JournalError> {
        self.check_up()?;
        self.inner.set_resume_mark(tenant, marked)
    }

    fn resume_marks(&self) -> Result<Vec<TenantId>, JournalError> {
        self.check_up()?;
        self.inner.resume_marks()
    }
}
