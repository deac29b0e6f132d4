//! The acknowledgement tail of `SqliteJournal` under a durable load.
//!
//! Many async writers (tokio) each append single-entry batches of ~200-byte
//! payloads to their own tenant, one after the other, as fast as the
//! acknowledgements come back (the runtime acknowledges a user's write only
//! once its `append` is durable). Like the runtime, every `IMAGE_EVERY`
//! entries a tenant saves an image (100 KB to 1 MB here) off its write path,
//! then deletes the entries it covers and its previous image. Each tenant
//! starts at a random point of its image cycle, as on a server that has run
//! for a while, so images come at a steady rate from the start.
//!
//! Every variant runs the same load on a fresh file in the same process, in
//! interleaved rounds (so a change in the machine's load hits every variant
//! alike), and the table prints them side by side, all rounds together: `p50`, `p99`, `p99.9` and `max` of
//! each append's acknowledgement, appends per second, images stored (and
//! their `save_image` latency), commits, checkpoints run by the journal
//! (SQLite's automatic ones are not counted) and the largest WAL file seen
//! (sampled every 5 ms). Variants: see [`variants`].
//!
//! ```text
//! cargo bench -p rewind-store --bench tail                  # 6 rounds of 4 s per variant
//! cargo bench -p rewind-store --bench tail -- --quick       # 1 round of 1.5 s per variant
//! cargo bench -p rewind-store --bench tail -- --writers 16  # other concurrency
//! cargo bench -p rewind-store --bench tail -- baseline      # only some variants
//! ```

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rewind_core::{TenantId, Timestamp};
use rewind_runtime::journal::{Entry, EntryKind, Image, Journal};
use rewind_store::{SqliteJournal, SqliteOptions, Tuning};

/// Entries a tenant appends between two images (the runtime's default).
const IMAGE_EVERY: u64 = 1000;
/// Bytes of an entry's payload.
const PAYLOAD_BYTES: usize = 200;
/// Smallest and largest image payload.
const IMAGE_BYTES: (usize, usize) = (100 << 10, 1 << 20);
/// How often the WAL file's size is sampled.
const WAL_SAMPLE: Duration = Duration::from_millis(5);

/// One way of running the journal.
struct Variant {
    /// The table's label.
    name: &'static str,
    /// The writer's internal switches.
    tuning: Tuning,
}

/// The variants, in table order: `baseline` is the journal before the
/// background checkpointer and maintenance apart, `default` what
/// `SqliteJournal::open` does now; the two between take one change each.
fn variants() -> Vec<Variant> {
    let variant = |name, background_checkpoint, maintenance_apart| Variant {
        name,
        tuning: Tuning {
            background_checkpoint,
            maintenance_apart,
        },
    };
    vec![
        variant("baseline", false, false),
        variant("checkpointer", true, false),
        variant("apart", false, true),
        variant("default", true, true),
    ]
}

/// What the command line asks for.
struct Settings {
    /// How long each variant runs per round.
    duration: Duration,
    /// Rounds: each runs every variant once.
    rounds: usize,
    /// Concurrent writers (one tenant each).
    writers: usize,
    /// Variant names to run; empty runs all.
    only: Vec<String>,
}

impl Settings {
    /// Parses `--quick`, `--writers N` and variant names; ignores the
    /// `--bench` cargo passes.
    fn parse() -> Settings {
        let mut settings = Settings {
            duration: Duration::from_secs(4),
            rounds: 6,
            writers: 64,
            only: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => {
                    settings.duration = Duration::from_millis(1500);
                    settings.rounds = 1;
                }
                "--writers" => {
                    settings.writers = args
                        .next()
                        .and_then(|n| n.parse().ok())
                        .expect("--writers takes a number");
                }
                "--bench" => {}
                name => settings.only.push(name.to_owned()),
            }
        }
        settings
    }
}

/// xorshift64: payload bytes, image sizes and cycle offsets.
struct Rng(u64);

