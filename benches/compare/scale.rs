//! Row "scale": many tenants on the SQLite journal in sync mode, through the
//! runtime (full run: 1,000,000; quick: 20,000).
//!
//! - Creation: tenants with small states created by 64 concurrent
//!   creators; the rate over the first and over the last 10k, side by side
//!   (goal: within 1.5x).
//! - Memory: RSS once every tenant exists, `max_active` (100k) of them
//!   active and the rest passivated (goal: at most 4 GB), next to the
//!   process's RSS before the runtime started.
//! - Activation: a tenant whose newest image is followed by 1,000 entries,
//!   passivated and looked up again, p50 and p99 (goal: p99 at most 5 ms),
//!   side by side with the activation of a tenant that has no image (all
//!   its entries replayed).
//! - Lookup and delete of active tenants, next to the same on a runtime
//!   holding 1,000 tenants (the goal: the same cost at any size).
//! - Start: the time from opening the journal to the first answer with
//!   every tenant in it (goal: at most 5 s), side by side with the eager
//!   start that reads every tenant back first (the behaviour before
//!   passivation).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rewind::core::{Doc, Patch};
use rewind::runtime::{AutoSnapshotPolicy, Journal, Runtime, TenantConfig, DEFAULT_MAX_ACTIVE};
use rewind::store::{SqliteJournal, SqliteOptions};
use serde_json::json;

use crate::durable::TempDir;
use crate::measure::{percentile, Kind};
use crate::report::{Line, Value};
use crate::Ctx;

const CREATORS: usize = 64;
/// The window of the first / last creation rate.
const WINDOW: usize = 10_000;
/// Entries after the image of the activated tenant.
const TAIL_ENTRIES: u64 = 1_000;

fn rss_bytes() -> f64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |pages| pages * 4096.0)
}

fn small_state(i: usize) -> Doc {
    Doc::from_json(&json!({"plan": "free", "seats": i % 50, "region": "eu"}))
        .expect("a small state")
}

fn set(n: u64) -> Patch {
    Patch::from_json(&json!([{"op": "replace", "path": "/seats", "value": n}])).expect("a patch")
}

async fn open(path: &std::path::Path, eager: bool) -> anyhow::Result<Runtime<Doc>> {
    let journal = SqliteJournal::open(path, SqliteOptions::default())?;
    Ok(Runtime::<Doc>::builder()
        .journal(Arc::new(journal) as Arc<dyn Journal>)
        .tenant_defaults(TenantConfig {
            // Only capacity passivates here; idle passivation would race
            // with the measurement.
            passivate_after: None,
            ..TenantConfig::default()
        })
        .image_every(TAIL_ENTRIES + 1)
        .eager_recovery(eager)
        .start()
        .await?)
}

/// Creates `count` tenants with `CREATORS` concurrent creators; returns the
/// instant each creation was acknowledged, in order.
async fn create_all(runtime: &Runtime<Doc>, count: usize) -> anyhow::Result<Vec<Instant>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut creators = tokio::task::JoinSet::new();
    for _ in 0..CREATORS {
        let (runtime, next) = (runtime.clone(), Arc::clone(&next));
        creators.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, rewind::runtime::Error>(done);
                }
                runtime
                    .create_tenant(&format!("t{i:07}"), small_state(i))
                    .await?;
                done.push(Instant::now());
            }
        });
    }
    let mut acknowledged = Vec::with_capacity(count);
    while let Some(joined) = creators.join_next().await {
        acknowledged.extend(joined??);
    }
    acknowledged.sort();
    anyhow::ensure!(
        acknowledged.len() == count,
        "created {} of {count}",
        acknowledged.len()
    );
    Ok(acknowledged)
}

/// Creations per second over `window` consecutive acknowledgements.
fn rate(window: &[Instant]) -> f64 {
    let span = window[window.len() - 1].duration_since(window[0]);
    (window.len() - 1) as f64 / span.as_secs_f64().max(1e-9)
}

