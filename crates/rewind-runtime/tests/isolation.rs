//! Tenant isolation: every reference an operation takes (snapshot name,
//! revision, transaction checkpoint, time) is resolved inside one tenant, so
//! another tenant's data cannot be reached — not through the typed handle and
//! not through `SupervisorMsg::Tenant` — and a refused operation leaves the
//! asking tenant exactly as it was. Ids that differ only by prefix or case are
//! different tenants.
//!
//! Time comes from a `ManualClock`, so "before acme_corp existed" is exact.

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};
use rewind_core::{
    Doc, ManualClock, NamedOptions, Patch, Revision, RollbackTarget, SnapshotName, StateRef,
    TenantId, TimelineError, Timestamp, TransactionId,
};
use rewind_runtime::{
    AutoSnapshotPolicy, Error, Runtime, SupervisorMsg, Tenant, TenantConfig, TenantMsg,
    WriteOptions,
};
use serde_json::json;

mod support;
use support::{doc, name, observe, patch, Observed};

/// `hh:mm` on the day of the scenarios, UTC.
fn at(hh_mm: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-14T{hh_mm}:00Z")).expect("valid test time")
}

fn set_sessions(n: i64) -> Patch {
    patch(json!([{"op": "replace", "path": "/sessions", "value": n}]))
}

/// The timeline error inside `error`, or a panic naming what came instead.
fn timeline_error(error: &Error) -> &TimelineError {
    error
        .timeline_error()
        .unwrap_or_else(|| panic!("expected a timeline error, got {error:?}"))
}

/// A request to one tenant through the supervisor, as another actor sends it.
async fn by_message<T: Send + 'static>(
    supervisor: &ActorRef<SupervisorMsg<Doc>>,
    tenant: &str,
    build: impl FnOnce(RpcReplyPort<Result<T, Error>>) -> TenantMsg<Doc>,
) -> Result<T, Error> {
    let id = TenantId::new(tenant).expect("valid tenant id");
    ractor::call!(supervisor, |reply| SupervisorMsg::Tenant {
        id,
        msg: build(reply),
    })
    .expect("the supervisor answers")
}

fn config() -> TenantConfig {
    TenantConfig {
        auto_snapshot: AutoSnapshotPolicy::DISABLED,
        ..TenantConfig::default()
    }
}

async fn runtime(clock: &ManualClock) -> Runtime<Doc> {
    Runtime::builder()
        .tenant_defaults(config())
        .clock(Arc::new(clock.clone()))
        .start()
        .await
        .expect("runtime starts")
}

/// The guide's two tenants. widgets_r_us exists from 12:00, has nine
/// revisions, the named snapshot `beta_test` (12:05), an auto snapshot and
/// three transactions whose step is `w_step`. acme_corp is created at 13:00
/// with two revisions, `prod_deploy` and one transaction whose step is
/// `a_step`.
struct Guide {
    runtime: Runtime<Doc>,
    acme: Tenant<Doc>,
    widgets: Tenant<Doc>,
    widgets_auto: SnapshotName,
}

async fn guide() -> Guide {
    let clock = ManualClock::new(at("12:00"));
    let runtime = runtime(&clock).await;
    let widgets = runtime
        .create_tenant(
            "widgets_r_us",
            doc(json!({"sessions": 30, "version": "2.5"})),
        )
        .await
        .unwrap();
    for minute in 1..=6 {
        clock.set(at(&format!("12:{minute:02}")));
        widgets.apply(set_sessions(30 + minute)).await.unwrap();
        if minute == 5 {
            widgets.snapshot_named("beta_test").await.unwrap();
        }
    }
    let widgets_auto = widgets.snapshot().await.unwrap().name;
    for n in 0..3 {
        let report = widgets
            .transaction()
            .step(
                "w_step",
                patch(json!([{"op": "replace", "path": "/version", "value": format!("2.6.{n}")}])),
            )
            .run()
            .await
            .unwrap();
        assert!(report.is_committed());
    }
    assert_eq!(widgets.revision(), Revision(9));

    clock.set(at("13:00"));
    let acme = runtime
        .create_tenant("acme_corp", doc(json!({"sessions": 50, "version": "3.0"})))
        .await
        .unwrap();
    clock.set(at("13:01"));
    acme.snapshot_named("prod_deploy").await.unwrap();
    acme.apply(set_sessions(51)).await.unwrap();
    let report = acme
        .transaction()
        .step(
            "a_step",
            patch(json!([{"op": "replace", "path": "/version", "value": "3.1"}])),
        )
        .run()
        .await
        .unwrap();
    assert!(report.is_committed());
    assert_eq!(acme.revision(), Revision(2));
    Guide {
        runtime,
        acme,
        widgets,
        widgets_auto,
    }
}

