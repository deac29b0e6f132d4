//! `PATCH /v1/tenants/{t}/state` with `Content-Type:
//! application/merge-patch+json`: RFC 7396, every example of its Appendix
//! A through the API, recorded as an ordinary change whose RFC 6902
//! equivalent is in the diff.

mod support;

use serde_json::{json, Value};
use support::Server;

const MERGE: (&str, &str) = ("content-type", "application/merge-patch+json");

/// RFC 7396, Appendix A, as (original, patch, result).
fn appendix_a() -> Vec<(Value, Value, Value)> {
    vec![
        (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
        (json!({"a":"b"}), json!({"a":null}), json!({})),
        (
            json!({"a":"b","b":"c"}),
            json!({"a":null}),
            json!({"b":"c"}),
        ),
        (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
        (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
        (
            json!({"a":{"b":"c"}}),
            json!({"a":{"b":"d","c":null}}),
            json!({"a":{"b":"d"}}),
        ),
        (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a":"b"}), json!(["c"]), json!(["c"])),
        (json!({"a":"foo"}), json!(null), json!(null)),
        (json!({"a":"foo"}), json!("bar"), json!("bar")),
        (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
        (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
        (
            json!({}),
            json!({"a":{"bb":{"ccc":null}}}),
            json!({"a":{"bb":{}}}),
        ),
    ]
}

#[tokio::test]
async fn rfc_7396_appendix_a() {
    let server = Server::new().await;
    for (index, (original, patch, result)) in appendix_a().into_iter().enumerate() {
        let tenant = format!("t{index}");
        server.create(&tenant, original.clone()).await;
        let path = format!("/v1/tenants/{tenant}/state");
        let reply = server.send("PATCH", &path, Some(&patch), &[MERGE]).await;
        reply.assert_status(200);
        assert_eq!(reply.body, json!({"revision": 1}), "{original} + {patch}");
        assert_eq!(server.get(&path).await.body, result, "{original} + {patch}");

        // An ordinary change: its RFC 6902 equivalent is the diff.
        let history = server.get(&format!("/v1/tenants/{tenant}/history")).await;
        assert_eq!(history.body["revisions"][0]["cause"]["kind"], "change");
        let diff = server
            .get(&format!("/v1/tenants/{tenant}/diff?from=0&to=1"))
            .await;
        let check = format!("/v1/tenants/check{index}");
        server
            .create(&format!("check{index}"), original.clone())
            .await;
        server
            .patch(&format!("{check}/state"), diff.body["patch"].clone())
            .await
            .assert_status(200);
        assert_eq!(server.get(&format!("{check}/state")).await.body, result);
    }
}

#[tokio::test]
async fn a_merge_patch_honours_if_match_and_limits() {
    let server = Server::with_acme().await;
    let path = "/v1/tenants/acme_corp/state";
    let body = r#"{"sessions": 150}"#;
    server
        .rejects(
            "PATCH",
            path,
            Some(body),
            &[MERGE, ("if-match", "\"7\"")],
            412,
            "revision_mismatch",
        )
        .await;
    let reply = server
        .send_text("PATCH", path, Some(body), &[MERGE, ("if-match", "\"0\"")])
        .await;
    reply.assert_status(200);
    assert_eq!(reply.headers["etag"], "\"1\"");
    assert_eq!(
        server.get(path).await.body,
        json!({"sessions": 150, "version": "1.9.5"})
    );

    // Too deep for the server's limit (64): 413, nothing changed.
    let mut deep = json!(1);
    for _ in 0..70 {
        deep = json!({"d": deep});
    }
    server
        .rejects(
            "PATCH",
            path,
            Some(&deep.to_string()),
            &[MERGE],
            413,
            "payload_too_large",
        )
        .await;
    server
        .rejects(
            "PATCH",
            path,
            Some("{not json"),
            &[MERGE],
            400,
            "invalid_request",
        )
        .await;
    // Without the merge media type an object is not a JSON Patch.
    server
        .rejects("PATCH", path, Some(body), &[], 400, "invalid_request")
        .await;
}
