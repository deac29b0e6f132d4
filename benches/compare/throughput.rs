//! Row "throughput": aggregate applies per second over 1,000 tenants from
//! 64 concurrent client tasks on the 2-worker runtime, in memory. N is the
//! size of each tenant's document (all start from one shared document).
//!
//! Three contenders run in turn, for the same time, several times: rewind
//! through the actors; the core alone on 2 threads (each owning half of the
//! timelines: the limit of 2 cores); and the deep-copy baseline (a
//! `Mutex<HashMap>` per tenant, cloned and modified per change). Rates are
//! sampled in short windows: p50 is the median window, the p99 column the
//! 1st percentile window (the slow tail).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rewind::core::{Patch, Timeline};
use rewind::runtime::Tenant;

use crate::fixtures::{self, key, one_key_patches, Map, Rng};
use crate::measure::{percentile, Kind};
use crate::report::{Line, Value};
use crate::Ctx;

const CLIENTS: usize = 64;
const DIRECT_THREADS: usize = 2;

/// A per-client counter on its own cache line.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

/// Counters of one run and the flag that ends it.
struct Run {
    counters: Arc<Vec<Counter>>,
    stop: Arc<AtomicBool>,
}

impl Run {
    fn new(clients: usize) -> Run {
        Run {
            counters: Arc::new((0..clients).map(|_| Counter::default()).collect()),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn total(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits out `warmup`, then samples the rate every `window` for
    /// `duration`, then raises the stop flag.
    async fn sample(&self, warmup: Duration, window: Duration, duration: Duration) -> Vec<f64> {
        tokio::time::sleep(warmup).await;
        let started = Instant::now();
        let (mut last, mut at) = (self.total(), Instant::now());
        let mut rates = Vec::new();
        while started.elapsed() < duration {
            tokio::time::sleep(window).await;
            let (now_total, now) = (self.total(), Instant::now());
            rates.push((now_total - last) as f64 / (now - at).as_secs_f64());
            (last, at) = (now_total, now);
        }
        self.stop.store(true, Ordering::Relaxed);
        rates
    }
}

/// How long each contender runs, and how often.
struct Schedule {
    warmup: Duration,
    window: Duration,
    duration: Duration,
    repetitions: usize,
}

async fn rewind_run(
    tenants: &Arc<Vec<Tenant>>,
    patches: &Arc<Vec<Patch>>,
    s: &Schedule,
) -> anyhow::Result<Vec<f64>> {
    let run = Run::new(CLIENTS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (tenants, patches) = (Arc::clone(tenants), Arc::clone(patches));
            let (counters, stop) = (Arc::clone(&run.counters), Arc::clone(&run.stop));
            tokio::spawn(async move {
                let mut rng = Rng::new(0x7e57_0007 + c as u64);
                while !stop.load(Ordering::Relaxed) {
                    let tenant = &tenants[rng.below(tenants.len())];
                    let patch = patches[rng.below(patches.len())].clone();
                    tenant.apply(patch).await.expect("apply");
                    counters[c].0.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let rates = run.sample(s.warmup, s.window, s.duration).await;
    for client in clients {
        client.await?;
    }
    Ok(rates)
}

async fn direct_run(
    timelines: Vec<Vec<Timeline<rewind::core::Doc>>>,
    patches: &Arc<Vec<Patch>>,
    s: &Schedule,
) -> anyhow::Result<(Vec<f64>, Vec<Vec<Timeline<rewind::core::Doc>>>)> {
    let run = Run::new(DIRECT_THREADS);
    let threads: Vec<_> = timelines
        .into_iter()
        .enumerate()
        .map(|(t, mut timelines)| {
            let patches = Arc::clone(patches);
            let (counters, stop) = (Arc::clone(&run.counters), Arc::clone(&run.stop));
            tokio::task::spawn_blocking(move || {
                let mut rng = Rng::new(0x7e57_0008 + t as u64);
                while !stop.load(Ordering::Relaxed) {
                    let i = rng.below(timelines.len());
                    let patch = &patches[rng.below(patches.len())];
                    timelines[i].apply(patch).expect("apply");
                    counters[t].0.fetch_add(1, Ordering::Relaxed);
                }
                timelines
            })
        })
        .collect();
    let rates = run.sample(s.warmup, s.window, s.duration).await;
    let mut back = Vec::new();
    for thread in threads {
        back.push(thread.await?);
    }
    Ok((rates, back))
}

async fn baseline_run(
    maps: &Arc<Vec<Mutex<Map>>>,
    keys: &Arc<Vec<String>>,
    s: &Schedule,
) -> anyhow::Result<Vec<f64>> {
    let run = Run::new(CLIENTS);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (maps, keys) = (Arc::clone(maps), Arc::clone(keys));
            let (counters, stop) = (Arc::clone(&run.counters), Arc::clone(&run.stop));
            tokio::spawn(async move {
                let mut rng = Rng::new(0x7e57_0009 + c as u64);
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut map = maps[rng.below(maps.len())].lock().expect("lock");
                        let mut copy = map.clone();
                        *copy.get_mut(&keys[rng.below(keys.len())]).expect("key") += 1;
                        *map = copy;
                    }
                    counters[c].0.fetch_add(1, Ordering::Relaxed);
                    // Each change blocks for a while: let the others run.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let rates = run.sample(s.warmup, s.window, s.duration).await;
    for client in clients {
        client.await?;
    }
    Ok(rates)
}

fn rate_line(
    kind: Kind,
    doc_n: usize,
    what: String,
    rates: &mut [f64],
    baseline: Option<f64>,
) -> Line {
    rates.sort_by(f64::total_cmp);
    let p50 = percentile(rates, 0.5);
    Line {
        row: "throughput, in memory".into(),
        n: Some(doc_n),
        variant: format!("{}: {what}", kind.as_str()),
        p50: Value::Rate(p50),
        p99: Value::Rate(percentile(rates, 0.01)),
        ratio: baseline.map(|b| p50 / b),
        goal: None,
    }
}

pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Line>> {
    let schedule = if ctx.quick {
        Schedule {
            warmup: Duration::from_millis(20),
            window: Duration::from_millis(20),
            duration: Duration::from_millis(100),
            repetitions: 1,
        }
    } else {
        Schedule {
            warmup: Duration::from_millis(300),
            window: Duration::from_millis(100),
            duration: Duration::from_secs(3),
            repetitions: 2,
        }
    };
    // Large tenants (the table's smallest N) and small ones, where the
    // per-request overhead shows without the cache misses of big documents.
    let configs: &[(usize, usize)] = if ctx.quick {
        &[(100, 1_000), (100, 100)]
    } else {
        &[(1_000, 10_000), (1_000, 100)]
    };
    let mut lines = Vec::new();
    for &(tenant_count, doc_n) in configs {
        lines.extend(one_config(ctx, &schedule, tenant_count, doc_n).await?);
    }
    Ok(lines)
}

async fn one_config(
    ctx: &Ctx,
    schedule: &Schedule,
    tenant_count: usize,
    doc_n: usize,
) -> anyhow::Result<Vec<Line>> {
    let doc = fixtures::doc(doc_n);
    let mut rng = Rng::new(0x7e57_000a ^ doc_n as u64);
    let patches = one_key_patches(&mut rng, doc_n, 4096);
    let keys: Arc<Vec<String>> = Arc::new((0..4096).map(|_| key(rng.below(doc_n))).collect());

    // Every tenant starts from the same document: shared, not copied.
    let mut tenants = Vec::with_capacity(tenant_count);
    for i in 0..tenant_count {
        let id = format!("throughput_{i}");
        tenants.push(ctx.runtime.create_tenant(&id, doc.clone()).await?);
    }
    let tenants = Arc::new(tenants);
    let mut timelines: Vec<Vec<_>> = (0..DIRECT_THREADS)
        .map(|_| {
            (0..tenant_count / DIRECT_THREADS)
                .map(|_| Timeline::with_defaults(doc.clone()))
                .collect()
        })
        .collect();
    let map = fixtures::map(doc_n);
    let maps: Arc<Vec<_>> = Arc::new((0..tenant_count).map(|_| Mutex::new(map.clone())).collect());

    let (mut actor, mut direct, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..schedule.repetitions {
        actor.extend(rewind_run(&tenants, &patches, schedule).await?);
        let (rates, back) = direct_run(timelines, &patches, schedule).await?;
        direct.extend(rates);
        timelines = back;
        baseline.extend(baseline_run(&maps, &keys, schedule).await?);
    }
    for i in 0..tenant_count {
        ctx.runtime
            .delete_tenant(&format!("throughput_{i}"))
            .await?;
    }

    baseline.sort_by(f64::total_cmp);
    let base = percentile(&baseline, 0.5);
    let mut rewind = rate_line(
        Kind::Actor,
        doc_n,
        format!("{CLIENTS} clients -> {tenant_count} tenants, Tenant::apply"),
        &mut actor,
        Some(base),
    );
    let met = matches!(rewind.p50, Value::Rate(r) if r >= 500_000.0);
    rewind.set_goal(">= 500k applies/s on 2 cores", met);
    Ok(vec![
        rewind,
        rate_line(
            Kind::Direct,
            doc_n,
            format!(
                "{DIRECT_THREADS} threads x {} timelines, Timeline::apply",
                tenant_count / DIRECT_THREADS
            ),
            &mut direct,
            Some(base),
        ),
        rate_line(
            Kind::Baseline,
            doc_n,
            format!("{CLIENTS} clients -> {tenant_count} Mutex<HashMap>, clone + modify + swap"),
            &mut baseline,
            None,
        ),
    ])
}
