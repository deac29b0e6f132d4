//! Forks: a fork's revision 0 is its parent's state at a reference, the
//! very same values (pointer-equal subtrees); a promotion writes the fork's
//! head back to the parent as one revision, whole (`replace`) or merged
//! (`merge`, refused on overlapping paths with nothing written); forks are
//! journaled and survive a restart; a fork can be forked.

use std::sync::Arc;

use anyhow::Result;
use rewind::prelude::*;
use rewind::runtime::PromoteOptions;
use serde_json::json;

fn doc(value: serde_json::Value) -> Doc {
    Doc::from_json(&value).unwrap()
}

fn patch(value: serde_json::Value) -> Patch {
    Patch::from_json(&value).unwrap()
}

fn catalog() -> Doc {
    let products: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| {
            (
                format!("p{i}"),
                json!({"name": format!("product {i}"), "price": i}),
            )
        })
        .collect();
    doc(json!({"products": products, "layout": {"hero": "classic", "columns": 3}, "price": 10}))
}

#[tokio::test]
async fn a_fork_shares_its_parents_structure() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let shop = runtime.create_tenant("storefront", catalog()).await?;
    shop.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 12}]),
    ))
    .await?;
    let fork = shop.fork("storefront.variant_b", StateRef::Head).await?;

    // Revision 0 of the fork is the parent's head itself.
    let (parent_head, fork_head) = (shop.current(), fork.current());
    assert!(fork_head.ptr_eq(&parent_head), "the root is shared");
    assert_eq!(fork.revision(), Revision::ZERO);
    let info = fork.history(10).pop().unwrap();
    assert_eq!(
        info.cause,
        Cause::Fork {
            parent: shop.id().clone(),
            base_revision: Revision(1)
        }
    );
    let origin = fork.fork_info().unwrap();
    assert_eq!(
        (origin.parent.as_str(), origin.base_revision),
        ("storefront", Revision(1))
    );

    // One change in the fork: every other subtree is still the parent's.
    fork.apply(patch(
        json!([{"op": "replace", "path": "/layout/hero", "value": "bold"}]),
    ))
    .await?;
    let changed = fork.current();
    assert!(changed["products"].ptr_eq(&parent_head["products"]));
    for i in 0..100 {
        let key = format!("p{i}");
        assert!(changed["products"][key.as_str()].ptr_eq(&parent_head["products"][key.as_str()]));
    }
    assert!(changed["layout"]["columns"].ptr_eq(&parent_head["layout"]["columns"]));
    assert!(!changed["layout"].ptr_eq(&parent_head["layout"]));
    // The parent is untouched.
    assert_eq!(shop.current()["layout"]["hero"], "classic");
    assert_eq!(shop.revision(), Revision(1));

    // The parent lists it; a fork at an older reference records that one.
    shop.snapshot_named("v1").await?;
    let old = shop
        .fork("storefront.old", StateRef::Revision(Revision(0)))
        .await?;
    assert_eq!(old.current()["price"], 10);
    assert!(old.current()["products"].ptr_eq(&parent_head["products"]));
    let listed: Vec<(String, Revision)> = shop
        .forks()
        .into_iter()
        .map(|r| (r.fork.to_string(), r.base_revision))
        .collect();
    assert_eq!(
        listed,
        [
            ("storefront.variant_b".to_owned(), Revision(1)),
            ("storefront.old".to_owned(), Revision(0))
        ]
    );
    let snap = shop.fork("storefront.v1", "snapshot:v1".parse()?).await?;
    assert_eq!(snap.fork_info().unwrap().base_revision, Revision(1));

    // A fork name that is taken, or a reference that does not resolve.
    let taken = shop
        .fork("storefront.old", StateRef::Head)
        .await
        .unwrap_err();
    assert!(matches!(taken, Error::TenantExists(_)), "{taken}");
    let missing = shop
        .fork("storefront.x", StateRef::Revision(Revision(99)))
        .await
        .unwrap_err();
    assert!(missing.is_revision_not_found(), "{missing}");
    assert!(!runtime.tenant_exists(&TenantId::new("storefront.x")?));

    // A deleted fork is not listed.
    drop(old);
    runtime.delete_tenant("storefront.old").await?;
    let names: Vec<String> = shop.forks().iter().map(|r| r.fork.to_string()).collect();
    assert_eq!(names, ["storefront.variant_b", "storefront.v1"]);
    runtime.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn replace_promotion_sets_the_parent_to_the_forks_head() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let shop = runtime
        .create_tenant("shop", doc(json!({"price": 10, "banner": "hello"})))
        .await?;
    let fork = shop.fork("shop.b", StateRef::Head).await?;
    fork.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 8}]),
    ))
    .await?;
    fork.apply(patch(json!([{"op": "remove", "path": "/banner"}])))
        .await?;
    // The parent moved meanwhile: replace overwrites it all the same.
    shop.apply(patch(
        json!([{"op": "add", "path": "/sale", "value": true}]),
    ))
    .await?;

    let promoted = fork.promote(PromoteStrategy::Replace).await?;
    assert_eq!(promoted.parent, *shop.id());
    assert_eq!(promoted.revision, Revision(2));
    assert_eq!(promoted.fork_revision, Revision(2));
    assert_eq!(shop.current().to_json(), json!({"price": 8}));
    assert!(
        shop.current().ptr_eq(&fork.current()),
        "the fork's head itself"
    );
    let head = shop.history(1).remove(0);
    assert_eq!(
        head.cause,
        Cause::Promote {
            fork: fork.id().clone(),
            fork_revision: Revision(2),
            strategy: PromoteStrategy::Replace
        }
    );
    assert_eq!(
        head.cause.to_string(),
        "promote (replace) of 'shop.b' at revision 2"
    );
    // History is never rewritten: the parent's old head is one rollback away.
    shop.rollback(RollbackTarget::Revision(Revision(1))).await?;
    assert_eq!(shop.current()["sale"], true);

    // Only a fork promotes; an expected parent revision is checked.
    let not_a_fork = shop.promote(PromoteStrategy::Replace).await.unwrap_err();
    assert!(matches!(not_a_fork, Error::NotAFork(_)), "{not_a_fork}");
    let options = PromoteOptions {
        if_parent_revision: Some(Revision(1)),
        ..PromoteOptions::default()
    };
    let stale = fork
        .promote_with(PromoteStrategy::Replace, options)
        .await
        .unwrap_err();
    assert!(
        matches!(
            stale,
            Error::RevisionMismatch {
                expected: Revision(1),
                actual: Revision(3),
                ..
            }
        ),
        "{stale}"
    );
    assert_eq!(shop.revision(), Revision(3));
    runtime.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn merge_promotion_applies_the_forks_changes_or_refuses_a_conflict() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let shop = runtime
        .create_tenant(
            "shop",
            doc(json!({"price": 10, "layout": {"hero": "classic"}, "tags": ["a"]})),
        )
        .await?;
    let fork = shop.fork("shop.b", StateRef::Head).await?;
    fork.apply(patch(
        json!([{"op": "replace", "path": "/layout/hero", "value": "bold"}]),
    ))
    .await?;
    fork.apply(patch(
        json!([{"op": "add", "path": "/layout/cta", "value": "Buy"}]),
    ))
    .await?;
    // The parent changed other paths since the base.
    shop.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 11}]),
    ))
    .await?;

    // Clean: both sides' changes, as one new revision of the parent.
    let promoted = fork.promote(PromoteStrategy::Merge).await?;
    assert_eq!(promoted.revision, Revision(2));
    assert_eq!(
        shop.current().to_json(),
        json!({"price": 11, "layout": {"hero": "bold", "cta": "Buy"}, "tags": ["a"]})
    );
    assert_eq!(
        shop.history(1)[0].cause,
        Cause::Promote {
            fork: fork.id().clone(),
            fork_revision: Revision(2),
            strategy: PromoteStrategy::Merge
        }
    );

    // Conflicting: the fork and the parent both changed /price since the
    // base (the fork's revision 0), and the parent also the array.
    let second = shop.fork("shop.c", StateRef::Revision(Revision(0))).await?;
    second
        .apply(patch(json!([
            {"op": "replace", "path": "/price", "value": 7},
            {"op": "add", "path": "/tags/-", "value": "b"},
            {"op": "add", "path": "/footer", "value": "new"}
        ])))
        .await?;
    let before = (shop.revision(), shop.current());
    let error = second.promote(PromoteStrategy::Merge).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Conflict);
    let Error::MergeConflict {
        parent,
        fork: from,
        conflict,
    } = &error
    else {
        panic!("expected a conflict, got {error}");
    };
    assert_eq!((parent.as_str(), from.as_str()), ("shop", "shop.c"));
    let paths: Vec<String> = conflict.paths.iter().map(ToString::to_string).collect();
    assert_eq!(paths, ["/price"]);
    // Nothing was written.
    assert_eq!(shop.revision(), before.0);
    assert!(shop.current().ptr_eq(&before.1));
    runtime.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_fork_of_a_fork_promotes_up_the_chain() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let shop = runtime
        .create_tenant("shop", doc(json!({"a": 1, "b": 1, "c": 1})))
        .await?;
    let child = shop.fork("shop.child", StateRef::Head).await?;
    child
        .apply(patch(json!([{"op": "replace", "path": "/a", "value": 2}])))
        .await?;
    let grandchild = child.fork("shop.child.grandchild", StateRef::Head).await?;
    assert!(grandchild.current().ptr_eq(&child.current()));
    assert_eq!(grandchild.fork_info().unwrap().parent, *child.id());
    assert_eq!(grandchild.fork_info().unwrap().base_revision, Revision(1));
    grandchild
        .apply(patch(json!([{"op": "replace", "path": "/b", "value": 3}])))
        .await?;

    // Into the child, then the child into the shop.
    grandchild.promote(PromoteStrategy::Merge).await?;
    assert_eq!(child.current().to_json(), json!({"a": 2, "b": 3, "c": 1}));
    shop.apply(patch(json!([{"op": "replace", "path": "/c", "value": 4}])))
        .await?;
    child.promote(PromoteStrategy::Merge).await?;
    assert_eq!(shop.current().to_json(), json!({"a": 2, "b": 3, "c": 4}));
    assert_eq!(shop.forks().len(), 1);
    assert_eq!(child.forks()[0].fork, *grandchild.id());
    runtime.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn forks_survive_a_restart() -> Result<()> {
    // Read back by replaying entries, and from images (one after every
    // entry): the fork's origin, base and the parent's list are in both.
    for image_every in [rewind::runtime::DEFAULT_IMAGE_EVERY, 1] {
        restart_with(image_every).await?;
    }
    Ok(())
}

