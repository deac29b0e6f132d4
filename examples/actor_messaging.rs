//! Named Snapshot Rollback and Tenant Isolation (product guide), driven by
//! another actor: an `Operator` ractor actor that holds only the
//! supervisor's `ActorRef<SupervisorMsg<Doc>>` and does everything by
//! messages with `RpcReplyPort` replies — create tenants, apply, snapshot,
//! read, diff, roll back, list history. It uses rewind's front-door
//! helpers: `ask` for the supervisor, a `TenantRef` per tenant, and the
//! re-exported `rewind::ractor` (no direct dependency on ractor).
//!
//! Run with `cargo run --example actor_messaging`. It checks its own story
//! and exits non-zero if the behaviour is wrong.

use std::time::Duration;

use anyhow::{anyhow, ensure, Context, Result};
use rewind::core::{Cause, RevisionInfo, RollbackOutcome};
use rewind::prelude::*;
use rewind::ractor::rpc::CallResult;
use rewind::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde_json::{json, Value};

/// How long the operator waits for any one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the operator can be asked to do.
enum OperatorMsg {
    /// Seed a tenant, snapshot it as `snapshot`, move on to a newer state,
    /// then roll back to the snapshot; report what happened.
    RollbackDrill {
        tenant: String,
        initial: Value,
        snapshot: String,
        later: Value,
        reply: RpcReplyPort<Result<DrillReport>>,
    },
    /// Roll `tenant` back to `snapshot`, passing on rewind's answer as is.
    TryRollback {
        tenant: String,
        snapshot: String,
        reply: RpcReplyPort<Result<Result<RollbackOutcome, Error>>>,
    },
}

/// What the operator saw during a drill.
struct DrillReport {
    snapshot: SnapshotInfo,
    before: Doc,
    rollback: RollbackOutcome,
    after: Doc,
    undone: Diff,
    history: Vec<RevisionInfo>,
    tenants: Vec<(TenantId, Option<Revision>)>,
}

/// The operator actor: stateless configuration, as ractor recommends.
struct Operator;

/// Its state: the one way in to rewind.
struct OperatorState {
    supervisor: ActorRef<SupervisorMsg<Doc>>,
}

impl Actor for Operator {
    type Msg = OperatorMsg;
    type State = OperatorState;
    type Arguments = ActorRef<SupervisorMsg<Doc>>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        supervisor: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(OperatorState { supervisor })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Failures go back in the reply; the operator itself keeps running.
        match message {
            OperatorMsg::RollbackDrill {
                tenant,
                initial,
                snapshot,
                later,
                reply,
            } => {
                let report = state.drill(&tenant, &initial, &snapshot, &later).await;
                let _ = reply.send(report);
            }
            OperatorMsg::TryRollback {
                tenant,
                snapshot,
                reply,
            } => {
                let outcome = state.try_rollback(&tenant, &snapshot).await;
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }
}

impl OperatorState {
    /// A tenant, as this actor reaches it: by messages through the
    /// supervisor.
    fn tenant(&self, tenant: &str) -> Result<TenantRef<Doc>> {
        Ok(TenantRef::new(
            self.supervisor.clone(),
            TenantId::new(tenant)?,
        ))
    }

    async fn drill(
        &self,
        tenant: &str,
        initial: &Value,
        snapshot: &str,
        later: &Value,
    ) -> Result<DrillReport> {
        let id = TenantId::new(tenant)?;
        let initial = Doc::from_json(initial)?;
        // The reply carries a `Tenant` handle too; the operator sticks to messages.
        ask(&self.supervisor, |reply| SupervisorMsg::CreateTenant {
            id,
            initial,
            config: None,
            meta: Default::default(),
            reply,
        })
        .await?;
        let acme = self.tenant(tenant)?;
        let taken = acme.snapshot_named(snapshot).await?;

        // Move on: replace every member of the document with its later value.
        let ops: Vec<Value> = later
            .as_object()
            .context("the later state must be an object")?
            .iter()
            .map(|(key, value)| json!({"op": "add", "path": format!("/{key}"), "value": value}))
            .collect();
        acme.apply(Patch::from_json(&Value::Array(ops))?).await?;

        let before = acme.current().await?;
        let rollback = acme
            .rollback(RollbackTarget::Named(SnapshotName::new(snapshot)?))
            .await?;
        let after = acme.current().await?;
        // Any request is one `call` away.
        let undone = acme
            .call(|reply| TenantMsg::Diff {
                from: StateRef::Revision(rollback.restored.revision),
                to: StateRef::Snapshot(rollback.pre_rollback.name.clone()),
                reply,
            })
            .await?;
        let history = acme.history(10).await?;
        let tenants = rewind::runtime::ask_raw(&self.supervisor, |reply| {
            SupervisorMsg::ListTenants { reply }
        })
        .await?;
        Ok(DrillReport {
            snapshot: taken,
            before,
            rollback,
            after,
            undone,
            history,
            tenants,
        })
    }

