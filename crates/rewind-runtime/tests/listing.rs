//! Listing tenants: an O(1) count, and pages in id order that cover every
//! tenant exactly once while others are created and deleted concurrently.

use std::collections::BTreeSet;

use rewind_core::{Doc, TenantId};
use rewind_runtime::Runtime;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_every_tenant_once_under_concurrent_creates_and_deletes() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    let mut lasting = BTreeSet::new();
    for i in 0..300 {
        let id = format!("m{i:04}");
        runtime.create_tenant(&id, Doc::object()).await.unwrap();
        lasting.insert(id);
    }
    for i in 0..150 {
        runtime
            .create_tenant(&format!("d{i:04}"), Doc::object())
            .await
            .unwrap();
    }
    assert_eq!(runtime.tenant_count(), 450);

    // Churn: ids sorting before, among and after the lasting ones.
    let churn = tokio::spawn({
        let runtime = runtime.clone();
        async move {
            for i in 0..150 {
                runtime.delete_tenant(&format!("d{i:04}")).await.unwrap();
                for prefix in ["a", "n", "z"] {
                    runtime
                        .create_tenant(&format!("{prefix}{i:04}"), Doc::object())
                        .await
                        .unwrap();
                }
                tokio::task::yield_now().await;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<TenantId> = None;
    loop {
        let (page, next) = runtime.tenants_page(cursor.as_ref(), 7);
        assert!(page.len() <= 7);
        seen.extend(page.iter().map(|(id, _)| id.to_string()));
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    churn.await.unwrap();

    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no tenant listed twice");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "pages come in id order"
    );
    assert!(
        lasting.is_subset(&unique),
        "every tenant that existed throughout is listed"
    );
    assert_eq!(runtime.tenant_count(), 300 + 3 * 150);
    let (all, end) = runtime.tenants_page(None, 10_000);
    assert_eq!((all.len(), end), (750, None));
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_empty_runtime_and_a_cursor_past_the_end() {
    let runtime = Runtime::<Doc>::start().await.unwrap();
    assert_eq!(runtime.tenant_count(), 0);
    assert_eq!(runtime.tenants_page(None, 10), (Vec::new(), None));
    runtime.create_tenant("b", Doc::object()).await.unwrap();
    let past = TenantId::new("zzz").unwrap();
    assert_eq!(runtime.tenants_page(Some(&past), 10), (Vec::new(), None));
    // A cursor need not name a tenant: the page starts after it.
    let before = TenantId::new("a").unwrap();
    let (page, next) = runtime.tenants_page(Some(&before), 1);
    assert_eq!((page.len(), next), (1, None));
    runtime.shutdown().await.unwrap();
}
