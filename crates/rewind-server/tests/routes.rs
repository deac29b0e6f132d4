//! Every route of the API answering as the contract says, through the real
//! router: the seed's safe-deployment story over HTTP, then each route's
//! shape on its own.

mod support;

use serde_json::json;
use support::Server;

#[tokio::test]
async fn health() {
    let server = Server::new().await;
    let reply = server.get("/healthz").await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn metrics_without_a_recorder_is_empty_text() {
    let server = Server::new().await;
    let reply = server.get("/metrics").await;
    reply.assert_status(200);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
}

#[tokio::test]
async fn tenants_are_created_listed_and_deleted() {
    let server = Server::new().await;
    let reply = server
        .put(
            "/v1/tenants/acme_corp",
            json!({"state": {"version": "1.9.5"}}),
        )
        .await;
    reply.assert_status(201);
    assert_eq!(reply.body, json!({"tenant": "acme_corp", "revision": 0}));

    // No body: the state is `{}`.
    let reply = server
        .send("PUT", "/v1/tenants/widgets.r-us", None, &[])
        .await;
    reply.assert_status(201);
    assert_eq!(
        server.get("/v1/tenants/widgets.r-us/state").await.body,
        json!({})
    );

    server
        .patch(
            "/v1/tenants/acme_corp/state",
            json!([{"op": "replace", "path": "/version", "value": "2.0.0"}]),
        )
        .await
        .assert_status(200);
    let reply = server.get("/v1/tenants").await;
    reply.assert_status(200);
    assert_eq!(
        reply.body,
        json!({"tenants": [
            {"tenant": "acme_corp", "revision": 1},
            {"tenant": "widgets.r-us", "revision": 0},
        ]})
    );

    let reply = server.delete("/v1/tenants/acme_corp").await;
    reply.assert_status(204);
    assert!(reply.text.is_empty());
    assert_eq!(
        server.get("/v1/tenants").await.body,
        json!({"tenants": [{"tenant": "widgets.r-us", "revision": 0}]})
    );
    server
        .get("/v1/tenants/acme_corp/state")
        .await
        .assert_error(404, "tenant_not_found");
}

#[tokio::test]
async fn state_is_read_replaced_and_patched_with_etags() {
    let server = Server::with_acme().await;
    let reply = server.get("/v1/tenants/acme_corp/state").await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"sessions": 100, "version": "1.9.5"}));
    assert_eq!(reply.headers["etag"], "\"0\"");

    let reply = server
        .send(
            "PATCH",
            "/v1/tenants/acme_corp/state",
            Some(&json!([{"op": "replace", "path": "/sessions", "value": 150}])),
            &[("if-match", "\"0\"")],
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"revision": 1}));
    assert_eq!(reply.headers["etag"], "\"1\"");

    let reply = server
        .send(
            "PUT",
            "/v1/tenants/acme_corp/state",
            Some(&json!({"version": "2.0.0"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body, json!({"revision": 2}));
    // Without If-Match the write is unconditional; `*` means any revision.
    server
        .put("/v1/tenants/acme_corp/state", json!({"version": "2.0.1"}))
        .await
        .assert_status(200);
    server
        .send(
            "PUT",
            "/v1/tenants/acme_corp/state",
            Some(&json!({"version": "2.0.2"})),
            &[("if-match", "*")],
        )
        .await
        .assert_status(200);
    let reply = server.get("/v1/tenants/acme_corp/state").await;
    assert_eq!(reply.body, json!({"version": "2.0.2"}));
    assert_eq!(reply.headers["etag"], "\"4\"");
}

#[tokio::test]
async fn past_states_are_read_without_changing_anything() {
    let server = Server::with_acme().await;
    server
        .post("/v1/tenants/acme_corp/snapshots", json!({"name": "v1.9.5"}))
        .await
        .assert_status(201);
    server
        .patch(
            "/v1/tenants/acme_corp/state",
            json!([{"op": "replace", "path": "/sessions", "value": 150}]),
        )
        .await
        .assert_status(200);
    let at_one = server.runtime.tenant("acme_corp").await.unwrap().history(1)[0].at;
    server
        .patch(
            "/v1/tenants/acme_corp/state",
            json!([{"op": "replace", "path": "/sessions", "value": 175}]),
        )
        .await
        .assert_status(200);
    let before = server.fingerprint().await;

    let reply = server.get("/v1/tenants/acme_corp/state?revision=1").await;
    assert_eq!(reply.body["sessions"], 150);
    assert_eq!(reply.headers["etag"], "\"1\"");

    let reply = server
        .get("/v1/tenants/acme_corp/state?snapshot=v1.9.5")
        .await;
    assert_eq!(reply.body["sessions"], 100);
    assert_eq!(reply.headers["etag"], "\"0\"");

    let reply = server
        .get(&format!("/v1/tenants/acme_corp/state?as_of={at_one}"))
        .await;
    assert_eq!(reply.body["sessions"], 150, "{}", reply.text);
    assert_eq!(reply.headers["etag"], "\"1\"");
    // An offset, `+` percent-encoded or not.
    let offset = at_one.to_string().replace('Z', "+00:00");
    for at in [offset.replace('+', "%2B"), offset] {
        let reply = server
            .get(&format!("/v1/tenants/acme_corp/state?as_of={at}"))
            .await;
        assert_eq!(reply.body["sessions"], 150, "{at}: {}", reply.text);
        let reply = server
            .get(&format!("/v1/tenants/acme_corp/diff?from=0&to=time:{at}"))
            .await;
        assert_eq!(reply.body["to"], 1, "{at}: {}", reply.text);
    }

    assert_eq!(server.fingerprint().await, before);
}

#[tokio::test]
async fn snapshots_are_taken_listed_and_deleted() {
    let server = Server::with_acme().await;
    let reply = server
        .post(
            "/v1/tenants/acme_corp/snapshots",
            json!({"name": "v1.9.5", "protected": true}),
        )
        .await;
    reply.assert_status(201);
    assert_eq!(reply.body["name"], "v1.9.5");
    assert_eq!(reply.body["kind"], "named");
    assert_eq!(reply.body["revision"], 0);
    assert_eq!(reply.body["protected"], true);
    assert!(reply.body["created_at"].as_str().unwrap().ends_with('Z'));

    // No name: an auto snapshot; an empty body works too.
    let reply = server
        .post("/v1/tenants/acme_corp/snapshots", json!({}))
        .await;
    reply.assert_status(201);
    assert_eq!(reply.body["kind"], "auto");
    let auto = reply.body["name"].as_str().unwrap().to_owned();
    let reply = server
        .send("POST", "/v1/tenants/acme_corp/snapshots", None, &[])
        .await;
    reply.assert_status(201);
    assert_eq!(reply.body["kind"], "auto");

    let reply = server.get("/v1/tenants/acme_corp/snapshots").await;
    reply.assert_status(200);
    let list = reply.body["snapshots"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["name"], "v1.9.5", "oldest first");
    assert_eq!(list[1]["name"], auto.as_str());
    for snapshot in list {
        for field in ["name", "kind", "revision", "created_at", "protected"] {
            assert!(snapshot.get(field).is_some(), "{field} in {snapshot}");
        }
    }

    let reply = server
        .delete(&format!("/v1/tenants/acme_corp/snapshots/{auto}"))
        .await;
    reply.assert_status(204);
    let reply = server.get("/v1/tenants/acme_corp/snapshots").await;
    assert_eq!(reply.body["snapshots"].as_array().unwrap().len(), 2);
}

/// The seed's safe deployment: snapshot before the deploy, deploy, see the
/// damage in a diff, roll back, and the rollback itself can be undone.
#[tokio::test]
async fn safe_deployment_over_http() {
    let server = Server::with_acme().await;
    let acme = "/v1/tenants/acme_corp";
    server
        .post(
            &format!("{acme}/snapshots"),
            json!({"name": "pre_v2_deploy"}),
        )
        .await
        .assert_status(201);
    server
        .patch(
            &format!("{acme}/state"),
            json!([
                {"op": "replace", "path": "/version", "value": "2.0.0"},
                {"op": "replace", "path": "/sessions", "value": 150},
                {"op": "add", "path": "/feature_x", "value": true},
            ]),
        )
        .await
        .assert_status(200);

    let reply = server
        .get(&format!("{acme}/diff?from=snapshot:pre_v2_deploy&to=head"))
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["from"], 0);
    assert_eq!(reply.body["to"], 1);
    assert_eq!(
        reply.body["summary"],
        json!({"added": 1, "removed": 0, "changed": 2})
    );
    let sessions = reply.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/sessions")
        .unwrap()
        .clone();
    assert_eq!(
        sessions,
        json!({"path": "/sessions", "kind": "changed", "old": 100, "new": 150})
    );
    assert_eq!(reply.body["patch"].as_array().unwrap().len(), 3);

    // Dry run: what would change, and nothing changes.
    let before = server.fingerprint().await;
    let reply = server
        .post(
            &format!("{acme}/rollback"),
            json!({"to": {"snapshot": "pre_v2_deploy"}, "dry_run": true}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["revision"], 1, "unchanged on a dry run");
    assert_eq!(
        reply.body["restored"],
        json!({"kind": "named", "name": "pre_v2_deploy", "revision": 0})
    );
    assert_eq!(reply.body["diff"]["summary"]["removed"], 1);
    assert_eq!(server.fingerprint().await, before);

    let reply = server
        .post(
            &format!("{acme}/rollback"),
            json!({"to": {"snapshot": "pre_v2_deploy"}}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["revision"], 2);
    assert_eq!(reply.body["restored"]["revision"], 0);
    assert_eq!(reply.body["diff"]["summary"]["changed"], 2);
    assert_eq!(
        server.get(&format!("{acme}/state")).await.body,
        json!({"sessions": 100, "version": "1.9.5"})
    );

    // Back to the present: the latest snapshot is the pre-rollback one.
    let reply = server
        .post(&format!("{acme}/rollback"), json!({"to": {"latest": true}}))
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["restored"]["kind"], "auto");
    assert_eq!(
        server.get(&format!("{acme}/state")).await.body["version"],
        "2.0.0"
    );

    let reply = server.get(&format!("{acme}/history?limit=2")).await;
    reply.assert_status(200);
    let revisions = reply.body["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["revision"], 3, "newest first");
    assert_eq!(revisions[0]["cause"]["kind"], "rollback");
    assert_eq!(revisions[1]["revision"], 2);
    assert!(revisions[0]["at"].as_str().unwrap().ends_with('Z'));
    let all = server.get(&format!("{acme}/history")).await;
    assert_eq!(all.body["revisions"].as_array().unwrap().len(), 4);
    assert_eq!(all.body["revisions"][3]["cause"]["kind"], "initial");
}

#[tokio::test]
async fn rollback_to_each_target() {
    let server = Server::with_acme().await;
    let acme = "/v1/tenants/acme_corp";
    server
        .post(&format!("{acme}/snapshots"), json!({"name": "v1"}))
        .await
        .assert_status(201);
    let set = |n: u64| json!([{"op": "replace", "path": "/sessions", "value": n}]);
    server
        .patch(&format!("{acme}/state"), set(150))
        .await
        .assert_status(200);
    let after_one = server.runtime.tenant("acme_corp").await.unwrap().history(1)[0].at;
    server
        .patch(&format!("{acme}/state"), set(200))
        .await
        .assert_status(200);

    // time: the newest snapshot at or before it (v1, at revision 0).
    let reply = server
        .post(
            &format!("{acme}/rollback"),
            json!({"to": {"time": after_one.to_string()}}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["restored"]["name"], "v1");

    // revision.
    let reply = server
        .post(&format!("{acme}/rollback"), json!({"to": {"revision": 1}}))
        .await;
    reply.assert_status(200);
    assert_eq!(
        reply.body["restored"],
        json!({"kind": "revision", "revision": 1})
    );
    assert_eq!(
        server.get(&format!("{acme}/state")).await.body["sessions"],
        150
    );

    // checkpoint of a transaction.
    let reply = server
        .post(
            &format!("{acme}/transactions"),
            json!({"steps": [
                {"name": "bump", "patch": set(300)},
                {"name": "bump_again", "patch": set(400)},
            ]}),
        )
        .await;
    reply.assert_status(200);
    let transaction = reply.body["transaction"].as_u64().unwrap();
    let reply = server
        .post(
            &format!("{acme}/rollback"),
            json!({"to": {"checkpoint": {"transaction": transaction, "name": "bump"}}}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["restored"]["kind"], "checkpoint");
    assert_eq!(reply.body["restored"]["name"], "bump");
    assert_eq!(
        server.get(&format!("{acme}/state")).await.body["sessions"],
        300
    );

    // latest and snapshot are in safe_deployment_over_http.
}

#[tokio::test]
async fn diff_references() {
    let server = Server::with_acme().await;
    let acme = "/v1/tenants/acme_corp";
    server
        .patch(
            &format!("{acme}/state"),
            json!([{"op": "remove", "path": "/version"}]),
        )
        .await
        .assert_status(200);
    let at = server.runtime.tenant("acme_corp").await.unwrap().history(1)[0].at;

    let reply = server.get(&format!("{acme}/diff?from=0&to=1")).await;
    reply.assert_status(200);
    assert_eq!(
        reply.body["changes"],
        json!([{"path": "/version", "kind": "removed", "old": "1.9.5"}])
    );
    assert_eq!(
        reply.body["patch"],
        json!([{"op": "remove", "path": "/version"}])
    );
    // `to` defaults to head; time references are exact instants.
    let reply = server.get(&format!("{acme}/diff?from=0")).await;
    assert_eq!(reply.body["to"], 1);
    let reply = server
        .get(&format!("{acme}/diff?from=head&to=time:{at}"))
        .await;
    reply.assert_status(200);
    assert_eq!(
        reply.body["summary"],
        json!({"added": 0, "removed": 0, "changed": 0})
    );
    assert_eq!(reply.body["from"], 1);
    assert_eq!(reply.body["to"], 1);
}

#[tokio::test]
async fn transactions_commit_or_roll_back() {
    let server = Server::with_acme().await;
    let acme = "/v1/tenants/acme_corp";
    let reply = server
        .post(
            &format!("{acme}/transactions"),
            json!({
                "steps": [
                    {"name": "set_config", "patch": [{"op": "add", "path": "/config", "value": {"x": 1}}]},
                    {"name": "bump", "patch": [{"op": "replace", "path": "/sessions", "value": 101}]},
                ],
                "on_failure": "last_checkpoint",
            }),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["outcome"], "committed");
    let steps = reply.body["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["name"], "set_config");
    assert_eq!(steps[0]["revision"], 1);
    assert_eq!(steps[0]["checkpoint"]["name"], "set_config");
    assert_eq!(steps[1]["revision"], 2);
    assert!(reply.body.get("failed_step").is_none());
    assert!(reply.body.get("rolled_back_to").is_none());

    // A failing step rolls back to the start; the answer says what happened.
    let reply = server
        .post(
            &format!("{acme}/transactions"),
            json!({
                "steps": [
                    {"name": "good", "patch": [{"op": "replace", "path": "/sessions", "value": 500}]},
                    {"name": "bad", "patch": [{"op": "remove", "path": "/missing"}]},
                ],
                "on_failure": "start",
            }),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["outcome"], "rolled_back");
    assert_eq!(reply.body["failed_step"], "bad");
    assert!(reply.body["error"].as_str().unwrap().contains("/missing"));
    assert_eq!(reply.body["rolled_back_to"]["name"], "start");
    assert_eq!(reply.body["steps"].as_array().unwrap().len(), 1);
    assert_eq!(
        server.get(&format!("{acme}/state")).await.body["sessions"],
        101
    );

    // To a named checkpoint.
    let reply = server
        .post(
            &format!("{acme}/transactions"),
            json!({
                "steps": [
                    {"name": "one", "patch": [{"op": "replace", "path": "/sessions", "value": 1}]},
                    {"name": "two", "patch": [{"op": "replace", "path": "/sessions", "value": 2}]},
                    {"name": "three", "patch": [{"op": "test", "path": "/sessions", "value": 0}]},
                ],
                "on_failure": {"checkpoint": "one"},
            }),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["outcome"], "rolled_back");
    assert_eq!(reply.body["rolled_back_to"]["name"], "one");
    assert_eq!(
        server.get(&format!("{acme}/state")).await.body["sessions"],
        1
    );
}

/// A protected snapshot cannot be deleted until it is unprotected; auto
/// snapshots cannot be protected; unknown names are 404.
#[tokio::test]
async fn snapshots_are_protected_and_unprotected() {
    let server = Server::with_acme().await;
    let acme = "/v1/tenants/acme_corp";
    server
        .post(
            &format!("{acme}/snapshots"),
            json!({"name": "pre_v2_deploy", "protected": true}),
        )
        .await
        .assert_status(201);
    server
        .rejects(
            "DELETE",
            &format!("{acme}/snapshots/pre_v2_deploy"),
            None,
            &[],
            409,
            "snapshot_protected",
        )
        .await;

    let reply = server
        .send(
            "POST",
            &format!("{acme}/snapshots/pre_v2_deploy/unprotect"),
            None,
            &[],
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["name"], "pre_v2_deploy");
    assert_eq!(reply.body["protected"], false);
    let reply = server
        .send(
            "POST",
            &format!("{acme}/snapshots/pre_v2_deploy/protect"),
            None,
            &[],
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["protected"], true);
    let listed = server.get(&format!("{acme}/snapshots")).await;
    assert_eq!(listed.body["snapshots"][0]["protected"], true);

    server
        .send(
            "POST",
            &format!("{acme}/snapshots/pre_v2_deploy/unprotect"),
            None,
            &[],
        )
        .await
        .assert_status(200);
    server
        .delete(&format!("{acme}/snapshots/pre_v2_deploy"))
        .await
        .assert_status(204);

    server
        .rejects(
            "POST",
            &format!("{acme}/snapshots/v9/protect"),
            None,
            &[],
            404,
            "snapshot_not_found",
        )
        .await;
    let auto = server.post(&format!("{acme}/snapshots"), json!({})).await;
    let auto = auto.body["name"].as_str().unwrap().to_owned();
    server
        .rejects(
            "POST",
            &format!("{acme}/snapshots/{auto}/protect"),
            None,
            &[],
            400,
            "invalid_request",
        )
        .await;
    server
        .rejects(
            "GET",
            &format!("{acme}/snapshots/{auto}/protect"),
            None,
            &[],
            405,
            "method_not_allowed",
        )
        .await;
}

/// A transaction whose plan cannot run is 422 `invalid_transaction` and
/// changes nothing: a step named `start`, a name used twice, an
/// `on_failure` checkpoint that is no step.
#[tokio::test]
async fn transactions_that_cannot_run_are_refused() {
    let server = Server::with_acme().await;
    let path = "/v1/tenants/acme_corp/transactions";
    let step =
        |name: &str| json!({"name": name, "patch": [{"op": "add", "path": "/x", "value": 1}]});
    for body in [
        json!({"steps": [step("start")]}),
        json!({"steps": [step("a"), step("a")]}),
        json!({"steps": [step("a")], "on_failure": {"checkpoint": "b"}}),
    ] {
        let reply = server
            .rejects(
                "POST",
                path,
                Some(&body.to_string()),
                &[],
                422,
                "invalid_transaction",
            )
            .await;
        assert!(!reply.body["error"]["message"].as_str().unwrap().is_empty());
    }
    let body = json!({"steps": [step("a")], "on_failure": {"checkpoint": "start"}});
    server.post(path, body).await.assert_status(200);
}

/// `GET /v1/tenants` pages in id order with a cursor; bad paging is 400.
#[tokio::test]
async fn tenants_are_listed_a_page_at_a_time() {
    let server = Server::new().await;
    for id in ["c", "a", "e", "b", "d"] {
        server.create(id, json!({})).await;
    }
    let ids = |body: &serde_json::Value| -> Vec<String> {
        body["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["tenant"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = server.get("/v1/tenants?limit=2").await;
    first.assert_status(200);
    assert_eq!(ids(&first.body), ["a", "b"]);
    assert_eq!(first.body["next"], "b");
    let second = server.get("/v1/tenants?limit=2&after=b").await;
    assert_eq!(ids(&second.body), ["c", "d"]);
    let last = server.get("/v1/tenants?limit=2&after=d").await;
    assert_eq!(ids(&last.body), ["e"]);
    assert!(last.body.get("next").is_none(), "{}", last.text);
    // The default page holds them all here.
    assert_eq!(ids(&server.get("/v1/tenants").await.body).len(), 5);
    for bad in [
        "/v1/tenants?limit=0",
        "/v1/tenants?limit=1001",
        "/v1/tenants?after=no%20spaces",
        "/v1/tenants?page=2",
    ] {
        server.get(bad).await.assert_error(400, "invalid_request");
    }
}
