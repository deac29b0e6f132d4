//! `rewind`: the rewind server and its command line.
//!
//! `rewind serve` serves the HTTP API (see the `rewind_server` crate docs
//! for the routes): `cargo run --release -- serve --listen 127.0.0.1:7070
//! --data ./rewind-data`. Without a subcommand `rewind` serves with the
//! defaults, so `cargo run --release` at the workspace root starts it.
//!
//! Every other subcommand is a client of a running server (`--server`,
//! `REWIND_SERVER`, default `http://127.0.0.1:7070`; token from
//! `REWIND_TOKEN`):
//!
//! ```text
//! rewind create acme_corp --state stable.json
//! rewind snapshot acme_corp pre_v2_deploy
//! rewind patch acme_corp deploy_v2.json
//! rewind diff acme_corp snapshot:pre_v2_deploy head
//! rewind rollback acme_corp --to-snapshot pre_v2_deploy
//! rewind history acme_corp
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rewind_server::{ClientCommand, ClientOptions, ServeArgs};

/// rewind: multi-tenant snapshot & rollback runtime.
#[derive(Parser)]
#[command(name = "rewind", version)]
struct Cli {
    #[command(flatten)]
    client: ClientOptions,
    /// Default: `serve` with its defaults.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (and /metrics) until SIGINT or SIGTERM.
    Serve(ServeArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Client(command)) => rewind_server::run_client(cli.client, command).await,
        Some(Command::Serve(args)) => serve(args).await,
        None => match Cli::try_parse_from(["rewind", "serve"]) {
            Ok(Cli {
                command: Some(Command::Serve(args)),
                ..
            }) => serve(args).await,
            _ => Err(anyhow::anyhow!(
                "the default `serve` arguments do not parse"
            )),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rewind: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    rewind_server::run_serve(args).await
}
