//! Model evolution: a service's typed state changes shape between releases,
//! and the journal written by the old release is read back by the new one.
//!
//! Version 1 of the feature flag has `name`, `enabled` and `rollout`.
//! Version 2 renames `name` to `title` and adds `env` (with no
//! `#[serde(default)]`, so old records do not decode as they are). It
//! says so with `const VERSION: u32 = 2` and an `upgrade` from version 1.
//! A tenant recorded by version 1 comes back with the same revisions,
//! history and snapshots, every state upgraded, and an image at version 2
//! is stored so the next start needs no upgrade. Without the version bump
//! and the upgrade, the tenant answers a `ModelMismatch` error saying what
//! to do, never "corrupt".
//!
//! Run with `cargo run --example model_evolution`. It checks its own story
//! and exits non-zero if the behaviour is wrong.

use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use rewind::prelude::*;

/// The first release's model.
pub(crate) mod v1 {
    use rewind::core::Model;
    use serde::{Deserialize, Serialize};

    /// A feature flag.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Flag {
        pub(crate) name: String,
        pub(crate) enabled: bool,
        pub(crate) rollout: u32,
    }

    /// What happens to a flag.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(crate) enum FlagChange {
        Enable,
        Disable,
        Rollout(u32),
    }

    /// A change that cannot be applied.
    #[derive(Debug)]
    pub(crate) struct OverHundred(pub(crate) u32);

    impl std::fmt::Display for OverHundred {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a rollout is a percentage: {} is over 100", self.0)
        }
    }

    impl std::error::Error for OverHundred {}

    impl Model for Flag {
        type Change = FlagChange;
        type Error = OverHundred;

        fn apply(&self, change: &FlagChange) -> Result<Flag, OverHundred> {
            let mut next = self.clone();
            match change {
                FlagChange::Enable => next.enabled = true,
                FlagChange::Disable => next.enabled = false,
                FlagChange::Rollout(pct) if *pct > 100 => return Err(OverHundred(*pct)),
                FlagChange::Rollout(pct) => next.rollout = *pct,
            }
            Ok(next)
        }
    }
}

/// The second release's model: `name` became `title`, `env` is new.
pub(crate) mod v2 {
    use rewind::core::Model;
    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    /// A feature flag.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Flag {
        pub(crate) title: String,
        pub(crate) enabled: bool,
        pub(crate) rollout: u32,
        pub(crate) env: String,
    }

    /// What happens to a flag; version 1's changes are a subset.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(crate) enum FlagChange {
        Enable,
        Disable,
        Rollout(u32),
        MoveTo(String),
    }

    /// A change that cannot be applied.
    #[derive(Debug)]
    pub(crate) struct OverHundred(pub(crate) u32);

    impl std::fmt::Display for OverHundred {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a rollout is a percentage: {} is over 100", self.0)
        }
    }

    impl std::error::Error for OverHundred {}

    impl Model for Flag {
        type Change = FlagChange;
        type Error = OverHundred;
        const VERSION: u32 = 2;

        fn apply(&self, change: &FlagChange) -> Result<Flag, OverHundred> {
            let mut next = self.clone();
            match change {
                FlagChange::Enable => next.enabled = true,
                FlagChange::Disable => next.enabled = false,
                FlagChange::Rollout(pct) if *pct > 100 => return Err(OverHundred(*pct)),
                FlagChange::Rollout(pct) => next.rollout = *pct,
                FlagChange::MoveTo(env) => next.env = env.clone(),
            }
            Ok(next)
        }

        /// Version 1 to 2: rename `name` to `title`; flags of version 1
        /// ran in production. (Version 1's changes decode as they are, so
        /// `upgrade_change` keeps its default.)
        fn upgrade(from: u32, mut state: Value) -> Result<Value, String> {
            if from < 2 {
                let fields = state.as_object_mut().ok_or("a flag is an object")?;
                let name = fields.remove("name").ok_or("a version 1 flag has a name")?;
                fields.insert("title".into(), name);
                fields.insert("env".into(), Value::from("production"));
            }
            Ok(state)
        }
    }

    /// Version 2 as a service might first write it: the fields changed, the
    /// version and the upgrade forgotten.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Forgetful(pub(crate) Flag);

    impl Model for Forgetful {
        type Change = FlagChange;
        type Error = OverHundred;
        const VERSION: u32 = 2;

        fn apply(&self, change: &FlagChange) -> Result<Forgetful, OverHundred> {
            self.0.apply(change).map(Forgetful)
        }
    }
}

