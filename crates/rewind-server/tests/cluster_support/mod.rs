//! Support of the cluster tests: a throwaway PostgreSQL, `rewind serve
//! --postgres` processes, a small HTTP client with timeouts, and the load
//! (writers, readers, their records and the final check).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rewind_core::TenantId;
use rewind_store::testing::PgServer;
use serde_json::{json, Value};

const REWIND: &str = env!("CARGO_BIN_EXE_rewind");

/// One PostgreSQL server per test binary; a database per test.
fn server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER.get_or_init(PgServer::start).as_ref()
}

/// A database for one test's nodes.
pub(crate) struct Cluster {
    pub(crate) url: String,
    pub(crate) shards: u32,
    pub(crate) logs: PathBuf,
    /// A server of this cluster's own (see [`Cluster::own`]).
    pub(crate) own: Option<PgServer>,
}

impl Cluster {
    /// `None` (after the loud skip line) without PostgreSQL binaries.
    pub(crate) fn new(name: &str, shards: u32) -> Option<Cluster> {
        let server = server()?;
        let url = server.create_database(&format!("cluster_{name}"));
        Some(Cluster {
            url,
            shards,
            logs: logs(name),
            own: None,
        })
    }

    /// On a PostgreSQL server of its own, which the test may stop and
    /// start without disturbing the others.
    pub(crate) fn own(name: &str, shards: u32) -> Option<Cluster> {
        server()?;
        let own = PgServer::start()?;
        let url = own.create_database(&format!("cluster_{name}"));
        Some(Cluster {
            url,
            shards,
            logs: logs(name),
            own: Some(own),
        })
    }

    /// The tenant's shard.
    pub(crate) fn shard_of(&self, tenant: &str) -> u32 {
        rewind_store::shard_of(&TenantId::new(tenant).unwrap(), self.shards)
    }

    /// Every lease row: (shard, owner or "", live).
    pub(crate) fn lease_rows(&self) -> Vec<(u32, String, bool)> {
        let url = self.url.clone();
        // The sync client must not run inside a tokio runtime; these tests
        // have none, but keep it on its own thread all the same.
        std::thread::spawn(move || {
            let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) else {
                return Vec::new();
            };
            client
                .query(
                    "SELECT shard, coalesce(owner, ''), expires_at > now() FROM rewind_shards \
                     ORDER BY shard",
                    &[],
                )
                .map(|rows| {
                    rows.iter()
                        .map(|r| (r.get::<_, i32>(0) as u32, r.get(1), r.get(2)))
                        .collect()
                })
                .unwrap_or_default()
        })
        .join()
        .unwrap()
    }
}

/// A fresh directory for a test's node logs.
fn logs(name: &str) -> PathBuf {
    let logs = std::env::temp_dir().join(format!("rewind-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&logs);
    std::fs::create_dir_all(&logs).unwrap();
    logs
}

/// A `rewind serve --postgres` process.
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) addr: String,
    lease: String,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    pub(crate) fn start(cluster: &Cluster, id: &str, lease: &str) -> Node {
        let mut node = Node {
            id: id.to_owned(),
            addr: String::new(),
            lease: lease.to_owned(),
            child: None,
            starts: 0,
        };
        node.restart(cluster);
        node
    }

    /// Starts the process (again), waiting until it listens.
    pub(crate) fn restart(&mut self, cluster: &Cluster) {
        assert!(self.child.is_none(), "{} is running", self.id);
        self.starts += 1;
        let log = cluster
            .logs
            .join(format!("{}-{}.log", self.id, self.starts));
        let mut child = Command::new(REWIND)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--postgres",
                &cluster.url,
            ])
            .args(["--node-id", &self.id, "--lease", &self.lease])
            .args(["--shards", &cluster.shards.to_string()])
            // Deployment checks of the tests fetch loopback endpoints.
            .args(["--allow-check-host", "127.0.0.1"])
            .env_remove("REWIND_ADMIN_TOKEN")
            .env_remove("REWIND_POSTGRES")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.addr = line
            .trim()
            .strip_prefix("rewind listening on http://")
            .unwrap_or_else(|| {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("{} did not start: {line:?}\n{text}", self.id)
            })
            .to_owned();
        self.child = Some(child);
    }

    pub(crate) fn is_up(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, and waits for a graceful exit.
    pub(crate) fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            let status = child.wait().unwrap();
            assert!(status.success(), "{} exited with {status}", self.id);
        }
    }

    pub(crate) fn pause(&self) {
        signal(self.child.as_ref().unwrap(), "STOP");
    }

    pub(crate) fn resume(&self) {
        signal(self.child.as_ref().unwrap(), "CONT");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            signal(child, "CONT");
        }
        self.kill();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// One HTTP/1.1 request with `timeout` for the whole exchange: status and
