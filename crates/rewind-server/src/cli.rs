//! The command line client of `rewind`: one subcommand per operation of the
//! HTTP API ([`ClientCommand`]), run against a server by [`run_client`].
//! Text for people by default (`cli/render.rs`), the server's JSON with
//! `--json`; a refusal exits non-zero with the server's message.
//!
//! Exit codes ([`exit_code`]), so a script can tell outcomes apart:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | refused or failed: the server's message (or why it could not be reached); also a watched tenant that was deleted or failed, and a deployment that did not promote |
//! | 2 | usage: the command line does not parse (nothing was sent) |
//! | 3 | `transaction` ran, a step failed, and it rolled back per `on_failure` (the report is printed; its revisions are in the history) |
//! | 4 | `transaction` ran, a step failed, and no rollback could be made (its checkpoint was never reached): the steps before the failure stay |
//! | 5 | `watch` ended because the server ended the stream (it is stopping) or the connection broke: resume with `--after N` |
//!
//! 3 and 4 are not 1 because the transaction was not refused: it wrote
//! revisions, and a script must look at the state rather than retry.
//!
//! [`run_client`]: crate::run_client

use std::io::{Read, Write};

use anyhow::{bail, Context, Result};
use hyper::Method;
use rewind_core::{SnapshotName, TenantId};
use serde_json::{json, Value};

use crate::client::{encode, Client, ClientError};

mod render;

/// Where the server is and how to talk to it: the options of every client
/// subcommand (`rewind serve` has its own).
#[derive(Clone, Debug, clap::Args)]
pub struct ClientOptions {
    /// URL of the rewind server.
    #[arg(
        long,
        env = "REWIND_SERVER",
        default_value = "http://127.0.0.1:7070",
        value_name = "URL"
    )]
    pub server: String,
    /// Bearer token: the admin token, or a tenant's for its own routes.
    #[arg(long, env = "REWIND_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Why: sent as X-Rewind-Reason and recorded with the write, beside
    /// who made it (shown by `history` and `watch`).
    #[arg(long, env = "REWIND_REASON", value_name = "TEXT")]
    pub reason: Option<String>,
}

/// A command that ran and did not end as asked, with its own exit code
/// ([`exit_code`]); the message says what happened and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unfinished {
    /// A transaction's step failed and it rolled back (exit 3).
    #[error("transaction {transaction} on '{tenant}' rolled back: step '{step}' failed: {error}")]
    RolledBack {
        /// The tenant.
        tenant: TenantId,
        /// The transaction's number.
        transaction: u64,
        /// The step that failed.
        step: String,
        /// Why.
        error: String,
    },
    /// A transaction's step failed and no rollback could be made (exit 4).
    #[error(
        "transaction {transaction} on '{tenant}' failed at step '{step}' and could not roll          back (its checkpoint was never reached): the steps before it stay: {error}"
    )]
    TransactionFailed {
        /// The tenant.
        tenant: TenantId,
        /// The transaction's number.
        transaction: u64,
        /// The step that failed.
        step: String,
        /// Why.
        error: String,
    },
    /// The server ended a watch, or its connection broke (exit 5).
    #[error("{why}; resume with `rewind watch {tenant}{}`", after.map(|n| format!(" --after {n}")).unwrap_or_default())]
    StreamEnded {
        /// The tenant watched.
        tenant: TenantId,
        /// What happened.
        why: String,
        /// The last revision seen (or given with `--after`).
        after: Option<u64>,
    },
}

/// The exit code of a client command's error: 3, 4 or 5 for an
/// [`Unfinished`] command (see the table in the module docs), else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<Unfinished>() {
        Some(Unfinished::RolledBack { .. }) => 3,
        Some(Unfinished::TransactionFailed { .. }) => 4,
        Some(Unfinished::StreamEnded { .. }) => 5,
        None => 1,
    }
}

/// Tenants asked for per page by `rewind tenants` (the server's maximum).
const PAGE: u64 = 1_000;