async fn restart_with(image_every: u64) -> Result<()> {
    let dir =
        std::env::temp_dir().join(format!("rewind-forks-{}-{image_every}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("forks.db");
    let _ = std::fs::remove_file(&path);
    let start = || async {
        let journal = SqliteJournal::open(&path, SqliteOptions::default())?;
        let runtime = Runtime::<Doc>::builder()
            .journal(Arc::new(journal))
            .image_every(image_every)
            .start()
            .await?;
        anyhow::Ok(runtime)
    };

    let runtime = start().await?;
    let shop = runtime
        .create_tenant("shop", doc(json!({"price": 10, "hero": "classic"})))
        .await?;
    shop.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 11}]),
    ))
    .await?;
    let fork = shop.fork("shop.b", StateRef::Head).await?;
    fork.apply(patch(
        json!([{"op": "replace", "path": "/hero", "value": "bold"}]),
    ))
    .await?;
    drop((shop, fork));
    runtime.shutdown().await?;
    drop(runtime);

    let runtime = start().await?;
    let shop = runtime.tenant("shop").await?;
    let fork = runtime.tenant("shop.b").await?;
    let origin = fork.history(100).pop().unwrap();
    assert_eq!(origin.revision, Revision::ZERO);
    assert_eq!(
        origin.cause,
        Cause::Fork {
            parent: shop.id().clone(),
            base_revision: Revision(1)
        }
    );
    assert_eq!(fork.fork_info().unwrap().parent, *shop.id());
    assert_eq!(shop.forks()[0].fork, *fork.id());
    // The restored fork still merges against its base.
    shop.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 12}]),
    ))
    .await?;
    fork.promote(PromoteStrategy::Merge).await?;
    assert_eq!(
        shop.current().to_json(),
        json!({"price": 12, "hero": "bold"})
    );
    drop((shop, fork));
    runtime.shutdown().await?;
    drop(runtime);

    // And once more, the promotion replayed from the journal.
    let runtime = start().await?;
    let shop = runtime.tenant("shop").await?;
    assert_eq!(
        shop.history(1)[0].cause,
        Cause::Promote {
            fork: TenantId::new("shop.b")?,
            fork_revision: Revision(1),
            strategy: PromoteStrategy::Merge
        }
    );
    assert_eq!(shop.current()["hero"], "bold");
    drop(shop);
    runtime.shutdown().await?;
    drop(runtime);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// The story of the bug, through the library: `p1` forked into `p1.f`, the
