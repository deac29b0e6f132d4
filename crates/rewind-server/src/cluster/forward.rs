//! Forwarding: a request for a tenant whose shard another node owns goes to
//! that node with the same method, path, headers (authorization included)
//! and body, and its answer (status, headers, body, streamed: watch streams
//! too) comes back as is.
//!
//! - A forwarded request carries `x-rewind-forwarded-by`; a node never
//!   forwards such a request again. If it does not own the shard (ownership
//!   moved while the request travelled) it answers 503 with
//!   `x-rewind-not-owner`, having done nothing.
//! - The forwarding node then looks the owner up in the database and tries
//!   once more; so it does when the owner cannot be reached at all. A
//!   request that reached the owner and then lost its answer is not sent
//!   twice (it may have taken effect): that is a 503 saying so.
//! - While a shard has no owner (its lease expired and is not taken over
//!   yet), a request waits up to two seconds for one (a graceful hand-over
//!   takes at most a second), then gets 503 `unavailable` with
//!   `Retry-After`.
//! - A watch stream (`GET .../watch`) follows the owner: when the owner's
//!   stream ends (it stopped, died, or handed the shard over), the
//!   forwarding node finds the new owner and goes on from the last event id
//!   it passed on (`Last-Event-ID`), so the client's stream goes on with
//!   nothing missed or repeated. A client connected to the owner itself sees
//!   its stream end then, and reconnects with `Last-Event-ID` as SSE clients
//!   do. After a `deleted` or `failed` event the stream is over and is not
//!   followed.
//! - Every forward counts in `rewind_forwarded_requests_total{outcome}`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rewind_core::TenantId;
use tokio::net::TcpStream;

use super::lease::NodeRow;
use super::{Cluster, Route, FORWARDED_REQUESTS_TOTAL};
use crate::api::Api;
use crate::error::ApiError;

/// Set on a forwarded request: the node that forwarded it.
pub(crate) const FORWARDED_BY: &str = "x-rewind-forwarded-by";
/// Set on the 503 of a node that does not own the request's shard.
pub(crate) const NOT_OWNER: &str = "x-rewind-not-owner";

/// Seconds a client should wait before retrying a 503 about ownership.
const RETRY_AFTER_SECS: u64 = 1;

/// The tenant a path addresses: `/v1/tenants/{t}` and everything under it
/// (not `/v1/tenants/count`, which is the cluster's).
pub(crate) fn tenant_of(path: &str) -> Option<TenantId> {
    let rest = path.strip_prefix("/v1/tenants/")?;
    let segment = rest.split('/').next()?;
    if segment.is_empty() || (segment == "count" && rest == "count") {
        return None;
    }
    TenantId::new(segment).ok()
}

/// 503 for a request reaching a node that does not own the shard.
pub(crate) fn not_owner(tenant: &TenantId) -> Response {
    ApiError::not_owner(tenant).into_response()
}

/// 503 for a forwarded request whose answer was lost: `outcome_unknown`
/// for a write (it may have taken effect), `unavailable` for a read.
fn lost(method: &axum::http::Method, what: String) -> Response {
    if method.is_safe() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{what}; retry"),
        )
        .into_response();
    }
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "outcome_unknown",
        format!(
            "{what}; the write may have taken effect: read the history, or retry with the \
             same Idempotency-Key"
        ),
    )
    .into_response()
}

/// 503 while the tenant's shard has no owner.
fn unavailable(tenant: &TenantId) -> Response {
    retry_after(
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "the shard of tenant '{tenant}' has no owner right now (a node is taking it \
                 over); retry shortly"
            ),
        )
        .into_response(),
    )
}

