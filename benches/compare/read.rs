//! Row "read": the current state through `Tenant::current()` (an atomic
//! load and an O(1) clone, no message), with and without a concurrent
//! writer, against a `RwLock<HashMap>` read of one key.
//!
//! The reader runs on a blocking-pool thread so that the writer task and
//! the tenant actor have the runtime's workers to themselves: reader and
//! writer really run in parallel, as they would in a service.

use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use rewind::core::Patch;
use rewind::runtime::Tenant;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::fixtures::{key, one_key_patches, Map, Rng};
use crate::measure::{compare, Batch, Kind, Plan, Stats, Variant};
use crate::report::{timed_lines, Line};
use crate::{Ctx, Fixture};

const ROW: &str = "read current state";

/// What the background writer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Idle = 0,
    /// `Tenant::apply` on the tenant being read.
    SameTenant = 1,
    /// `Tenant::apply` on another tenant.
    OtherTenant = 2,
    /// Write lock on the baseline map, update one key.
    Lock = 3,
    Stop = 4,
}

/// A task that writes in a loop in the mode it is told; `served` says which
/// mode its last write was in, so a reader knows the writer is at work.
struct Writer {
    mode: watch::Sender<Mode>,
    served: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

impl Writer {
    fn spawn(
        same: Tenant,
        other: Tenant,
        lock: Arc<RwLock<Map>>,
        patches: Arc<Vec<Patch>>,
        keys: Arc<Vec<String>>,
    ) -> Writer {
        let (mode, mut rx) = watch::channel(Mode::Idle);
        let served = Arc::new(AtomicU8::new(Mode::Idle as u8));
        let task = tokio::spawn({
            let served = Arc::clone(&served);
            async move {
                let mut i = 0usize;
                loop {
                    i = i.wrapping_add(1);
                    let mode = *rx.borrow_and_update();
                    match mode {
                        Mode::Idle => {
                            served.store(Mode::Idle as u8, Ordering::Release);
                            if rx.changed().await.is_err() {
                                return;
                            }
                            continue;
                        }
                        Mode::SameTenant | Mode::OtherTenant => {
                            let tenant = if mode == Mode::SameTenant {
                                &same
                            } else {
                                &other
                            };
                            let patch = patches[i % patches.len()].clone();
                            tenant.apply(patch).await.expect("writer apply");
                        }
                        Mode::Lock => {
                            {
                                let mut map = lock.write().expect("lock");
                                *map.get_mut(&keys[i % keys.len()]).expect("key") += 1;
                            }
                            if i.is_multiple_of(64) {
                                tokio::task::yield_now().await;
                            }
                        }
                        Mode::Stop => return,
                    }
                    served.store(mode as u8, Ordering::Release);
                }
            }
        });
        Writer { mode, served, task }
    }

    /// Switches mode and waits (spinning, on the reader's thread) until the
    /// writer works in it.
    fn set(mode: &watch::Sender<Mode>, served: &AtomicU8, wanted: Mode) {
        mode.send_if_modified(|m| std::mem::replace(m, wanted) != wanted);
        let deadline = Instant::now() + Duration::from_secs(5);
        while served.load(Ordering::Acquire) != wanted as u8 {
            assert!(
                Instant::now() < deadline,
                "the writer did not switch to {wanted:?}"
            );
            std::hint::spin_loop();
        }
    }
}

/// A read variant: `read()` once per iteration, the writer in `mode`.
fn reader<'a>(
    kind: Kind,
    what: &str,
    writer: (&watch::Sender<Mode>, &Arc<AtomicU8>),
    mode: Mode,
    mut read: impl FnMut(usize) + Send + 'a,
) -> Variant<'a> {
    let (tx, served) = (writer.0.clone(), Arc::clone(writer.1));
    let mut next = 0usize;
    Variant::sync(kind, what, Batch::Lasting(Ctx::READ_BATCH), move |iters| {
        Writer::set(&tx, &served, mode);
        let started = Instant::now();
        for _ in 0..iters {
            next = next.wrapping_add(1);
            read(next);
        }
        started.elapsed()
    })
}

