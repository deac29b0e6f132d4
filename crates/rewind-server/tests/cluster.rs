//! Cluster mode end to end: `rewind serve --postgres` processes on one
//! throwaway PostgreSQL (started by the test from the installed binaries;
//! skipped loudly without them, failing under `REWIND_REQUIRE_POSTGRES=1`).
//!
//! - `shards_spread_evenly_as_nodes_join_and_leave`: after every join, leave
//!   (SIGTERM) and kill -9, every shard has exactly one owner and no node
//!   owns more than `ceil(shards / nodes) + 1`.
//! - `a_paused_owner_is_fenced`: SIGSTOP an owner past its lease, another
//!   node takes over and writes, SIGCONT: the stale node acknowledges
//!   nothing, and the final state holds exactly the acknowledged writes.
//! - `failover_under_load_loses_nothing`: 3 nodes, writers and readers
//!   through all of them on 64 tenants, the owner of the busiest shards
//!   killed -9 at random moments (20 times, `REWIND_CLUSTER_KILLS`) and
//!   restarted: no acknowledged write lost, no stale read, revisions never
//!   reused.
//! - `a_forwarded_watch_follows_the_owner`: a watch through a non-owner
//!   carries every revision once while the shard moves (graceful leave,
//!   rejoin, kill -9).
//! - `serve_says_what_is_wrong_with_postgres`: unreachable server, shard
//!   count mismatch.
//! - `busy_writes_and_lease_renewals_do_not_deadlock`: the renewal and the
//!   journal's fence lock lease rows in one order.
//! - `any_node_lists_and_counts_the_whole_cluster`: paged listing and the
//!   count cover every shard.
//! - `the_cluster_rides_out_a_postgres_restart`: PostgreSQL down past the
//!   lease, then back: nothing acknowledged lost, every shard owned again.
//! - `metrics_say_what_a_node_owns_takes_loses_and_forwards`: the cluster
//!   series on `/metrics`.
//! - `a_deployment_resumes_on_the_node_that_takes_its_shard_over`: the
//!   owner of a tenant with a deployment in its window killed -9; the node
//!   that takes the shard over resumes the monitoring and rolls back when
//!   the check fails there.

mod cluster_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster_support::{call, owned_shards, wait_balanced, Cluster, Node};
use serde_json::json;

/// Nodes `node-a` and `node-b` with `lease`, once the shards are spread
/// over them.
fn two_nodes(cluster: &Cluster, lease: &str) -> (Node, Node) {
    let a = Node::start(cluster, "node-a", lease);
    let b = Node::start(cluster, "node-b", lease);
    wait_balanced(cluster, &[&a, &b], Duration::from_secs(60));
    (a, b)
}

/// The first `<prefix>_<n>` whose shard `node` owns now.
fn tenant_owned_by(cluster: &Cluster, node: &Node, prefix: &str) -> String {
    let owned = owned_shards(&node.addr).unwrap();
    (0..)
        .map(|i| format!("{prefix}_{i}"))
        .find(|t| owned.contains(&cluster.shard_of(t)))
        .unwrap()
}

#[test]
fn shards_spread_evenly_as_nodes_join_and_leave() {
    let Some(cluster) = Cluster::new("distribution", 256) else {
        return;
    };
    let lease = "2s";
    let within = Duration::from_secs(60);
    let mut a = Node::start(&cluster, "node-a", lease);
    wait_balanced(&cluster, &[&a], within);
    let mut b = Node::start(&cluster, "node-b", lease);
    let mut c = Node::start(&cluster, "node-c", lease);
    let joined = wait_balanced(&cluster, &[&a, &b, &c], within);
    // A graceful leave hands over at once, without waiting for a lease.
    b.terminate();
    let left = wait_balanced(&cluster, &[&a, &c], within);
    c.kill();
    let killed = wait_balanced(&cluster, &[&a], within);
    b.restart(&cluster);
    c.restart(&cluster);
    let rejoined = wait_balanced(&cluster, &[&a, &b, &c], within);
    let d = Node::start(&cluster, "node-d", lease);
    let fourth = wait_balanced(&cluster, &[&a, &b, &c, &d], within);
    println!(
        "shard distribution: balanced {joined:?} after 2 joins, {left:?} after a leave, \
         {killed:?} after a kill -9 (lease {lease}), {rejoined:?} after 2 rejoins, {fourth:?} \
         after a 4th node"
    );
    a.terminate();
}

