//! `benches/compare`: rewind side by side with the deep-copy baseline the
//! seed describes and with its own core (the limit), measured in one
//! process, interleaved, printed as one table of medians, p99 and ratios.
//!
//! ```text
//! cargo bench --bench compare                 # full run, a few minutes on 2 cores
//! cargo bench --bench compare -- --quick      # every row briefly, small N (also when CI is set)
//! cargo bench --bench compare -- read diff    # only some rows
//! ```
//!
//! Nothing is asserted: the issue's goals are printed next to the rows as
//! information (machines are noisy). `BENCHMARKS.md` holds a full run and
//! explains where the time goes.
//!
//! # Layout
//!
//! - `measure.rs`: warm-up, calibration, interleaved rounds, percentiles.
//! - `fixtures.rs`: documents, `HashMap` baselines, patches, a small RNG.
//! - `report.rs`: the table and the goals.
//! - One file per row of the issue: `transition.rs`, `snapshot.rs`,
//!   `rollback.rs`, `read.rs`, `diff.rs`, `cold.rs`, `memory.rs`, `throughput.rs`,
//!   the durable rows on the SQLite journal in `durable.rs`, and many
//!   tenants with passivation in `scale.rs`.
//!
//! Everything runs on a tokio runtime with 2 workers; the measuring loop is
//! itself a task on it, as a service's request handler would be.

mod cold;
mod diff;
mod durable;
mod fixtures;
mod measure;
mod memory;
mod read;
mod report;
mod rollback;
mod scale;
mod snapshot;
mod throughput;
mod transition;

use std::alloc::System;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use cap::Cap;
use rewind::core::Doc;
use rewind::runtime::Runtime;

use crate::fixtures::Map;
use crate::measure::Plan;
use crate::report::Line;

/// Counts live heap bytes, for the memory row. Every allocation of the
/// process pays one atomic add, rewind and baselines alike.
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Heap bytes currently allocated by the whole process.
pub(crate) fn heap_bytes() -> usize {
    ALLOCATOR.allocated()
}

/// The rows of the issue, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    Transition,
    Snapshot,
    Rollback,
    Read,
    Diff,
    Cold,
    Memory,
    Throughput,
    Durable,
    Recovery,
    Scale,
}

impl Row {
    const ALL: [Row; 11] = [
        Row::Transition,
        Row::Snapshot,
        Row::Rollback,
        Row::Read,
        Row::Diff,
        Row::Cold,
        Row::Memory,
        Row::Throughput,
        Row::Durable,
        Row::Recovery,
        Row::Scale,
    ];

    fn name(self) -> &'static str {
        match self {
            Row::Transition => "transition",
            Row::Snapshot => "snapshot",
            Row::Rollback => "rollback",
            Row::Read => "read",
            Row::Diff => "diff",
            Row::Cold => "cold",
            Row::Memory => "memory",
            Row::Throughput => "throughput",
            Row::Durable => "durable",
            Row::Recovery => "recovery",
            Row::Scale => "scale",
        }
    }
}

/// Command line: `--quick` and optional row names. `cargo bench` adds
/// `--bench`, which is ignored.
struct Options {
    quick: bool,
    rows: Vec<Row>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        let mut options = Options {
            quick: ci,
            rows: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--bench" => {}
                name => match Row::ALL.iter().find(|r| r.name() == name) {
                    Some(row) => options.rows.push(*row),
                    None => bail!(
                        "unknown argument '{name}': expected --quick or a row name ({})",
                        Row::ALL.map(Row::name).join(", ")
                    ),
                },
            }
        }
        if options.rows.is_empty() {
            options.rows = Row::ALL.to_vec();
        }
        Ok(options)
    }

    fn runs(&self, row: Row) -> bool {
        self.rows.contains(&row)
    }
}

/// What every row needs.
pub(crate) struct Ctx {
    pub(crate) quick: bool,
    pub(crate) plan: Plan,
    pub(crate) runtime: Runtime<Doc>,
    /// Document size at which size-specific goals are checked (100k; the
    /// largest quick size in quick mode).
    pub(crate) goal_n: usize,
}

impl Ctx {
    /// Sub-microsecond operations are timed in batches lasting this long.
    pub(crate) const SMALL_BATCH: Duration = Duration::from_micros(20);
    /// Reads (tens of ns) are timed in larger batches.
    pub(crate) const READ_BATCH: Duration = Duration::from_micros(200);
}

/// One document size: the same content as a rewind `Doc` and as a
/// `HashMap` for the baselines.
pub(crate) struct Fixture {
    pub(crate) n: usize,
    pub(crate) doc: Doc,
    pub(crate) map: Arc<Map>,
}

impl Fixture {
    fn build(n: usize) -> Fixture {
        Fixture {
            n,
            doc: fixtures::doc(n),
            map: Arc::new(fixtures::map(n)),
        }
    }
}

