//! One client connection: HTTP/1 driven by hyper, watched for the header
//! and idle timeouts, its requests handed to the router with their bodies
//! wrapped in [`Draining`].
//!
//! hyper's own `header_read_timeout` starts whenever hyper waits for a head,
//! so it would also cut idle keep-alive connections; the watch here tells
//! the two apart. It keeps one timer per connection, reset when it fires or
//! when the last request in flight ends, so thousands of idle connections
//! cost thousands of timers, not thousands of wake-ups a second.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tower::ServiceExt;

use super::drain::Draining;
use crate::limits::Limits;

/// What every connection shares.
pub(super) struct Edge {
    pub(super) router: Router,
    pub(super) limits: Limits,
    /// Becomes `true` when the server stops: connections finish their
    /// request in flight, then close.
    pub(super) stop: watch::Sender<bool>,
}

/// What the watch of one connection needs to know, updated by its reads
/// and its requests. Times are milliseconds since the connection started.
pub(crate) struct Activity {
    started: Instant,
    /// Requests being handled or answered (their response body not yet
    /// sent), and bodies being drained.
    in_flight: AtomicUsize,
    /// Whether a request head was ever received.
    served: AtomicBool,
    /// When the last request in flight ended.
    idle_since: AtomicU64,
    /// When the first byte of the next head arrived, plus one; 0 when none
    /// has.
    head_started: AtomicU64,
    /// Told when the last request in flight ends: the idle deadline may be
    /// sooner than the one the watch sleeps until.
    settled: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            settled: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes arrived: if no request is in flight, they begin a head.
    fn read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let now = self.now() + 1;
            let _ = self
                .head_started
                .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// When the connection must close unless something happens first;
    /// `None` while a request is in flight (the request's own limits
    /// apply).
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let at =
            |millis: u64, limit: Duration| self.started + Duration::from_millis(millis) + limit;
        if !self.served.load(Ordering::SeqCst) {
            return Some(at(0, limits.header_read_timeout));
        }
        match self.head_started.load(Ordering::SeqCst) {
            0 => Some(at(
                self.idle_since.load(Ordering::SeqCst),
                limits.idle_timeout,
            )),
            started => Some(at(started - 1, limits.header_read_timeout)),
        }
    }
}

/// Counts as a request in flight of its connection while it lives.
pub(crate) struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.served.store(true, Ordering::SeqCst);
        activity.head_started.store(0, Ordering::SeqCst);
        InFlight(Arc::clone(activity))
    }
}

impl Clone for InFlight {
    fn clone(&self) -> Self {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(&self.0))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), Ordering::SeqCst);
        if activity.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            activity.settled.notify_one();
        }
    }
}

/// The TCP stream, telling [`Activity`] when bytes arrive.
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Serves one connection of the main lane until the client closes it, a
/// timeout closes it, or the server stops.
pub(super) async fn serve(edge: Arc<Edge>, stream: TcpStream, permit: OwnedSemaphorePermit) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        stream,
        activity: Arc::clone(&activity),
    });
    let service = {
        let edge = Arc::clone(&edge);
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let guard = InFlight::start(&activity);
            let edge = Arc::clone(&edge);
            async move {
                let limits = &edge.limits;
                let request = request.map(|body| {
                    Body::new(Draining::new(
                        body,
                        guard.clone(),
                        limits.drain_max_bytes,
                        limits.drain_timeout,
                    ))
                });
                let response = match edge.router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // The request stays in flight until its answer is sent.
                let response = response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _in_flight = &guard;
                        frame
                    }))
                });
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut http = http1::Builder::new();
    // The watch below does it, telling idle connections apart.
    http.header_read_timeout(None).keep_alive(true);
    let connection = http.serve_connection(io, service);
    tokio::pin!(connection);

    let mut stop = edge.stop.subscribe();
    let mut stopping = false;
    let recheck = edge.limits.header_read_timeout;
    let timer = tokio::time::sleep_until(
        activity
            .deadline(&edge.limits)
            .unwrap_or_else(|| Instant::now() + recheck),
    );
    tokio::pin!(timer);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended");
                }
                break;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.settled.notified() => {
                if let Some(deadline) = activity.deadline(&edge.limits) {
                    timer.as_mut().reset(deadline);
                }
            }
            () = &mut timer => {
                match activity.deadline(&edge.limits) {
                    Some(deadline) if deadline <= Instant::now() => {
                        tracing::debug!("closing a connection: header or idle timeout");
                        break;
                    }
                    Some(deadline) => timer.as_mut().reset(deadline),
                    None => timer.as_mut().reset(Instant::now() + recheck),
                }
            }
        }
    }
    drop(permit);
}

/// Answers one connection past the cap from its request line: `GET
/// /healthz` is answered, any other request gets 503 `overloaded`; then the
/// connection closes. The request head must arrive within `head_timeout`
/// (a client sends it as soon as it is connected), so a connection that
/// sends nothing, or half a head, holds its place only that long.
pub(super) async fn overflow(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    max_connections: usize,
    head_timeout: Duration,
) {
    let mut head = Vec::with_capacity(256);
    let _ = tokio::time::timeout(head_timeout, read_request_line(&stream, &mut head)).await;
    answer(&stream, &head, max_connections).await;
    drop(permit);
}

/// Reads until the end of the request line, at most 2 KiB.
async fn read_request_line(stream: &TcpStream, head: &mut Vec<u8>) {
    let mut chunk = [0u8; 2048];
    while !head.contains(&b'\n') && head.len() < chunk.len() {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut chunk) {
            Ok(0) => return,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Writes the answer to a connection past the cap: `/healthz` or 503.
async fn answer(stream: &TcpStream, head: &[u8], max_connections: usize) {
    let response = refusal(head, max_connections);
    let mut written = 0;
    while written < response.len() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(&response[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// Answers a connection past both lanes without waiting: what it already
/// sent is read without blocking, then as [`overflow`] does.
pub(super) fn refuse_at_once(stream: TcpStream, max_connections: usize) {
    let mut head = [0u8; 2048];
    let read = stream.try_read(&mut head).unwrap_or(0);
    let _ = stream.try_write(&refusal(&head[..read], max_connections));
}

/// The bytes answering a request past the cap whose head starts with
/// `head`.
fn refusal(head: &[u8], max_connections: usize) -> Vec<u8> {
    if head.starts_with(b"GET /healthz ") || head.starts_with(b"GET /healthz?") {
        canned(StatusCode::OK, &healthz_body(), "")
    } else {
        let body = over_capacity_body(max_connections);
        canned(StatusCode::SERVICE_UNAVAILABLE, &body, "Retry-After: 1\r\n")
    }
}

fn healthz_body() -> serde_json::Value {
    json!({"status": "ok"})
}

fn over_capacity_body(max_connections: usize) -> serde_json::Value {
    json!({"error": {
        "code": "overloaded",
        "message": format!(
            "the server is serving its limit of {max_connections} connections; retry later"
        ),
    }})
}

/// A small JSON answer as HTTP/1.1 bytes, with `Connection: close`.
fn canned(status: StatusCode, body: &serde_json::Value, extra_headers: &str) -> Vec<u8> {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
