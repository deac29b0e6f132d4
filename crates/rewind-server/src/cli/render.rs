//! The text the command line prints for people, from the server's JSON. The
//! answers are read back into rewind's own types, so a diff prints the way
//! the product guide shows it (`sessions: 100 → 150`, `added_keys: [...]`).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use rewind_core::{Diff, ForkInfo, Restored, RevisionInfo, SnapshotInfo, TenantId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::client::ServerEvent;

/// `what` of an answer, as `T`.
fn field<T: DeserializeOwned>(body: &Value, what: &str) -> Result<T> {
    let value = if what.is_empty() { body } else { &body[what] };
    T::deserialize(value).with_context(|| {
        format!(
            "unexpected answer from the server (reading {}): {body}",
            if what.is_empty() { "the body" } else { what }
        )
    })
}

/// `acme_corp  revision 7`, one line per tenant; `passivated` for one the
/// server has not read back since it started (listed without a revision).
pub(super) fn tenants(body: &Value) -> Result<String> {
    #[derive(Deserialize)]
    struct Entry {
        tenant: String,
        revision: Option<u64>,
    }
    let tenants: Vec<Entry> = field(body, "tenants")?;
    if tenants.is_empty() {
        return Ok("no tenants\n".to_owned());
    }
    let width = tenants.iter().map(|t| t.tenant.len()).max().unwrap_or(0);
    let mut out = String::new();
    for Entry { tenant, revision } in tenants {
        match revision {
            Some(revision) => writeln!(out, "{tenant:width$}  revision {revision}")?,
            None => writeln!(out, "{tenant:width$}  passivated")?,
        }
    }
    Ok(out)
}

pub(super) fn created(body: &Value) -> Result<String> {
    let tenant: String = field(body, "tenant")?;
    let revision: u64 = field(body, "revision")?;
    Ok(format!(
        "created tenant '{tenant}' at revision {revision}\n"
    ))
}

/// `forked 'shop' at revision 3 into 'shop.b' (revision 0)`.
pub(super) fn forked(body: &Value) -> Result<String> {
    let tenant: String = field(body, "tenant")?;
    let fork: ForkInfo = field(body, "fork")?;
    Ok(format!(
        "forked '{}' at revision {} into '{tenant}' (revision 0)\n",
        fork.parent, fork.base_revision
    ))
}

/// `promoted 'shop.b' (revision 4, merge) into 'shop': revision 9`.
pub(super) fn promoted(body: &Value) -> Result<String> {
    let parent: String = field(body, "parent")?;
    let revision: u64 = field(body, "revision")?;
    let fork: String = field(body, "fork")?;
    let fork_revision: u64 = field(body, "fork_revision")?;
    let strategy: String = field(body, "strategy")?;
    Ok(format!(
        "promoted '{fork}' (revision {fork_revision}, {strategy}) into '{parent}': revision \
         {revision}\n"
    ))
}

/// `shop.b  from revision 3  2026-03-14T10:00:00Z`, one line per fork.
pub(super) fn forks(tenant: &TenantId, body: &Value) -> Result<String> {
    #[derive(Deserialize)]
    struct Entry {
        tenant: String,
        base_revision: u64,
        created_at: String,
    }
    let forks: Vec<Entry> = field(body, "forks")?;
    if forks.is_empty() {
        return Ok(format!("'{tenant}' has no forks\n"));
    }
    let width = forks.iter().map(|f| f.tenant.len()).max().unwrap_or(0);
    let mut out = String::new();
    for fork in forks {
        writeln!(
            out,
            "{:width$}  from revision {}  {}",
            fork.tenant, fork.base_revision, fork.created_at
        )?;
    }
    Ok(out)
}

/// The document, indented.
pub(super) fn document(body: &Value) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(body)?))
}

pub(super) fn committed(tenant: &TenantId, body: &Value) -> Result<String> {
    let revision: u64 = field(body, "revision")?;
    Ok(format!("'{tenant}' is at revision {revision}\n"))
}

pub(super) fn snapshot(tenant: &TenantId, body: &Value) -> Result<String> {
    let info: SnapshotInfo = field(body, "")?;
    Ok(format!(
        "snapshot '{}' ({}) of '{tenant}' pins revision {}\n",
        info.name,
        kind_label(&info),
        info.revision
    ))
}

/// `named, protected`, `auto, pre-rollback`, `checkpoint of transaction 3`.
fn kind_label(info: &SnapshotInfo) -> String {
    let mut label = info.kind.to_string();
    if info.protected {
        label.push_str(", protected");
    }
    if let Some(trigger) = info.trigger {
        write!(label, ", {}", trigger.as_str()).expect("writing to a String");
    }
    if let Some(transaction) = info.transaction {
        write!(label, " of transaction {transaction}").expect("writing to a String");
    }
    label
}