#[test]
fn a_paused_owner_is_fenced() {
    let Some(cluster) = Cluster::new("fencing", 16) else {
        return;
    };
    let lease = "3s";
    let (a, b) = two_nodes(&cluster, lease);
    // A tenant on a shard node-a owns.
    let tenant = tenant_owned_by(&cluster, &a, "fenced");
    let (status, _) = call(
        &b.addr,
        "PUT",
        &format!("/v1/tenants/{tenant}"),
        Some(json!({"state": {}})),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(status, 201);

    // Writers straight at node-a: one key per write, so the final state
    // says exactly which writes took effect.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeMap::<String, (String, u16)>::new()));
    let unknown = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let seq = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let unexpected = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, acknowledged, unknown, seq, refused, unexpected) = (
                stop.clone(),
                acknowledged.clone(),
                unknown.clone(),
                seq.clone(),
                refused.clone(),
                unexpected.clone(),
            );
            let (addr, tenant) = (a.addr.clone(), tenant.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("k{}_{w}", seq.fetch_add(1, Ordering::Relaxed));
                    let patch = json!([{"op": "add", "path": format!("/{key}"), "value": w}]);
                    match call(
                        &addr,
                        "PATCH",
                        &format!("/v1/tenants/{tenant}/state"),
                        Some(patch),
                        Duration::from_secs(30),
                    ) {
                        Ok((200, _)) => {
                            acknowledged
                                .lock()
                                .unwrap()
                                .insert(key, ("node-a".into(), 200));
                        }
                        Ok((503, _)) => {
                            // Refused: nothing stored.
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            // Any other answer is a failure of the test,
                            // reported once the writers are done.
                            eprintln!("unexpected answer {status} {body} through node-a");
                            unexpected.fetch_add(1, Ordering::Relaxed);
                            unknown.lock().unwrap().insert(key);
                        }
                        Err(_) => {
                            unknown.lock().unwrap().insert(key);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    a.pause();
    let paused_at = Instant::now();
    let acked_before_pause = acknowledged.lock().unwrap().len();
    // node-b takes the shard over once the lease is gone.
    let shard = cluster.shard_of(&tenant);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !owned_shards(&b.addr).unwrap().contains(&shard) {
        assert!(
            Instant::now() < deadline,
            "node-b never took shard {shard} over"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let takeover = paused_at.elapsed();
    // The new owner writes.
    let mut b_keys = Vec::new();
    for i in 0..20 {
        let key = format!("b{i}");
        let patch = json!([{"op": "add", "path": format!("/{key}"), "value": i}]);
        let (status, body) = call(
            &b.addr,
            "PATCH",
            &format!("/v1/tenants/{tenant}/state"),
            Some(patch),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        b_keys.push(key);
    }
    let before_resume = acknowledged.lock().unwrap().len();
    a.resume();
    // Whatever node-a had in flight now finishes: refused, not acknowledged
    // on a stale lease.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let acked_by_a_after_resume = acknowledged.lock().unwrap().len() - before_resume;

    // The final state, through either node, once the shards settle.
    wait_balanced(&cluster, &[&a, &b], Duration::from_secs(60));
    let (status, state) = call(
        &b.addr,
        "GET",
        &format!("/v1/tenants/{tenant}/state"),
        None,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(status, 200);
    let keys: BTreeSet<String> = state.as_object().unwrap().keys().cloned().collect();
    let acknowledged = acknowledged.lock().unwrap();
    let unknown = unknown.lock().unwrap();
    for key in acknowledged.keys().chain(b_keys.iter()) {
        assert!(keys.contains(key), "acknowledged write {key} lost");
    }
    for key in &keys {
        assert!(
            acknowledged.contains_key(key) || b_keys.contains(key) || unknown.contains(key),
            "{key} is in the state but was never acknowledged"
        );
    }
    println!(
        "fencing: {acked_before_pause} writes acknowledged by node-a before SIGSTOP, \
         takeover after {takeover:?} (lease {lease}), {} by node-b; after SIGCONT node-a \
         refused {} (503, nothing stored) and {acked_by_a_after_resume} were acknowledged \
         through it (forwarded to the owner, or served once it took the shard back with a new \
         epoch); {} of unknown outcome; final state = the acknowledged writes",
        b_keys.len(),
        refused.load(Ordering::Relaxed),
        unknown.len(),
    );
    assert_eq!(
        unexpected.load(Ordering::Relaxed),
        0,
        "answers other than 200 and 503 through node-a (printed above)"
    );
    // Written to the old owner after its lease and acknowledged is the
    // failure this test exists for: everything node-a acknowledged after
    // the pause must have been committed before the takeover, and is in
    // the final state (checked above).
}

#[test]
fn failover_under_load_loses_nothing() {
    let Some(cluster) = Cluster::new("failover", 256) else {
        return;
    };
    let kills: usize = std::env::var("REWIND_CLUSTER_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(20);
    let nodes: Vec<Node> = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|id| Node::start(&cluster, id, "10s"))
        .collect();
    wait_balanced(
        &cluster,
        &nodes.iter().collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    let nodes = Arc::new(Mutex::new(nodes));
    let addrs = || -> Vec<String> {
        nodes
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.is_up())
            .map(|n| n.addr.clone())
            .collect()
    };
    let tenants: Vec<String> = (0..64).map(|i| format!("load_{i:02}")).collect();
    for tenant in &tenants {
        let addr = addrs()[0].clone();
        let (status, body) = call(
            &addr,
            "PUT",
            &format!("/v1/tenants/{tenant}"),
            Some(json!({"state": {"n": 0}})),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }

    let load = Arc::new(cluster_support::Load::new(&tenants));
    let stop = Arc::new(AtomicBool::new(false));
    let addresses = Arc::new(Mutex::new(addrs()));
    let mut workers = Vec::new();
    for (w, chunk) in tenants.chunks(4).enumerate() {
        let (load, stop, addresses) = (load.clone(), stop.clone(), addresses.clone());
        let chunk = chunk.to_vec();
        workers.push(std::thread::spawn(move || {
            load.write(w, &chunk, &addresses, &stop)
        }));
    }
    for r in 0..4 {
        let (load, stop, addresses) = (load.clone(), stop.clone(), addresses.clone());
        workers.push(std::thread::spawn(move || load.read(r, &addresses, &stop)));
    }

    let mut failovers = Vec::new();
    let mut rng = cluster_support::Rng::new(0x5eed);
    for kill in 0..kills {
        std::thread::sleep(Duration::from_millis(1000 + rng.below(2000)));
        // The owner of the most of the tenants' shards.
        let (victim, shards) = {
            let nodes = nodes.lock().unwrap();
            let mut best = (0, BTreeSet::new());
            let mut best_count = 0;
            for (i, node) in nodes.iter().enumerate() {
                let owned: BTreeSet<u32> = owned_shards(&node.addr)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let count = tenants
                    .iter()
                    .filter(|t| owned.contains(&cluster.shard_of(t)))
                    .count();
                if count > best_count {
                    best_count = count;
                    best = (i, owned);
                }
            }
            best
        };
        let affected: Vec<String> = tenants
            .iter()
            .filter(|t| shards.contains(&cluster.shard_of(t)))
            .cloned()
            .collect();
        let killed_at = Instant::now();
        nodes.lock().unwrap()[victim].kill();
        *addresses.lock().unwrap() = addrs();
        // Failover: until every affected tenant had a write acknowledged
        // after the kill.
        let deadline = killed_at + Duration::from_secs(90);
        loop {
            let done = affected.iter().all(|t| load.acked_since(t, killed_at));
            if done {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kill {kill}: tenants not writable 90 s after the kill"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = affected
            .iter()
            .map(|t| load.first_ack_after(t, killed_at))
            .max()
            .unwrap_or_default();
        failovers.push(took.as_secs_f64());
        nodes.lock().unwrap()[victim].restart(&cluster);
        *addresses.lock().unwrap() = addrs();
        let guard = nodes.lock().unwrap();
        wait_balanced(
            &cluster,
            &guard.iter().collect::<Vec<_>>(),
            Duration::from_secs(90),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let addr = addrs()[0].clone();
    let report = load.verify(&addr);
    failovers.sort_by(f64::total_cmp);
    let p50 = failovers.get(failovers.len() / 2).copied().unwrap_or(0.0);
    let max = failovers.last().copied().unwrap_or(0.0);
    println!(
        "cluster failover: {kills} kills, {} acknowledged writes, {} lost, {} stale reads, \
         failover p50 {p50:.1} s, max {max:.1} s (goal: max <= 15 s with the 10 s lease; \
         {} acknowledged revisions re-read at their revision, {} reads)",
        report.acknowledged, report.lost, report.stale_reads, report.checked, report.reads
    );
    assert_eq!(report.lost, 0, "acknowledged writes lost");
    assert_eq!(report.stale_reads, 0, "stale reads");
    assert_eq!(report.reused, 0, "revisions reused");
    assert_eq!(
        report.internal, 0,
        "writes failed with 500 (a journal failure)"
    );
    assert!(
        report.acknowledged > kills,
        "too few writes to say anything"
    );
    // A hang, not the goal: the figure above is what the goal is read from.
    assert!(max < 60.0, "a failover took {max} s");
}

/// Reads a forwarded watch stream (chunked SSE) on a thread, collecting the
/// event ids until the connection ends.
fn watch_ids(addr: &str, tenant: &str) -> (Arc<Mutex<Vec<u64>>>, std::thread::JoinHandle<()>) {
    let ids = Arc::new(Mutex::new(Vec::new()));
    let collected = ids.clone();
    let reader = read_sse(addr, tenant, move |line| {
        if let Some(id) = line.strip_prefix("id:") {
            collected.lock().unwrap().push(id.trim().parse().unwrap());
        }
    });
    (ids, reader)
}

/// Reads a watch stream (chunked SSE) on a thread, giving each SSE line to
/// `on_line` until the connection ends.
fn read_sse(
    addr: &str,
    tenant: &str,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /v1/tenants/{tenant}/watch HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        // The head.
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        // Chunks, and the SSE lines inside them.
        let mut pending = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let Ok(size) = usize::from_str_radix(line.trim(), 16) else {
                return;
            };
            if size == 0 {
                return;
            }
            let mut chunk = vec![0; size + 2];
            if reader.read_exact(&mut chunk).is_err() {
                return;
            }
            pending.push_str(&String::from_utf8_lossy(&chunk[..size]));
            while let Some(end) = pending.find('\n') {
                let sse: String = pending.drain(..=end).collect();
                on_line(sse.trim_end());
            }
        }
    })
}

/// A watch forwarded to the owner ends after the `deleted` event: the
/// forwarding node does not follow it into a tenant created again under
/// the same name (whose revisions would pass for the deleted one's).
#[test]
fn a_forwarded_watch_ends_when_its_tenant_is_deleted() {
    let Some(cluster) = Cluster::new("watch_deleted", 16) else {
        return;
    };
    let (a, b) = two_nodes(&cluster, "2s");
    let tenant = tenant_owned_by(&cluster, &a, "watched");
    let path = format!("/v1/tenants/{tenant}");
    let ten = Duration::from_secs(10);
    assert_eq!(
        call(&b.addr, "PUT", &path, Some(json!({})), ten).unwrap().0,
        201
    );
    let events = Arc::new(Mutex::new(Vec::new()));
    let collected = events.clone();
    let (ended_tx, ended) = std::sync::mpsc::channel();
    let reader = read_sse(&b.addr, &tenant, move |line| {
        if let Some(event) = line.strip_prefix("event:") {
            collected.lock().unwrap().push(event.trim().to_owned());
        }
    });
    std::thread::spawn(move || {
        let _ = reader.join();
        let _ = ended_tx.send(());
    });
    std::thread::sleep(Duration::from_millis(300));
    let patch = json!([{"op": "add", "path": "/n", "value": 1}]);
    let state = format!("{path}/state");
    assert_eq!(
        call(&b.addr, "PATCH", &state, Some(patch.clone()), ten)
            .unwrap()
            .0,
        200
    );
    assert_eq!(call(&b.addr, "DELETE", &path, None, ten).unwrap().0, 204);
    assert_eq!(
        call(&b.addr, "PUT", &path, Some(json!({})), ten).unwrap().0,
        201
    );
    assert_eq!(
        call(&b.addr, "PATCH", &state, Some(patch), ten).unwrap().0,
        200
    );
    ended
        .recv_timeout(Duration::from_secs(30))
        .expect("the forwarded stream ends after `deleted`");
    assert_eq!(*events.lock().unwrap(), ["revision", "deleted"]);
    drop((a, b));
}

#[test]
fn a_forwarded_watch_follows_the_owner() {
    let Some(cluster) = Cluster::new("watch", 16) else {
        return;
    };
    let lease = "2s";
    let (mut a, b) = two_nodes(&cluster, lease);
    let tenant = tenant_owned_by(&cluster, &a, "watched");
    let path = format!("/v1/tenants/{tenant}");
    let ten = Duration::from_secs(10);
    assert_eq!(
        call(&b.addr, "PUT", &path, Some(json!({})), ten).unwrap().0,
        201
    );
    // Watched through node-b, which forwards to node-a.
    let (ids, reader) = watch_ids(&b.addr, &tenant);
    std::thread::sleep(Duration::from_millis(300));
    let mut revision = 0;
    let mut write = |node: &Node| {
        for _ in 0..3 {
            // A 503 says retry (after `Retry-After`): a write that lands in
            // a hand-over does, for at most 20 s.
            let deadline = Instant::now() + Duration::from_secs(20);
            let (status, body) = loop {
                let patch = json!([{"op": "add", "path": "/n", "value": revision}]);
                let answer = call(
                    &node.addr,
                    "PATCH",
                    &format!("{path}/state"),
                    Some(patch),
                    ten,
                )
                .unwrap();
                if answer.0 != 503 || Instant::now() > deadline {
                    break answer;
                }
                std::thread::sleep(Duration::from_millis(250));
            };
            assert_eq!(status, 200, "{body}");
            revision = body["revision"].as_u64().unwrap();
        }
    };
    write(&b);
    // node-a leaves: node-b takes the shard; the stream goes on from it.
    a.terminate();
    wait_balanced(&cluster, &[&b], Duration::from_secs(60));
    write(&b);
    // node-a comes back and gets its shards back; then dies.
    a.restart(&cluster);
    wait_balanced(&cluster, &[&a, &b], Duration::from_secs(60));
    write(&b);
    a.kill();
    wait_balanced(&cluster, &[&b], Duration::from_secs(60));
    write(&b);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.lock().unwrap().len() < 12 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = ids.lock().unwrap().clone();
    assert_eq!(
        seen,
        (1..=12).collect::<Vec<u64>>(),
        "the watch through node-b must carry every revision once, across two moves of the shard"
    );
    drop(b);
    let _ = reader.join();
}

/// `rewind serve --postgres` with a server that does not answer, or a
/// database that disagrees, exits at once saying what is wrong.
#[test]
fn serve_says_what_is_wrong_with_postgres() {
    let run = |url: &str, shards: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_rewind"))
            .args(["serve", "--listen", "127.0.0.1:0", "--postgres", url])
            .args(["--node-id", "n", "--shards", shards])
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // Nothing listens on port 1.
    let unreachable = run("postgres://rewind@127.0.0.1:1/rewind", "256");
    assert!(
        unreachable.contains("PostgreSQL at postgres://rewind@127.0.0.1:1/rewind is unreachable"),
        "{unreachable}"
    );
    let Some(cluster) = Cluster::new("mismatch", 64) else {
        return;
    };
    // Initialise the database with 64 shards, then start with 256.
    let node = Node::start(&cluster, "first", "2s");
    drop(node);
    let mismatch = run(&cluster.url, "256");
    assert!(
        mismatch.contains("64") && mismatch.contains("256"),
        "{mismatch}"
    );
}

/// The lease loop renews every lease of the node in one statement while
/// the journal's writer share-locks the lease rows of the shards it writes:
/// both lock in shard order, so a busy node renewing often never deadlocks
/// (a deadlock would fail writes with 500).
#[test]
fn busy_writes_and_lease_renewals_do_not_deadlock() {
    let Some(cluster) = Cluster::new("deadlock", 256) else {
        return;
    };
    let node = Node::start(&cluster, "busy", "1s");
    wait_balanced(&cluster, &[&node], Duration::from_secs(60));
    let tenants: Vec<String> = (0..64).map(|i| format!("busy_{i:02}")).collect();
    for tenant in &tenants {
        let path = format!("/v1/tenants/{tenant}");
        let (status, body) = call(
            &node.addr,
            "PUT",
            &path,
            Some(json!({})),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    // 500s are what a deadlock gives; 503s (a lease that lapsed while the
    // machine was starved of CPU: no owner for a moment) are not the point.
    let (ok, failed, lapsed) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let writers: Vec<_> = tenants
        .chunks(2)
        .map(|chunk| {
            let (chunk, addr) = (chunk.to_vec(), node.addr.clone());
            let (stop, ok, failed, lapsed) =
                (stop.clone(), ok.clone(), failed.clone(), lapsed.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    for tenant in &chunk {
                        i += 1;
                        let patch = json!([{"op": "add", "path": "/n", "value": i}]);
                        let path = format!("/v1/tenants/{tenant}/state");
                        match call(&addr, "PATCH", &path, Some(patch), Duration::from_secs(10)) {
                            Ok((200, _)) => ok.fetch_add(1, Ordering::Relaxed),
                            Ok((503, _)) => lapsed.fetch_add(1, Ordering::Relaxed),
                            Ok((status, body)) => {
                                eprintln!("{tenant}: {status} {body}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(error) => {
                                eprintln!("{tenant}: {error}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }
            })
        })
        .collect();
    // Renewals every third of a second, for 20 of them and more.
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    let (ok, failed, lapsed) = (
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        lapsed.load(Ordering::Relaxed),
    );
    println!(
        "busy node: {ok} writes, {failed} failed, {lapsed} found no owner (503), to 64 \
         tenants on 256 shards renewed every 333 ms"
    );
    assert!(ok > 100, "too few writes ({ok}) to say anything");
    assert_eq!(failed, 0);
}

/// `GET /v1/tenants` pages and `GET /v1/tenants/count` count the tenants of
/// every shard, through any node.
#[test]
fn any_node_lists_and_counts_the_whole_cluster() {
    let Some(cluster) = Cluster::new("listing", 16) else {
        return;
    };
    let (a, b) = two_nodes(&cluster, "2s");
    let ten = Duration::from_secs(10);
    let mut created: Vec<String> = (0..25).map(|i| format!("listed_{i:02}")).collect();
    for (i, tenant) in created.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let path = format!("/v1/tenants/{tenant}");
        assert_eq!(
            call(&node.addr, "PUT", &path, Some(json!({})), ten)
                .unwrap()
                .0,
            201
        );
    }
    // One deleted: not listed, not counted.
    let gone = created.remove(3);
    let path = format!("/v1/tenants/{gone}");
    assert_eq!(call(&b.addr, "DELETE", &path, None, ten).unwrap().0, 204);

    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/tenants?limit=10&after={after}"),
            None => "/v1/tenants?limit=10".to_owned(),
        };
        let (status, page) = call(&a.addr, "GET", &path, None, ten).unwrap();
        assert_eq!(status, 200, "{page}");
        let tenants = page["tenants"].as_array().unwrap();
        assert!(tenants.len() <= 10);
        listed.extend(
            tenants
                .iter()
                .map(|t| t["tenant"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, created, "every live tenant once, in id order");
    let (status, count) = call(&b.addr, "GET", "/v1/tenants/count", None, ten).unwrap();
    assert_eq!(status, 200);
    assert_eq!(count["tenants"], 24, "{count}");

    // A deletion's options reach the owner through a forwarding node: a
    // tenant of `a` holding a protected snapshot, deleted through `b`, is
    // refused without `force` and deleted with it.
    let kept = tenant_owned_by(&cluster, &a, "kept");
    let path = format!("/v1/tenants/{kept}");
    assert_eq!(
        call(&a.addr, "PUT", &path, Some(json!({})), ten).unwrap().0,
        201
    );
    let snapshot = json!({"name": "keep", "protected": true});
    let made = call(
        &a.addr,
        "POST",
        &format!("{path}/snapshots"),
        Some(snapshot),
        ten,
    );
    assert_eq!(made.unwrap().0, 201);
    let (status, refused) = call(&b.addr, "DELETE", &path, None, ten).unwrap();
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["error"]["code"], "delete_refused", "{refused}");
    let forced = format!("{path}?force=true");
    assert_eq!(call(&b.addr, "DELETE", &forced, None, ten).unwrap().0, 204);
    assert_eq!(call(&a.addr, "GET", &path, None, ten).unwrap().0, 404);
}

/// PostgreSQL stopped for longer than the lease, then started again: the
/// nodes give their shards up (their leases lapse), writes fail meanwhile
/// (never acknowledged), and once the database is back every shard has an
/// owner again and every tenant takes writes, with nothing acknowledged
/// lost and no stale read.
#[test]
fn the_cluster_rides_out_a_postgres_restart() {
    let Some(cluster) = Cluster::own("pg_restart", 32) else {
        return;
    };
    let lease = "3s";
    let (a, b) = two_nodes(&cluster, lease);
    let tenants: Vec<String> = (0..16).map(|i| format!("steady_{i:02}")).collect();
    for tenant in &tenants {
        let path = format!("/v1/tenants/{tenant}");
        let (status, body) = call(
            &a.addr,
            "PUT",
            &path,
            Some(json!({"state": {"n": 0}})),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(status, 201, "{body}");
    }
    let load = Arc::new(cluster_support::Load::new(&tenants));
    let stop = Arc::new(AtomicBool::new(false));
    let addresses = Arc::new(Mutex::new(vec![a.addr.clone(), b.addr.clone()]));
    let mut workers = Vec::new();
    for (w, chunk) in tenants.chunks(4).enumerate() {
        let (load, stop, addresses) = (load.clone(), stop.clone(), addresses.clone());
        let chunk = chunk.to_vec();
        workers.push(std::thread::spawn(move || {
            load.write(w, &chunk, &addresses, &stop)
        }));
    }
    for r in 0..2 {
        let (load, stop, addresses) = (load.clone(), stop.clone(), addresses.clone());
        workers.push(std::thread::spawn(move || load.read(r, &addresses, &stop)));
    }
    std::thread::sleep(Duration::from_secs(2));
    let server = cluster.own.as_ref().unwrap();
    server.stop();
    let stopped_at = Instant::now();
    // Past the lease: the nodes drop their shards.
    std::thread::sleep(Duration::from_secs(5));
    server.restart();
    let restarted_at = Instant::now();
    let deadline = restarted_at + Duration::from_secs(60);
    while !tenants.iter().all(|t| load.acked_since(t, restarted_at)) {
        assert!(
            Instant::now() < deadline,
            "tenants not writable 60 s after PostgreSQL came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let recovered = restarted_at.elapsed();
    wait_balanced(&cluster, &[&a, &b], Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let report = load.verify(&a.addr);
    println!(
        "postgres restart: down {:?}, every tenant written again {recovered:?} after it came \
         back; {} acknowledged writes, {} lost, {} stale reads, {} refused with 500 while it \
         was down",
        restarted_at.duration_since(stopped_at),
        report.acknowledged,
        report.lost,
        report.stale_reads,
        report.internal
    );
    assert_eq!(report.lost, 0, "acknowledged writes lost");
    assert_eq!(report.stale_reads, 0, "stale reads");
    assert_eq!(report.reused, 0, "revisions reused");
}

/// The value of the sample `name` (with its labels as written, e.g.
/// `rewind_forwarded_requests_total{outcome="forwarded"}`) on `/metrics`.
fn sample(addr: &str, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The cluster metrics tell what a node owns, takes, loses and forwards.
#[test]
fn metrics_say_what_a_node_owns_takes_loses_and_forwards() {
    let Some(cluster) = Cluster::new("metrics", 16) else {
        return;
    };
    let lease = "2s";
    let (a, b) = two_nodes(&cluster, lease);
    let a_owned = owned_shards(&a.addr).unwrap();
    assert_eq!(sample(&a.addr, "rewind_cluster_shards"), Some(16.0));
    assert_eq!(
        sample(&a.addr, "rewind_shards_owned"),
        Some(a_owned.len() as f64)
    );
    assert!(sample(&a.addr, "rewind_shard_acquisitions_total").unwrap() >= a_owned.len() as f64);
    // As of the node's last round (every second): it may still have seen
    // the hand-over of the shards node-b took.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&a.addr, "rewind_cluster_shards_unowned") != Some(0.0) {
        assert!(Instant::now() < deadline, "shards still unowned");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sample(&a.addr, "rewind_lease_renewal_duration_seconds_count").unwrap() >= 1.0);
    // A tenant of node-a's, created through node-b: forwarded.
    let tenant = tenant_owned_by(&cluster, &a, "metered");
    let path = format!("/v1/tenants/{tenant}");
    let ten = Duration::from_secs(10);
    assert_eq!(
        call(&b.addr, "PUT", &path, Some(json!({})), ten).unwrap().0,
        201
    );
    assert_eq!(
        sample(
            &b.addr,
            "rewind_forwarded_requests_total{outcome=\"forwarded\"}"
        ),
        Some(1.0)
    );
    // node-a paused past its lease loses its shards to node-b.
    assert_eq!(sample(&a.addr, "rewind_shard_losses_total"), Some(0.0));
    a.pause();
    std::thread::sleep(Duration::from_secs(4));
    a.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lost = sample(&a.addr, "rewind_shard_losses_total").unwrap_or(0.0);
        if lost >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "node-a never counted its losses");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_balanced(&cluster, &[&a, &b], Duration::from_secs(60));
}

/// A health endpoint answering every request with the status a test sets.
fn health_endpoint(status: Arc<std::sync::atomic::AtomicU16>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let code = status.load(Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    format!("http://{addr}/health")
}

#[test]
fn a_deployment_resumes_on_the_node_that_takes_its_shard_over() {
    let Some(cluster) = Cluster::new("deploy_failover", 16) else {
        return;
    };
    let (mut a, b) = two_nodes(&cluster, "2s");
    let tenant = tenant_owned_by(&cluster, &a, "shop");
    let t = Duration::from_secs(10);
    let (status, _) = call(
        &b.addr,
        "PUT",
        &format!("/v1/tenants/{tenant}"),
        Some(json!({"state": {"version": "1.0.0"}})),
        t,
    )
    .unwrap();
    assert_eq!(status, 201);
    let health = Arc::new(std::sync::atomic::AtomicU16::new(200));
    let url = health_endpoint(Arc::clone(&health));
    let (status, started) = call(
        &b.addr,
        "POST",
        &format!("/v1/tenants/{tenant}/deployments"),
        Some(json!({
            "name": "v2",
            "patch": [{"op": "replace", "path": "/version", "value": "2.0.0"}],
            "checks": [{"http": {"url": url}}],
            "interval": "200ms",
            "window": "20s",
        })),
        t,
    )
    .unwrap();
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // The owner dies mid-window, and the endpoint turns unhealthy.
    a.kill();
    let killed = Instant::now();
    health.store(503, Ordering::SeqCst);
    let path = format!("/v1/tenants/{tenant}/deployments/{id}");
    let ended = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the deployment did not end after its owner died"
        );
        if let Ok((200, body)) = call(&b.addr, "GET", &path, None, t) {
            if body["status"] != "monitoring" {
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let results: Vec<&str> = ended["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["result"].as_str().unwrap())
        .collect();
    println!(
        "deployment failover: rolled back {:.1} s after its owner was killed; measurements {results:?}",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(ended["status"], "rolled_back", "{ended}");
    assert!(
        results.len() >= 3 && results[..results.len() - 1].iter().all(|r| *r == "pass"),
        "the passes measured by the dead owner are kept: {results:?}"
    );
    assert_eq!(results.last(), Some(&"fail"));
    let (_, state) = call(
        &b.addr,
        "GET",
        &format!("/v1/tenants/{tenant}/state"),
        None,
        t,
    )
    .unwrap();
    assert_eq!(state, json!({"version": "1.0.0"}));
}