/// The client subcommands of `rewind`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// List the tenants and their revisions in id order (admin), following
    /// the server's pages.
    Tenants {
        /// List at most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Delete a tenant and its whole history (admin). Refused while it has
    /// attached forks, protected snapshots or a deployment in progress,
    /// unless the flags below say to.
    Delete {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// Destroy its protected snapshots and its deployment in progress
        /// with it.
        #[arg(long)]
        force: bool,
        /// Delete it even with attached forks: they live on, detached
        /// (they can no longer be promoted).
        #[arg(long)]
        detach_forks: bool,
    },
    /// Create a tenant at revision 0 (admin).
    Create {
        /// Tenant id: 1-64 of `A-Z a-z 0-9 _ . -`.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The initial state: a JSON file, or `-` for stdin (default `{}`).
        #[arg(long, value_name = "FILE|-")]
        state: Option<String>,
    },
    /// Print a tenant's state: the head, or a past one (reading changes
    /// nothing).
    Get {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// Which past state, if any.
        #[command(flatten)]
        at: ReadAt,
    },
    /// Apply an RFC 6902 JSON Patch (a JSON array), or with `--merge` an
    /// RFC 7396 merge patch, as a new revision.
    Patch {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The patch: a JSON file, or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        patch: String,
        /// FILE is a JSON Merge Patch (RFC 7396): its members replace or,
        /// when null, remove those of the state.
        #[arg(long)]
        merge: bool,
        /// Apply only if the head is this revision (412 otherwise).
        #[arg(long, value_name = "REVISION")]
        if_match: Option<u64>,
    },
    /// Take a named snapshot of the head, or delete one with `--delete`.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["name", "delete"])))]
    Snapshot {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// 1-128 of `A-Z a-z 0-9 . _ : -`, e.g. `pre_v2_deploy`.
        #[arg(value_parser = snapshot_name)]
        name: Option<SnapshotName>,
        /// Never pruned by retention, and not deletable until unprotected.
        #[arg(long, conflicts_with = "delete")]
        protected: bool,
        /// Delete this snapshot (auto, or named and unprotected).
        #[arg(long, value_name = "NAME", value_parser = snapshot_name)]
        delete: Option<SnapshotName>,
    },
    /// Protect a named snapshot: never pruned, not deletable.
    Protect {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The snapshot.
        #[arg(value_parser = snapshot_name)]
        name: SnapshotName,
    },
    /// Unprotect a named snapshot: retention may prune it, `snapshot
    /// --delete` can delete it.
    Unprotect {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The snapshot.
        #[arg(value_parser = snapshot_name)]
        name: SnapshotName,
    },
    /// Run a transaction: the steps of FILE (`{"steps": [{"name", "patch"}],
    /// "on_failure"?}`), a checkpoint after each, rolled back per
    /// `on_failure` when one fails. Prints each step. Exits 0 when it
    /// committed, 3 when a step failed and it rolled back, 4 when a step
    /// failed and no rollback could be made, 1 when it was refused.
    Transaction {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The transaction: a JSON file, or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        file: String,
    },
    /// List a tenant's snapshots, oldest first.
    Snapshots {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
    },
    /// Roll back: a new revision holding the target's state (the previous
    /// head stays in history and in a pre-rollback snapshot).
    Rollback {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The target.
        #[command(flatten)]
        to: RollbackTo,
        /// Show what the rollback would change without making it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what changed between two states.
    Diff {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// `head`, a revision number, `snapshot:NAME` or `time:RFC3339`.
        from: String,
        /// Same forms as FROM.
        to: String,
    },
    /// List revisions, newest first, with why each exists.
    History {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// At most this many (the server's default is 100).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Start a guarded deployment of FILE (a JSON Patch, or with --state a
    /// whole state) behind a protected `pre_<name>` snapshot, then follow
    /// it: one line per measurement. Exits 0 when it is promoted, 1 when it
    /// rolls back or is aborted.
    Deploy {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// The change: a JSON file, or `-` for stdin.
        #[arg(value_name = "FILE|-")]
        file: String,
        /// The deployment's name, e.g. `v2.0.0`.
        #[arg(long, value_parser = snapshot_name)]
        name: SnapshotName,
        /// FILE is a whole new state rather than a JSON Patch.
        #[arg(long)]
        state: bool,
        /// A health check, repeatable:
        /// `prometheus:URL:QUERY CONDITION` (e.g.
        /// `prometheus:http://127.0.0.1:9090:max(app_memory_usage_ratio) < 0.9`)
        /// or `http:URL[=STATUS]` (default status 200).
        #[arg(long = "check", value_name = "CHECK", value_parser = check_spec)]
        checks: Vec<Value>,
        /// Time between measurements (server default 60s).
        #[arg(long, value_name = "DURATION")]
        interval: Option<String>,
        /// How long to watch (server default 5m).
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
        /// Failed measurements tolerated (default 0).
        #[arg(long, value_name = "N")]
        failure_limit: Option<u32>,
        /// Errors of one check tolerated in a row (default 4).
        #[arg(long, value_name = "N")]
        error_limit: Option<u32>,
        /// Print the started deployment and exit instead of following it.
        #[arg(long)]
        detach: bool,
    },
    /// List a tenant's deployments, newest first.
    Deployments {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
    },
    /// Fork a tenant (admin): a new tenant NAME whose revision 0 is the
    /// parent's state at `--from`, sharing its structure.
    Fork {
        /// The tenant to fork.
        #[arg(value_parser = tenant_id)]
        parent: TenantId,
        /// The new tenant's id, e.g. `storefront.variant_b`.
        #[arg(value_parser = tenant_id)]
        name: TenantId,
        /// `head` (default), a revision number, `snapshot:NAME` or
        /// `time:RFC3339`.
        #[arg(long, value_name = "REF")]
        from: Option<String>,
    },
    /// Write a fork's head to its parent as one new revision.
    Promote {
        /// The fork.
        #[arg(value_parser = tenant_id)]
        fork: TenantId,
        /// `merge` (default): apply the fork's changes since its base onto
        /// the parent, refused when the parent changed the same paths;
        /// `replace`: the parent becomes exactly the fork's head.
        #[arg(long, value_enum, default_value_t = PromoteStrategyArg::Merge)]
        strategy: PromoteStrategyArg,
        /// Promote only if the parent's head is this revision (412
        /// otherwise).
        #[arg(long, value_name = "N")]
        if_parent_revision: Option<u64>,
    },
    /// List a tenant's forks, oldest first.
    Forks {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
    },
    /// Print one line per new revision until interrupted. Exits 1 when the
    /// tenant is deleted (or fails), 5 when the server ends the stream
    /// (saying which `--after` resumes it).
    Watch {
        /// The tenant.
        #[arg(value_parser = tenant_id)]
        tenant: TenantId,
        /// First print the revisions after this one still in the history
        /// window (resuming an earlier watch).
        #[arg(long, value_name = "REVISION")]
        after: Option<u64>,
    },
}

/// How `rewind promote` writes the fork to its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PromoteStrategyArg {
    /// Apply the fork's changes since its base onto the parent's head.
    Merge,
    /// Set the parent to exactly the fork's head.
    Replace,
}

impl PromoteStrategyArg {
    fn as_str(self) -> &'static str {
        match self {
            PromoteStrategyArg::Merge => "merge",
            PromoteStrategyArg::Replace => "replace",
        }
    }
}