fn progress(what: &str) {
    eprintln!("compare: {what}");
}

async fn run_all(options: Options) -> anyhow::Result<Vec<(Row, Line)>> {
    let quick = options.quick;
    let sizes: &[usize] = if quick {
        &[1_000, 10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let plan = if quick {
        Plan {
            warmup: Duration::from_millis(5),
            slice: Duration::from_millis(2),
            budget: Duration::from_millis(60),
            min_rounds: 2,
        }
    } else {
        Plan {
            warmup: Duration::from_millis(200),
            slice: Duration::from_millis(20),
            budget: Duration::from_secs(6),
            min_rounds: 5,
        }
    };
    let runtime = Runtime::<Doc>::start()
        .await
        .context("starting the rewind runtime")?;
    let ctx = Ctx {
        quick,
        plan,
        runtime,
        goal_n: if quick { 10_000 } else { 100_000 },
    };
    let mut lines = Vec::new();
    let per_size = [Row::Transition, Row::Snapshot, Row::Rollback, Row::Read];
    if per_size.iter().any(|r| options.runs(*r)) {
        for &n in sizes {
            progress(&format!("building a {n}-key document and HashMap"));
            let fixture = Fixture::build(n);
            if options.runs(Row::Transition) {
                progress(&format!("transition N={n}"));
                let rows = transition::run(&ctx, &fixture).await?;
                lines.extend(rows.into_iter().map(|l| (Row::Transition, l)));
            }
            if options.runs(Row::Snapshot) {
                progress(&format!("snapshot N={n}"));
                let rows = snapshot::run(&ctx, &fixture).await?;
                lines.extend(rows.into_iter().map(|l| (Row::Snapshot, l)));
            }
            if options.runs(Row::Rollback) {
                progress(&format!("rollback N={n}"));
                let rows = rollback::run(&ctx, &fixture).await?;
                lines.extend(rows.into_iter().map(|l| (Row::Rollback, l)));
                if Some(&n) == sizes.last() {
                    progress(&format!("rollback 1k vs {n}"));
                    let rows = rollback::size_independence(&ctx, &fixture, 1_000).await?;
                    lines.extend(rows.into_iter().map(|l| (Row::Rollback, l)));
                }
            }
            if options.runs(Row::Read) {
                progress(&format!("read N={n}"));
                let rows = read::run(&ctx, &fixture).await?;
                lines.extend(rows.into_iter().map(|l| (Row::Read, l)));
            }
        }
    }
    let doc_n = if quick { 10_000 } else { 100_000 };
    if options.runs(Row::Diff) {
        progress(&format!("diff N={doc_n}"));
        let rows = diff::run(&ctx, doc_n).await?;
        lines.extend(rows.into_iter().map(|l| (Row::Diff, l)));
    }
    if options.runs(Row::Cold) {
        progress("cold read");
        let rows = cold::run(&ctx).await?;
        lines.extend(rows.into_iter().map(|l| (Row::Cold, l)));
    }
    if options.runs(Row::Memory) {
        progress(&format!("memory N={doc_n}"));
        let rows = memory::in_child(doc_n)?;
        lines.extend(rows.into_iter().map(|l| (Row::Memory, l)));
    }
    if options.runs(Row::Throughput) {
        progress("throughput");
        let rows = throughput::run(&ctx).await?;
        lines.extend(rows.into_iter().map(|l| (Row::Throughput, l)));
    }
    if options.runs(Row::Durable) {
        progress("durable writes");
        let rows = durable::writes(&ctx).await?;
        lines.extend(rows.into_iter().map(|l| (Row::Durable, l)));
    }
    if options.runs(Row::Recovery) {
        progress("recovery");
        let rows = durable::recovery(&ctx).await?;
        lines.extend(rows.into_iter().map(|l| (Row::Recovery, l)));
    }
    if options.runs(Row::Scale) {
        progress("scale");
        let rows = scale::run(&ctx).await?;
        lines.extend(rows.into_iter().map(|l| (Row::Scale, l)));
    }
    ctx.runtime
        .shutdown()
        .await
        .context("shutting the runtime down")?;
    Ok(lines)
}

/// `model name` of the first CPU in /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() -> anyhow::Result<()> {
    if let Ok(n) = std::env::var(memory::CHILD_ENV) {
        // The memory row, measured in a process of its own.
        return memory::child_main(&n);
    }
    let options = Options::parse()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "rewind benches/compare ({} mode): {cores} cores, {}, load average {} at start",
        if options.quick { "quick" } else { "full" },
        cpu_model(),
        load_average(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let mut lines = runtime.block_on(async { tokio::spawn(run_all(options)).await })??;
    lines.sort_by_key(|(row, _)| *row);
    let lines: Vec<Line> = lines.into_iter().map(|(_, l)| l).collect();
    println!("load average {} at end", load_average());
    println!();
    report::print(&lines);
    Ok(())
}
