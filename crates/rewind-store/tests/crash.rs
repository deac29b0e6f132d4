//! The kill -9 test: a SIGKILL at any moment loses no acknowledged write.
//!
//! # How it runs
//!
//! `crash_test_loses_no_acknowledged_write` (the parent) runs *this same test
//! binary* again as a child process:
//!
//! ```text
//! <this binary> --exact crash_child --nocapture --test-threads=1
//!     REWIND_CRASH_CHILD=1  REWIND_CRASH_DB=<journal file>  REWIND_CRASH_RUN=<cycle>
//! ```
//!
//! `crash_child` returns at once unless `REWIND_CRASH_CHILD` is set, so a
//! plain `cargo test` runs it as an empty test. In the child it opens the
//! SQLite journal in `Sync` mode, starts a runtime on it (small
//! `image_every`, so images are stored and entries pruned all the time),
//! finds or creates the tenants, and from several concurrent tasks writes
//! forever: patches adding a uniquely named key, named snapshots with unique
//! names, rollbacks to a revision or to one of its named snapshots. After
//! each write returns `Ok` it prints one acknowledgement line and flushes:
//!
//! ```text
//! ACK <tenant> apply <revision> <key> <value>
//! ACK <tenant> snapshot <name> <revision>
//! ACK <tenant> rollback <new revision> revision <target revision>
//! ACK <tenant> rollback <new revision> named <snapshot name>
//! ```
//!
//! The parent reads these for a random short while, SIGKILLs the child,
//! reads what was already written to the pipe, then recovers the journal
//! in-process (a fresh `Runtime` on the same file) and checks every
//! acknowledgement of every cycle so far: the revision is there with the
//! acknowledged cause and state, every acknowledged snapshot is there, no
//! revision number is acknowledged twice, and revisions acknowledged after a
//! restart come after everything recovered before it. Every cycle restarts
//! from the same file, so the state accumulates.
//!
//! # Knobs
//!
//! - `REWIND_CRASH_CYCLES`: kill cycles (default 100).
//! - `REWIND_CRASH_SEED`: the parent's random seed (printed at start), to
//!   replay the kill moments of a failed run.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use fixtures::ScratchDir;
use rewind_core::{
    Cause, Doc, Patch, Revision, RollbackTarget, SnapshotKind, SnapshotName, StateRef, TargetKind,
    Timeline, TimelineConfig,
};
use rewind_runtime::{AutoSnapshotPolicy, Journal, Runtime, TenantConfig};
use rewind_store::{SqliteJournal, SqliteOptions, SyncMode};
use serde_json::json;

const CHILD_ENV: &str = "REWIND_CRASH_CHILD";
const DB_ENV: &str = "REWIND_CRASH_DB";
const RUN_ENV: &str = "REWIND_CRASH_RUN";
const CYCLES_ENV: &str = "REWIND_CRASH_CYCLES";
const SEED_ENV: &str = "REWIND_CRASH_SEED";

const DEFAULT_CYCLES: u64 = 100;
const TENANTS: usize = 8;
/// Concurrent writing tasks in the child, across all tenants.
const WRITERS: u64 = 12;
/// Small, so images and pruning happen many times per cycle.
const IMAGE_EVERY: u64 = 50;
/// How long the parent lets the child write after its first
/// acknowledgement, in milliseconds: a random moment in this range.
const KILL_AFTER_MS: (u64, u64) = (20, 150);
/// Bound on the child's start (recovery included) before it acknowledges
/// anything; only reached if the child hangs.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Large limits: every acknowledged revision and snapshot stays addressable
/// for the whole test, so "not found" can only mean "lost".
fn tenant_config() -> TenantConfig {
    TenantConfig {
        timeline: TimelineConfig {
            history_limit: 100_000,
            named_limit: 10_000,
            ..TimelineConfig::default()
        },
        auto_snapshot: AutoSnapshotPolicy {
            every_revisions: Some(25),
            interval: None,
        },
        ..TenantConfig::default()
    }
}

fn tenant_name(index: usize) -> String {
    format!("tenant-{index}")
}

/// xorshift64: enough randomness for kill moments and op mixes.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and
        // the state is never 0.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}

// ----- the child -------------------------------------------------------------