/// fork changed, `p1` deleted, an unrelated `p1` created. Promoting the
/// fork used to overwrite the new `p1` (`replace`) or report a conflict
/// with it (`merge`). The fork's link names the incarnation of its parent,
/// so both are refused as detached and nothing is written, before and
/// after a restart on SQLite.
#[tokio::test]
async fn a_detached_fork_never_writes_the_next_tenant_of_its_parents_name() -> Result<()> {
    // Read back by replaying entries, and from images (one after every
    // entry): the incarnations are in both.
    for image_every in [rewind::runtime::DEFAULT_IMAGE_EVERY, 1] {
        detached_story(image_every).await?;
    }
    Ok(())
}

async fn detached_story(image_every: u64) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "rewind-detached-{}-{image_every}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("journal.db");
    let start = || async {
        let journal = SqliteJournal::open(&path, SqliteOptions::default())?;
        let runtime = Runtime::<Doc>::builder()
            .journal(Arc::new(journal))
            .image_every(image_every)
            .start()
            .await?;
        anyhow::Ok(runtime)
    };
    let runtime = start().await?;
    let p1 = runtime
        .create_tenant("p1", doc(json!({"price": 10})))
        .await?;
    let fork = p1.fork("p1.f", StateRef::Head).await?;
    fork.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 99}]),
    ))
    .await?;
    drop(p1);
    // Refused while the fork is attached: nothing deleted.
    assert!(runtime.delete_tenant("p1").await.is_err());
    assert!(runtime.tenant_exists(&TenantId::new("p1")?));
    runtime
        .delete_tenant_with("p1", DeleteOptions::default().detach_forks())
        .await?;
    let new_p1 = runtime
        .create_tenant("p1", doc(json!({"price": 1, "new": true})))
        .await?;
    assert_detached(&fork, &new_p1).await;
    drop((fork, new_p1));
    runtime.shutdown().await?;
    drop(runtime);

    let runtime = start().await?;
    let fork = runtime.tenant("p1.f").await?;
    let new_p1 = runtime.tenant("p1").await?;
    assert_detached(&fork, &new_p1).await;
    assert_eq!(fork.current().to_json(), json!({"price": 99}));
    drop((fork, new_p1));
    runtime.shutdown().await?;
    drop(runtime);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

