//! `GET /v1/tenants/{t}/watch`: server-sent events, one per new revision.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use rewind_core::RevisionInfo;
use tokio::sync::broadcast::error::RecvError;

use super::access::TenantAccess;
use super::Api;

/// Every revision committed after the request, as an event `revision` with
/// `id: <revision>` and the revision's JSON (`{"revision", "at", "cause"}`)
/// as data. A client that falls more than 1024 revisions behind gets one
/// `lagged` event with the number it missed. The stream ends when the tenant
/// is deleted or the server stops.
pub(super) async fn watch(
    TenantAccess(tenant): TenantAccess,
    State(api): State<Api>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let revisions = tenant.watch();
    let closing = api.shared.closing.subscribe();
    let events = futures_util::stream::unfold(
        (revisions, closing),
        |(mut revisions, mut closing)| async move {
            let event = tokio::select! {
                // Also ends when the API is dropped.
                _ = closing.wait_for(|closed| *closed) => return None,
                received = revisions.recv() => match received {
                    Ok(info) => revision_event(&info),
                    Err(RecvError::Lagged(missed)) => {
                        Event::default().event("lagged").data(missed.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(event), (revisions, closing)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn revision_event(info: &RevisionInfo) -> Event {
    let event = Event::default()
        .event("revision")
        .id(info.revision.to_string());
    match serde_json::to_string(info) {
        Ok(data) => event.data(data),
        Err(e) => event.data(format!(
            "{{\"revision\":{},\"error\":{:?}}}",
            info.revision,
            e.to_string()
        )),
    }
}
