//! The product guide's scenarios, with its own values, on `Timeline<Doc>`:
//! named snapshot rollback, time-travel debugging, retention, state diff,
//! exact reads of the past, and times that never go backwards.
//!
//! Time comes from a `ManualClock` set before each step, so every instant in
//! these tests is the one the guide draws.

use std::sync::Arc;

use anyhow::Result;
use rewind_core::{
    AutoTrigger, ChangeKind, Diff, Doc, Error, ManualClock, NamedOptions, Patch, RestoredKind,
    Revision, RevisionInfo, RollbackTarget, SnapshotInfo, SnapshotKind, SnapshotName, StateRef,
    Timeline, TimelineConfig, TimelineError, Timestamp,
};
use serde_json::{json, Value};

fn doc(value: Value) -> Doc {
    Doc::from_json(&value).expect("test documents are shallow")
}

fn patch(value: Value) -> Patch {
    Patch::from_json(&value).expect("test patches are well formed")
}

fn name(text: &str) -> SnapshotName {
    SnapshotName::new(text).expect("test names are valid")
}

/// `hh:mm` on the day of the scenarios, UTC.
fn at(hh_mm: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-14T{hh_mm}:00Z")).expect("valid test time")
}

fn timeline(start: &str, initial: Value) -> Result<(ManualClock, Timeline<Doc>)> {
    let clock = ManualClock::new(at(start));
    let timeline = Timeline::new(
        doc(initial),
        TimelineConfig::default(),
        Arc::new(clock.clone()),
    )?;
    Ok((clock, timeline))
}

/// Everything a read must leave as it was.
#[derive(Debug, PartialEq)]
struct Observed {
    revision: Revision,
    head: Doc,
    history: Vec<RevisionInfo>,
    snapshots: Vec<SnapshotInfo>,
}

fn observe(timeline: &Timeline<Doc>) -> Observed {
    Observed {
        revision: timeline.revision(),
        head: timeline.head().clone(),
        history: timeline.history().cloned().collect(),
        snapshots: timeline.snapshots(),
    }
}

// ----- Scenario 1: named snapshot rollback --------------------------------

fn v2_0_0() -> Doc {
    doc(json!({"version": "2.0.0", "features": {"new_ui": true, "beta": false}, "sessions": 100}))
}

fn current_s6() -> Doc {
    doc(json!({"version": "2.5.0", "features": {"new_ui": true, "beta": true}, "sessions": 150}))
}

/// The guide's "State Evolution Timeline": S0..S6, with "v1.0.0" at S1, an
/// auto snapshot at S3 and "v2.0.0" at S4. Revision i holds state Si.
fn state_evolution() -> Result<(ManualClock, Timeline<Doc>)> {
    let (clock, mut timeline) = timeline(
        "09:00",
        json!({"version": "1.0.0", "features": {"new_ui": false, "beta": false}}),
    )?;
    let steps = [
        // S1: the first release.
        json!([{"op": "add", "path": "/sessions", "value": 0}]),
        // S2: +Sessions added.
        json!([{"op": "replace", "path": "/sessions", "value": 40}]),
        // S3.
        json!([{"op": "replace", "path": "/sessions", "value": 80}]),
        // S4: +Features enabled, v2.0.0.
        json!([
            {"op": "replace", "path": "/version", "value": "2.0.0"},
            {"op": "replace", "path": "/features/new_ui", "value": true},
            {"op": "replace", "path": "/sessions", "value": 100}
        ]),
        // S5.
        json!([{"op": "replace", "path": "/features/beta", "value": true}]),
        // S6: the current state.
        json!([
            {"op": "replace", "path": "/version", "value": "2.5.0"},
            {"op": "replace", "path": "/sessions", "value": 150}
        ]),
    ];
    for (i, step) in steps.into_iter().enumerate() {
        clock.advance_secs(600);
        let commit = timeline.apply(&patch(step))?;
        assert_eq!(commit.revision, Revision(i as u64 + 1));
        match i + 1 {
            1 => {
                timeline.snapshot_named(name("v1.0.0"), NamedOptions::default())?;
            }
            3 => {
                timeline.snapshot_auto(AutoTrigger::Policy);
            }
            4 => {
                timeline.snapshot_named(name("v2.0.0"), NamedOptions::default())?;
            }
            _ => {}
        }
    }
    Ok((clock, timeline))
}

