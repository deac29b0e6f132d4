//! Guarded deployments over HTTP, against a real HTTP health endpoint:
//! created (201), listed newest first, read with their measurements;
//! promoted when the window ends healthy, rolled back when the endpoint
//! fails (the rollback's message names the check), aborted and promoted on
//! request; one per tenant (409); checks only to allowed hosts (400); bad
//! input refused with nothing changed.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rewind_core::Doc;
use rewind_runtime::deploy::CheckHosts;
use rewind_runtime::Runtime;
use serde_json::{json, Value};
use support::Server;

/// A health endpoint whose status a test sets: `GET /health`.
struct App {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
}

impl App {
    async fn start() -> App {
        let status = Arc::new(AtomicU16::new(200));
        let answer = Arc::clone(&status);
        let router = axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let answer = Arc::clone(&answer);
                async move { StatusCode::from_u16(answer.load(Ordering::SeqCst)).unwrap() }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        App { addr, status }
    }

    fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }
}

async fn server(allowed: &[String]) -> Server {
    let runtime = Runtime::<Doc>::builder()
        .check_hosts(CheckHosts::Only(allowed.to_vec()))
        .start()
        .await
        .unwrap();
    let server = Server::over(runtime, support::config());
    server
        .create("shop", json!({"version": "1.0.0", "cart": 0}))
        .await;
    server
}

fn deployment(name: &str, url: &str, window: &str) -> Value {
    json!({
        "name": name,
        "patch": [{"op": "replace", "path": "/version", "value": "2.0.0"}],
        "checks": [{"http": {"url": url, "expect_status": 200}}],
        "interval": "100ms",
        "window": window,
    })
}