/// The writing process; an empty test unless `REWIND_CRASH_CHILD` is set.
#[test]
fn crash_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let db = std::env::var(DB_ENV).expect("REWIND_CRASH_DB names the journal file");
    let run: u64 = std::env::var(RUN_ENV)
        .ok()
        .and_then(|run| run.parse().ok())
        .expect("REWIND_CRASH_RUN is the cycle number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(child(Path::new(&db), run));
}

/// Writes one line to stdout at once. The parent is gone if this fails: stop.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(line.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if written.is_err() {
        std::process::exit(0);
    }
}

async fn child(db: &Path, run: u64) {
    // The harness printed `test crash_child ... ` without a newline.
    say("");
    let journal = SqliteJournal::open(
        db,
        SqliteOptions {
            mode: SyncMode::Sync,
            ..SqliteOptions::default()
        },
    )
    .unwrap_or_else(|e| {
        say(&format!("ERR opening the journal: {e}"));
        panic!("opening the journal: {e}")
    });
    let runtime = Runtime::<Doc>::builder()
        .tenant_defaults(tenant_config())
        .journal(Arc::new(journal) as Arc<dyn Journal>)
        .image_every(IMAGE_EVERY)
        .start()
        .await
        .unwrap_or_else(|e| {
            say(&format!("ERR starting the runtime: {e}"));
            panic!("starting the runtime: {e}")
        });
    let mut tenants = Vec::new();
    for index in 0..TENANTS {
        match runtime
            .tenant_or_create(&tenant_name(index), Doc::object)
            .await
        {
            Ok(tenant) => tenants.push(tenant),
            Err(e) => {
                say(&format!("ERR tenant {}: {e}", tenant_name(index)));
                panic!("tenant {index}: {e}");
            }
        }
    }
    let tenants = Arc::new(tenants);
    let counter = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let tenants = Arc::clone(&tenants);
            let counter = Arc::clone(&counter);
            tokio::spawn(write_forever(tenants, counter, run, writer))
        })
        .collect();
    for writer in writers {
        if let Err(e) = writer.await {
            say(&format!("ERR a writer stopped: {e}"));
        }
    }
}

/// One writing task: random ops on random tenants, each acknowledged on
/// stdout after it returned `Ok`.
async fn write_forever(
    tenants: Arc<Vec<rewind_runtime::Tenant<Doc>>>,
    counter: Arc<AtomicU64>,
    run: u64,
    writer: u64,
) {
    let mut rng = XorShift::new(run.wrapping_mul(1_000_003).wrapping_add(writer));
    // Named snapshots this task took in this run, per tenant.
    let mut taken: Vec<Vec<String>> = vec![Vec::new(); tenants.len()];
    loop {
        let index = rng.below(tenants.len() as u64) as usize;
        let tenant = &tenants[index];
        let id = tenant.id().as_str();
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let roll = rng.below(100);
        let line = if roll < 75 {
            let key = format!("k{run}_{n}");
            let patch =
                Patch::from_json(&json!([{"op": "add", "path": format!("/{key}"), "value": n}]))
                    .expect("a valid patch");
            tenant
                .apply(patch)
                .await
                .map(|commit| format!("ACK {id} apply {} {key} {n}", commit.revision.get()))
        } else if roll < 88 {
            let name = format!("s{run}_{n}");
            let result = tenant.snapshot_named(&name).await;
            if result.is_ok() {
                taken[index].push(name.clone());
            }
            result.map(|info| format!("ACK {id} snapshot {name} {}", info.revision.get()))
        } else if roll < 94 || taken[index].is_empty() {
            let head = tenant.revision().get();
            let target = head.saturating_sub(rng.below(8));
            tenant
                .rollback(RollbackTarget::Revision(Revision(target)))
                .await
                .map(|outcome| {
                    format!(
                        "ACK {id} rollback {} revision {target}",
                        outcome.revision.get()
                    )
                })
        } else {
            let names = &taken[index];
            let name = names[rng.below(names.len() as u64) as usize].clone();
            let target = RollbackTarget::Named(SnapshotName::new(&name).expect("a valid name"));
            tenant
                .rollback(target)
                .await
                .map(|outcome| format!("ACK {id} rollback {} named {name}", outcome.revision.get()))
        };
        match line {
            Ok(line) => say(&line),
            // Nothing here is expected to fail: make the parent fail.
            Err(e) => say(&format!("ERR {id}: {e}")),
        }
    }
}

