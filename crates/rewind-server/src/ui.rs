//! The timeline UI: a single-page app at `/ui`, its files embedded in the
//! binary (`ui/` in this crate, plain JavaScript modules with no build
//! step).
//!
//! The app is a client of the public HTTP API only: it sends the token a
//! user typed as `Authorization: Bearer` on API calls. Its pages and files
//! themselves carry no tenant data, so they are served without a token.
//! These routes are not part of the API: they are not in
//! [`Api::route_paths`](crate::Api::route_paths) nor in the OpenAPI
//! document.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;

/// The page of every client-side route (`/ui`, `/ui/tenants/{id}`).
const INDEX: &str = include_str!("../ui/index.html");

/// The app's files under `/ui/assets/`: name, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../ui/app.js")),
    ("api.js", JS, include_str!("../ui/api.js")),
    ("timeline.js", JS, include_str!("../ui/timeline.js")),
    ("tree.js", JS, include_str!("../ui/tree.js")),
    ("diff.js", JS, include_str!("../ui/diff.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../ui/style.css"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The app's paths under `/ui`; the path templates are for the request
/// metrics' `route` label.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(to_ui))
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/tenants/{id}", get(index))
        .route("/ui/assets/{file}", get(asset))
}

/// `/` -> 308 to `/ui`.
async fn to_ui() -> Response {
    (StatusCode::PERMANENT_REDIRECT, [(LOCATION, "/ui")]).into_response()
}

/// The app's page; the route is read by the app from the address.
async fn index() -> Response {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

/// One of [`ASSETS`], or 404 `not_found`.
async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, text)) => (
            [(CONTENT_TYPE, *content_type), (CACHE_CONTROL, "no-cache")],
            *text,
        )
            .into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no UI file '{file}'"),
        )
        .into_response(),
    }
}
