//! Passivation: idle and least recently used tenants leave memory and come
//! back from the journal on their next request, once, and alone when they
//! cannot.
//!
//! The journal here is a `MemoryJournal` behind a wrapper that counts how
//! often each tenant is read back and can damage what a tenant reads.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rewind_core::{Doc, Patch, Revision, TenantId};
use rewind_runtime::journal::{Durable, Entry, Image, ImageQuery, JournalSeq};
use rewind_runtime::{
    Error, Journal, JournalError, Runtime, SupervisorMsg, TenantConfig, TenantMsg,
};
use rewind_store::MemoryJournal;
use serde_json::json;

/// A `MemoryJournal` that counts read-backs (`load_image` calls) per tenant,
/// hands out undecodable entries for tenants marked damaged, and fails the
/// next reads when told to (a disk that errs, then recovers).
#[derive(Default)]
struct Watched {
    inner: MemoryJournal,
    loads: Mutex<HashMap<TenantId, usize>>,
    damaged: Mutex<HashSet<TenantId>>,
    failing_reads: std::sync::atomic::AtomicUsize,
}

impl Watched {
    fn loads(&self, tenant: &str) -> usize {
        let id = TenantId::new(tenant).unwrap();
        self.loads.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn fail_reads(&self, count: usize) {
        self.failing_reads
            .store(count, std::sync::atomic::Ordering::SeqCst);
    }

    fn damage(&self, tenant: &str) {
        self.damaged
            .lock()
            .unwrap()
            .insert(TenantId::new(tenant).unwrap());
    }
}

impl Journal for Watched {
    fn append(&self, entries: Vec<Entry>) -> Durable {
        self.inner.append(entries)
    }
    fn save_image(&self, image: Image) -> Durable {
        self.inner.save_image(image)
    }
    fn flush(&self) -> Durable {
        self.inner.flush()
    }
    fn tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        self.inner.tenants()
    }
    fn live_tenants(&self) -> Result<Vec<TenantId>, JournalError> {
        self.inner.live_tenants()
    }
    fn read(
        &self,
        tenant: &TenantId,
        from: JournalSeq,
        to: JournalSeq,
    ) -> Result<Vec<Entry>, JournalError> {
        let mut entries = self.inner.read(tenant, from, to)?;
        if self.damaged.lock().unwrap().contains(tenant) {
            for entry in &mut entries {
                entry.payload = b"{not json".to_vec();
            }
        }
        Ok(entries)
    }
    fn highest_seq(&self, tenant: &TenantId) -> Result<JournalSeq, JournalError> {
        self.inner.highest_seq(tenant)
    }
    fn delete_up_to(&self, tenant: &TenantId, to: JournalSeq) -> Result<(), JournalError> {
        self.inner.delete_up_to(tenant, to)
    }
    fn load_image(
        &self,
        tenant: &TenantId,
        query: &ImageQuery,
    ) -> Result<Option<Image>, JournalError> {
        *self
            .loads
            .lock()
            .unwrap()
            .entry(tenant.clone())
            .or_default() += 1;
        let failing = self.failing_reads.fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |left| left.checked_sub(1),
        );
        if failing.is_ok() {
            return Err(JournalError::Storage("disk read error (injected)".into()));
        }
        self.inner.load_image(tenant, query)
    }
    fn delete_image(&self, tenant: &TenantId, seq: JournalSeq) -> Result<(), JournalError> {
        self.inner.delete_image(tenant, seq)
    }
}

fn set(n: i64) -> Patch {
    Patch::from_json(&json!([{"op": "add", "path": "/n", "value": n}])).unwrap()
}

fn no_idle_passivation() -> TenantConfig {
    TenantConfig {
        passivate_after: None,
        ..TenantConfig::default()
    }
}

async fn start(journal: &Arc<Watched>, max_active: usize, config: TenantConfig) -> Runtime<Doc> {
    Runtime::<Doc>::builder()
        .journal(Arc::clone(journal) as Arc<dyn Journal>)
        .tenant_defaults(config)
        .max_active(max_active)
        .timer_period(Duration::from_millis(10))
        .stop_idle_actors_after(Duration::from_millis(20))
        .start()
        .await
        .expect("the runtime starts")
}