#[tokio::test]
async fn rollback_to_another_tenants_named_snapshot_is_snapshot_not_found() {
    let Guide {
        runtime,
        acme,
        widgets,
        ..
    } = guide().await;
    let before = observe(&acme);

    let err = acme
        .rollback_to_named_snapshot("beta_test")
        .await
        .unwrap_err();
    assert!(err.is_snapshot_not_found(), "{err:?}");
    assert!(
        err.to_string()
            .contains("snapshot 'beta_test' not found for tenant 'acme_corp'"),
        "{err}"
    );
    assert_eq!(observe(&acme), before);

    // The owner can use it.
    let outcome = widgets
        .rollback_to_named_snapshot("beta_test")
        .await
        .unwrap();
    assert_eq!(outcome.restored.name, Some(name("beta_test")));
    assert_eq!(widgets.current()["sessions"], 35);
    assert_eq!(widgets.current()["version"], "2.5");
    runtime.shutdown().await.unwrap();
}

/// Checks `result` is the refusal `expected` describes, by variant and fields.
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, Error>,
    expected: impl Fn(&TimelineError) -> bool,
) {
    let err = result.expect_err(what);
    assert!(
        expected(timeline_error(&err)),
        "{what}: unexpected error {err:?}"
    );
    assert!(
        err.to_string().ends_with("for tenant 'acme_corp'"),
        "{what}: {err}"
    );
}

