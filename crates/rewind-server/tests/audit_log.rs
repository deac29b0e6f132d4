//! The audit log: every write route logs who made it and why under the
//! `rewind::audit` target, including writes that make no revision with meta
//! (tenants, snapshots, transaction steps). Alone in its test binary: a
//! thread's own tracing subscriber is unreliable while other tests run.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use rewind_server::{ApiConfig, Tokens};
use serde_json::{json, Value};
use support::Server;

const ACME: &str = "/v1/tenants/acme_corp";

/// Captures what the server logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes that make no revision with meta (tenants, snapshots, transaction
/// steps) are in the audit log with who and why; so are the others.
#[tokio::test(flavor = "current_thread")]
async fn every_write_route_is_in_the_audit_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("rewind::audit=info")
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut tokens = Tokens::none();
    tokens.parse_file("admin root-token label=ops\n").unwrap();
    let server = Server::start(ApiConfig {
        tokens,
        ..support::config()
    })
    .await;
    server.create("acme_corp", json!({})).await;
    let ops = [
        ("authorization", "Bearer root-token"),
        ("x-rewind-reason", "r-header"),
    ];
    let requests: Vec<(&str, String, Option<Value>, &str)> = vec![
        (
            "PUT",
            "/v1/tenants/globex".into(),
            Some(json!({"reason": "r-create"})),
            "create tenant",
        ),
        (
            "POST",
            format!("{ACME}/snapshots"),
            Some(json!({"name": "v1", "reason": "r-snap"})),
            "snapshot 'v1'",
        ),
        (
            "POST",
            format!("{ACME}/snapshots/v1/protect"),
            None,
            "protect snapshot 'v1'",
        ),
        (
            "POST",
            format!("{ACME}/snapshots/v1/unprotect"),
            None,
            "unprotect snapshot 'v1'",
        ),
        (
            "DELETE",
            format!("{ACME}/snapshots/v1"),
            None,
            "delete snapshot 'v1'",
        ),
        (
            "PUT",
            format!("{ACME}/state"),
            Some(json!({"a": 1})),
            "replace",
        ),
        (
            "PATCH",
            format!("{ACME}/state"),
            Some(json!([{"op": "add", "path": "/b", "value": 2}])),
            "patch",
        ),
        (
            "POST",
            format!("{ACME}/transactions"),
            Some(
                json!({"steps": [{"name": "s", "patch": [{"op": "add", "path": "/c", "value": 3}]}], "reason": "r-tx"}),
            ),
            "transaction 1",
        ),
        (
            "POST",
            format!("{ACME}/rollback"),
            Some(json!({"to": {"revision": 0}})),
            "rollback",
        ),
        ("DELETE", "/v1/tenants/globex".into(), None, "delete tenant"),
    ];
    for (method, path, body, action) in &requests {
        let before = captured.0.lock().unwrap().len();
        let reply = server.send(method, path, body.as_ref(), &ops).await;
        assert!(reply.status.is_success(), "{method} {path}: {}", reply.text);
        let log = String::from_utf8(captured.0.lock().unwrap()[before..].to_vec()).unwrap();
        assert!(log.contains(action), "{method} {path}: {log}");
        assert!(log.contains("by=ops"), "{method} {path}: {log}");
        let reason = body
            .as_ref()
            .and_then(|b| b.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or("r-header");
        assert!(
            log.contains(&format!("reason=\"{reason}\""))
                || log.contains(&format!("reason={reason}")),
            "{method} {path}: {log}"
        );
        assert!(!log.contains("root-token"), "{log}");
    }
}