async fn create(runtime: &Runtime<Doc>, id: &str) {
    let tenant = runtime.create_tenant(id, Doc::object()).await.unwrap();
    tenant.apply(set(1)).await.unwrap();
}

/// Waits until `done` holds, or fails after 10 s.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn concurrent_first_requests_read_a_passivated_tenant_back_once() {
    let journal = Arc::new(Watched::default());
    let runtime = start(&journal, 1000, no_idle_passivation()).await;
    create(&runtime, "acme").await;
    assert!(runtime.passivate("acme").await.unwrap());
    assert_eq!(runtime.active_count(), 0);
    assert_eq!(journal.loads("acme"), 0);

    // Lookups through the runtime and requests routed by the supervisor,
    // all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..32 {
        let runtime = runtime.clone();
        tasks.spawn(async move {
            if n % 2 == 0 {
                let tenant = runtime.tenant("acme").await?;
                tenant.apply(set(100 + n)).await.map(|c| c.revision)
            } else {
                let (tx, rx) = tokio::sync::oneshot::channel();
                runtime
                    .supervisor()
                    .send_message(SupervisorMsg::Tenant {
                        id: TenantId::new("acme").unwrap(),
                        msg: TenantMsg::Apply {
                            change: set(100 + n),
                            options: Default::default(),
                            reply: tx.into(),
                        },
                    })
                    .unwrap();
                rx.await.unwrap().map(|c| c.revision)
            }
        });
    }
    let mut revisions = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        revisions.push(joined.unwrap().expect("every request is served"));
    }
    revisions.sort();
    let expected: Vec<_> = (2..34).map(Revision).collect();
    assert_eq!(
        revisions, expected,
        "every write landed once, in some order"
    );
    assert_eq!(journal.loads("acme"), 1, "read back exactly once");
    assert_eq!(runtime.active_count(), 1);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_damaged_passivated_tenant_fails_alone() {
    let journal = Arc::new(Watched::default());
    let runtime = start(&journal, 1000, no_idle_passivation()).await;
    for id in ["acme", "broken", "widgets"] {
        create(&runtime, id).await;
        assert!(runtime.passivate(id).await.unwrap());
    }
    journal.damage("broken");
    // A request routed to it while it is read back, and a lookup.
    let (tx, rx) = tokio::sync::oneshot::channel();
    runtime
        .supervisor()
        .send_message(SupervisorMsg::Tenant {
            id: TenantId::new("broken").unwrap(),
            msg: TenantMsg::Apply {
                change: set(2),
                options: Default::default(),
                reply: tx.into(),
            },
        })
        .unwrap();
    let routed = rx.await.unwrap();
    assert!(
        matches!(&routed, Err(Error::Unrecoverable { tenant, source: JournalError::Corrupt { .. } }) if tenant.as_str() == "broken"),
        "{routed:?}"
    );
    let looked_up = runtime.tenant("broken").await;
    assert!(
        matches!(&looked_up, Err(Error::Unrecoverable { .. })),
        "{:?}",
        looked_up.map(|t| t.revision())
    );
    assert_eq!(
        journal.loads("broken"),
        1,
        "a failed read-back is remembered"
    );
    // Its id stays taken: creating over it would drop its history.
    assert!(matches!(
        runtime.create_tenant("broken", Doc::object()).await,
        Err(Error::Unrecoverable { .. })
    ));
    // The others come back whole and serve writes.
    for id in ["acme", "widgets"] {
        let tenant = runtime.tenant(id).await.unwrap();
        assert_eq!(tenant.current()["n"], 1);
        assert_eq!(tenant.apply(set(3)).await.unwrap().revision, Revision(2));
    }
    assert_eq!(runtime.tenant_count(), 3);
    runtime.shutdown().await.unwrap();
}

