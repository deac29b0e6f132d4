//! The auth matrix: no token, a wrong token, a malformed header and another
//! tenant's token against every tenant route give 401 / 403 and change
//! nothing; the tenant's own token works on its routes only; the admin
//! token works everywhere.

mod support;

use rewind_server::{ApiConfig, Tokens};
use serde_json::json;
use support::{config, Server};

const ADMIN: &str = "Bearer admin-secret";
const ACME: &str = "Bearer acme-token";
const GLOBEX: &str = "Bearer globex-token";

/// `acme_corp` (with snapshot `v1` and one change) and `globex`, behind
/// tokens.
async fn server() -> Server {
    let mut tokens = Tokens::none();
    tokens
        .parse_file("admin admin-secret\ntenant acme_corp acme-token\ntenant globex globex-token\n")
        .unwrap();
    let server = Server::start(ApiConfig { tokens, ..config() }).await;
    server.create("acme_corp", json!({"sessions": 100})).await;
    server.create("globex", json!({})).await;
    let acme = server.runtime.tenant("acme_corp").await.unwrap();
    acme.snapshot_named("v1").await.unwrap();
    acme.replace(rewind_core::Doc::from_json(&json!({"sessions": 150})).unwrap())
        .await
        .unwrap();
    server
}

/// Every route of one tenant, with a body that succeeds.
fn tenant_routes(t: &str) -> Vec<(&'static str, String, Option<String>)> {
    let base = format!("/v1/tenants/{t}");
    let body = |v: serde_json::Value| Some(v.to_string());
    vec![
        ("GET", base.clone(), None),
        ("GET", format!("{base}/forks"), None),
        ("GET", format!("{base}/state"), None),
        ("GET", format!("{base}/state?revision=0"), None),
        ("PUT", format!("{base}/state"), body(json!({"x": 1}))),
        (
            "PATCH",
            format!("{base}/state"),
            body(json!([{"op": "add", "path": "/x", "value": 1}])),
        ),
        ("GET", format!("{base}/snapshots"), None),
        (
            "POST",
            format!("{base}/snapshots"),
            body(json!({"name": "s2"})),
        ),
        ("DELETE", format!("{base}/snapshots/v1"), None),
        (
            "POST",
            format!("{base}/rollback"),
            body(json!({"to": {"snapshot": "v1"}})),
        ),
        (
            "POST",
            format!("{base}/rollback"),
            body(json!({"to": {"revision": 0}, "dry_run": true})),
        ),
        ("GET", format!("{base}/diff?from=0&to=head"), None),
        ("GET", format!("{base}/history?limit=5"), None),
        (
            "POST",
            format!("{base}/transactions"),
            body(
                json!({"steps": [{"name": "a", "patch": [{"op": "add", "path": "/y", "value": 2}]}]}),
            ),
        ),
        ("GET", format!("{base}/watch"), None),
    ]
}

/// The routes that manage tenants: admin only.
fn admin_routes() -> Vec<(&'static str, String, Option<String>)> {
    vec![
        ("GET", "/v1/tenants".into(), None),
        (
            "PUT",
            "/v1/tenants/newco".into(),
            Some(json!({"state": {}}).to_string()),
        ),
        ("PUT", "/v1/tenants/acme_corp".into(), None),
        ("DELETE", "/v1/tenants/acme_corp".into(), None),
    ]
}

async fn expect_refused(
    server: &Server,
    routes: &[(&str, String, Option<String>)],
    authorization: Option<&str>,
    status: u16,
    code: &str,
) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    for (method, path, body) in routes {
        let reply = server
            .rejects(method, path, body.as_deref(), &headers, status, code)
            .await;
        if status == 401 {
            assert!(reply.headers.contains_key("www-authenticate"), "{path}");
        }
    }
}

#[tokio::test]
async fn missing_or_wrong_tokens_are_401() {
    let server = server().await;
    let mut routes = tenant_routes("acme_corp");
    routes.extend(admin_routes());
    routes.extend(tenant_routes("ghost"));
    expect_refused(&server, &routes, None, 401, "unauthorized").await;
    for wrong in [
        "Bearer nope",
        "Bearer admin-secre",
        "Bearer admin-secrett",
        "Bearer ",
        "Basic admin-secret",
        "admin-secret",
    ] {
        expect_refused(&server, &routes, Some(wrong), 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn another_tenants_token_is_403() {
    let server = server().await;
    expect_refused(
        &server,
        &tenant_routes("acme_corp"),
        Some(GLOBEX),
        403,
        "forbidden",
    )
    .await;
    // Whether the tenant exists or its id is valid is not told either.
    expect_refused(
        &server,
        &tenant_routes("ghost"),
        Some(GLOBEX),
        403,
        "forbidden",
    )
    .await;
    expect_refused(
        &server,
        &tenant_routes("bad%20id"),
        Some(GLOBEX),
        403,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn tenant_tokens_cannot_manage_tenants() {
    let server = server().await;
    for token in [ACME, GLOBEX] {
        expect_refused(&server, &admin_routes(), Some(token), 403, "forbidden").await;
    }
}

#[tokio::test]
async fn own_and_admin_tokens_work_on_every_tenant_route() {
    for token in [ACME, ADMIN] {
        for (method, path, body) in tenant_routes("acme_corp") {
            // A fresh server each time, so every write meets the state it
            // expects.
            let server = server().await;
            let status = server
                .status_of(method, &path, body.as_deref(), &[("authorization", token)])
                .await;
            assert!(status.is_success(), "{token} {method} {path}: {status}");
        }
    }
}

#[tokio::test]
async fn the_admin_token_manages_tenants() {
    let expected = [200, 201, 409 /* it exists: past authorization */, 204];
    for ((method, path, body), expected) in admin_routes().into_iter().zip(expected) {
        let server = server().await;
        let status = server
            .status_of(method, &path, body.as_deref(), &[("authorization", ADMIN)])
            .await;
        assert_eq!(status.as_u16(), expected, "{method} {path}");
    }
    // Past authorization, an admin gets the usual answers.
    let server = server().await;
    let admin = [("authorization", ADMIN)];
    let reply = server
        .send("GET", "/v1/tenants/ghost/state", None, &admin)
        .await;
    reply.assert_error(404, "tenant_not_found");
    let reply = server
        .send("GET", "/v1/tenants/bad%20id/state", None, &admin)
        .await;
    reply.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn health_and_metrics_need_no_token() {
    let server = server().await;
    server.get("/healthz").await.assert_status(200);
    server.get("/metrics").await.assert_status(200);
}