#[test]
fn named_rollback_restores_v2_0_0_exactly_as_a_new_revision() -> Result<()> {
    let (_clock, mut timeline) = state_evolution()?;
    assert_eq!(timeline.head(), &current_s6());
    assert_eq!(timeline.revision(), Revision(6));
    let kinds: Vec<(String, SnapshotKind, Revision)> = timeline
        .snapshots()
        .into_iter()
        .map(|s| (s.name.to_string(), s.kind, s.revision))
        .collect();
    assert_eq!(
        kinds[0],
        ("v1.0.0".into(), SnapshotKind::Named, Revision(1))
    );
    assert_eq!((kinds[1].1, kinds[1].2), (SnapshotKind::Auto, Revision(3)));
    assert_eq!(
        kinds[2],
        ("v2.0.0".into(), SnapshotKind::Named, Revision(4))
    );
    assert_eq!(kinds.len(), 3);

    let outcome = timeline.rollback(&RollbackTarget::Named(name("v2.0.0")))?;

    assert_eq!(timeline.head(), &v2_0_0());
    assert_eq!(timeline.head().to_json(), v2_0_0().to_json());
    // A rollback is a new revision; history is not rewritten.
    assert_eq!(outcome.revision, Revision(7));
    assert_eq!(timeline.revision(), Revision(7));
    assert_eq!(outcome.restored.kind, RestoredKind::Named);
    assert_eq!(outcome.restored.name, Some(name("v2.0.0")));
    assert_eq!(outcome.restored.revision, Revision(4));
    assert_eq!(
        timeline.state_at(&StateRef::Revision(Revision(6)))?,
        current_s6()
    );
    // The rollback's diff goes from S6 to v2.0.0.
    assert_eq!(
        current_s6().apply_patch(&outcome.diff.patch)?,
        v2_0_0(),
        "{}",
        outcome.diff
    );
    let sessions: Vec<(String, i64, i64)> = outcome
        .diff
        .numeric_changes()
        .map(|(p, a, b)| (p.to_string(), a.as_i64().unwrap(), b.as_i64().unwrap()))
        .collect();
    assert_eq!(sessions, [("/sessions".to_string(), 150, 100)]);

    // The present was kept in a pre-rollback auto snapshot.
    let pre = &outcome.pre_rollback;
    assert_eq!(pre.kind, SnapshotKind::Auto);
    assert_eq!(pre.trigger, Some(AutoTrigger::PreRollback));
    assert_eq!(pre.revision, Revision(6));
    assert!(timeline.snapshots().contains(pre));
    assert_eq!(
        timeline.state_at(&StateRef::Snapshot(pre.name.clone()))?,
        current_s6()
    );

    // Latest returns to the present, again as a new revision.
    let back = timeline.rollback(&RollbackTarget::Latest)?;
    assert_eq!(timeline.head(), &current_s6());
    assert_eq!(back.restored.name, Some(pre.name.clone()));
    assert_eq!(timeline.revision(), Revision(8));
    Ok(())
}

// ----- Scenario 2: time-travel debugging ----------------------------------

/// Snapshots `snapN` (N counting from `first`, as the guide numbers them) at
/// each of `times`, each of a different state `{"snapshot": N, "taken":
/// time}`; then the present, one more change later.
fn snapshots_at(
    first: usize,
    times: &[&str],
    present_at: &str,
) -> Result<(ManualClock, Timeline<Doc>)> {
    let (clock, mut timeline) = timeline("08:00", json!({"snapshot": null, "taken": null}))?;
    for (i, time) in (first..).zip(times) {
        clock.set(at(time));
        timeline.apply(&patch(json!([
            {"op": "replace", "path": "/snapshot", "value": i},
            {"op": "replace", "path": "/taken", "value": time}
        ])))?;
        let taken = timeline.snapshot_named(name(&format!("snap{i}")), NamedOptions::default())?;
        assert_eq!(taken.snapshot.created_at, at(time));
    }
    clock.set(at(present_at));
    timeline.apply(&patch(json!([
        {"op": "replace", "path": "/taken", "value": "present"}
    ])))?;
    Ok((clock, timeline))
}

fn snap_state(index: usize, time: &str) -> Doc {
    doc(json!({"snapshot": index, "taken": time}))
}

