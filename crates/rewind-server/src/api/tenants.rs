//! `GET /v1/tenants`, `GET /v1/tenants/count`, `PUT /v1/tenants/{t}`,
//! `DELETE /v1/tenants/{t}` (admin only), `GET /v1/tenants/{t}` (the
//! tenant's token too).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rewind_core::{Doc, TenantId};
use rewind_runtime::{DeleteOptions, DeleteRefusal, Error, ForkStatus, Runtime};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{Admin, AdminOf, Audit, TenantAccess};
use super::input::{document, JsonBody, QueryParams};
use super::Api;
use crate::error::ApiError;

/// Tenants per page without `?limit`.
const DEFAULT_PAGE: u64 = 100;
/// The largest `?limit`.
const MAX_PAGE: u64 = 1_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    limit: Option<u64>,
    after: Option<String>,
}

/// `?limit=N&after=ID` -> `{"tenants": [{"tenant", "revision"?}], "next"?}`:
/// up to `limit` (default 100, at most 1,000) tenants in id order after
/// `after`; `next` is the cursor of the next page, absent on the last.
/// Listing reads no passivated tenant back: one not active since the
/// server started is listed without `revision`.
pub(super) async fn list(
    _: Admin,
    State(api): State<Api>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, not {limit}"
        )));
    }
    let after = match &query.after {
        Some(after) => {
            Some(TenantId::new(after).map_err(|e| ApiError::invalid(format!("after: {e}")))?)
        }
        None => None,
    };
    let (page, next) = match api.runtime() {
        Some(runtime) => runtime.tenants_page(after.as_ref(), limit as usize),
        None => cluster_page(&api, after.as_ref(), limit as usize).await?,
    };
    let tenants: Vec<Value> = page
        .into_iter()
        .map(|(tenant, revision)| match revision {
            Some(revision) => json!({"tenant": tenant, "revision": revision}),
            None => json!({"tenant": tenant}),
        })
        .collect();
    let mut body = json!({ "tenants": tenants });
    if let Some(next) = next {
        body["next"] = json!(next);
    }
    Ok(Json(body))
}

/// In cluster mode, a page of every tenant of the cluster, read from
/// PostgreSQL (without revisions: they are on the owners).
async fn cluster_page(
    api: &Api,
    after: Option<&TenantId>,
    limit: usize,
) -> Result<
    (
        Vec<(TenantId, Option<rewind_core::Revision>)>,
        Option<TenantId>,
    ),
    ApiError,
> {
    let Some(cluster) = api.cluster_node() else {
        return Ok((Vec::new(), None));
    };
    let (page, more) = cluster
        .live_tenants_page(after.cloned(), limit)
        .await
        .map_err(|e| ApiError::from(rewind_runtime::Error::from(e)))?;
    let next = if more { page.last().cloned() } else { None };
    Ok((page.into_iter().map(|id| (id, None)).collect(), next))
}

/// -> `{"tenants": N, "active": M}`: every tenant, and those whose state is
/// in memory (the rest are passivated). O(1). In cluster mode `tenants`
/// counts the cluster's (counted by PostgreSQL: O(tenants) there) and
/// `active` this node's.
pub(super) async fn count(_: Admin, State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    if let Some(runtime) = api.runtime() {
        return Ok(Json(
            json!({"tenants": runtime.tenant_count(), "active": runtime.active_count()}),
        ));
    }
    let tenants = match api.cluster_node() {
        Some(cluster) => cluster
            .live_tenant_count()
            .await
            .map_err(|e| ApiError::from(rewind_runtime::Error::from(e)))?,
        None => 0,
    };
    let active: usize = api.local_runtimes().iter().map(Runtime::active_count).sum();
    Ok(Json(json!({"tenants": tenants, "active": active})))
}

