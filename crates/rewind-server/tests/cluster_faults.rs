//! Truthful outcomes under faults: a black-box test of three `rewind serve
//! --postgres` nodes while PostgreSQL restarts, nodes die and nodes freeze.
//!
//! The story. Under `pg_ctl restart -m fast` or `-m immediate` while writes
//! were committing, a client was told `500 internal` "journal failed for
//! tenant 'x', the change was not applied: ... committing: terminating
//! connection due to administrator command" (or "connection closed") for a
//! write that was in fact committed: the commit reached the database and
//! only its answer was lost. The tenant then wedged: its in-memory timeline
//! had rewound past the entry that was in the database, so the following
//! writes got `500` "entry seq N does not follow M" (some of them committed
//! all the same) for seconds, in this test's runs for over a minute, while
//! the owner served reads of that rewound state, missing committed entries.
//! And while PostgreSQL was starting up, writes got `500` "the database
//! system is starting up (57P03)" rather than `503 unavailable` with
//! `Retry-After`. Killing the owner showed one more: a write forwarded to it whose answer was lost was answered `503
//! unavailable` ("a write may still take effect"), which reads as refused,
//! and was applied. A client cannot act on any of that: the only honest
//! answers are "done" (2xx), "not done" (4xx, or 503 with a code other than
//! `outcome_unknown`) and "may be done" (`503 outcome_unknown`, or no
//! answer).
//!
//! What the test does, as Jepsen's list-append workload does: a few tenants
//! created with `{"items": []}`; writer threads append unique integers
//! (`[{"op":"add","path":"/items/-","value":v}]`) through random nodes (a
//! non-owner forwards to the owner); reader threads read the state through
//! random nodes, recording when each read began and the list it saw. A
//! nemesis thread meanwhile restarts PostgreSQL (`-m immediate` mostly,
//! `-m fast` every fourth time; each restart cuts commits in flight), kills
//! nodes with -9 and starts them again, and SIGSTOPs nodes past the shard
//! lease before SIGCONT. Every write's answer is classified:
//!
//! - 2xx: acknowledged;
//! - 4xx, or 503 with any code but `outcome_unknown`, or no connection
//!   made: refused (nothing was applied);
//! - 503 `outcome_unknown`, a client timeout, or the connection lost once
//!   the request may have been sent: unknown outcome;
//! - 500: an answer 500, a failure of the test (its outcome is unknown).
//!
//! The history is then checked, not only the final state: every
//! acknowledged value is in the final list exactly once (lost, duplicated);
//! no refused value appears in any read or in the final list
//! (refused-but-applied); every read is a prefix of the final list
//! (non-prefix reads); a read that began after a write was acknowledged,
//! or after another read that saw more ended, holds all of it (stale
//! reads); all three nodes give the same final list of every tenant. After
//! each PostgreSQL restart (issued from a settled cluster, the next fault
//! waiting until every tenant wrote again or the limit passed), the time
//! from the server accepting connections again (polled) to every tenant's
//! next acknowledged write is measured and printed. The goal is 2 s
//! ([`GAP_GOAL`]); the test fails past [`GAP_LIMIT`] (10 s), which no
//! tenant that recovers on its own comes near: a wedged tenant, as before
//! the fix, went 48 to 128 s. The goal is not asserted because about one
//! run in three on a 2-core machine has one gap between 2.0 and 2.8 s (a
//! wall-clock figure on a shared machine); see the note of the fault work.
//! Each test prints one
//! summary line, then asserts every count; the diagnostics (answers by
//! status and code, 503s without `Retry-After` apart, the nemesis's
//! timings, every gap, the first examples of each anomaly, writes answered
//! 500 that were applied all the same) go to stderr.
//!
//! - `every_answer_tells_the_truth_under_faults`: one attempt per value.
//! - `idempotent_retries_append_exactly_once_under_faults`: every write
//!   carries an `Idempotency-Key` (one per value), and every unknown
//!   outcome is retried with the same key and body until a definite answer
//!   (at most 30 s): no value may be lost or appended twice.
//! - `a_postgres_restart_cuts_sessions_and_says_when_it_is_back`: the
//!   nemesis's restart itself.
//!
//! The tests run one after the other (each takes a PostgreSQL server of
//! its own, which it restarts); the two under faults take about two
//! minutes each on two cores, a wedged tenant making the nemesis wait up
//! to 2.3 s after a restart. `REWIND_CLUSTER_FAULTS=restarts,kills,pauses`
//! sets the number of each event of a test's nemesis (default `20,10,5`;
//! e.g. `100,40,20` for a longer soak, `0,0,0` for the workload alone).
//! Like the other cluster tests, they skip loudly without PostgreSQL's
//! binaries and fail instead under `REWIND_REQUIRE_POSTGRES=1`.

