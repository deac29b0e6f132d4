//! [`ApiError`]: every refusal of the API as `{"error": {"code", "message"}}`
//! with its status. Runtime errors are mapped in one place,
//! [`status_and_code`].

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rewind_core::{InvalidInput, PatchError, PatchErrorKind, TimelineError};
use rewind_runtime::{Error, JournalError};
use serde_json::json;

/// An error answered to a client: a status, a stable machine-readable code
/// and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code (`invalid_request`, `tenant_not_found`, ...).
    pub code: &'static str,
    /// What went wrong, naming the object involved.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 429 `quota_exceeded`.
    pub fn quota(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
    }

    /// 503 `not_owner`: in cluster mode, this node does not own the
    /// tenant's shard (any more). Nothing was done; the answer carries
    /// `x-rewind-not-owner` and `Retry-After`.
    pub fn not_owner(tenant: &rewind_core::TenantId) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_owner",
            format!("this node does not own the shard of tenant '{tenant}' now; retry"),
        )
    }

    /// Input rejected at the edge: 413 when it nests too deep, else 400.
    pub fn input(error: &InvalidInput) -> Self {
        match error {
            InvalidInput::TooDeep { .. } => Self::too_large(error.to_string()),
            _ => Self::invalid(error.to_string()),
        }
    }

    /// A patch that cannot be parsed: 413 when a value nests too deep, else
    /// 400 (RFC 5789: a malformed patch document is a bad request; one that
    /// parses but cannot be applied is 422, see [`status_and_code`]).
    pub fn malformed_patch(error: &PatchError) -> Self {
        if patch_too_deep(error) {
            Self::too_large(error.to_string())
        } else {
            Self::invalid(format!("malformed JSON Patch: {error}"))
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, code) = status_and_code(&error);
        ApiError::new(status, code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.code == "not_owner" {
            response.headers_mut().insert(
                crate::cluster::forward::NOT_OWNER,
                HeaderValue::from_static("1"),
            );
        }
        if retried_after(self.code) {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rewind\""),
            );
        }
        response
    }
}

/// The codes answered with `Retry-After`: the request may succeed if sent
/// again shortly (for `outcome_unknown`, with the same idempotency key).
pub(crate) fn retried_after(code: &str) -> bool {
    matches!(
        code,
        "not_owner" | "unavailable" | "outcome_unknown" | "overloaded" | "timeout"
    )
}

/// Whether a patch failed only because a value or the result nests too deep.
pub(crate) fn patch_too_deep(error: &PatchError) -> bool {
    matches!(
        error.kind,
        PatchErrorKind::TooDeep { .. } | PatchErrorKind::Value(InvalidInput::TooDeep { .. })
    )
}

/// The status and code of a runtime error: the one mapping from rewind's
/// errors to the API's.
///
/// Beyond the codes of the contract: `snapshot_protected` (409, deleting a
/// protected snapshot), `conflict` (409, a merge promotion whose fork and
/// parent changed the same paths), `not_a_fork` (409, promoting a tenant
/// that is not a fork), `fork_detached` (409, promoting a fork whose parent
/// was deleted or whose parent's name now belongs to a later tenant),
/// `delete_refused` (409, deleting a tenant with attached forks, protected
/// snapshots or a deployment in progress without `detach_forks` /
/// `force`), `transaction_failed` (422, `run()`'s error for a transaction
/// that did not commit; no route of this API answers it), `unavailable`
/// (503, a tenant that failed too often, is restarting or cannot be
/// recovered, a runtime shutting down, or a journal that cannot store
/// anything now; nothing was applied), `outcome_unknown` (503, the write's
/// answer was lost between rewind and its journal and could not be found
/// out: it may have been applied) and `internal` (500, a defect, or the
/// model panicked; nothing was applied). Every 503 carries `Retry-After`.
pub fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        Error::TenantNotFound(_) => (S::NOT_FOUND, "tenant_not_found"),
        Error::TenantExists(_) => (S::CONFLICT, "tenant_exists"),
        Error::NotAFork(_) => (S::CONFLICT, "not_a_fork"),
        Error::ForkDetached { .. } => (S::CONFLICT, "fork_detached"),
        Error::DeleteRefused(_) => (S::CONFLICT, "delete_refused"),
        Error::MergeConflict { .. } => (S::CONFLICT, "conflict"),
        Error::RevisionMismatch { .. } => (S::PRECONDITION_FAILED, "revision_mismatch"),
        Error::Overloaded { .. } | Error::LeaseTimeout { .. } => {
            (S::SERVICE_UNAVAILABLE, "overloaded")
        }
        Error::TenantFailed { .. }
        | Error::Unavailable { .. }
        | Error::Unrecoverable { .. }
        | Error::ShuttingDown => (S::SERVICE_UNAVAILABLE, "unavailable"),
        Error::Invalid(input) => input_status(input),
        Error::UpdateRefused { .. } => (S::UNPROCESSABLE_ENTITY, "patch_failed"),
        Error::IdempotencyKeyReused { .. } => (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        Error::Core { source, .. } => match source {
            rewind_core::Error::Input(input) => input_status(input),
            rewind_core::Error::Patch(patch) => rejected_patch_status(patch),
            rewind_core::Error::Timeline(timeline) => timeline_status(timeline),
            _ => (S::BAD_REQUEST, "invalid_request"),
        },
        // The write was refused whole: this node lost the tenant's shard
        // (cluster mode). Nothing was stored; the owner takes retries.
        Error::Journal {
            source: rewind_runtime::JournalError::Fenced { .. },
            ..
        } => (S::SERVICE_UNAVAILABLE, "not_owner"),
        // The journal could not store the write (its database is down,
        // starting or unreachable): nothing was stored, a retry may succeed.
        Error::Journal {
            source: JournalError::Storage(_) | JournalError::Unavailable(_) | JournalError::Closed,
            ..
        } => (S::SERVICE_UNAVAILABLE, "unavailable"),
        // The write may or may not have been stored.
        Error::OutcomeUnknown { .. } => (S::SERVICE_UNAVAILABLE, "outcome_unknown"),
        Error::Journal { .. } | Error::Panicked { .. } => (S::INTERNAL_SERVER_ERROR, "internal"),
        // No route answers it (`POST .../transactions` answers the report
        // whatever the outcome); an embedding service's route that passes
        // `run()`'s error on gets the patch failure's status.
        Error::TransactionFailed { .. } => (S::UNPROCESSABLE_ENTITY, "transaction_failed"),
        _ => (S::INTERNAL_SERVER_ERROR, "internal"),
    }
}

