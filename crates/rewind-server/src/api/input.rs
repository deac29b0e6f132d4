//! Reading requests within the [`Limits`](crate::Limits): JSON bodies,
//! query strings, `If-Match`, documents and patches. Every refusal is an
//! [`ApiError`]; nothing here panics on input.

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::{CONTENT_LENGTH, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use rewind_core::{Doc, Patch, Revision, Timestamp};
use serde::de::DeserializeOwned;
use serde::Deserialize as _;
use serde_json::Value;

use super::Api;
use crate::error::ApiError;
use crate::limits::{show_duration, Limits};

/// A JSON request body; `None` when the body is empty.
pub(crate) struct JsonBody(pub(crate) Option<Value>, pub(crate) Digest);

/// Whether a request's body was read whole (or it has none): set by
/// [`JsonBody`], read by the request time limit to tell a write that may
/// still take effect from one that never reached its tenant.
#[derive(Clone)]
pub(crate) struct BodyRead(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl BodyRead {
    /// Attaches a tracker to `request`: done at once for a request without
    /// a body.
    pub(crate) fn track(request: &mut Request) -> BodyRead {
        let headers = request.headers();
        let no_body = !headers.contains_key(axum::http::header::TRANSFER_ENCODING)
            && headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.trim() == "0");
        let read = BodyRead(std::sync::Arc::new(no_body.into()));
        request.extensions_mut().insert(read.clone());
        read
    }

    /// The body was read whole, or there is none.
    pub(crate) fn done(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// A fingerprint of bytes (FNV-1a, 64 bits): of a request, so a retry with
/// an idempotency key can be told from another request with the same key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Digest(pub(crate) u64);

impl Digest {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

    /// Of `parts`, each ended by a separator so parts cannot run together.
    pub(crate) fn of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Digest {
        let mut hash = Digest::OFFSET;
        for part in parts {
            for &byte in part.iter().chain(&[0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        Digest(hash)
    }
}

impl FromRequest<Api> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Api) -> Result<Self, ApiError> {
        let limits = &api.shared.limits;
        let limit = limits.max_body_bytes;
        let too_large = || {
            ApiError::too_large(format!(
                "the request body is larger than the limit of {limit} bytes"
            ))
        };
        // Refused before reading: the connection drains what follows, so
        // the client still reads this answer.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|length| length > limit as u64) {
            return Err(too_large());
        }
        let read = request.extensions().get::<BodyRead>().cloned();
        let body = Limited::new(request.into_body(), limit).collect();
        let bytes = match tokio::time::timeout(limits.body_read_timeout, body).await {
            Ok(Ok(collected)) => {
                if let Some(read) = read {
                    read.0.store(true, std::sync::atomic::Ordering::Release);
                }
                collected.to_bytes()
            }
            Ok(Err(error)) if error.is::<LengthLimitError>() => return Err(too_large()),
            Ok(Err(error)) => {
                return Err(ApiError::invalid(format!(
                    "the request body could not be read: {error}"
                )))
            }
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {}",
                        show_duration(limits.body_read_timeout)
                    ),
                ))
            }
        };
        let digest = Digest::of([&bytes[..]]);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None, digest));
        }
        serde_json::from_slice(&bytes)
            .map(|value| JsonBody(Some(value), digest))
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
    /// The fingerprint of the body as it was sent.
    pub(crate) fn digest(&self) -> Digest {
        self.1
    }

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

/// A whole number of a body, as JSON Schema's `integer` (which the OpenAPI
/// document says) allows it: `7`, and also `7.0`. For
/// `#[serde(deserialize_with = "whole_number")]`.
pub(crate) fn whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    use serde::de::Error as _;
    let number = serde_json::Number::deserialize(deserializer)?;
    if let Some(n) = number.as_u64() {
        return Ok(n);
    }
    match number.as_f64() {
        // Below 2^64 and integral: exact, so the cast loses nothing.
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64 => Ok(f as u64),
        _ => Err(D::Error::custom(format!(
            "expected a whole number from 0, not {number}"
        ))),
    }
}

/// [`whole_number`] for an optional field (`#[serde(default)]` too).
pub(crate) fn optional_whole_number<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole_number")] u64);
    Ok(Option::<Whole>::deserialize(deserializer)?.map(|Whole(n)| n))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::whole_number")]
        n: u64,
        #[serde(default, deserialize_with = "super::optional_whole_number")]
        m: Option<u64>,
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        let parse = |text: &str| serde_json::from_str::<Body>(text).map(|b| (b.n, b.m));
        assert_eq!(parse(r#"{"n": 7}"#).unwrap(), (7, None));
        assert_eq!(parse(r#"{"n": 226.0, "m": 3.0}"#).unwrap(), (226, Some(3)));
        assert_eq!(parse(r#"{"n": 1, "m": null}"#).unwrap(), (1, None));
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": "1"}"#,
            r#"{"n": 1e300}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