async fn assert_detached(fork: &Tenant<Doc>, new_p1: &Tenant<Doc>) {
    for strategy in [PromoteStrategy::Replace, PromoteStrategy::Merge] {
        let refused = fork.promote(strategy).await.unwrap_err();
        assert!(
            matches!(&refused, Error::ForkDetached { fork: f, parent, .. }
                if f.as_str() == "p1.f" && parent.as_str() == "p1"),
            "{strategy}: {refused:?}"
        );
        let message = refused.to_string();
        assert!(message.contains("detached"), "{message}");
    }
    assert_eq!(new_p1.revision(), Revision::ZERO);
    assert_eq!(new_p1.current().to_json(), json!({"price": 1, "new": true}));
    assert!(new_p1.forks().is_empty());
    assert!(new_p1.attached_forks().await.unwrap().is_empty());
    let status = fork.fork_status().await.unwrap().unwrap();
    assert_eq!(status.info.parent.as_str(), "p1");
    assert!(status.detached.is_some(), "{status:?}");
    // A new tenant of the old name is not the parent: the fork's record
    // names the deleted one's incarnation, which differs.
    assert_eq!(status.detached, Some(Detached::ParentReplaced));
    assert!(status.info.parent_incarnation.is_some());
    assert_ne!(status.info.parent_incarnation, new_p1.incarnation());
}

