//! `GET /v1/tenants/{t}/watch`: one server-sent event per new revision, in
//! order, none for a refused write; the stream ends when the server stops,
//! after a `deleted` (or `failed`) event when the tenant is deleted (or
//! fails for good); a resume point beyond the head is answered with a
//! `reset` event.

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

/// A deleted tenant ends its stream with a `deleted` event, so a client
/// knows the tenant is gone rather than the server stopping.
#[tokio::test]
async fn a_deleted_tenant_ends_its_stream_with_a_deleted_event() {
    let server = Server::with_acme().await;
    let mut events = watch(&server, "acme_corp").await;
    bump(&server, "acme_corp", 1).await;
    server
        .delete("/v1/tenants/acme_corp")
        .await
        .assert_status(204);
    let (event, _, _) = events.next().await.unwrap();
    assert_eq!(event, "revision");
    let ended = events.next().await;
    let (event, id, data) = ended.expect("a `deleted` event before the end");
    assert_eq!(event, "deleted");
    assert_eq!(
        id, "",
        "clears the last event id: no resume into a new tenant"
    );
    assert_eq!(data, json!({"tenant": "acme_corp", "revision": 1}));
    assert_eq!(events.next().await, None);
}

/// A tenant that fails past its restart intensity serves nothing more:
/// its stream ends with a `failed` event rather than going quiet.
#[tokio::test]
async fn a_failed_tenant_ends_its_stream_with_a_failed_event() {
    let server = Server::with_acme().await;
    let mut events = watch(&server, "acme_corp").await;
    let tenant = server.runtime.tenant("acme_corp").await.unwrap();
    let panic = |_: &rewind_core::Doc| -> Result<rewind_core::Patch, rewind_runtime::Error> {
        panic!("boom")
    };
    let mut panics = 0;
    loop {
        match tenant.update(panic).await {
            Err(rewind_runtime::Error::Panicked { .. }) if panics < 10 => panics += 1,
            Err(rewind_runtime::Error::TenantFailed { .. }) => break,
            other => panic!("expected a panic or TenantFailed, got {other:?}"),
        }
    }
    let (event, id, data) = events.next().await.expect("a `failed` event");
    assert_eq!((event.as_str(), id.as_str()), ("failed", ""));
    assert_eq!(data, json!({"tenant": "acme_corp"}));
    assert_eq!(events.next().await, None);
}

/// The story of the bug: a client resumed with `Last-Event-ID: 7` after
/// its tenant was deleted and created again (now at revision 1) and got
/// nothing, for ever: every new revision was at or below 7, so it was
/// taken for one already sent. A resume point beyond the head is answered
/// with a `reset` event carrying the head, then every revision after it.
#[tokio::test]
async fn a_resume_point_beyond_the_head_gets_a_reset_event() {
    let server = Server::with_acme().await;
    bump(&server, "acme_corp", 1).await;
    let mut resumed = watch_after(&server, "acme_corp", "7").await;
    bump(&server, "acme_corp", 2).await;
    let (event, id, data) = resumed.next().await.unwrap();
    assert_eq!(event, "reset");
    assert_eq!(data, json!({"after": 7, "head": 1}));
    assert_eq!(id, "1");
    let (event, id, data) = resumed.next().await.unwrap();
    assert_eq!((event.as_str(), id.as_str()), ("revision", "2"));
    assert_eq!(data["revision"], 2);
}

async fn watch_after(server: &Server, tenant: &str, last_event_id: &str) -> Events {
    let request = Request::get(format!("/v1/tenants/{tenant}/watch"))
        .header("last-event-id", last_event_id)
        .body(Body::empty())
        .unwrap();
    let response = server.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    Events {
        body: response.into_body(),
        buffer: String::new(),
    }
}

async fn bump(server: &Server, tenant: &str, value: u64) {
    server
        .patch(
            &format!("/v1/tenants/{tenant}/state"),
            json!([{"op": "replace", "path": "/sessions", "value": value}]),
        )
        .await
        .assert_status(200);
}