fn retry_after(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// The middleware: serves here, forwards, or answers 503.
pub(crate) async fn route(State(api): State<Api>, request: Request, next: Next) -> Response {
    let Some(cluster) = api.cluster_node().cloned() else {
        return next.run(request).await;
    };
    let Some(tenant) = tenant_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let forwarded = request.headers().contains_key(FORWARDED_BY);
    match cluster.route(&tenant) {
        Route::Local(_) => next.run(request).await,
        _ if forwarded => not_owner(&tenant),
        Route::Remote(owner) => forward(&cluster, &api, &tenant, owner, request, next).await,
        Route::NoOwner => match wait_for_owner(&cluster, &tenant).await {
            Route::Local(_) => next.run(request).await,
            Route::Remote(owner) => forward(&cluster, &api, &tenant, owner, request, next).await,
            Route::NoOwner => {
                count("no_owner");
                unavailable(&tenant)
            }
        },
    }
}

/// How long a request waits for its shard to get an owner before the 503:
/// a graceful hand-over leaves the shard without one until the next owner's
/// next check (at most a second), which the request rides out; a failover
/// (the lease) it does not.
const OWNER_WAIT: Duration = Duration::from_secs(2);

/// The shard's owner, looked up again every quarter second for at most
/// [`OWNER_WAIT`].
async fn wait_for_owner(cluster: &Cluster, tenant: &TenantId) -> Route {
    let deadline = tokio::time::Instant::now() + OWNER_WAIT;
    loop {
        match cluster.look_up(tenant).await {
            Route::NoOwner if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            route => return route,
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!(FORWARDED_REQUESTS_TOTAL, "outcome" => outcome).increment(1);
}

/// What one attempt gave.
enum Attempt {
    /// The owner answered (anything but "not the owner"), on this
    /// connection.
    Answered(hyper::Response<hyper::body::Incoming>, Sender),
    /// Nothing was done: the owner could not be reached, or said it does not
    /// own the shard. Safe to send again.
    NotDone,
    /// Sent, then the answer was lost: it may have taken effect.
    Lost(String),
}

async fn forward(
    cluster: &Cluster,
    api: &Api,
    tenant: &TenantId,
    mut owner: std::sync::Arc<NodeRow>,
    request: Request,
    next: Next,
) -> Response {
    let limits = api.limits();
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, limits.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the request body is larger than the limit of {} bytes, or was not \
                     received whole",
                    limits.max_body_bytes
                ),
            )
            .into_response()
        }
    };
    for attempt in 0..2 {
        match send(
            cluster,
            &owner,
            &parts,
            body.clone(),
            cluster.node_id(),
            limits.request_timeout,
            None,
        )
        .await
        {
            Attempt::Answered(response, sender) => {
                count(if attempt == 0 { "forwarded" } else { "retried" });
                if is_watch(&parts) && response.status() == StatusCode::OK {
                    return follow(cluster.clone(), api, tenant.clone(), parts, response);
                }
                return relay(cluster, &owner, response, sender, limits.request_timeout).await;
            }
            Attempt::Lost(reason) => {
                count("lost");
                return lost(
                    &parts.method,
                    format!(
                        "the request was forwarded to node '{}', whose answer was lost \
                         ({reason})",
                        owner.node
                    ),
                );
            }
            Attempt::NotDone if attempt == 0 => match cluster.look_up(tenant).await {
                Route::Remote(moved) => owner = moved,
                Route::Local(_) => {
                    return next.run(Request::from_parts(parts, Body::from(body))).await;
                }
                Route::NoOwner => break,
            },
            Attempt::NotDone => break,
        }
    }
    count("no_owner");
    unavailable(tenant)
}

/// The owner's answer as this node's: read whole (answers other than a
/// watch stream are bounded documents), after which the connection goes
/// back to the pool.
async fn relay(
    cluster: &Cluster,
    owner: &NodeRow,
    response: hyper::Response<hyper::body::Incoming>,
    sender: Sender,
    timeout: Duration,
) -> Response {
    use http_body_util::BodyExt;
    let (head, incoming) = response.into_parts();
    let body = match tokio::time::timeout(timeout, incoming.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => {
            count("lost");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "outcome_unknown",
                format!(
                    "node '{}' answered, then its answer was cut short; a write may have \
                     taken effect: read the history, or retry with the same Idempotency-Key",
                    owner.node
                ),
            )
            .into_response();
        }
    };
    cluster.links().give_back(&owner.advertise, sender);
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = head.status;
    copy_headers(&head.headers, answer.headers_mut());
    answer
}

fn is_watch(parts: &axum::http::request::Parts) -> bool {
    parts.method == axum::http::Method::GET && parts.uri.path().ends_with("/watch")
}

/// How long a followed watch looks for the shard's next owner before it
/// ends the client's stream.
const FOLLOW_FOR: Duration = Duration::from_secs(60);