/// A read error is not damage: that attempt fails, and the next request
/// reads the tenant back.
#[tokio::test]
async fn a_failed_read_back_is_retried_by_the_next_request() {
    let journal = Arc::new(Watched::default());
    let runtime = start(&journal, 1000, no_idle_passivation()).await;
    create(&runtime, "acme").await;
    assert!(runtime.passivate("acme").await.unwrap());
    journal.fail_reads(1);
    let failed = runtime.tenant("acme").await;
    assert!(
        matches!(
            &failed,
            Err(Error::Journal {
                source: JournalError::Storage(_),
                ..
            })
        ),
        "{:?}",
        failed.map(|t| t.revision())
    );
    assert_eq!(runtime.active_count(), 0);
    let tenant = runtime
        .tenant("acme")
        .await
        .expect("read back on the retry");
    assert_eq!(tenant.current()["n"], 1);
    assert_eq!(journal.loads("acme"), 2);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_least_recently_used_tenants_go_first_and_the_bound_holds_under_load() {
    const MAX: usize = 40;
    let journal = Arc::new(Watched::default());
    let runtime = start(&journal, MAX, no_idle_passivation()).await;
    for i in 0..MAX {
        create(&runtime, &format!("t{i:03}")).await;
    }
    assert_eq!(runtime.active_count(), MAX);
    // Every actor stops once idle for 20 ms (checked every 10 ms): until
    // then a tenant cannot be passivated, and capacity would take a
    // recently used one whose actor had stopped first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first ten are used again; creating more evicts the others.
    for i in 0..10 {
        runtime.tenant(&format!("t{i:03}")).await.unwrap().current();
    }
    for i in MAX..MAX + 5 {
        create(&runtime, &format!("t{i:03}")).await;
    }
    eventually("the bound holds", || runtime.active_count() <= MAX).await;
    for i in 0..10 {
        let id = format!("t{i:03}");
        runtime.tenant(&id).await.unwrap();
        assert_eq!(
            journal.loads(&id),
            0,
            "{id} was used recently: still active"
        );
    }

    // Load: workers touching random tenants among 200, with writes.
    for i in MAX + 5..200 {
        create(&runtime, &format!("t{i:03}")).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = tokio::task::JoinSet::new();
    const WORKERS: u64 = 8;
    for w in 0..WORKERS {
        let (runtime, stop) = (runtime.clone(), Arc::clone(&stop));
        workers.spawn(async move {
            let mut x = w * 7919 + 1;
            let mut served = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let id = format!("t{:03}", (x >> 33) % 200);
                let tenant = runtime.tenant(&id).await.expect("a tenant");
                tenant.apply(set((x >> 40) as i64)).await.expect("a write");
                served += 1;
            }
            served
        });
    }
    let mut highest = 0;
    for _ in 0..200 {
        highest = highest.max(runtime.active_count());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut served = 0;
    while let Some(joined) = workers.join_next().await {
        served += joined.unwrap();
    }
    assert!(served > 0);
    // A tenant a worker holds or writes cannot be evicted, so the bound can
    // be passed by at most one tenant per worker, and only until it is done.
    assert!(
        highest <= MAX + WORKERS as usize,
        "at most {MAX} active plus one per worker: saw {highest}"
    );
    eventually("the bound holds once the load stops", || {
        runtime.active_count() <= MAX
    })
    .await;
    assert_eq!(runtime.tenant_count(), 200);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_tenant_is_passivated_unless_a_handle_or_a_transaction_holds_it() {
    let journal = Arc::new(Watched::default());
    let config = TenantConfig {
        passivate_after: Some(Duration::from_millis(100)),
        ..TenantConfig::default()
    };
    let runtime = start(&journal, 1000, config).await;
    for id in ["idle", "held", "busy"] {
        create(&runtime, id).await;
    }
    let held = runtime.tenant("held").await.unwrap();
    let busy = runtime.tenant("busy").await.unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let transaction = tokio::spawn(async move {
        busy.transaction()
            .step("one", set(5))
            .effect("wait", move |_| async move {
                let _ = released.await;
                Ok::<(), std::io::Error>(())
            })
            .run()
            .await
    });
    drop(held.clone());
    eventually("the idle tenant is passivated", || {
        runtime.active_count() == 2
    })
    .await;
    // Idle five times over: the held and the busy one stay.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runtime.active_count(), 2);
    assert_eq!(journal.loads("held"), 0);
    assert_eq!(journal.loads("busy"), 0);
    let listed: HashMap<_, _> = runtime.tenants().into_iter().collect();
    assert_eq!(listed[&TenantId::new("idle").unwrap()], Some(Revision(1)));

    release.send(()).unwrap();
    let report = transaction.await.unwrap().unwrap();
    assert!(report.is_committed());
    drop(held);
    eventually("every tenant is passivated once idle", || {
        runtime.active_count() == 0
    })
    .await;
    let busy = runtime.tenant("busy").await.unwrap();
    assert_eq!(busy.current()["n"], 5);
    assert_eq!(journal.loads("busy"), 1);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn nothing_is_passivated_without_a_journal() {
    let runtime = Runtime::<Doc>::builder()
        .tenant_defaults(TenantConfig {
            passivate_after: Some(Duration::from_millis(1)),
            ..TenantConfig::default()
        })
        .max_active(2)
        .timer_period(Duration::from_millis(5))
        .stop_idle_actors_after(Duration::from_millis(5))
        .start()
        .await
        .unwrap();
    for i in 0..5 {
        create(&runtime, &format!("t{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(runtime.active_count(), 5);
    assert!(!runtime.passivate("t0").await.unwrap());
    for i in 0..5 {
        let tenant = runtime.tenant(&format!("t{i}")).await.unwrap();
        assert_eq!(tenant.apply(set(2)).await.unwrap().revision, Revision(2));
    }
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_runtime_restarted_on_a_journal_reads_tenants_back_on_demand() {
    let journal = Arc::new(Watched::default());
    let runtime = start(&journal, 1000, no_idle_passivation()).await;
    for i in 0..20 {
        create(&runtime, &format!("t{i:02}")).await;
    }
    runtime.create_tenant("gone", Doc::object()).await.unwrap();
    runtime.delete_tenant("gone").await.unwrap();
    runtime.shutdown().await.unwrap();
    drop(runtime);

    let restarted = start(&journal, 1000, no_idle_passivation()).await;
    assert_eq!(restarted.recovery().tenants, 20);
    assert_eq!(restarted.tenant_count(), 20);
    assert_eq!(restarted.active_count(), 0, "nothing is read back at start");
    let (page, _) = restarted.tenants_page(None, 5);
    assert!(page.iter().all(|(_, revision)| revision.is_none()));
    assert_eq!(restarted.active_count(), 0, "listing reads nothing back");
    assert!(matches!(
        restarted.tenant("gone").await,
        Err(Error::TenantNotFound(_))
    ));
    let tenant = restarted.tenant("t07").await.unwrap();
    assert_eq!(tenant.revision(), Revision(1));
    assert_eq!(restarted.active_count(), 1);
    // Deleting a tenant that was never read back journals its delete after
    // its last entry.
    restarted.delete_tenant("t08").await.unwrap();
    restarted.shutdown().await.unwrap();
    drop((tenant, restarted));
    let again = start(&journal, 1000, no_idle_passivation()).await;
    assert_eq!(again.tenant_count(), 19);
    assert!(matches!(
        again.tenant("t08").await,
        Err(Error::TenantNotFound(_))
    ));
    again.shutdown().await.unwrap();
}

/// A deletion reads a passivated tenant and its passivated forks back to
/// check them: the parent of a live fork is refused, naming it; a later
/// tenant of a fork's name, passivated, is read back and found not to be
/// the fork, so it does not hold the parent.
#[tokio::test]
async fn a_deletion_reads_a_passivated_parent_and_its_forks_back() {
    let journal = Arc::new(Watched::default());
    let runtime = start(&journal, 1000, no_idle_passivation()).await;
    let parent = runtime.create_tenant("p", Doc::object()).await.unwrap();
    parent
        .fork("p.a", rewind_core::StateRef::Head)
        .await
        .unwrap();
    parent
        .fork("p.b", rewind_core::StateRef::Head)
        .await
        .unwrap();
    drop(parent);
    // p.b is replaced by an unrelated tenant of the same name.
    runtime.delete_tenant("p.b").await.unwrap();
    create(&runtime, "p.b").await;
    for id in ["p", "p.a", "p.b"] {
        assert!(runtime.passivate(id).await.unwrap(), "{id} passivated");
    }
    assert_eq!(runtime.active_count(), 0);
    let refused = runtime.delete_tenant("p").await.unwrap_err();
    let Error::DeleteRefused(refusal) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(refusal.forks, vec![TenantId::new("p.a").unwrap()]);
    assert!(runtime.tenant_exists(&TenantId::new("p").unwrap()));
    runtime.delete_tenant("p.a").await.unwrap();
    runtime.delete_tenant("p").await.unwrap();
    assert!(!runtime.tenant_exists(&TenantId::new("p").unwrap()));
    runtime.shutdown().await.unwrap();
}