/// A client that disconnects and reconnects with `Last-Event-ID` gets every
/// revision it missed, from the history window, then the live ones: none
/// missed, none twice.
#[tokio::test]
async fn a_reconnect_with_last_event_id_misses_nothing() {
    let server = Server::with_acme().await;
    let mut events = watch(&server, "acme_corp").await;
    bump(&server, "acme_corp", 1).await;
    bump(&server, "acme_corp", 2).await;
    let (_, id, _) = events.next().await.unwrap();
    assert_eq!(id, "1");
    // The client drops after revision 1; revisions 2 (already sent but
    // not read), 3 and 4 happen while it is away.
    drop(events);
    bump(&server, "acme_corp", 3).await;
    bump(&server, "acme_corp", 4).await;

    let mut resumed = watch_after(&server, "acme_corp", &id).await;
    for revision in 2..=4u64 {
        let (event, id, data) = resumed.next().await.unwrap();
        assert_eq!((event.as_str(), id), ("revision", revision.to_string()));
        assert_eq!(data["revision"], revision);
    }
    // Then live, without repeating the replayed ones.
    bump(&server, "acme_corp", 5).await;
    let (_, id, data) = resumed.next().await.unwrap();
    assert_eq!((id.as_str(), data["revision"].as_u64()), ("5", Some(5)));

    // Up to date: nothing replayed, the next live one only.
    let mut current = watch_after(&server, "acme_corp", "5").await;
    bump(&server, "acme_corp", 6).await;
    assert_eq!(current.next().await.unwrap().1, "6");

    server
        .send(
            "GET",
            "/v1/tenants/acme_corp/watch",
            None,
            &[("last-event-id", "x")],
        )
        .await
        .assert_error(400, "invalid_request");
}

/// Revisions that left the history window cannot be replayed: an explicit
/// `gap` event says which, then the window follows.
#[tokio::test]
async fn a_reconnect_older_than_the_window_gets_a_gap_event() {
    let mut config = support::config();
    config.tenant.timeline.history_limit = 3;
    let server = Server::start(config).await;
    server
        .put("/v1/tenants/acme_corp", json!({"state": {"sessions": 0}}))
        .await
        .assert_status(201);
    for value in 1..=6 {
        bump(&server, "acme_corp", value).await;
    }
    // The window holds revisions 4, 5 and 6.
    let mut resumed = watch_after(&server, "acme_corp", "1").await;
    let (event, id, data) = resumed.next().await.unwrap();
    assert_eq!(event, "gap");
    assert_eq!(data, json!({"after": 1, "oldest": 4}));
    assert_eq!(id, "3");
    let ids: Vec<String> = [
        resumed.next().await.unwrap(),
        resumed.next().await.unwrap(),
        resumed.next().await.unwrap(),
    ]
    .into_iter()
    .map(|(_, id, _)| id)
    .collect();
    assert_eq!(ids, ["4", "5", "6"]);
}

/// Watch events carry who made each revision and why.
#[tokio::test]
async fn watch_events_carry_the_audit_fields() {
    let server = Server::with_acme().await;
    let mut events = watch(&server, "acme_corp").await;
    server
        .send(
            "PATCH",
            "/v1/tenants/acme_corp/state",
            Some(&json!([{"op": "replace", "path": "/sessions", "value": 9}])),
            &[("x-rewind-reason", "memory at 95%")],
        )
        .await
        .assert_status(200);
    let (_, _, data) = events.next().await.unwrap();
    assert_eq!(data["author"], "anonymous");
    assert_eq!(data["message"], "memory at 95%");
}

/// A client that falls more than the live buffer (1024 events) behind is
/// caught up from the history window: every revision, in order, once.
#[tokio::test]
async fn a_client_that_falls_behind_is_caught_up_from_the_window() {
    let mut config = support::config();
    config.tenant.timeline.history_limit = 2000;
    let server = Server::start(config).await;
    server
        .put("/v1/tenants/acme_corp", json!({"state": {"n": 0}}))
        .await
        .assert_status(201);
    let mut events = watch(&server, "acme_corp").await;
    let tenant = server.runtime.tenant("acme_corp").await.unwrap();
    for n in 1..=1100u64 {
        let patch =
            rewind_core::Patch::from_json(&json!([{"op": "replace", "path": "/n", "value": n}]))
                .unwrap();
        tenant.apply(patch).await.unwrap();
    }
    for revision in 1..=1100u64 {
        let (event, id, _) = events.next().await.unwrap();
        assert_eq!((event.as_str(), id), ("revision", revision.to_string()));
    }
}
