//! `GET` and `POST /v1/tenants/{t}/snapshots`, `DELETE
//! /v1/tenants/{t}/snapshots/{name}`.

use axum::extract::RawPathParams;
use axum::http::StatusCode;
use axum::Json;
use rewind_core::{NamedOptions, SnapshotInfo, SnapshotName};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::TenantAccess;
use super::input::JsonBody;
use crate::error::ApiError;

/// `{"snapshots": [...]}`, auto and named, oldest first.
pub(super) async fn list(TenantAccess(tenant): TenantAccess) -> Json<Value> {
    Json(json!({ "snapshots": tenant.snapshots() }))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSnapshot {
    /// Without a name the snapshot is an auto one.
    name: Option<String>,
    /// Never pruned (named snapshots only).
    #[serde(default)]
    protected: bool,
}

/// Body `{"name"?, "protected"?}` -> 201 with the snapshot; 409 if the name
/// exists; 429 when every named snapshot is protected and the limit is
/// reached.
pub(super) async fn create(
    TenantAccess(tenant): TenantAccess,
    body: JsonBody,
) -> Result<(StatusCode, Json<SnapshotInfo>), ApiError> {
    let request: CreateSnapshot = body.parse_or_default()?;
    let snapshot = match request.name {
        Some(name) => {
            let name = SnapshotName::new(name).map_err(|e| ApiError::input(&e))?;
            let options = NamedOptions {
                protected: request.protected,
                replace: false,
            };
            tenant.snapshot_with(name, options).await?
        }
        None if request.protected => {
            return Err(ApiError::invalid(
                "only named snapshots can be protected: give a name",
            ))
        }
        None => tenant.snapshot().await?,
    };
    Ok((StatusCode::CREATED, Json(snapshot)))
}

/// 204 once the snapshot is gone (auto or unprotected named).
pub(super) async fn delete(
    TenantAccess(tenant): TenantAccess,
    params: RawPathParams,
) -> Result<StatusCode, ApiError> {
    let name = params
        .iter()
        .find(|(key, _)| *key == "name")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::invalid("the path names no snapshot"))?;
    tenant.delete_snapshot(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