fn input_status(input: &InvalidInput) -> (StatusCode, &'static str) {
    match input {
        InvalidInput::TooDeep { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        _ => (StatusCode::BAD_REQUEST, "invalid_request"),
    }
}

fn rejected_patch_status(patch: &PatchError) -> (StatusCode, &'static str) {
    if patch_too_deep(patch) {
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, "patch_failed")
    }
}

fn timeline_status(error: &TimelineError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    use TimelineError as T;
    match error {
        T::SnapshotNotFound(_)
        | T::NoSnapshotBefore(_)
        | T::NoSnapshots
        | T::TransactionNotFound(_)
        | T::CheckpointNotFound { .. } => (S::NOT_FOUND, "snapshot_not_found"),
        T::RevisionNotFound { .. } | T::TimeOutOfRange { .. } => {
            (S::NOT_FOUND, "revision_not_found")
        }
        T::SnapshotExists(_) | T::CheckpointExists { .. } => (S::CONFLICT, "snapshot_exists"),
        T::SnapshotProtected(_) => (S::CONFLICT, "snapshot_protected"),
        T::QuotaExceeded(_) => (S::TOO_MANY_REQUESTS, "quota_exceeded"),
        T::Rejected(rejected) => match rejected.downcast_ref::<PatchError>() {
            Some(patch) => rejected_patch_status(patch),
            None => (S::UNPROCESSABLE_ENTITY, "patch_failed"),
        },
        T::DeploymentNotFound(_) => (S::NOT_FOUND, "deployment_not_found"),
        T::DeploymentRunning(_) => (S::CONFLICT, "deployment_in_progress"),
        T::DeploymentFinished { .. } => (S::CONFLICT, "deployment_ended"),
        T::HeldByDeployment { .. } => (S::CONFLICT, "snapshot_protected"),
        T::TransactionFinished(_) | T::NotProtectable(_) => (S::BAD_REQUEST, "invalid_request"),
        T::HistoryCorrupt { .. } => (S::INTERNAL_SERVER_ERROR, "internal"),
        _ => (S::BAD_REQUEST, "invalid_request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rewind_core::{Revision, SnapshotName, TenantId};

    fn tenant() -> TenantId {
        TenantId::new("acme").unwrap()
    }

    fn core(error: TimelineError) -> Error {
        Error::Core {
            tenant: tenant(),
            source: error.into(),
        }
    }

    #[test]
    fn contract_codes() {
        let name = SnapshotName::new("v1").unwrap();
        let cases = [
            (Error::TenantNotFound(tenant()), 404, "tenant_not_found"),
            (Error::TenantExists(tenant()), 409, "tenant_exists"),
            (
                Error::RevisionMismatch {
                    tenant: tenant(),
                    expected: Revision(1),
                    actual: Revision(2),
                },
                412,
                "revision_mismatch",
            ),
            (
                Error::Overloaded {
                    tenant: tenant(),
                    limit: 1,
                },
                503,
                "overloaded",
            ),
            (
                core(TimelineError::SnapshotNotFound(name.clone())),
                404,
                "snapshot_not_found",
            ),
            (
                core(TimelineError::SnapshotExists(name)),
                409,
                "snapshot_exists",
            ),
            (
                core(TimelineError::RevisionNotFound {
                    revision: Revision(9),
                    oldest: Revision(0),
                    head: Revision(1),
                }),
                404,
                "revision_not_found",
            ),
            (
                core(TimelineError::QuotaExceeded("full".into())),
                429,
                "quota_exceeded",
            ),
            (
                Error::Invalid(InvalidInput::Config("x".into())),
                400,
                "invalid_request",
            ),
            (
                Error::Invalid(InvalidInput::TooDeep { limit: 3 }),
                413,
                "payload_too_large",
            ),
            // A journal that cannot store now: refused, nothing applied.
            (
                Error::Journal {
                    tenant: tenant(),
                    source: JournalError::Storage(
                        "the database system is starting up (57P03)".into(),
                    ),
                },
                503,
                "unavailable",
            ),
            // A lost answer to COMMIT that could not be resolved.
            (
                Error::OutcomeUnknown {
                    tenant: tenant(),
                    reason: "connection closed".into(),
                },
                503,
                "outcome_unknown",
            ),
            (
                Error::IdempotencyKeyReused {
                    tenant: tenant(),
                    key: "k".into(),
                },
                422,
                "idempotency_key_reused",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(
                status_and_code(&error),
                (StatusCode::from_u16(status).unwrap(), code),
                "{error}"
            );
            let response = ApiError::from(error).into_response();
            assert_eq!(
                response.headers().contains_key(RETRY_AFTER),
                status == 503,
                "every 503, and only a 503, says when to retry: {code}"
            );
        }
    }
}