/// At most one past state to read.
#[derive(Clone, Debug, clap::Args)]
#[group(multiple = false)]
pub struct ReadAt {
    /// The state at this revision.
    #[arg(long)]
    pub revision: Option<u64>,
    /// The state pinned by this snapshot.
    #[arg(long, value_parser = snapshot_name)]
    pub snapshot: Option<SnapshotName>,
    /// The state at this instant (RFC 3339, e.g. 2026-03-14T14:30:00Z).
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

/// Exactly one rollback target.
#[derive(Clone, Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct RollbackTo {
    /// A snapshot by name.
    #[arg(long, value_name = "NAME", value_parser = snapshot_name)]
    pub to_snapshot: Option<SnapshotName>,
    /// The newest snapshot taken at or before this instant (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub to_time: Option<String>,
    /// The newest snapshot of any kind (after a rollback: the state before
    /// it).
    #[arg(long)]
    pub to_latest: bool,
    /// A revision still in the history window.
    #[arg(long, value_name = "N")]
    pub to_revision: Option<u64>,
    /// A checkpoint of a recent transaction: `TX:NAME`, e.g. `3:start`.
    #[arg(long, value_name = "TX:NAME", value_parser = checkpoint)]
    pub to_checkpoint: Option<(u64, SnapshotName)>,
}