/// JSON body (`null` if empty), or the I/O error.
pub(crate) fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    timeout: Duration,
) -> std::io::Result<(u16, Value)> {
    call_full(addr, method, path, body, "application/json", timeout).map(|(s, _, b)| (s, b))
}

/// [`call`] with a content type, also giving the ETag's revision.
pub(crate) fn call_full(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    content_type: &str,
    timeout: Duration,
) -> std::io::Result<(u16, Option<u64>, Value)> {
    let body = body.map(|b| b.to_string());
    match exchange(
        addr,
        method,
        path,
        &[],
        body.as_deref(),
        content_type,
        timeout,
    ) {
        Exchange::Answered(answer) => {
            let etag = answer
                .header("etag")
                .and_then(|value| value.trim_matches('"').parse().ok());
            Ok((answer.status, etag, answer.body))
        }
        Exchange::NotSent(error) | Exchange::Lost(error) => Err(error),
    }
}

/// What became of one HTTP exchange.
pub(crate) enum Exchange {
    /// A whole answer came back.
    Answered(Answer),
    /// No connection was made: the request reached no node.
    NotSent(std::io::Error),
    /// The connection broke, or the timeout passed, once the request may
    /// have been sent: it may have taken effect.
    Lost(std::io::Error),
}

/// A whole answer: status, headers and JSON body (`null` if empty).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Value,
}

impl Answer {
    /// The value of the header `name` (any case), trimmed.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body's `error.code`, if it has one.
    pub(crate) fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// One HTTP/1.1 request with extra `headers` and `timeout` for the whole
/// exchange, telling a request that reached no node from one whose answer
/// was lost.
pub(crate) fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    content_type: &str,
    timeout: Duration,
) -> Exchange {
    let socket: std::net::SocketAddr = match addr.parse() {
        Ok(socket) => socket,
        Err(error) => return Exchange::NotSent(std::io::Error::other(error)),
    };
    let mut stream = match TcpStream::connect_timeout(&socket, Duration::from_secs(1)) {
        Ok(stream) => stream,
        Err(error) => return Exchange::NotSent(error),
    };
    match converse(
        &mut stream,
        method,
        path,
        headers,
        body,
        content_type,
        timeout,
    ) {
        Ok(answer) => Exchange::Answered(answer),
        Err(error) => Exchange::Lost(error),
    }
}

