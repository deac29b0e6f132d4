//! [`Draining`]: a request body that, when it is dropped before the end (a
//! 413 over the size limit, a 401 or 404 answered before the body was
//! read), goes on reading and discarding the rest for a bounded size and
//! time.
//!
//! Closing a socket with unread bytes makes the kernel send a reset, which
//! destroys the answer not yet read by a client still sending (Python's
//! `urllib` gets `Broken pipe` instead of the 413). Draining while hyper
//! writes the answer lets every client read it: nginx's "lingering close".
//! Memory stays bounded: each chunk is dropped as it comes.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use super::connection::InFlight;

/// A request body drained on drop; see the module docs.
pub(crate) struct Draining<B: HttpBody<Data = Bytes> + Unpin + Send + 'static> {
    inner: Option<B>,
    /// The end was reached (or the body failed): nothing to drain.
    finished: bool,
    /// Keeps the connection counted as busy while draining.
    in_flight: Option<InFlight>,
    max_bytes: usize,
    timeout: Duration,
}

impl<B: HttpBody<Data = Bytes> + Unpin + Send + 'static> Draining<B> {
    pub(crate) fn new(inner: B, in_flight: InFlight, max_bytes: usize, timeout: Duration) -> Self {
        Draining {
            inner: Some(inner),
            finished: false,
            in_flight: Some(in_flight),
            max_bytes,
            timeout,
        }
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin + Send + 'static> HttpBody for Draining<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin + Send + 'static> Drop for Draining<B> {
    fn drop(&mut self) {
        if self.is_end_stream() {
            return;
        }
        let (Some(body), Ok(runtime)) = (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let in_flight = self.in_flight.take();
        let (max_bytes, timeout) = (self.max_bytes, self.timeout);
        runtime.spawn(async move {
            let _ = tokio::time::timeout(timeout, discard(body, max_bytes)).await;
            drop(in_flight);
        });
    }
}

/// Reads and drops chunks until the end, an error, or `max_bytes`.
async fn discard<B: HttpBody<Data = Bytes> + Unpin>(mut body: B, max_bytes: usize) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            seen = seen.saturating_add(data.len());
            if seen > max_bytes {
                return;
            }
        }
    }
}
