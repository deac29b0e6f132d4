//! The one table the bench prints, and the goals next to its rows
//! (information only: nothing is asserted, machines are noisy).

use std::fmt;

use crate::measure::{Kind, Stats};

/// A cell of the p50 / p99 columns.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value {
    /// Time per operation.
    Nanos(f64),
    /// Heap bytes held.
    Bytes(f64),
    /// Operations per second.
    Rate(f64),
    /// Overhead over one state, in percent.
    Percent(f64),
    /// Nothing to show.
    None,
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Nanos(ns) if ns < 1e3 => write!(f, "{ns:.1} ns"),
            Value::Nanos(ns) if ns < 1e6 => write!(f, "{:.2} us", ns / 1e3),
            Value::Nanos(ns) if ns < 1e9 => write!(f, "{:.2} ms", ns / 1e6),
            Value::Nanos(ns) => write!(f, "{:.2} s", ns / 1e9),
            Value::Bytes(b) if b < 1024.0 * 1024.0 => write!(f, "{:.1} KiB", b / 1024.0),
            Value::Bytes(b) => write!(f, "{:.1} MiB", b / (1024.0 * 1024.0)),
            Value::Rate(r) if r < 1e4 => write!(f, "{r:.0}/s"),
            Value::Rate(r) if r < 1e6 => write!(f, "{:.0}k/s", r / 1e3),
            Value::Rate(r) => write!(f, "{:.2}M/s", r / 1e6),
            Value::Percent(p) => write!(f, "{p:+.1}%"),
            Value::None => f.write_str("-"),
        }
    }
}

/// A goal of the issue, checked against a measurement.
#[derive(Clone, Debug)]
pub(crate) struct Goal {
    pub(crate) text: String,
    pub(crate) met: bool,
}

impl Goal {
    pub(crate) fn new(text: impl Into<String>, met: bool) -> Self {
        Goal {
            text: text.into(),
            met,
        }
    }
}

/// One printed line.
#[derive(Clone, Debug)]
pub(crate) struct Line {
    pub(crate) row: String,
    pub(crate) n: Option<usize>,
    pub(crate) variant: String,
    pub(crate) p50: Value,
    pub(crate) p99: Value,
    /// How many times better than the baseline (its p50 over this p50 for
    /// times; this rate over its rate for throughput; its bytes over these
    /// bytes for memory).
    pub(crate) ratio: Option<f64>,
    pub(crate) goal: Option<Goal>,
}

impl Line {
    /// A timed line; `baseline` gives the ratio column.
    pub(crate) fn timed(
        row: &str,
        n: Option<usize>,
        kind: Kind,
        what: &str,
        stats: &Stats,
        baseline: Option<&Stats>,
    ) -> Self {
        let ratio = baseline.map(|b| b.p50 / stats.p50);
        Line {
            row: row.to_owned(),
            n,
            variant: format!("{}: {what}", kind.as_str()),
            p50: Value::Nanos(stats.p50),
            p99: Value::Nanos(stats.p99),
            ratio,
            goal: None,
        }
    }

    pub(crate) fn set_goal(&mut self, text: impl Into<String>, met: bool) {
        self.goal = Some(Goal::new(text, met));
    }
}

/// One line per variant of a comparison; every variant but the baseline
/// gets its ratio against `stats[baseline]`.
pub(crate) fn timed_lines(
    row: &str,
    n: Option<usize>,
    labels: &[(Kind, String)],
    stats: &[Stats],
    baseline: usize,
) -> Vec<Line> {
    labels
        .iter()
        .zip(stats)
        .enumerate()
        .map(|(i, ((kind, what), s))| {
            let base = (i != baseline).then_some(&stats[baseline]);
            Line::timed(row, n, *kind, what, s, base)
        })
        .collect()
}

/// `10k`, `1M`, ...
pub(crate) fn size(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn ratio_text(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}x")
    } else if ratio >= 10.0 {
        format!("{ratio:.1}x")
    } else {
        format!("{ratio:.2}x")
    }
}

/// Prints the table, then the goals with met / missed.
pub(crate) fn print(lines: &[Line]) {
    let header = [
        "row",
        "N",
        "variant",
        "p50",
        "p99",
        "vs baseline",
        "goal (info only)",
    ];
    let cells: Vec<[String; 7]> = lines
        .iter()
        .map(|l| {
            [
                l.row.clone(),
                l.n.map(size).unwrap_or_else(|| "-".into()),
                l.variant.clone(),
                l.p50.to_string(),
                l.p99.to_string(),
                l.ratio.map(ratio_text).unwrap_or_else(|| "-".into()),
                l.goal
                    .as_ref()
                    .map(|g| format!("{} {}", if g.met { "met" } else { "MISSED" }, g.text))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print_row = |row: &[String]| {
        let mut out = String::from("|");
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            // Numbers right-aligned, text left-aligned.
            let pad = w - c.chars().count();
            if (3..=5).contains(&i) {
                out.push_str(&format!(" {}{c} |", " ".repeat(pad)));
            } else {
                out.push_str(&format!(" {c}{} |", " ".repeat(pad)));
            }
        }
        println!("{out}");
    };
    print_row(&header.map(String::from));
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if (3..=5).contains(&i) {
                format!("{}:", "-".repeat(w.saturating_sub(1)))
            } else {
                "-".repeat(*w)
            }
        })
        .collect();
    print_row(&rule);
    for row in &cells {
        print_row(row);
    }
    println!();
    println!("p50 / p99: per operation; a sample is one operation for microsecond-scale");
    println!("  operations and a batch mean for sub-microsecond ones. Memory rows: p50 = live");
    println!("  heap bytes held, p99 = overhead over one state. Throughput rows: p50 = median");
    println!("  100 ms window, p99 = 1st-percentile (slowest) window.");
    println!("vs baseline: baseline p50 / p50 for times (higher is better), rate / baseline");
    println!("  rate for throughput, 60 deep copies / bytes held for memory; for the rollback");
    println!("  size row, p50 at the small size / p50 at the large size.");
    println!();
    println!("Goals of the issue (information only, nothing is asserted):");
    for l in lines {
        if let Some(goal) = &l.goal {
            let n = l.n.map(|n| format!(" N={}", size(n))).unwrap_or_default();
            println!(
                "  [{}] {}{n}, {}: {}",
                if goal.met { "met" } else { "MISSED" },
                l.row,
                l.variant,
                goal.text
            );
        }
    }
}