mod cluster_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cluster_support::{exchange, owned_shards, wait_balanced, Cluster, Exchange, Node, Rng};
use rewind_store::testing::{PgServer, Shutdown};
use serde_json::{json, Value};

/// The shard lease of the nodes: short, so that a pause outlives it.
const LEASE: &str = "3s";
const LEASE_TIME: Duration = Duration::from_secs(3);
/// How long a paused node stays stopped: past its lease.
const PAUSE: Duration = Duration::from_millis(4500);
const SHARDS: u32 = 16;
const TENANTS: usize = 6;
const WRITERS: usize = 8;
const READERS: usize = 2;
/// A client's patience with one write.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a write of unknown outcome is retried with its key.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// How long a tenant should go at most without an acknowledged write once
/// PostgreSQL accepts connections again after a restart: printed beside
/// the longest gap measured.
const GAP_GOAL: Duration = Duration::from_secs(2);
/// Past this a tenant is wedged, not slow: the test fails.
const GAP_LIMIT: Duration = Duration::from_secs(10);

/// The two tests restart servers and load the machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn every_answer_tells_the_truth_under_faults() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(report) = run("faults", false) else {
        return;
    };
    report.print_and_assert("cluster faults");
}

#[test]
fn idempotent_retries_append_exactly_once_under_faults() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(report) = run("faults_idempotent", true) else {
        return;
    };
    report.print_and_assert("cluster faults with Idempotency-Key retries");
}

/// The nemesis's restart: it cuts the sessions open (so it cuts their
/// commits), keeps what was committed, and says when the server accepts
/// connections again.
#[test]
fn a_postgres_restart_cuts_sessions_and_says_when_it_is_back() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Skipped loudly without PostgreSQL (failed under
    // REWIND_REQUIRE_POSTGRES=1).
    let Some(server) = PgServer::start() else {
        return;
    };
    let url = server.create_database("restart_probe");
    server.execute("restart_probe", "CREATE TABLE kept (n int)");
    for (n, mode) in [Shutdown::Fast, Shutdown::Immediate]
        .into_iter()
        .enumerate()
    {
        let mut before = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        before
            .execute("INSERT INTO kept VALUES ($1)", &[&(n as i32)])
            .unwrap();
        let issued = Instant::now();
        let ready = server.restart_now(mode);
        assert!(ready > issued);
        assert!(server.accepts_connections(), "{mode:?}");
        assert!(
            before.simple_query("SELECT 1").is_err(),
            "a session outlived a {mode:?} restart"
        );
        let mut after = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let kept: i64 = after
            .query_one("SELECT count(*) FROM kept", &[])
            .unwrap()
            .get(0);
        assert_eq!(
            kept,
            n as i64 + 1,
            "committed rows kept over a {mode:?} restart"
        );
    }
}

/// How many of each event the nemesis causes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    restarts: usize,
    kills: usize,
    pauses: usize,
}

