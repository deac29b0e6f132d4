//! `GET /v1/tenants/{t}/watch`: server-sent events, one per new revision,
//! resumable with `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use rewind_core::{Doc, RevisionInfo, TenantId, Timeline};
use rewind_runtime::{WatchEnd, WatchError, Watcher};
use serde_json::json;
use tokio::sync::watch;

use super::access::TenantAccess;
use super::Api;
use crate::error::ApiError;

/// Every revision committed after the request, as an event `revision` with
/// `id: <revision>` and the revision's JSON (`{"revision", "at", "cause",
/// "author"?, "message"?}`) as data.
///
/// With `Last-Event-ID: N` (a reconnecting client sends the last id it
/// got), the stream first replays every revision after N still in the
/// history window, then goes on live: nothing is missed or repeated. When
/// revisions after N have left the window, an event `gap` (`{"after": N,
/// "oldest": R}`: revisions N+1 to R-1 are gone) comes first. When N is
/// beyond the head (the tenant was deleted and created again since), an
/// event `reset` (`{"after": N, "head": H}`, `id: H`) comes first: the
/// client's copy is of another tenant, so it re-reads the state at H; the
/// revisions after H follow. A client that falls behind the live buffer
/// is caught up from the window the same way.
///
/// The stream ends when the server stops (no event: reconnect with
/// `Last-Event-ID`), or after an event that says why: `deleted`
/// (`{"tenant", "revision"}`: the tenant was deleted; `revision` is the
/// last one this stream sent, or the head when it began) or `failed`
/// (`{"tenant"}`: the tenant failed for good and serves nothing). Both
/// carry an empty `id`, which clears the client's last event id: a
/// reconnect does not resume into a tenant created later under the same
/// name.
pub(super) async fn watch(
    TenantAccess(tenant): TenantAccess,
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let last = last_event_id(&headers)?;
    // Subscribed before the window is read: a revision committed in
    // between is in one or the other (or both: `delivered` dedupes).
    let revisions = tenant.watch();
    let delivered = tenant.revision().get();
    let timeline = tenant.timeline();
    let mut stream = Watch {
        api: api.clone(),
        tenant: tenant.id().clone(),
        revisions,
        closing: api.shared.closing.subscribe(),
        backlog: VecDeque::new(),
        delivered,
        ended: false,
    };
    drop(tenant);
    if let Some(last) = last {
        stream.catch_up(&timeline, last);
    }
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next().await?;
        Some((Ok(event), stream))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// The state of one watch stream.
struct Watch {
    /// To find the tenant's window again after falling behind. No handle
    /// is held: a deleted tenant must be free to go.
    api: Api,
    tenant: TenantId,
    revisions: Watcher,
    closing: watch::Receiver<bool>,
    /// Events to send before the next live one.
    backlog: VecDeque<Event>,
    /// The newest revision sent, or the head when the stream began: live
    /// revisions up to it are not sent (again).
    delivered: u64,
    /// The tenant's revisions ended: the stream ends once the backlog
    /// (which says why) is sent.
    ended: bool,
}

impl Watch {
    /// Queues what came after revision `last` from the window of
    /// `timeline`.
    fn catch_up(&mut self, timeline: &Timeline<Doc>, last: u64) {
        let head = timeline.revision().get();
        if last > head {
            // Not a revision of this tenant: every live one up to `last`
            // would be taken for one already sent, and the client would
            // get nothing. Start again from the head.
            self.backlog.push_back(
                Event::default()
                    .event("reset")
                    .id(head.to_string())
                    .data(json!({"after": last, "head": head}).to_string()),
            );
            self.delivered = head;
            return;
        }
        let oldest = timeline.oldest_revision().get();
        if last.saturating_add(1) < oldest {
            self.backlog.push_back(
                Event::default()
                    .event("gap")
                    .id((oldest - 1).to_string())
                    .data(json!({"after": last, "oldest": oldest}).to_string()),
            );
        }
        let mut delivered = last;
        for info in timeline.history().filter(|i| i.revision.get() > last) {
            self.backlog.push_back(revision_event(info));
            delivered = info.revision.get();
        }
        self.delivered = delivered;
    }

    /// The next event; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.backlog.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let received = tokio::select! {
                // Also ends when the API is dropped.
                _ = self.closing.wait_for(|closed| *closed) => return None,
                received = self.revisions.recv() => received,
            };
            match received {
                Ok(info) => {
                    let revision = info.revision.get();
                    if revision <= self.delivered {
                        continue;
                    }
                    self.delivered = revision;
                    return Some(revision_event(&info));
                }
                // Missed live events: take them from the window. A tenant
                // that cannot be found any more was deleted or stopped: the
                // watcher's end comes next and says which.
                Err(WatchError::Lagged(_)) => {
                    let Ok(runtime) = self.api.runtime_for(self.tenant.as_str()) else {
                        continue;
                    };
                    let Ok(tenant) = runtime.tenant(self.tenant.as_str()).await else {
                        continue;
                    };
                    let timeline = tenant.timeline();
                    drop(tenant);
                    self.catch_up(&timeline, self.delivered);
                }
                Err(WatchError::Ended(end)) => {
                    self.ended = true;
                    let (event, data) = match end {
                        WatchEnd::Deleted => (
                            "deleted",
                            json!({"tenant": self.tenant, "revision": self.delivered}),
                        ),
                        WatchEnd::Failed => ("failed", json!({"tenant": self.tenant})),
                        // The runtime stops with the server: end without a
                        // word, so the client reconnects where it was.
                        _ => return None,
                    };
                    self.backlog
                        .push_back(Event::default().event(event).id("").data(data.to_string()));
                }
                Err(_) => return None,
            }
        }
    }
}

/// The revision of a `Last-Event-ID` header, if any.
fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let invalid =
        || ApiError::invalid("Last-Event-ID must be a revision number, the id of an event");
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| invalid())
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
