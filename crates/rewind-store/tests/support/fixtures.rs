//! Shared by the test binaries: scratch directories and record builders.
#![allow(dead_code)] // each binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rewind_core::{TenantId, Timestamp};
use rewind_runtime::{Entry, EntryKind, Image, JournalSeq};

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct ScratchDir(PathBuf);

impl ScratchDir {
    pub(crate) fn new(label: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "rewind-store-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of an earlier run with the same pid would break
        // "fresh"; remove it first.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// The journal file inside it.
    pub(crate) fn journal(&self) -> PathBuf {
        self.0.join("journal.db")
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tenant(id: &str) -> TenantId {
    TenantId::new(id).expect("valid tenant id")
}

/// Entry `seq` of `tenant`, with a payload telling them apart.
pub(crate) fn entry(tenant_id: &str, seq: u64) -> Entry {
    Entry {
        tenant: tenant(tenant_id),
        seq: JournalSeq::new(seq),
        at: Timestamp::from_unix_micros(1_000 * seq as i64),
        kind: EntryKind::Op,
        payload: format!("{tenant_id}#{seq}").into_bytes(),
    }
}

/// Entries `seqs` of `tenant`.
pub(crate) fn entries(tenant_id: &str, seqs: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    seqs.map(|seq| entry(tenant_id, seq)).collect()
}

/// An image of `tenant` at `seq`, taken at `at` micros.
pub(crate) fn image(tenant_id: &str, seq: u64, at: i64, name: Option<&str>) -> Image {
    Image {
        tenant: tenant(tenant_id),
        seq: JournalSeq::new(seq),
        at: Timestamp::from_unix_micros(at),
        name: name.map(str::to_owned),
        payload: format!("image of {tenant_id} at {seq}").into_bytes(),
    }
}

/// The seqs of `entries`.
pub(crate) fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq.get()).collect()
}
