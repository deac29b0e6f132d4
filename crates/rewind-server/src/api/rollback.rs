//! `POST /v1/tenants/{t}/rollback`.

use axum::Json;
use rewind_core::{Revision, RollbackTarget, SnapshotName, Timestamp, TransactionId};
use serde::Deserialize;
use serde_json::{json, Value};

use rewind_runtime::WriteOptions;

use super::access::{Audit, TenantAccess};
use super::input::{whole_number, JsonBody};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    to: Target,
    /// Compute the rollback without making it.
    #[serde(default)]
    dry_run: bool,
    /// Why (else `X-Rewind-Reason`): recorded with the new revision.
    reason: Option<String>,
}

/// The five targets as the API spells them.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Target {
    Snapshot(String),
    Time(String),
    Latest(bool),
    Revision(#[serde(deserialize_with = "whole_number")] u64),
    Checkpoint {
        #[serde(deserialize_with = "whole_number")]
        transaction: u64,
        name: String,
    },
}

impl Target {
    fn resolve(self) -> Result<RollbackTarget, ApiError> {
        let input = |e: rewind_core::InvalidInput| ApiError::input(&e);
        Ok(match self {
            Target::Snapshot(name) => {
                RollbackTarget::Named(SnapshotName::new(name).map_err(input)?)
            }
            Target::Time(time) => {
                RollbackTarget::Time(Timestamp::parse_rfc3339(&time).map_err(input)?)
            }
            Target::Latest(true) => RollbackTarget::Latest,
            Target::Latest(false) => {
                return Err(ApiError::invalid("{\"latest\": false} names no target"))
            }
            Target::Revision(revision) => RollbackTarget::Revision(Revision(revision)),
            Target::Checkpoint { transaction, name } => RollbackTarget::Checkpoint {
                transaction: TransactionId(transaction),
                name: SnapshotName::new(name).map_err(input)?,
            },
        })
    }
}

/// Body `{"to": TARGET, "dry_run"?, "reason"?}` -> `{"revision", "restored", "diff"}`;
/// `revision` is the new one, or the unchanged head on a dry run. A real
/// rollback also reports `pre_rollback`, the auto snapshot that undoes it.
pub(super) async fn rollback(
    TenantAccess(tenant): TenantAccess,
    audit: Audit,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let request: RollbackRequest = body.parse()?;
    let meta = audit.meta(request.reason)?;
    let target = request.to.resolve()?;
    if request.dry_run {
        let preview = tenant.rollback_dry_run(&target)?;
        return Ok(Json(json!({
            "revision": preview.revision,
            "restored": preview.restored,
            "diff": preview.diff,
            "dry_run": true,
        })));
    }
    let options = WriteOptions {
        meta: meta.clone(),
        expected_revision: None,
    };
    let outcome = tenant.rollback_with(target, options).await?;
    audit.log("rollback", tenant.id().as_str(), &meta);
    Ok(Json(json!({
        "revision": outcome.revision,
        "restored": outcome.restored,
        "diff": outcome.diff,
        "pre_rollback": outcome.pre_rollback,
        "dry_run": false,
    })))
}