/// Deleting a parent with attached forks is refused, naming them; a
/// deleted fork does not count; `detach_forks` deletes the parent and the
/// forks live on, detached.
#[tokio::test]
async fn deleting_a_parent_needs_its_forks_detached() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let shop = runtime
        .create_tenant("shop", doc(json!({"price": 10})))
        .await?;
    let a = shop.fork("shop.a", StateRef::Head).await?;
    shop.fork("shop.gone", StateRef::Head).await?;
    runtime.delete_tenant("shop.gone").await?;
    drop(shop);
    let refused = runtime.delete_tenant("shop").await.unwrap_err();
    let Error::DeleteRefused(refusal) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(refusal.forks, vec![TenantId::new("shop.a")?]);
    assert!(refusal.protected_snapshots.is_empty());
    assert!(refused.to_string().contains("'shop.a'"), "{refused}");
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    // Force alone overrides protection, not forks.
    assert!(runtime
        .delete_tenant_with("shop", DeleteOptions::default().force())
        .await
        .is_err());
    runtime
        .delete_tenant_with("shop", DeleteOptions::default().detach_forks())
        .await?;
    assert!(matches!(
        a.fork_status().await?.unwrap().detached,
        Some(Detached::ParentDeleted)
    ));
    assert!(matches!(
        a.promote(PromoteStrategy::Replace).await,
        Err(Error::ForkDetached { .. })
    ));
    runtime.shutdown().await?;
    Ok(())
}