impl Plan {
    /// `REWIND_CLUSTER_FAULTS=restarts,kills,pauses`, else 20, 10, 5.
    fn from_env() -> Plan {
        let Ok(text) = std::env::var("REWIND_CLUSTER_FAULTS") else {
            return Plan {
                restarts: 20,
                kills: 10,
                pauses: 5,
            };
        };
        let numbers: Vec<usize> = text
            .split(',')
            .map(|n| n.trim().parse())
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        let [restarts, kills, pauses] = numbers[..] else {
            panic!(
                "REWIND_CLUSTER_FAULTS={text:?}: give three counts, restarts,kills,pauses \
                 (e.g. 20,10,5)"
            );
        };
        Plan {
            restarts,
            kills,
            pauses,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Restart(Shutdown),
    Kill,
    Pause,
}

/// What became of one value's write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// 2xx, at this moment.
    Acknowledged(Instant),
    /// Nothing may have been applied.
    Refused,
    /// It may or may not have been applied.
    Unknown,
    /// Answered 500 (its outcome is unknown too).
    Internal,
}

/// One value's write.
struct Write {
    tenant: usize,
    value: u64,
    sent: Instant,
    answered: Instant,
    outcome: Outcome,
    /// The last answer, for the diagnostics.
    said: String,
}

/// What one attempt at a write got.
enum Attempt {
    Acknowledged,
    /// Nothing done by this attempt; `retryable` if a later one may be.
    Refused {
        retryable: bool,
    },
    Unknown,
    Internal,
}

/// The reads of one tenant, kept small: the lists seen are grouped into
/// branches, each read being a prefix of its branch (reads that agree share
/// one, so a run with no anomaly keeps one list per tenant).
#[derive(Default)]
struct Reads {
    branches: Vec<Vec<u64>>,
    /// (when it began, when it ended, branch, length).
    seen: Vec<(Instant, Instant, usize, usize)>,
}

impl Reads {
    fn record(&mut self, began: Instant, ended: Instant, list: Vec<u64>) {
        for (i, branch) in self.branches.iter_mut().enumerate() {
            let common = branch.len().min(list.len());
            if branch[..common] == list[..common] {
                if list.len() > branch.len() {
                    branch.extend_from_slice(&list[branch.len()..]);
                }
                self.seen.push((began, ended, i, list.len()));
                return;
            }
        }
        self.seen
            .push((began, ended, self.branches.len(), list.len()));
        self.branches.push(list);
    }
}

/// Everything the clients and the nemesis share.
struct Run {
    tenants: Vec<String>,
    idempotent: bool,
    /// The addresses of the running nodes.
    addresses: Mutex<Vec<String>>,
    next_value: AtomicU64,
    stop: AtomicBool,
    writes: Mutex<Vec<Write>>,
    /// Per tenant, when each write was acknowledged.
    acks: Vec<Mutex<Vec<Instant>>>,
    reads: Vec<Mutex<Reads>>,
    /// Answers by status and code, for the diagnostics.
    answers: Mutex<BTreeMap<String, u64>>,
    /// Attempts past the first (idempotent retries).
    retries: AtomicU64,
}

impl Run {
    fn pick(&self, rng: &mut Rng) -> Option<String> {
        let addresses = self.addresses.lock().unwrap();
        if addresses.is_empty() {
            return None;
        }
        Some(addresses[rng.below(addresses.len() as u64) as usize].clone())
    }

    fn note(&self, answer: String) {
        *self.answers.lock().unwrap().entry(answer).or_default() += 1;
    }

    /// One attempt at appending `value` to `tenant` through `addr`, and
    /// what it was told.
    fn attempt(&self, addr: &str, tenant: &str, value: u64) -> (Attempt, String) {
        let patch = json!([{"op": "add", "path": "/items/-", "value": value}]).to_string();
        let key = format!("append-{value}");
        let headers: Vec<(&str, &str)> = if self.idempotent {
            vec![("Idempotency-Key", key.as_str())]
        } else {
            Vec::new()
        };
        let path = format!("/v1/tenants/{tenant}/state");
        let answer = match exchange(
            addr,
            "PATCH",
            &path,
            &headers,
            Some(&patch),
            "application/json-patch+json",
            WRITE_TIMEOUT,
        ) {
            Exchange::Answered(answer) => answer,
            Exchange::NotSent(error) => {
                self.note("not sent (no connection)".into());
                return (
                    Attempt::Refused { retryable: true },
                    format!("not sent: {error}"),
                );
            }
            Exchange::Lost(error) => {
                self.note("no answer (timeout or connection lost)".into());
                return (Attempt::Unknown, format!("no answer: {error}"));
            }
        };
        let code = answer.code().unwrap_or("").to_owned();
        let message = answer.body["error"]["message"].as_str().unwrap_or("");
        let hint = match answer.status {
            503 if answer.header("retry-after").is_none() => " (no Retry-After)",
            500 if message.contains("57P03") => " (starting up, 57P03)",
            500 if message.contains("57P01") => " (session terminated, 57P01)",
            500 if message.contains("does not follow") => " (entry seq does not follow)",
            500 if message.contains("connection closed") => " (connection closed)",
            _ => "",
        };
        let label = format!("{} {code}{hint}", answer.status);
        self.note(label.clone());
        let said = format!("{} {} via {addr}", answer.status, answer.body);
        let attempt = match answer.status {
            200..=299 => Attempt::Acknowledged,
            500 => {
                let count = self.answers.lock().unwrap()[&label];
                if count <= 2 {
                    eprintln!(
                        "write of {value} to {tenant} via {addr}: 500 {}",
                        answer.body
                    );
                }
                Attempt::Internal
            }
            503 if code == "outcome_unknown" => Attempt::Unknown,
            503 => Attempt::Refused { retryable: true },
            409 | 429 => Attempt::Refused { retryable: true },
            400..=499 => Attempt::Refused { retryable: false },
            status => {
                eprintln!(
                    "write of {value} to {tenant} via {addr}: unexpected {status} {}",
                    answer.body
                );
                Attempt::Unknown
            }
        };
        (attempt, said)
    }