impl RollbackTo {
    /// The API's `to`.
    fn body(&self) -> Value {
        match self {
            RollbackTo {
                to_snapshot: Some(name),
                ..
            } => json!({"snapshot": name}),
            RollbackTo {
                to_time: Some(time),
                ..
            } => json!({"time": time}),
            RollbackTo {
                to_revision: Some(revision),
                ..
            } => json!({"revision": revision}),
            RollbackTo {
                to_checkpoint: Some((transaction, name)),
                ..
            } => json!({"checkpoint": {"transaction": transaction, "name": name}}),
            _ => json!({"latest": true}),
        }
    }
}

fn tenant_id(text: &str) -> Result<TenantId, String> {
    TenantId::new(text).map_err(|e| e.to_string())
}

fn snapshot_name(text: &str) -> Result<SnapshotName, String> {
    SnapshotName::new(text).map_err(|e| e.to_string())
}

/// `TX:NAME`: a transaction number and one of its checkpoints.
fn checkpoint(text: &str) -> Result<(u64, SnapshotName), String> {
    let (transaction, name) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not TX:NAME (e.g. 3:start)"))?;
    let transaction = transaction
        .parse()
        .map_err(|_| format!("'{transaction}' is not a transaction number"))?;
    Ok((transaction, snapshot_name(name)?))
}

/// A `--check`: `prometheus:URL:QUERY CONDITION` or `http:URL[=STATUS]`,
/// as the API's check object.
fn check_spec(text: &str) -> Result<Value, String> {
    if let Some(rest) = text.strip_prefix("http:") {
        let (url, status) = match rest.rsplit_once('=') {
            Some((url, status)) if status.parse::<u16>().is_ok() => {
                (url, status.parse::<u16>().unwrap_or(200))
            }
            _ => (rest, 200),
        };
        return Ok(json!({"http": {"url": url, "expect_status": status}}));
    }
    let rest = text.strip_prefix("prometheus:").ok_or_else(|| {
        format!("'{text}' is neither prometheus:URL:QUERY CONDITION nor http:URL[=STATUS]")
    })?;
    let scheme = rest
        .find("://")
        .ok_or_else(|| format!("'{rest}' does not start with a URL such as http://host:9090"))?;
    let authority = scheme + 3;
    // The URL ends at the first ':' after its authority that does not
    // start a port.
    let mut end = rest.len();
    let mut search = authority;
    while let Some(colon) = rest[search..].find(':').map(|i| search + i) {
        let next = rest[colon + 1..]
            .find(':')
            .map_or(rest.len(), |i| colon + 1 + i);
        let port = rest[colon + 1..next].split('/').next().unwrap_or("");
        if colon > authority && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            search = next;
            continue;
        }
        end = colon;
        break;
    }
    let (url, expression) = (&rest[..end], rest.get(end + 1..).unwrap_or(""));
    // The threshold is a number: the last '<' or '>' starts the condition.
    let at = expression.rfind(['<', '>']).ok_or_else(|| {
        format!("'{expression}' needs a condition after the query, e.g. 'up < 0.9'")
    })?;
    let (query, condition) = (expression[..at].trim(), expression[at..].trim());
    if query.is_empty() {
        return Err(format!("'{text}' has no query before its condition"));
    }
    condition
        .parse::<rewind_core::deploy::Condition>()
        .map_err(|e| e.to_string())?;
    Ok(json!({"prometheus": {"url": url, "query": query, "condition": condition}}))
}

