//! Multi-step transactions: a plan of named steps, run by a transaction
//! actor that holds the tenant's write lease, checkpoints after each step and
//! rolls back per policy when a step fails.

pub(crate) mod actor;
mod plan;
mod report;

pub use plan::{StepAction, TransactionBuilder, TransactionPlan};
pub use report::{FailureReason, StepFailure, StepRecord, TransactionReport};
