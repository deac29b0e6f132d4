//! `rewind serve`: its flags and the life of the process — open the
//! journal, recover, serve, then on SIGINT or SIGTERM stop accepting, drain
//! the runtime and close the journal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rewind_core::Doc;
use rewind_runtime::deploy::CheckHosts;
use rewind_runtime::{Journal, JournalError, Runtime, TenantConfig};
use rewind_store::{SqliteJournal, SqliteOptions};
use tokio::net::{TcpListener, TcpSocket};

use crate::api::{Api, ApiConfig};
use crate::auth::Tokens;
use crate::http_metrics::install_metrics_recorder;
use crate::limits::{parse_duration, show_duration, Limits};
use crate::serve::{check_listen, serve};

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "REWIND_ADMIN_TOKEN";

/// The journal file inside the data directory.
pub const JOURNAL_FILE: &str = "rewind.db";

/// Flags of `rewind serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Without a token only loopback addresses are
    /// allowed.
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// Data directory; the SQLite journal is `rewind.db` in it (created if
    /// missing).
    #[arg(long, default_value = "./rewind-data")]
    pub data: PathBuf,
    /// Keep everything in memory: a restart loses all tenants.
    #[arg(long, conflicts_with = "data")]
    pub memory: bool,
    /// Token file: lines `admin <token>` and `tenant <tenant_id> <token>`,
    /// each optionally ending in `label=NAME`: who the token's writes are
    /// recorded as. The admin token may also come from REWIND_ADMIN_TOKEN.
    #[arg(long, value_name = "FILE")]
    pub tokens: Option<PathBuf>,
    /// Largest request body, in bytes (413 past it).
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Most operations in one JSON Patch (413 past it).
    #[arg(long, default_value_t = Limits::default().max_patch_ops)]
    pub max_patch_ops: usize,
    /// Most steps in one transaction (413 past it).
    #[arg(long, default_value_t = Limits::default().max_transaction_steps)]
    pub max_transaction_steps: usize,
    /// Deepest nesting of a document, at most 100 (413 past it).
    #[arg(long, default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,
    /// Most tenants, active and passivated (429 past it).
    #[arg(long, default_value_t = Limits::default().max_tenants)]
    pub max_tenants: usize,
    /// Most tenants kept in memory: past it the least recently used idle
    /// one is passivated (written out already; read back from the journal
    /// on its next request). Ignored with --memory, where nothing is
    /// passivated.
    #[arg(long, value_name = "N", default_value_t = rewind_runtime::DEFAULT_MAX_ACTIVE)]
    pub max_active: usize,
    /// A tenant idle this long is passivated (`never` to keep idle tenants
    /// in memory until --max-active is reached). Applies to tenants created
    /// from now on: each tenant keeps the value it was created with.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = passivate_after)]
    pub passivate_after: PassivateAfter,
    /// Named snapshots kept per tenant; when all are protected, 429.
    #[arg(long, default_value_t = Limits::default().max_snapshots)]
    pub max_snapshots: usize,
    /// Bytes of history (estimated: reverse deltas and unshared nodes) a
    /// tenant may hold beyond its current state; past it the oldest
    /// revisions and auto snapshots are dropped first, then unprotected
    /// named ones, never protected ones. Default: no bound. Applies to
    /// tenants created from now on.
    #[arg(long, value_name = "BYTES")]
    pub history_budget: Option<usize>,
    /// Most connections served at once; past it a connection gets 503 and
    /// is closed (GET /healthz is still answered). Default: 4096, or what
    /// fits the open-file limit when that is lower (720 of 1024; logged at
    /// start).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Time a client has to send a complete request head (from the
    /// connection's start, or from the head's first byte on a kept-alive
    /// connection); past it the connection is closed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection may wait for its next request.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub idle_timeout: Duration,
    /// Time a client has to send a request body (408 past it).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub body_read_timeout: Duration,
    /// Time a request may take to be answered (503 `timeout` past it).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub request_timeout: Duration,
    /// After a refusal sent before the body was read (such as 413), read
    /// and discard at most this many more bytes of it so the client can
    /// read the answer.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().drain_max_bytes)]
    pub drain_max_bytes: usize,
    /// ... for at most this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// A host the health checks of guarded deployments may fetch, as
    /// `HOST` (any port) or `HOST:PORT`; repeat it for more. The server
    /// fetches the checks' URLs itself, so without this flag every
    /// deployment with a check is refused (400): a client cannot make it
    /// reach an internal address.
    #[arg(long = "allow-check-host", value_name = "HOST[:PORT]")]
    pub allow_check_hosts: Vec<String>,
    /// Cluster mode: keep tenants in this PostgreSQL database, shared with
    /// the other nodes (`postgres://user@host:5432/db`; the schema is
    /// created on first use). Without it the SQLite journal in --data is
    /// used.
    #[arg(
        long,
        value_name = "URL",
        env = "REWIND_POSTGRES",
        conflicts_with = "memory"
    )]
    pub postgres: Option<String>,
    /// Cluster mode: this node's id, stable across its restarts (default:
    /// the host name and the listening port).
    #[arg(long, value_name = "ID", requires = "postgres")]
    pub node_id: Option<String>,
    /// Cluster mode: the URL other nodes forward requests to (default:
    /// `http://` and the listening address, which must then not be a
    /// wildcard such as 0.0.0.0).
    #[arg(long, value_name = "URL", requires = "postgres")]
    pub advertise: Option<String>,
    /// Cluster mode: the shard count, fixed when the database is first
    /// used; a node given another count is refused.
    #[arg(long, value_name = "N", default_value_t = crate::cluster::DEFAULT_SHARDS)]
    pub shards: u32,
    /// Cluster mode: how long a node owns its shards without renewing them
    /// (renewed every third of it). A dead node's shards move after it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub lease: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// `--passivate-after`: a duration, or `never`.