/// Runs one client subcommand against the server of `options`, printing
/// its outcome on stdout. A refusal is an error carrying the server's
/// message and code.
pub async fn run(options: ClientOptions, command: ClientCommand) -> Result<()> {
    let client =
        Client::new(&options.server, options.token.clone())?.with_reason(options.reason.clone())?;
    let session = Session {
        client: &client,
        json: options.json,
    };
    session
        .run(command)
        .await
        .map_err(|error| match error.downcast_ref::<ClientError>() {
            Some(ClientError::Api { status: 401, .. }) => {
                let hint = if options.token.is_some() {
                    "check the token given with REWIND_TOKEN or --token"
                } else {
                    "give a token with REWIND_TOKEN or --token"
                };
                error.context(hint)
            }
            _ => error,
        })
}

/// One command's conversation with the server.
struct Session<'a> {
    client: &'a Client,
    /// Print the server's JSON rather than text.
    json: bool,
}

impl Session<'_> {
    async fn run(&self, command: ClientCommand) -> Result<()> {
        match command {
            ClientCommand::Tenants { limit } => {
                let mut tenants = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let left = limit.map(|limit| limit - tenants.len() as u64);
                    let page = left.unwrap_or(PAGE).clamp(1, PAGE);
                    let mut path = format!("/v1/tenants?limit={page}");
                    if let Some(after) = &after {
                        path.push_str(&format!("&after={after}"));
                    }
                    let reply = self.call(Method::GET, &path, None).await?;
                    let listed = reply.body["tenants"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    tenants.extend(listed);
                    after = reply.body["next"].as_str().map(str::to_owned);
                    let full = limit.is_some_and(|limit| tenants.len() as u64 >= limit);
                    if after.is_none() || full {
                        break;
                    }
                }
                if let Some(limit) = limit {
                    tenants.truncate(limit as usize);
                }
                self.print(&json!({ "tenants": tenants }), render::tenants)
            }
            ClientCommand::Create { tenant, state } => {
                let body = match state {
                    Some(source) => json!({ "state": read_json(&source)? }),
                    None => json!({}),
                };
                let path = tenant_path(&tenant, "");
                let reply = self
                    .client
                    .send_write(Method::PUT, &path, Some(&body), None, "application/json")
                    .await?;
                self.print(&reply.body, render::created)
            }
            ClientCommand::Get { tenant, at } => {
                let query = match at {
                    ReadAt {
                        revision: Some(revision),
                        ..
                    } => format!("?revision={revision}"),
                    ReadAt {
                        snapshot: Some(name),
                        ..
                    } => format!("?snapshot={}", encode(name.as_str())),
                    ReadAt {
                        as_of: Some(time), ..
                    } => format!("?as_of={}", encode(&time)),
                    _ => String::new(),
                };
                let path = tenant_path(&tenant, &format!("/state{query}"));
                let reply = self.call(Method::GET, &path, None).await?;
                self.print(&reply.body, render::document)
            }
            ClientCommand::Patch {
                tenant,
                patch,
                merge,
                if_match,
            } => {
                let patch = read_json(&patch)?;
                let content_type = if merge {
                    "application/merge-patch+json"
                } else if patch.is_array() {
                    "application/json-patch+json"
                } else {
                    bail!(
                        "a JSON Patch is a JSON array of operations (RFC 6902); for a merge \
                         patch (RFC 7396) give --merge"
                    );
                };
                let path = tenant_path(&tenant, "/state");
                let reply = self
                    .client
                    .send_write(Method::PATCH, &path, Some(&patch), if_match, content_type)
                    .await?;
                self.print(&reply.body, |body| render::committed(&tenant, body))
            }
            ClientCommand::Delete {
                tenant,
                force,
                detach_forks,
            } => {
                let mut path = tenant_path(&tenant, "");
                let flags: Vec<&str> = [("force=true", force), ("detach_forks=true", detach_forks)]
                    .into_iter()
                    .filter_map(|(flag, on)| on.then_some(flag))
                    .collect();
                if !flags.is_empty() {
                    path = format!("{path}?{}", flags.join("&"));
                }
                let reply = match self.client.send(Method::DELETE, &path, None, None).await {
                    Ok(reply) => reply,
                    Err(ClientError::Api {
                        code,
                        message,
                        details,
                        ..
                    }) if code == "delete_refused" => {
                        bail!("{}", render::delete_refused(&message, &code, &details))
                    }
                    Err(e) => return Err(e.into()),
                };
                self.print(&reply.body, |_| Ok(format!("deleted tenant '{tenant}'\n")))
            }
            ClientCommand::Snapshot {
                tenant,
                delete: Some(name),
                ..
            } => {
                let path = tenant_path(&tenant, &format!("/snapshots/{}", encode(name.as_str())));
                let reply = self.call(Method::DELETE, &path, None).await?;
                self.print(&reply.body, |_| {
                    Ok(format!("deleted snapshot '{name}' of '{tenant}'\n"))
                })
            }
            ClientCommand::Snapshot {
                tenant,
                name,
                protected,
                ..
            } => {
                let body = json!({"name": name, "protected": protected});
                let path = tenant_path(&tenant, "/snapshots");
                let reply = self.call(Method::POST, &path, Some(&body)).await?;
                self.print(&reply.body, |body| render::snapshot(&tenant, body))
            }
            ClientCommand::Protect { tenant, name } => {
                self.protection(&tenant, &name, "protect").await
            }
            ClientCommand::Unprotect { tenant, name } => {
                self.protection(&tenant, &name, "unprotect").await
            }
            ClientCommand::Transaction { tenant, file } => {
                let body = read_json(&file)?;
                let path = tenant_path(&tenant, "/transactions");
                let reply = self.call(Method::POST, &path, Some(&body)).await?;
                self.print(&reply.body, |body| render::transaction(&tenant, body))?;
                transaction_outcome(&tenant, &reply.body)
            }
            ClientCommand::Snapshots { tenant } => {
                let path = tenant_path(&tenant, "/snapshots");
                let reply = self.call(Method::GET, &path, None).await?;
                self.print(&reply.body, render::snapshots)
            }
            ClientCommand::Rollback {
                tenant,
                to,
                dry_run,
            } => {
                let body = json!({"to": to.body(), "dry_run": dry_run});
                let path = tenant_path(&tenant, "/rollback");
                let reply = self.call(Method::POST, &path, Some(&body)).await?;
                self.print(&reply.body, |body| render::rollback(&tenant, body))
            }
            ClientCommand::Diff { tenant, from, to } => {
                let query = format!("/diff?from={}&to={}", encode(&from), encode(&to));
                let path = tenant_path(&tenant, &query);
                let reply = self.call(Method::GET, &path, None).await?;
                self.print(&reply.body, render::diff)
            }
            ClientCommand::History { tenant, limit } => {
                let query = limit.map(|n| format!("?limit={n}")).unwrap_or_default();
                let path = tenant_path(&tenant, &format!("/history{query}"));
                let reply = self.call(Method::GET, &path, None).await?;
                self.print(&reply.body, render::history)
            }
            ClientCommand::Deploy {
                tenant,
                file,
                name,
                state,
                checks,
                interval,
                window,
                failure_limit,
                error_limit,
                detach,
            } => {
                let change = read_json(&file)?;
                let mut body = json!({"name": name, "checks": checks});
                body[if state { "state" } else { "patch" }] = change;
                for (key, value) in [("interval", interval), ("window", window)] {
                    if let Some(value) = value {
                        body[key] = json!(value);
                    }
                }
                for (key, value) in [
                    ("failure_limit", failure_limit),
                    ("error_limit", error_limit),
                ] {
                    if let Some(value) = value {
                        body[key] = json!(value);
                    }
                }
                let path = tenant_path(&tenant, "/deployments");
                let reply = self.call(Method::POST, &path, Some(&body)).await?;
                if detach {
                    return self.print(&reply.body, |body| {
                        render::deployment_started(&tenant, body)
                    });
                }
                self.follow(&tenant, reply.body).await
            }
            ClientCommand::Deployments { tenant } => {
                let path = tenant_path(&tenant, "/deployments");
                let reply = self.call(Method::GET, &path, None).await?;
                self.print(&reply.body, render::deployments)
            }
            ClientCommand::Fork { parent, name, from } => {
                let mut body = json!({ "name": name });
                if let Some(from) = from {
                    body["from"] = json!(from);
                }
                let path = tenant_path(&parent, "/forks");
                let reply = self.call(Method::POST, &path, Some(&body)).await?;
                self.print(&reply.body, render::forked)
            }
            ClientCommand::Promote {
                fork,
                strategy,
                if_parent_revision,
            } => {
                let mut body = json!({ "strategy": strategy.as_str() });
                if let Some(revision) = if_parent_revision {
                    body["if_parent_revision"] = json!(revision);
                }
                let path = tenant_path(&fork, "/promote");
                let reply = self.call(Method::POST, &path, Some(&body)).await?;
                self.print(&reply.body, render::promoted)
            }
            ClientCommand::Forks { tenant } => {
                let path = tenant_path(&tenant, "/forks");
                let reply = self.call(Method::GET, &path, None).await?;
                self.print(&reply.body, |body| render::forks(&tenant, body))
            }
            ClientCommand::Watch { tenant, after } => self.watch(&tenant, after).await,
        }
    }

    /// Follows a deployment to its end, a line per measurement as it is
    /// recorded; an error (exit 1) unless it was promoted.
    async fn follow(&self, tenant: &TenantId, started: Value) -> Result<()> {
        let id = started["id"]
            .as_u64()
            .context("the server answered no deployment id")?;
        if !self.json {
            self.print(&started, |body| render::deployment_started(tenant, body))?;
        }
        let path = tenant_path(tenant, &format!("/deployments/{id}"));
        let interval = started["interval"]
            .as_str()
            .and_then(|d| rewind_core::deploy::parse_duration(d).ok())
            .unwrap_or(std::time::Duration::from_secs(1));
        let poll = (interval / 2).clamp(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(2),
        );
        let mut shown = 0;
        let deployment = loop {
            let reply = self.call(Method::GET, &path, None).await?;
            let measurements = reply.body["measurements"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for measurement in measurements.iter().skip(shown) {
                let line = if self.json {
                    measurement.to_string()
                } else {
                    render::measurement(measurement)
                };
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}")?;
                stdout.flush()?;
            }
            shown = shown.max(measurements.len());
            if reply.body["status"] != "monitoring" {
                break reply.body;
            }
            tokio::time::sleep(poll).await;
        };
        self.print(&deployment, |body| render::deployment_ended(tenant, body))?;
        match deployment["status"].as_str() {
            Some("promoted") => Ok(()),
            status => bail!(
                "deployment '{}' {}: {}",
                deployment["name"].as_str().unwrap_or("?"),
                status.unwrap_or("ended").replace('_', " "),
                deployment["reason"].as_str().unwrap_or("no reason given")
            ),
        }
    }

    /// `POST .../snapshots/{name}/protect` or `/unprotect`.
    async fn protection(&self, tenant: &TenantId, name: &SnapshotName, action: &str) -> Result<()> {
        let path = tenant_path(
            tenant,
            &format!("/snapshots/{}/{action}", encode(name.as_str())),
        );
        let reply = self.call(Method::POST, &path, None).await?;
        self.print(&reply.body, |body| render::snapshot(tenant, body))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<crate::client::Reply> {
        Ok(self.client.send(method, path, body, None).await?)
    }

    /// Prints `body` as JSON, or as `text` renders it.
    fn print(&self, body: &Value, text: impl FnOnce(&Value) -> Result<String>) -> Result<()> {
        let out = if self.json {
            format!("{body}\n")
        } else {
            text(body)?
        };
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()?;
        Ok(())
    }

    /// One line per event, flushed as it comes, until the stream ends.
    async fn watch(&self, tenant: &TenantId, after: Option<u64>) -> Result<()> {
        let mut events = self
            .client
            .events(&tenant_path(tenant, "/watch"), after)
            .await?;
        // On stderr, so stdout holds only events; printed once the server
        // has subscribed, so every revision from now on is shown.
        eprintln!(
            "watching '{tenant}' on {} (Ctrl-C to stop)",
            self.client.server()
        );
        // The last revision seen: where `--after` resumes.
        let mut last = after;
        let ended = |why: String, after: Option<u64>| Unfinished::StreamEnded {
            tenant: tenant.clone(),
            why,
            after,
        };
        loop {
            let event = match events.next().await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(ended("the server ended the stream".into(), last).into()),
                Err(e) => return Err(ended(e.to_string(), last).into()),
            };
            let line = if self.json {
                event.data.clone()
            } else {
                render::event(&event)
            };
            {
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}")?;
                stdout.flush()?;
            }
            match event.event.as_str() {
                "deleted" => bail!("tenant '{tenant}' was deleted: the watch is over"),
                "failed" => bail!("tenant '{tenant}' failed and serves no more: the watch is over"),
                _ => {}
            }
            if let Some(id) = event.id.as_deref().and_then(|id| id.parse().ok()) {
                last = Some(id);
            }
        }
    }
}

