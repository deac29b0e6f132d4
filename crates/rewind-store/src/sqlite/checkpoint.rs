//! WAL checkpoints off the writer's commit path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL
//! past 1000 pages: that commit copies every page of the WAL into the
//! database file and fsyncs it before it returns, and every acknowledgement
//! of its group (and of every write queued behind it) waits. Here the writer
//! connection has no automatic checkpoint. Instead:
//!
//! - a WAL hook on the writer connection records how many frames the WAL
//!   holds after each commit ([`WalWatch`]);
//! - every [`NUDGE_FRAMES`] new frames the writer nudges a background thread
//!   with its own connection, which runs a `PASSIVE` checkpoint: it copies
//!   pages beside the writer's commits, taking no lock the writer waits for;
//! - a passive checkpoint cannot let SQLite restart the WAL from its start
//!   while commits keep coming (the WAL is never wholly copied at the moment
//!   a commit begins), so once it holds [`RESTART_FRAMES`] the writer itself
//!   runs one `PASSIVE` checkpoint between two commits. It copies only what
//!   the background thread has not (a few commits' worth), and the next
//!   commit restarts the WAL. [`JOURNAL_SIZE_LIMIT`] then truncates a WAL
//!   file that a burst made larger.
//!
//! The WAL thus stays near `RESTART_FRAMES` pages, as long as no reader
//! holds one snapshot for the whole time (as with SQLite's own checkpoint).
//! The thread stops when the writer stops: the writer's end of the nudge
//! channel closes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use rewind_runtime::journal::JournalError;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, ErrorCode};

use super::{schema, storage};

/// New WAL frames between two background checkpoints (SQLite's default
/// auto-checkpoint threshold).
pub(super) const NUDGE_FRAMES: u64 = 1000;

/// WAL frames at which the writer finishes a checkpoint itself so the WAL
/// restarts: 16 MiB of 4 KiB pages.
pub(super) const RESTART_FRAMES: u64 = 4096;

/// Frames the background thread may still have to copy when the writer
/// finishes a checkpoint itself.
pub(super) const CATCH_UP_FRAMES: u64 = 512;

/// Bytes SQLite truncates the WAL file to when it restarts it (if larger):
/// twice the usual size, so a normal WAL is reused, not regrown.
pub(super) const JOURNAL_SIZE_LIMIT: i64 = 32 << 20;

/// The writer's side: counts WAL frames, nudges the background thread and
/// finishes a checkpoint when the WAL must restart.
pub(super) struct WalWatch {
    /// Frames in the WAL after the last commit (set by the WAL hook).
    frames: Arc<AtomicU64>,
    /// Frames the background thread's last pass left copied.
    copied: Arc<AtomicU64>,
    /// Wakes the background thread; dropping it stops the thread.
    nudge: mpsc::SyncSender<()>,
    /// Frames at the last nudge.
    nudged_at: u64,
    /// Frames at the writer's last own checkpoint.
    finished_at: Option<u64>,
    /// Checkpoints run (both threads), for `SqliteJournal::checkpoints`.
    checkpoints: Arc<AtomicU64>,
}

impl WalWatch {
    /// After each commit of the writer: nudges the background thread every
    /// `NUDGE_FRAMES` new frames (every commit once the WAL must restart),
    /// and past `RESTART_FRAMES` checkpoints on the writer's `connection`
    /// so the next commit restarts the WAL: once the background thread has
    /// copied all but `CATCH_UP_FRAMES` (so this one is short), or at
    /// twice `RESTART_FRAMES` whatever it costs.
    pub(super) fn after_commit(&mut self, connection: &Connection, name: &str) {
        let frames = self.frames.load(Ordering::Relaxed);
        if frames < self.nudged_at {
            // The WAL restarted.
            self.nudged_at = 0;
            self.finished_at = None;
        }
        let restart = frames >= RESTART_FRAMES;
        if restart || frames >= self.nudged_at + NUDGE_FRAMES {
            // Full means a pass is already pending: nothing lost.
            let _ = self.nudge.try_send(());
            self.nudged_at = frames;
        }
        if !restart
            || self
                .finished_at
                .is_some_and(|at| frames < at + NUDGE_FRAMES)
        {
            return;
        }
        let behind = frames.saturating_sub(self.copied.load(Ordering::Relaxed));
        let forced = frames >= 2 * RESTART_FRAMES;
        if (behind <= CATCH_UP_FRAMES || forced)
            && checkpoint(connection, name, "writer", &self.checkpoints).is_some()
        {
            self.finished_at = Some(frames);
        }
    }
}

/// Disables SQLite's automatic checkpoint on the writer `connection` (a WAL
/// hook replaces it) and starts the background checkpointer on its own
/// connection to `path`. Returns the writer's side and the thread.
pub(super) fn start(
    connection: &mut Connection,
    path: &Path,
    name: &Arc<str>,
    checkpoints: Arc<AtomicU64>,
) -> Result<(WalWatch, JoinHandle<()>), JournalError> {
    let own = schema::open_checkpointer(path, name)?;
    connection
        .pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(|e| storage(name, "setting journal_size_limit", e))?;
    let frames = Arc::new(AtomicU64::new(0));
    let copied = Arc::new(AtomicU64::new(0));
    let counted = frames.clone();
    connection
        .wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages| {
            counted.store(u64::try_from(pages).unwrap_or(0), Ordering::Relaxed);
            Ok(())
        }))
        .map_err(|e| storage(name, "installing the WAL hook", e))?;
    let (nudge, nudges) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("rewind-wal-ckpt".into())
        .spawn({
            let (name, copied, checkpoints) = (name.clone(), copied.clone(), checkpoints.clone());
            move || run(own, &name, nudges, &copied, &checkpoints)
        })
        .map_err(|e| storage(name, "starting the checkpointer thread", e))?;
    let watch = WalWatch {
        frames,
        copied,
        nudge,
        nudged_at: 0,
        finished_at: None,
        checkpoints,
    };
    Ok((watch, thread))
}

/// The background thread: one passive checkpoint per nudge, until the
/// writer is gone; publishes how far each pass copied.
fn run(
    connection: Connection,
    name: &str,
    nudges: mpsc::Receiver<()>,
    copied: &AtomicU64,
    checkpoints: &AtomicU64,
) {
    while nudges.recv().is_ok() {
        if let Some(done) = checkpoint(&connection, name, "background", checkpoints) {
            copied.store(done, Ordering::Relaxed);
        }
    }
    tracing::debug!(path = name, "journal checkpointer stopped");
}

/// One `PASSIVE` checkpoint on `connection`: copies what it can without
/// waiting for any lock. Returns the frames of the WAL now copied, or `None`
/// if it could not run (another checkpoint held the lock, or it failed,
/// which is logged: the WAL keeps the data).
fn checkpoint(
    connection: &Connection,
    name: &str,
    by: &str,
    checkpoints: &AtomicU64,
) -> Option<u64> {
    let started = Instant::now();
    match connection.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
        Ok((frames, copied)) => {
            checkpoints.fetch_add(1, Ordering::Relaxed);
            tracing::trace!(path = name, by, frames, copied, elapsed = ?started.elapsed(), "journal checkpoint");
            Some(u64::try_from(copied).unwrap_or(0))
        }
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) => {
            tracing::trace!(
                path = name,
                by,
                "journal checkpoint skipped: another is running"
            );
            None
        }
        Err(e) => {
            tracing::warn!(path = name, by, error = %e, "journal checkpoint failed");
            None
        }
    }
}