#[derive(Clone, Copy, Debug)]
pub struct PassivateAfter(pub Option<Duration>);

/// The defaults of new tenants the flags set.
fn tenant_config(args: &ServeArgs) -> TenantConfig {
    let mut tenant = TenantConfig {
        passivate_after: args.passivate_after.0,
        ..TenantConfig::default()
    };
    tenant.timeline.history_budget = args.history_budget;
    tenant
}

fn passivate_after(text: &str) -> Result<PassivateAfter, String> {
    if text.trim() == "never" {
        return Ok(PassivateAfter(None));
    }
    parse_duration(text).map(|after| PassivateAfter(Some(after)))
}

impl ServeArgs {
    /// The limits these flags give, with `fd_limit` the process's
    /// open-file limit (it sizes the default connection cap).
    fn limits(&self, fd_limit: Option<u64>) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_patch_ops: self.max_patch_ops,
            max_transaction_steps: self.max_transaction_steps,
            max_depth: self.max_depth,
            max_tenants: self.max_tenants,
            max_snapshots: self.max_snapshots,
            max_connections: self
                .max_connections
                .unwrap_or_else(|| Limits::max_connections_for(fd_limit)),
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_read_timeout,
            request_timeout: self.request_timeout,
            drain_max_bytes: self.drain_max_bytes,
            drain_timeout: self.drain_timeout,
        }
    }

    fn tokens(&self) -> Result<Tokens> {
        let mut tokens = Tokens::none();
        if let Ok(admin) = std::env::var(ADMIN_TOKEN_ENV) {
            if !admin.is_empty() {
                tokens
                    .add_admin(admin.trim())
                    .map_err(|e| anyhow::anyhow!("{ADMIN_TOKEN_ENV}: {e}"))?;
            }
        }
        if let Some(path) = &self.tokens {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            tokens
                .parse_file(&text)
                .map_err(|e| anyhow::anyhow!("token file {}: {e}", path.display()))?;
        }
        Ok(tokens)
    }
}

