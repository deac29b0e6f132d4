//! Reading requests within the [`Limits`](crate::Limits): JSON bodies,
//! query strings, `If-Match`, documents and patches. Every refusal is an
//! [`ApiError`]; nothing here panics on input.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::IF_MATCH;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use rewind_core::{Doc, Patch, Revision, Timestamp};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Api;
use crate::error::ApiError;
use crate::limits::Limits;

/// A JSON request body; `None` when the body is empty.
pub(crate) struct JsonBody(pub(crate) Option<Value>);

impl FromRequest<Api> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> Result<Self, ApiError> {
        let limit = api.shared.limits.max_body_bytes;
        let bytes = Bytes::from_request(request, api)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::too_large(format!(
                        "the request body is larger than the limit of {limit} bytes"
                    ))
                } else {
                    ApiError::invalid(rejection.body_text())
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|value| JsonBody(Some(value)))
            .map_err(|e| {
                // serde_json refuses nesting past 128 levels on its own,
                // before any document is built: that is a size limit too.
                if e.to_string().contains("recursion limit exceeded") {
                    ApiError::too_large("the request body nests deeper than 128 levels")
                } else {
                    ApiError::invalid(format!("the request body is not valid JSON: {e}"))
                }
            })
    }
}

impl JsonBody {
    /// The body as `T`; an empty body gives `T::default()`.
    pub(crate) fn parse_or_default<T: DeserializeOwned + Default>(self) -> Result<T, ApiError> {
        match self.0 {
            None => Ok(T::default()),
            Some(value) => parse(value),
        }
    }

    /// The body as `T`; an empty body is refused.
    pub(crate) fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        parse(self.required()?)
    }

    /// The body, which must not be empty.
    pub(crate) fn required(self) -> Result<Value, ApiError> {
        self.0
            .ok_or_else(|| ApiError::invalid("this request needs a JSON body"))
    }
}

fn parse<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
}

/// A query string parsed as `T`; unknown or malformed parameters are 400.
pub(crate) struct QueryParams<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequestParts<Api> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _api: &Api) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(query)| QueryParams(query))
            .map_err(|e| ApiError::invalid(e.body_text()))
    }
}

/// The revision of an `If-Match: "<revision>"` header, if any. `*` (any
/// revision) counts as none; a weak tag `W/"7"` and a bare `7` are accepted.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<Revision>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid("If-Match must be one revision as an entity tag, like \"7\"");
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(None);
    }
    let tag = text.strip_prefix("W/").unwrap_or(text);
    let number = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    number
        .parse::<u64>()
        .map(|r| Some(Revision(r)))
        .map_err(|_| bad())
}

/// The `ETag` of a revision: `"<revision>"`.
pub(crate) fn etag(revision: Revision) -> String {
    format!("\"{revision}\"")
}

/// A document within the depth limit (413 past it).
pub(crate) fn document(value: &Value, limits: &Limits) -> Result<Doc, ApiError> {
    Doc::from_json_with_limit(value, limits.max_depth).map_err(|e| ApiError::input(&e))
}

/// An RFC 6902 patch within the length and depth limits (413 past them;
/// 400 if it is not a patch).
pub(crate) fn patch(value: &Value, limits: &Limits) -> Result<Patch, ApiError> {
    if let Value::Array(ops) = value {
        if ops.len() > limits.max_patch_ops {
            return Err(ApiError::too_large(format!(
                "the patch has {} operations; the limit is {}",
                ops.len(),
                limits.max_patch_ops
            )));
        }
    }
    Patch::from_json_with_limit(value, limits.max_depth).map_err(|e| ApiError::malformed_patch(&e))
}

/// An RFC 3339 time from a query string. An unencoded `+` of an offset
/// arrives as a space (form encoding); it is read as the `+` it was.
pub(crate) fn query_time(text: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse_rfc3339(text).or_else(|error| {
        if text.contains(' ') {
            Timestamp::parse_rfc3339(&text.replace(' ', "+")).map_err(|_| ApiError::input(&error))
        } else {
            Err(ApiError::input(&error))
        }
    })
}