/// `Ok` for a committed transaction's report; else what happened, with its
/// exit code.
fn transaction_outcome(tenant: &TenantId, report: &Value) -> Result<()> {
    let transaction = report["transaction"].as_u64().unwrap_or_default();
    let step = report["failed_step"].as_str().unwrap_or("?").to_owned();
    let error = report["error"]
        .as_str()
        .unwrap_or("no reason given")
        .to_owned();
    let tenant = tenant.clone();
    match report["outcome"].as_str() {
        Some("committed") => Ok(()),
        Some("rolled_back") => Err(Unfinished::RolledBack {
            tenant,
            transaction,
            step,
            error,
        }
        .into()),
        Some("failed") => Err(Unfinished::TransactionFailed {
            tenant,
            transaction,
            step,
            error,
        }
        .into()),
        other => bail!("the server answered an unknown transaction outcome {other:?}"),
    }
}

fn tenant_path(tenant: &TenantId, rest: &str) -> String {
    format!("/v1/tenants/{}{rest}", encode(tenant.as_str()))
}

/// JSON from a file, or from stdin for `-`.
fn read_json(source: &str) -> Result<Value> {
    let text = if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        text
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))?
    };
    let what = if source == "-" { "stdin" } else { source };
    serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_parse_from_the_command_line() {
        assert_eq!(
            check_spec("prometheus:http://127.0.0.1:9090:max(app_memory_usage_ratio) < 0.9")
                .unwrap(),
            json!({"prometheus": {
                "url": "http://127.0.0.1:9090",
                "query": "max(app_memory_usage_ratio)",
                "condition": "< 0.9",
            }})
        );
        assert_eq!(
            check_spec("prometheus:http://prom/api:sum(rate(errors[5m]))>=1").unwrap(),
            json!({"prometheus": {"url": "http://prom/api", "query": "sum(rate(errors[5m]))", "condition": ">=1"}})
        );
        assert_eq!(
            check_spec("http:http://10.0.0.5:8080/health=204").unwrap(),
            json!({"http": {"url": "http://10.0.0.5:8080/health", "expect_status": 204}})
        );
        assert_eq!(
            check_spec("http:http://a/health").unwrap()["http"]["expect_status"],
            200
        );
        for bad in [
            "ftp:x",
            "prometheus:max(x) < 1",
            "prometheus:http://p:9090:max(x)",
            "prometheus:http://p:9090:< 1",
            "prometheus:http://p:9090:up < x",
        ] {
            assert!(check_spec(bad).is_err(), "{bad}");
        }
    }
}
