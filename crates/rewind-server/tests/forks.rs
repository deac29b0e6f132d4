//! The fork routes: `POST /v1/tenants/{t}/forks` makes a tenant whose
//! revision 0 is the parent's state at a reference, shown in `GET
//! /v1/tenants/{fork}` and its history; the fork is an ordinary tenant;
//! `POST /v1/tenants/{fork}/promote` writes it back (replace, merge, 409
//! `conflict` with nothing written, 412 on `if_parent_revision`); a parent's
//! tenant token reaches none of it.

mod support;

use rewind_server::{ApiConfig, Tokens};
use serde_json::json;
use support::{config, Server};

#[tokio::test]
async fn fork_serve_and_promote_over_http() {
    let server = Server::new().await;
    server
        .create(
            "storefront",
            json!({"price": 10, "hero": "classic", "tags": ["a"]}),
        )
        .await;
    server
        .patch(
            "/v1/tenants/storefront/state",
            json!([{"op": "replace", "path": "/price", "value": 11}]),
        )
        .await
        .assert_status(200);

    // Fork at the head, and at revision 0.
    let mut made = server
        .post(
            "/v1/tenants/storefront/forks",
            json!({"name": "storefront.variant_b", "from": "head", "reason": "try bold"}),
        )
        .await;
    made.assert_status(201);
    // The fork names the parent's incarnation: 32 hex digits.
    let incarnation = take_incarnation(&mut made.body["fork"]);
    assert_eq!(
        made.body,
        json!({"tenant": "storefront.variant_b", "revision": 0,
               "fork": {"parent": "storefront", "base_revision": 1}})
    );
    server
        .post(
            "/v1/tenants/storefront/forks",
            json!({"name": "storefront.variant_c", "from": "0"}),
        )
        .await
        .assert_status(201);
    let mut info = server.get("/v1/tenants/storefront.variant_b").await;
    info.assert_status(200);
    let memory = info.body.as_object_mut().unwrap().remove("memory").unwrap();
    assert_eq!(take_incarnation(&mut info.body["fork"]), incarnation);
    assert_eq!(
        info.body,
        json!({"tenant": "storefront.variant_b", "revision": 0,
               "fork": {"parent": "storefront", "base_revision": 1, "detached": false}})
    );
    // A fresh fork has no history of its own: all of its state is its own
    // to account (its base is shared with the parent, which counts it).
    assert_eq!(memory["history_bytes"], 0, "{memory}");
    assert_eq!(memory["shared_bytes"], 0, "{memory}");
    assert!(memory["unique_bytes"].as_u64().unwrap() > 0, "{memory}");
    let mut parent = server.get("/v1/tenants/storefront").await;
    let memory = parent
        .body
        .as_object_mut()
        .unwrap()
        .remove("memory")
        .unwrap();
    assert_eq!(parent.body, json!({"tenant": "storefront", "revision": 1}));
    // Revision 0 is history now: its delta back from the head.
    assert!(memory["history_bytes"].as_u64().unwrap() > 0, "{memory}");
    let history = server.get("/v1/tenants/storefront.variant_b/history").await;
    assert_eq!(
        history.body["revisions"][0]["cause"],
        json!({"kind": "fork", "parent": "storefront", "base_revision": 1})
    );
    assert_eq!(history.body["revisions"][0]["message"], "try bold");
    let listed = server.get("/v1/tenants/storefront/forks").await;
    let names: Vec<&str> = listed.body["forks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["storefront.variant_b", "storefront.variant_c"]);
    assert_eq!(listed.body["forks"][1]["base_revision"], 0);

    // Refusals: a taken name, a bad reference, an unknown parent.
    server
        .rejects(
            "POST",
            "/v1/tenants/storefront/forks",
            Some(&json!({"name": "storefront.variant_b"}).to_string()),
            &[],
            409,
            "tenant_exists",
        )
        .await;
    server
        .rejects(
            "POST",
            "/v1/tenants/storefront/forks",
            Some(&json!({"name": "x", "from": "snapshot:nope"}).to_string()),
            &[],
            404,
            "snapshot_not_found",
        )
        .await;
    server
        .rejects(
            "POST",
            "/v1/tenants/storefront/forks",
            Some(&json!({"name": "count"}).to_string()),
            &[],
            400,
            "invalid_request",
        )
        .await;
    server
        .rejects(
            "POST",
            "/v1/tenants/ghost/forks",
            Some(&json!({"name": "x"}).to_string()),
            &[],
            404,
            "tenant_not_found",
        )
        .await;

    // The fork serves like any tenant; the parent does not see its writes.
    server
        .patch(
            "/v1/tenants/storefront.variant_b/state",
            json!([{"op": "replace", "path": "/hero", "value": "bold"}]),
        )
        .await
        .assert_status(200);
    assert_eq!(
        server.get("/v1/tenants/storefront/state").await.body["hero"],
        "classic"
    );

    // Merge: the parent moved elsewhere meanwhile.
    server
        .patch(
            "/v1/tenants/storefront/state",
            json!([{"op": "add", "path": "/sale", "value": true}]),
        )
        .await
        .assert_status(200);
    let promoted = server
        .post(
            "/v1/tenants/storefront.variant_b/promote",
            json!({"strategy": "merge", "if_parent_revision": 2}),
        )
        .await;
    promoted.assert_status(200);
    assert_eq!(
        promoted.body,
        json!({"parent": "storefront", "revision": 3, "fork": "storefront.variant_b",
               "fork_revision": 1, "strategy": "merge"})
    );
    assert_eq!(promoted.headers["etag"], "\"3\"");
    assert_eq!(
        server.get("/v1/tenants/storefront/state").await.body,
        json!({"price": 11, "hero": "bold", "tags": ["a"], "sale": true})
    );
    let head = server.get("/v1/tenants/storefront/history?limit=1").await;
    assert_eq!(
        head.body["revisions"][0]["cause"],
        json!({"kind": "promote", "fork": "storefront.variant_b", "fork_revision": 1,
               "strategy": "merge"})
    );

    // A stale parent revision: 412, nothing written.
    server
        .rejects(
            "POST",
            "/v1/tenants/storefront.variant_b/promote",
            Some(&json!({"strategy": "replace", "if_parent_revision": 2}).to_string()),
            &[],
            412,
            "revision_mismatch",
        )
        .await;

    // Conflict: variant_c (based on revision 0) changed /price too.
    server
        .patch(
            "/v1/tenants/storefront.variant_c/state",
            json!([{"op": "replace", "path": "/price", "value": 9},
                   {"op": "add", "path": "/footer", "value": "new"}]),
        )
        .await
        .assert_status(200);
    let conflict = server
        .rejects(
            "POST",
            "/v1/tenants/storefront.variant_c/promote",
            Some(&json!({"strategy": "merge"}).to_string()),
            &[],
            409,
            "conflict",
        )
        .await;
    assert_eq!(conflict.body["error"]["paths"], json!(["/price"]));
    // Replace takes the fork's head as it is.
    let replaced = server
        .post(
            "/v1/tenants/storefront.variant_c/promote",
            json!({"strategy": "replace"}),
        )
        .await;
    replaced.assert_status(200);
    assert_eq!(
        server.get("/v1/tenants/storefront/state").await.body,
        json!({"price": 9, "hero": "classic", "tags": ["a"], "footer": "new"})
    );

    // Only forks promote; a body needs a known strategy.
    server
        .rejects(
            "POST",
            "/v1/tenants/storefront/promote",
            Some(&json!({"strategy": "replace"}).to_string()),
            &[],
            409,
            "not_a_fork",
        )
        .await;
    server
        .rejects(
            "POST",
            "/v1/tenants/storefront.variant_b/promote",
            Some(&json!({"strategy": "squash"}).to_string()),
            &[],
            400,
            "invalid_request",
        )
        .await;

    // A fork of a fork; a deleted fork leaves the list.
    server
        .post(
            "/v1/tenants/storefront.variant_b/forks",
            json!({"name": "storefront.variant_b.2"}),
        )
        .await
        .assert_status(201);
    server
        .delete("/v1/tenants/storefront.variant_c")
        .await
        .assert_status(204);
    let listed = server.get("/v1/tenants/storefront/forks").await;
    assert_eq!(
        listed.body["forks"].as_array().unwrap().len(),
        1,
        "{}",
        listed.text
    );
    let nested = server.get("/v1/tenants/storefront.variant_b/forks").await;
    assert_eq!(nested.body["forks"][0]["tenant"], "storefront.variant_b.2");
}

#[tokio::test]
async fn a_parents_tenant_token_does_not_reach_its_forks() {
    let mut tokens = Tokens::none();
    tokens
        .parse_file("admin admin-secret\ntenant shop shop-token\ntenant shop.b fork-token\n")
        .unwrap();
    let server = Server::start(ApiConfig { tokens, ..config() }).await;
    server.create("shop", json!({"price": 10})).await;
    let admin = [("authorization", "Bearer admin-secret")];
    let shop = [("authorization", "Bearer shop-token")];
    let fork_token = [("authorization", "Bearer fork-token")];
    let body = json!({"name": "shop.b"}).to_string();

    // Making a fork makes a tenant: the parent's token may not.
    server
        .rejects(
            "POST",
            "/v1/tenants/shop/forks",
            Some(&body),
            &shop,
            403,
            "forbidden",
        )
        .await;
    server
        .send_text("POST", "/v1/tenants/shop/forks", Some(&body), &admin)
        .await
        .assert_status(201);

    // The parent's token reaches none of the fork's routes.
    for (method, path, body) in [
        ("GET", "/v1/tenants/shop.b", None),
        ("GET", "/v1/tenants/shop.b/state", None),
        (
            "PATCH",
            "/v1/tenants/shop.b/state",
            Some(r#"[{"op":"add","path":"/x","value":1}]"#),
        ),
        ("GET", "/v1/tenants/shop.b/history", None),
        (
            "POST",
            "/v1/tenants/shop.b/promote",
            Some(r#"{"strategy":"replace"}"#),
        ),
    ] {
        server
            .rejects(method, path, body, &shop, 403, "forbidden")
            .await;
    }
    // It still lists its forks.
    let listed = server
        .send("GET", "/v1/tenants/shop/forks", None, &shop)
        .await;
    listed.assert_status(200);
    assert_eq!(listed.body["forks"][0]["tenant"], "shop.b");

    // The fork's own token serves the fork, but cannot write the parent by
    // promoting into it.
    server
        .send_text(
            "PATCH",
            "/v1/tenants/shop.b/state",
            Some(r#"[{"op":"replace","path":"/price","value":8}]"#),
            &fork_token,
        )
        .await
        .assert_status(200);
    server
        .rejects(
            "POST",
            "/v1/tenants/shop.b/promote",
            Some(r#"{"strategy":"replace"}"#),
            &fork_token,
            403,
            "forbidden",
        )
        .await;
    // The admin may.
    server
        .send_text(
            "POST",
            "/v1/tenants/shop.b/promote",
            Some(r#"{"strategy":"replace"}"#),
            &admin,
        )
        .await
        .assert_status(200);
    let state = server
        .send("GET", "/v1/tenants/shop/state", None, &shop)
        .await;
    assert_eq!(state.body, json!({"price": 8}));
}

/// Removes and returns a fork's `parent_incarnation`, checked to be 32
/// hex digits.
#[track_caller]
fn take_incarnation(fork: &mut serde_json::Value) -> String {
    let incarnation = fork
        .as_object_mut()
        .and_then(|f| f.remove("parent_incarnation"))
        .and_then(|i| i.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no parent_incarnation in {fork}"));
    assert_eq!(incarnation.len(), 32, "{incarnation}");
    assert!(
        incarnation.bytes().all(|b| b.is_ascii_hexdigit()),
        "{incarnation}"
    );
    incarnation
}

/// A fresh SQLite file for one test.
fn sqlite_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rewind-forks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("journal.db")
}

/// An API over a runtime journaled in the SQLite file at `path`.
async fn sqlite_server(path: &std::path::Path) -> Server {
    let journal = rewind_store::SqliteJournal::open(path, rewind_store::SqliteOptions::default())
        .expect("journal opens");
    let runtime = rewind_runtime::Runtime::<rewind_core::Doc>::builder()
        .journal(std::sync::Arc::new(journal))
        .start()
        .await
        .expect("runtime starts");
    Server::over(runtime, config())
}

async fn stop(server: Server) {
    let Server { runtime, api, app } = server;
    drop((api, app));
    runtime.shutdown().await.unwrap();
}

/// The story of the bug: `p1` forked into `p1.f`, the fork changed, `p1`
/// deleted (its forks detached), and a new, unrelated `p1` created. The
/// fork's parent link named `p1` only, so promoting it overwrote the new
/// `p1` (`replace`) or reported a conflict with it (`merge`), and the new
/// `p1` listed no forks while `GET p1.f` named it as the parent. A link
/// names the incarnation now: both promotions are refused as detached,
/// nothing is written, before and after a restart.
#[tokio::test]
async fn a_fork_of_a_deleted_parent_never_writes_the_next_tenant_of_that_name() {
    let path = sqlite_path("detached");
    let server = sqlite_server(&path).await;
    server
        .put("/v1/tenants/p1", json!({"state": {"price": 10}}))
        .await
        .assert_status(201);
    server
        .post("/v1/tenants/p1/forks", json!({"name": "p1.f"}))
        .await
        .assert_status(201);
    server
        .patch(
            "/v1/tenants/p1.f/state",
            json!([{"op": "replace", "path": "/price", "value": 99}]),
        )
        .await
        .assert_status(200);
    server
        .delete("/v1/tenants/p1?detach_forks=true")
        .await
        .assert_status(204);
    server
        .put(
            "/v1/tenants/p1",
            json!({"state": {"price": 1, "new": true}}),
        )
        .await
        .assert_status(201);

    assert_detached(&server, "before the restart").await;
    stop(server).await;
    let server = sqlite_server(&path).await;
    assert_detached(&server, "after the restart").await;
    // The fork itself still serves.
    assert_eq!(
        server.get("/v1/tenants/p1.f/state").await.body,
        json!({"price": 99})
    );
    stop(server).await;
}

/// Both promotions of `p1.f` refused as detached with nothing written; the
/// new `p1` unchanged, listing no forks; `GET p1.f` saying it is detached.
async fn assert_detached(server: &Server, round: &str) {
    for strategy in ["replace", "merge"] {
        let refused = server
            .rejects(
                "POST",
                "/v1/tenants/p1.f/promote",
                Some(&json!({ "strategy": strategy }).to_string()),
                &[],
                409,
                "fork_detached",
            )
            .await;
        let message = refused.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("detached"), "{round}: {message}");
        assert!(message.contains("'p1'"), "{round}: {message}");
    }
    let new_p1 = server.get("/v1/tenants/p1/state").await;
    assert_eq!(new_p1.body, json!({"price": 1, "new": true}), "{round}");
    assert_eq!(
        server.get("/v1/tenants/p1").await.body["revision"],
        0,
        "{round}"
    );
    let forks = server.get("/v1/tenants/p1/forks").await;
    assert_eq!(forks.body, json!({"forks": []}), "{round}");
    let fork = server.get("/v1/tenants/p1.f").await;
    assert_eq!(fork.body["fork"]["parent"], "p1", "{round}");
    assert_eq!(
        fork.body["fork"]["detached"], true,
        "{round}: {}",
        fork.text
    );
    assert_eq!(
        fork.body["fork"]["detached_reason"], "parent_replaced",
        "{round}"
    );
}

/// Deleting a parent whose forks are alive is refused (409, naming them)
/// and deletes nothing; `?detach_forks=true` deletes it and leaves the
/// forks detached. A deleted fork no longer holds its parent.
#[tokio::test]
async fn deleting_a_parent_with_forks_is_refused_unless_they_are_detached() {
    let server = Server::new().await;
    server.create("shop", json!({"price": 10})).await;
    for name in ["shop.a", "shop.b", "shop.gone"] {
        server
            .post("/v1/tenants/shop/forks", json!({ "name": name }))
            .await
            .assert_status(201);
    }
    server
        .delete("/v1/tenants/shop.gone")
        .await
        .assert_status(204);
    let refused = server
        .rejects(
            "DELETE",
            "/v1/tenants/shop",
            None,
            &[],
            409,
            "delete_refused",
        )
        .await;
    assert_eq!(
        refused.body["error"]["forks"],
        json!(["shop.a", "shop.b"]),
        "{}",
        refused.text
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'shop.a'"), "{message}");
    assert!(message.contains("detach_forks"), "{message}");
    // Unknown or malformed options are refused too.
    server
        .rejects(
            "DELETE",
            "/v1/tenants/shop?detach=1",
            None,
            &[],
            400,
            "invalid_request",
        )
        .await;
    server
        .rejects(
            "DELETE",
            "/v1/tenants/shop?detach_forks=maybe",
            None,
            &[],
            400,
            "invalid_request",
        )
        .await;
    // `force` alone does not detach forks: it overrides protection only.
    server
        .rejects(
            "DELETE",
            "/v1/tenants/shop?force=true",
            None,
            &[],
            409,
            "delete_refused",
        )
        .await;
    server
        .delete("/v1/tenants/shop?detach_forks=true")
        .await
        .assert_status(204);
    let fork = server.get("/v1/tenants/shop.a").await;
    assert_eq!(fork.body["fork"]["detached"], true, "{}", fork.text);
    assert_eq!(fork.body["fork"]["detached_reason"], "parent_deleted");
    server
        .rejects(
            "POST",
            "/v1/tenants/shop.a/promote",
            Some(r#"{"strategy":"replace"}"#),
            &[],
            409,
            "fork_detached",
        )
        .await;
}
