//! The reader threads: each owns a connection (opened at its first read,
//! and again after one was lost) and answers queries from one shared queue.
//! A caller waits for its answer on a channel, so no PostgreSQL client runs
//! on its thread.

use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use postgres::Config;
use rewind_runtime::journal::JournalError;

use super::session::Session;

/// A query in the queue: runs on the reader's connection (or hears why
/// there is none) and answers its caller; false asks for one more try on a
/// new connection (the first one was lost).
type Task = Box<dyn FnMut(Result<&mut Session, &JournalError>, &str, bool) -> bool + Send>;

enum Job {
    Run(Task),
    Stop,
}

/// The pool of reader threads.
pub(super) struct Readers {
    jobs: mpsc::Sender<Job>,
    /// Joined by `stop`.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Readers {
    /// Starts `count` reader threads for the database of `config`.
    pub(super) fn start(
        config: Arc<Config>,
        url: Arc<str>,
        count: usize,
    ) -> Result<Readers, JournalError> {
        let (jobs, queue) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let readers = Readers {
            jobs,
            threads: Mutex::new(Vec::new()),
        };
        for index in 0..count.max(1) {
            let (config, shown, queue) = (config.clone(), url.clone(), queue.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("rewind-pg-reader-{index}"))
                .spawn(move || serve(&queue, &config, &shown));
            match spawned {
                Ok(thread) => readers.lock().push(thread),
                Err(e) => {
                    readers.stop();
                    return Err(JournalError::Storage(format!(
                        "PostgreSQL at {url}: starting a reader thread: {e}"
                    )));
                }
            }
        }
        Ok(readers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `query` on a reader's connection and waits for the answer; once
    /// more on a new connection if the first was lost. `Closed` once the
    /// readers are stopped.
    pub(super) fn call<T: Send + 'static>(
        &self,
        mut query: impl FnMut(&mut Session, &str) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let task: Task = Box::new(move |session, url, last| match session {
            Err(error) => {
                drop(reply.send(Err(error.clone())));
                true
            }
            Ok(session) => {
                let outcome = query(session, url);
                if outcome.is_err() && !session.usable() && !last {
                    return false;
                }
                drop(reply.send(outcome));
                true
            }
        });
        if self.jobs.send(Job::Run(task)).is_err() {
            return Err(JournalError::Closed);
        }
        answer.recv().unwrap_or(Err(JournalError::Closed))
    }

    /// Stops the threads (after the queries queued before) and joins them.
    pub(super) fn stop(&self) {
        let threads = std::mem::take(&mut *self.lock());
        for _ in &threads {
            drop(self.jobs.send(Job::Stop));
        }
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("PostgreSQL journal reader thread panicked");
            }
        }
    }
}

/// A reader thread: takes jobs until `Stop` or a closed queue.
fn serve(queue: &Mutex<mpsc::Receiver<Job>>, config: &Config, url: &str) {
    let mut session: Option<Session> = None;
    loop {
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Job::Run(mut task)) = job else { break };
        for last in [false, true] {
            if session.as_ref().is_some_and(|s| !s.usable()) {
                session = None;
            }
            if session.is_none() {
                match Session::connect(config, url) {
                    Ok(opened) => session = Some(opened),
                    Err(error) => {
                        task(Err(&error), url, true);
                        break;
                    }
                }
            }
            let Some(open) = session.as_mut() else { break };
            if task(Ok(open), url, last) {
                break;
            }
            tracing::warn!(
                url,
                "a PostgreSQL journal reader lost its connection; reading again on a new one"
            );
        }
    }
}
