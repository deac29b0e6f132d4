//! The sequence rule both journals enforce on an append batch.

use std::collections::HashMap;

use rewind_core::TenantId;
use rewind_runtime::journal::{Entry, JournalError, JournalSeq};

/// Checks that `entries` continue each tenant's sequence: a tenant's first
/// entry in the batch is `highest(tenant) + 1`, each next one is the previous
/// plus one; tenants may interleave. Returns each tenant's new highest seq.
///
/// Checks the whole batch before anything is stored, so a failing batch
/// stores nothing. Time: O(n) plus one `highest` call per distinct tenant.
pub(crate) fn check_batch(
    entries: &[Entry],
    mut highest: impl FnMut(&TenantId) -> Result<JournalSeq, JournalError>,
) -> Result<Vec<(TenantId, JournalSeq)>, JournalError> {
    let mut last: HashMap<&TenantId, JournalSeq> = HashMap::new();
    for entry in entries {
        let previous = match last.get(&entry.tenant) {
            Some(&seq) => seq,
            None => highest(&entry.tenant)?,
        };
        if previous.get().checked_add(1) != Some(entry.seq.get()) {
            return Err(JournalError::OutOfSequence {
                tenant: entry.tenant.as_str().to_owned(),
                seq: entry.seq,
                highest: previous,
            });
        }
        last.insert(&entry.tenant, entry.seq);
    }
    Ok(last
        .into_iter()
        .map(|(tenant, seq)| (tenant.clone(), seq))
        .collect())
}