/// Makes `id` with `ops` applies after its creation.
async fn tenant_with_history(runtime: &Runtime<Doc>, id: &str, ops: u64) -> anyhow::Result<()> {
    // One journal entry per apply: no auto snapshots in between.
    let config = TenantConfig {
        auto_snapshot: AutoSnapshotPolicy::DISABLED,
        passivate_after: None,
        ..TenantConfig::default()
    };
    let id = rewind::core::TenantId::new(id)?;
    let tenant = runtime
        .create_tenant_with(id, small_state(0), Some(config))
        .await?;
    for n in 0..ops {
        tenant.apply(set(n)).await?;
    }
    Ok(())
}

/// Tenants of the baseline runtime for lookups and deletes.
const SMALL: usize = 1_000;
/// Deletes measured per runtime.
const PROBES: usize = 200;

/// Times of deleting the `PROBES` newest of `count` tenants.
async fn deletes(runtime: &Runtime<Doc>, count: usize) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(PROBES);
    for k in 0..PROBES {
        let id = format!("t{:07}", count - 1 - k);
        let started = Instant::now();
        runtime.delete_tenant(&id).await?;
        times.push(started.elapsed().as_nanos() as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Lookup times of `id`, passivating it before each one when `passivate`.
async fn lookups(
    runtime: &Runtime<Doc>,
    id: &str,
    passivate: bool,
    rounds: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        if passivate {
            anyhow::ensure!(runtime.passivate(id).await?, "{id} did not passivate");
        }
        let started = Instant::now();
        let tenant = runtime.tenant(id).await?;
        std::hint::black_box(tenant.revision());
        times.push(started.elapsed().as_nanos() as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn line(row: &str, n: usize, what: String, p50: Value, p99: Value) -> Line {
    Line {
        row: row.to_owned(),
        n: Some(n),
        variant: format!("{}: {what}", Kind::Actor.as_str()),
        p50,
        p99,
        ratio: None,
        goal: None,
    }
}

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Line>> {
    let count = if ctx.quick { 20_000 } else { 1_000_000 };
    let row = "scale, SQLite sync";
    let dir = TempDir::new("scale")?;
    let path = dir.file("scale.db");
    let mut lines = Vec::new();

    // Creation and memory.
    let rss_before = rss_bytes();
    let heap_before = crate::heap_bytes();
    let runtime = open(&path, false).await?;
    crate::progress(&format!("scale: creating {count} tenants"));
    let acknowledged = create_all(&runtime, count).await?;
    let first = rate(&acknowledged[..WINDOW.min(count / 2)]);
    let last = rate(&acknowledged[count - WINDOW.min(count / 2)..]);
    let total = rate(&acknowledged);
    let mut creation = line(
        row,
        count,
        format!("creations/s, last 10k (first 10k {first:.0}/s, all {total:.0}/s)"),
        Value::Rate(last),
        Value::None,
    );
    creation.ratio = Some(last / first);
    creation.set_goal("last 10k within 1.5x of the first", first / last <= 1.5);
    lines.push(creation);

    let active = runtime.active_count();
    anyhow::ensure!(
        runtime.tenant_count() == count,
        "{} tenants",
        runtime.tenant_count()
    );
    anyhow::ensure!(
        active <= DEFAULT_MAX_ACTIVE,
        "{active} active past max_active {DEFAULT_MAX_ACTIVE}"
    );
    let rss = rss_bytes();
    let mut memory = line(
        row,
        count,
        format!(
            "RSS with {active} active, {} passivated ({:.2} KiB of live heap per tenant; \
             {:.0} MiB RSS before)",
            count - active,
            crate::heap_bytes().saturating_sub(heap_before) as f64 / count as f64 / 1024.0,
            rss_before / 1048576.0
        ),
        Value::Bytes(rss),
        Value::None,
    );
    memory.set_goal("at most 4 GB", rss <= 4e9);
    lines.push(memory);

    // Activation: image + 1,000 entries, next to an active lookup and to a
    // tenant with no image.
    crate::progress("scale: activation");
    // Sequential applies: create (seq 1) and 1,000 applies reach the image
    // at seq 1,001; 1,000 more follow it.
    tenant_with_history(&runtime, "imaged", 2 * TAIL_ENTRIES).await?;
    // Let the image store finish before the first passivation.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The runtime holds the journal's lock: read the figures with SQL.
    let raw = rusqlite::Connection::open(&path)?;
    let (image_seq, highest): (i64, i64) = raw
        .query_row(
            "SELECT (SELECT max(seq) FROM images WHERE tenant = 'imaged'),
                (SELECT seq FROM highest_seq WHERE tenant = 'imaged')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .context("the imaged tenant has an image")?;
    let tail = highest - image_seq;
    anyhow::ensure!(
        tail as u64 == TAIL_ENTRIES,
        "the image is followed by {tail} entries, not {TAIL_ENTRIES}"
    );
    tenant_with_history(&runtime, "unimaged", TAIL_ENTRIES).await?;
    let rounds = if ctx.quick { 200 } else { 500 };
    let activated = lookups(&runtime, "imaged", true, rounds).await?;
    let replayed = lookups(&runtime, "unimaged", true, rounds).await?;
    let p = |times: &[f64], q| percentile(times, q);
    let mut activation = line(
        row,
        count,
        format!("activation: image + {tail} entries"),
        Value::Nanos(p(&activated, 0.5)),
        Value::Nanos(p(&activated, 0.99)),
    );
    activation.ratio = Some(p(&replayed, 0.5) / p(&activated, 0.5));
    activation.set_goal("p99 at most 5 ms", p(&activated, 0.99) <= 5e6);
    lines.push(activation);
    lines.push(line(
        row,
        count,
        format!(
            "activation: no image, {} entries (baseline)",
            TAIL_ENTRIES + 1
        ),
        Value::Nanos(p(&replayed, 0.5)),
        Value::Nanos(p(&replayed, 0.99)),
    ));
    // Lookup and delete at this size next to the same on a runtime holding
    // 1,000 tenants, both of active tenants (the newest ones are).
    crate::progress("scale: lookup and delete, next to 1k tenants");
    let small_dir = TempDir::new("scale-1k")?;
    let small = open(&small_dir.file("scale-1k.db"), false).await?;
    create_all(&small, SMALL).await?;
    let mut sizes = Vec::new();
    for (runtime, n) in [(&runtime, count), (&small, SMALL)] {
        let looked_up = lookups(runtime, &format!("t{:07}", n - 1 - PROBES), false, rounds).await?;
        let deleted = deletes(runtime, n).await?;
        sizes.push((looked_up, deleted));
    }
    small.shutdown().await?;
    drop(small);
    let (big, small) = (&sizes[0], &sizes[1]);
    for (what, at_count, at_small) in [
        ("lookup of an active tenant", &big.0, &small.0),
        ("delete of an active tenant (journaled)", &big.1, &small.1),
    ] {
        let mut measured = line(
            row,
            count,
            what.into(),
            Value::Nanos(p(at_count, 0.5)),
            Value::Nanos(p(at_count, 0.99)),
        );
        measured.ratio = Some(p(at_small, 0.5) / p(at_count, 0.5));
        lines.push(measured);
        lines.push(line(
            row,
            SMALL,
            format!("{what}, 1k tenants (baseline)"),
            Value::Nanos(p(at_small, 0.5)),
            Value::Nanos(p(at_small, 0.99)),
        ));
    }
    runtime.shutdown().await?;
    drop(runtime);
    drop(raw);

    // Start to serving, on demand and eager.
    crate::progress("scale: start to serving");
    let mut starts = Vec::new();
    for eager in [false, true] {
        let started = Instant::now();
        let runtime = open(&path, eager).await?;
        let tenant = runtime.tenant(&format!("t{:07}", count / 2)).await?;
        std::hint::black_box(tenant.current());
        let elapsed = started.elapsed();
        anyhow::ensure!(
            runtime.tenant_count() == count + 2 - PROBES,
            "{} tenants after the restart",
            runtime.tenant_count()
        );
        drop(tenant);
        runtime.shutdown().await?;
        starts.push(elapsed.as_nanos() as f64);
    }
    let mut start = line(
        row,
        count + 2 - PROBES,
        "start to the first answer, tenants read back on demand".into(),
        Value::Nanos(starts[0]),
        Value::None,
    );
    start.ratio = Some(starts[1] / starts[0]);
    start.set_goal("at most 5 s", starts[0] <= 5e9);
    lines.push(start);
    lines.push(line(
        row,
        count + 2 - PROBES,
        "start to the first answer, every tenant read back first (baseline)".into(),
        Value::Nanos(starts[1]),
        Value::None,
    ));
    Ok(lines)
}
