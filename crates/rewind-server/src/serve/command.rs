//! `rewind serve`: its flags and the life of the process — open the
//! journal, recover, serve, then on SIGINT or SIGTERM stop accepting, drain
//! the runtime and close the journal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rewind_core::Doc;
use rewind_runtime::{Journal, Runtime};
use rewind_store::{SqliteJournal, SqliteOptions};
use tokio::net::TcpListener;

use crate::api::{Api, ApiConfig};
use crate::auth::Tokens;
use crate::http_metrics::install_metrics_recorder;
use crate::limits::Limits;
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
    /// Token file: lines `admin <token>` and `tenant <tenant_id> <token>`.
    /// The admin token may also come from REWIND_ADMIN_TOKEN.
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
    /// Most tenants (429 past it).
    #[arg(long, default_value_t = Limits::default().max_tenants)]
    pub max_tenants: usize,
    /// Named snapshots kept per tenant; when all are protected, 429.
    #[arg(long, default_value_t = Limits::default().max_snapshots)]
    pub max_snapshots: usize,
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_patch_ops: self.max_patch_ops,
            max_transaction_steps: self.max_transaction_steps,
            max_depth: self.max_depth,
            max_tenants: self.max_tenants,
            max_snapshots: self.max_snapshots,
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
    let limits = args.limits();
    limits.validate().map_err(anyhow::Error::msg)?;
    let metrics = install_metrics_recorder().map_err(anyhow::Error::msg)?;

    let journal = if args.memory {
        None
    } else {
        std::fs::create_dir_all(&args.data)
            .with_context(|| format!("cannot create the data directory {}", args.data.display()))?;
        let path = args.data.join(JOURNAL_FILE);
        let journal = SqliteJournal::open(&path, SqliteOptions::default())
            .with_context(|| format!("cannot open the journal {}", path.display()))?;
        Some(Arc::new(journal))
    };
    let mut builder = Runtime::<Doc>::builder();
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
        metrics: Some(metrics.clone()),
        ..ApiConfig::default()
    };
    let api = Api::new(runtime.clone(), config).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr()?;
    // On stdout, for scripts that start the server on port 0.
    println!("rewind listening on http://{local}");
    tracing::info!(
        addr = %local,
        auth = api_auth(&args),
        storage = if args.memory { "memory" } else { "sqlite" },
        "serving"
    );

    let served = serve(listener, api, Some(metrics), shutdown_signal()).await;
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

fn api_auth(args: &ServeArgs) -> &'static str {
    if args.tokens.is_some() || std::env::var_os(ADMIN_TOKEN_ENV).is_some() {
        "bearer tokens"
    } else {
        "none (loopback only)"
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}
