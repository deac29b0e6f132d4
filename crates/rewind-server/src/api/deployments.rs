//! Guarded deployments: `POST` and `GET /v1/tenants/{t}/deployments`,
//! `GET .../deployments/{id}`, `POST .../deployments/{id}/abort` and
//! `.../promote`.
//!
//! The checks' URLs are fetched by the server, so only hosts given with
//! `rewind serve --allow-check-host` are allowed (none by default: a
//! deployment with checks is then refused with 400).

use std::sync::Arc;

use axum::extract::RawPathParams;
use axum::http::StatusCode;
use axum::Json;
use rewind_core::deploy::{
    format_duration, parse_duration, CheckSpec, DeploymentId, DeploymentInfo,
};
use rewind_core::Doc;
use rewind_runtime::deploy::DeploymentBuilder;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Audit, TenantAccess};
use super::input::{document, patch as parse_patch, JsonBody};
use super::Api;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDeployment {
    name: String,
    patch: Option<Value>,
    state: Option<Value>,
    #[serde(default)]
    checks: Vec<CheckSpec>,
    interval: Option<String>,
    window: Option<String>,
    failure_limit: Option<u32>,
    error_limit: Option<u32>,
    /// Why (else `X-Rewind-Reason`): the deployed revision's message.
    reason: Option<String>,
}

/// Body `{"name", "patch" | "state", "checks", "interval", "window",
/// "failure_limit", "error_limit"}` -> 201 with the deployment, monitoring.
/// 409 `deployment_in_progress` while another runs; 400 for a check to a
/// host not allowed, a bad duration or limits that cannot work; 422 for a
/// patch that does not apply. Nothing changes on any refusal.
pub(super) async fn create(
    TenantAccess(tenant): TenantAccess,
    axum::extract::State(api): axum::extract::State<Api>,
    audit: Audit,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateDeployment = body.parse()?;
    let limits = &api.shared.limits;
    let mut meta = audit.meta(request.reason)?;
    if meta.message.is_none() {
        meta.message = Some(format!("deploy {}", request.name).into());
    }
    let builder: DeploymentBuilder<Doc> = match (&request.patch, &request.state) {
        (Some(patch), None) => tenant.deploy(parse_patch(patch, limits)?),
        (None, Some(state)) => tenant.deploy_state(document(state, limits)?),
        _ => {
            return Err(ApiError::invalid(
                "a deployment needs exactly one of \"patch\" (RFC 6902) or \"state\"",
            ))
        }
    };
    let duration = |text: &Option<String>, default: &str| {
        parse_duration(text.as_deref().unwrap_or(default)).map_err(|e| ApiError::input(&e))
    };
    let mut builder = builder
        .name(request.name.clone())
        .interval(duration(&request.interval, "60s")?)
        .window(duration(&request.window, "5m")?)
        .failure_limit(request.failure_limit.unwrap_or(0))
        .error_limit(request.error_limit.unwrap_or(4))
        .meta(meta.clone());
    for spec in &request.checks {
        let check = rewind_runtime::deploy::built_in(spec).ok_or_else(|| {
            ApiError::invalid(
                "custom checks are registered by a program embedding rewind; over HTTP a \
                 check is {\"prometheus\": {...}} or {\"http\": {...}}",
            )
        })?;
        builder = builder.check_arc(Arc::clone(&check));
    }
    let deployment = builder.start().await?;
    audit.log(
        &format!("deploy '{}'", request.name),
        tenant.id().as_str(),
        &meta,
    );
    Ok((StatusCode::CREATED, Json(view(deployment.started()))))
}

/// `{"deployments": [...]}`, newest first.
pub(super) async fn list(TenantAccess(tenant): TenantAccess) -> Json<Value> {
    let deployments: Vec<Value> = tenant.deployments().iter().rev().map(view).collect();
    Json(json!({ "deployments": deployments }))
}

/// One deployment, with every measurement; 404 `deployment_not_found`.
pub(super) async fn get(
    TenantAccess(tenant): TenantAccess,
    params: RawPathParams,
) -> Result<Json<Value>, ApiError> {
    let id = deployment_segment(&params)?;
    tenant
        .deployment(id)
        .map(|d| Json(view(&d)))
        .ok_or_else(|| not_found(id))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndRequest {
    reason: Option<String>,
}

/// Rolls back to `pre_<name>` now -> the deployment, aborted; 409
/// `deployment_ended` when it already ended.
pub(super) async fn abort(
    TenantAccess(tenant): TenantAccess,
    audit: Audit,
    params: RawPathParams,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let id = deployment_segment(&params)?;
    let request: EndRequest = body.parse_or_default()?;
    let meta = audit.meta(request.reason)?;
    let reason = match &meta.message {
        Some(message) => format!("aborted by {}: {message}", audit_identity(&meta)),
        None => format!("aborted by {}", audit_identity(&meta)),
    };
    let ended = tenant.abort_deployment(id, reason).await?;
    audit.log(
        &format!("abort deployment {id}"),
        tenant.id().as_str(),
        &meta,
    );
    Ok(Json(view(&ended.deployment)))
}

/// Ends the window now, keeping the change -> the deployment, promoted.
pub(super) async fn promote(
    TenantAccess(tenant): TenantAccess,
    audit: Audit,
    params: RawPathParams,
) -> Result<Json<Value>, ApiError> {
    let id = deployment_segment(&params)?;
    let meta = audit.meta(None)?;
    let ended = tenant.promote_deployment(id).await?;
    audit.log(
        &format!("promote deployment {id}"),
        tenant.id().as_str(),
        &meta,
    );
    Ok(Json(view(&ended.deployment)))
}

fn audit_identity(meta: &rewind_core::CommitMeta) -> String {
    meta.author
        .as_deref()
        .map_or_else(|| "request".to_owned(), str::to_owned)
}

fn not_found(id: DeploymentId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "deployment_not_found",
        format!("deployment {id} not found (a tenant keeps its last 16)"),
    )
}

/// The `{id}` segment: a positive integer.
fn deployment_segment(params: &RawPathParams) -> Result<DeploymentId, ApiError> {
    let raw = params
        .iter()
        .find(|(key, _)| *key == "id")
        .map(|(_, value)| value)
        .unwrap_or_default();
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(DeploymentId)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "invalid deployment id '{}': expected a positive integer",
                raw.chars().take(32).collect::<String>()
            ))
        })
}

/// A deployment as the API shows it: durations Go-style, the rollback as
/// `POST /rollback` answers it.
fn view(deployment: &DeploymentInfo) -> Value {
    let spec = &deployment.spec;
    let mut value = json!({
        "id": deployment.id,
        "name": spec.name,
        "status": deployment.status,
        "started_at": deployment.started_at,
        "ends_at": deployment.ends_at,
        "revision": deployment.revision,
        "base_revision": deployment.base_revision,
        "pre_snapshot": deployment.pre_snapshot,
        "checks": spec.checks,
        "interval": format_duration(spec.interval()),
        "window": format_duration(spec.window()),
        "failure_limit": spec.failure_limit,
        "error_limit": spec.error_limit,
        "measurements": deployment.measurements,
    });
    if let Some(ended_at) = deployment.ended_at {
        value["ended_at"] = json!(ended_at);
    }
    if let Some(reason) = &deployment.reason {
        value["reason"] = json!(reason);
    }
    if let Some(rollback) = &deployment.rollback {
        value["rollback"] = json!({
            "revision": rollback.revision,
            "restored": rollback.restored,
            "diff": rollback.diff,
            "pre_rollback": rollback.pre_rollback,
            "dry_run": false,
        });
    }
    value
}
