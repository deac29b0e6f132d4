//! Cluster benchmarks on a throwaway PostgreSQL (started from the installed
//! binaries; skipped loudly without them, failing under
//! `REWIND_REQUIRE_POSTGRES=1`), each row side by side with its baseline in
//! the same run, rounds interleaved, medians reported:
//!
//! - `journal`: `PgJournal` durable appends (one record per append, awaited)
//!   against raw PostgreSQL inserts of the same row size, one autocommit
//!   `INSERT` per write on a connection per writer, at 16 and 256 writers.
//!   Goal: >= 0.7x.
//! - `nodes`: HTTP writes to 64 tenants spread over 3 `rewind serve
//!   --postgres` nodes against all to 1 node. On one 2-core machine the
//!   three nodes share the cores and two thirds of the requests are
//!   forwarded: this measures the overhead of the cluster, not a speedup.
//!
//! `cargo bench -p rewind-server --bench cluster` (`-- --quick` for short
//! rounds).

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{call_full, Cluster, Node};
use rewind_core::{TenantId, Timestamp};
use rewind_runtime::{Entry, EntryKind, Journal, JournalSeq};
use rewind_store::{PgOptions, PgStore};
use serde_json::json;

/// Bytes of every record's payload, in both variants.
const PAYLOAD: usize = 256;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Refuses a figure that cannot be right.
fn checked(rate: f64, what: &str) -> f64 {
    assert!(
        rate.is_finite() && rate > 0.0,
        "{what}: impossible rate {rate}"
    );
    rate
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let run = |row: &str| only.is_empty() || only.iter().any(|o| o == row);
    let (round, rounds) = if quick {
        (Duration::from_secs(2), 1)
    } else {
        (Duration::from_secs(8), 3)
    };
    if run("journal") {
        let Some(cluster) = Cluster::new("bench_journal", 256) else {
            return;
        };
        journal_row(&cluster.url, round, rounds);
    }
    if run("nodes") {
        let (Some(three), Some(one)) = (
            Cluster::new("bench_nodes3", 256),
            Cluster::new("bench_nodes1", 256),
        ) else {
            return;
        };
        nodes_row(&three, &one, round, rounds);
    }
}

fn journal_row(url: &str, round: Duration, rounds: usize) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = {
        let url = url.to_owned();
        std::thread::spawn(move || PgStore::connect(&url, PgOptions::default()))
            .join()
            .unwrap()
            .expect("connect the journal")
    };
    tokio.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS bench_raw (tenant TEXT NOT NULL, seq BIGINT NOT NULL, \
                 at_us BIGINT NOT NULL, kind TEXT NOT NULL, payload BYTEA NOT NULL, \
                 checksum BIGINT NOT NULL, PRIMARY KEY (tenant, seq))",
            )
            .await
            .unwrap();
    });
    println!("journal: PgJournal durable appends vs raw PostgreSQL INSERTs ({PAYLOAD} B rows, one per write, awaited)");
    println!(
        "{:>8} {:>16} {:>16} {:>7}  goal",
        "writers", "PgJournal/s", "raw INSERT/s", "ratio"
    );
    let mut next_seq = std::collections::HashMap::<String, u64>::new();
    for writers in [16usize, 256] {
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        let (mut appends, commits) = (0.0, store.commits());
        for r in 0..rounds {
            let rate = tokio.block_on(journal_round(&store, writers, round, &mut next_seq));
            appends += rate * round.as_secs_f64();
            ours.push(rate);
            raw.push(tokio.block_on(raw_round(url, writers, round, r)));
        }
        let commits = store.commits() - commits;
        let (ours, raw) = (
            checked(median(ours), "PgJournal"),
            checked(median(raw), "raw"),
        );
        let ratio = ours / raw;
        println!(
            "{writers:>8} {ours:>16.0} {raw:>16.0} {ratio:>6.2}x  >= 0.7x: {}  ({:.1} appends per commit)",
            if ratio >= 0.7 { "met" } else { "MISSED" },
            appends / commits.max(1) as f64
        );
    }
    store.close().unwrap();
}

async fn journal_round(
    store: &PgStore,
    writers: usize,
    round: Duration,
    next_seq: &mut std::collections::HashMap<String, u64>,
) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let name = format!("bench_{writers}_{w}");
        let start = *next_seq.entry(name.clone()).or_insert(0);
        let journal = store.journal();
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let tenant = TenantId::new(&name).unwrap();
            let mut seq = start;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let entry = Entry {
                    tenant: tenant.clone(),
                    seq: JournalSeq::new(seq),
                    at: Timestamp::now(),
                    kind: EntryKind::Op,
                    payload: vec![b'x'; PAYLOAD],
                };
                journal.append(vec![entry]).await.expect("append");
                done.fetch_add(1, Ordering::Relaxed);
            }
            (name, seq)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(round).await;
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for task in tasks {
        let (name, seq) = task.await.unwrap();
        next_seq.insert(name, seq);
    }
    count as f64 / elapsed.as_secs_f64()
}

