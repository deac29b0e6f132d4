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

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use rewind_server::{ClientCommand, ClientOptions, ServeArgs};

/// The exit codes, shown at the end of `rewind --help` (the table of
/// `rewind_server::exit_code`).
const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  refused or failed (the server's message); a watched tenant deleted or failed;
     a deployment not promoted
  2  the command line does not parse (nothing was sent)
  3  transaction: a step failed and it rolled back per on_failure
  4  transaction: a step failed and no rollback could be made (the steps before it stay)
  5  watch: the server ended the stream; resume with --after N (N: the last revision seen)";

/// rewind: multi-tenant snapshot & rollback runtime.
#[derive(Parser)]
#[command(name = "rewind", version, after_help = EXIT_CODES)]
struct Cli {
    /// The client options may also come before the subcommand.
    #[command(flatten)]
    client: LeadingClientOptions,
    /// Default: `serve` with its defaults.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The client options given before the subcommand (`rewind --json
/// tenants`); each client subcommand also takes them after its name, with
/// their environment variables and defaults.
#[derive(Args)]
struct LeadingClientOptions {
    /// URL of the rewind server (see a client subcommand's --help).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Bearer token (see a client subcommand's --help).
    #[arg(long)]
    token: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Why: recorded with the write (see a client subcommand's --help).
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (and /metrics) until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The command line: every client subcommand gets the [`ClientOptions`];
/// `serve` gets only its own.
fn command_line() -> clap::Command {
    let mut command = Cli::command();
    let clients: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .filter(|name| name != "serve")
        .collect();
    for name in clients {
        command = command.mut_subcommand(name, |sub| {
            // Keep the subcommand's own description, not the options'.
            let about = sub.get_about().cloned();
            let long_about = sub.get_long_about().cloned();
            let sub = ClientOptions::augment_args(sub);
            let sub = match about {
                Some(about) => sub.about(about),
                None => sub,
            };
            match long_about {
                Some(long_about) => sub.long_about(long_about),
                None => sub,
            }
        });
    }
    command
}

/// The client options: those after the subcommand, else those before it,
/// else the environment and the defaults.
fn client_options(leading: LeadingClientOptions, matches: &ArgMatches) -> ClientOptions {
    let mut options = ClientOptions::from_arg_matches(matches).unwrap_or_else(|e| e.exit());
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if !given("server") {
        if let Some(server) = leading.server {
            options.server = server;
        }
    }
    if !given("token") && leading.token.is_some() {
        options.token = leading.token;
    }
    if !given("reason") && leading.reason.is_some() {
        options.reason = leading.reason;
    }
    options.json |= leading.json;
    options
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = command_line().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let outcome = match cli.command {
        Some(Command::Client(command)) => {
            let sub = matches.subcommand().map(|(_, sub)| sub).unwrap_or(&matches);
            let options = client_options(cli.client, sub);
            rewind_server::run_client(options, command).await
        }
        Some(Command::Serve(args)) => {
            let leading = &cli.client;
            if leading.server.is_some()
                || leading.token.is_some()
                || leading.reason.is_some()
                || leading.json
            {
                command_line()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        "--server, --token, --reason and --json are options of the client \
                         commands, not of `rewind serve`",
                    )
                    .exit();
            }
            serve(args).await
        }
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
            ExitCode::from(rewind_server::exit_code(&e))
        }
    }
}

async fn serve(args: Box<ServeArgs>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    rewind_server::run_serve(*args).await
}