/// -> `{"node", "shards", "owned": [shard]}` in cluster mode; 404 outside it.
pub(super) async fn cluster(_: Admin, State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let cluster = api.cluster_node().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this server is not in cluster mode (start it with --postgres)",
        )
    })?;
    Ok(Json(json!({
        "node": cluster.node_id(),
        "shards": cluster.shards(),
        "owned": cluster.owned_shards(),
    })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    /// The initial state (default `{}`).
    state: Option<Value>,
    /// Why (else `X-Rewind-Reason`): recorded on revision 0, and in the audit
    /// log.
    reason: Option<String>,
}

/// Body `{"state"?, "reason"?}` -> 201 `{"tenant", "revision": 0}`; 409 if it exists,
/// 429 past `max_tenants`.
pub(super) async fn create(
    AdminOf(id): AdminOf,
    State(api): State<Api>,
    audit: Audit,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let digest = body.digest();
    let request: CreateTenant = body.parse_or_default()?;
    let meta = audit.meta_keyed(request.reason, digest)?;
    let initial = match &request.state {
        Some(state) => document(state, &api.shared.limits)?,
        None => Doc::object(),
    };
    let runtime = api.runtime_for(id.as_str())?;
    let _slot = reserve_creation(&api, &runtime, &id)?;
    let tenant = runtime
        .create_tenant_with_meta(id, initial, Some(api.shared.tenant), meta.clone())
        .await?;
    audit.log("create tenant", tenant.id().as_str(), &meta);
    Ok((
        StatusCode::CREATED,
        // A creation makes revision 0 (a retry with its idempotency key is
        // answered the same, whatever came after).
        Json(json!({"tenant": tenant.id(), "revision": 0})),
    ))
}

/// Counts a creation of tenant `id` in `runtime` against `max_tenants`
/// until the returned slot is dropped: 409 if the limit is reached and `id`
/// exists, else 429.
pub(super) fn reserve_creation<'a>(
    api: &'a Api,
    runtime: &Runtime<Doc>,
    id: &TenantId,
) -> Result<Decrement<'a>, ApiError> {
    let shared = &api.shared;
    let max = shared.limits.max_tenants;
    // Creations in progress count as tenants: of two concurrent creators the
    // later one counts the earlier, so together they never exceed `max`.
    let pending = shared.creating.fetch_add(1, Ordering::SeqCst);
    let slot = Decrement(&shared.creating);
    // In cluster mode the limit holds per node, over the shards it owns.
    let held: usize = api.local_runtimes().iter().map(Runtime::tenant_count).sum();
    if held + pending >= max {
        if runtime.tenant_exists(id) {
            return Err(rewind_runtime::Error::TenantExists(id.clone()).into());
        }
        return Err(ApiError::quota(format!(
            "tenant '{id}' not created: the server holds its limit of {max} tenants"
        )));
    }
    Ok(slot)
}

/// Gives back a creation slot however the creation ends.
pub(super) struct Decrement<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// -> `{"tenant", "revision", "memory": {"shared_bytes", "unique_bytes",
/// "history_bytes"}, "fork"?: {"parent", "base_revision",
/// "parent_incarnation"?, "detached", "detached_reason"?}}`: the tenant's
/// head revision, what its states cost (estimated, see `Tenant::memory`)
/// and, for a fork, where it came from and whether that parent is still
/// there. A detached fork names the parent it was made of (with that
/// parent's incarnation), never the later tenant that holds the name now.
/// When the parent cannot be read now (unrecoverable, failed), `detached`
/// is left out: the fork itself still answers.
pub(super) async fn get(TenantAccess(tenant): TenantAccess) -> Json<Value> {
    let mut body = json!({
        "tenant": tenant.id(),
        "revision": tenant.revision(),
        "memory": tenant.memory(),
    });
    match tenant.fork_status().await {
        Ok(Some(status)) => body["fork"] = fork_status(&status),
        Ok(None) => {}
        Err(_) => {
            if let Some(info) = tenant.fork_info() {
                body["fork"] = json!(info);
            }
        }
    }
    Json(body)
}

/// A fork's origin and link, as `GET /v1/tenants/{t}` shows it.
pub(super) fn fork_status(status: &ForkStatus) -> Value {
    let mut fork = json!(status.info);
    fork["detached"] = json!(status.detached.is_some());
    if let Some(why) = status.detached {
        fork["detached_reason"] = json!(why.as_str());
    }
    fork
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeleteQuery {
    /// Destroy protected snapshots and a deployment in progress too.
    #[serde(default)]
    force: bool,
    /// Delete a parent of attached forks, leaving them detached.
    #[serde(default)]
    detach_forks: bool,
}

/// `?force=true&detach_forks=true` (both default `false`) -> 204 once the
/// tenant and its history are gone; 409 `delete_refused` with `forks`,
/// `protected_snapshots` and `deployment` (what stands in the way: forks
/// need `detach_forks`, the rest `force`), nothing deleted.
pub(super) async fn delete(
    AdminOf(id): AdminOf,
    State(api): State<Api>,
    QueryParams(query): QueryParams<DeleteQuery>,
    audit: Audit,
) -> Result<StatusCode, Response> {
    let meta = audit.meta(None).map_err(IntoResponse::into_response)?;
    let options = DeleteOptions {
        force: query.force,
        detach_forks: query.detach_forks,
    };
    let runtime = api
        .runtime_for(id.as_str())
        .map_err(IntoResponse::into_response)?;
    match runtime.delete_tenant_with(id.as_str(), options).await {
        Ok(()) => {}
        Err(Error::DeleteRefused(refusal)) => return Err(delete_refused(&refusal)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    }
    audit.log("delete tenant", id.as_str(), &meta);
    Ok(StatusCode::NO_CONTENT)
}

/// 409 `delete_refused`, with what stands in the way as data.
fn delete_refused(refusal: &DeleteRefusal) -> Response {
    let deployment = refusal
        .deployment
        .as_ref()
        .map(|d| json!({"id": d.id, "name": d.name}));
    let body = json!({"error": {
        "code": "delete_refused",
        "message": refusal.to_string(),
        "forks": refusal.forks,
        "protected_snapshots": refusal.protected_snapshots,
        "deployment": deployment,
    }});
    (StatusCode::CONFLICT, Json(body)).into_response()
}