fn converse(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    content_type: &str,
    timeout: Duration,
) -> std::io::Result<Answer> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or_default();
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response).into_owned();
    let bad = || std::io::Error::other(format!("malformed response {response:?}"));
    let status = response
        .get(9..12)
        .ok_or_else(bad)?
        .parse()
        .map_err(|_| bad())?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    let chunked = headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked")
    });
    let text = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|_| bad())?
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Waits until the shards are spread over `nodes` as promised, or panics
/// after `within`. Returns how long it took.
pub(crate) fn wait_balanced(cluster: &Cluster, nodes: &[&Node], within: Duration) -> Duration {
    let start = Instant::now();
    let shards = cluster.shards as usize;
    let cap = shards.div_ceil(nodes.len()) + 1;
    let mut last = String::new();
    while start.elapsed() < within {
        let mut union = BTreeSet::new();
        let mut ok = true;
        let mut counts = Vec::new();
        for node in nodes {
            match owned_shards(&node.addr) {
                Some(owned) => {
                    counts.push(owned.len());
                    if owned.len() > cap {
                        ok = false;
                    }
                    for shard in owned {
                        if !union.insert(shard) {
                            ok = false; // two nodes claim one shard
                        }
                    }
                }
                None => ok = false,
            }
        }
        let rows = cluster.lease_rows();
        let live: BTreeSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let db_ok = rows.len() == shards
            && rows
                .iter()
                .all(|(_, owner, live_lease)| *live_lease && live.contains(owner.as_str()));
        if ok && db_ok && union.len() == shards {
            return start.elapsed();
        }
        last = format!(
            "counts {counts:?}, {} of {shards} claimed, leases ok: {db_ok}",
            union.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "shards not balanced over {} nodes within {within:?}: {last}",
        nodes.len()
    );
}

/// The shards a node says it owns.
pub(crate) fn owned_shards(addr: &str) -> Option<Vec<u32>> {
    let (status, body) = call(addr, "GET", "/v1/cluster", None, Duration::from_secs(2)).ok()?;
    if status != 200 {
        return None;
    }
    body["owned"]
        .as_array()?
        .iter()
        .map(|s| s.as_u64().map(|s| s as u32))
        .collect()
}

/// A small deterministic generator.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What the writers were told, per tenant.
#[derive(Default)]
struct Log {
    /// (revision, value of `/n`, when acknowledged), in order.
    acked: Vec<(u64, u64, Instant)>,
    /// A write of this value was sent and its outcome is unknown.
    uncertain: Option<u64>,
}

/// The writers' and readers' records.
pub(crate) struct Load {
    logs: BTreeMap<String, Mutex<Log>>,
    /// Highest acknowledged revision per tenant, for the readers.
    floors: BTreeMap<String, AtomicU64>,
    stale_reads: AtomicU64,
    reads: AtomicU64,
    reused: AtomicU64,
    /// 500s: a journal failure, never expected here.
    internal: AtomicU64,
}

/// What [`Load::verify`] found.
pub(crate) struct Report {
    pub(crate) acknowledged: usize,
    pub(crate) lost: usize,
    pub(crate) stale_reads: u64,
    pub(crate) reads: u64,
    pub(crate) reused: u64,
    pub(crate) checked: usize,
    pub(crate) internal: u64,
}

fn pick(addresses: &Mutex<Vec<String>>, rng: &mut Rng) -> Option<String> {
    let addresses = addresses.lock().unwrap();
    if addresses.is_empty() {
        return None;
    }
    Some(addresses[rng.below(addresses.len() as u64) as usize].clone())
}

/// The head of `tenant` through the node at `addr`: its revision (the
/// ETag) and state, or `None` if the node did not answer 200.
fn read_state(addr: &str, tenant: &str) -> Option<(u64, Value)> {
    let path = format!("/v1/tenants/{tenant}/state");
    match call_full(
        addr,
        "GET",
        &path,
        None,
        "application/json",
        Duration::from_secs(5),
    ) {
        Ok((200, Some(revision), state)) => Some((revision, state)),
        _ => None,
    }
}

/// Reads `/n` and the head revision through any node, retrying until one
/// answers.
fn head(addresses: &Mutex<Vec<String>>, rng: &mut Rng, tenant: &str) -> (u64, u64) {
    for _ in 0..2000 {
        if let Some(addr) = pick(addresses, rng) {
            if let Some((revision, state)) = read_state(&addr, tenant) {
                return (state["n"].as_u64().unwrap(), revision);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("tenant {tenant} unreadable for 100 s");
}

impl Load {
    pub(crate) fn new(tenants: &[String]) -> Load {
        Load {
            logs: tenants
                .iter()
                .map(|t| (t.clone(), Mutex::default()))
                .collect(),
            floors: tenants
                .iter()
                .map(|t| (t.clone(), AtomicU64::new(0)))
                .collect(),
            stale_reads: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            internal: AtomicU64::new(0),
        }
    }

    /// One writer: `/n` from k to k + 1 on each tenant in turn, guarded by
    /// a `test` of k, through a random node. An unknown outcome is settled
    /// by the next attempt (its `test` fails if the write took effect) and
    /// a read of the head.
    pub(crate) fn write(
        &self,
        seed: usize,
        tenants: &[String],
        addresses: &Mutex<Vec<String>>,
        stop: &AtomicBool,
    ) {
        let mut rng = Rng::new(seed as u64 * 7919 + 1);
        let mut values: Vec<u64> = vec![0; tenants.len()];
        while !stop.load(Ordering::Relaxed) {
            for (i, tenant) in tenants.iter().enumerate() {
                let Some(addr) = pick(addresses, &mut rng) else {
                    continue;
                };
                let k = values[i];
                let patch = json!([
                    {"op": "test", "path": "/n", "value": k},
                    {"op": "replace", "path": "/n", "value": k + 1},
                ]);
                let path = format!("/v1/tenants/{tenant}/state");
                let answer = call_full(
                    &addr,
                    "PATCH",
                    &path,
                    Some(patch),
                    "application/json-patch+json",
                    Duration::from_secs(20),
                );
                let mut log = self.logs[tenant].lock().unwrap();
                match answer {
                    Ok((200, _, body)) => {
                        let revision = body["revision"].as_u64().unwrap();
                        if log.acked.last().is_some_and(|(r, _, _)| *r >= revision) {
                            self.reused.fetch_add(1, Ordering::Relaxed);
                        }
                        log.acked.push((revision, k + 1, Instant::now()));
                        log.uncertain = None;
                        self.floors[tenant].fetch_max(revision, Ordering::Relaxed);
                        values[i] = k + 1;
                    }
                    Ok((422, _, _)) => {
                        // An earlier write of unknown outcome took effect.
                        drop(log);
                        let (n, _) = head(addresses, &mut rng, tenant);
                        values[i] = n;
                    }
                    Ok((503, _, _)) => log.uncertain = Some(k + 1),
                    Ok((500, _, body)) => {
                        eprintln!("write to {tenant} via {addr}: 500 {body}");
                        self.internal.fetch_add(1, Ordering::Relaxed);
                        log.uncertain = Some(k + 1);
                    }
                    Ok((status, _, body)) => panic!("write to {tenant}: {status} {body}"),
                    Err(_) => log.uncertain = Some(k + 1),
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// One reader: the head of a random tenant through a random node must
    /// not be older than what was acknowledged before the read was sent.
    pub(crate) fn read(&self, seed: usize, addresses: &Mutex<Vec<String>>, stop: &AtomicBool) {
        let mut rng = Rng::new(seed as u64 * 104_729 + 3);
        let tenants: Vec<&String> = self.floors.keys().collect();
        while !stop.load(Ordering::Relaxed) {
            let tenant = tenants[rng.below(tenants.len() as u64) as usize];
            let Some(addr) = pick(addresses, &mut rng) else {
                continue;
            };
            let floor = self.floors[tenant].load(Ordering::Relaxed);
            if let Some((revision, _)) = read_state(&addr, tenant) {
                self.reads.fetch_add(1, Ordering::Relaxed);
                if revision < floor {
                    self.stale_reads.fetch_add(1, Ordering::Relaxed);
                    eprintln!("stale read of {tenant} on {addr}: revision {revision} < acknowledged {floor}");
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether `tenant` had a write acknowledged after `since`.
    pub(crate) fn acked_since(&self, tenant: &str, since: Instant) -> bool {
        self.logs[tenant]
            .lock()
            .unwrap()
            .acked
            .last()
            .is_some_and(|(_, _, at)| *at > since)
    }

    /// How long after `since` the first acknowledgement of `tenant` came.
    pub(crate) fn first_ack_after(&self, tenant: &str, since: Instant) -> Duration {
        let log = self.logs[tenant].lock().unwrap();
        log.acked
            .iter()
            .find(|(_, _, at)| *at > since)
            .map(|(_, _, at)| at.duration_since(since))
            .unwrap_or_default()
    }

    /// Every acknowledged write against the final state: the head holds the
    /// last acknowledged value (or the one uncertain write after it), and
    /// every acknowledged revision still in the history window reads back
    /// with the value it was acknowledged with.
    pub(crate) fn verify(&self, addr: &str) -> Report {
        let addresses = Mutex::new(vec![addr.to_owned()]);
        let mut rng = Rng::new(99);
        let mut report = Report {
            acknowledged: 0,
            lost: 0,
            stale_reads: self.stale_reads.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            checked: 0,
            internal: self.internal.load(Ordering::Relaxed),
        };
        for (tenant, log) in &self.logs {
            let log = log.lock().unwrap();
            report.acknowledged += log.acked.len();
            let (n, head_revision) = head(&addresses, &mut rng, tenant);
            let last = log.acked.last().map_or(0, |(_, k, _)| *k);
            let ok = n == last || log.uncertain == Some(n);
            if !ok {
                eprintln!(
                    "{tenant}: head /n = {n}, last acknowledged {last}, uncertain {:?}",
                    log.uncertain
                );
                report.lost += 1;
            }
            for (revision, k, _) in &log.acked {
                // The window keeps the newest 1000 revisions.
                if revision + 900 < head_revision {
                    continue;
                }
                let path = format!("/v1/tenants/{tenant}/state?revision={revision}");
                let (status, state) =
                    call(addr, "GET", &path, None, Duration::from_secs(5)).unwrap();
                report.checked += 1;
                if status != 200 || state["n"].as_u64() != Some(*k) {
                    eprintln!("{tenant}@{revision}: {status} {state}, acknowledged n = {k}");
                    report.lost += 1;
                }
            }
        }
        report
    }
}