#[test]
fn rollback_to_12_30_restores_the_12_00_snapshot_and_latest_returns() -> Result<()> {
    let times = ["10:00", "11:00", "12:00", "13:00", "14:00"];
    let (_clock, mut timeline) = snapshots_at(0, &times, "14:30")?;
    let present = timeline.head().clone();
    assert_eq!(present, doc(json!({"snapshot": 4, "taken": "present"})));

    let outcome = timeline.rollback(&RollbackTarget::Time(at("12:30")))?;
    assert_eq!(timeline.head(), &snap_state(2, "12:00"));
    assert_eq!(outcome.restored.name, Some(name("snap2")));
    assert_eq!(outcome.restored.kind, RestoredKind::Named);

    // Before the first snapshot there is nothing to go back to.
    let before = observe(&timeline);
    let err = timeline
        .rollback(&RollbackTarget::Time(at("09:59")))
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeline(TimelineError::NoSnapshotBefore(t)) if t == at("09:59")),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no snapshot taken at or before 2026-03-14T09:59:00Z"
    );
    assert_eq!(observe(&timeline), before);

    // Latest is the pre-rollback snapshot: the present.
    timeline.rollback(&RollbackTarget::Latest)?;
    assert_eq!(timeline.head(), &present);
    Ok(())
}

#[test]
fn debug_session_rollback_to_2_30_pm_restores_the_snapshot_taken_at_2_30() -> Result<()> {
    let times = ["14:00", "14:15", "14:30", "14:45", "15:00"];
    let (_clock, mut timeline) = snapshots_at(1, &times, "15:10")?;
    let present = timeline.head().clone();

    // Inspect without changing anything first.
    let preview = timeline.rollback_dry_run(&RollbackTarget::Time(at("14:30")))?;
    assert_eq!(preview.restored.name, Some(name("snap3")));
    assert_eq!(
        present.apply_patch(&preview.diff.patch)?,
        snap_state(3, "14:30")
    );
    assert_eq!(timeline.head(), &present);

    // A snapshot taken exactly at the instant counts ("at or before").
    let outcome = timeline.rollback(&RollbackTarget::Time(at("14:30")))?;
    assert_eq!(timeline.head(), &snap_state(3, "14:30"));
    assert_eq!(outcome.restored.name, Some(name("snap3")));
    assert_eq!(outcome.diff, preview.diff);

    timeline.rollback(&RollbackTarget::Latest)?;
    assert_eq!(timeline.head(), &present);
    Ok(())
}

// ----- Retention ----------------------------------------------------------

#[test]
fn the_11th_auto_snapshot_prunes_the_1st() -> Result<()> {
    let (clock, mut timeline) = timeline("10:00", json!({"n": 0}))?;
    let mut taken = Vec::new();
    for n in 1..=11 {
        clock.advance_secs(60);
        timeline.apply(&patch(json!([{"op": "replace", "path": "/n", "value": n}])))?;
        let snapshot = timeline.snapshot_auto(AutoTrigger::Policy);
        let expected_pruned = usize::from(n == 11);
        assert_eq!(snapshot.pruned.auto, expected_pruned, "snapshot {n}");
        assert_eq!(snapshot.pruned.named + snapshot.pruned.checkpoint, 0);
        taken.push(snapshot.snapshot);
    }
    let listed: Vec<(SnapshotName, Revision)> = timeline
        .snapshots()
        .into_iter()
        .map(|s| (s.name, s.revision))
        .collect();
    let expected: Vec<(SnapshotName, Revision)> = taken[1..]
        .iter()
        .map(|s| (s.name.clone(), s.revision))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(listed.first().map(|(_, r)| *r), Some(Revision(2)));
    assert_eq!(listed.last().map(|(_, r)| *r), Some(Revision(11)));
    assert_eq!(timeline.snapshot_counts().auto, 10);
    assert!(timeline.snapshot(&taken[0].name).is_none());
    assert!(matches!(
        timeline.state_at(&StateRef::Snapshot(taken[0].name.clone())),
        Err(TimelineError::SnapshotNotFound(n)) if n == taken[0].name
    ));
    Ok(())
}

fn release(n: usize) -> SnapshotName {
    name(&format!("release-{n:02}"))
}

