//! Extractors that authorize a request before its handler runs: 401 without
//! a valid token, 403 outside the token's scope, then 400 for an invalid
//! tenant id and 404 for an unknown tenant.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use rewind_core::{Doc, TenantId};
use rewind_runtime::Tenant;

use super::Api;
use crate::error::ApiError;

/// Admin access, for routes that manage tenants.
pub(crate) struct Admin;

impl FromRequestParts<Api> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        api.shared
            .tokens
            .authorize(&parts.headers)?
            .require_admin()?;
        Ok(Admin)
    }
}

/// Admin access to the tenant id of the path (which may not exist yet).
pub(crate) struct AdminOf(pub(crate) TenantId);

impl FromRequestParts<Api> for AdminOf {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        api.shared
            .tokens
            .authorize(&parts.headers)?
            .require_admin()?;
        let raw = tenant_segment(parts, api).await?;
        let id = TenantId::new(&raw).map_err(|e| ApiError::input(&e))?;
        Ok(AdminOf(id))
    }
}

/// Access to an existing tenant, by the admin or by the tenant's token.
pub(crate) struct TenantAccess(pub(crate) Tenant<Doc>);

impl FromRequestParts<Api> for TenantAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let access = api.shared.tokens.authorize(&parts.headers)?;
        let raw = tenant_segment(parts, api).await?;
        access.require_tenant(&raw)?;
        Ok(TenantAccess(api.shared.runtime.tenant(&raw)?))
    }
}

/// The `{t}` segment of the path, percent-decoded.
async fn tenant_segment(parts: &mut Parts, api: &Api) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, api)
        .await
        .map_err(|e| ApiError::invalid(e.body_text()))?;
    params
        .iter()
        .find(|(key, _)| *key == "t")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::invalid("the path names no tenant"))
}
