//! Model evolution on a committed journal: `tests/data/model-evolution-v1.db`
//! was written by version 1 of the `model_evolution` example's flag model
//! (an image at version 1 and entries after it). Version 2 (a renamed and
//! an added field, `VERSION = 2`, an `upgrade`) reads it back whole; a
//! version 2 that forgot the bump fails with a message that says the model
//! changed, never "corrupt"; version 1 refuses the journal once version 2
//! wrote to it.
//!
//! `REWIND_WRITE_FIXTURES=1 cargo test --test model_evolution` rewrites the
//! fixture (then commit it).

use std::path::{Path, PathBuf};

use rewind::prelude::*;

#[path = "../examples/model_evolution.rs"]
#[allow(dead_code)]
mod example;

use example::{open, v1, v2};

const FIXTURE: &str = "tests/data/model-evolution-v1.db";

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rewind-model-evolution-{label}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A copy of the fixture to open (opening adds a lock and a WAL next to it).
async fn fixture_copy(label: &str) -> PathBuf {
    static WRITTEN: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    if std::env::var_os("REWIND_WRITE_FIXTURES").is_some() {
        WRITTEN.get_or_init(|| write_fixture(&fixture)).await;
    }
    assert!(
        fixture.exists(),
        "{} is missing: REWIND_WRITE_FIXTURES=1 cargo test --test model_evolution",
        fixture.display()
    );
    let path = scratch(label).join("flags.db");
    std::fs::copy(&fixture, &path).unwrap();
    path
}

/// Writes the fixture with version 1, as one self-contained file.
async fn write_fixture(fixture: &Path) {
    let dir = scratch("writing");
    let path = dir.join("flags.db");
    example::write_v1(&path).await.unwrap();
    let _ = std::fs::remove_file(fixture);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("VACUUM INTO ?1", [fixture.to_str().unwrap()])
        .unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// The newest image's payload and the tenant's highest seq, read with SQL.
fn newest_image(path: &Path) -> (u64, String, u64) {
    let raw = rusqlite::Connection::open(path).unwrap();
    let (seq, payload): (i64, Vec<u8>) = raw
        .query_row(
            "SELECT seq, payload FROM images WHERE tenant = 'checkout' ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let highest: i64 = raw
        .query_row(
            "SELECT seq FROM highest_seq WHERE tenant = 'checkout'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    (
        seq as u64,
        String::from_utf8(payload).unwrap(),
        highest as u64,
    )
}

#[tokio::test]
async fn a_version_1_journal_is_read_back_by_version_2_through_its_upgrade() {
    let path = fixture_copy("upgrade").await;
    // The fixture holds a version 1 image with entries after it: both
    // upgrade paths run.
    let (image_seq, image, highest) = newest_image(&path);
    assert!(image.starts_with(r#"{"model_version":1,"#), "{image}");
    assert!(highest > image_seq, "entries follow the image");

    let runtime = open::<v2::Flag>(&path).await.unwrap();
    let checkout = runtime.tenant("checkout").await.unwrap();
    assert_eq!(
        checkout.current(),
        v2::Flag {
            title: "new-checkout".into(),
            enabled: true,
            rollout: 100,
            env: "production".into(),
        }
    );
    // Every revision of the window, upgraded, with its history.
    let history = checkout.history(usize::MAX);
    let revisions: Vec<u64> = history.iter().rev().map(|i| i.revision.get()).collect();
    assert_eq!(revisions, (0..=6).collect::<Vec<_>>());
    let rollouts: Vec<u32> = (0..=6)
        .map(|r| {
            let state = checkout.read_at(&StateRef::Revision(Revision(r))).unwrap();
            assert_eq!(state.title, "new-checkout", "revision {r}");
            assert_eq!(state.env, "production", "revision {r}");
            state.rollout
        })
        .collect();
    assert_eq!(rollouts, [0, 0, 10, 25, 50, 75, 100]);
    let names: Vec<String> = checkout
        .snapshots()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert!(names.contains(&"before-rollout".to_owned()), "{names:?}");
    // An image at version 2 now covers everything.
    let (_, image, _) = newest_image(&path);
    assert!(image.starts_with(r#"{"model_version":2,"#), "{image}");

    // The old snapshot restores (upgraded), and version 2's changes apply.
    checkout
        .rollback_to_named_snapshot("before-rollout")
        .await
        .unwrap();
    assert_eq!(checkout.current().rollout, 0);
    assert!(checkout.current().enabled);
    let moved = checkout
        .apply(v2::FlagChange::MoveTo("staging".into()))
        .await
        .unwrap();
    assert_eq!(moved.revision, Revision(8));
    drop(checkout);
    runtime.shutdown().await.unwrap();
    drop(runtime);

    // Read back again: nothing left to upgrade, same answers.
    let runtime = open::<v2::Flag>(&path).await.unwrap();
    let checkout = runtime.tenant("checkout").await.unwrap();
    assert_eq!(checkout.revision(), Revision(8));
    assert_eq!(checkout.current().env, "staging");
    drop(checkout);
    runtime.shutdown().await.unwrap();
    drop(runtime);

    // Version 1 refuses what version 2 wrote.
    let runtime = open::<v1::Flag>(&path).await.unwrap();
    match runtime.tenant("checkout").await {
        Err(Error::Unrecoverable {
            source:
                JournalError::ModelTooNew {
                    model_version: 1,
                    recorded_version: 2,
                    ..
                },
            ..
        }) => {}
        other => panic!(
            "expected ModelTooNew, got {:?}",
            other.map(|t| t.revision())
        ),
    }
    runtime.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_model_changed_without_an_upgrade_is_not_called_corrupt() {
    let path = fixture_copy("forgetful").await;
    let runtime = open::<v2::Forgetful>(&path).await.unwrap();
    let error = runtime.tenant("checkout").await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            &error,
            Error::Unrecoverable {
                source: JournalError::ModelMismatch {
                    model_version: 2,
                    recorded_version: 1,
                    ..
                },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        message.contains("does not decode with the current model (version 2)"),
        "{message}"
    );
    assert!(message.contains("missing field `title`"), "{message}");
    assert!(message.contains("an upgrade from version 1"), "{message}");
    assert!(!message.contains("corrupt"), "{message}");
    runtime.shutdown().await.unwrap();
}
