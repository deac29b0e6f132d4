//! Who made each write over HTTP and why: the token's label (never the
//! token), `admin`, or `anonymous` without authentication, and the reason
//! from `X-Rewind-Reason` or a body's `reason`, recorded in the meta of the
//! revision a write makes and in the audit log for every write.

mod support;

use rewind_server::{ApiConfig, Tokens};
use serde_json::{json, Value};
use support::Server;

const ACME: &str = "/v1/tenants/acme_corp";

/// A server with an admin token labelled `ops` and acme_corp's token
/// labelled `ci-deployer`.
async fn labelled() -> Server {
    let mut tokens = Tokens::none();
    tokens
        .parse_file("admin root-token label=ops\ntenant acme_corp acme-token label=ci-deployer\n")
        .unwrap();
    let server = Server::start(ApiConfig {
        tokens,
        ..support::config()
    })
    .await;
    server
        .create("acme_corp", json!({"version": "1.9.5", "memory": 41}))
        .await;
    server
}

/// The newest revision of acme_corp's history.
async fn head_info(server: &Server, token: &str) -> Value {
    let reply = server
        .send(
            "GET",
            &format!("{ACME}/history?limit=1"),
            None,
            &[("authorization", token)],
        )
        .await;
    reply.assert_status(200);
    reply.body["revisions"][0].clone()
}

#[tokio::test]
async fn every_revision_made_over_http_records_who_and_why() {
    let server = labelled().await;
    let ci = "Bearer acme-token";
    let ops = "Bearer root-token";

    // PUT state: the reason comes from the header (the body is the state).
    server
        .send(
            "PUT",
            &format!("{ACME}/state"),
            Some(&json!({"version": "2.0.0", "memory": 41})),
            &[("authorization", ci), ("x-rewind-reason", "deploy v2.0.0")],
        )
        .await
        .assert_status(200);
    let info = head_info(&server, ci).await;
    assert_eq!(
        (info["author"].as_str(), info["message"].as_str()),
        (Some("ci-deployer"), Some("deploy v2.0.0"))
    );
    assert_eq!(info["cause"]["kind"], "replace");

    // PATCH, RFC 6902.
    server
        .send(
            "PATCH",
            &format!("{ACME}/state"),
            Some(&json!([{"op": "replace", "path": "/memory", "value": 95}])),
            &[("authorization", ci), ("x-rewind-reason", "memory at 95%")],
        )
        .await
        .assert_status(200);
    let info = head_info(&server, ci).await;
    assert_eq!(
        (info["author"].as_str(), info["message"].as_str()),
        (Some("ci-deployer"), Some("memory at 95%"))
    );

    // PATCH, RFC 7396.
    server
        .send(
            "PATCH",
            &format!("{ACME}/state"),
            Some(&json!({"canary": true})),
            &[
                ("authorization", ops),
                ("content-type", "application/merge-patch+json"),
                ("x-rewind-reason", "canary on"),
            ],
        )
        .await
        .assert_status(200);
    let info = head_info(&server, ops).await;
    assert_eq!(
        (info["author"].as_str(), info["message"].as_str()),
        (Some("ops"), Some("canary on"))
    );

    // Rollback: the body's reason wins over the header's.
    server
        .send(
            "POST",
            &format!("{ACME}/rollback"),
            Some(&json!({"to": {"revision": 0}, "reason": "who rolled back production at 3 am? ops"})),
            &[("authorization", ops), ("x-rewind-reason", "ignored")],
        )
        .await
        .assert_status(200);
    let info = head_info(&server, ops).await;
    assert_eq!(info["cause"]["kind"], "rollback");
    assert_eq!(
        (info["author"].as_str(), info["message"].as_str()),
        (Some("ops"), Some("who rolled back production at 3 am? ops"))
    );

    // Without a reason: the author alone.
    server
        .send(
            "PATCH",
            &format!("{ACME}/state"),
            Some(&json!([{"op": "add", "path": "/n", "value": 1}])),
            &[("authorization", ci)],
        )
        .await
        .assert_status(200);
    let info = head_info(&server, ci).await;
    assert_eq!(info["author"], "ci-deployer");
    assert!(info.get("message").is_none(), "{info}");

    // A transaction: every step's revision, and the rollback after a failed
    // step, carry the author and the body's reason.
    let report = server
        .send(
            "POST",
            &format!("{ACME}/transactions"),
            Some(&json!({
                "steps": [
                    {"name": "bump", "patch": [{"op": "replace", "path": "/memory", "value": 50}]},
                    {"name": "check", "patch": [{"op": "test", "path": "/memory", "value": 0}]}
                ],
                "reason": "migration 42"
            })),
            &[("authorization", ci)],
        )
        .await;
    report.assert_status(200);
    let history = server
        .send(
            "GET",
            &format!("{ACME}/history?limit=2"),
            None,
            &[("authorization", ci)],
        )
        .await
        .body;
    let revisions = history["revisions"].as_array().expect("revisions").clone();
    assert_eq!(revisions.len(), 2, "{history}");
    let kinds: Vec<_> = revisions
        .iter()
        .map(|r| r["cause"]["kind"].clone())
        .collect();
    assert_eq!(
        kinds,
        [json!("rollback"), json!("transaction_step")],
        "{history}"
    );
    for revision in &revisions {
        assert_eq!(
            (revision["author"].as_str(), revision["message"].as_str()),
            (Some("ci-deployer"), Some("migration 42")),
            "{revision}"
        );
    }

    // No token is ever recorded.
    let history = server
        .send(
            "GET",
            &format!("{ACME}/history"),
            None,
            &[("authorization", ops)],
        )
        .await;
    assert!(!history.text.contains("acme-token") && !history.text.contains("root-token"));
}