// ----- the parent ------------------------------------------------------------

/// One acknowledged write, as the child printed it.
#[derive(Clone, Debug)]
enum Ack {
    Apply {
        tenant: String,
        revision: u64,
        key: String,
        value: u64,
    },
    Snapshot {
        tenant: String,
        name: String,
        revision: u64,
    },
    Rollback {
        tenant: String,
        revision: u64,
        target: Target,
    },
}

#[derive(Clone, Debug)]
enum Target {
    Revision(u64),
    Named(String),
}

impl Ack {
    fn parse(line: &str) -> Option<Ack> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| words.get(i)?.parse::<u64>().ok();
        let text = |i: usize| words.get(i).map(|w| (*w).to_owned());
        match words.as_slice() {
            ["ACK", _, "apply", _, _, _] => Some(Ack::Apply {
                tenant: text(1)?,
                revision: number(3)?,
                key: text(4)?,
                value: number(5)?,
            }),
            ["ACK", _, "snapshot", _, _] => Some(Ack::Snapshot {
                tenant: text(1)?,
                name: text(3)?,
                revision: number(4)?,
            }),
            ["ACK", _, "rollback", _, "revision", _] => Some(Ack::Rollback {
                tenant: text(1)?,
                revision: number(3)?,
                target: Target::Revision(number(5)?),
            }),
            ["ACK", _, "rollback", _, "named", _] => Some(Ack::Rollback {
                tenant: text(1)?,
                revision: number(3)?,
                target: Target::Named(text(5)?),
            }),
            _ => None,
        }
    }

    fn tenant(&self) -> &str {
        match self {
            Ack::Apply { tenant, .. }
            | Ack::Snapshot { tenant, .. }
            | Ack::Rollback { tenant, .. } => tenant,
        }
    }

    fn revision(&self) -> u64 {
        match self {
            Ack::Apply { revision, .. }
            | Ack::Snapshot { revision, .. }
            | Ack::Rollback { revision, .. } => *revision,
        }
    }

    /// Whether the write made a new revision (a snapshot names an existing
    /// one).
    fn makes_revision(&self) -> bool {
        !matches!(self, Ack::Snapshot { .. })
    }
}

/// Everything acknowledged so far, across cycles.
#[derive(Default)]
struct Acknowledged {
    /// Each ack with the cycle that printed it.
    acks: Vec<(u64, Ack)>,
    /// (tenant, revision) of every new revision acknowledged, with its cycle.
    revisions: HashMap<(String, u64), u64>,
    /// Per tenant, the head recovered after the last kill: revisions
    /// acknowledged later must come after it.
    recovered_heads: BTreeMap<String, u64>,
}

impl Acknowledged {
    /// Adds one cycle's acks; returns the revision-reuse violations.
    fn add(&mut self, cycle: u64, acks: Vec<Ack>) -> Vec<String> {
        let mut problems = Vec::new();
        for ack in acks {
            let floor = self.recovered_heads.get(ack.tenant()).copied();
            if let Some(floor) = floor {
                let ok = if ack.makes_revision() {
                    ack.revision() > floor
                } else {
                    ack.revision() >= floor
                };
                if !ok {
                    problems.push(format!(
                        "cycle {cycle}: {ack:?} is not after revision {floor}, recovered before this run"
                    ));
                }
            }
            if ack.makes_revision() {
                let key = (ack.tenant().to_owned(), ack.revision());
                if let Some(earlier) = self.revisions.insert(key, cycle) {
                    problems.push(format!(
                        "cycle {cycle}: {ack:?} reuses a revision already acknowledged in cycle {earlier}"
                    ));
                }
            }
            self.acks.push((cycle, ack));
        }
        problems
    }
}

/// Kills the child if the test fails before it does.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one child run printed before it was killed.
struct Printed {
    acks: Vec<Ack>,
    errors: Vec<String>,
}

