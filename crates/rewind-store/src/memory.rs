//! [`MemoryJournal`]: the journal of the `memory` mode and of tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rewind_core::TenantId;
use rewind_runtime::journal::{
    Durable, Entry, EntryKind, Image, ImageQuery, Journal, JournalError, JournalSeq,
};

use crate::sequence;

/// A [`Journal`] held in memory: every write is "durable" as soon as it is
/// stored, and everything is lost with the process.
///
/// It follows the same rules as [`SqliteJournal`](crate::SqliteJournal)
/// (sequence checks, atomic batches, `highest_seq` never lowered), and serves
/// as the reference the conformance tests hold both against. A std `Mutex`
/// guards the data; it is held only inside these synchronous methods.
#[derive(Debug, Default)]
pub struct MemoryJournal {
    tenants: Mutex<BTreeMap<TenantId, TenantLog>>,
    marks: Mutex<std::collections::BTreeSet<TenantId>>,
}

/// One tenant's records.
#[derive(Debug, Default)]
struct TenantLog {
    entries: BTreeMap<JournalSeq, Entry>,
    images: BTreeMap<JournalSeq, Image>,
    /// Highest seq ever stored as an entry or image; deletions leave it.
    highest: JournalSeq,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<TenantId, TenantLog>> {
        // Every mutation validates before it changes anything, so a panic in
        // another thread cannot have left the map half-updated.
        self.tenants.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Journal for MemoryJournal {
    /// Time: O(n log m) for n entries into logs of m entries.
    fn append(&self, entries: Vec<Entry>) -> Durable {
        let mut tenants = self.lock();
        let checked = sequence::check_batch(&entries, |tenant| {
            Ok(tenants
                .get(tenant)
                .map_or(JournalSeq::ZERO, |log| log.highest))
        });
        if let Err(error) = checked {
            return Durable::ready(Err(error));
        }
        for entry in entries {
            let log = tenants.entry(entry.tenant.clone()).or_default();
            log.highest = log.highest.max(entry.seq);
            log.entries.insert(entry.seq, entry);
        }
        Durable::ready(Ok(()))
    }

    fn save_image(&self, image: Image) -> Durable {
        let mut tenants = self.lock();
        let log = tenants.entry(image.tenant.clone()).or_default();
        log.highest = log.highest.max(image.seq);
        log.images.insert(image.seq, image);
        Durable::ready(Ok(()))
    }

    fn flush(&self) -> Durable {
        Durable::ready(Ok(()))
    }

    fn set_resume_mark(&self, tenant: &TenantId, marked: bool) -> Result<(), JournalError> {
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        if marked {
            marks.insert(tenant.clone());
        } else {
            marks.remove(tenant);
        }
        Ok(())
    }

    fn resume_marks(&self) -> Result<Vec<TenantId>, JournalError> {
        let marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(marks.iter().cloned().collect())
    }

    fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        Ok(self
            .lock()
            .iter()
            .filter(|(_, log)| !log.entries.is_empty() || !log.images.is_empty())
            .map(|(tenant, _)| tenant.clone())
            .collect())
    }

    fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        Ok(self
            .lock()
            .iter()
            .filter(|(_, log)| match log.entries.get(&log.highest) {
                Some(newest) => newest.kind != EntryKind::Delete,
                // Covered by an image, which only a live tenant stores.
                None => !log.entries.is_empty() || !log.images.is_empty(),
            })
            .map(|(tenant, _)| tenant.clone())
            .collect())
    }

    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self.lock().get(tenant).map_or_else(Vec::new, |log| {
            log.entries
                .range(from..=to)
                .map(|(_, e)| e.clone())
                .collect()
        }))
    }

    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        Ok(self
            .lock()
            .get(tenant)
            .map_or(JournalSeq::ZERO, |log| log.highest))
    }

    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError> {
        if let Some(log) = self.lock().get_mut(tenant) {
            log.entries.retain(|seq, _| *seq > to);
        }
        Ok(())
    }

    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        let tenants = self.lock();
        let Some(log) = tenants.get(tenant) else {
            return Ok(None);
        };
        let mut images = log.images.values();
        let found = match query {
            ImageQuery::Latest => images.next_back(),
            ImageQuery::Named(name) => images.rev().find(|i| i.name.as_deref() == Some(name)),
            ImageQuery::AtOrBefore(at) => {
                images.filter(|i| i.at <= *at).max_by_key(|i| (i.at, i.seq))
            }
        };
        Ok(found.cloned())
    }

    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError> {
        if let Some(log) = self.lock().get_mut(tenant) {
            log.images.remove(&seq);
        }
        Ok(())
    }
}