/// Each step with its revision and checkpoint, then the outcome: what
/// failed and what was restored.
pub(super) fn transaction(tenant: &TenantId, body: &Value) -> Result<String> {
    #[derive(Deserialize)]
    struct Step {
        name: String,
        revision: Option<u64>,
        checkpoint: SnapshotInfo,
    }
    let id: u64 = field(body, "transaction")?;
    let outcome: String = field(body, "outcome")?;
    let steps: Vec<Step> = field(body, "steps")?;
    let mut out = String::new();
    for step in &steps {
        match step.revision {
            Some(revision) => write!(out, "step '{}': revision {revision}", step.name)?,
            None => write!(out, "step '{}': no change", step.name)?,
        }
        writeln!(out, ", checkpoint '{}'", step.checkpoint.name)?;
    }
    if let Some(failed) = body["failed_step"].as_str() {
        let error = body["error"].as_str().unwrap_or("");
        writeln!(out, "step '{failed}' failed: {error}")?;
    }
    write!(
        out,
        "transaction {id} on '{tenant}': {}",
        outcome.replace('_', " ")
    )?;
    if body["rolled_back_to"].is_object() {
        let restored: Restored = field(body, "rolled_back_to")?;
        write!(out, " to {restored}")?;
    }
    out.push('\n');
    Ok(out)
}

