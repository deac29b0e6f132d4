//! Closing or dropping a `SqliteJournal` stops its checkpointer thread. Its
//! own test binary, so no other test's journal runs a checkpointer beside.
#![cfg(target_os = "linux")]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::{entries, ScratchDir};
use rewind_runtime::Journal;
use rewind_store::{SqliteJournal, SqliteOptions};

/// Threads of this process named like the journal's checkpointer (Linux
/// keeps a thread's name in `/proc/self/task/*/comm`).
fn checkpointers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list this process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "rewind-wal-ckpt")
        .count()
}

/// Waits (up to 2 s) until one checkpointer runs: a new thread takes its
/// name once it has started.
fn one_checkpointer_starts() {
    for _ in 0..200 {
        if checkpointers() == 1 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(checkpointers(), 1, "no checkpointer thread started");
}

#[tokio::test(flavor = "current_thread")]
async fn close_and_drop_stop_the_checkpointer_thread() {
    let dir = ScratchDir::new("checkpointer-thread");
    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    one_checkpointer_starts();
    journal.append(entries("acme", 1..=3)).await.unwrap();
    journal.close().unwrap();
    assert_eq!(checkpointers(), 0, "close left the checkpointer running");

    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    one_checkpointer_starts();
    journal.append(entries("acme", 4..=6)).await.unwrap();
    drop(journal);
    assert_eq!(checkpointers(), 0, "drop left the checkpointer running");
}