/// Runs the child on `db` and SIGKILLs it at a random moment: `kill_after`
/// after its first acknowledgement, or, if `early`, that long after it was
/// started (possibly still recovering).
fn run_child(db: &Path, cycle: u64, kill_after: Duration, early: bool) -> Printed {
    let exe = std::env::current_exe().expect("the test binary");
    let child = Command::new(exe)
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env(DB_ENV, db)
        .env(RUN_ENV, cycle.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let mut child = ChildGuard(child);
    let stdout = child.0.stdout.take().expect("piped stdout");
    let (lines, received) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line without its newline was cut by the kill: it was not
                // completely acknowledged, so it is not counted.
                Ok(_) if line.ends_with('\n') => {
                    if lines.send(line).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });

    let started = Instant::now();
    let mut printed = Vec::new();
    let kill_at = if early {
        started + kill_after
    } else {
        loop {
            let left = START_LIMIT.saturating_sub(started.elapsed());
            match received.recv_timeout(left) {
                Ok(line) => {
                    let acked = line.starts_with("ACK ");
                    printed.push(line);
                    if acked {
                        break Instant::now() + kill_after;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("cycle {cycle}: the child acknowledged nothing within {START_LIMIT:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.0.wait();
                    panic!("cycle {cycle}: the child exited before acknowledging anything: {status:?}; it printed {printed:?}")
                }
            }
        }
    };
    loop {
        let left = kill_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match received.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => break,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if let Ok(Some(status)) = child.0.try_wait() {
        panic!("cycle {cycle}: the child exited on its own ({status}) instead of being killed");
    }
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().expect("reap the child");
    // Whatever the child wrote before it died is still in the pipe.
    reader.join().expect("the reader thread");
    printed.extend(received.try_iter());

    let mut acks = Vec::new();
    let mut errors = Vec::new();
    for line in &printed {
        let line = line.trim_end();
        if line.starts_with("ACK ") {
            match Ack::parse(line) {
                Some(ack) => acks.push(ack),
                None => errors.push(format!(
                    "cycle {cycle}: unreadable acknowledgement '{line}'"
                )),
            }
        } else if let Some(error) = line.strip_prefix("ERR ") {
            errors.push(format!("cycle {cycle}: the child reported: {error}"));
        }
    }
    Printed { acks, errors }
}

/// Why `ack` is not in `timeline` exactly as acknowledged, if it is not.
fn check(timeline: &Timeline<Doc>, ack: &Ack) -> Result<(), String> {
    let revision = Revision(ack.revision());
    if timeline.revision() < revision {
        return Err(format!("the head is revision {}", timeline.revision()));
    }
    let at = |r: Revision| StateRef::Revision(r);
    let same_state = |a: &StateRef, b: &StateRef| -> Result<(), String> {
        let diff = timeline
            .diff(a, b)
            .map_err(|e| format!("cannot diff {a} and {b}: {e}"))?;
        if diff.is_empty() {
            Ok(())
        } else {
            Err(format!("{a} and {b} differ: {}", diff.patch.to_json()))
        }
    };
    match ack {
        Ack::Apply { key, value, .. } => {
            let info = timeline
                .revision_info(revision)
                .ok_or("the revision is missing")?;
            if info.cause != Cause::Change {
                return Err(format!("its cause is {}, not a change", info.cause));
            }
            let diff = timeline
                .diff(&at(Revision(revision.get() - 1)), &at(revision))
                .map_err(|e| format!("cannot diff with the revision before: {e}"))?;
            let expected = json!([{"op": "add", "path": format!("/{key}"), "value": value}]);
            if diff.patch.to_json() != expected {
                return Err(format!(
                    "it changed {} instead of {expected}",
                    diff.patch.to_json()
                ));
            }
            Ok(())
        }
        Ack::Snapshot { name, .. } => {
            let name = SnapshotName::new(name).map_err(|e| e.to_string())?;
            let info = timeline.snapshot(&name).ok_or("the snapshot is missing")?;
            if info.kind != SnapshotKind::Named || info.revision != revision {
                return Err(format!(
                    "the snapshot is {:?} of revision {}",
                    info.kind, info.revision
                ));
            }
            same_state(&StateRef::Snapshot(name), &at(revision))
        }
        Ack::Rollback { target, .. } => {
            let info = timeline
                .revision_info(revision)
                .ok_or("the revision is missing")?;
            let Cause::Rollback {
                target: kind,
                restored,
                ..
            } = &info.cause
            else {
                return Err(format!("its cause is {}, not a rollback", info.cause));
            };
            match target {
                Target::Revision(to) => {
                    if *kind != TargetKind::Revision || restored.revision != Revision(*to) {
                        return Err(format!("its cause is {}", info.cause));
                    }
                    same_state(&at(Revision(*to)), &at(revision))
                }
                Target::Named(name) => {
                    let named = SnapshotName::new(name).map_err(|e| e.to_string())?;
                    if *kind != TargetKind::Named || restored.name.as_ref() != Some(&named) {
                        return Err(format!("its cause is {}", info.cause));
                    }
                    same_state(&StateRef::Snapshot(named), &at(revision))
                }
            }
        }
    }
}

/// Recovers `db` in-process and checks every acknowledgement; returns the
/// lost writes and the recovered heads.
async fn verify(db: &Path, acknowledged: &Acknowledged) -> (Vec<String>, BTreeMap<String, u64>) {
    let journal = Arc::new(SqliteJournal::open(db, SqliteOptions::default()).expect("reopen"));
    let runtime = Runtime::<Doc>::builder()
        .tenant_defaults(tenant_config())
        .journal(Arc::clone(&journal) as Arc<dyn Journal>)
        .image_every(IMAGE_EVERY)
        .start()
        .await
        .expect("recover the journal");
    let mut lost: Vec<String> = runtime
        .recovery()
        .failures
        .iter()
        .map(|(tenant, error)| format!("tenant {tenant} not recovered: {error}"))
        .collect();
    let mut timelines = HashMap::new();
    let mut heads = BTreeMap::new();
    // Tenants are read back on their first lookup: one that cannot be
    // answers its error here.
    for (id, _) in runtime.tenants() {
        match runtime.tenant(id.as_str()).await {
            Ok(tenant) => {
                heads.insert(id.to_string(), tenant.revision().get());
                timelines.insert(id.to_string(), tenant.timeline());
            }
            Err(error) => lost.push(format!("tenant {id} not recovered: {error}")),
        }
    }
    for (cycle, ack) in &acknowledged.acks {
        let outcome = match timelines.get(ack.tenant()) {
            Some(timeline) => check(timeline, ack),
            None => Err("the tenant is missing".into()),
        };
        if let Err(why) = outcome {
            lost.push(format!("{ack:?} (acknowledged in cycle {cycle}): {why}"));
        }
    }
    runtime.shutdown().await.expect("shut down");
    drop(runtime);
    drop(timelines);
    if let Ok(journal) = Arc::try_unwrap(journal) {
        journal.close().expect("close the journal");
    }
    (lost, heads)
}

#[test]
fn crash_test_loses_no_acknowledged_write() {
    let cycles: u64 = std::env::var(CYCLES_ENV)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!(
        "crash test: {cycles} cycles, seed {seed} ({SEED_ENV}={seed} replays the kill moments)"
    );
    let mut rng = XorShift::new(seed);
    let dir = ScratchDir::new("crash");
    let db = dir.journal();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut acknowledged = Acknowledged::default();
    let mut problems = Vec::new();
    let mut kills = 0;
    let started = Instant::now();
    for cycle in 0..cycles {
        // One cycle in eight kills at a moment counted from the start, which
        // may fall in recovery or tenant creation.
        let early = cycle > 0 && rng.below(8) == 0;
        let kill_after = Duration::from_millis(rng.between(KILL_AFTER_MS.0, KILL_AFTER_MS.1));
        let printed = run_child(&db, cycle, kill_after, early);
        kills += 1;
        problems.extend(printed.errors);
        problems.extend(acknowledged.add(cycle, printed.acks));
        let (lost, heads) = tokio.block_on(verify(&db, &acknowledged));
        problems.extend(lost);
        if !problems.is_empty() {
            break;
        }
        acknowledged.recovered_heads = heads;
    }
    let total = acknowledged.acks.len();
    println!(
        "crash test: {kills} kills, {total} acknowledged writes, {} lost",
        problems.len()
    );
    println!("crash test took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        problems.is_empty(),
        "{} acknowledged writes lost or wrong (seed {seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        total as u64 >= cycles,
        "only {total} writes acknowledged in {cycles} cycles: the test exercised too little"
    );
}