/// A watch stream relayed from the owner, resumed on the next owner from
/// the last event id whenever the current one ends.
struct Following {
    cluster: Cluster,
    tenant: TenantId,
    parts: axum::http::request::Parts,
    upstream: Option<hyper::body::Incoming>,
    /// The id of the last event passed on, and the unfinished line.
    last_id: Option<String>,
    line: Vec<u8>,
    /// A `deleted` or `failed` event was passed on: the tenant's stream is
    /// over, so it is not resumed (a tenant created later under the same
    /// name is another one).
    ended: bool,
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Following {
    /// Notes the `id:` lines of the bytes passed on.
    fn scan(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' {
                if let Some(id) = self.line.strip_prefix(b"id:") {
                    let id = String::from_utf8_lossy(id).trim().to_owned();
                    self.last_id = Some(id);
                } else if let Some(event) = self.line.strip_prefix(b"event:") {
                    let event = String::from_utf8_lossy(event);
                    if matches!(event.trim(), "deleted" | "failed") {
                        self.ended = true;
                    }
                }
                self.line.clear();
            } else if self.line.len() < 256 {
                self.line.push(byte);
            }
        }
    }

    /// The next chunk of the stream: from the current owner, else from the
    /// next one; `None` ends it.
    async fn next_chunk(&mut self) -> Option<axum::body::Bytes> {
        use http_body_util::BodyExt;
        loop {
            if let Some(upstream) = &mut self.upstream {
                let frame = tokio::select! {
                    frame = upstream.frame() => frame,
                    _ = self.closing.wait_for(|closed| *closed) => return None,
                };
                match frame {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            self.scan(&data);
                            return Some(data);
                        }
                        continue;
                    }
                    // The tenant's stream is over: end the client's.
                    _ if self.ended => return None,
                    // The owner's stream ended or broke: find the next.
                    _ => self.upstream = None,
                }
            }
            self.upstream = Some(self.resume().await?);
        }
    }

    /// The stream from the shard's owner now, after the last event id.
    async fn resume(&mut self) -> Option<hyper::body::Incoming> {
        let deadline = tokio::time::Instant::now() + FOLLOW_FOR;
        while tokio::time::Instant::now() < deadline {
            if *self.closing.borrow() {
                return None;
            }
            let owner = match self.cluster.look_up(&self.tenant).await {
                Route::Remote(owner) => Some(owner),
                // This node owns it now: ask itself, as the owner.
                Route::Local(_) => Some(std::sync::Arc::new(self.cluster.own_row())),
                Route::NoOwner => None,
            };
            if let Some(owner) = owner {
                let resume = self.last_id.clone().map(|id| ("last-event-id", id));
                let me = self.cluster.node_id().to_owned();
                match send(
                    &self.cluster,
                    &owner,
                    &self.parts,
                    axum::body::Bytes::new(),
                    &me,
                    FOLLOW_FOR,
                    resume,
                )
                .await
                {
                    // The stream keeps its connection.
                    Attempt::Answered(response, _) if response.status() == StatusCode::OK => {
                        count("followed");
                        return Some(response.into_body());
                    }
                    // Gone (deleted) or refused: the stream ends.
                    Attempt::Answered(..) => return None,
                    Attempt::NotDone | Attempt::Lost(_) => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

/// Relays a watch stream and follows the owner (see the module docs).
fn follow(
    cluster: Cluster,
    api: &Api,
    tenant: TenantId,
    parts: axum::http::request::Parts,
    response: hyper::Response<hyper::body::Incoming>,
) -> Response {
    let (head, incoming) = response.into_parts();
    let last_id = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let following = Following {
        cluster,
        tenant,
        parts,
        upstream: Some(incoming),
        last_id,
        line: Vec::new(),
        ended: false,
        closing: api.closing(),
    };
    let chunks = futures_util::stream::unfold(following, |mut following| async move {
        let chunk = following.next_chunk().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), following))
    });
    let mut answer = Response::new(Body::from_stream(chunks));
    *answer.status_mut() = head.status;
    copy_headers(&head.headers, answer.headers_mut());
    answer
}

/// Headers that belong to one connection, not to the request.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// A connection to a node, able to send one request at a time.
pub(crate) type Sender =
    hyper::client::conn::http1::SendRequest<http_body_util::Full<axum::body::Bytes>>;

/// How long a pooled connection may sit idle before it is not reused: well
/// below the servers' idle timeout, so a node never closes one just as it
/// is taken.
const IDLE_LINK: Duration = Duration::from_secs(15);

/// Most idle connections kept to one node.
const MAX_IDLE_LINKS: usize = 64;

/// Idle connections to the other nodes, by advertise URL: a forward reuses
/// one instead of connecting anew.
#[derive(Default)]
pub(crate) struct Links {
    idle: std::sync::Mutex<std::collections::HashMap<String, Vec<(Sender, std::time::Instant)>>>,
}

impl Links {
    /// An idle, open connection to `to`, if one is pooled.
    fn take(&self, to: &str) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let pooled = idle.get_mut(to)?;
        while let Some((sender, since)) = pooled.pop() {
            if since.elapsed() < IDLE_LINK && sender.is_ready() && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// Pools `sender` once its answer is read (the connection is idle).
    fn give_back(self: &std::sync::Arc<Self>, to: &str, mut sender: Sender) {
        let links = std::sync::Arc::clone(self);
        let to = to.to_owned();
        tokio::spawn(async move {
            let ready = tokio::time::timeout(Duration::from_secs(1), sender.ready()).await;
            if matches!(ready, Ok(Ok(()))) {
                let mut idle = links.idle.lock().unwrap_or_else(|e| e.into_inner());
                let pooled = idle.entry(to).or_default();
                if pooled.len() < MAX_IDLE_LINKS {
                    pooled.push((sender, std::time::Instant::now()));
                }
            }
        });
    }
}

/// A new connection to `host:port`.
async fn connect(host: &str, port: u16) -> Option<Sender> {
    let connect = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect((host, port)));
    let stream = connect.await.ok()?.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Some(sender)
}

async fn send(
    cluster: &Cluster,
    owner: &NodeRow,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
    me: &str,
    timeout: Duration,
    extra: Option<(&'static str, String)>,
) -> Attempt {
    let Ok(base) = owner.advertise.parse::<Uri>() else {
        tracing::warn!(node = %owner.node, advertise = %owner.advertise, "unusable advertise URL");
        return Attempt::NotDone;
    };
    let (Some(host), port) = (base.host(), base.port_u16().unwrap_or(80)) else {
        return Attempt::NotDone;
    };
    let pooled = cluster.links().take(&owner.advertise);
    let mut sender = match pooled {
        Some(sender) => sender,
        None => match connect(host, port).await {
            Some(sender) => sender,
            None => return Attempt::NotDone,
        },
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut request = hyper::Request::builder()
        .method(parts.method.clone())
        .uri(path);
    if let Some(headers) = request.headers_mut() {
        copy_headers(&parts.headers, headers);
        if let Some(authority) = base.authority() {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(header::HOST, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(me) {
            headers.insert(FORWARDED_BY, value);
        }
        if let Some((name, value)) = extra {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    let Ok(request) = request.body(http_body_util::Full::new(body)) else {
        return Attempt::NotDone;
    };
    let response = match tokio::time::timeout(timeout, sender.send_request(request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => return Attempt::Lost(error.to_string()),
        Err(_) => return Attempt::Lost("no answer within the request timeout".into()),
    };
    if response.headers().contains_key(NOT_OWNER) {
        return Attempt::NotDone;
    }
    Attempt::Answered(response, sender)
}

#[cfg(test)]
mod tests {
    use super::tenant_of;

    #[test]
    fn finds_the_tenant_of_a_path() {
        let id = |s: &str| tenant_of(s).map(|t| t.as_str().to_owned());
        assert_eq!(id("/v1/tenants/acme").as_deref(), Some("acme"));
        assert_eq!(id("/v1/tenants/acme/state").as_deref(), Some("acme"));
        assert_eq!(id("/v1/tenants/count/state").as_deref(), Some("count"));
        assert_eq!(id("/v1/tenants/count"), None);
        assert_eq!(id("/v1/tenants"), None);
        assert_eq!(id("/v1/tenants/"), None);
        assert_eq!(id("/healthz"), None);
        assert_eq!(id("/v1/tenants/bad id"), None);
    }
}
