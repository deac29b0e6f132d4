//! Durable journals for rewind: implementations of the runtime's
//! [`Journal`](rewind_runtime::Journal) port.
//!
//! # Layout
//!
//! - [`MemoryJournal`] (`memory.rs`): everything in memory, durable at once;
//!   the `memory` mode and the reference for tests.
//! - [`SqliteJournal`] (`sqlite.rs`, `sqlite/`): one SQLite file in WAL
//!   mode. `schema.rs` opens it (version check, pragmas, tables);
//!   `writer.rs` is the writer thread and its group commit; `checkpoint.rs`
//!   the background WAL checkpointer; `reader.rs` the
//!   read connection; `tables.rs` the SQL of entries, images and highest
//!   seqs; `lock.rs` the journal's lock (one runtime per journal).
//! - [`PgJournal`] (`postgres.rs`, `postgres/`): a PostgreSQL database
//!   the nodes of a cluster share, split into shards. A [`PgStore`] is the
//!   connection: `schema.rs` creates the tables (version and shard count
//!   checks); `writer.rs` is the writer thread, its group commit and the
//!   fence check of each shard's lease; `reader.rs` the reader threads;
//!   `tables.rs` the SQL of entries, images and tenants; `session.rs` the
//!   connection each thread owns. A [`Fence`] (node and lease epoch) makes
//!   a node that lost a shard unable to write it
//!   ([`JournalError::Fenced`]).
//! - `checksum.rs`: the 64-bit FNV-1a checksum every stored record carries;
//!   `sequence.rs`: the sequence rule of an append batch, shared by all.
//! - `testing.rs` (hidden): a throwaway PostgreSQL server for tests.
//!
//! # Modes
//!
//! - [`SyncMode::Sync`] (default): `append` resolves after the transaction
//!   holding the batch is committed and fsynced (`synchronous=FULL`). No
//!   acknowledged write is lost by a crash or power loss.
//! - [`SyncMode::Buffered`]: `append` resolves at once and the writer commits
//!   at least every `interval`. **Loss window:** a crash loses up to
//!   `interval` of acknowledged writes (plus the commit in progress). A batch
//!   the journal refuses later is logged and reported by the next `flush`.
//! - `memory`: [`MemoryJournal`]; a restart loses everything.
//!
//! # Group commit
//!
//! One writer thread (not an async worker) owns the write connection. While
//! it commits, new writes queue; it then takes all of them, *of every
//! tenant*, up to [`SqliteOptions::max_batch`] records, into the next
//! transaction. One fsync thus acknowledges many writers, and throughput
//! grows with concurrency. Each `append` batch runs in its own savepoint, so
//! it stays atomic inside the shared transaction. Every commit records
//! `rewind_journal_commit_duration_seconds` and
//! `rewind_journal_batch_records`.
//!
//! Appends go first: images and deletions commit after the appends gathered
//! with them, in small transactions of their own (a `delete_up_to` of many
//! entries in several), and WAL checkpoints run on a background thread, not
//! inside a commit; so neither holds acknowledgements back for long. The
//! WAL stays bounded: it restarts near 16 MiB, and past 32 MiB the writer
//! forces it. `benches/tail.rs` measures this.
//!
//! # Bad data
//!
//! Every record carries a checksum of all its fields, verified on read: a
//! damaged record gives [`JournalError::Corrupt`] naming tenant and seq, and
//! other tenants read normally. A file that is not a SQLite database, or is
//! truncated, gives [`JournalError::Storage`] naming the file; a file of a
//! newer schema gives [`JournalError::SchemaTooNew`]. Nothing panics.
//!
//! # One runtime per journal
//!
//! [`SqliteJournal::open`] locks the file (an OS lock on `<journal>.lock`
//! plus a holder row naming pid, host and start); a second open, from this
//! process or another, gets [`JournalError::AlreadyOpen`] naming the holder.
//! The lock goes with the journal (`close`, drop) or with its process,
//! however it dies: after a kill -9 the next open succeeds.
//!
//! [`JournalError::Corrupt`]: rewind_runtime::JournalError::Corrupt
//! [`JournalError::Storage`]: rewind_runtime::JournalError::Storage
//! [`JournalError::SchemaTooNew`]: rewind_runtime::JournalError::SchemaTooNew
//! [`JournalError::AlreadyOpen`]: rewind_runtime::JournalError::AlreadyOpen
//! [`JournalError::Fenced`]: rewind_runtime::JournalError::Fenced
//!
//! # Example
//!
//! ```
//! use rewind_core::{TenantId, Timestamp};
//! use rewind_runtime::{Entry, EntryKind, Journal, JournalSeq};
//! use rewind_store::{SqliteJournal, SqliteOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("rewind-store-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let journal = SqliteJournal::open(dir.join("journal.db"), SqliteOptions::default())?;
//!
//! let acme = TenantId::new("acme_corp")?;
//! let entry = Entry {
//!     tenant: acme.clone(),
//!     seq: JournalSeq::new(1),
//!     at: Timestamp::now(),
//!     kind: EntryKind::Create,
//!     payload: br#"{"version":"1.0"}"#.to_vec(),
//! };
//! journal.append(vec![entry.clone()]).await?; // committed and fsynced
//! let all = journal.read(&acme, JournalSeq::new(1), JournalSeq::new(u64::MAX))?;
//! assert_eq!(all, vec![entry]);
//! assert_eq!(journal.highest_seq(&acme)?, JournalSeq::new(1));
//!
//! journal.close()?;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod checksum;
mod memory;
mod postgres;
mod sequence;
mod sqlite;
#[doc(hidden)]
pub mod testing;

pub use crate::postgres::{shard_of, Fence, PgJournal, PgOptions, PgStore, MAX_SHARDS};
pub use memory::MemoryJournal;
/// For benchmarks only; see the type.
#[doc(hidden)]
pub use sqlite::Tuning;
pub use sqlite::{SqliteJournal, SqliteOptions, SyncMode};