#[tokio::test]
async fn without_authentication_writes_are_anonymous() {
    let server = Server::with_acme().await;
    server
        .send(
            "PATCH",
            &format!("{ACME}/state"),
            Some(&json!([{"op": "replace", "path": "/sessions", "value": 150}])),
            &[("x-rewind-reason", "load test")],
        )
        .await
        .assert_status(200);
    let info = &server.get(&format!("{ACME}/history?limit=1")).await.body["revisions"][0];
    assert_eq!(
        (info["author"].as_str(), info["message"].as_str()),
        (Some("anonymous"), Some("load test"))
    );
}

#[tokio::test]
async fn a_reason_too_long_is_refused_and_changes_nothing() {
    let server = Server::with_acme().await;
    let long = "x".repeat(1025);
    server
        .rejects(
            "PATCH",
            &format!("{ACME}/state"),
            Some(r#"[{"op": "add", "path": "/a", "value": 1}]"#),
            &[("x-rewind-reason", &long)],
            400,
            "invalid_request",
        )
        .await;
    let body = json!({"to": {"latest": true}, "reason": long}).to_string();
    server
        .rejects(
            "POST",
            &format!("{ACME}/rollback"),
            Some(&body),
            &[],
            400,
            "invalid_request",
        )
        .await;
}

#[tokio::test]
async fn a_tenant_created_over_http_records_who_and_why_on_revision_0() {
    let server = labelled().await;
    server
        .send(
            "PUT",
            "/v1/tenants/globex",
            Some(&json!({"state": {"n": 1}, "reason": "onboarding"})),
            &[("authorization", "Bearer root-token")],
        )
        .await
        .assert_status(201);
    let history = server
        .send(
            "GET",
            "/v1/tenants/globex/history",
            None,
            &[("authorization", "Bearer root-token")],
        )
        .await
        .body;
    let first = &history["revisions"][0];
    assert_eq!(first["revision"], 0);
    assert_eq!(
        (first["author"].as_str(), first["message"].as_str()),
        (Some("ops"), Some("onboarding")),
        "{history}"
    );
}