    async fn try_rollback(
        &self,
        tenant: &str,
        snapshot: &str,
    ) -> Result<Result<RollbackOutcome, Error>> {
        let target = RollbackTarget::Named(SnapshotName::new(snapshot)?);
        Ok(self.tenant(tenant)?.rollback(target).await)
    }
}

/// Asks the operator something and waits for its answer.
async fn ask_operator<T: Send + 'static>(
    operator: &ActorRef<OperatorMsg>,
    build: impl FnOnce(RpcReplyPort<T>) -> OperatorMsg,
) -> Result<T> {
    match operator.call(build, Some(REPLY_TIMEOUT * 4)).await {
        Ok(CallResult::Success(answer)) => Ok(answer),
        Ok(CallResult::Timeout) => Err(anyhow!("the operator did not answer in time")),
        Ok(CallResult::SenderError) => Err(anyhow!("the operator dropped the reply port")),
        Err(e) => Err(anyhow!("the operator is not running: {e}")),
    }
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let runtime = Runtime::<Doc>::start().await?;
    let (operator, operator_task) = Actor::spawn(None, Operator, runtime.supervisor()).await?;

    println!("== Named Snapshot Rollback, by messages ==");
    let drill = ask_operator(&operator, |reply| OperatorMsg::RollbackDrill {
        tenant: "acme_corp".into(),
        initial: json!({"version": "2.0.0", "features": {"new_ui": true, "beta": false}, "sessions": 100}),
        snapshot: "v2.0.0".into(),
        later: json!({"version": "2.5.0", "features": {"new_ui": true, "beta": true}, "sessions": 150}),
        reply,
    })
    .await??;
    println!(
        "📸 '{}' pins revision {}",
        drill.snapshot.name, drill.snapshot.revision
    );
    println!("before rollback: {}", drill.before);
    println!(
        "rollback_to_named_snapshot(\"v2.0.0\") -> revision {}",
        drill.rollback.revision
    );
    println!("after rollback:  {}", drill.after);
    print!("the rollback undid:\n{}", drill.undone);
    println!("history (newest first):");
    for info in &drill.history {
        let cause = match &info.cause {
            Cause::Rollback { restored, from, .. } => format!(
                "rollback from revision {from} to revision {}",
                restored.revision
            ),
            other => format!("{other:?}").to_lowercase(),
        };
        println!("  revision {}: {cause}", info.revision);
    }

    ensure!(drill.before["version"] == "2.5.0" && drill.before["sessions"] == 150);
    ensure!(
        drill.after
            == Doc::from_json(&json!({
                "version": "2.0.0", "features": {"new_ui": true, "beta": false}, "sessions": 100
            }))?,
        "v2.0.0 must be restored exactly: {}",
        drill.after
    );
    ensure!(
        drill.rollback.revision == Revision(2) && drill.rollback.restored.revision == Revision(0),
        "the rollback is revision 2, restoring revision 0"
    );
    ensure!(
        drill
            .undone
            .numeric_changes()
            .any(|(path, old, new)| path.to_string() == "/sessions"
                && old.as_i64() == Some(100)
                && new.as_i64() == Some(150)),
        "the diff shows sessions: 100 → 150"
    );
    let causes: Vec<_> = drill.history.iter().map(|i| &i.cause).collect();
    ensure!(
        matches!(
            causes.as_slice(),
            [Cause::Rollback { .. }, Cause::Change, Cause::Initial]
        ),
        "history: rollback, change, initial — got {causes:?}"
    );
    ensure!(drill.tenants.len() == 1 && drill.tenants[0].0.as_str() == "acme_corp");

    println!("\n== Tenant Isolation, by messages ==");
    let widgets = ask_operator(&operator, |reply| OperatorMsg::RollbackDrill {
        tenant: "widgets_r_us".into(),
        initial: json!({"version": "2.5", "sessions": 30}),
        snapshot: "beta_test".into(),
        later: json!({"version": "2.6", "sessions": 35}),
        reply,
    })
    .await??;
    ensure!(widgets.after["version"] == "2.5" && widgets.tenants.len() == 2);
    println!("widgets_r_us has 📸 'beta_test'");

    let attempt = ask_operator(&operator, |reply| OperatorMsg::TryRollback {
        tenant: "acme_corp".into(),
        snapshot: "beta_test".into(),
        reply,
    })
    .await??;
    match &attempt {
        Err(e) => println!("acme_corp.rollback(\"beta_test\") -> ❌ {e}"),
        Ok(outcome) => println!("acme_corp.rollback(\"beta_test\") -> {outcome:?}"),
    }
    ensure!(
        matches!(&attempt, Err(e) if e.is_snapshot_not_found()),
        "another tenant's snapshot must be SnapshotNotFound"
    );
    let unknown = ask_operator(&operator, |reply| OperatorMsg::TryRollback {
        tenant: "nobody".into(),
        snapshot: "v2.0.0".into(),
        reply,
    })
    .await??;
    println!(
        "nobody.rollback(\"v2.0.0\") -> ❌ {}",
        unknown
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    ensure!(
        matches!(unknown, Err(Error::TenantNotFound(_))),
        "an unknown tenant is TenantNotFound"
    );

    operator.stop(None);
    operator_task.await?;
    runtime.shutdown().await?;
    println!("\nactor messaging checked ✔");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    run().await
}
