//! Rows "durable writes" and "recovery", on the embedded SQLite journal.
//!
//! Durable writes: acknowledged applies per second in `sync` mode (a write is
//! acknowledged once fsynced) with 1, 16 and 256 concurrent writers, each on
//! its own tenant of a 1k-key document, next to the limit measured in the
//! same run: a raw rusqlite loop inserting records of the same size with one
//! fsync per batch of as many records as there are writers (the best group
//! commit could do).
//!
//! Recovery: a journal of T tenants × R entries (1,000 × 1,000 in the full
//! run), written with images disabled so recovery replays every entry; the
//! time for a runtime to start on it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rewind::core::{Doc, Patch};
use rewind::runtime::{Journal, Runtime, Tenant};
use rewind::store::{MemoryJournal, SqliteJournal, SqliteOptions};

use crate::fixtures::{self, one_key_patches, Rng};
use crate::measure::Kind;
use crate::report::{Line, Value};
use crate::Ctx;

pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(label: &str) -> anyhow::Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "rewind-bench-{label}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Acknowledged applies per second with `writers` concurrent writers, each
/// on its own tenant.
async fn rewind_rate(
    path: &Path,
    writers: usize,
    duration: Duration,
    patches: &Arc<Vec<Patch>>,
) -> anyhow::Result<f64> {
    let journal = SqliteJournal::open(path, SqliteOptions::default())?;
    let runtime = Runtime::<Doc>::builder()
        .journal(Arc::new(journal))
        .start()
        .await?;
    let base = fixtures::doc(1_000);
    let mut tenants: Vec<Tenant> = Vec::with_capacity(writers);
    for w in 0..writers {
        tenants.push(
            runtime
                .create_tenant(&format!("w{w}"), base.clone())
                .await?,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = tenants
        .into_iter()
        .enumerate()
        .map(|(w, tenant)| {
            let (stop, acked, patches) = (stop.clone(), acked.clone(), patches.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(0xd0_0000 + w as u64);
                while !stop.load(Ordering::Relaxed) {
                    let patch = patches[rng.below(patches.len())].clone();
                    tenant.apply(patch).await.expect("durable apply");
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Warm up, then count over `duration`.
    tokio::time::sleep(duration / 4).await;
    let (start_count, started) = (acked.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(duration).await;
    let rate =
        (acked.load(Ordering::Relaxed) - start_count) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    runtime.shutdown().await?;
    Ok(rate)
}

/// The limit: raw inserts of `batch` records per transaction, one fsync
/// each, into the same kind of table, on a blocking thread.
fn sqlite_limit(path: &Path, batch: usize, duration: Duration) -> anyhow::Result<f64> {
    let db = rusqlite::Connection::open(path)?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.execute_batch(
        "CREATE TABLE entries (tenant TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL,
         kind TEXT NOT NULL, payload BLOB NOT NULL, checksum INTEGER NOT NULL,
         PRIMARY KEY (tenant, seq)) WITHOUT ROWID;",
    )?;
    // About the size of a journaled one-key patch.
    let payload = br#"{"op":"apply","change":[{"op":"replace","path":"/key_00000000123","value":4242}],"meta":{}}"#;
    let mut seq = 0i64;
    let mut written = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        let tx = db.unchecked_transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO entries (tenant, seq, at, kind, payload, checksum) VALUES (?1, ?2, ?3, 'op', ?4, ?5)",
            )?;
            for w in 0..batch {
                insert.execute(rusqlite::params![
                    format!("w{w}"),
                    seq,
                    seq,
                    &payload[..],
                    seq
                ])?;
            }
        }
        tx.commit()?;
        seq += 1;
        written += batch as u64;
    }
    Ok(written as f64 / started.elapsed().as_secs_f64())
}

fn rate_line(row: &str, kind: Kind, what: String, rate: f64, limit: Option<f64>) -> Line {
    Line {
        row: row.into(),
        n: Some(1_000),
        variant: format!("{}: {what}", kind.as_str()),
        p50: Value::Rate(rate),
        p99: Value::None,
        ratio: limit.map(|l| rate / l),
        goal: None,
    }
}

pub(crate) async fn writes(ctx: &Ctx) -> anyhow::Result<Vec<Line>> {
    let duration = if ctx.quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(3)
    };
    let patches = one_key_patches(&mut Rng::new(0xd0_1000), 1_000, 256);
    let mut lines = Vec::new();
    for writers in [1usize, 16, 256] {
        let dir = TempDir::new("durable")?;
        let rate = rewind_rate(&dir.file("rewind.db"), writers, duration, &patches)
            .await
            .with_context(|| format!("durable writes with {writers} writers"))?;
        let limit_path = dir.file("limit.db");
        let limit =
            tokio::task::spawn_blocking(move || sqlite_limit(&limit_path, writers, duration))
                .await??;
        let row = format!("durable writes, sync mode, {writers} writers");
        let mut line = rate_line(
            &row,
            Kind::Actor,
            "acknowledged applies (fsynced)".into(),
            rate,
            Some(limit),
        );
        if writers == 256 {
            line.set_goal(
                ">= 50% of the raw SQLite limit at 256 writers",
                rate >= 0.5 * limit,
            );
        }
        lines.push(line);
        lines.push(rate_line(
            &row,
            Kind::Baseline,
            format!("raw rusqlite, {writers} records per fsync (the limit)"),
            limit,
            None,
        ));
    }
    Ok(lines)
}

pub(crate) async fn recovery(ctx: &Ctx) -> anyhow::Result<Vec<Line>> {
    let (tenants, records) = if ctx.quick { (20, 50) } else { (1_000, 1_000) };
    let dir = TempDir::new("recovery")?;
    // Write through a runtime on an in-memory journal (fast), images off,
    // then copy the entries into a SQLite journal file.
    let memory = Arc::new(MemoryJournal::new());
    let runtime = Runtime::<Doc>::builder()
        .journal(Arc::clone(&memory) as Arc<dyn Journal>)
        .image_every(u64::MAX)
        .start()
        .await?;
    let base = fixtures::doc(100);
    let patches = one_key_patches(&mut Rng::new(0xd0_2000), 100, 64);
    let mut handles = Vec::new();
    for t in 0..tenants {
        let tenant = runtime
            .create_tenant(&format!("t{t:04}"), base.clone())
            .await?;
        let patches = Arc::clone(&patches);
        handles.push(tokio::spawn(async move {
            let mut rng = Rng::new(t as u64);
            // The create entry is the first record.
            for _ in 1..records {
                let patch = patches[rng.below(patches.len())].clone();
                tenant.apply(patch).await?;
            }
            Ok::<_, rewind::runtime::Error>(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    runtime.shutdown().await?;
    let path = dir.file("recovery.db");
    let sqlite = SqliteJournal::open(&path, SqliteOptions::default())?;
    for tenant in memory.tenants()? {
        let entries = memory.read(&tenant, 1.into(), (u64::MAX).into())?;
        sqlite.append(entries).await?;
    }
    sqlite.close()?;

    let started = Instant::now();
    let journal = SqliteJournal::open(&path, SqliteOptions::default())?;
    let runtime = Runtime::<Doc>::builder()
        .journal(Arc::new(journal))
        .image_every(u64::MAX)
        // Every tenant read back at start: this row measures replay.
        .eager_recovery(true)
        .start()
        .await?;
    let elapsed = started.elapsed();
    let report = runtime.recovery().clone();
    runtime.shutdown().await?;
    anyhow::ensure!(
        report.tenants == tenants && report.failures.is_empty(),
        "recovery restored {} of {tenants} tenants",
        report.tenants
    );
    Ok(vec![Line {
        row: format!("recovery, {tenants} tenants x {records} records"),
        n: Some(100),
        variant: format!(
            "{}: runtime start on the SQLite journal ({} entries replayed, {:.0}k entries/s)",
            Kind::Actor.as_str(),
            report.entries,
            report.entries as f64 / elapsed.as_secs_f64() / 1e3
        ),
        p50: Value::Nanos(elapsed.as_nanos() as f64),
        p99: Value::None,
        ratio: None,
        goal: None,
    }])
}
