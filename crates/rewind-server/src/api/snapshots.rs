//! `GET` and `POST /v1/tenants/{t}/snapshots`, `DELETE
//! /v1/tenants/{t}/snapshots/{name}`, `POST
//! /v1/tenants/{t}/snapshots/{name}/protect` and `/unprotect`.

use axum::extract::RawPathParams;
use axum::http::StatusCode;
use axum::Json;
use rewind_core::{NamedOptions, SnapshotInfo, SnapshotName};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Audit, TenantAccess};
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
    /// Why (else `X-Rewind-Reason`): in the audit log.
    reason: Option<String>,
}

/// Body `{"name"?, "protected"?, "reason"?}` -> 201 with the snapshot; 409 if the name
/// exists; 429 when every named snapshot is protected and the limit is
/// reached.
pub(super) async fn create(
    TenantAccess(tenant): TenantAccess,
    audit: Audit,
    body: JsonBody,
) -> Result<(StatusCode, Json<SnapshotInfo>), ApiError> {
    let request: CreateSnapshot = body.parse_or_default()?;
    let meta = audit.meta(request.reason)?;
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
    audit.log(
        &format!("snapshot '{}'", snapshot.name),
        tenant.id().as_str(),
        &meta,
    );
    Ok((StatusCode::CREATED, Json(snapshot)))
}

/// 204 once the snapshot is gone (auto or unprotected named); 409
/// `snapshot_protected` for a protected one (unprotect it first).
pub(super) async fn delete(
    TenantAccess(tenant): TenantAccess,
    audit: Audit,
    params: RawPathParams,
) -> Result<StatusCode, ApiError> {
    let meta = audit.meta(None)?;
    let name = snapshot_segment(&params)?;
    tenant.delete_snapshot(&name).await?;
    audit.log(
        &format!("delete snapshot '{name}'"),
        tenant.id().as_str(),
        &meta,
    );
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../snapshots/{name}/protect` -> the snapshot, now never pruned
/// nor deletable. Only named snapshots can be protected (400 otherwise).
pub(super) async fn protect(
    access: TenantAccess,
    audit: Audit,
    params: RawPathParams,
) -> Result<Json<SnapshotInfo>, ApiError> {
    set_protection(access, audit, params, true).await
}

/// `POST .../snapshots/{name}/unprotect` -> the snapshot, which retention
/// may prune again and a `DELETE` can remove.
pub(super) async fn unprotect(
    access: TenantAccess,
    audit: Audit,
    params: RawPathParams,
) -> Result<Json<SnapshotInfo>, ApiError> {
    set_protection(access, audit, params, false).await
}

async fn set_protection(
    TenantAccess(tenant): TenantAccess,
    audit: Audit,
    params: RawPathParams,
    protected: bool,
) -> Result<Json<SnapshotInfo>, ApiError> {
    let meta = audit.meta(None)?;
    let name = snapshot_segment(&params)?;
    let snapshot = tenant.protect(&name, protected).await?;
    let action = if protected { "protect" } else { "unprotect" };
    audit.log(
        &format!("{action} snapshot '{name}'"),
        tenant.id().as_str(),
        &meta,
    );
    Ok(Json(snapshot))
}

/// The `{name}` segment of the path, percent-decoded.
fn snapshot_segment(params: &RawPathParams) -> Result<String, ApiError> {
    params
        .iter()
        .find(|(key, _)| *key == "name")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::invalid("the path names no snapshot"))
}
