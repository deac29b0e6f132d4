//! Journal conformance, after the Akka Persistence TCK: every property is
//! one generic function, run against `MemoryJournal`, against
//! `SqliteJournal` (in a scratch directory) and against an unscoped
//! `PgJournal` (a fresh database of this binary's throwaway PostgreSQL
//! server; skipped, with a loud line, where PostgreSQL is not installed).
//! The three must be indistinguishable through the `Journal` trait.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::sync::OnceLock;

use fixtures::{entries, entry, image, seqs, tenant};
use rewind_core::Timestamp;
use rewind_runtime::{Entry, EntryKind, ImageQuery, Journal, JournalError};
use rewind_store::testing::PgServer;

/// The PostgreSQL server of this test binary, started at its first use;
/// `None` where PostgreSQL is not installed.
fn pg_server() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();
    SERVER.get_or_init(PgServer::start).as_ref()
}

/// Generates `memory::<property>`, `sqlite::<property>` and
/// `postgres::<property>` for each property.
macro_rules! conformance {
    ($($property:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $property() {
                    super::$property(&rewind_store::MemoryJournal::new()).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test]
                async fn $property() {
                    let dir = crate::fixtures::ScratchDir::new(stringify!($property));
                    let options = rewind_store::SqliteOptions::default();
                    let journal = rewind_store::SqliteJournal::open(dir.journal(), options)
                        .expect("open journal");
                    super::$property(&journal).await;
                    journal.close().expect("close journal");
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $property() {
                    let Some(server) = crate::pg_server() else {
                        rewind_store::testing::print_skipped();
                        return;
                    };
                    let url = server.create_database(concat!("conformance_", stringify!($property)));
                    let options = rewind_store::PgOptions::default();
                    let store = rewind_store::PgStore::connect(&url, options).expect("connect");
                    super::$property(&store.journal()).await;
                    store.close().expect("close the store");
                }
            )*
        }
    };
}

conformance!(
    replays_by_range,
    replays_after_delete,
    highest_seq_survives_entry_and_image_deletion,
    batches_are_atomic,
    tenants_are_isolated,
    loads_images_by_name_latest_and_time,
    deletes_images,
    lists_tenants_with_entries_or_images,
    lists_live_tenants,
    flush_completes,
    keeps_resume_marks,
);

async fn replays_by_range(journal: &impl Journal) {
    let acme = tenant("acme");
    journal.append(entries("acme", 1..=4)).await.unwrap();
    journal.append(entries("acme", 5..=10)).await.unwrap();

    assert_eq!(
        journal.read(&acme, 3.into(), 7.into()).unwrap(),
        entries("acme", 3..=7)
    );
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 1..=10)
    );
    assert_eq!(
        journal.read(&acme, 0.into(), 2.into()).unwrap(),
        entries("acme", 1..=2)
    );
    assert_eq!(
        journal.read(&acme, 8.into(), 20.into()).unwrap(),
        entries("acme", 8..=10)
    );
    assert_eq!(
        journal.read(&acme, 5.into(), 5.into()).unwrap(),
        entries("acme", 5..=5)
    );
    assert!(journal
        .read(&acme, 11.into(), 20.into())
        .unwrap()
        .is_empty());
    assert!(
        journal.read(&acme, 7.into(), 3.into()).unwrap().is_empty(),
        "from > to"
    );
    assert!(journal
        .read(&tenant("nobody"), 1.into(), 10.into())
        .unwrap()
        .is_empty());
    assert_eq!(journal.highest_seq(&acme).unwrap(), 10);
    assert_eq!(journal.highest_seq(&tenant("nobody")).unwrap(), 0);
}

async fn replays_after_delete(journal: &impl Journal) {
    let acme = tenant("acme");
    journal.append(entries("acme", 1..=10)).await.unwrap();

    journal.delete_up_to(&acme, 4.into()).unwrap();
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 5..=10)
    );
    assert_eq!(
        seqs(&journal.read(&acme, 3.into(), 6.into()).unwrap()),
        [5, 6]
    );

    journal.delete_up_to(&acme, 2.into()).unwrap(); // below what is gone: no-op
    assert_eq!(
        seqs(&journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap()),
        [5, 6, 7, 8, 9, 10]
    );

    journal.delete_up_to(&acme, 10.into()).unwrap();
    assert!(journal
        .read(&acme, 1.into(), (u64::MAX).into())
        .unwrap()
        .is_empty());
    // The sequence continues where it was.
    journal.append(entries("acme", 11..=12)).await.unwrap();
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 11..=12)
    );
}

