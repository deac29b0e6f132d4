//! `GET /v1/tenants/{t}/diff?from=REF&to=REF`.

use axum::Json;
use rewind_core::{Revision, SnapshotName, StateRef};
use rewind_runtime::Error;
use serde::Deserialize;
use serde_json::Value;

use super::access::TenantAccess;
use super::input::{query_time, QueryParams};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DiffQuery {
    from: String,
    /// Default `head`.
    to: Option<String>,
}

/// A reference as the API spells it: `head`, a revision number,
/// `snapshot:NAME` or `time:RFC3339`.
pub(super) fn reference(text: &str) -> Result<StateRef, ApiError> {
    let input = |e: rewind_core::InvalidInput| ApiError::input(&e);
    if text == "head" {
        return Ok(StateRef::Head);
    }
    if let Some(name) = text.strip_prefix("snapshot:") {
        return SnapshotName::new(name)
            .map(StateRef::Snapshot)
            .map_err(input);
    }
    if let Some(time) = text.strip_prefix("time:") {
        return query_time(time).map(StateRef::AsOf);
    }
    text.parse::<u64>()
        .map(|r| StateRef::Revision(Revision(r)))
        .map_err(|_| {
            ApiError::invalid(format!(
                "unknown reference '{}': use head, a revision number, snapshot:NAME or time:RFC3339",
                text.chars().take(64).collect::<String>()
            ))
        })
}

/// `{"from", "to", "summary", "changes", "patch"}`: `from` and `to` are the
/// revisions the references resolved to; `patch` turns `from` into `to`.
pub(super) async fn diff(
    TenantAccess(tenant): TenantAccess,
    QueryParams(query): QueryParams<DiffQuery>,
) -> Result<Json<Value>, ApiError> {
    let from = reference(&query.from)?;
    let to = reference(query.to.as_deref().unwrap_or("head"))?;
    let timeline = tenant.timeline();
    let core = |source: rewind_core::Error| {
        ApiError::from(Error::Core {
            tenant: tenant.id().clone(),
            source,
        })
    };
    let from_revision = timeline.revision_at(&from).map_err(|e| core(e.into()))?;
    let to_revision = timeline.revision_at(&to).map_err(|e| core(e.into()))?;
    let diff = timeline.diff(&from, &to).map_err(core)?;
    let mut body = serde_json::to_value(&diff)
        .map_err(|e| ApiError::invalid(format!("the diff cannot be shown as JSON: {e}")))?;
    if let Value::Object(fields) = &mut body {
        fields.insert("from".into(), from_revision.get().into());
        fields.insert("to".into(), to_revision.get().into());
    }
    Ok(Json(body))
}