/// One line per snapshot, oldest first: name, revision, time, kind.
pub(super) fn snapshots(body: &Value) -> Result<String> {
    let snapshots: Vec<SnapshotInfo> = field(body, "snapshots")?;
    if snapshots.is_empty() {
        return Ok("no snapshots\n".to_owned());
    }
    let width = snapshots
        .iter()
        .map(|s| s.name.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for info in &snapshots {
        writeln!(
            out,
            "{:width$}  revision {:<5} {}  {}",
            info.name.as_str(),
            info.revision.to_string(),
            info.created_at,
            kind_label(info)
        )?;
    }
    Ok(out)
}

/// What was restored, the new revision, how to undo it, then the diff from
/// the old head to the restored state.
pub(super) fn rollback(tenant: &TenantId, body: &Value) -> Result<String> {
    let revision: u64 = field(body, "revision")?;
    let restored: Restored = field(body, "restored")?;
    let diff: Diff = field(body, "diff")?;
    let dry_run = body["dry_run"].as_bool().unwrap_or(false);
    let mut out = String::new();
    if dry_run {
        writeln!(
            out,
            "dry run: rolling back '{tenant}' would restore {restored}; nothing changed, \
             still at revision {revision}"
        )?;
    } else {
        writeln!(
            out,
            "rolled back '{tenant}' to {restored}: now at revision {revision}"
        )?;
        if let Some(before) = body["pre_rollback"]["revision"].as_u64() {
            writeln!(
                out,
                "undo with: rewind rollback {tenant} --to-revision {before}"
            )?;
        }
    }
    out.push_str(&diff.to_string());
    Ok(out)
}

/// `revision 3 → 5: 1 added, 0 removed, 2 changed`, then the product
/// guide's summary.
pub(super) fn diff(body: &Value) -> Result<String> {
    let from: u64 = field(body, "from")?;
    let to: u64 = field(body, "to")?;
    let diff: Diff = field(body, "")?;
    let summary = diff.summary;
    Ok(format!(
        "revision {from} → {to}: {} added, {} removed, {} changed\n{diff}",
        summary.added, summary.removed, summary.changed
    ))
}

/// `revision 2 at 2026-03-14T14:30:00Z: rollback (named) to named
/// 'pre_v2_deploy' (revision 0) from 1`, newest first.
pub(super) fn history(body: &Value) -> Result<String> {
    let revisions: Vec<RevisionInfo> = field(body, "revisions")?;
    let mut out = String::new();
    for info in &revisions {
        writeln!(out, "{}", revision_line(info))?;
    }
    Ok(out)
}

/// `revision 3 at 2026-03-14T14:35:02Z: rollback (named) to named 'v1'
/// (revision 0) from 2 by ci-deployer: "memory at 95%"`: the cause, then who
/// and why when the revision records them.
fn revision_line(info: &RevisionInfo) -> String {
    let mut line = format!("revision {} at {}: {}", info.revision, info.at, info.cause);
    if let Some(author) = &info.meta.author {
        line.push_str(&format!(" by {author}"));
    }
    if let Some(message) = &info.meta.message {
        let quoted = serde_json::to_string(message.as_ref()).unwrap_or_default();
        let sep = if info.meta.author.is_some() {
            ":"
        } else {
            " —"
        };
        line.push_str(&format!("{sep} {quoted}"));
    }
    line
}

/// A watch event: the revision's line as in `history`, or what the stream
/// says otherwise (`gap: ...`, `lagged: 12`).
pub(super) fn event(event: &ServerEvent) -> String {
    if event.event == "revision" {
        if let Ok(info) = serde_json::from_str::<RevisionInfo>(&event.data) {
            return revision_line(&info);
        }
    }
    if event.event == "gap" {
        if let Ok(gap) = serde_json::from_str::<Value>(&event.data) {
            if let (Some(after), Some(oldest)) = (gap["after"].as_u64(), gap["oldest"].as_u64()) {
                return format!(
                    "gap: revisions {} to {} left the history window",
                    after + 1,
                    oldest.saturating_sub(1)
                );
            }
        }
    }
    if let Ok(data) = serde_json::from_str::<Value>(&event.data) {
        match event.event.as_str() {
            "reset" => {
                if let (Some(after), Some(head)) = (data["after"].as_u64(), data["head"].as_u64()) {
                    return format!(
                        "reset: revision {after} is beyond the head ({head}): the tenant was \
                         deleted and created again; re-read it, watching from revision {head}"
                    );
                }
            }
            "deleted" => {
                return format!(
                    "deleted: tenant '{}' was deleted (last revision {})",
                    data["tenant"].as_str().unwrap_or("?"),
                    data["revision"]
                )
            }
            "failed" => {
                return format!(
                    "failed: tenant '{}' failed and serves no more",
                    data["tenant"].as_str().unwrap_or("?")
                )
            }
            _ => {}
        }
    }
    if event.event == "lagged" {
        return format!(
            "lagged: {} revisions missed (see `rewind history`)",
            event.data
        );
    }
    event.to_string()
}

/// `deploying 'v2.0.0' to 'shop' (deployment 3): revision 7, pre_v2.0.0
/// pins 6; checks every 10s for 5m`.
pub(super) fn deployment_started(tenant: &TenantId, body: &Value) -> Result<String> {
    Ok(format!(
        "deploying '{}' to '{tenant}' (deployment {}): revision {}, snapshot {} pins revision {}; \
         {} check(s) every {} for {}\n",
        body["name"].as_str().unwrap_or("?"),
        body["id"],
        body["revision"],
        body["pre_snapshot"].as_str().unwrap_or("?"),
        body["base_revision"],
        body["checks"].as_array().map_or(0, Vec::len),
        body["interval"].as_str().unwrap_or("?"),
        body["window"].as_str().unwrap_or("?"),
    ))
}

/// `2026-03-14T12:00:10Z  pass   prometheus max(m) < 0.9  value 0.4`.
pub(super) fn measurement(m: &Value) -> String {
    let mut line = format!(
        "{}  {:<5}  {}",
        m["at"].as_str().unwrap_or("?"),
        m["result"].as_str().unwrap_or("?"),
        m["check"].as_str().unwrap_or("?"),
    );
    if let Some(value) = m["value"].as_f64() {
        line.push_str(&format!("  value {value}"));
    }
    if let Some(reason) = m["reason"].as_str() {
        line.push_str(&format!("  ({reason})"));
    }
    line
}

/// How a deployment ended, and the rollback it made.
pub(super) fn deployment_ended(tenant: &TenantId, body: &Value) -> Result<String> {
    let name = body["name"].as_str().unwrap_or("?");
    let mut out = match body["status"].as_str() {
        Some("promoted") => format!("promoted '{name}' on '{tenant}'"),
        Some("rolled_back") => format!("rolled back '{name}' on '{tenant}'"),
        Some("aborted") => format!("aborted '{name}' on '{tenant}'"),
        other => format!("'{name}' is {}", other.unwrap_or("?")),
    };
    if let Some(reason) = body["reason"].as_str() {
        out.push_str(&format!(": {reason}"));
    }
    out.push('\n');
    if let Some(revision) = body["rollback"]["revision"].as_u64() {
        writeln!(out, "the rollback is revision {revision}")?;
        if let Some(before) = body["rollback"]["pre_rollback"]["revision"].as_u64() {
            writeln!(
                out,
                "undo with: rewind rollback {tenant} --to-revision {before}"
            )?;
        }
        let diff: Diff = field(&body["rollback"], "diff")?;
        out.push_str(&diff.to_string());
    }
    Ok(out)
}

/// One line per deployment, newest first.
pub(super) fn deployments(body: &Value) -> Result<String> {
    let list = body["deployments"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return Ok("no deployments\n".into());
    }
    let mut out = String::new();
    for d in list {
        writeln!(
            out,
            "{:>4}  {:<12} {:<20} started {}  revision {}  {} measurement(s){}",
            d["id"],
            d["status"].as_str().unwrap_or("?"),
            d["name"].as_str().unwrap_or("?"),
            d["started_at"].as_str().unwrap_or("?"),
            d["revision"],
            d["measurements"].as_array().map_or(0, Vec::len),
            d["reason"]
                .as_str()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default(),
        )?;
    }
    Ok(out)
}

/// A refused `rewind delete`: the server's message, then what each flag
/// would destroy or leave behind.
pub(super) fn delete_refused(message: &str, code: &str, details: &Value) -> String {
    let names = |key: &str| -> Vec<String> {
        details[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|name| format!("'{name}'"))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = format!("{message} ({code})");
    let mut destroyed: Vec<String> = names("protected_snapshots")
        .into_iter()
        .map(|name| format!("protected snapshot {name}"))
        .collect();
    if let Some(name) = details["deployment"]["name"].as_str() {
        destroyed.push(format!(
            "deployment '{name}' ({}) in progress",
            details["deployment"]["id"]
        ));
    }
    if !destroyed.is_empty() {
        out.push_str(&format!(
            "\n--force would destroy, with the tenant: {}",
            destroyed.join(", ")
        ));
    }
    let forks = names("forks");
    if !forks.is_empty() {
        out.push_str(&format!(
            "\n--detach-forks would delete it and leave these forks detached (no longer \
             promotable): {}",
            forks.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_tenant_listed_without_a_revision_shows_as_passivated() {
        let body = json!({"tenants": [
            {"tenant": "acme_corp", "revision": 7},
            {"tenant": "globex"}
        ]});
        assert_eq!(
            tenants(&body).unwrap(),
            "acme_corp  revision 7\nglobex     passivated\n"
        );
    }

    /// The product guide's "State Diff Visualization", as the server
    /// answers it.
    #[test]
    fn a_diff_reads_like_the_product_guide() {
        let body = json!({
            "from": 3, "to": 5,
            "summary": {"added": 1, "removed": 0, "changed": 3},
            "changes": [
                {"path": "/app_data/beta", "kind": "added", "new": true},
                {"path": "/app_data/theme", "kind": "changed", "old": "light", "new": "dark"},
                {"path": "/cache_entries", "kind": "changed", "old": 50, "new": 75},
                {"path": "/sessions", "kind": "changed", "old": 100, "new": 150}
            ],
            "patch": [
                {"op": "add", "path": "/app_data/beta", "value": true},
                {"op": "replace", "path": "/app_data/theme", "value": "dark"},
                {"op": "replace", "path": "/cache_entries", "value": 75},
                {"op": "replace", "path": "/sessions", "value": 150}
            ]
        });
        assert_eq!(
            diff(&body).unwrap(),
            "revision 3 → 5: 1 added, 0 removed, 3 changed\n\
             cache_entries: 50 → 75\n\
             sessions: 100 → 150\n\
             added_keys: [\"app_data.beta\"]\n\
             changed_keys: [\"app_data.theme\"]\n"
        );
    }

    #[test]
    fn a_rollback_names_what_it_restored_and_how_to_undo_it() {
        let tenant = TenantId::new("acme_corp").unwrap();
        let body = json!({
            "revision": 2,
            "restored": {"kind": "named", "name": "pre_v2_deploy", "revision": 0},
            "diff": {
                "summary": {"added": 0, "removed": 0, "changed": 1},
                "changes": [{"path": "/version", "kind": "changed", "old": "2.0.0", "new": "1.9.5"}],
                "patch": [{"op": "replace", "path": "/version", "value": "1.9.5"}]
            },
            "pre_rollback": {"name": "auto_2", "kind": "auto", "revision": 1,
                             "created_at": "2026-03-14T14:30:00Z", "protected": false,
                             "trigger": "pre-rollback"},
            "dry_run": false
        });
        assert_eq!(
            rollback(&tenant, &body).unwrap(),
            "rolled back 'acme_corp' to named 'pre_v2_deploy' (revision 0): now at revision 2\n\
             undo with: rewind rollback acme_corp --to-revision 1\n\
             changed_keys: [\"version\"]\n"
        );
    }

    #[test]
    fn an_unexpected_answer_is_an_error_not_a_panic() {
        let error = history(&json!({"revisions": 3})).unwrap_err();
        assert!(
            format!("{error:#}").contains("unexpected answer"),
            "{error:#}"
        );
    }
}
