//! `POST /v1/tenants/{t}/transactions`.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rewind_core::{Doc, RollbackPolicy, START_CHECKPOINT};
use rewind_runtime::TransactionPlan;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::access::{Audit, TenantAccess};
use super::input::{patch, JsonBody};
use super::Api;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionRequest {
    steps: Vec<Step>,
    /// `"start"` (default), `"last_checkpoint"` or `{"checkpoint": NAME}`.
    #[serde(default)]
    on_failure: RollbackPolicy,
    /// Why (else `X-Rewind-Reason`): recorded on every revision it makes, and in
    /// the audit log.
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    name: String,
    patch: Value,
}

/// 422 `invalid_transaction` for a plan that is well-formed but cannot
/// run: step names used twice or named `start` (the checkpoint before the
/// first step), or `on_failure` naming a checkpoint that is not a step.
fn check_names(request: &TransactionRequest) -> Result<(), ApiError> {
    let invalid = |message: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_transaction",
            message,
        )
    };
    let mut seen = BTreeSet::new();
    for step in &request.steps {
        if step.name == START_CHECKPOINT {
            return Err(invalid(format!(
                "a step cannot be named '{START_CHECKPOINT}': it names the checkpoint taken \
                 before the first step"
            )));
        }
        if !seen.insert(step.name.as_str()) {
            return Err(invalid(format!(
                "step name '{}' is used twice in the transaction",
                step.name
            )));
        }
    }
    if let RollbackPolicy::Checkpoint(name) = &request.on_failure {
        if name.as_str() != START_CHECKPOINT && !seen.contains(name.as_str()) {
            return Err(invalid(format!(
                "on_failure names checkpoint '{name}', which is not a step of the transaction"
            )));
        }
    }
    Ok(())
}

/// Runs the steps under the tenant's write lease, a checkpoint after each;
/// when one fails, rolls back per `on_failure`. A failed step is not an
/// error of the request: 200 whatever the outcome, and `outcome` says
/// what happened. Not a 4xx: in this API a 4xx means "refused, nothing
/// applied", and a failed transaction wrote its steps and its rollback as
/// revisions (the CLI turns the outcome into its exit code).
///
/// -> `{"transaction", "outcome", "steps": [{"name", "revision",
/// "checkpoint"}], "failed_step"?, "error"?, "rolled_back_to"?}`.
pub(super) async fn run(
    TenantAccess(tenant): TenantAccess,
    State(api): State<Api>,
    audit: Audit,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let limits = &api.shared.limits;
    let mut request: TransactionRequest = body.parse()?;
    let meta = audit.meta(request.reason.take())?;
    if request.steps.is_empty() {
        return Err(ApiError::invalid("a transaction needs at least one step"));
    }
    if request.steps.len() > limits.max_transaction_steps {
        return Err(ApiError::too_large(format!(
            "the transaction has {} steps; the limit is {}",
            request.steps.len(),
            limits.max_transaction_steps
        )));
    }
    check_names(&request)?;
    let mut plan = TransactionPlan::<Doc>::new()
        .on_failure(request.on_failure)
        .meta(meta.clone());
    for step in request.steps {
        let change = patch(&step.patch, limits).map_err(|e| {
            ApiError::new(
                e.status,
                e.code,
                format!("step '{}': {}", step.name, e.message),
            )
        })?;
        plan = plan.step(&step.name, change);
    }
    let report = tenant.run_transaction_report(plan).await?;
    audit.log(
        &format!("transaction {} ({:?})", report.transaction, report.outcome),
        tenant.id().as_str(),
        &meta,
    );

    let steps: Vec<Value> = report
        .steps
        .iter()
        .map(|step| {
            json!({
                "name": step.name,
                "revision": step.revision,
                "checkpoint": step.checkpoint,
            })
        })
        .collect();
    let mut body = Map::new();
    body.insert("transaction".into(), json!(report.transaction));
    body.insert("outcome".into(), json!(report.outcome));
    body.insert("steps".into(), Value::Array(steps));
    if let Some(failure) = &report.failure {
        body.insert("failed_step".into(), json!(failure.step));
        body.insert("error".into(), json!(failure.reason.to_string()));
    }
    if let Some(rollback) = &report.rollback {
        body.insert("rolled_back_to".into(), json!(rollback.restored));
    }
    Ok(Json(Value::Object(body)))
}
