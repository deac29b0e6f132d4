//! `SqliteJournal`'s WAL checkpoints and the order of its transactions:
//! the background checkpointer keeps the WAL bounded and shrinks it after a
//! burst; images and deletions, which commit apart from appends, keep every
//! tenant's order and `flush` its meaning.

#[path = "support/fixtures.rs"]
mod fixtures;

use std::path::{Path, PathBuf};

use fixtures::{entries, image, seqs, tenant, ScratchDir};
use rewind_runtime::{ImageQuery, Journal};
use rewind_store::{SqliteJournal, SqliteOptions};

/// The journal's WAL file.
fn wal(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A file's length; 0 if it does not exist.
fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The journal restarts its WAL near 16 MiB and lets it grow to twice that
/// before forcing a checkpoint; this leaves room for one large commit.
const WAL_BOUND: u64 = 40 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_over_many_commits() {
    let dir = ScratchDir::new("wal-bounded");
    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    let wal = wal(&dir.journal());
    let mut largest = 0;
    // 120 MiB of images and 24k entries: far past any bound without
    // checkpoints.
    for round in 1..=240u64 {
        let first = (round - 1) * 100 + 1;
        journal
            .append(entries("acme", first..=first + 99))
            .await
            .unwrap();
        let mut big = image("acme", first + 99, 0, None);
        big.payload = vec![round as u8; 512 << 10];
        journal.save_image(big).await.unwrap();
        if round > 1 {
            journal
                .delete_image(&tenant("acme"), (first - 1).into())
                .unwrap();
        }
        journal
            .delete_up_to(&tenant("acme"), (first + 99).into())
            .unwrap();
        largest = largest.max(len(&wal));
    }
    assert!(
        largest <= WAL_BOUND,
        "the WAL grew to {largest} bytes, past {WAL_BOUND}"
    );
    assert!(journal.checkpoints() > 0, "no checkpoint ran");
    let latest = journal
        .load_image(&tenant("acme"), &ImageQuery::Latest)
        .unwrap()
        .unwrap();
    assert_eq!((latest.seq.get(), latest.payload[0]), (24_000, 240));
    assert_eq!(journal.highest_seq(&tenant("acme")).unwrap(), 24_000);
    journal.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_shrinks_after_a_burst() {
    let dir = ScratchDir::new("wal-shrinks");
    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    let wal = wal(&dir.journal());
    // One 48 MiB commit: the WAL must hold it whole.
    let mut huge = image("acme", 1, 0, None);
    huge.payload = vec![7; 48 << 20];
    journal.save_image(huge).await.unwrap();
    assert!(len(&wal) > 48 << 20);
    let mut seq = 1;
    while len(&wal) > WAL_BOUND && seq < 500 {
        seq += 1;
        journal.append(entries("acme", seq..=seq)).await.unwrap();
    }
    assert!(
        len(&wal) <= WAL_BOUND,
        "the WAL stays at {} bytes after {seq} more commits",
        len(&wal)
    );
    assert_eq!(
        journal
            .load_image(&tenant("acme"), &ImageQuery::Latest)
            .unwrap()
            .map(|image| image.payload.len()),
        Some(48 << 20)
    );
    journal.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_queued_behind_an_image_of_its_tenant_follows_it() {
    let dir = ScratchDir::new("image-then-append");
    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    // The image sets acme's sequence to 10: the append continues it only if
    // it commits after the image, though appends normally go first.
    for round in 0..50u64 {
        let seq = round * 10 + 10;
        let saved = journal.save_image(image("acme", seq, 0, None));
        let other = journal.append(entries("globex", round + 1..=round + 1));
        let appended = journal.append(entries("acme", seq + 1..=seq + 1));
        saved.await.unwrap();
        other.await.unwrap();
        appended.await.unwrap();
    }
    assert_eq!(journal.highest_seq(&tenant("acme")).unwrap(), 501);
    assert_eq!(journal.highest_seq(&tenant("globex")).unwrap(), 50);
    journal.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_waits_for_the_images_queued_before_it() {
    let dir = ScratchDir::new("flush-images");
    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    journal.append(entries("acme", 1..=3)).await.unwrap();
    let saved = journal.save_image(image("acme", 3, 0, Some("three")));
    let appended = journal.append(entries("globex", 1..=1));
    journal.flush().await.unwrap();
    // Both are durable by now; their own acknowledgements agree.
    let stored = journal
        .load_image(&tenant("acme"), &ImageQuery::Named("three".into()))
        .unwrap();
    assert_eq!(stored.map(|image| image.seq.get()), Some(3));
    assert_eq!(journal.highest_seq(&tenant("globex")).unwrap(), 1);
    saved.await.unwrap();
    appended.await.unwrap();
    journal.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_delete_up_to_deletes_everything_it_covers() {
    let dir = ScratchDir::new("large-delete");
    let journal = SqliteJournal::open(dir.journal(), SqliteOptions::default()).unwrap();
    for chunk in 0..10u64 {
        let first = chunk * 300 + 1;
        journal
            .append(entries("acme", first..=first + 299))
            .await
            .unwrap();
        journal
            .append(entries("globex", first..=first + 299))
            .await
            .unwrap();
    }
    // Well past one deletion transaction's share.
    journal.delete_up_to(&tenant("acme"), 2_500.into()).unwrap();
    let left = journal
        .read(&tenant("acme"), 1.into(), (u64::MAX).into())
        .unwrap();
    assert_eq!(seqs(&left), (2_501..=3_000).collect::<Vec<_>>());
    assert_eq!(journal.highest_seq(&tenant("acme")).unwrap(), 3_000);
    assert_eq!(
        journal
            .read(&tenant("globex"), 1.into(), (u64::MAX).into())
            .unwrap()
            .len(),
        3_000
    );
    // Past the end, and again: nothing left to delete is no error.
    journal
        .delete_up_to(&tenant("acme"), (u64::MAX).into())
        .unwrap();
    journal
        .delete_up_to(&tenant("acme"), (u64::MAX).into())
        .unwrap();
    assert!(journal
        .read(&tenant("acme"), 1.into(), (u64::MAX).into())
        .unwrap()
        .is_empty());
    assert_eq!(journal.highest_seq(&tenant("acme")).unwrap(), 3_000);
    journal.close().unwrap();
}
