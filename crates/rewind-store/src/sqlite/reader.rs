//! The read connection: WAL lets it read committed data while the writer
//! commits. One connection behind a std `Mutex`, held only for one query.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rewind_core::TenantId;
use rewind_runtime::journal::{Entry, Image, ImageQuery, JournalError, JournalSeq};
use rusqlite::Connection;

use super::{schema, tables};

/// Serves the journal's reads.
pub(super) struct Reader {
    connection: Mutex<Connection>,
    /// The file, for error messages.
    name: Arc<str>,
}

impl Reader {
    pub(super) fn open(path: &Path, name: Arc<str>) -> Result<Self, JournalError> {
        let connection = schema::open_reader(path, &name)?;
        Ok(Reader {
            connection: Mutex::new(connection),
            name,
        })
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // Reads change nothing, so a panic during one leaves nothing to repair.
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        tables::tenants(&self.connection(), &self.name)
    }

    pub(super) fn marks(&self) -> Result<Vec<TenantId>, JournalError> {
        tables::marks(&self.connection(), &self.name)
    }

    pub(super) fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        tables::live_tenants(&self.connection(), &self.name)
    }

    pub(super) fn read(
        &self,
        tenant: &TenantId,
        from: u64,
        to: u64,
    ) -> Result<Vec<Entry>, JournalError> {
        tables::read_entries(&self.connection(), &self.name, tenant, from, to)
    }

    pub(super) fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        tables::highest_seq(&self.connection(), &self.name, tenant)
    }

    pub(super) fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        tables::load_image(&self.connection(), &self.name, tenant, query)
    }
}
