//! Every error code of the contract, each from a real request, and after
//! every refused write the same tenants, states, revisions, snapshots and
//! history as before.

mod support;

use std::sync::Arc;

use rewind_server::{ApiConfig, Limits};
use serde_json::json;
use support::{config, Server};
use tokio::sync::oneshot;

const ACME: &str = "/v1/tenants/acme_corp";

type Headers = &'static [(&'static str, &'static str)];

async fn acme_with_snapshot() -> Server {
    let server = Server::with_acme().await;
    server
        .post(&format!("{ACME}/snapshots"), json!({"name": "v1"}))
        .await
        .assert_status(201);
    server
        .patch(
            &format!("{ACME}/state"),
            json!([{"op": "replace", "path": "/sessions", "value": 150}]),
        )
        .await
        .assert_status(200);
    server
}

#[tokio::test]
async fn error_body_shape() {
    let server = Server::new().await;
    let reply = server.get("/v1/tenants/nobody/state").await;
    assert_eq!(reply.status.as_u16(), 404);
    assert_eq!(reply.headers["content-type"], "application/json");
    let error = reply.body["error"].as_object().unwrap();
    assert_eq!(error.len(), 2, "{}", reply.text);
    assert_eq!(error["code"], "tenant_not_found");
    assert_eq!(error["message"], "tenant 'nobody' not found");
}

