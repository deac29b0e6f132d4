//! One runtime per journal: a second `SqliteJournal::open` of a file is
//! refused while the first holds it, from this process or another, and
//! succeeds once the holder closes, drops, or is killed with -9.
//!
//! The story: two runtimes opened one journal, both succeeded, and the
//! first one's next write failed with `OutOfSequence` because the second
//! had appended under it.
//!
//! The cross-process tests run *this test binary* again as a child
//! (`lock_child`, which does nothing unless `REWIND_LOCK_CHILD` names a
//! journal): the child opens the journal, prints `OPEN <pid>`, and holds it
//! until its stdin closes (then closes the journal and prints `CLOSED`) or
//! it is killed.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use fixtures::ScratchDir;
use rewind_runtime::{JournalError, JournalHolder};
use rewind_store::{SqliteJournal, SqliteOptions};

const CHILD_ENV: &str = "REWIND_LOCK_CHILD";

fn open(path: &Path) -> Result<SqliteJournal, JournalError> {
    SqliteJournal::open(path, SqliteOptions::default())
}

/// The holder a refused open names; panics if the open was not refused.
fn refused(result: Result<SqliteJournal, JournalError>) -> (String, Option<JournalHolder>) {
    match result {
        Err(JournalError::AlreadyOpen { path, holder }) => (path, holder),
        Err(other) => panic!("expected AlreadyOpen, got {other}"),
        Ok(_) => panic!("a second open of a held journal succeeded"),
    }
}

#[test]
fn lock_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let journal = open(Path::new(&path)).expect("the child opens the journal");
    println!("OPEN {}", std::process::id());
    // Held until the parent closes our stdin (or kills us).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    journal.close().expect("the child closes the journal");
    println!("CLOSED");
}

/// A child holding the journal at `path`, and its output.
struct Holder {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    pid: u32,
}

impl Holder {
    fn start(path: &Path) -> Self {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args(["--exact", "lock_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let pid = loop {
            let line = lines
                .next()
                .expect("the child exited before opening the journal")
                .expect("read the child's output");
            // After the harness's "test lock_child ... " on the same line.
            if let Some((_, pid)) = line.split_once("OPEN ") {
                break pid.trim().parse().expect("a pid");
            }
        };
        assert_eq!(pid, child.id());
        Holder { child, lines, pid }
    }

    /// Closes the child's stdin and waits until it has closed the journal.
    fn release(mut self) {
        drop(self.child.stdin.take());
        assert!(
            self.lines
                .any(|line| line.is_ok_and(|line| line.contains("CLOSED"))),
            "the child did not close the journal"
        );
        assert!(self.child.wait().expect("wait for the child").success());
    }

    /// SIGKILL: the child gets no chance to release anything.
    fn kill_9(mut self) {
        self.child.kill().expect("kill -9 the child");
        self.child.wait().expect("reap the child");
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_second_open_in_the_same_process_is_refused_until_the_first_closes() {
    let dir = ScratchDir::new("lock-same");
    let path = dir.journal();
    let first = open(&path).unwrap();
    let (named, holder) = refused(open(&path));
    assert_eq!(named, path.display().to_string());
    let holder = holder.expect("the holder row names the first open");
    assert_eq!(&holder, first.holder());
    assert_eq!(holder.pid, std::process::id());
    let message = refused(open(&path)).1.unwrap().to_string();
    assert!(
        message.starts_with(&format!("pid {} ", std::process::id())),
        "{message}"
    );

    first.close().unwrap();
    let second = open(&path).expect("open after close");
    drop(second);
    open(&path).expect("open after drop");
}

#[test]
fn the_refusal_says_what_to_do() {
    let dir = ScratchDir::new("lock-message");
    let path = dir.journal();
    let _first = open(&path).unwrap();
    let message = open(&path).unwrap_err().to_string();
    assert!(
        message.contains(&format!("is already open by pid {}", std::process::id())),
        "{message}"
    );
    assert!(message.contains("since "), "{message}");
    assert!(message.contains("one runtime at a time"), "{message}");
}

#[test]
fn a_second_process_is_refused_while_the_first_holds_the_journal() {
    let dir = ScratchDir::new("lock-process");
    let path = dir.journal();
    let holder = Holder::start(&path);
    let (_, named) = refused(open(&path));
    let named = named.expect("the child recorded itself");
    assert_eq!(named.pid, holder.pid);

    holder.release();
    let journal = open(&path).expect("open after the child closed the journal");
    assert_eq!(journal.holder().pid, std::process::id());
}

#[test]
fn after_a_kill_9_of_the_holder_the_next_open_takes_the_lock_over() {
    let dir = ScratchDir::new("lock-kill");
    let path = dir.journal();
    let holder = Holder::start(&path);
    let child = holder.pid;
    assert_eq!(refused(open(&path)).1.map(|h| h.pid), Some(child));

    holder.kill_9();
    // The OS released the child's lock; its row stayed and is taken over.
    let journal = open(&path).expect("open after the holder was killed");
    assert_eq!(journal.holder().pid, std::process::id());
    assert_eq!(
        refused(open(&path)).1.map(|h| h.pid),
        Some(std::process::id())
    );
}

#[test]
fn a_row_of_another_host_is_refused_until_broken() {
    let dir = ScratchDir::new("lock-host");
    let path = dir.journal();
    open(&path).unwrap().close().unwrap();
    // What a process of another host sharing the disk leaves while it runs.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO journal_lock (id, pid, host, since) VALUES (1, 77, 'elsewhere', 0)",
            [],
        )
        .unwrap();
    let (_, holder) = refused(open(&path));
    let holder = holder.unwrap();
    assert_eq!(
        (holder.pid, holder.host.as_deref()),
        (77, Some("elsewhere"))
    );

    let broken = SqliteJournal::break_lock(&path).unwrap();
    assert_eq!(broken, Some(holder));
    let journal = open(&path).expect("open after break_lock");
    // Never while a process of this host holds the journal.
    assert!(matches!(
        SqliteJournal::break_lock(&path),
        Err(JournalError::AlreadyOpen { .. })
    ));
    drop(journal);
}