async fn highest_seq_survives_entry_and_image_deletion(journal: &impl Journal) {
    let acme = tenant("acme");
    journal.append(entries("acme", 1..=5)).await.unwrap();
    journal
        .save_image(image("acme", 5, 500, Some("v1")))
        .await
        .unwrap();

    journal.delete_up_to(&acme, 5.into()).unwrap();
    assert_eq!(journal.highest_seq(&acme).unwrap(), 5);
    journal.delete_image(&acme, 5.into()).unwrap();
    assert_eq!(journal.highest_seq(&acme).unwrap(), 5);

    // A seq is never reused: the next entry must be 6.
    let reused = journal.append(vec![entry("acme", 1)]).await;
    assert!(
        matches!(
            reused,
            Err(JournalError::OutOfSequence { seq, highest, .. }) if seq == 1 && highest == 5
        ),
        "{reused:?}"
    );
    journal.append(vec![entry("acme", 6)]).await.unwrap();
    assert_eq!(journal.highest_seq(&acme).unwrap(), 6);

    // An image counts as stored: a tenant known only by its image continues
    // after it, and deleting the image does not lower that.
    let imported = tenant("imported");
    journal
        .save_image(image("imported", 7, 700, None))
        .await
        .unwrap();
    assert_eq!(journal.highest_seq(&imported).unwrap(), 7);
    journal.delete_image(&imported, 7.into()).unwrap();
    assert_eq!(journal.highest_seq(&imported).unwrap(), 7);
    journal.append(vec![entry("imported", 8)]).await.unwrap();
}

async fn batches_are_atomic(journal: &impl Journal) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    journal.append(vec![entry("acme", 1)]).await.unwrap();

    // globex's entry is valid, acme's second is not: nothing is stored.
    let batch = vec![entry("globex", 1), entry("acme", 2), entry("acme", 4)];
    let refused = journal.append(batch).await;
    match refused {
        Err(JournalError::OutOfSequence {
            tenant,
            seq,
            highest,
        }) => {
            assert_eq!((tenant.as_str(), seq.get(), highest.get()), ("acme", 4, 2));
        }
        other => panic!("expected OutOfSequence, got {other:?}"),
    }
    assert_eq!(
        seqs(&journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap()),
        [1]
    );
    assert!(journal
        .read(&globex, 1.into(), (u64::MAX).into())
        .unwrap()
        .is_empty());
    assert_eq!(journal.highest_seq(&acme).unwrap(), 1);
    assert_eq!(journal.highest_seq(&globex).unwrap(), 0);
    assert!(!journal.tenants().unwrap().contains(&globex));

    // Other ways to break the sequence: a gap, a duplicate, a seq 0.
    for bad in [
        vec![entry("acme", 3)],
        vec![entry("acme", 2), entry("acme", 2)],
        vec![entry("globex", 0)],
        vec![entry("acme", 1)],
    ] {
        let outcome = journal.append(bad.clone()).await;
        assert!(
            matches!(outcome, Err(JournalError::OutOfSequence { .. })),
            "{bad:?} gave {outcome:?}"
        );
    }
    assert_eq!(
        seqs(&journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap()),
        [1]
    );

    // A valid interleaved batch of two tenants goes in whole.
    let batch = vec![entry("globex", 1), entry("acme", 2), entry("globex", 2)];
    journal.append(batch).await.unwrap();
    assert_eq!(
        seqs(&journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap()),
        [1, 2]
    );
    assert_eq!(
        journal.read(&globex, 1.into(), (u64::MAX).into()).unwrap(),
        entries("globex", 1..=2)
    );
    // An empty batch is trivially durable.
    journal.append(Vec::new()).await.unwrap();
}

