//! `POST /v1/tenants/{t}/forks`, `GET /v1/tenants/{t}/forks` and
//! `POST /v1/tenants/{t}/promote`.
//!
//! A fork is an ordinary tenant for every other route. Making one creates a
//! tenant, so it needs the admin token (as `PUT /v1/tenants/{t}` does); a
//! promotion writes the parent, so it needs access to the fork and to the
//! parent: a tenant's token reaches neither its forks nor, from a fork, its
//! parent. In cluster mode a fork would live on another shard than its
//! parent's runtime: forking answers 501 `not_implemented` there.

use axum::extract::State;
use axum::http::header::ETAG;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rewind_core::{PromoteStrategy, Revision, StateRef, TenantId};
use rewind_runtime::{Error, PromoteOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Admin, Audit, TenantAccess};
use super::diff::reference;
use super::input::{etag, optional_whole_number, JsonBody};
use super::tenants::reserve_creation;
use super::Api;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFork {
    /// The new tenant's id.
    name: String,
    /// The parent's state to start from (default `head`).
    from: Option<String>,
    /// Why (else `X-Rewind-Reason`): recorded on the fork's revision 0.
    reason: Option<String>,
}

/// Body `{"name", "from"?, "reason"?}` -> 201 `{"tenant", "revision": 0,
/// "fork": {"parent", "base_revision"}}`; 409 `tenant_exists` when the name
/// is taken, 429 past `max_tenants`.
pub(super) async fn create(
    _: Admin,
    TenantAccess(parent): TenantAccess,
    State(api): State<Api>,
    audit: Audit,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if api.cluster_node().is_some() {
        return Err(not_in_cluster());
    }
    let request: CreateFork = body.parse()?;
    let id = TenantId::new(&request.name).map_err(|e| ApiError::input(&e))?;
    if id.as_str() == "count" {
        // As for `PUT /v1/tenants/count`: the path is `GET /v1/tenants/count`.
        return Err(ApiError::invalid(
            "a tenant named 'count' cannot be made over HTTP: /v1/tenants/count counts tenants",
        ));
    }
    let from = match &request.from {
        Some(text) => reference(text)?,
        None => StateRef::Head,
    };
    let meta = audit.meta(request.reason)?;
    let runtime = api.runtime_for(parent.id().as_str())?;
    let _slot = reserve_creation(&api, &runtime, &id)?;
    let fork = parent.fork_with(id, from, meta.clone()).await?;
    audit.log("fork tenant", fork.id().as_str(), &meta);
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant": fork.id(),
            "revision": fork.revision(),
            "fork": fork.fork_info(),
        })),
    ))
}

/// -> `{"forks": [{"tenant", "base_revision", "created_at"}]}`: the forks
/// attached to the tenant, oldest first: a fork deleted since, a later
/// tenant of a fork's name, and the forks of an earlier tenant of this
/// name are not listed (see `Tenant::attached_forks`).
pub(super) async fn list(TenantAccess(tenant): TenantAccess) -> Result<Json<Value>, ApiError> {
    let forks: Vec<Value> = tenant
        .attached_forks()
        .await?
        .into_iter()
        .map(|record| {
            json!({
                "tenant": record.fork,
                "base_revision": record.base_revision,
                "created_at": record.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "forks": forks })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Promote {
    strategy: PromoteStrategy,
    /// Refuse (412) unless the parent's head is at this revision.
    #[serde(default, deserialize_with = "optional_whole_number")]
    if_parent_revision: Option<u64>,
    /// Why (else `X-Rewind-Reason`): recorded on the parent's new revision.
    reason: Option<String>,
}

/// Body `{"strategy": "replace" | "merge", "if_parent_revision"?, "reason"?}`
/// -> `{"parent", "revision", "fork", "fork_revision", "strategy"}` with
/// `ETag` of the parent's new revision; 409 `conflict` with the `paths`
/// both changed (nothing written), 409 `not_a_fork`, 409 `fork_detached`
/// (the parent was deleted, or its name belongs to a later tenant: nothing
/// written), 412 `revision_mismatch`.
pub(super) async fn promote(
    TenantAccess(fork): TenantAccess,
    State(api): State<Api>,
    headers: HeaderMap,
    audit: Audit,
    body: JsonBody,
) -> Result<Response, Response> {
    let request: Promote = body.parse().map_err(IntoResponse::into_response)?;
    let meta = audit
        .meta(request.reason)
        .map_err(IntoResponse::into_response)?;
    let info = fork
        .fork_info()
        .ok_or_else(|| ApiError::from(Error::NotAFork(fork.id().clone())).into_response())?;
    // The promotion writes the parent: the caller needs access to it too.
    api.shared
        .tokens
        .authorize(&headers)
        .and_then(|access| access.require_tenant(info.parent.as_str()))
        .map_err(IntoResponse::into_response)?;
    let options = PromoteOptions {
        if_parent_revision: request.if_parent_revision.map(Revision),
        meta: meta.clone(),
    };
    let promoted = match fork.promote_with(request.strategy, options).await {
        Ok(promoted) => promoted,
        Err(Error::MergeConflict {
            parent,
            fork,
            conflict,
        }) => {
            let message = Error::MergeConflict {
                parent,
                fork,
                conflict: conflict.clone(),
            }
            .to_string();
            let paths: Vec<String> = conflict.paths.iter().map(ToString::to_string).collect();
            let body = json!({"error": {"code": "conflict", "message": message, "paths": paths}});
            return Err((StatusCode::CONFLICT, Json(body)).into_response());
        }
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    audit.log("promote fork", promoted.parent.as_str(), &meta);
    Ok((
        [(ETAG, etag(promoted.revision))],
        Json(json!({
            "parent": promoted.parent,
            "revision": promoted.revision,
            "fork": promoted.fork,
            "fork_revision": promoted.fork_revision,
            "strategy": promoted.strategy,
        })),
    )
        .into_response())
}

fn not_in_cluster() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "forks are not available in cluster mode yet: a fork and its parent may live on \
         different shards; run a single node to fork",
    )
}
