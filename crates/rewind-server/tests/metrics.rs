//! `/metrics`: the Prometheus text of the installed recorder, with the
//! runtime's metrics and the HTTP request metrics labelled by route
//! template, never by tenant, with explicit histogram buckets.

mod support;

use rewind_server::{install_metrics_recorder, ApiConfig};
use serde_json::json;
use support::{config, Server};

#[tokio::test]
async fn http_and_runtime_metrics_are_exported() {
    let handle = install_metrics_recorder().unwrap();
    // Idempotent: a second call hands out the same recorder.
    install_metrics_recorder().unwrap();
    let server = Server::start(ApiConfig {
        metrics: Some(handle),
        ..config()
    })
    .await;
    server
        .put("/v1/tenants/acme_corp", json!({"state": {"n": 1}}))
        .await
        .assert_status(201);
    server
        .patch(
            "/v1/tenants/acme_corp/state",
            json!([{"op": "replace", "path": "/n", "value": 2}]),
        )
        .await
        .assert_status(200);
    server
        .patch(
            "/v1/tenants/acme_corp/state",
            json!([{"op": "remove", "path": "/zz"}]),
        )
        .await
        .assert_status(422);
    server
        .get("/v1/tenants/ghost_corp/state")
        .await
        .assert_status(404);
    server.get("/no/such/route").await.assert_status(404);

    let reply = server.get("/metrics").await;
    reply.assert_status(200);
    let text = reply.text;
    let has = |prefix: &str, parts: &[&str]| {
        text.lines()
            .any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    let state = r#"route="/v1/tenants/{t}/state""#;
    assert!(
        has("rewind_http_requests_total{", &[state, r#"status="2xx""#]),
        "{text}"
    );
    assert!(
        has("rewind_http_requests_total{", &[state, r#"status="4xx""#]),
        "{text}"
    );
    assert!(has(
        "rewind_http_requests_total{",
        &[r#"route="/v1/tenants/{t}""#, r#"status="2xx""#]
    ));
    assert!(has(
        "rewind_http_requests_total{",
        &[r#"route="unmatched""#, r#"status="4xx""#]
    ));
    assert!(
        has(
            "rewind_http_request_duration_seconds_bucket{",
            &[state, r#"le="0.000001""#]
        ),
        "explicit buckets: {text}"
    );
    assert!(has("# HELP rewind_http_requests_total", &[]));
    assert!(has("# HELP rewind_http_request_duration_seconds", &[]));
    // The runtime's own metrics, through the same recorder.
    assert!(
        has("rewind_transitions_total{", &[r#"outcome="ok""#]),
        "{text}"
    );
    assert!(has("rewind_transitions_total{", &[r#"outcome="rejected""#]));
    assert!(has("rewind_transition_duration_seconds_bucket{", &["le="]));
    assert!(has("rewind_tenants", &[]));
    // Tenant ids never become labels.
    for tenant in ["acme_corp", "ghost_corp"] {
        assert!(!text.contains(tenant), "{tenant} leaked into /metrics");
    }
}
