//! Extractors that authorize a request before its handler runs: 401 without
//! a valid token, 403 outside the token's scope, then 400 for an invalid
//! tenant id and 404 for an unknown tenant.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use rewind_core::{CommitMeta, Doc, IdempotencyKey, TenantId};
use rewind_runtime::Tenant;

use super::input::Digest;
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
        Ok(TenantAccess(api.runtime_for(&raw)?.tenant(&raw).await?))
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

/// The header giving the reason of a write.
pub(crate) const REASON_HEADER: &str = "x-rewind-reason";

/// The longest reason, in characters.
const MAX_REASON: usize = 1024;

/// Who makes a request and, from `X-Rewind-Reason`, why: recorded in the
/// meta of the revision a write makes (`author`, `message`) and in the
/// audit log. Extracted after the access check, so it never authenticates
/// on its own.
pub(crate) struct Audit {
    identity: Arc<str>,
    header_reason: Option<String>,
    /// `Idempotency-Key`, if sent, and the fingerprint of what identifies
    /// the request besides its body (method, path, query, the headers a
    /// write reads).
    idempotency: Option<(String, Digest)>,
}

/// The header carrying a write's idempotency key.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl FromRequestParts<Api> for Audit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        let caller = api.shared.tokens.authenticate(&parts.headers)?;
        let header_reason = match parts.headers.get(REASON_HEADER) {
            None => None,
            Some(value) => Some(
                std::str::from_utf8(value.as_bytes())
                    .map_err(|_| ApiError::invalid("X-Rewind-Reason must be UTF-8 text"))?
                    .trim()
                    .to_owned(),
            ),
        };
        let idempotency = match parts.headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => {
                let key = value.to_str().map_err(|_| {
                    ApiError::invalid("Idempotency-Key must be visible ASCII characters")
                })?;
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .map_or(&b""[..], |value| value.as_bytes())
                };
                let request = Digest::of([
                    parts.method.as_str().as_bytes(),
                    parts.uri.path().as_bytes(),
                    parts.uri.query().unwrap_or("").as_bytes(),
                    header("content-type"),
                    header("if-match"),
                    header(REASON_HEADER),
                ]);
                Some((key.trim().to_owned(), request))
            }
        };
        Ok(Audit {
            identity: caller.identity,
            header_reason,
            idempotency,
        })
    }
}

impl Audit {
    /// The meta of a write: the caller as author, and as message the
    /// body's `reason` if it has one, else the header's. 400 when the
    /// reason is longer than 1024 characters.
    /// 400 if the request carries `Idempotency-Key`: this route does not
    /// honour it, and a retry would be applied again.
    pub(crate) fn meta(&self, body_reason: Option<String>) -> Result<CommitMeta, ApiError> {
        if self.idempotency.is_some() {
            return Err(ApiError::invalid(
                "this route does not take Idempotency-Key (it is honoured by PUT \
                 /v1/tenants/{t}, PUT and PATCH /v1/tenants/{t}/state); send the request \
                 without it",
            ));
        }
        self.reasoned(body_reason)
    }

    /// [`meta`](Self::meta) for a route that honours `Idempotency-Key`: the
    /// key, with the fingerprint of the request and its `body`, is recorded
    /// with the revision the write makes. 400 for a malformed key.
    pub(crate) fn meta_keyed(
        &self,
        body_reason: Option<String>,
        body: Digest,
    ) -> Result<CommitMeta, ApiError> {
        let mut meta = self.reasoned(body_reason)?;
        if let Some((key, request)) = &self.idempotency {
            let request = Digest::of([&request.0.to_le_bytes()[..], &body.0.to_le_bytes()[..]]);
            let key = IdempotencyKey::new(key, request.0)
                .map_err(|e| ApiError::invalid(format!("Idempotency-Key: {e}")))?;
            meta.idempotency = Some(key);
        }
        Ok(meta)
    }

    fn reasoned(&self, body_reason: Option<String>) -> Result<CommitMeta, ApiError> {
        let given = |reason: Option<String>| reason.filter(|r| !r.trim().is_empty());
        let (body, header) = (given(body_reason), given(self.header_reason.clone()));
        for reason in [&body, &header].into_iter().flatten() {
            if reason.chars().count() > MAX_REASON {
                return Err(ApiError::invalid(format!(
                    "the reason is longer than {MAX_REASON} characters"
                )));
            }
        }
        Ok(CommitMeta {
            author: Some(Arc::clone(&self.identity)),
            message: body.or(header).map(Arc::from),
            idempotency: None,
        })
    }

    /// Logs a write, also those that make no revision (snapshots, deletes),
    /// so the audit log has every write.
    pub(crate) fn log(&self, action: &str, tenant: &str, meta: &CommitMeta) {
        tracing::info!(
            target: "rewind::audit",
            by = %self.identity,
            reason = meta.message.as_deref().unwrap_or(""),
            tenant,
            "{action}"
        );
    }
}
