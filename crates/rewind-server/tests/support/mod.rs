//! Drives the API in-process: requests go through the real router with
//! `tower::ServiceExt::oneshot`, on an in-memory runtime.

#![allow(dead_code, unreachable_pub)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rewind_core::Doc;
use rewind_runtime::{AutoSnapshotPolicy, Runtime, TenantConfig};
use rewind_server::{Api, ApiConfig};
use serde_json::{json, Value};
use tower::ServiceExt;

/// An API over a fresh in-memory runtime.
pub struct Server {
    pub api: Api,
    pub app: Router,
    pub runtime: Runtime<Doc>,
}

/// A configuration whose tenants take no auto snapshot on their own, so
/// snapshot lists change only by the requests of a test.
pub fn config() -> ApiConfig {
    ApiConfig {
        tenant: TenantConfig {
            auto_snapshot: AutoSnapshotPolicy::DISABLED,
            ..TenantConfig::default()
        },
        ..ApiConfig::default()
    }
}

/// An answer: status, headers, and the body as JSON (`Null` when empty,
/// a string when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the status and error code, and that the message is not empty.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        let message = self.body["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.is_empty(),
            "an error needs a message: {}",
            self.text
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
    }
}

/// What a rejected write must leave unchanged: tenants, and for each its
/// state, revision, snapshots and history.
#[derive(Debug, PartialEq)]
pub struct Fingerprint(Vec<(String, Value, u64, Value, usize)>);

impl Server {
    pub async fn start(config: ApiConfig) -> Server {
        let runtime = Runtime::<Doc>::start().await.expect("runtime starts");
        let api = Api::new(runtime.clone(), config).expect("valid config");
        let app = api.router();
        Server { api, app, runtime }
    }

    /// An API over `runtime`.
    pub fn over(runtime: Runtime<Doc>, config: ApiConfig) -> Server {
        let api = Api::new(runtime.clone(), config).expect("valid config");
        let app = api.router();
        Server { api, app, runtime }
    }

    pub async fn new() -> Server {
        Server::start(config()).await
    }

    /// A server with tenant `acme_corp` at `{"sessions": 100, "version":
    /// "1.9.5"}`.
    pub async fn with_acme() -> Server {
        let server = Server::new().await;
        server
            .create("acme_corp", json!({"sessions": 100, "version": "1.9.5"}))
            .await;
        server
    }

    pub async fn create(&self, tenant: &str, state: Value) {
        self.runtime
            .create_tenant(tenant, Doc::from_json(&state).unwrap())
            .await
            .expect("tenant created");
    }

    /// Sends a request; `body` is sent as JSON text when given.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let body = body.map(|b| b.to_string());
        self.send_text(method, path, body.as_deref(), headers).await
    }

    /// Sends a request with a raw text body.
    pub async fn send_text(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(text) => Body::from(text.to_owned()),
            None => Body::empty(),
        };
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .expect("the router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends a request and returns only the status, without reading the
    /// body (a watch stream never ends).
    pub async fn status_of(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> StatusCode {
        let mut request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = body.map_or_else(Body::empty, |text| Body::from(text.to_owned()));
        let response = self
            .app
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .expect("the router never fails");
        response.status()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(&body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send("PATCH", path, Some(&body), &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(&body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, &[]).await
    }

    /// Everything a rejected write must not change, read from the runtime
    /// (not through the API).
    pub async fn fingerprint(&self) -> Fingerprint {
        let mut tenants = Vec::new();
        for (id, _) in self.runtime.tenants() {
            let tenant = self.runtime.tenant(id.as_str()).await.unwrap();
            tenants.push((
                id.to_string(),
                tenant.current().to_json(),
                tenant.revision().get(),
                serde_json::to_value(tenant.snapshots()).unwrap(),
                tenant.history(usize::MAX).len(),
            ));
        }
        Fingerprint(tenants)
    }

    /// Sends a request that must be refused with `status` and `code`, and
    /// checks that it changed nothing.
    pub async fn rejects(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
        status: u16,
        code: &str,
    ) -> Reply {
        let before = self.fingerprint().await;
        let reply = self.send_text(method, path, body, headers).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (status, code),
            "{method} {path} {body:?}: {}",
            reply.text
        );
        assert_eq!(
            self.fingerprint().await,
            before,
            "{method} {path} {body:?} was refused but changed something"
        );
        reply
    }
}
