//! The server of rewind: the HTTP/JSON API of `rewind serve`, its
//! authentication and limits, Prometheus `/metrics`, and the command line
//! client of that API.
//!
//! # Layout
//!
//! - [`Api`] (`api.rs`, `api/`): the axum [`Router`](axum::Router) of every
//!   route, one file per resource (`tenants`, `state`, `snapshots`,
//!   `rollback`, `diff`, `history`, `transactions`, `watch_events`);
//!   `api/access.rs` authorizes, `api/input.rs` reads requests within the
//!   [`Limits`].
//! - [`Tokens`] and [`Access`] (`auth.rs`): bearer tokens, admin or scoped
//!   to one tenant.
//! - [`ApiError`] and [`status_and_code`] (`error.rs`): the error body and
//!   the one mapping from runtime errors to statuses and codes.
//! - [`Limits`] (`limits.rs`): request, quota and connection limits.
//! - `http_metrics.rs`: the Prometheus recorder and the HTTP request
//!   metrics.
//! - [`serve`] and [`check_listen`] (`serve.rs`): the accept loop and the
//!   connection cap; `serve/connection.rs` drives one connection (header
//!   and idle timeouts), `serve/drain.rs` drains bodies after early
//!   refusals; the `rewind serve` command ([`ServeArgs`], [`run_serve`],
//!   `serve/command.rs`).
//! - `ui.rs` and `ui/`: the timeline UI at `/ui`, a single-page app
//!   embedded in the binary, a client of the API like any other.
//! - [`Client`] (`client.rs`): a small HTTP/1 client of the API.
//! - The other commands of `rewind` ([`ClientOptions`], [`ClientCommand`],
//!   [`run_client`], `cli.rs`), with their text output in `cli/render.rs`.
//!
//! # Routes
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `{"status":"ok"}` (no token needed) |
//! | `GET /metrics` | Prometheus text (no token needed) |
//! | `GET /openapi.json` | this API as OpenAPI 3.1 ([`openapi_document`]; no token needed) |
//! | `GET /ui`, `/ui/tenants/{id}` | the timeline UI (`/` redirects to `/ui`; no token needed: the app asks for one) |
//! | `GET /v1/tenants` | `{"tenants":[{"tenant","revision"}]}` (admin) |
//! | `GET /v1/tenants/{t}` | `{"tenant","revision","fork"?:{"parent","base_revision"}}` |
//! | `PUT /v1/tenants/{t}` | body `{"state"?}` → 201 `{"tenant","revision":0}` (admin) |
//! | `DELETE /v1/tenants/{t}` | 204 (admin) |
//! | `GET /v1/tenants/{t}/state` | the document, `ETag: "<revision>"`; `?revision=N` \| `?snapshot=NAME` \| `?as_of=TIME` |
//! | `PUT`/`PATCH /v1/tenants/{t}/state` | document / RFC 6902 patch (or RFC 7396 with `Content-Type: application/merge-patch+json`), `If-Match` → `{"revision"}` |
//! | `GET`/`POST /v1/tenants/{t}/snapshots` | list / `{"name"?,"protected"?}` → 201 |
//! | `DELETE /v1/tenants/{t}/snapshots/{name}` | 204; 409 `snapshot_protected` if protected |
//! | `POST /v1/tenants/{t}/snapshots/{name}/protect` \| `/unprotect` | the snapshot |
//! | `POST /v1/tenants/{t}/rollback` | `{"to", "dry_run"?}` → `{"revision","restored","diff"}` |
//! | `GET /v1/tenants/{t}/diff?from=REF&to=REF` | `{"from","to","summary","changes","patch"}` |
//! | `GET /v1/tenants/{t}/history?limit=N` | `{"revisions":[{"revision","at","cause","author"?,"message"?}]}` newest first |
//! | `POST /v1/tenants/{t}/transactions` | `{"steps":[{"name","patch"}],"on_failure"}` → 200 report whatever the outcome: read `outcome` (`committed`, `rolled_back`, `failed`) |
//! | `GET`/`POST /v1/tenants/{t}/forks` | list / `{"name","from"?}` → 201 `{"tenant","revision":0,"fork"}` (admin: it creates a tenant) |
//! | `POST /v1/tenants/{t}/promote` | `{"strategy":"replace"\|"merge","if_parent_revision"?}` → `{"parent","revision","fork","fork_revision","strategy"}`; 409 `conflict` with `paths` (needs access to the fork and its parent) |
//! | `GET /v1/tenants/{t}/watch` | server-sent events, one per new revision (`id:` the revision); `Last-Event-ID` resumes, `gap` says what left the window, `reset` answers a resume point beyond the head, `deleted` / `failed` end the stream |
//!
//! Writes record who made them (the token's label, `admin`, `tenant:<id>`
//! or `anonymous`) and why (`X-Rewind-Reason`, or a body's `reason`) in
//! the revision's `author` and `message`, and in the `rewind::audit` log.
//!
//! Errors are `{"error":{"code","message"}}`: `invalid_request` 400,
//! `unauthorized` 401, `forbidden` 403, `tenant_not_found` /
//! `snapshot_not_found` / `revision_not_found` 404, `request_timeout` 408
//! (the body did not arrive in time), `tenant_exists` / `snapshot_exists` /
//! `snapshot_protected` / `conflict` (a merge promotion on paths both
//! changed, with `"paths"`) / `not_a_fork` 409, `revision_mismatch` 412, `payload_too_large`
//! 413 (body, patch length, transaction steps and document depth),
//! `patch_failed` / `invalid_transaction` (step names twice or `start`,
//! or an `on_failure` checkpoint that is no step) 422, `quota_exceeded` 429, `overloaded` (also past the
//! connection cap) / `unavailable` / `timeout` (the request took longer
//! than its limit) 503, `internal` 500, `not_implemented` 501 (forks in
//! cluster mode).
//!
//! # Example
//!
//! ```
//! use rewind_core::Doc;
//! use rewind_runtime::Runtime;
//! use rewind_server::{Api, ApiConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::<Doc>::start().await?;
//! let api = Api::new(runtime.clone(), ApiConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = tokio::spawn(rewind_server::serve(listener, api, None, async {}));
//! server.await??; // the shutdown future is already complete: it stops at once
//! runtime.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod auth;
mod cli;
mod client;
pub mod cluster;
mod error;
mod http_metrics;
mod limits;
mod serve;
mod ui;

pub use api::openapi::document as openapi_document;
pub use api::{Api, ApiConfig};
pub use auth::{Access, Caller, Tokens, ANONYMOUS};
pub use cli::{
    exit_code, run as run_client, ClientCommand, ClientOptions, PromoteStrategyArg, ReadAt,
    RollbackTo, Unfinished,
};
pub use client::{Client, ClientError, EventStream, Reply, ServerEvent};
pub use error::{status_and_code, ApiError};
pub use http_metrics::{
    install_metrics_recorder, HTTP_REQUESTS_TOTAL, HTTP_REQUEST_DURATION_SECONDS,
};
pub use limits::Limits;
pub use serve::command::{run as run_serve, ServeArgs, ADMIN_TOKEN_ENV, JOURNAL_FILE};
pub use serve::{check_listen, serve};