#[tokio::test]
async fn invalid_request() {
    let server = acme_with_snapshot().await;
    let patch = |p: &str| format!("{ACME}/{p}");
    let cases: Vec<(&str, String, Option<&str>, Headers)> = vec![
        // Tenant ids: charset and length.
        ("PUT", "/v1/tenants/bad%20id".into(), None, &[]),
        ("PUT", format!("/v1/tenants/{}", "x".repeat(65)), None, &[]),
        ("GET", "/v1/tenants/a:b/state".into(), None, &[]),
        // Bodies that are not JSON or not of the right shape.
        ("PUT", "/v1/tenants/new_one".into(), Some("{not json"), &[]),
        (
            "PUT",
            "/v1/tenants/new_one".into(),
            Some(r#"{"stat": {}}"#),
            &[],
        ),
        ("PUT", patch("state"), None, &[]),
        ("PATCH", patch("state"), Some(r#"{"op": "add"}"#), &[]),
        (
            "PATCH",
            patch("state"),
            Some(r#"[{"op": "jump", "path": "/a"}]"#),
            &[],
        ),
        (
            "PATCH",
            patch("state"),
            Some(r#"[{"op": "add", "path": "no-slash", "value": 1}]"#),
            &[],
        ),
        (
            "PATCH",
            patch("state"),
            Some("[]"),
            &[("if-match", "\"one\"")],
        ),
        (
            "PUT",
            patch("state"),
            Some("{}"),
            &[("if-match", "\"1\", \"2\"")],
        ),
        (
            "POST",
            patch("snapshots"),
            Some(r#"{"name": "has space"}"#),
            &[],
        ),
        (
            "POST",
            patch("snapshots"),
            Some(r#"{"protected": true}"#),
            &[],
        ),
        (
            "POST",
            patch("snapshots"),
            Some(r#"{"name": "auto_7"}"#),
            &[],
        ),
        ("POST", patch("rollback"), None, &[]),
        (
            "POST",
            patch("rollback"),
            Some(r#"{"to": {"snapshot": "v1", "latest": true}}"#),
            &[],
        ),
        (
            "POST",
            patch("rollback"),
            Some(r#"{"to": {"latest": false}}"#),
            &[],
        ),
        (
            "POST",
            patch("rollback"),
            Some(r#"{"to": {"time": "yesterday"}}"#),
            &[],
        ),
        (
            "POST",
            patch("rollback"),
            Some(r#"{"to": {"revision": -1}}"#),
            &[],
        ),
        ("POST", patch("rollback"), Some(r#"{"to": "latest"}"#), &[]),
        ("POST", patch("transactions"), Some(r#"{"steps": []}"#), &[]),
        (
            "POST",
            patch("transactions"),
            Some(r#"{"steps": [{"name": "a", "patch": {}}]}"#),
            &[],
        ),
        (
            "POST",
            patch("transactions"),
            Some(r#"{"steps": [{"name": "a", "patch": []}], "on_failure": "never"}"#),
            &[],
        ),
    ];
    for (method, path, body, headers) in &cases {
        server
            .rejects(method, path, *body, headers, 400, "invalid_request")
            .await;
    }
    // Well-formed transactions that cannot run (a step named `start`, a
    // name twice, an unknown on_failure checkpoint) are 422
    // `invalid_transaction`: see routes.rs.
    // Reads with bad parameters.
    for path in [
        format!("{ACME}/state?revision=1&snapshot=v1"),
        format!("{ACME}/state?revision=one"),
        format!("{ACME}/state?as_of=noon"),
        format!("{ACME}/state?snapshot=bad%20name"),
        format!("{ACME}/state?colour=red"),
        format!("{ACME}/diff"),
        format!("{ACME}/diff?from=tail"),
        format!("{ACME}/diff?from=0&to=snapshot:"),
        format!("{ACME}/diff?from=time:soon"),
        format!("{ACME}/history?limit=-3"),
    ] {
        server
            .rejects("GET", &path, None, &[], 400, "invalid_request")
            .await;
    }
}

#[tokio::test]
async fn not_found() {
    let server = acme_with_snapshot().await;
    let r = |m: &'static str, p: String, b: Option<&'static str>, c: &'static str| (m, p, b, c);
    let cases = [
        // tenant_not_found on every tenant route.
        r(
            "GET",
            "/v1/tenants/ghost/state".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "PUT",
            "/v1/tenants/ghost/state".into(),
            Some("{}"),
            "tenant_not_found",
        ),
        r(
            "PATCH",
            "/v1/tenants/ghost/state".into(),
            Some("[]"),
            "tenant_not_found",
        ),
        r(
            "GET",
            "/v1/tenants/ghost/snapshots".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "POST",
            "/v1/tenants/ghost/snapshots".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "DELETE",
            "/v1/tenants/ghost/snapshots/v1".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "POST",
            "/v1/tenants/ghost/rollback".into(),
            Some(r#"{"to": {"latest": true}}"#),
            "tenant_not_found",
        ),
        r(
            "GET",
            "/v1/tenants/ghost/diff?from=0".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "GET",
            "/v1/tenants/ghost/history".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "POST",
            "/v1/tenants/ghost/transactions".into(),
            Some(r#"{"steps": [{"name": "a", "patch": []}]}"#),
            "tenant_not_found",
        ),
        r(
            "GET",
            "/v1/tenants/ghost/watch".into(),
            None,
            "tenant_not_found",
        ),
        r(
            "DELETE",
            "/v1/tenants/ghost".into(),
            None,
            "tenant_not_found",
        ),
        // snapshot_not_found.
        r(
            "GET",
            format!("{ACME}/state?snapshot=v9"),
            None,
            "snapshot_not_found",
        ),
        r(
            "DELETE",
            format!("{ACME}/snapshots/v9"),
            None,
            "snapshot_not_found",
        ),
        r(
            "POST",
            format!("{ACME}/rollback"),
            Some(r#"{"to": {"snapshot": "v9"}}"#),
            "snapshot_not_found",
        ),
        r(
            "POST",
            format!("{ACME}/rollback"),
            Some(r#"{"to": {"snapshot": "v9"}, "dry_run": true}"#),
            "snapshot_not_found",
        ),
        r(
            "POST",
            format!("{ACME}/rollback"),
            Some(r#"{"to": {"time": "2001-01-01T00:00:00Z"}}"#),
            "snapshot_not_found",
        ),
        r(
            "POST",
            format!("{ACME}/rollback"),
            Some(r#"{"to": {"checkpoint": {"transaction": 42, "name": "x"}}}"#),
            "snapshot_not_found",
        ),
        r(
            "GET",
            format!("{ACME}/diff?from=snapshot:v9"),
            None,
            "snapshot_not_found",
        ),
        // revision_not_found.
        r(
            "GET",
            format!("{ACME}/state?revision=99"),
            None,
            "revision_not_found",
        ),
        r(
            "GET",
            format!("{ACME}/state?as_of=2001-01-01T00:00:00Z"),
            None,
            "revision_not_found",
        ),
        r(
            "POST",
            format!("{ACME}/rollback"),
            Some(r#"{"to": {"revision": 99}}"#),
            "revision_not_found",
        ),
        r(
            "GET",
            format!("{ACME}/diff?from=0&to=99"),
            None,
            "revision_not_found",
        ),
        r(
            "GET",
            format!("{ACME}/diff?from=time:2001-01-01T00:00:00Z"),
            None,
            "revision_not_found",
        ),
    ];
    for (method, path, body, code) in &cases {
        server.rejects(method, path, *body, &[], 404, code).await;
    }
    // No rollback target at all: a tenant without snapshots.
    server.create("bare", json!({})).await;
    server
        .rejects(
            "POST",
            "/v1/tenants/bare/rollback",
            Some(r#"{"to": {"latest": true}}"#),
            &[],
            404,
            "snapshot_not_found",
        )
        .await;
    // Unknown routes and methods.
    server
        .rejects("GET", "/v2/nothing", None, &[], 404, "not_found")
        .await;
    server
        .rejects(
            "POST",
            "/v1/tenants",
            Some("{}"),
            &[],
            405,
            "method_not_allowed",
        )
        .await;
}

#[tokio::test]
async fn conflicts() {
    let server = acme_with_snapshot().await;
    server
        .rejects("PUT", ACME, None, &[], 409, "tenant_exists")
        .await;
    server
        .rejects(
            "PUT",
            ACME,
            Some(r#"{"state": {"x": 1}}"#),
            &[],
            409,
            "tenant_exists",
        )
        .await;
    server
        .rejects(
            "POST",
            &format!("{ACME}/snapshots"),
            Some(r#"{"name": "v1"}"#),
            &[],
            409,
            "snapshot_exists",
        )
        .await;
    server
        .post(
            &format!("{ACME}/snapshots"),
            json!({"name": "keep", "protected": true}),
        )
        .await
        .assert_status(201);
    server
        .rejects(
            "DELETE",
            &format!("{ACME}/snapshots/keep"),
            None,
            &[],
            409,
            "snapshot_protected",
        )
        .await;
}

#[tokio::test]
async fn revision_mismatch() {
    let server = acme_with_snapshot().await; // head is revision 1
    for tag in ["\"0\"", "\"2\"", "W/\"0\"", "0"] {
        let headers = [("if-match", tag)];
        server
            .rejects(
                "PUT",
                &format!("{ACME}/state"),
                Some("{}"),
                &headers,
                412,
                "revision_mismatch",
            )
            .await;
        server
            .rejects(
                "PATCH",
                &format!("{ACME}/state"),
                Some(r#"[{"op": "add", "path": "/x", "value": 1}]"#),
                &headers,
                412,
                "revision_mismatch",
            )
            .await;
    }
    let reply = server
        .send(
            "PATCH",
            &format!("{ACME}/state"),
            Some(&json!([{"op": "add", "path": "/x", "value": 1}])),
            &[("if-match", "\"1\"")],
        )
        .await;
    reply.assert_status(200);
}

#[tokio::test]
async fn patch_failed_changes_nothing() {
    let server = acme_with_snapshot().await;
    for patch in [
        json!([{"op": "remove", "path": "/nope"}]),
        json!([{"op": "test", "path": "/sessions", "value": 1}]),
        json!([{"op": "replace", "path": "/sessions/deeper", "value": 1}]),
        json!([{"op": "add", "path": "/list/5", "value": 1}]),
        json!([{"op": "move", "from": "/missing", "path": "/x"}]),
        // The first op would apply; the patch is all or nothing.
        json!([
            {"op": "replace", "path": "/sessions", "value": 999},
            {"op": "remove", "path": "/nope"},
        ]),
    ] {
        let reply = server
            .rejects(
                "PATCH",
                &format!("{ACME}/state"),
                Some(&patch.to_string()),
                &[],
                422,
                "patch_failed",
            )
            .await;
        assert!(reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("patch operation"));
    }
    assert_eq!(
        server.get(&format!("{ACME}/state")).await.body["sessions"],
        150
    );
}

#[tokio::test]
async fn payload_too_large() {
    let limits = Limits {
        max_body_bytes: 2048,
        max_patch_ops: 3,
        max_transaction_steps: 2,
        max_depth: 4,
        ..Limits::default()
    };
    let server = Server::start(ApiConfig { limits, ..config() }).await;
    server.create("acme_corp", json!({"a": {"b": {}}})).await;
    let nested = |levels: usize| "[".repeat(levels) + &"]".repeat(levels);
    let op = r#"{"op": "add", "path": "/n", "value": 1}"#;
    let ops = |n: usize| format!("[{}]", vec![op; n].join(","));
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(4096));
    let step = format!(r#"{{"name": "s", "patch": {}}}"#, ops(1));
    let cases: Vec<(&str, String, String)> = vec![
        // Body size, on every route that takes a body.
        ("PUT", format!("{ACME}/state"), big.clone()),
        (
            "PATCH",
            format!("{ACME}/state"),
            format!("[{}]", vec![op; 60].join(",")),
        ),
        (
            "PUT",
            "/v1/tenants/other".into(),
            format!(r#"{{"state": {big}}}"#),
        ),
        ("POST", format!("{ACME}/snapshots"), big.clone()),
        ("POST", format!("{ACME}/rollback"), big.clone()),
        ("POST", format!("{ACME}/transactions"), big),
        // Patch length, alone and in a transaction step.
        ("PATCH", format!("{ACME}/state"), ops(4)),
        (
            "POST",
            format!("{ACME}/transactions"),
            format!(r#"{{"steps": [{{"name": "s", "patch": {}}}]}}"#, ops(4)),
        ),
        // Transaction steps.
        (
            "POST",
            format!("{ACME}/transactions"),
            format!(r#"{{"steps": [{step}, {step}, {step}]}}"#),
        ),
        // Document depth: a document, a patch value, a new tenant's state,
        // the result of a patch, and past what the JSON parser takes.
        ("PUT", format!("{ACME}/state"), nested(5)),
        (
            "PATCH",
            format!("{ACME}/state"),
            format!(r#"[{{"op": "add", "path": "/x", "value": {}}}]"#, nested(5)),
        ),
        (
            "PUT",
            "/v1/tenants/other".into(),
            format!(r#"{{"state": {}}}"#, nested(5)),
        ),
        (
            "PATCH",
            format!("{ACME}/state"),
            format!(
                r#"[{{"op": "add", "path": "/a/b/c", "value": {}}}]"#,
                nested(2)
            ),
        ),
        ("PUT", format!("{ACME}/state"), nested(500)),
    ];
    for (method, path, body) in &cases {
        server
            .rejects(method, path, Some(body), &[], 413, "payload_too_large")
            .await;
    }
    // Just within the limits.
    server
        .send_text("PATCH", &format!("{ACME}/state"), Some(&ops(3)), &[])
        .await
        .assert_status(200);
    server
        .send_text("PUT", &format!("{ACME}/state"), Some(&nested(4)), &[])
        .await
        .assert_status(200);
}

#[tokio::test]
async fn quota_exceeded() {
    let limits = Limits {
        max_tenants: 2,
        max_snapshots: 2,
        ..Limits::default()
    };
    let server = Server::start(ApiConfig { limits, ..config() }).await;
    server
        .put("/v1/tenants/one", json!({}))
        .await
        .assert_status(201);
    server
        .put("/v1/tenants/two", json!({}))
        .await
        .assert_status(201);
    server
        .rejects("PUT", "/v1/tenants/three", None, &[], 429, "quota_exceeded")
        .await;
    // An existing id is still a conflict, not a quota matter.
    server
        .rejects("PUT", "/v1/tenants/two", None, &[], 409, "tenant_exists")
        .await;
    server.delete("/v1/tenants/two").await.assert_status(204);
    server
        .put("/v1/tenants/three", json!({}))
        .await
        .assert_status(201);

    // Snapshots: past the limit the oldest unprotected one goes; when all
    // are protected, nothing can make room.
    let snapshots = "/v1/tenants/one/snapshots";
    for name in ["a", "b"] {
        server
            .post(snapshots, json!({"name": name, "protected": true}))
            .await
            .assert_status(201);
    }
    server
        .rejects(
            "POST",
            snapshots,
            Some(r#"{"name": "c"}"#),
            &[],
            429,
            "quota_exceeded",
        )
        .await;
}

/// A tenant with as many requests in flight as it accepts answers 503
/// `overloaded` to the next write and changes nothing.
#[tokio::test]
async fn overloaded() {
    let mut config = config();
    config.tenant.max_in_flight = 1;
    let server = Server::start(config).await;
    server
        .put("/v1/tenants/busy", json!({"state": {"n": 0}}))
        .await
        .assert_status(201);
    let tenant = server.runtime.tenant("busy").await.unwrap();

    // A transaction whose side effect waits holds the write lease...
    let (started, is_started) = oneshot::channel::<()>();
    let (release, released) = oneshot::channel::<()>();
    let released = Arc::new(std::sync::Mutex::new(Some(released)));
    let running = tokio::spawn(
        tenant
            .transaction()
            .effect("wait", move |_| {
                let released = released.lock().unwrap().take();
                async move {
                    let _ = started.send(());
                    if let Some(released) = released {
                        let _ = released.await;
                    }
                    Ok::<(), std::io::Error>(())
                }
            })
            .run(),
    );
    is_started.await.unwrap();
    // ...so a write waits for it, taking the tenant's one in-flight slot
    // (polled once: the slot is taken when the request is sent).
    let one = serde_json::json!([{"op": "replace", "path": "/n", "value": 1}]);
    let waiting = tenant.apply(rewind_core::Patch::from_json(&one).unwrap());
    tokio::pin!(waiting);
    tokio::select! {
        biased;
        _ = &mut waiting => panic!("the write cannot finish while the lease is held"),
        _ = std::future::ready(()) => {}
    }
    assert_eq!(tenant.in_flight(), 1);

    server
        .rejects(
            "PATCH",
            "/v1/tenants/busy/state",
            Some(r#"[{"op": "replace", "path": "/n", "value": 2}]"#),
            &[],
            503,
            "overloaded",
        )
        .await;
    server
        .rejects(
            "PUT",
            "/v1/tenants/busy/state",
            Some("{}"),
            &[],
            503,
            "overloaded",
        )
        .await;
    server
        .rejects(
            "POST",
            "/v1/tenants/busy/snapshots",
            None,
            &[],
            503,
            "overloaded",
        )
        .await;
    // Reads need no slot.
    server
        .get("/v1/tenants/busy/state")
        .await
        .assert_status(200);

    release.send(()).unwrap();
    assert!(running.await.unwrap().unwrap().is_committed());
    assert_eq!(waiting.await.unwrap().revision.get(), 1);
    server
        .patch(
            "/v1/tenants/busy/state",
            json!([{"op": "replace", "path": "/n", "value": 2}]),
        )
        .await
        .assert_status(200);
}

/// `Idempotency-Key`: a retry of a keyed write is answered with the first
/// answer and applies nothing; the same key with another request is 422;
/// a route that does not honour the key refuses it instead of ignoring it.
#[tokio::test]
async fn idempotency_keys_make_retries_safe() {
    let server = Server::new().await;
    let key = [("idempotency-key", "create-retry-1")];
    let created = server
        .send(
            "PUT",
            "/v1/tenants/keyed",
            Some(&json!({"state": {"items": []}})),
            &key,
        )
        .await;
    created.assert_status(201);
    // The creation retried: the same answer, not 409.
    let again = server
        .send(
            "PUT",
            "/v1/tenants/keyed",
            Some(&json!({"state": {"items": []}})),
            &key,
        )
        .await;
    again.assert_status(201);
    assert_eq!(again.body, created.body);

    let add = json!([{"op": "add", "path": "/items/-", "value": 1}]);
    let key = [("idempotency-key", "append-1")];
    let first = server
        .send("PATCH", "/v1/tenants/keyed/state", Some(&add), &key)
        .await;
    first.assert_status(200);
    for _ in 0..3 {
        let retried = server
            .send("PATCH", "/v1/tenants/keyed/state", Some(&add), &key)
            .await;
        retried.assert_status(200);
        assert_eq!(retried.body, first.body, "the first answer again");
    }
    let state = server.get("/v1/tenants/keyed/state").await;
    assert_eq!(state.body, json!({"items": [1]}), "applied once");
    // The key is in the history, with the revision it made.
    let history = server.get("/v1/tenants/keyed/history").await;
    let keyed: Vec<_> = history.body["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["idempotency"]["key"] == "append-1")
        .collect();
    assert_eq!(keyed.len(), 1, "{}", history.text);
    assert_eq!(keyed[0]["revision"], first.body["revision"]);

    // The same key with another body: refused, nothing applied.
    let other = json!([{"op": "add", "path": "/items/-", "value": 2}]);
    let reused = server
        .send("PATCH", "/v1/tenants/keyed/state", Some(&other), &key)
        .await;
    reused.assert_status(422);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    let state = server.get("/v1/tenants/keyed/state").await;
    assert_eq!(state.body, json!({"items": [1]}));

    // A malformed key, and a route that does not honour keys: 400.
    let bad = server
        .send(
            "PATCH",
            "/v1/tenants/keyed/state",
            Some(&other),
            &[("idempotency-key", "has space")],
        )
        .await;
    bad.assert_status(400);
    let snapshot = server
        .send(
            "POST",
            "/v1/tenants/keyed/snapshots",
            Some(&json!({"name": "s1"})),
            &[("idempotency-key", "snap-1")],
        )
        .await;
    snapshot.assert_status(400);
    assert!(snapshot.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not take Idempotency-Key"));
    let state = server.get("/v1/tenants/keyed/state").await;
    assert_eq!(state.body, json!({"items": [1]}));
}

/// Protection means protection: a tenant holding protected snapshots is
/// not deleted (409 `delete_refused` naming them, nothing changed) unless
/// `?force=true` says to destroy them too.
#[tokio::test]
async fn deleting_a_tenant_with_protected_snapshots_needs_force() {
    let server = acme_with_snapshot().await;
    for name in ["keep", "audit"] {
        server
            .post(
                &format!("{ACME}/snapshots"),
                json!({ "name": name, "protected": true }),
            )
            .await
            .assert_status(201);
    }
    let refused = server
        .rejects("DELETE", ACME, None, &[], 409, "delete_refused")
        .await;
    assert_eq!(
        refused.body["error"]["protected_snapshots"],
        json!(["keep", "audit"]),
        "{}",
        refused.text
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("'keep'"), "{message}");
    assert!(message.contains("force"), "{message}");
    // Detaching forks does not override protection.
    server
        .rejects(
            "DELETE",
            &format!("{ACME}?detach_forks=true"),
            None,
            &[],
            409,
            "delete_refused",
        )
        .await;
    server
        .delete(&format!("{ACME}?force=true"))
        .await
        .assert_status(204);
    server.get(ACME).await.assert_error(404, "tenant_not_found");
}