fn measure(
    plan: Plan,
    tenant: Tenant,
    lock: Arc<RwLock<Map>>,
    keys: Arc<Vec<String>>,
    writer: (&watch::Sender<Mode>, &Arc<AtomicU8>),
) -> (Vec<(Kind, String)>, Vec<Stats>) {
    let k = keys.len();
    let timeline = tenant.timeline();
    let current = |tenant: Tenant| {
        move |_| {
            black_box(tenant.current());
        }
    };
    let locked_read = |lock: Arc<RwLock<Map>>, keys: Arc<Vec<String>>| {
        move |i: usize| {
            let map = lock.read().expect("lock");
            black_box(map.get(&keys[i % k]));
        }
    };
    let mut variants = vec![
        reader(
            Kind::Handle,
            "Tenant::current()",
            writer,
            Mode::Idle,
            current(tenant.clone()),
        ),
        reader(
            Kind::Handle,
            "Tenant::current() + get one key",
            writer,
            Mode::Idle,
            {
                let (tenant, keys) = (tenant.clone(), Arc::clone(&keys));
                move |i| {
                    let doc = tenant.current();
                    black_box(doc.as_object().and_then(|o| o.get(keys[i % k].as_str())));
                }
            },
        ),
        reader(
            Kind::Direct,
            "clone the head of a &Timeline (no ArcSwap)",
            writer,
            Mode::Idle,
            move |_| {
                black_box(timeline.head().clone());
            },
        ),
        reader(
            Kind::Baseline,
            "RwLock<HashMap> read lock + get one key",
            writer,
            Mode::Idle,
            locked_read(Arc::clone(&lock), Arc::clone(&keys)),
        ),
        reader(
            Kind::Handle,
            "Tenant::current(), writer applying to the same tenant",
            writer,
            Mode::SameTenant,
            current(tenant.clone()),
        ),
        reader(
            Kind::Handle,
            "Tenant::current(), writer applying to another tenant",
            writer,
            Mode::OtherTenant,
            current(tenant),
        ),
        reader(
            Kind::Baseline,
            "RwLock<HashMap> read + get one key, writer updating under the write lock",
            writer,
            Mode::Lock,
            locked_read(lock, keys),
        ),
    ];
    let stats = tokio::runtime::Handle::current().block_on(compare(&plan, &mut variants));
    (variants.iter().map(Variant::label).collect(), stats)
}

pub(crate) async fn run(ctx: &Ctx, fx: &Fixture) -> anyhow::Result<Vec<Line>> {
    let n = fx.n;
    let mut rng = Rng::new(0x7e57_0004 ^ n as u64);
    let patches = one_key_patches(&mut rng, n, 1024);
    let keys: Arc<Vec<String>> = Arc::new((0..1024).map(|_| key(rng.below(n))).collect());
    let (same_id, other_id) = (format!("read_{n}"), format!("read_other_{n}"));
    let same = ctx.runtime.create_tenant(&same_id, fx.doc.clone()).await?;
    let other = ctx.runtime.create_tenant(&other_id, fx.doc.clone()).await?;
    let lock = Arc::new(RwLock::new((*fx.map).clone()));
    let writer = Writer::spawn(
        same.clone(),
        other,
        Arc::clone(&lock),
        patches,
        Arc::clone(&keys),
    );

    let plan = ctx.plan;
    let (tx, served) = (writer.mode.clone(), Arc::clone(&writer.served));
    let (labels, stats) = tokio::task::spawn_blocking(move || {
        let measured = measure(plan, same, lock, keys, (&tx, &served));
        Writer::set(&tx, &served, Mode::Idle);
        measured
    })
    .await?;
    writer.mode.send_replace(Mode::Stop);
    writer.task.await?;
    ctx.runtime.delete_tenant(&same_id).await?;
    ctx.runtime.delete_tenant(&other_id).await?;

    let mut lines = timed_lines(ROW, Some(n), &labels[..4], &stats[..4], 3);
    lines.extend(timed_lines(ROW, Some(n), &labels[4..], &stats[4..], 2));
    for i in [0, 4, 5] {
        lines[i].set_goal("p50 <= 25 ns", stats[i].p50 <= 25.0);
    }
    Ok(lines)
}