/// Journals written before incarnations were recorded still read: the
/// same entries with every incarnation taken out (as older versions wrote
/// them) give each tenant a legacy incarnation derived from its `create`
/// entry (the same at every replay); the legacy fork is attached to its
/// parent by the parent's record of it, so it promotes, keeps the parent
/// from being deleted, and is detached once a new tenant takes the name.
#[tokio::test]
async fn journals_without_incarnations_still_link_forks() -> Result<()> {
    use rewind::runtime::Journal;

    let written = Arc::new(MemoryJournal::new());
    let runtime = Runtime::<Doc>::builder()
        .journal(written.clone())
        .start()
        .await?;
    let shop = runtime
        .create_tenant("shop", doc(json!({"price": 10})))
        .await?;
    let fork = shop.fork("shop.b", StateRef::Head).await?;
    fork.apply(patch(
        json!([{"op": "add", "path": "/hero", "value": "bold"}]),
    ))
    .await?;
    drop((shop, fork));
    runtime.shutdown().await?;
    drop(runtime);

    // The same entries, as a version without incarnations wrote them.
    let legacy = Arc::new(MemoryJournal::new());
    for id in written.tenants()? {
        let highest = written.highest_seq(&id)?;
        let mut entries = written.read(&id, 1.into(), highest)?;
        for entry in &mut entries {
            let mut record: serde_json::Value = serde_json::from_slice(&entry.payload)?;
            if let Some(record) = record.as_object_mut() {
                record.remove("incarnation");
                record.remove("fork_incarnation");
                if let Some(fork) = record.get_mut("fork").and_then(|f| f.as_object_mut()) {
                    fork.remove("parent_incarnation");
                }
            }
            let text = serde_json::to_string(&record)?;
            assert!(!text.contains("incarnation"), "{text}");
            entry.payload = text.into_bytes();
        }
        legacy.append(entries).await?;
    }
    let start = || async {
        let runtime = Runtime::<Doc>::builder()
            .journal(legacy.clone())
            .start()
            .await?;
        anyhow::Ok(runtime)
    };

    let runtime = start().await?;
    let shop = runtime.tenant("shop").await?;
    let fork = runtime.tenant("shop.b").await?;
    let legacy_incarnation = shop.incarnation().expect("derived from the create entry");
    assert_eq!(fork.fork_info().unwrap().parent_incarnation, None);
    assert_eq!(fork.fork_status().await?.unwrap().detached, None);
    assert_eq!(shop.attached_forks().await?.len(), 1);
    let Error::DeleteRefused(refusal) = runtime.delete_tenant("shop").await.unwrap_err() else {
        panic!("the legacy fork keeps its parent")
    };
    assert_eq!(refusal.forks, vec![TenantId::new("shop.b")?]);
    fork.promote(PromoteStrategy::Replace).await?;
    assert_eq!(
        shop.current().to_json(),
        json!({"price": 10, "hero": "bold"})
    );
    drop((shop, fork));
    runtime.shutdown().await?;
    drop(runtime);

    // The same legacy incarnation at the next replay; then a new tenant
    // of the parent's name is not the parent.
    let runtime = start().await?;
    assert_eq!(
        runtime.tenant("shop").await?.incarnation(),
        Some(legacy_incarnation)
    );
    runtime
        .delete_tenant_with("shop", DeleteOptions::default().detach_forks())
        .await?;
    let new_shop = runtime
        .create_tenant("shop", doc(json!({"new": true})))
        .await?;
    let fork = runtime.tenant("shop.b").await?;
    assert_eq!(
        fork.fork_status().await?.unwrap().detached,
        Some(Detached::ParentReplaced)
    );
    assert!(matches!(
        fork.promote(PromoteStrategy::Replace).await,
        Err(Error::ForkDetached { .. })
    ));
    assert_eq!(new_shop.current().to_json(), json!({"new": true}));
    assert!(new_shop.attached_forks().await?.is_empty());
    drop((new_shop, fork));
    runtime.shutdown().await?;
    Ok(())
}

/// A fork its parent has no record of (made through the supervisor's door,
/// which does not tell the parent — as when recording fails) still keeps
/// the parent from being deleted, and the checked listing shows it: the
/// fork names the parent's incarnation, and that is what counts.
#[tokio::test]
async fn an_unrecorded_fork_still_holds_its_parent() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let shop = runtime
        .create_tenant("shop", doc(json!({"price": 10})))
        .await?;
    let info = ForkInfo::new(shop.id().clone(), Revision::ZERO, shop.incarnation());
    let fork: Tenant<Doc> = ask(&runtime.supervisor(), |reply| SupervisorMsg::CreateFork {
        id: TenantId::new("shop.quiet").unwrap(),
        initial: shop.current(),
        fork: info,
        config: None,
        meta: Default::default(),
        reply,
    })
    .await?;
    assert!(shop.forks().is_empty(), "not recorded");
    let listed = shop.attached_forks().await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].fork, *fork.id());
    assert_eq!(listed[0].fork_incarnation, fork.incarnation());
    let Error::DeleteRefused(refusal) = runtime.delete_tenant("shop").await.unwrap_err() else {
        panic!("an attached fork refuses the deletion")
    };
    assert_eq!(refusal.forks, vec![fork.id().clone()]);
    // Promoting it works: it is the parent it names.
    fork.apply(patch(
        json!([{"op": "replace", "path": "/price", "value": 7}]),
    ))
    .await?;
    fork.promote(PromoteStrategy::Replace).await?;
    assert_eq!(shop.current()["price"], 7);
    drop((shop, fork));
    runtime.shutdown().await?;
    Ok(())
}