#[test]
fn the_51st_named_snapshot_prunes_the_oldest_unprotected_one() -> Result<()> {
    let (clock, mut timeline) = timeline("10:00", json!({"n": 0}))?;
    for n in 1..=50 {
        clock.advance_secs(60);
        timeline.apply(&patch(json!([{"op": "replace", "path": "/n", "value": n}])))?;
        let options = NamedOptions {
            protected: n <= 2,
            ..NamedOptions::default()
        };
        let taken = timeline.snapshot_named(release(n), options)?;
        assert!(taken.pruned.is_empty(), "snapshot {n}");
    }
    assert_eq!(timeline.snapshot_counts().named, 50);

    let taken = timeline.snapshot_named(release(51), NamedOptions::default())?;
    assert_eq!(taken.pruned.named, 1);
    let names: Vec<SnapshotName> = timeline.snapshots().into_iter().map(|s| s.name).collect();
    let expected: Vec<SnapshotName> = [1, 2].into_iter().chain(4..=51).map(release).collect();
    assert_eq!(names, expected);
    assert!(timeline.snapshot(&release(3)).is_none());
    assert!(timeline.snapshot(&release(1)).is_some_and(|s| s.protected));
    assert_eq!(
        timeline.state_at(&StateRef::Snapshot(release(4)))?,
        doc(json!({"n": 4}))
    );
    Ok(())
}

#[test]
fn with_50_protected_named_snapshots_the_51st_is_refused() -> Result<()> {
    let (_clock, mut timeline) = timeline("10:00", json!({"n": 0}))?;
    let protected = NamedOptions {
        protected: true,
        ..NamedOptions::default()
    };
    for n in 1..=50 {
        timeline.snapshot_named(release(n), protected)?;
    }
    let before = observe(&timeline);
    let err = timeline
        .snapshot_named(release(51), NamedOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeline(TimelineError::QuotaExceeded(_))),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("all 50 named snapshots are protected"),
        "{err}"
    );
    assert_eq!(observe(&timeline), before);
    assert!(timeline.snapshot(&release(51)).is_none());
    Ok(())
}

// ----- State diff ---------------------------------------------------------

fn state_a() -> Value {
    json!({"sessions": 100, "app_data": {"theme": "light", "lang": "en"}, "cache_entries": 50})
}

fn state_b() -> Value {
    json!({
        "sessions": 150,
        "app_data": {"theme": "dark", "lang": "en", "beta": true},
        "cache_entries": 75
    })
}

#[test]
fn diff_of_state_a_and_b_between_two_snapshots() -> Result<()> {
    let (clock, mut timeline) = timeline("10:00", state_a())?;
    timeline.snapshot_named(name("v1.0"), NamedOptions::default())?;
    clock.advance_secs(3600);
    timeline.apply(&patch(json!([
        {"op": "replace", "path": "/sessions", "value": 150},
        {"op": "replace", "path": "/app_data/theme", "value": "dark"},
        {"op": "add", "path": "/app_data/beta", "value": true},
        {"op": "replace", "path": "/cache_entries", "value": 75}
    ])))?;
    assert_eq!(timeline.head(), &doc(state_b()));
    timeline.snapshot_named(name("v2.0"), NamedOptions::default())?;

    let diff = timeline.diff(
        &StateRef::Snapshot(name("v1.0")),
        &StateRef::Snapshot(name("v2.0")),
    )?;

    let numbers: Vec<(String, i64, i64)> = diff
        .numeric_changes()
        .map(|(p, a, b)| (p.to_string(), a.as_i64().unwrap(), b.as_i64().unwrap()))
        .collect();
    assert_eq!(
        numbers,
        [
            ("/cache_entries".to_string(), 50, 75),
            ("/sessions".to_string(), 100, 150)
        ]
    );
    let added: Vec<(String, Option<Doc>)> = diff
        .of_kind(ChangeKind::Added)
        .map(|e| (e.path.to_string(), e.new.clone()))
        .collect();
    assert_eq!(
        added,
        [("/app_data/beta".to_string(), Some(Doc::Bool(true)))]
    );
    let theme: Vec<_> = diff
        .of_kind(ChangeKind::Changed)
        .filter(|e| e.path.to_string() == "/app_data/theme")
        .map(|e| (e.old.clone(), e.new.clone()))
        .collect();
    assert_eq!(theme, [(Some(Doc::from("light")), Some(Doc::from("dark")))]);
    assert_eq!(diff.of_kind(ChangeKind::Removed).count(), 0);
    assert_eq!(
        (
            diff.summary.added,
            diff.summary.removed,
            diff.summary.changed
        ),
        (1, 0, 3)
    );
    assert_eq!(doc(state_a()).apply_patch(&diff.patch)?, doc(state_b()));

    let shown = diff.to_string();
    for line in [
        "sessions: 100 → 150",
        "cache_entries: 50 → 75",
        r#"added_keys: ["app_data.beta"]"#,
        r#"changed_keys: ["app_data.theme"]"#,
    ] {
        assert!(shown.contains(line), "{line:?} missing from:\n{shown}");
    }
    assert!(!shown.contains("removed_keys"), "{shown}");

    // The same answer from plain documents and from revisions.
    assert_eq!(Diff::between(&doc(state_a()), &doc(state_b())), diff);
    assert_eq!(
        timeline.diff(&StateRef::Revision(Revision(0)), &StateRef::Head)?,
        diff
    );
    Ok(())
}