/// Runs `rewind serve` until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> Result<()> {
    let tokens = args.tokens()?;
    if let Err(refusal) = check_listen(args.listen, &tokens) {
        bail!(refusal);
    }
    let fd_limit = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _hard)| soft);
    let limits = args.limits(fd_limit);
    limits.validate().map_err(anyhow::Error::msg)?;
    tracing::info!(
        open_file_limit = fd_limit,
        max_connections = limits.max_connections,
        header_read_timeout = %show_duration(limits.header_read_timeout),
        idle_timeout = %show_duration(limits.idle_timeout),
        "connection limits"
    );
    if let Some(fd_limit) = fd_limit {
        if limits.max_connections as u64 > fd_limit {
            tracing::warn!(
                "--max-connections {} is above the open-file limit of {fd_limit}: past it \
                 connections fail instead of getting a 503",
                limits.max_connections
            );
        }
    }
    let metrics = install_metrics_recorder().map_err(anyhow::Error::msg)?;
    if let Some(url) = args.postgres.clone() {
        return run_cluster(&args, url, tokens, limits, metrics).await;
    }

    let journal = if args.memory {
        None
    } else {
        std::fs::create_dir_all(&args.data)
            .with_context(|| format!("cannot create the data directory {}", args.data.display()))?;
        let path = args.data.join(JOURNAL_FILE);
        let journal = SqliteJournal::open(&path, SqliteOptions::default()).map_err(|error| {
            let doing = match error {
                JournalError::AlreadyOpen { .. } => format!(
                    "the data directory {} is in use (is another `rewind serve` running on it?)",
                    args.data.display()
                ),
                _ => format!("cannot open the journal {}", path.display()),
            };
            anyhow::Error::new(error).context(doing)
        })?;
        Some(Arc::new(journal))
    };
    let tenant = tenant_config(&args);
    let mut builder = Runtime::<Doc>::builder()
        .tenant_defaults(tenant)
        .max_active(args.max_active)
        .check_hosts(CheckHosts::Only(args.allow_check_hosts.clone()));
    if let Some(journal) = &journal {
        builder = builder.journal(Arc::clone(journal) as Arc<dyn Journal>);
    }
    let runtime = builder.start().await.context("cannot start the runtime")?;
    let recovery = runtime.recovery();
    if journal.is_some() {
        tracing::info!(
            tenants = recovery.tenants,
            entries = recovery.entries,
            failures = recovery.failures.len(),
            "data directory {}",
            args.data.display()
        );
    }
    for (tenant, error) in &recovery.failures {
        tracing::error!(%tenant, %error, "tenant not recovered; it answers 503 until repaired");
    }

    let config = ApiConfig {
        tokens,
        limits,
        tenant,
        metrics: Some(metrics.clone()),
    };
    let api = Api::new(runtime.clone(), config).map_err(anyhow::Error::msg)?;
    let listener =
        listen(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let signals = shutdown_signal().context("installing the SIGINT and SIGTERM handlers")?;
    // On stdout, for scripts that start the server on port 0.
    println!("rewind listening on http://{local}");
    tracing::info!(
        addr = %local,
        auth = api_auth(&args),
        storage = if args.memory { "memory" } else { "sqlite" },
        "serving"
    );

    let served = serve(listener, api, Some(metrics), signals).await;
    // Drain: requests already accepted by tenants are handled, then the
    // actors stop.
    let drained = runtime.shutdown().await;
    drop(runtime);
    if let Some(journal) = journal {
        // The runtime's actors may still hold the journal for a moment; the
        // last holder commits what is queued when it lets go.
        match Arc::try_unwrap(journal) {
            Ok(journal) => {
                journal.close().context("closing the journal")?;
                tracing::info!("journal closed");
            }
            Err(shared) => {
                tracing::info!("journal closes when the last tenant actor lets go");
                drop(shared);
            }
        }
    }
    served.context("serving HTTP")?;
    drained.context("draining the runtime")?;
    tracing::info!("stopped");
    Ok(())
}

/// `rewind serve --postgres URL`: one node of a cluster.
async fn run_cluster(
    args: &ServeArgs,
    url: String,
    tokens: Tokens,
    limits: Limits,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<()> {
    let listener =
        listen(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    let advertise = match &args.advertise {
        Some(advertise) => advertise.clone(),
        None if local.ip().is_unspecified() => bail!(
            "--advertise URL is needed when listening on {local}: the other nodes must know \
             where to forward requests"
        ),
        None => format!("http://{local}"),
    };
    let node_id = match &args.node_id {
        Some(id) => id.clone(),
        None => format!("{}-{}", host_name(), local.port()),
    };
    let tenant = tenant_config(args);
    let cluster = crate::cluster::Cluster::join(crate::cluster::ClusterConfig {
        url,
        node_id: node_id.clone(),
        advertise: advertise.clone(),
        shards: args.shards,
        lease: args.lease,
        tenant,
        max_active: args.max_active,
        check_hosts: CheckHosts::Only(args.allow_check_hosts.clone()),
    })
    .await
    .context("cannot join the cluster")?;
    let config = ApiConfig {
        tokens,
        limits,
        tenant,
        metrics: Some(metrics.clone()),
    };
    let api = Api::cluster(cluster.clone(), config).map_err(anyhow::Error::msg)?;
    let signals = shutdown_signal().context("installing the SIGINT and SIGTERM handlers")?;
    println!("rewind listening on http://{local}");
    tracing::info!(
        addr = %local,
        node = %node_id,
        advertise = %advertise,
        auth = api_auth(args),
        storage = "postgres",
        "serving"
    );
    let served = serve(listener, api, Some(metrics), signals).await;
    cluster.shutdown().await;
    served.context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

/// This host's name, for the default node id.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned())
}

/// Connections the kernel queues before they are accepted. The usual 128
/// fills within milliseconds when many clients connect at once, and every
/// connection past it waits a second for its SYN to be sent again.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

fn api_auth(args: &ServeArgs) -> &'static str {
    if args.tokens.is_some() || std::env::var_os(ADMIN_TOKEN_ENV).is_some() {
        "bearer tokens"
    } else {
        "none (loopback only)"
    }
}

/// Listens for SIGINT (Ctrl-C) and SIGTERM from now on; the future
/// completes on the first. The listeners are registered here, before the
/// server announces its address: a signal that arrives right after the
/// announcement must stop the server gracefully, not take the default
/// action and kill it.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received");
            } else {
                std::future::pending::<()>().await;
            }
        })
    }
}
