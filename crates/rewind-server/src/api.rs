//! [`Api`]: the HTTP/JSON API over a [`Runtime`], as an axum [`Router`].
//!
//! One file per resource under `api/`; `access.rs` holds the extractors
//! that authorize a request (every handler names its access in its
//! arguments, so none can forget it) and `input.rs` those that read bodies,
//! queries and `If-Match` within the [`Limits`].

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, MethodRouter};
use axum::{middleware, Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use rewind_core::Doc;
use rewind_runtime::{Runtime, TenantConfig};
use serde_json::json;
use tokio::sync::watch;

use crate::auth::Tokens;
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::http_metrics;
use crate::limits::Limits;

mod access;
mod deployments;
mod diff;
mod forks;
mod history;
mod input;
mod merge;
pub(crate) mod openapi;
mod rollback;
mod snapshots;
mod state;
mod tenants;
mod transactions;
mod watch_events;

/// How an [`Api`] authenticates, limits and configures tenants.
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// Bearer tokens; none configured means no authentication.
    pub tokens: Tokens,
    /// Request and quota limits.
    pub limits: Limits,
    /// Configuration of tenants created through the API; its
    /// `timeline.named_limit` is replaced by `limits.max_snapshots`.
    pub tenant: TenantConfig,
    /// The Prometheus recorder `/metrics` renders (see
    /// [`install_metrics_recorder`](crate::install_metrics_recorder));
    /// without one `/metrics` is empty.
    pub metrics: Option<PrometheusHandle>,
}

/// What an [`Api`] serves: one runtime, or this node's share of a cluster.
enum Backend {
    Single(Runtime<Doc>),
    Cluster(Cluster),
}

/// The API: cheap to clone, every clone serves the same runtime.
#[derive(Clone)]
pub struct Api {
    shared: Arc<Shared>,
}

struct Shared {
    backend: Backend,
    tokens: Tokens,
    limits: Limits,
    /// Tenants are created with this configuration.
    tenant: TenantConfig,
    metrics: Option<PrometheusHandle>,
    /// Tenant creations in progress: counted against `max_tenants` with the
    /// tenants that exist, so concurrent creations cannot overshoot it.
    creating: AtomicUsize,
    /// Becomes `true` when the server stops: open watch streams end, so a
    /// graceful shutdown does not wait for them forever.
    closing: watch::Sender<bool>,
}

impl Api {
    /// An API over `runtime`. Errors if the limits or the tenant
    /// configuration cannot work.
    pub fn new(runtime: Runtime<Doc>, config: ApiConfig) -> Result<Api, String> {
        Self::with_backend(Backend::Single(runtime), config)
    }

    /// An API over a node of a cluster: requests for the tenants of the
    /// shards it owns are served here, the others are forwarded to their
    /// owner (see [`Cluster`]). Every node must be given the same tokens.
    pub fn cluster(cluster: Cluster, config: ApiConfig) -> Result<Api, String> {
        Self::with_backend(Backend::Cluster(cluster), config)
    }

    fn with_backend(backend: Backend, config: ApiConfig) -> Result<Api, String> {
        config.limits.validate()?;
        let mut tenant = config.tenant;
        tenant.timeline.named_limit = config.limits.max_snapshots;
        tenant.validate().map_err(|e| e.to_string())?;
        Ok(Api {
            shared: Arc::new(Shared {
                backend,
                tokens: config.tokens,
                limits: config.limits,
                tenant,
                metrics: config.metrics,
                creating: AtomicUsize::new(0),
                closing: watch::channel(false).0,
            }),
        })
    }

    /// The runtime served, when the API serves one (not in cluster mode,
    /// where each owned shard has its own).
    pub fn runtime(&self) -> Option<&Runtime<Doc>> {
        match &self.shared.backend {
            Backend::Single(runtime) => Some(runtime),
            Backend::Cluster(_) => None,
        }
    }

    /// The cluster node served, in cluster mode.
    pub(crate) fn cluster_node(&self) -> Option<&Cluster> {
        match &self.shared.backend {
            Backend::Single(_) => None,
            Backend::Cluster(cluster) => Some(cluster),
        }
    }

    /// The runtimes held here: the one, or those of the owned shards.
    pub(crate) fn local_runtimes(&self) -> Vec<Runtime<Doc>> {
        match &self.shared.backend {
            Backend::Single(runtime) => vec![runtime.clone()],
            Backend::Cluster(cluster) => cluster.local_runtimes(),
        }
    }

    /// The runtime holding `tenant` (as written in the path): 400 for an
    /// invalid id, and in cluster mode 503 `not_owner` when this node does
    /// not own its shard (any more).
    pub(crate) fn runtime_for(&self, tenant: &str) -> Result<Runtime<Doc>, ApiError> {
        match &self.shared.backend {
            Backend::Single(runtime) => Ok(runtime.clone()),
            Backend::Cluster(cluster) => {
                let id = rewind_core::TenantId::new(tenant).map_err(|e| ApiError::input(&e))?;
                match cluster.route(&id) {
                    crate::cluster::Route::Local(runtime) => Ok(runtime),
                    _ => Err(ApiError::not_owner(&id)),
                }
            }
        }
    }

