//! `GET /v1/tenants/{t}/history?limit=N`.

use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::TenantAccess;
use super::input::QueryParams;

/// Revisions shown without `?limit`.
const DEFAULT_LIMIT: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    limit: Option<u64>,
}

/// `{"revisions": [{"revision", "at", "cause": {"kind", ...}}]}`, newest
/// first, at most `limit` (default 100) from the history window.
pub(super) async fn history(
    TenantAccess(tenant): TenantAccess,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Json<Value> {
    let limit = query
        .limit
        .map_or(DEFAULT_LIMIT, |n| usize::try_from(n).unwrap_or(usize::MAX));
    Json(json!({ "revisions": tenant.history(limit) }))
}