impl Rng {
    /// Seeded; never zero.
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` pseudo-random bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A value in `low..=high`.
    fn between(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() % (high - low + 1) as u64) as usize
    }
}

/// What one writer saw.
#[derive(Default)]
struct WriterReport {
    /// Each append's acknowledgement latency, in microseconds.
    acks: Vec<u32>,
    /// Each image's `save_image` latency, in microseconds.
    images: Vec<u32>,
}

/// What one variant's runs saw.
#[derive(Default)]
struct RunReport {
    /// Every append's acknowledgement latency, in microseconds (sorted
    /// before printing).
    acks: Vec<u32>,
    /// Every image's `save_image` latency, in microseconds (sorted before
    /// printing).
    images: Vec<u32>,
    /// Wall time of the load.
    elapsed: Duration,
    /// Transactions the writer committed.
    commits: u64,
    /// Checkpoints run outside SQLite's automatic ones.
    checkpoints: u64,
    /// Largest WAL file seen.
    wal_max: u64,
    /// WAL file after the load, before close (the largest of the rounds).
    wal_end: u64,
}

/// One tenant's writer: appends until `deadline`, storing an image every
/// `IMAGE_EVERY` entries off its write path, as the runtime does.
async fn write(
    journal: Arc<SqliteJournal>,
    index: usize,
    deadline: Instant,
) -> Result<WriterReport, String> {
    let tenant = TenantId::new(format!("tenant-{index:03}")).map_err(|e| e.to_string())?;
    let mut rng = Rng::new(index as u64 + 1);
    let mut report = WriterReport::default();
    let mut seq = 0;
    let mut image_seq = 0;
    let mut since_image = rng.between(0, IMAGE_EVERY as usize - 1) as u64;
    let mut image_task: Option<tokio::task::JoinHandle<Result<u32, String>>> = None;
    while Instant::now() < deadline {
        seq += 1;
        let entry = Entry {
            tenant: tenant.clone(),
            seq: seq.into(),
            at: Timestamp::now(),
            kind: EntryKind::Op,
            payload: rng.bytes(PAYLOAD_BYTES),
        };
        let started = Instant::now();
        journal
            .append(vec![entry])
            .await
            .map_err(|e| e.to_string())?;
        report.acks.push(micros(started.elapsed()));
        since_image += 1;
        if since_image >= IMAGE_EVERY && image_task.as_ref().is_none_or(|t| t.is_finished()) {
            if let Some(task) = image_task.take() {
                report.images.push(task.await.map_err(|e| e.to_string())??);
            }
            let size = rng.between(IMAGE_BYTES.0, IMAGE_BYTES.1);
            let image = Image {
                tenant: tenant.clone(),
                seq: seq.into(),
                at: Timestamp::now(),
                name: None,
                payload: rng.bytes(size),
            };
            image_task = Some(tokio::spawn(store_image(journal.clone(), image, image_seq)));
            image_seq = seq;
            since_image = 0;
        }
    }
    if let Some(task) = image_task {
        report.images.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok(report)
}

/// Saves `image`, then (on a blocking thread, as the runtime does) deletes
/// the entries it covers and the `previous` image. Returns the save's
/// latency in microseconds.
async fn store_image(
    journal: Arc<SqliteJournal>,
    image: Image,
    previous: u64,
) -> Result<u32, String> {
    let (tenant, seq) = (image.tenant.clone(), image.seq);
    let started = Instant::now();
    journal.save_image(image).await.map_err(|e| e.to_string())?;
    let saved = micros(started.elapsed());
    tokio::task::spawn_blocking(move || {
        journal.delete_up_to(&tenant, seq)?;
        if previous > 0 {
            journal.delete_image(&tenant, previous.into())?;
        }
        Ok::<_, rewind_runtime::journal::JournalError>(())
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(saved)
}

impl RunReport {
    /// Adds another run's results.
    fn add(&mut self, run: RunReport) {
        self.acks.extend(run.acks);
        self.images.extend(run.images);
        self.elapsed += run.elapsed;
        self.commits += run.commits;
        self.checkpoints += run.checkpoints;
        self.wal_max = self.wal_max.max(run.wal_max);
        self.wal_end = self.wal_end.max(run.wal_end);
    }
}

/// Runs the load on a fresh journal opened by `variant`.
fn run(variant: &Variant, settings: &Settings, dir: &Path, round: usize) -> RunReport {
    let path = dir.join(format!("{}-{round}.db", variant.name));
    let journal = Arc::new(
        SqliteJournal::open_tuned(&path, SqliteOptions::default(), variant.tuning)
            .expect("open journal"),
    );
    let wal = wal_path(&path);
    let sampling = Arc::new(AtomicBool::new(true));
    let wal_max = Arc::new(AtomicU64::new(0));
    let sampler = std::thread::spawn({
        let (wal, sampling, wal_max) = (wal.clone(), sampling.clone(), wal_max.clone());
        move || {
            while sampling.load(Ordering::Relaxed) {
                wal_max.fetch_max(file_len(&wal), Ordering::Relaxed);
                std::thread::sleep(WAL_SAMPLE);
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let deadline = started + settings.duration;
    let reports = runtime.block_on(async {
        let tasks: Vec<_> = (0..settings.writers)
            .map(|index| tokio::spawn(write(journal.clone(), index, deadline)))
            .collect();
        let mut reports = Vec::new();
        for task in tasks {
            reports.push(task.await.expect("writer task").expect("writer"));
        }
        reports
    });
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("WAL sampler");
    let wal_end = file_len(&wal);
    let (commits, checkpoints) = (journal.commits(), journal.checkpoints());
    drop(runtime);
    Arc::into_inner(journal)
        .expect("the writers are done")
        .close()
        .expect("close");
    let acks = reports
        .iter()
        .flat_map(|r| r.acks.iter().copied())
        .collect();
    let images = reports
        .iter()
        .flat_map(|r| r.images.iter().copied())
        .collect();
    RunReport {
        acks,
        images,
        elapsed,
        commits,
        checkpoints,
        wal_max: wal_max.load(Ordering::Relaxed),
        wal_end,
    }
}

/// The WAL file next to the journal file.
fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A file's length; 0 if it does not exist.
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A duration in whole microseconds, saturating.
fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The nearest-rank quantile `q` of sorted microseconds, in milliseconds.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// Prints the table header.
fn print_header(settings: &Settings) {
    println!(
        "append ack latency: {} writers, single-entry {PAYLOAD_BYTES}-byte appends, an image of {}-{} KiB every {IMAGE_EVERY} entries per tenant, {} round(s) of {:?} per variant",
        settings.writers,
        IMAGE_BYTES.0 >> 10,
        IMAGE_BYTES.1 >> 10,
        settings.rounds,
        settings.duration
    );
    println!();
    println!(
        "| variant      | appends | appends/s | ack p50 | ack p99 | ack p99.9 | ack max | images | image p50 | image max | commits | checkpoints | WAL max | WAL end |"
    );
    println!(
        "| ------------ | ------: | --------: | ------: | ------: | --------: | ------: | -----: | --------: | --------: | ------: | ----------: | ------: | ------: |"
    );
}

/// Prints one variant's row (times in ms, sizes in MiB).
fn print_row(name: &str, report: &mut RunReport) {
    report.acks.sort_unstable();
    report.images.sort_unstable();
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    println!(
        "| {name:<12} | {:>7} | {:>9.0} | {:>7.2} | {:>7.2} | {:>9.2} | {:>7.2} | {:>6} | {:>9.2} | {:>9.2} | {:>7} | {:>11} | {:>7.1} | {:>7.1} |",
        report.acks.len(),
        report.acks.len() as f64 / report.elapsed.as_secs_f64(),
        quantile(&report.acks, 0.50),
        quantile(&report.acks, 0.99),
        quantile(&report.acks, 0.999),
        quantile(&report.acks, 1.0),
        report.images.len(),
        quantile(&report.images, 0.50),
        quantile(&report.images, 1.0),
        report.commits,
        report.checkpoints,
        mib(report.wal_max),
        mib(report.wal_end),
    );
}

fn main() {
    let settings = Settings::parse();
    let dir = std::env::temp_dir().join(format!("rewind-store-tail-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench directory");
    print_header(&settings);
    let chosen: Vec<Variant> = variants()
        .into_iter()
        .filter(|v| settings.only.is_empty() || settings.only.iter().any(|n| n == v.name))
        .collect();
    let mut reports: Vec<RunReport> = chosen.iter().map(|_| RunReport::default()).collect();
    for round in 0..settings.rounds {
        for (variant, report) in chosen.iter().zip(&mut reports) {
            report.add(run(variant, &settings, &dir, round));
        }
    }
    for (variant, report) in chosen.iter().zip(&mut reports) {
        print_row(variant.name, report);
    }
    std::fs::remove_dir_all(&dir).expect("remove the bench directory");
}