    /// Appends `value` to `tenant`: once, or, with idempotency keys, again
    /// with the same key and body while the outcome is unknown.
    fn write(&self, tenant: usize, value: u64, rng: &mut Rng) -> Write {
        let sent = Instant::now();
        // An earlier attempt of this value may have taken effect.
        let mut uncertain = false;
        let mut attempts = 0u32;
        let mut said;
        let outcome = loop {
            let Some(addr) = self.pick(rng) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            attempts += 1;
            if attempts > 1 {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            let (attempt, answer) = self.attempt(&addr, &self.tenants[tenant], value);
            said = answer;
            let out_of_time = sent.elapsed() > RETRY_FOR || self.stop.load(Ordering::Relaxed);
            match attempt {
                Attempt::Acknowledged => break Outcome::Acknowledged(Instant::now()),
                Attempt::Internal => break Outcome::Internal,
                Attempt::Refused { .. } if !uncertain => break Outcome::Refused,
                Attempt::Refused { retryable } => {
                    if !retryable || out_of_time {
                        break Outcome::Unknown;
                    }
                }
                Attempt::Unknown => {
                    uncertain = true;
                    if !self.idempotent || out_of_time {
                        break Outcome::Unknown;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100 + rng.below(200)));
        };
        if let Outcome::Acknowledged(at) = outcome {
            self.acks[tenant].lock().unwrap().push(at);
        }
        Write {
            tenant,
            value,
            sent,
            answered: Instant::now(),
            outcome,
            said,
        }
    }

    fn writer(&self, seed: u64) {
        let mut rng = Rng::new(seed * 7919 + 11);
        while !self.stop.load(Ordering::Relaxed) {
            let tenant = rng.below(self.tenants.len() as u64) as usize;
            let value = self.next_value.fetch_add(1, Ordering::Relaxed);
            let write = self.write(tenant, value, &mut rng);
            self.writes.lock().unwrap().push(write);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn reader(&self, seed: u64) {
        let mut rng = Rng::new(seed * 104_729 + 5);
        while !self.stop.load(Ordering::Relaxed) {
            let tenant = rng.below(self.tenants.len() as u64) as usize;
            let Some(addr) = self.pick(&mut rng) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let began = Instant::now();
            if let Some(list) = read_list(&addr, &self.tenants[tenant]) {
                let ended = Instant::now();
                self.reads[tenant]
                    .lock()
                    .unwrap()
                    .record(began, ended, list);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether every tenant had a write acknowledged since `since`.
    fn all_acked_since(&self, since: Instant) -> bool {
        self.acks
            .iter()
            .all(|acks| acks.lock().unwrap().iter().rev().any(|at| *at > since))
    }

    /// How long after `ready` every tenant had a write acknowledged (until
    /// `end` for a tenant that had none).
    fn gap_after(&self, ready: Instant, end: Instant) -> Duration {
        self.acks
            .iter()
            .map(|acks| {
                let first = acks
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|at| **at > ready)
                    .min()
                    .copied()
                    .unwrap_or(end);
                first.saturating_duration_since(ready)
            })
            .max()
            .unwrap_or_default()
    }
}

/// The list of `tenant` through `addr`, if it answered 200; a state
/// without a list of integers reads as `[u64::MAX]` (never a prefix).
fn read_list(addr: &str, tenant: &str) -> Option<Vec<u64>> {
    let path = format!("/v1/tenants/{tenant}/state");
    match exchange(
        addr,
        "GET",
        &path,
        &[],
        None,
        "application/json",
        READ_TIMEOUT,
    ) {
        Exchange::Answered(answer) if answer.status == 200 => Some(list_of(&answer.body)),
        _ => None,
    }
}

fn list_of(state: &Value) -> Vec<u64> {
    match state["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|item| item.as_u64().unwrap_or(u64::MAX))
            .collect(),
        None => vec![u64::MAX],
    }
}

/// Starts the cluster and the clients, lets the nemesis loose, and checks
/// the history; `None` without PostgreSQL.
fn run(name: &str, idempotent: bool) -> Option<Report> {
    let cluster = Cluster::own(name, SHARDS)?;
    let plan = Plan::from_env();
    let nodes: Vec<Node> = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|id| Node::start(&cluster, id, LEASE))
        .collect();
    wait_balanced(
        &cluster,
        &nodes.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("append_{i}")).collect();
    for tenant in &tenants {
        let (status, body) = cluster_support::call(
            &nodes[0].addr,
            "PUT",
            &format!("/v1/tenants/{tenant}"),
            Some(json!({"state": {"items": []}})),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(status, 201, "creating {tenant}: {body}");
    }
    let run = Run {
        addresses: Mutex::new(nodes.iter().map(|n| n.addr.clone()).collect()),
        acks: tenants.iter().map(|_| Mutex::default()).collect(),
        reads: tenants.iter().map(|_| Mutex::default()).collect(),
        tenants,
        idempotent,
        next_value: AtomicU64::new(1),
        stop: AtomicBool::new(false),
        writes: Mutex::default(),
        answers: Mutex::default(),
        retries: AtomicU64::new(0),
    };
    let nodes = Mutex::new(nodes);
    let nemesis = std::thread::scope(|scope| {
        for w in 0..WRITERS {
            let run = &run;
            scope.spawn(move || run.writer(w as u64));
        }
        for r in 0..READERS {
            let run = &run;
            scope.spawn(move || run.reader(r as u64));
        }
        let nemesis = scope.spawn(|| nemesis(&run, &cluster, &nodes, plan));
        let outcome = nemesis.join();
        run.stop.store(true, Ordering::Relaxed);
        match outcome {
            Ok(nemesis) => nemesis,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let end = Instant::now();
    let gaps: Vec<Duration> = nemesis
        .restarts
        .iter()
        .map(|(_, ready)| run.gap_after(*ready, end))
        .collect();
    // What the writes got around a long gap: where the time went.
    for ((issued, ready), gap) in nemesis.restarts.iter().zip(&gaps) {
        if *gap < Duration::from_secs(1) {
            continue;
        }
        let writes = run.writes.lock().unwrap();
        let around: Vec<String> = writes
            .iter()
            .filter(|w| w.answered > *issued && w.sent < *ready + *gap)
            .map(|w| {
                let at = |t: Instant| {
                    if t >= *ready {
                        t.duration_since(*ready).as_secs_f64()
                    } else {
                        -ready.duration_since(t).as_secs_f64()
                    }
                };
                format!(
                    "t{} sent {:+.2} answered {:+.2}: {}",
                    w.tenant,
                    at(w.sent),
                    at(w.answered),
                    w.said
                )
            })
            .collect();
        eprintln!(
            "{name}: a gap of {:.2} s after a restart (PostgreSQL down {:.2} s); writes around it:\n  {}",
            gap.as_secs_f64(),
            ready.duration_since(*issued).as_secs_f64(),
            around.join("\n  ")
        );
    }

    // Final lists, once the shards are settled, through every node.
    let nodes = nodes.into_inner().unwrap();
    wait_balanced(
        &cluster,
        &nodes.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    let mut finals: Vec<Vec<u64>> = Vec::new();
    let mut disagreements = 0;
    for tenant in &run.tenants {
        let lists: Vec<Vec<u64>> = nodes
            .iter()
            .map(|node| final_list(&node.addr, tenant))
            .collect();
        if lists.iter().any(|list| *list != lists[0]) {
            disagreements += 1;
            eprintln!(
                "{tenant}: the nodes disagree on the final list (lengths {:?})",
                lists.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
        finals.push(lists.into_iter().next().unwrap());
    }
    eprintln!(
        "{name}: {} writes ({} idempotent retries) in {:.0} s, answers {:?}; nemesis: {} \
         restarts, {} kills, {} pauses, seconds spent (balancing, restarting, after restarts, \
         killing, pausing) {:.1?}; gaps after the restarts (s) {:.2?}",
        run.writes.lock().unwrap().len(),
        run.retries.load(Ordering::Relaxed),
        nemesis.took.as_secs_f64(),
        run.answers.lock().unwrap(),
        nemesis.done.0,
        nemesis.done.1,
        nemesis.done.2,
        nemesis.spent,
        gaps.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
    );
    Some(check(&run, &finals, &nemesis, &gaps, disagreements))
}

/// The final list of `tenant` through `addr`, retried for a minute.
fn final_list(addr: &str, tenant: &str) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(list) = read_list(addr, tenant) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{tenant} unreadable through {addr} for 60 s after the faults"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What the nemesis did.
struct Nemesis {
    /// Per PostgreSQL restart: when it was issued, and when the server
    /// accepted connections again.
    restarts: Vec<(Instant, Instant)>,
    /// Events done: restarts, kills, pauses.
    done: (usize, usize, usize),
    took: Duration,
    /// Seconds spent waiting for balanced shards, restarting PostgreSQL,
    /// waiting for writes after it, killing and pausing.
    spent: [f64; 5],
}

/// The events of `plan` in a shuffled order: restarts mostly `-m
/// immediate`, every fourth `-m fast`.
fn schedule(plan: Plan, rng: &mut Rng) -> Vec<Event> {
    let mut events: Vec<Event> = (0..plan.restarts)
        .map(|i| {
            Event::Restart(if i % 4 == 1 {
                Shutdown::Fast
            } else {
                Shutdown::Immediate
            })
        })
        .chain((0..plan.kills).map(|_| Event::Kill))
        .chain((0..plan.pauses).map(|_| Event::Pause))
        .collect();
    for i in (1..events.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        events.swap(i, j);
    }
    events
}

fn nemesis(run: &Run, cluster: &Cluster, nodes: &Mutex<Vec<Node>>, plan: Plan) -> Nemesis {
    let mut rng = Rng::new(0xfa17);
    let server = cluster
        .own
        .as_ref()
        .expect("a PostgreSQL server of its own");
    let started = Instant::now();
    let mut done = Nemesis {
        restarts: Vec::new(),
        done: (0, 0, 0),
        took: Duration::ZERO,
        spent: [0.0; 5],
    };
    let refresh = |nodes: &[Node]| {
        *run.addresses.lock().unwrap() = nodes
            .iter()
            .filter(|n| n.is_up())
            .map(|n| n.addr.clone())
            .collect();
    };
    // The writers get going.
    std::thread::sleep(Duration::from_secs(2));
    for event in schedule(plan, &mut rng) {
        match event {
            Event::Restart(mode) => {
                // From a settled cluster, so that the gap is PostgreSQL's.
                let balancing = Instant::now();
                {
                    let nodes = nodes.lock().unwrap();
                    wait_balanced(
                        cluster,
                        &nodes.iter().collect::<Vec<_>>(),
                        Duration::from_secs(60),
                    );
                }
                done.spent[0] += balancing.elapsed().as_secs_f64();
                std::thread::sleep(Duration::from_millis(100 + rng.below(300)));
                let issued = Instant::now();
                let ready = server.restart_now(mode);
                done.spent[1] += issued.elapsed().as_secs_f64();
                done.restarts.push((issued, ready));
                done.done.0 += 1;
                // No other fault until every tenant wrote again, or the gap
                // is past its limit anyway: the gap is PostgreSQL's.
                while !run.all_acked_since(ready)
                    && ready.elapsed() < GAP_GOAL + Duration::from_millis(1000)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                done.spent[2] += ready.elapsed().as_secs_f64();
            }
            Event::Kill => {
                let killing = Instant::now();
                let mut nodes = nodes.lock().unwrap();
                let victim = busiest(run, cluster, &nodes);
                nodes[victim].kill();
                refresh(&nodes);
                std::thread::sleep(Duration::from_millis(rng.below(300)));
                nodes[victim].restart(cluster);
                refresh(&nodes);
                done.done.1 += 1;
                done.spent[3] += killing.elapsed().as_secs_f64();
            }
            Event::Pause => {
                let pausing = Instant::now();
                let nodes = nodes.lock().unwrap();
                let victim = busiest(run, cluster, &nodes);
                nodes[victim].pause();
                std::thread::sleep(PAUSE.max(LEASE_TIME + Duration::from_secs(1)));
                nodes[victim].resume();
                done.done.2 += 1;
                done.spent[4] += pausing.elapsed().as_secs_f64();
            }
        }
        std::thread::sleep(Duration::from_millis(200 + rng.below(400)));
    }
    done.took = started.elapsed();
    done
}

/// The node owning the shards of the most tenants.
fn busiest(run: &Run, cluster: &Cluster, nodes: &[Node]) -> usize {
    let mut best = (0, 0);
    for (i, node) in nodes.iter().enumerate() {
        let owned = owned_shards(&node.addr).unwrap_or_default();
        let count = run
            .tenants
            .iter()
            .filter(|t| owned.contains(&cluster.shard_of(t)))
            .count();
        if count > best.1 {
            best = (i, count);
        }
    }
    best.0
}

/// The counts of the summary line.
#[derive(Debug, Default)]
struct Report {
    acknowledged: usize,
    lost: usize,
    duplicated: usize,
    refused_applied: usize,
    non_prefix: usize,
    stale: usize,
    internal: usize,
    unknown: usize,
    longest_gap: Duration,
    /// Tenants whose final list differs between nodes.
    disagreements: usize,
    /// PostgreSQL restarts done, and how many cut a write in flight.
    restarts: usize,
    restarts_cutting_writes: usize,
    reads: usize,
}

impl Report {
    fn print_and_assert(&self, what: &str) {
        println!(
            "{what}: {} acknowledged, {} lost, {} duplicated, {} refused-but-applied, {} \
             non-prefix reads, {} stale reads, {} answers 500, {} unknown outcomes, longest \
             write gap after PostgreSQL returned {:.2} s",
            self.acknowledged,
            self.lost,
            self.duplicated,
            self.refused_applied,
            self.non_prefix,
            self.stale,
            self.internal,
            self.unknown,
            self.longest_gap.as_secs_f64(),
        );
        eprintln!(
            "{what}: the longest write gap after a PostgreSQL restart, {:.2} s, {} the goal of {GAP_GOAL:?}",
            self.longest_gap.as_secs_f64(),
            if self.longest_gap <= GAP_GOAL { "meets" } else { "misses" },
        );
        // The test's power: enough history, and restarts that cut writes.
        assert!(
            self.acknowledged >= 200 && self.reads >= 200,
            "too little history to say anything: {} acknowledged, {} reads",
            self.acknowledged,
            self.reads
        );
        assert!(
            self.restarts_cutting_writes * 2 >= self.restarts,
            "only {} of {} PostgreSQL restarts cut a write in flight",
            self.restarts_cutting_writes,
            self.restarts
        );
        assert_eq!(self.lost, 0, "acknowledged writes lost");
        assert_eq!(self.duplicated, 0, "values appended more than once");
        assert_eq!(
            self.refused_applied, 0,
            "writes answered as refused were applied"
        );
        assert_eq!(self.non_prefix, 0, "reads not a prefix of the final list");
        assert_eq!(
            self.stale, 0,
            "reads missing a write acknowledged before they began"
        );
        assert_eq!(self.internal, 0, "writes answered 500");
        assert!(
            self.longest_gap <= GAP_LIMIT,
            "a tenant went {:.2} s without an acknowledged write after PostgreSQL accepted \
             connections again (a wedge: the goal is {GAP_GOAL:?}, the limit {GAP_LIMIT:?})",
            self.longest_gap.as_secs_f64()
        );
        assert_eq!(
            self.disagreements, 0,
            "tenants whose final list differs between nodes"
        );
    }
}

/// Prints the first few examples of an anomaly.
fn example(kind: &str, seen: &mut HashMap<String, usize>, text: impl FnOnce() -> String) {
    let count = seen.entry(kind.to_owned()).or_default();
    *count += 1;
    if *count <= 5 {
        eprintln!("{kind}: {}", text());
    }
}

/// The history against the final lists.
fn check(
    run: &Run,
    finals: &[Vec<u64>],
    nemesis: &Nemesis,
    gaps: &[Duration],
    disagreements: usize,
) -> Report {
    let writes = run.writes.lock().unwrap();
    let mut report = Report {
        disagreements,
        restarts: nemesis.restarts.len(),
        longest_gap: gaps.iter().max().copied().unwrap_or_default(),
        ..Report::default()
    };
    report.restarts_cutting_writes = nemesis
        .restarts
        .iter()
        .filter(|(issued, _)| {
            writes
                .iter()
                .any(|w| w.sent < *issued && w.answered > *issued)
        })
        .count();
    let mut seen = HashMap::new();
    for (t, tenant) in run.tenants.iter().enumerate() {
        let list = &finals[t];
        let mut count: HashMap<u64, usize> = HashMap::new();
        let mut position: HashMap<u64, usize> = HashMap::new();
        for (i, value) in list.iter().enumerate() {
            *count.entry(*value).or_default() += 1;
            position.entry(*value).or_insert(i);
        }
        for (value, n) in &count {
            if *n > 1 {
                report.duplicated += 1;
                example("duplicated", &mut seen, || {
                    format!("{tenant}: {value} appears {n} times")
                });
            }
        }
        let reads = run.reads[t].lock().unwrap();
        report.reads += reads.seen.len();
        let in_reads: HashSet<u64> = reads.branches.iter().flatten().copied().collect();
        let mut acked: Vec<(Instant, u64)> = Vec::new();
        for write in writes.iter().filter(|w| w.tenant == t) {
            match write.outcome {
                Outcome::Acknowledged(at) => {
                    report.acknowledged += 1;
                    acked.push((at, write.value));
                    if !count.contains_key(&write.value) {
                        report.lost += 1;
                        example("lost", &mut seen, || {
                            format!(
                                "{tenant}: {} acknowledged, not in the final list",
                                write.value
                            )
                        });
                    }
                }
                Outcome::Refused => {
                    let in_final = count.contains_key(&write.value);
                    if in_final || in_reads.contains(&write.value) {
                        report.refused_applied += 1;
                        example("refused but applied", &mut seen, || {
                            format!(
                                "{tenant}: {} refused ({}), yet in the final list: {in_final}, \
                                 in a read: {}",
                                write.value,
                                write.said,
                                in_reads.contains(&write.value)
                            )
                        });
                    }
                }
                Outcome::Unknown => report.unknown += 1,
                Outcome::Internal => {
                    report.internal += 1;
                    if count.contains_key(&write.value) {
                        // Not counted apart (every 500 fails the test), but
                        // told: "not applied" was untrue.
                        example("answered 500 yet applied", &mut seen, || {
                            format!("{tenant}: {}", write.value)
                        });
                    }
                }
            }
        }
        // Reads: a prefix of the final list, holding every write
        // acknowledged before they began, and everything a read that ended
        // before they began saw (a read of a prefix holds another iff it is
        // as long).
        acked.sort();
        // Per read: whether it is a prefix of the final list, and whether
        // it misses an acknowledged write.
        let mut prefix = vec![false; reads.seen.len()];
        let mut stale = vec![false; reads.seen.len()];
        for (b, branch) in reads.branches.iter().enumerate() {
            let common = branch
                .iter()
                .zip(list.iter())
                .take_while(|(x, y)| x == y)
                .count();
            let mut first: HashMap<u64, usize> = HashMap::new();
            for (i, value) in branch.iter().enumerate() {
                first.entry(*value).or_insert(i);
            }
            // furthest[k]: how long a read of this branch must be to hold
            // the first k acknowledged values.
            let mut furthest = vec![0usize; acked.len() + 1];
            for (k, (_, value)) in acked.iter().enumerate() {
                let needed = first.get(value).map_or(usize::MAX, |i| i + 1);
                furthest[k + 1] = furthest[k].max(needed);
            }
            for (r, (began, _, _, len)) in reads.seen.iter().enumerate() {
                if reads.seen[r].2 != b {
                    continue;
                }
                prefix[r] = *len <= common;
                if !prefix[r] {
                    report.non_prefix += 1;
                    example("non-prefix read", &mut seen, || {
                        format!(
                            "{tenant}: a read of {len} items departs from the final list ({} \
                             items) at item {common}: {:?} where the final list has {:?}",
                            list.len(),
                            &branch[common..(common + 3).min(*len)],
                            &list[common.min(list.len())..(common + 3).min(list.len())],
                        )
                    });
                }
                let before = acked.partition_point(|(at, _)| at < began);
                if furthest[before] > *len {
                    stale[r] = true;
                    report.stale += 1;
                    example("stale read", &mut seen, || {
                        let missing: Vec<u64> = acked[..before]
                            .iter()
                            .filter(|(_, v)| first.get(v).is_none_or(|i| i >= len))
                            .map(|(_, v)| *v)
                            .take(5)
                            .collect();
                        format!(
                            "{tenant}: a read of {len} items misses {missing:?}, acknowledged \
                             before it began"
                        )
                    });
                }
            }
        }
        // Real time between reads of prefixes: a read holds everything a
        // read that ended before it began saw, i.e. it is as long.
        // longest[k]: the longest of the first k such reads to end.
        let mut ends: Vec<(Instant, usize)> = reads
            .seen
            .iter()
            .zip(&prefix)
            .filter(|(_, is_prefix)| **is_prefix)
            .map(|((_, ended, _, len), _)| (*ended, *len))
            .collect();
        ends.sort();
        let mut longest = vec![0usize; ends.len() + 1];
        for (k, (_, len)) in ends.iter().enumerate() {
            longest[k + 1] = longest[k].max(*len);
        }
        for (r, (began, _, _, len)) in reads.seen.iter().enumerate() {
            if !prefix[r] || stale[r] {
                continue; // counted once, above
            }
            let earlier = longest[ends.partition_point(|(ended, _)| ended < began)];
            if earlier > *len {
                report.stale += 1;
                example("stale read", &mut seen, || {
                    format!(
                        "{tenant}: a read of {len} items began after a read of {earlier} \
                         items ended"
                    )
                });
            }
        }
    }
    if !seen.is_empty() {
        eprintln!("anomalies: {seen:?}");
    }
    report
}