/// Opens the journal at `path` for model `M`.
pub(crate) async fn open<M: Model>(path: &Path) -> Result<Runtime<M>> {
    let journal = SqliteJournal::open(path, SqliteOptions::default())?;
    Ok(Runtime::<M>::builder()
        .journal(Arc::new(journal))
        // Small, so the first release's tenant has an image and entries
        // after it, and both are upgraded.
        .image_every(5)
        .start()
        .await?)
}

/// What the first release writes: the `checkout` flag rolled out in steps,
/// with a named snapshot before the rollout.
pub(crate) async fn write_v1(path: &Path) -> Result<()> {
    use v1::{Flag, FlagChange};
    let runtime = open::<Flag>(path).await?;
    let checkout = runtime
        .create_tenant(
            "checkout",
            Flag {
                name: "new-checkout".into(),
                enabled: false,
                rollout: 0,
            },
        )
        .await?;
    checkout.apply(FlagChange::Enable).await?;
    checkout.snapshot_named("before-rollout").await?;
    for pct in [10, 25, 50, 75, 100] {
        checkout.apply(FlagChange::Rollout(pct)).await?;
    }
    drop(checkout);
    runtime.shutdown().await?;
    Ok(())
}

/// Runs the story; an error means the behaviour is wrong.
pub(crate) async fn run() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("rewind-model-evolution-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("flags.db");

    println!("== Release 1 writes its journal ==");
    write_v1(&path).await?;
    println!("checkout: enabled, snapshot before-rollout, rollout 10 → 100 (revisions 0-6)");

    println!("== Release 2, version and upgrade forgotten ==");
    {
        let runtime = open::<v2::Forgetful>(&path).await?;
        let error = runtime.tenant("checkout").await.unwrap_err();
        println!("checkout -> {error}");
        ensure!(
            error
                .to_string()
                .contains("does not decode with the current model (version 2)"),
            "the error says the model changed: {error}"
        );
        ensure!(
            !error.to_string().contains("corrupt"),
            "never 'corrupt': {error}"
        );
        runtime.shutdown().await?;
    }

    println!("== Release 2 with VERSION = 2 and an upgrade from 1 ==");
    let runtime = open::<v2::Flag>(&path).await?;
    let checkout = runtime.tenant("checkout").await?;
    let flag = checkout.current();
    println!("checkout: {flag:?}");
    ensure!(
        flag == v2::Flag {
            title: "new-checkout".into(),
            enabled: true,
            rollout: 100,
            env: "production".into(),
        },
        "upgraded head"
    );
    ensure!(checkout.revision() == Revision(6), "same revisions");
    let rollback = checkout
        .rollback_to_named_snapshot("before-rollout")
        .await?;
    ensure!(
        checkout.current().rollout == 0 && checkout.current().title == "new-checkout",
        "a snapshot recorded by release 1 restores, upgraded"
    );
    println!(
        "rollback_to_named_snapshot(\"before-rollout\") -> revision {}: rollout {}",
        rollback.revision,
        checkout.current().rollout
    );
    checkout
        .apply(v2::FlagChange::MoveTo("staging".into()))
        .await?;
    drop(checkout);
    runtime.shutdown().await?;
    drop(runtime);

    println!("== Release 2 again: nothing left to upgrade ==");
    let runtime = open::<v2::Flag>(&path).await?;
    let checkout = runtime.tenant("checkout").await?;
    ensure!(
        checkout.current().env == "staging",
        "the new change is back"
    );
    ensure!(checkout.revision() == Revision(8), "revisions go on");
    drop(checkout);
    runtime.shutdown().await?;
    drop(runtime);

    println!("== Release 1 on release 2's journal ==");
    let runtime = open::<v1::Flag>(&path).await?;
    let error = runtime.tenant("checkout").await.unwrap_err();
    println!("checkout -> {error}");
    ensure!(
        matches!(
            error,
            Error::Unrecoverable {
                source: JournalError::ModelTooNew { .. },
                ..
            }
        ),
        "a newer version is refused: {error}"
    );
    runtime.shutdown().await?;
    drop(runtime);
    std::fs::remove_dir_all(&dir).context("removing the example's journal")?;
    println!("\nmodel evolution checked ✔");
    Ok(())
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<()> {
    run().await
}