/// Polls the deployment until it leaves `monitoring` (at most 10 s).
async fn ended(server: &Server, id: u64) -> Value {
    for _ in 0..200 {
        let reply = server
            .get(&format!("/v1/tenants/shop/deployments/{id}"))
            .await;
        reply.assert_status(200);
        if reply.body["status"] != "monitoring" {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deployment {id} did not end");
}

#[tokio::test]
async fn a_healthy_deployment_is_promoted_and_a_failing_one_rolls_back() {
    let app = App::start().await;
    let server = server(&[app.addr.to_string()]).await;
    let reply = server
        .post(
            "/v1/tenants/shop/deployments",
            deployment("v2.0.0", &app.url(), "500ms"),
        )
        .await;
    reply.assert_status(201);
    assert_eq!(reply.body["status"], "monitoring");
    assert_eq!(reply.body["interval"], "100ms");
    assert_eq!(reply.body["window"], "500ms");
    assert_eq!(reply.body["pre_snapshot"], "pre_v2.0.0");
    assert_eq!(reply.body["revision"], 1);
    let id = reply.body["id"].as_u64().unwrap();
    // One deployment at a time.
    server
        .post(
            "/v1/tenants/shop/deployments",
            deployment("v3", &app.url(), "1s"),
        )
        .await
        .assert_error(409, "deployment_in_progress");
    let done = ended(&server, id).await;
    assert_eq!(done["status"], "promoted", "{done}");
    let measurements = done["measurements"].as_array().unwrap();
    assert_eq!(measurements.len(), 5, "{done}");
    assert!(measurements.iter().all(|m| m["result"] == "pass"), "{done}");
    assert!(done.get("rollback").is_none());
    assert_eq!(
        server.get("/v1/tenants/shop/state").await.body["version"],
        "2.0.0"
    );

    // The endpoint turns unhealthy: the first failure rolls back.
    app.status.store(503, Ordering::SeqCst);
    server
        .patch(
            "/v1/tenants/shop/state",
            json!([{"op": "replace", "path": "/version", "value": "1.0.0"}]),
        )
        .await
        .assert_status(200);
    let reply = server
        .post(
            "/v1/tenants/shop/deployments",
            deployment("v2.0.1", &app.url(), "5s"),
        )
        .await;
    reply.assert_status(201);
    let id = reply.body["id"].as_u64().unwrap();
    let done = ended(&server, id).await;
    assert_eq!(done["status"], "rolled_back", "{done}");
    assert_eq!(done["measurements"][0]["result"], "fail");
    assert_eq!(
        done["measurements"][0]["reason"],
        "status 503, expected 200"
    );
    let rollback = &done["rollback"];
    assert_eq!(rollback["restored"]["name"], "pre_v2.0.1", "{done}");
    let revision = rollback["revision"].as_u64().unwrap();
    let state = server.get("/v1/tenants/shop/state").await;
    assert_eq!(state.body["version"], "1.0.0");
    let history = server.get("/v1/tenants/shop/history?limit=1").await;
    let head = &history.body["revisions"][0];
    assert_eq!(head["revision"], revision);
    let message = head["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("'http {} == 200' failed", app.url())),
        "{message}"
    );

    // Listed newest first.
    let list = server.get("/v1/tenants/shop/deployments").await;
    list.assert_status(200);
    let names: Vec<&str> = list.body["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v2.0.1", "v2.0.0"]);
}

#[tokio::test]
async fn abort_and_promote_end_a_deployment_now() {
    let app = App::start().await;
    let server = server(&[app.addr.ip().to_string()]).await;
    let reply = server
        .post(
            "/v1/tenants/shop/deployments",
            deployment("v2", &app.url(), "10m"),
        )
        .await;
    reply.assert_status(201);
    let id = reply.body["id"].as_u64().unwrap();
    let aborted = server
        .post(
            &format!("/v1/tenants/shop/deployments/{id}/abort"),
            json!({"reason": "errors in the logs"}),
        )
        .await;
    aborted.assert_status(200);
    assert_eq!(aborted.body["status"], "aborted");
    assert!(aborted.body["reason"]
        .as_str()
        .unwrap()
        .contains("errors in the logs"));
    assert_eq!(
        server.get("/v1/tenants/shop/state").await.body["version"],
        "1.0.0"
    );
    server
        .post(
            &format!("/v1/tenants/shop/deployments/{id}/promote"),
            json!({}),
        )
        .await
        .assert_error(409, "deployment_ended");

    let reply = server
        .post(
            "/v1/tenants/shop/deployments",
            deployment("v2.1", &app.url(), "10m"),
        )
        .await;
    let id = reply.body["id"].as_u64().unwrap();
    let promoted = server
        .post(
            &format!("/v1/tenants/shop/deployments/{id}/promote"),
            json!({}),
        )
        .await;
    promoted.assert_status(200);
    assert_eq!(promoted.body["status"], "promoted");
    assert_eq!(
        server.get("/v1/tenants/shop/state").await.body["version"],
        "2.0.0"
    );
    let snapshots = server.get("/v1/tenants/shop/snapshots").await;
    let pre = snapshots.body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pre_v2.1")
        .cloned()
        .unwrap();
    assert_eq!(pre["protected"], false);
}

#[tokio::test]
async fn bad_deployments_are_refused_and_change_nothing() {
    let app = App::start().await;
    // No host allowed: the server's default.
    let server = server(&[]).await;
    let before = server.fingerprint().await;
    let refused = server
        .post(
            "/v1/tenants/shop/deployments",
            deployment("v2", &app.url(), "1s"),
        )
        .await;
    refused.assert_error(400, "invalid_request");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("--allow-check-host"), "{message}");
    let metadata = json!({"http": {"url": "http://169.254.169.254/latest/meta-data"}});
    let cases = [
        json!({"name": "v2", "patch": [], "checks": [metadata]}),
        json!({"name": "v2", "patch": [], "interval": "10", "window": "1m"}),
        json!({"name": "v2", "patch": [], "interval": "1m", "window": "10s"}),
        json!({"name": "v2", "patch": [], "state": {}}),
        json!({"name": "v2"}),
        json!({"name": "no spaces", "patch": []}),
        json!({"name": "v2", "patch": [], "checks": [{"custom": {"name": "mine"}}]}),
        json!({"name": "v2", "patch": [], "checks": [{"prometheus": {"url": "http://p", "query": "up", "condition": "== 1"}}]}),
        json!({"name": "v2", "patch": [], "checks": [{"http": {"url": "https://a/"}}]}),
        json!({"name": "v2", "patch": [], "colour": "blue"}),
    ];
    for body in cases {
        server
            .post("/v1/tenants/shop/deployments", body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
    server
        .post(
            "/v1/tenants/shop/deployments",
            json!({"name": "v2", "patch": [{"op": "remove", "path": "/missing"}]}),
        )
        .await
        .assert_error(422, "patch_failed");
    server
        .get("/v1/tenants/shop/deployments/7")
        .await
        .assert_error(404, "deployment_not_found");
    server
        .get("/v1/tenants/shop/deployments/x")
        .await
        .assert_error(400, "invalid_request");
    server
        .get("/v1/tenants/nobody/deployments")
        .await
        .assert_error(404, "tenant_not_found");
    assert_eq!(server.fingerprint().await, before);
    assert_eq!(
        server.get("/v1/tenants/shop/deployments").await.body,
        json!({"deployments": []})
    );
}
