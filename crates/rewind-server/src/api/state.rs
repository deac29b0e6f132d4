//! `GET`, `PUT` and `PATCH /v1/tenants/{t}/state`.

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rewind_core::{Commit, CommitMeta, Diff, Doc, Revision, SnapshotName, StateRef};
use rewind_runtime::{Error, Tenant, WriteOptions};
use serde::Deserialize;
use serde_json::json;

use super::access::{Audit, TenantAccess};
use super::input::{
    document, etag, if_match, patch as parse_patch, query_time, JsonBody, QueryParams,
};
use super::{merge, Api};
use crate::error::{patch_too_deep, ApiError};
use crate::limits::Limits;

/// At most one of these selects a past state.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadAt {
    revision: Option<u64>,
    snapshot: Option<String>,
    as_of: Option<String>,
}

impl ReadAt {
    fn reference(self) -> Result<StateRef, ApiError> {
        match (self.revision, self.snapshot, self.as_of) {
            (None, None, None) => Ok(StateRef::Head),
            (Some(revision), None, None) => Ok(StateRef::Revision(Revision(revision))),
            (None, Some(name), None) => SnapshotName::new(name)
                .map(StateRef::Snapshot)
                .map_err(|e| ApiError::input(&e)),
            (None, None, Some(time)) => query_time(&time).map(StateRef::AsOf),
            _ => Err(ApiError::invalid(
                "give at most one of ?revision, ?snapshot and ?as_of",
            )),
        }
    }
}

/// The document at the head or at a past reference, with `ETag:
/// "<revision>"` of the revision it is. Reading changes nothing.
pub(super) async fn get(
    TenantAccess(tenant): TenantAccess,
    QueryParams(at): QueryParams<ReadAt>,
) -> Result<Response, ApiError> {
    let at = at.reference()?;
    let (doc, revision) = read(&tenant, &at)?;
    Ok(([(ETAG, etag(revision))], Json(doc)).into_response())
}

/// The state and revision at `at`, from one published timeline.
pub(super) fn read(tenant: &Tenant<Doc>, at: &StateRef) -> Result<(Doc, Revision), ApiError> {
    let timeline = tenant.timeline();
    let found = timeline
        .state_at(at)
        .and_then(|doc| Ok((doc, timeline.revision_at(at)?)));
    found.map_err(|e| {
        ApiError::from(Error::Core {
            tenant: tenant.id().clone(),
            source: e.into(),
        })
    })
}

/// Replaces the document (the body) as a new revision -> `{"revision"}`.
/// Its reason comes from `X-Rewind-Reason` (the body is the document).
pub(super) async fn replace(
    TenantAccess(tenant): TenantAccess,
    State(api): State<Api>,
    headers: HeaderMap,
    audit: Audit,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let expected_revision = if_match(&headers)?;
    let meta = audit.meta_keyed(None, body.digest())?;
    let doc = document(&body.required()?, &api.shared.limits)?;
    let options = WriteOptions {
        expected_revision,
        meta: meta.clone(),
    };
    let commit = tenant.replace_with(doc, options).await?;
    audit.log("replace", tenant.id().as_str(), &meta);
    Ok(committed(commit.revision))
}

/// Applies an RFC 6902 patch (the body) as a new revision -> `{"revision"}`;
/// with `Content-Type: application/merge-patch+json`, an RFC 7396 merge
/// patch, recorded as its RFC 6902 equivalent. A patch that fails is 422
/// and changes nothing. Its reason comes from `X-Rewind-Reason`.
pub(super) async fn patch(
    TenantAccess(tenant): TenantAccess,
    State(api): State<Api>,
    headers: HeaderMap,
    audit: Audit,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let limits = &api.shared.limits;
    let expected_revision = if_match(&headers)?;
    let meta = audit.meta_keyed(None, body.digest())?;
    let merging = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(merge::is_merge_patch);
    let body = body.required()?;
    let commit = if merging {
        merge_patch(&tenant, &body, expected_revision, &meta, limits).await?
    } else {
        let patch = parse_patch(&body, limits)?;
        // The depth limit on the result, checked against the head this
        // request sees (the model bounds depth at 128 in any case). Other
        // failures are left to the tenant, which applies the patch to its
        // actual head.
        if let Err(e) = patch.apply_to(&tenant.current(), limits.max_depth) {
            if patch_too_deep(&e) {
                return Err(ApiError::too_large(e.to_string()));
            }
        }
        let options = WriteOptions {
            expected_revision,
            meta: meta.clone(),
        };
        tenant.apply_with(patch, options).await?
    };
    audit.log(
        if merging { "merge patch" } else { "patch" },
        tenant.id().as_str(),
        &meta,
    );
    Ok(committed(commit.revision))
}

/// Attempts at a merge patch without `If-Match` when other writes keep
/// moving the head between computing it and applying it.
const MERGE_ATTEMPTS: usize = 8;

/// Merges `patch` into the head and applies the RFC 6902 patch from the
/// head to the result, guarded by the head's revision so nothing comes
/// between; without `If-Match`, a head that moved meanwhile is merged
/// again.
async fn merge_patch(
    tenant: &Tenant<Doc>,
    patch: &serde_json::Value,
    expected: Option<Revision>,
    meta: &CommitMeta,
    limits: &Limits,
) -> Result<Commit, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let timeline = tenant.timeline();
        let head = timeline.head();
        let merged = merge::merge(head, patch, limits)?;
        let equivalent = Diff::between(head, &merged).patch;
        let options = WriteOptions {
            expected_revision: Some(expected.unwrap_or(timeline.revision())),
            meta: meta.clone(),
        };
        match tenant.apply_with(equivalent, options).await {
            Err(Error::RevisionMismatch { .. })
                if expected.is_none() && attempt < MERGE_ATTEMPTS =>
            {
                continue
            }
            outcome => return Ok(outcome?),
        }
    }
}

fn committed(revision: Revision) -> Response {
    (
        [(ETAG, etag(revision))],
        Json(json!({ "revision": revision })),
    )
        .into_response()
}