// ----- Reads of the past --------------------------------------------------

#[test]
fn as_of_reads_give_the_exact_state_between_snapshots_and_change_nothing() -> Result<()> {
    let (clock, mut timeline) = timeline("10:00", json!({"sessions": 0}))?;
    timeline.snapshot_named(name("morning"), NamedOptions::default())?;
    for (time, sessions) in [("10:05", 5), ("10:10", 10), ("10:20", 20)] {
        clock.set(at(time));
        timeline.apply(&patch(json!([
            {"op": "replace", "path": "/sessions", "value": sessions}
        ])))?;
    }
    let before = observe(&timeline);

    // Finer than the nearest snapshot (10:00): the revision of 10:10.
    let read = |t: &str| -> Result<i64, TimelineError> {
        let state = timeline.state_at(&StateRef::AsOf(at(t)))?;
        Ok(state["sessions"].as_i64().expect("a number"))
    };
    assert_eq!(read("10:00")?, 0);
    assert_eq!(read("10:04")?, 0);
    assert_eq!(read("10:05")?, 5);
    assert_eq!(read("10:12")?, 10);
    assert_eq!(read("10:19")?, 10);
    assert_eq!(read("23:00")?, 20);
    assert_eq!(
        timeline.revision_at(&StateRef::AsOf(at("10:12")))?,
        Revision(2)
    );
    assert!(matches!(
        timeline.state_at(&StateRef::AsOf(at("09:59"))),
        Err(TimelineError::TimeOutOfRange { .. })
    ));
    // A rollback to the same time goes to the nearest snapshot instead.
    let preview = timeline.rollback_dry_run(&RollbackTarget::Time(at("10:12")))?;
    assert_eq!(preview.restored.name, Some(name("morning")));
    timeline.diff(&StateRef::AsOf(at("10:05")), &StateRef::Head)?;
    timeline.state_at(&StateRef::Snapshot(name("morning")))?;
    timeline.state_at(&StateRef::Revision(Revision(1)))?;

    assert_eq!(observe(&timeline), before);
    assert!(timeline.head().ptr_eq(&before.head));
    Ok(())
}

#[test]
fn recorded_times_never_go_backwards_when_the_clock_does() -> Result<()> {
    let (clock, mut timeline) = timeline("12:00", json!({"n": 0}))?;
    let step = |n: i64| patch(json!([{"op": "replace", "path": "/n", "value": n}]));
    let first = timeline.apply(&step(1))?;
    assert_eq!(first.at, at("12:00"));

    clock.set(at("11:00"));
    let stepped_back = timeline.apply(&step(2))?;
    assert_eq!(stepped_back.at, at("12:00"));
    let snapshot = timeline.snapshot_named(name("during-skew"), NamedOptions::default())?;
    assert_eq!(snapshot.snapshot.created_at, at("12:00"));
    clock.set(at("11:30"));
    let auto = timeline.snapshot_auto(AutoTrigger::Requested);
    assert_eq!(auto.snapshot.created_at, at("12:00"));
    let rollback = timeline.rollback(&RollbackTarget::Revision(Revision(1)))?;
    assert!(rollback.pre_rollback.created_at >= at("12:00"));

    clock.set(at("13:00"));
    let later = timeline.apply(&step(3))?;
    assert_eq!(later.at, at("13:00"));

    let times: Vec<Timestamp> = timeline.history().map(|r| r.at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    let created: Vec<Timestamp> = timeline.snapshots().iter().map(|s| s.created_at).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");
    // Reads by time still find the revision the skewed clock produced.
    assert_eq!(
        timeline.revision_at(&StateRef::AsOf(at("12:30")))?,
        Revision(3)
    );
    Ok(())
}
