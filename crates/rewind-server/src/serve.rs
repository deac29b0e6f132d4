//! Serving an [`Api`] on a listener until a shutdown signal, and the rule
//! that keeps an unauthenticated server on loopback.
//!
//! Connections are driven here rather than by `axum::serve`, so that slow
//! and idle clients cannot hold the server (`serve/connection.rs`: header,
//! idle and body timeouts), no more than `max_connections` are served at
//! once (past the cap a small overflow lane answers `/healthz` and 503s the
//! rest), and refusals sent before a body was read reach the client
//! (`serve/drain.rs`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::api::Api;
use crate::auth::Tokens;

mod connection;
mod drain;

/// Refuses a non-loopback address when no token is configured: without
/// authentication anyone who can reach the port could change every tenant.
pub fn check_listen(addr: SocketAddr, tokens: &Tokens) -> Result<(), String> {
    if tokens.is_configured() || addr.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to listen on {addr} without authentication: anyone who can reach it could \
         change every tenant. Set REWIND_ADMIN_TOKEN or pass --tokens FILE, or listen on a \
         loopback address such as 127.0.0.1:7070"
    ))
}

/// Connections past `max_connections` that get their request line read,
/// so `/healthz` answers (everything else is 503): at most this many at
/// once, each for at most [`OVERFLOW_HEAD_TIMEOUT`].
fn overflow_lane(max_connections: usize) -> usize {
    (max_connections / 16).clamp(4, 64)
}

/// How long a connection of the overflow lane may take to send its request
/// line: a client sends it as soon as it is connected.
const OVERFLOW_HEAD_TIMEOUT: Duration = Duration::from_millis(250);

/// Past the overflow lane, connections wait at most [`REFUSAL_WAIT`] for
/// their first bytes, at most this many at once; beyond them a connection
/// is answered from what it has already sent, without waiting.
const REFUSAL_LANE: usize = 128;

/// See [`REFUSAL_LANE`].
const REFUSAL_WAIT: Duration = Duration::from_millis(20);

/// Serves `api` on `listener` until `shutdown` completes, then stops
/// gracefully: no new connections, watch streams end, idle connections
/// close, requests in flight are answered. `metrics`, if given, gets its
/// upkeep meanwhile. Draining the runtime and closing the journal are the
/// caller's next steps.
///
/// The connection limits and timeouts are those of the API's
/// [`Limits`](crate::Limits).
pub async fn serve(
    listener: TcpListener,
    api: Api,
    metrics: Option<PrometheusHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = metrics.map(|handle| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        })
    });
    let limits = *api.limits();
    let lanes = Lanes {
        main: Arc::new(Semaphore::new(limits.max_connections)),
        overflow: Arc::new(Semaphore::new(overflow_lane(limits.max_connections))),
        refusal: Arc::new(Semaphore::new(REFUSAL_LANE)),
    };
    let edge = Arc::new(connection::Edge {
        router: api.router(),
        limits,
        stop: watch::channel(false).0,
    });
    let refusals = RefusalLog::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to
                // be given back rather than spin.
                refusals.note(&format!("cannot accept a connection: {error}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if let Ok(permit) = Arc::clone(&lanes.main).try_acquire_owned() {
            tokio::spawn(connection::serve(Arc::clone(&edge), stream, permit));
        } else if let Ok(permit) = Arc::clone(&lanes.overflow).try_acquire_owned() {
            refusals.note("connection limit reached: answering /healthz only");
            let max = limits.max_connections;
            tokio::spawn(connection::overflow(
                stream,
                permit,
                max,
                OVERFLOW_HEAD_TIMEOUT,
            ));
        } else if let Ok(permit) = Arc::clone(&lanes.refusal).try_acquire_owned() {
            refusals.note("connection limit reached: answering /healthz only");
            let max = limits.max_connections;
            tokio::spawn(connection::overflow(stream, permit, max, REFUSAL_WAIT));
        } else {
            refusals.note("connection limit reached: answering /healthz only");
            connection::refuse_at_once(stream, limits.max_connections);
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
    drop(listener);
    api.close_streams();
    edge.stop.send_replace(true);
    // Every connection holds a permit of its lane until it ends.
    let main = lanes.main.acquire_many(permits(limits.max_connections));
    let overflow = lanes
        .overflow
        .acquire_many(permits(overflow_lane(limits.max_connections)));
    let refusal = lanes.refusal.acquire_many(permits(REFUSAL_LANE));
    let _ = tokio::join!(main, overflow, refusal);
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    Ok(())
}

fn permits(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// The connection semaphores: each connection holds one permit of its lane.
struct Lanes {
    /// Connections served: `max_connections`.
    main: Arc<Semaphore>,
    /// Past the cap, given [`OVERFLOW_HEAD_TIMEOUT`] for their request line.
    overflow: Arc<Semaphore>,
    /// Past the overflow lane, given [`REFUSAL_WAIT`].
    refusal: Arc<Semaphore>,
}

/// Errors of `accept` that concern one connection only (it was reset
/// before it was accepted); any other is a resource shortage.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        error.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    )
}

/// Logs refused connections at most once a second, with how many there
/// were, so a flood does not become a flood of log lines.
#[derive(Default)]
struct RefusalLog {
    /// Seconds since the Unix epoch of the last line.
    last: AtomicU64,
    /// Refusals since the last line.
    count: AtomicU64,
}

impl RefusalLog {
    fn note(&self, what: &str) {
        let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.last.swap(now, Ordering::Relaxed) != now {
            self.count.store(0, Ordering::Relaxed);
            tracing::warn!(connections = count, "{what}");
        }
    }
}

pub(crate) mod command;
