//! Prometheus: installing the recorder `/metrics` renders, and the HTTP
//! request metrics (`rewind_http_requests_total{route, status}`,
//! `rewind_http_request_duration_seconds{route}`), labelled by route
//! template (`/v1/tenants/{t}/state`), never by raw path, so tenant ids
//! never become labels.

use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rewind_runtime::metrics as names;

/// Counter, labels `route` (the route template) and `status` (`2xx`,
/// `4xx`, ...).
pub const HTTP_REQUESTS_TOTAL: &str = "rewind_http_requests_total";
/// Histogram of request handling time, seconds, label `route`.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "rewind_http_request_duration_seconds";

/// The `route` label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

/// Installs the Prometheus recorder as the process's metrics recorder, with
/// explicit histogram buckets ([`DURATION_BUCKETS`](names::DURATION_BUCKETS)
/// for every `*_duration_seconds`, [`BATCH_BUCKETS`](names::BATCH_BUCKETS)
/// for the journal batch size), and describes every metric. Idempotent: later
/// calls return the same handle. Errors if another recorder was installed
/// first.
///
/// The caller runs [`PrometheusHandle::run_upkeep`] now and then;
/// [`serve`](crate::serve) does.
pub fn install_metrics_recorder() -> Result<PrometheusHandle, String> {
    static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = &*installed {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            names::DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(names::JOURNAL_BATCH_RECORDS.into()),
                names::BATCH_BUCKETS,
            )
        })
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("cannot install the Prometheus recorder: {e}"))?;
    names::describe();
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests by route and status class"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route"
    );
    *installed = Some(handle.clone());
    Ok(handle)
}

/// Middleware recording every routed request under its route template.
pub(crate) async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    record(route, response.status(), started);
    response
}

/// Records a request that matched no route.
pub(crate) fn record_unmatched(status: StatusCode) {
    counter!(HTTP_REQUESTS_TOTAL, "route" => UNMATCHED, "status" => class(status)).increment(1);
}

fn record(route: String, status: StatusCode, started: Instant) {
    counter!(HTTP_REQUESTS_TOTAL, "route" => route.clone(), "status" => class(status)).increment(1);
    histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
}

/// `1xx` to `5xx`.
fn class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