async fn raw_round(url: &str, writers: usize, round: Duration, r: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..writers {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("a raw connection");
        tokio::spawn(connection);
        clients.push(client);
    }
    let mut tasks = Vec::new();
    for (w, client) in clients.into_iter().enumerate() {
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let tenant = format!("raw_{writers}_{r}_{w}");
            let insert = client
                .prepare(
                    "INSERT INTO bench_raw (tenant, seq, at_us, kind, payload, checksum) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await
                .unwrap();
            let mut seq: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let payload = vec![b'x'; PAYLOAD];
                let at = Timestamp::now().as_unix_micros();
                client
                    .execute(&insert, &[&tenant, &seq, &at, &"op", &payload, &seq])
                    .await
                    .expect("insert");
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(round).await;
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for task in tasks {
        task.await.unwrap();
    }
    count as f64 / elapsed.as_secs_f64()
}

/// Starts `ids` on `cluster`, waits for the shards to spread, creates the
/// tenants through the first node.
fn start_nodes(cluster: &Cluster, ids: &[&str], tenants: &[String]) -> Vec<Node> {
    let nodes: Vec<Node> = ids
        .iter()
        .map(|id| Node::start(cluster, id, "10s"))
        .collect();
    cluster_support::wait_balanced(
        cluster,
        &nodes.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    for tenant in tenants {
        let (status, _, body) = call_full(
            &nodes[0].addr,
            "PUT",
            &format!("/v1/tenants/{tenant}"),
            Some(json!({"state": {"n": 0}})),
            "application/json",
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    nodes
}

/// A cluster of three nodes, requests spread over them, against a cluster
/// of one node (its own database) that owns every shard; both stay up, the
/// rounds alternate.
fn nodes_row(three: &Cluster, one: &Cluster, round: Duration, rounds: usize) {
    let tenants: Vec<String> = (0..64).map(|i| format!("bench_{i:02}")).collect();
    let spread = start_nodes(three, &["bench-1", "bench-2", "bench-3"], &tenants);
    let alone = start_nodes(one, &["alone"], &tenants);
    let spread_addrs: Vec<String> = spread.iter().map(|n| n.addr.clone()).collect();
    let alone_addrs = vec![alone[0].addr.clone()];
    println!(
        "nodes: HTTP PATCH to 64 tenants, 32 client threads; 3 nodes (2 of 3 requests \
         forwarded) vs a 1-node cluster (one 2-core machine: overhead, not speedup)"
    );
    println!(
        "{:>10} {:>12} {:>12} {:>7}",
        "", "3 nodes/s", "1 node/s", "ratio"
    );
    let (mut spread_rates, mut alone_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        spread_rates.push(http_round(&spread_addrs, &tenants, round));
        alone_rates.push(http_round(&alone_addrs, &tenants, round));
    }
    let (spread_rate, alone_rate) = (
        checked(median(spread_rates), "3 nodes"),
        checked(median(alone_rates), "1 node"),
    );
    println!(
        "{:>10} {spread_rate:>12.0} {alone_rate:>12.0} {:>6.2}x",
        "writes",
        spread_rate / alone_rate
    );
    drop((spread, alone));
}

/// Writes per second for `round`: 32 threads, each PATCHing its tenants
/// in turn through the nodes in turn.
fn http_round(addrs: &[String], tenants: &[String], round: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let addrs = Arc::new(Mutex::new(addrs.to_vec()));
    let threads: Vec<_> = (0..32)
        .map(|t| {
            let (done, failed, stop, addrs) =
                (done.clone(), failed.clone(), stop.clone(), addrs.clone());
            let mine: Vec<String> = tenants.iter().skip(t % 64).step_by(32).cloned().collect();
            std::thread::spawn(move || {
                let addrs = addrs.lock().unwrap().clone();
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    for tenant in &mine {
                        let addr = &addrs[i % addrs.len()];
                        i += 1;
                        let patch = json!([{"op": "replace", "path": "/n", "value": i}]);
                        match call_full(
                            addr,
                            "PATCH",
                            &format!("/v1/tenants/{tenant}/state"),
                            Some(patch),
                            "application/json-patch+json",
                            Duration::from_secs(10),
                        ) {
                            Ok((200, _, _)) => done.fetch_add(1, Ordering::Relaxed),
                            Ok((status, _, body)) => {
                                eprintln!("write to {tenant} via {addr}: {status} {body}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(error) => {
                                eprintln!("write to {tenant} via {addr}: {error}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(round);
    stop.store(true, Ordering::Relaxed);
    let count = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    for thread in threads {
        thread.join().unwrap();
    }
    let failed = failed.load(Ordering::Relaxed);
    assert!(
        failed * 100 <= count.max(1),
        "{failed} of {count} writes failed"
    );
    count as f64 / elapsed.as_secs_f64()
}
