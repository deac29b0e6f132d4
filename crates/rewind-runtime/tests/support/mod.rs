//! Helpers shared by the runtime's black-box tests. Each test binary uses a
//! subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::future::Future;
use std::task::Poll;

use rewind_core::{
    Doc, Model, Patch, Revision, RevisionInfo, SnapshotInfo, SnapshotName, TransactionInfo,
};
use rewind_runtime::Tenant;
use serde_json::Value;

pub(crate) fn doc(value: Value) -> Doc {
    Doc::from_json(&value).expect("test documents are shallow")
}

pub(crate) fn patch(value: Value) -> Patch {
    Patch::from_json(&value).expect("test patches are well formed")
}

pub(crate) fn name(text: &str) -> SnapshotName {
    SnapshotName::new(text).expect("test names are valid")
}

/// Everything an operation that did nothing (or a restart) must leave as it
/// was.
#[derive(Debug, PartialEq)]
pub(crate) struct Observed<M: Model> {
    pub(crate) revision: Revision,
    pub(crate) head: M,
    pub(crate) history: Vec<RevisionInfo>,
    pub(crate) snapshots: Vec<SnapshotInfo>,
    pub(crate) transactions: Vec<TransactionInfo>,
}

pub(crate) fn observe<M: Model + PartialEq>(tenant: &Tenant<M>) -> Observed<M> {
    let timeline = tenant.timeline();
    Observed {
        revision: timeline.revision(),
        head: timeline.head().clone(),
        history: timeline.history().cloned().collect(),
        snapshots: timeline.snapshots(),
        transactions: timeline.transactions(),
    }
}

/// Polls `request` once — far enough for a tenant request to be accepted:
/// counted in flight and sent to the tenant's mailbox — then leaves the rest
/// to a task.
pub(crate) async fn accepted<T: Send + 'static>(
    request: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let mut request = Box::pin(request);
    match std::future::poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await {
        Poll::Ready(answer) => tokio::spawn(async move { answer }),
        Poll::Pending => tokio::spawn(request),
    }
}