async fn tenants_are_isolated(journal: &impl Journal) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    journal.append(entries("acme", 1..=3)).await.unwrap();
    journal.append(entries("globex", 1..=3)).await.unwrap();
    journal
        .save_image(image("acme", 3, 30, Some("v1")))
        .await
        .unwrap();
    journal
        .save_image(image("globex", 3, 30, Some("v1")))
        .await
        .unwrap();

    assert_eq!(
        journal.read(&acme, 1.into(), 3.into()).unwrap(),
        entries("acme", 1..=3)
    );
    assert_eq!(
        journal.read(&globex, 1.into(), 3.into()).unwrap(),
        entries("globex", 1..=3)
    );

    journal.delete_up_to(&acme, 3.into()).unwrap();
    journal.delete_image(&acme, 3.into()).unwrap();
    assert!(journal.read(&acme, 1.into(), 3.into()).unwrap().is_empty());
    assert_eq!(
        journal.read(&globex, 1.into(), 3.into()).unwrap(),
        entries("globex", 1..=3)
    );
    assert_eq!(
        journal.load_image(&globex, &ImageQuery::Latest).unwrap(),
        Some(image("globex", 3, 30, Some("v1")))
    );
    assert_eq!(
        journal.load_image(&acme, &ImageQuery::Latest).unwrap(),
        None
    );

    journal.append(vec![entry("globex", 4)]).await.unwrap();
    assert_eq!(journal.highest_seq(&acme).unwrap(), 3);
    assert_eq!(journal.highest_seq(&globex).unwrap(), 4);
}

async fn loads_images_by_name_latest_and_time(journal: &impl Journal) {
    let acme = tenant("acme");
    journal.append(entries("acme", 1..=8)).await.unwrap();
    for saved in [
        image("acme", 2, 100, Some("v1")),
        image("acme", 4, 200, None),
        image("acme", 6, 300, Some("v1")),
        image("acme", 8, 400, Some("v2")),
    ] {
        journal.save_image(saved).await.unwrap();
    }
    let load = |query: ImageQuery| {
        journal
            .load_image(&acme, &query)
            .unwrap()
            .map(|found| found.seq.get())
    };
    let at = Timestamp::from_unix_micros;

    assert_eq!(
        journal.load_image(&acme, &ImageQuery::Latest).unwrap(),
        Some(image("acme", 8, 400, Some("v2"))),
        "an image comes back whole"
    );
    assert_eq!(
        load(ImageQuery::Named("v1".into())),
        Some(6),
        "newest of the name"
    );
    assert_eq!(load(ImageQuery::Named("v2".into())), Some(8));
    assert_eq!(load(ImageQuery::Named("v3".into())), None);
    assert_eq!(load(ImageQuery::AtOrBefore(at(250))), Some(4));
    assert_eq!(load(ImageQuery::AtOrBefore(at(300))), Some(6), "inclusive");
    assert_eq!(load(ImageQuery::AtOrBefore(at(10_000))), Some(8));
    assert_eq!(load(ImageQuery::AtOrBefore(at(100))), Some(2));
    assert_eq!(
        load(ImageQuery::AtOrBefore(at(99))),
        None,
        "none before the first"
    );
    assert_eq!(
        journal
            .load_image(&tenant("nobody"), &ImageQuery::Latest)
            .unwrap(),
        None
    );

    // Saving again at the same seq replaces the image.
    journal
        .save_image(image("acme", 8, 450, Some("v2-final")))
        .await
        .unwrap();
    assert_eq!(load(ImageQuery::Named("v2".into())), None);
    assert_eq!(load(ImageQuery::Named("v2-final".into())), Some(8));
}

async fn deletes_images(journal: &impl Journal) {
    let acme = tenant("acme");
    journal.append(entries("acme", 1..=8)).await.unwrap();
    for saved in [
        image("acme", 2, 100, Some("v1")),
        image("acme", 6, 300, Some("v1")),
        image("acme", 8, 400, None),
    ] {
        journal.save_image(saved).await.unwrap();
    }
    let load = |query: ImageQuery| {
        journal
            .load_image(&acme, &query)
            .unwrap()
            .map(|found| found.seq.get())
    };

    journal.delete_image(&acme, 8.into()).unwrap();
    assert_eq!(load(ImageQuery::Latest), Some(6));
    journal.delete_image(&acme, 6.into()).unwrap();
    assert_eq!(load(ImageQuery::Named("v1".into())), Some(2));
    assert_eq!(
        load(ImageQuery::AtOrBefore(Timestamp::from_unix_micros(350))),
        Some(2)
    );
    journal.delete_image(&acme, 5.into()).unwrap(); // no image there: nothing to do
    journal.delete_image(&acme, 2.into()).unwrap();
    assert_eq!(load(ImageQuery::Latest), None);
    // Entries are untouched.
    assert_eq!(
        journal.read(&acme, 1.into(), (u64::MAX).into()).unwrap(),
        entries("acme", 1..=8)
    );
}

