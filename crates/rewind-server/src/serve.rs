//! Serving an [`Api`] on a listener until a shutdown signal, and the rule
//! that keeps an unauthenticated server on loopback.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::api::Api;
use crate::auth::Tokens;

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

/// Serves `api` on `listener` until `shutdown` completes, then stops
/// gracefully: no new connections, watch streams end, requests in flight
/// are answered. `metrics`, if given, gets its upkeep meanwhile. Draining
/// the runtime and closing the journal are the caller's next steps.
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
    let router = api.router();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing requests in flight");
            api.close_streams();
        })
        .await;
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    served
}

pub(crate) mod command;
