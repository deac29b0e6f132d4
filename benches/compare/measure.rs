//! The sampling loop: warm-up and calibration, then interleaved rounds so
//! that machine noise hits rewind and its baselines alike.
//!
//! A *sample* is one batch of `iters` operations; its value is the batch
//! time divided by `iters`. Operations of a microsecond or more (actor round
//! trips, deep copies) run one per batch, so their p99 is a real per-op
//! tail; sub-microsecond ones run in calibrated batches and their p99 is the
//! tail of batch means.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A batch in flight; resolves to the time its operations took. The variant
/// decides what the timed region holds (setup and drops stay outside).
pub(crate) type BatchFuture = Pin<Box<dyn Future<Output = Duration> + Send>>;

/// Runs a batch of `iters` operations.
type BatchFn<'a> = Box<dyn FnMut(u64) -> BatchFuture + Send + 'a>;

/// Which side of the comparison a variant is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// rewind through the tenant actor (what a service sees).
    Actor,
    /// rewind through the `Tenant` handle, answered from the published
    /// timeline without a message.
    Handle,
    /// The same work on the core, no actor: the limit.
    Direct,
    /// The deep-copy (or plain std) way.
    Baseline,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Actor => "rewind via actor",
            Kind::Handle => "rewind via handle, no message",
            Kind::Direct => "direct core (the limit)",
            Kind::Baseline => "baseline",
        }
    }
}

/// How many operations a sample holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Batch {
    /// One operation per sample: the p99 is a per-operation tail.
    PerOp,
    /// As many operations as take about this long (calibrated in warm-up).
    Lasting(Duration),
}

/// One contender of a comparison.
pub(crate) struct Variant<'a> {
    pub(crate) kind: Kind,
    /// What exactly is measured, e.g. `Tenant::apply`.
    pub(crate) what: String,
    batch: Batch,
    run: BatchFn<'a>,
}

impl<'a> Variant<'a> {
    /// A variant whose batches are futures (actor requests).
    pub(crate) fn with_future(
        kind: Kind,
        what: impl Into<String>,
        batch: Batch,
        run: impl FnMut(u64) -> BatchFuture + Send + 'a,
    ) -> Self {
        Variant {
            kind,
            what: what.into(),
            batch,
            run: Box::new(run),
        }
    }

    /// A synchronous variant: `run(iters)` does the batch and returns the
    /// time its timed region took.
    pub(crate) fn sync(
        kind: Kind,
        what: impl Into<String>,
        batch: Batch,
        mut run: impl FnMut(u64) -> Duration + Send + 'a,
    ) -> Self {
        Self::with_future(kind, what, batch, move |iters| {
            let took = run(iters);
            Box::pin(std::future::ready(took))
        })
    }

    /// Kind and description, for the report (the variant itself borrows
    /// what it measures).
    pub(crate) fn label(&self) -> (Kind, String) {
        (self.kind, self.what.clone())
    }

    /// Runs batches for `warmup`, then returns the batch size.
    async fn calibrate(&mut self, warmup: Duration) -> u64 {
        let started = Instant::now();
        let mut iters = 1u64;
        loop {
            let took = (self.run)(iters).await;
            let enough = started.elapsed() >= warmup;
            match self.batch {
                Batch::PerOp if enough => return 1,
                Batch::PerOp => {}
                Batch::Lasting(target) if enough => {
                    let per_op = took.as_nanos().max(1) / u128::from(iters);
                    let wanted = (target.as_nanos() / per_op.max(1)).max(1);
                    return u64::try_from(wanted).unwrap_or(u64::MAX);
                }
                Batch::Lasting(target) => {
                    if took < target {
                        iters = iters.saturating_mul(2);
                    }
                }
            }
        }
    }
}

/// How long a comparison runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Warm-up per variant, before calibration.
    pub(crate) warmup: Duration,
    /// Time each variant gets per round before the next one runs.
    pub(crate) slice: Duration,
    /// Rounds go on until this much time has passed...
    pub(crate) budget: Duration,
    /// ...and at least this many rounds ran.
    pub(crate) min_rounds: u32,
}

/// Distribution of a variant's samples, in nanoseconds per operation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) samples: usize,
    pub(crate) iters: u64,
}

impl Stats {
    /// Percentiles of `values` (nearest rank).
    pub(crate) fn of(mut values: Vec<f64>, iters: u64) -> Stats {
        assert!(!values.is_empty(), "a variant ran no sample");
        values.sort_by(f64::total_cmp);
        Stats {
            p50: percentile(&values, 0.50),
            p99: percentile(&values, 0.99),
            samples: values.len(),
            iters,
        }
    }
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Measures every variant, alternating between them every `plan.slice`.
/// Returns one [`Stats`] per variant, in order.
pub(crate) async fn compare(plan: &Plan, variants: &mut [Variant<'_>]) -> Vec<Stats> {
    let mut iters = Vec::with_capacity(variants.len());
    for variant in variants.iter_mut() {
        iters.push(variant.calibrate(plan.warmup).await);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let started = Instant::now();
    let mut rounds = 0;
    while rounds < plan.min_rounds || started.elapsed() < plan.budget {
        for ((variant, &n), out) in variants.iter_mut().zip(&iters).zip(&mut samples) {
            let slice_started = Instant::now();
            loop {
                let took = (variant.run)(n).await;
                out.push(took.as_nanos() as f64 / n as f64);
                if slice_started.elapsed() >= plan.slice {
                    break;
                }
            }
        }
        rounds += 1;
    }
    let stats: Vec<Stats> = samples
        .into_iter()
        .zip(iters)
        .map(|(values, n)| Stats::of(values, n))
        .collect();
    for (variant, s) in variants.iter().zip(&stats) {
        eprintln!(
            "  {:>10.1} ns p50 {:>10.1} ns p99  {:>7} samples x {:>5} ops  {}: {}",
            s.p50,
            s.p99,
            s.samples,
            s.iters,
            variant.kind.as_str(),
            variant.what
        );
    }
    stats
}