    /// The limits requests and connections are held to.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Becomes `true` when the server stops (streams end).
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.shared.closing.subscribe()
    }

    /// Ends every open watch stream and refuses new ones; call it when the
    /// server begins a graceful shutdown.
    pub fn close_streams(&self) {
        self.shared.closing.send_replace(true);
    }

    /// The router of every route of the API.
    pub fn router(&self) -> Router {
        // The UI's page and files are not API routes (not in `route_paths`
        // nor the OpenAPI document): they need no token and carry no tenant
        // data; the app calls the API routes with the user's token.
        let router = self
            .routes()
            .router
            .merge(crate::ui::routes())
            .route_layer(middleware::from_fn_with_state(self.clone(), time_limit))
            .route_layer(middleware::from_fn(http_metrics::track))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.shared.limits.max_body_bytes));
        // In cluster mode, before routing: a request for another node's
        // shard is forwarded whole.
        let router = match &self.shared.backend {
            Backend::Single(_) => router,
            Backend::Cluster(_) => router.layer(middleware::from_fn_with_state(
                self.clone(),
                crate::cluster::forward::route,
            )),
        };
        router.with_state(self.clone())
    }

    /// The path template of every route of [`router`](Self::router), in
    /// the order they are added (`/v1/tenants/{t}/state`, ...): what the
    /// OpenAPI document must describe.
    pub fn route_paths(&self) -> Vec<&'static str> {
        self.routes().paths
    }

    fn routes(&self) -> Routes {
        Routes::default()
            .at("/healthz", get(healthz))
            .at("/metrics", get(render_metrics))
            .at("/openapi.json", get(openapi_json))
            .at("/v1/tenants", get(tenants::list))
            // Matched before `/v1/tenants/{t}`: a tenant named `count`
            // cannot be created or deleted over HTTP (405).
            .at("/v1/tenants/count", get(tenants::count))
            .at("/v1/cluster", get(tenants::cluster))
            .at(
                "/v1/tenants/{t}",
                get(tenants::get)
                    .put(tenants::create)
                    .delete(tenants::delete),
            )
            .at(
                "/v1/tenants/{t}/state",
                get(state::get).put(state::replace).patch(state::patch),
            )
            .at(
                "/v1/tenants/{t}/snapshots",
                get(snapshots::list).post(snapshots::create),
            )
            .at(
                "/v1/tenants/{t}/snapshots/{name}",
                delete(snapshots::delete),
            )
            .at(
                "/v1/tenants/{t}/snapshots/{name}/protect",
                post(snapshots::protect),
            )
            .at(
                "/v1/tenants/{t}/snapshots/{name}/unprotect",
                post(snapshots::unprotect),
            )
            .at("/v1/tenants/{t}/rollback", post(rollback::rollback))
            .at("/v1/tenants/{t}/diff", get(diff::diff))
            .at("/v1/tenants/{t}/history", get(history::history))
            .at("/v1/tenants/{t}/transactions", post(transactions::run))
            .at(
                "/v1/tenants/{t}/deployments",
                get(deployments::list).post(deployments::create),
            )
            .at("/v1/tenants/{t}/deployments/{id}", get(deployments::get))
            .at(
                "/v1/tenants/{t}/deployments/{id}/abort",
                post(deployments::abort),
            )
            .at(
                "/v1/tenants/{t}/deployments/{id}/promote",
                post(deployments::promote),
            )
            .at("/v1/tenants/{t}/watch", get(watch_events::watch))
            .at(
                "/v1/tenants/{t}/forks",
                get(forks::list).post(forks::create),
            )
            .at("/v1/tenants/{t}/promote", post(forks::promote))
    }
}

/// The routes as they are added: the router and the list of their paths,
/// built together so the list cannot miss one.
#[derive(Default)]
struct Routes {
    router: Router<Api>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn at(mut self, path: &'static str, methods: MethodRouter<Api>) -> Routes {
        self.router = self.router.route(path, methods);
        self.paths.push(path);
        self
    }
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

/// 503 `timeout` when a handler takes longer than `request_timeout`
/// (`outcome_unknown` for a write, which may still take effect).
async fn time_limit(
    axum::extract::State(api): axum::extract::State<Api>,
    mut request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let limit = api.shared.limits.request_timeout;
    let write = !request.method().is_safe();
    // A write whose body had not arrived was never handed to a tenant:
    // giving up on it leaves nothing to happen later.
    let body_read = input::BodyRead::track(&mut request);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        // A write given up on once it could have been handed to its tenant
        // may still take effect: its outcome is unknown.
        Err(_) if write && body_read.done() => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "outcome_unknown",
            format!(
                "the write was not answered within the limit of {}; it may still take \
                 effect: read the history, or retry with the same Idempotency-Key",
                crate::limits::show_duration(limit)
            ),
        )
        .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request was not answered within the limit of {}",
                crate::limits::show_duration(limit)
            ),
        )
        .into_response(),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn render_metrics(axum::extract::State(api): axum::extract::State<Api>) -> impl IntoResponse {
    let text = api
        .shared
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    http_metrics::record_unmatched(StatusCode::NOT_FOUND);
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for '{}'", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on '{}'", uri.path()),
    )
}