#[tokio::test]
async fn no_reference_reaches_another_tenant_through_the_handle() {
    let Guide {
        runtime,
        acme,
        widgets,
        widgets_auto,
    } = guide().await;
    let acme_before = observe(&acme);
    let widgets_before = observe(&widgets);
    assert!(acme.timeline().snapshot(&widgets_auto).is_none());

    for snapshot in [name("beta_test"), widgets_auto.clone()] {
        let not_found =
            |e: &TimelineError| matches!(e, TimelineError::SnapshotNotFound(n) if *n == snapshot);
        let what = format!("snapshot {snapshot}");
        assert_refused(
            &what,
            acme.rollback(RollbackTarget::Named(snapshot.clone())).await,
            not_found,
        );
        assert_refused(
            &what,
            acme.rollback_dry_run(&RollbackTarget::Named(snapshot.clone())),
            not_found,
        );
        assert_refused(
            &what,
            acme.read_at(&StateRef::Snapshot(snapshot.clone())),
            not_found,
        );
        assert_refused(
            &what,
            acme.diff(&StateRef::Head, &StateRef::Snapshot(snapshot.clone())),
            not_found,
        );
        assert_refused(
            &what,
            acme.diff(&StateRef::Snapshot(snapshot.clone()), &StateRef::Head),
            not_found,
        );
        assert_refused(
            &what,
            acme.delete_snapshot(snapshot.as_str()).await,
            not_found,
        );
        if snapshot.as_str() == "beta_test" {
            for protected in [true, false] {
                assert_refused(&what, acme.protect("beta_test", protected).await, not_found);
            }
        }
    }

    // widgets_r_us has revisions 3..=9; acme_corp's head is 2.
    for r in 3..=9 {
        let revision = Revision(r);
        let not_found = |e: &TimelineError| {
            matches!(e, TimelineError::RevisionNotFound { revision: asked, head, .. }
                if *asked == revision && *head == Revision(2))
        };
        let what = format!("revision {r}");
        assert!(widgets.read_at(&StateRef::Revision(revision)).is_ok());
        assert_refused(
            &what,
            acme.rollback(RollbackTarget::Revision(revision)).await,
            not_found,
        );
        assert_refused(
            &what,
            acme.rollback_dry_run(&RollbackTarget::Revision(revision)),
            not_found,
        );
        assert_refused(
            &what,
            acme.read_at(&StateRef::Revision(revision)),
            not_found,
        );
        assert_refused(
            &what,
            acme.diff(&StateRef::Revision(revision), &StateRef::Head),
            not_found,
        );
    }

    // widgets_r_us ran transactions 1, 2 and 3 with step `w_step`; acme_corp
    // ran transaction 1 with step `a_step`.
    for transaction in [TransactionId(2), TransactionId(3)] {
        for step in ["start", "w_step"] {
            let checkpoint = name(step);
            let what = format!("checkpoint {step} of transaction {transaction}");
            let not_found = |e: &TimelineError| matches!(e, TimelineError::TransactionNotFound(t) if *t == transaction);
            let reference = StateRef::Checkpoint {
                transaction,
                name: checkpoint.clone(),
            };
            let target = RollbackTarget::Checkpoint {
                transaction,
                name: checkpoint.clone(),
            };
            assert!(widgets.read_at(&reference).is_ok());
            assert_refused(&what, acme.rollback(target.clone()).await, not_found);
            assert_refused(&what, acme.rollback_dry_run(&target), not_found);
            assert_refused(&what, acme.read_at(&reference), not_found);
            assert_refused(&what, acme.diff(&StateRef::Head, &reference), not_found);
        }
    }
    let shared_id = TransactionId(1);
    let reference = StateRef::Checkpoint {
        transaction: shared_id,
        name: name("w_step"),
    };
    let target = RollbackTarget::Checkpoint {
        transaction: shared_id,
        name: name("w_step"),
    };
    let not_found = |e: &TimelineError| {
        matches!(e, TimelineError::CheckpointNotFound { transaction, name: n }
            if *transaction == shared_id && n.as_str() == "w_step")
    };
    assert!(widgets.read_at(&reference).is_ok());
    assert_refused(
        "w_step of 1",
        acme.rollback(target.clone()).await,
        not_found,
    );
    assert_refused("w_step of 1", acme.rollback_dry_run(&target), not_found);
    assert_refused("w_step of 1", acme.read_at(&reference), not_found);
    assert_refused(
        "w_step of 1",
        acme.diff(&reference, &StateRef::Head),
        not_found,
    );

    // Times: widgets_r_us has snapshots and revisions at 12:xx, before
    // acme_corp existed.
    for minute in ["12:00", "12:05", "12:30", "12:59"] {
        let t = at(minute);
        let what = format!("time {minute}");
        assert!(widgets.read_at(&StateRef::AsOf(t)).is_ok());
        assert_refused(
            &what,
            acme.rollback(RollbackTarget::Time(t)).await,
            |e| matches!(e, TimelineError::NoSnapshotBefore(asked) if *asked == t),
        );
        assert_refused(
            &what,
            acme.rollback_dry_run(&RollbackTarget::Time(t)),
            |e| matches!(e, TimelineError::NoSnapshotBefore(asked) if *asked == t),
        );
        let out_of_range = |e: &TimelineError| {
            matches!(e, TimelineError::TimeOutOfRange { at: asked, oldest }
                if *asked == t && *oldest == at("13:00"))
        };
        assert_refused(&what, acme.read_at(&StateRef::AsOf(t)), out_of_range);
        assert_refused(
            &what,
            acme.diff(&StateRef::AsOf(t), &StateRef::Head),
            out_of_range,
        );
    }

    assert_eq!(observe(&acme), acme_before);
    assert_eq!(observe(&widgets), widgets_before);

    // acme_corp's own references still resolve to its own data: the newest
    // snapshot of any kind is its own transaction's last checkpoint.
    let latest = acme.rollback_dry_run(&RollbackTarget::Latest).unwrap();
    assert_eq!(latest.restored.name, Some(name("a_step")));
    assert_eq!(latest.restored.transaction, Some(TransactionId(1)));
    assert!(latest.diff.is_empty());
    let own = acme
        .rollback(RollbackTarget::Time(at("13:30")))
        .await
        .unwrap();
    assert_eq!(own.restored.name, Some(name("a_step")));
    assert_eq!(
        acme.current(),
        doc(json!({"sessions": 51, "version": "3.1"}))
    );
    acme.rollback_to_named_snapshot("prod_deploy")
        .await
        .unwrap();
    assert_eq!(
        acme.current(),
        doc(json!({"sessions": 50, "version": "3.0"}))
    );
    assert_eq!(observe(&widgets), widgets_before);
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_reference_reaches_another_tenant_through_supervisor_messages() {
    let Guide {
        runtime,
        acme,
        widgets,
        ..
    } = guide().await;
    let supervisor = runtime.supervisor();
    let acme_before = observe(&acme);
    let widgets_before = observe(&widgets);

    let err = by_message(&supervisor, "acme_corp", |reply| TenantMsg::Rollback {
        target: RollbackTarget::Named(name("beta_test")),
        options: WriteOptions::default(),
        reply,
    })
    .await
    .unwrap_err();
    assert!(err.is_snapshot_not_found(), "{err:?}");
    assert!(
        err.to_string()
            .contains("snapshot 'beta_test' not found for tenant 'acme_corp'"),
        "{err}"
    );

    let snapshot_refs = [
        StateRef::Snapshot(name("beta_test")),
        StateRef::Revision(Revision(7)),
        StateRef::Checkpoint {
            transaction: TransactionId(3),
            name: name("w_step"),
        },
        StateRef::Checkpoint {
            transaction: TransactionId(1),
            name: name("w_step"),
        },
        StateRef::AsOf(at("12:30")),
    ];
    for reference in snapshot_refs {
        let read = by_message(&supervisor, "acme_corp", |reply| TenantMsg::Read {
            at: reference.clone(),
            reply,
        })
        .await;
        let err = read.expect_err("another tenant's state is unreachable");
        let expected = match &reference {
            StateRef::Snapshot(_) => {
                matches!(timeline_error(&err), TimelineError::SnapshotNotFound(_))
            }
            StateRef::Revision(_) => err.is_revision_not_found(),
            StateRef::Checkpoint { transaction, .. } if transaction.0 == 3 => {
                matches!(timeline_error(&err), TimelineError::TransactionNotFound(_))
            }
            StateRef::Checkpoint { .. } => matches!(
                timeline_error(&err),
                TimelineError::CheckpointNotFound { .. }
            ),
            _ => matches!(timeline_error(&err), TimelineError::TimeOutOfRange { .. }),
        };
        assert!(expected, "read {reference}: {err:?}");
        let diff = by_message(&supervisor, "acme_corp", |reply| TenantMsg::Diff {
            from: StateRef::Head,
            to: reference.clone(),
            reply,
        })
        .await;
        assert!(diff.is_err(), "diff to {reference}");
    }

    let targets = [
        RollbackTarget::Revision(Revision(7)),
        RollbackTarget::Checkpoint {
            transaction: TransactionId(2),
            name: name("start"),
        },
        RollbackTarget::Checkpoint {
            transaction: TransactionId(1),
            name: name("w_step"),
        },
        RollbackTarget::Time(at("12:30")),
    ];
    for target in targets {
        let dry = by_message(&supervisor, "acme_corp", |reply| {
            TenantMsg::RollbackDryRun {
                target: target.clone(),
                reply,
            }
        })
        .await;
        let done = by_message(&supervisor, "acme_corp", |reply| TenantMsg::Rollback {
            target: target.clone(),
            options: WriteOptions::default(),
            reply,
        })
        .await;
        for result in [dry.map(|_| ()), done.map(|_| ())] {
            let err = result.expect_err("another tenant's target is unreachable");
            let expected = match &target {
                RollbackTarget::Revision(_) => err.is_revision_not_found(),
                RollbackTarget::Checkpoint { transaction, .. } if transaction.0 == 2 => {
                    matches!(timeline_error(&err), TimelineError::TransactionNotFound(_))
                }
                RollbackTarget::Checkpoint { .. } => matches!(
                    timeline_error(&err),
                    TimelineError::CheckpointNotFound { .. }
                ),
                _ => matches!(timeline_error(&err), TimelineError::NoSnapshotBefore(_)),
            };
            assert!(expected, "rollback to {target}: {err:?}");
        }
    }

    let deleted = by_message(&supervisor, "acme_corp", |reply| {
        TenantMsg::DeleteSnapshot {
            name: name("beta_test"),
            reply,
        }
    })
    .await
    .unwrap_err();
    assert!(deleted.is_snapshot_not_found(), "{deleted:?}");
    let protected = by_message(&supervisor, "acme_corp", |reply| TenantMsg::Protect {
        name: name("beta_test"),
        protected: true,
        reply,
    })
    .await
    .unwrap_err();
    assert!(protected.is_snapshot_not_found(), "{protected:?}");

    assert_eq!(observe(&acme), acme_before);
    assert_eq!(observe(&widgets), widgets_before);

    // The same message to the owner works.
    let outcome = by_message(&supervisor, "widgets_r_us", |reply| TenantMsg::Rollback {
        target: RollbackTarget::Named(name("beta_test")),
        options: WriteOptions::default(),
        reply,
    })
    .await
    .unwrap();
    assert_eq!(outcome.restored.name, Some(name("beta_test")));
    runtime.shutdown().await.unwrap();
}

/// Ids that differ only by a prefix, a suffix or case.
const LOOKALIKES: [&str; 6] = [
    "acme",
    "acme_corp",
    "ACME_CORP",
    "Acme_Corp",
    "acme_corp2",
    "xacme_corp",
];

#[tokio::test]
async fn ids_differing_by_prefix_or_case_are_separate_tenants() {
    let clock = ManualClock::new(at("12:00"));
    let runtime = runtime(&clock).await;
    let mut tenants = Vec::new();
    // Tenant i exists from 12:i0, has i + 1 revisions, i + 1 transactions
    // whose step is `step_i`, a snapshot `only_i` and a snapshot `release`
    // every tenant has, with its own content.
    for (i, id) in LOOKALIKES.iter().enumerate() {
        clock.set(at(&format!("12:{i}0")));
        let tenant = runtime
            .create_tenant(id, doc(json!({"owner": id, "sessions": 0})))
            .await
            .unwrap();
        clock.set(at(&format!("12:{i}1")));
        tenant.snapshot_named(&format!("only_{i}")).await.unwrap();
        tenant.snapshot_named("release").await.unwrap();
        for r in 0..=i {
            let report = tenant
                .transaction()
                .step(format!("step_{i}"), set_sessions(r as i64 + 1))
                .run()
                .await
                .unwrap();
            assert!(report.is_committed());
        }
        assert_eq!(tenant.revision(), Revision(i as u64 + 1));
        tenants.push(tenant);
    }
    for id in ["ACME", "acme_cor", "Acme_corp", "acme_corp "] {
        assert!(
            matches!(
                runtime.tenant(id).await,
                Err(Error::TenantNotFound(_)) | Err(Error::Invalid(_))
            ),
            "{id} must not resolve to a lookalike"
        );
    }
    for (i, id) in LOOKALIKES.iter().enumerate() {
        let found = runtime.tenant(id).await.unwrap();
        assert_eq!(found.id().as_str(), *id);
        assert_eq!(found.current()["owner"], *id);
        assert_eq!(found.revision(), Revision(i as u64 + 1));
    }

    let before: Vec<Observed<Doc>> = tenants.iter().map(observe).collect();
    let supervisor = runtime.supervisor();
    for (a, tenant) in tenants.iter().enumerate() {
        for b in (0..LOOKALIKES.len()).filter(|b| *b != a) {
            let other = format!("only_{b}");
            let err = tenant.rollback_to_named_snapshot(&other).await.unwrap_err();
            assert!(err.is_snapshot_not_found(), "{a} -> {b}: {err:?}");
            assert!(
                err.to_string().contains(&format!(
                    "snapshot '{other}' not found for tenant '{}'",
                    LOOKALIKES[a]
                )),
                "{err}"
            );
            let err = by_message(&supervisor, LOOKALIKES[a], |reply| TenantMsg::Rollback {
                target: RollbackTarget::Named(name(&other)),
                options: WriteOptions::default(),
                reply,
            })
            .await
            .unwrap_err();
            assert!(
                err.is_snapshot_not_found(),
                "{a} -> {b} by message: {err:?}"
            );
            let err = tenant
                .read_at(&StateRef::Snapshot(name(&other)))
                .unwrap_err();
            assert!(err.is_snapshot_not_found(), "{err:?}");
            assert!(tenant
                .delete_snapshot(&other)
                .await
                .unwrap_err()
                .is_snapshot_not_found());
            assert!(tenant
                .protect(&other, true)
                .await
                .unwrap_err()
                .is_snapshot_not_found());

            // The step names of other tenants' transactions are not ours.
            let checkpoint = StateRef::Checkpoint {
                transaction: TransactionId(1),
                name: name(&format!("step_{b}")),
            };
            let err = tenant.read_at(&checkpoint).unwrap_err();
            assert!(
                matches!(
                    timeline_error(&err),
                    TimelineError::CheckpointNotFound { .. }
                ),
                "{err:?}"
            );
            if b > a {
                // Revisions and transactions only the other tenant reached.
                let revision = Revision(b as u64 + 1);
                assert!(tenant
                    .rollback(RollbackTarget::Revision(revision))
                    .await
                    .unwrap_err()
                    .is_revision_not_found());
                assert!(tenant
                    .read_at(&StateRef::Revision(revision))
                    .unwrap_err()
                    .is_revision_not_found());
                let transaction = TransactionId(b as u64 + 1);
                let err = tenant
                    .rollback(RollbackTarget::Checkpoint {
                        transaction,
                        name: name(&format!("step_{b}")),
                    })
                    .await
                    .unwrap_err();
                assert!(
                    matches!(
                        timeline_error(&err),
                        TimelineError::TransactionNotFound(t) if *t == transaction
                    ),
                    "{err:?}"
                );
            }
            if b < a {
                // Times from before this tenant existed.
                let t = at(&format!("12:{b}1"));
                let err = tenant.rollback(RollbackTarget::Time(t)).await.unwrap_err();
                assert!(
                    matches!(timeline_error(&err), TimelineError::NoSnapshotBefore(_)),
                    "{err:?}"
                );
                let err = tenant.read_at(&StateRef::AsOf(t)).unwrap_err();
                assert!(
                    matches!(timeline_error(&err), TimelineError::TimeOutOfRange { .. }),
                    "{err:?}"
                );
            }
        }
    }
    let after: Vec<Observed<Doc>> = tenants.iter().map(observe).collect();
    assert_eq!(after, before);

    // The shared name resolves to each tenant's own snapshot.
    for (i, tenant) in tenants.iter().enumerate() {
        tenant
            .apply(patch(
                json!([{"op": "replace", "path": "/owner", "value": "changed"}]),
            ))
            .await
            .unwrap();
        tenant.rollback_to_named_snapshot("release").await.unwrap();
        assert_eq!(tenant.current()["owner"], LOOKALIKES[i]);
        assert_eq!(tenant.current()["sessions"], 0);
        let protected = tenant
            .snapshot_with(
                name("mine"),
                NamedOptions {
                    protected: true,
                    replace: false,
                },
            )
            .await
            .unwrap();
        assert!(protected.protected);
    }
    for tenant in &tenants {
        let mine = tenant.timeline();
        assert_eq!(
            mine.snapshots()
                .iter()
                .filter(|s| s.name.as_str() == "mine")
                .count(),
            1
        );
    }
    runtime.shutdown().await.unwrap();
}
