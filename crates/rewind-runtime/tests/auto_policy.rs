//! The auto snapshot policy: every N revisions, and every interval but only
//! when the head moved since the last auto snapshot. Time is tokio's paused
//! clock, moved with `advance`.

use std::time::Duration;

use rewind_core::{
    AutoTrigger, Doc, Patch, Revision, SnapshotInfo, SnapshotKind, StateRef, TenantId,
};
use rewind_runtime::{AutoSnapshotPolicy, Runtime, SupervisorMsg, Tenant, TenantConfig, TenantMsg};
use serde_json::json;

fn set(n: i64) -> Patch {
    Patch::from_json(&json!([{"op": "add", "path": "/n", "value": n}])).unwrap()
}

fn autos(tenant: &Tenant<Doc>) -> Vec<SnapshotInfo> {
    tenant
        .snapshots()
        .into_iter()
        .filter(|s| s.kind == SnapshotKind::Auto)
        .collect()
}

fn policy_revisions(tenant: &Tenant<Doc>) -> Vec<Revision> {
    autos(tenant)
        .into_iter()
        .map(|s| {
            assert_eq!(s.trigger, Some(AutoTrigger::Policy), "{s:?}");
            s.revision
        })
        .collect()
}

async fn tenant_with(runtime: &Runtime<Doc>, id: &str, policy: AutoSnapshotPolicy) -> Tenant<Doc> {
    runtime
        .create_tenant_with(
            TenantId::new(id).unwrap(),
            Doc::from_json(&json!({"n": 0})).unwrap(),
            Some(TenantConfig {
                auto_snapshot: policy,
                ..TenantConfig::default()
            }),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn every_n_revisions_takes_a_policy_snapshot() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant_with(
        &runtime,
        "every3",
        AutoSnapshotPolicy {
            every_revisions: Some(3),
            interval: None,
        },
    )
    .await;
    let mut expected = Vec::new();
    for n in 1..=10 {
        tenant.apply(set(n)).await.unwrap();
        if n % 3 == 0 {
            expected.push(Revision(n as u64));
        }
        assert_eq!(policy_revisions(&tenant), expected, "after revision {n}");
    }
    // Each snapshot holds the state of its revision.
    for s in autos(&tenant) {
        assert_eq!(
            tenant.read_at(&StateRef::Snapshot(s.name.clone())).unwrap()["n"],
            s.revision.get() as i64
        );
    }
    runtime.shutdown().await.unwrap();
}

/// Lets the interval timer deliver its tick, then waits until the tenant
/// has handled everything sent to it before this call.
async fn settle(runtime: &Runtime<Doc>, id: &str) {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let id = TenantId::new(id).unwrap();
    ractor::call!(runtime.supervisor(), |reply| SupervisorMsg::Tenant {
        id,
        msg: TenantMsg::Read {
            at: StateRef::Head,
            reply,
        },
    })
    .unwrap()
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn every_interval_takes_a_policy_snapshot_only_when_the_head_moved() {
    const INTERVAL: Duration = Duration::from_secs(10);
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant_with(
        &runtime,
        "interval",
        AutoSnapshotPolicy {
            every_revisions: None,
            interval: Some(INTERVAL),
        },
    )
    .await;
    let tick = || async {
        tokio::time::advance(INTERVAL).await;
        settle(&runtime, "interval").await;
    };
    settle(&runtime, "interval").await;

    // Nothing moved since creation.
    tick().await;
    assert!(autos(&tenant).is_empty());

    tenant.apply(set(1)).await.unwrap();
    tenant.apply(set(2)).await.unwrap();
    assert!(autos(&tenant).is_empty(), "only the interval triggers");
    tick().await;
    assert_eq!(policy_revisions(&tenant), vec![Revision(2)]);
    tick().await;
    tick().await;
    assert_eq!(
        policy_revisions(&tenant),
        vec![Revision(2)],
        "the head did not move"
    );

    tenant.apply(set(3)).await.unwrap();
    tick().await;
    assert_eq!(policy_revisions(&tenant), vec![Revision(2), Revision(3)]);
    tick().await;
    assert_eq!(policy_revisions(&tenant), vec![Revision(2), Revision(3)]);

    // A snapshot asked for by hand counts as the last auto snapshot too.
    tenant.apply(set(4)).await.unwrap();
    let requested = tenant.snapshot().await.unwrap();
    assert_eq!(requested.trigger, Some(AutoTrigger::Requested));
    tick().await;
    assert_eq!(autos(&tenant).len(), 3);
    runtime.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn both_triggers_together_never_snapshot_the_same_head_twice() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let tenant = tenant_with(
        &runtime,
        "both",
        AutoSnapshotPolicy {
            every_revisions: Some(2),
            interval: Some(Duration::from_secs(5)),
        },
    )
    .await;
    settle(&runtime, "both").await;
    tenant.apply(set(1)).await.unwrap();
    tenant.apply(set(2)).await.unwrap();
    assert_eq!(policy_revisions(&tenant), vec![Revision(2)]);
    // The interval finds nothing new.
    tokio::time::advance(Duration::from_secs(5)).await;
    settle(&runtime, "both").await;
    assert_eq!(policy_revisions(&tenant), vec![Revision(2)]);
    tenant.apply(set(3)).await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    settle(&runtime, "both").await;
    assert_eq!(policy_revisions(&tenant), vec![Revision(2), Revision(3)]);
    // The revision count restarts from the last auto snapshot.
    tenant.apply(set(4)).await.unwrap();
    assert_eq!(policy_revisions(&tenant), vec![Revision(2), Revision(3)]);
    tenant.apply(set(5)).await.unwrap();
    assert_eq!(
        policy_revisions(&tenant),
        vec![Revision(2), Revision(3), Revision(5)]
    );
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_default_policy_is_documented() {
    assert_eq!(
        AutoSnapshotPolicy::default(),
        AutoSnapshotPolicy {
            every_revisions: Some(100),
            interval: Some(Duration::from_secs(60)),
        }
    );
    assert_eq!(
        TenantConfig::default().auto_snapshot,
        AutoSnapshotPolicy::default()
    );
    let invalid = TenantConfig {
        auto_snapshot: AutoSnapshotPolicy {
            every_revisions: Some(0),
            interval: None,
        },
        ..TenantConfig::default()
    };
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let err = runtime
        .create_tenant_with(TenantId::new("bad").unwrap(), Doc::object(), Some(invalid))
        .await
        .unwrap_err();
    assert!(matches!(err, rewind_runtime::Error::Invalid(_)), "{err:?}");
    runtime.shutdown().await.unwrap();
}
