//! `GET /v1/tenants/{t}/watch`: one server-sent event per new revision, in
//! order, none for a refused write; the stream ends when the server stops.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use support::Server;
use tower::ServiceExt;

/// Reads server-sent events from a response body.
struct Events {
    body: Body,
    buffer: String,
}

impl Events {
    /// The next event as (event, id, data); `None` when the stream ends.
    /// Keep-alive comments are skipped. Fails after 10 s rather than hang.
    async fn next(&mut self) -> Option<(String, String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")))
                        .map(|v| v.trim().to_owned())
                };
                let Some(data) = field("data") else {
                    continue; // a comment
                };
                return Some((
                    field("event").unwrap_or_default(),
                    field("id").unwrap_or_default(),
                    serde_json::from_str(&data).unwrap(),
                ));
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.body.frame())
                .await
                .expect("an event within 10 s");
            match frame {
                None => return None,
                Some(frame) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }
}

async fn watch(server: &Server, tenant: &str) -> Events {
    let request = Request::get(format!("/v1/tenants/{tenant}/watch"))
        .body(Body::empty())
        .unwrap();
    let response = server.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    Events {
        body: response.into_body(),
        buffer: String::new(),
    }
}

#[tokio::test]
async fn one_event_per_new_revision() {
    let server = Server::with_acme().await;
    let acme = "/v1/tenants/acme_corp";
    let mut events = watch(&server, "acme_corp").await;
    let mut other = watch(&server, "acme_corp").await;

    server
        .post(&format!("{acme}/snapshots"), json!({"name": "v1"}))
        .await
        .assert_status(201);
    server
        .patch(
            &format!("{acme}/state"),
            json!([{"op": "replace", "path": "/sessions", "value": 150}]),
        )
        .await
        .assert_status(200);
    // Refused: no revision, no event.
    server
        .patch(
            &format!("{acme}/state"),
            json!([{"op": "remove", "path": "/nope"}]),
        )
        .await
        .assert_status(422);
    server
        .put(&format!("{acme}/state"), json!({"sessions": 175}))
        .await
        .assert_status(200);
    server
        .post(
            &format!("{acme}/rollback"),
            json!({"to": {"snapshot": "v1"}}),
        )
        .await
        .assert_status(200);
    server
        .post(
            &format!("{acme}/transactions"),
            json!({"steps": [
                {"name": "a", "patch": [{"op": "add", "path": "/a", "value": 1}]},
                {"name": "b", "patch": [{"op": "add", "path": "/b", "value": 2}]},
            ]}),
        )
        .await
        .assert_status(200);

    let causes = [
        "change",
        "replace",
        "rollback",
        "transaction_step",
        "transaction_step",
    ];
    for stream in [&mut events, &mut other] {
        for (index, cause) in causes.iter().enumerate() {
            let revision = index as u64 + 1;
            let (event, id, data) = stream.next().await.expect("an event");
            assert_eq!(event, "revision");
            assert_eq!(id, revision.to_string());
            assert_eq!(data["revision"], revision);
            assert_eq!(data["cause"]["kind"], *cause, "{data}");
            assert!(data["at"].as_str().unwrap().ends_with('Z'));
        }
    }

    // Stopping the server ends every stream: nothing more was sent.
    server.api.close_streams();
    assert_eq!(events.next().await, None);
    assert_eq!(other.next().await, None);
}

#[tokio::test]
async fn a_deleted_tenant_ends_its_stream() {
    let server = Server::with_acme().await;
    let mut events = watch(&server, "acme_corp").await;
    server
        .delete("/v1/tenants/acme_corp")
        .await
        .assert_status(204);
    assert_eq!(events.next().await, None);
}