async fn lists_tenants_with_entries_or_images(journal: &impl Journal) {
    assert!(journal.tenants().unwrap().is_empty());
    journal.append(entries("globex", 1..=2)).await.unwrap();
    journal
        .save_image(image("acme", 1, 10, None))
        .await
        .unwrap(); // image only
    journal.append(entries("initech", 1..=1)).await.unwrap();
    assert_eq!(
        journal.tenants().unwrap(),
        [tenant("acme"), tenant("globex"), tenant("initech")],
        "ordered by id"
    );

    journal.delete_up_to(&tenant("globex"), 2.into()).unwrap();
    journal.delete_image(&tenant("acme"), 1.into()).unwrap();
    assert_eq!(journal.tenants().unwrap(), [tenant("initech")]);
}

/// `live_tenants`: those whose newest record is not a `delete`, including
/// one whose entries an image covers and one re-created after a delete.
async fn lists_live_tenants(journal: &impl Journal) {
    let with_kind = |tenant_id: &str, seq: u64, kind: EntryKind| Entry {
        kind,
        ..entry(tenant_id, seq)
    };
    journal.append(entries("acme", 1..=3)).await.unwrap();
    journal.append(entries("globex", 1..=2)).await.unwrap();
    journal
        .append(vec![with_kind("globex", 3, EntryKind::Delete)])
        .await
        .unwrap();
    journal.append(entries("initech", 1..=4)).await.unwrap();
    journal
        .save_image(image("initech", 4, 40, None))
        .await
        .unwrap();
    journal.delete_up_to(&tenant("initech"), 4.into()).unwrap();
    journal.append(entries("hooli", 1..=2)).await.unwrap();
    journal
        .append(vec![
            with_kind("hooli", 3, EntryKind::Delete),
            with_kind("hooli", 4, EntryKind::Create),
        ])
        .await
        .unwrap();
    assert_eq!(
        journal.live_tenants().unwrap(),
        [tenant("acme"), tenant("hooli"), tenant("initech")],
        "ordered by id, the deleted one left out"
    );
}

async fn flush_completes(journal: &impl Journal) {
    journal.flush().await.unwrap();
    journal.append(entries("acme", 1..=3)).await.unwrap();
    journal.flush().await.unwrap();
    assert_eq!(journal.highest_seq(&tenant("acme")).unwrap(), 3);
}

/// Resume marks: set (twice is once), cleared (clearing an unmarked tenant
/// is no error), listed in id order, apart from the tenants' records.
async fn keeps_resume_marks(journal: &impl Journal) {
    assert!(journal.resume_marks().unwrap().is_empty());
    journal.set_resume_mark(&tenant("globex"), true).unwrap();
    journal.set_resume_mark(&tenant("acme"), true).unwrap();
    journal.set_resume_mark(&tenant("acme"), true).unwrap();
    journal.set_resume_mark(&tenant("initech"), false).unwrap();
    assert_eq!(
        journal.resume_marks().unwrap(),
        [tenant("acme"), tenant("globex")]
    );
    journal.set_resume_mark(&tenant("globex"), false).unwrap();
    assert_eq!(journal.resume_marks().unwrap(), [tenant("acme")]);
    assert!(journal.tenants().unwrap().is_empty(), "a mark is no record");
}

/// A SQLite journal's marks survive closing and opening it again.
#[tokio::test]
async fn sqlite_resume_marks_survive_a_reopen() {
    let dir = fixtures::ScratchDir::new("marks_reopen");
    let open = || {
        rewind_store::SqliteJournal::open(dir.journal(), rewind_store::SqliteOptions::default())
            .expect("open journal")
    };
    let journal = open();
    journal.set_resume_mark(&tenant("acme"), true).unwrap();
    journal.close().unwrap();
    let journal = open();
    assert_eq!(journal.resume_marks().unwrap(), [tenant("acme")]);
    journal.close().unwrap();
}
