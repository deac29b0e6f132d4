//! Every way the core refuses input: each variant of `InvalidInput`,
//! `PatchErrorKind` and `TimelineError` that the core can produce is reached
//! here, its message names the object involved, and a refused timeline
//! operation leaves the timeline exactly as it was (revision, head, history,
//! snapshots, transactions).

use std::fmt::Debug;
use std::sync::Arc;

use anyhow::Result;
use rewind_core::{
    AutoTrigger, Doc, Error, InvalidInput, ManualClock, NamedOptions, Patch, PatchError,
    PatchErrorKind, Revision, RevisionInfo, RollbackPolicy, RollbackTarget, SnapshotCounts,
    SnapshotInfo, SnapshotName, StateRef, TenantId, Timeline, TimelineConfig, TimelineError,
    Timestamp, TransactionId, TransactionInfo, TransactionOutcome, DEFAULT_MAX_DEPTH,
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

fn at(hh_mm: &str) -> Timestamp {
    Timestamp::parse_rfc3339(&format!("2026-03-14T{hh_mm}:00Z")).expect("valid test time")
}

/// Value nested `levels` arrays deep around `1`.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!([inner]))
}

fn timeline_with(config: TimelineConfig) -> Result<(ManualClock, Timeline<Doc>)> {
    let clock = ManualClock::new(at("10:00"));
    let timeline = Timeline::new(
        doc(json!({"version": "1.0.0", "list": [1, 2], "a": 1, "obj": {"b": {}}})),
        config,
        Arc::new(clock.clone()),
    )?;
    Ok((clock, timeline))
}

/// A timeline with something of every kind in it: revisions, a named, a
/// protected and an auto snapshot, a running transaction with a checkpoint
/// and a finished one. Returns the running transaction.
fn busy_timeline() -> Result<(ManualClock, Timeline<Doc>, TransactionId)> {
    let (clock, mut timeline) = timeline_with(TimelineConfig::default())?;
    timeline.snapshot_named(name("v1.0.0"), NamedOptions::default())?;
    clock.set(at("11:00"));
    timeline.apply(&patch(json!([{"op": "replace", "path": "/a", "value": 2}])))?;
    let protected = NamedOptions {
        protected: true,
        ..NamedOptions::default()
    };
    timeline.snapshot_named(name("prod"), protected)?;
    clock.set(at("12:00"));
    timeline.snapshot_auto(AutoTrigger::Requested);
    let finished = timeline.begin_transaction();
    timeline.finish_transaction(finished, TransactionOutcome::Committed)?;
    let running = timeline.begin_transaction();
    timeline.apply_step(
        running,
        &name("step-1"),
        &patch(json!([{"op": "add", "path": "/list/-", "value": 3}])),
    )?;
    timeline.checkpoint(running, name("step-1"))?;
    Ok((clock, timeline, running))
}

/// Everything a refused operation must leave as it was.
#[derive(Debug, PartialEq)]
struct Observed {
    revision: Revision,
    head: Doc,
    history: Vec<RevisionInfo>,
    snapshots: Vec<SnapshotInfo>,
    transactions: Vec<TransactionInfo>,
    counts: SnapshotCounts,
}

fn observe(timeline: &Timeline<Doc>) -> Observed {
    Observed {
        revision: timeline.revision(),
        head: timeline.head().clone(),
        history: timeline.history().cloned().collect(),
        snapshots: timeline.snapshots(),
        transactions: timeline.transactions(),
        counts: timeline.snapshot_counts(),
    }
}

/// Runs an operation that must fail, checks that the timeline did not change,
/// and returns the error.
fn refused<T: Debug, E: Debug>(
    timeline: &mut Timeline<Doc>,
    op: impl FnOnce(&mut Timeline<Doc>) -> Result<T, E>,
) -> E {
    let before = observe(timeline);
    let err = match op(timeline) {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(err) => err,
    };
    assert_eq!(observe(timeline), before, "changed by refused {err:?}");
    assert!(
        timeline.head().ptr_eq(&before.head),
        "head rebuilt by {err:?}"
    );
    err
}

fn timeline_error(err: Error) -> TimelineError {
    match err {
        Error::Timeline(err) => err,
        other => panic!("expected a timeline error, got {other:?}"),
    }
}

// ----- InvalidInput -------------------------------------------------------

#[test]
fn snapshot_names_outside_the_rules_are_rejected() {
    let too_long = "x".repeat(129);
    for (bad, reason) in [
        ("", "it is empty"),
        ("v2 beta", "character ' ' is not allowed"),
        ("a/b", "character '/' is not allowed"),
        ("ünï", "character 'ü' is not allowed"),
        (too_long.as_str(), "longer than 128 characters"),
    ] {
        let err = SnapshotName::new(bad).unwrap_err();
        assert!(
            matches!(&err, InvalidInput::SnapshotName { name, .. } if name == bad),
            "{bad:?}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(reason), "{text}");
        assert!(text.starts_with(&format!("invalid snapshot name '{bad}'")));
    }
    assert!(SnapshotName::new("x".repeat(128)).is_ok());
    // Names also refuse to deserialize.
    assert!(serde_json::from_value::<SnapshotName>(json!("no spaces")).is_err());
}

#[test]
fn the_auto_prefix_is_reserved_for_auto_snapshots() -> Result<()> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let err = refused(&mut timeline, |t| {
        t.snapshot_named(name("auto_12345"), NamedOptions::default())
    });
    assert!(
        matches!(&err, Error::Input(InvalidInput::ReservedName { name: n, .. }) if n.as_str() == "auto_12345"),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .starts_with("snapshot name 'auto_12345' is reserved"));
    Ok(())
}

#[test]
fn tenant_ids_outside_the_rules_are_rejected() {
    for bad in ["", "acme:corp", "acme corp", &"t".repeat(65)] {
        let err = TenantId::new(bad).unwrap_err();
        assert!(
            matches!(&err, InvalidInput::TenantId { id, .. } if id == bad),
            "{bad:?}: {err:?}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("invalid tenant id '{bad}'")));
    }
    assert!(TenantId::new("acme_corp").is_ok());
}

#[test]
fn times_must_be_rfc3339() {
    for bad in [
        "12:30",
        "yesterday",
        "2026-03-14 12:30",
        "2026-13-01T00:00:00Z",
    ] {
        let err = Timestamp::parse_rfc3339(bad).unwrap_err();
        assert!(
            matches!(&err, InvalidInput::Timestamp { input, .. } if input == bad),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("invalid time '{bad}'")));
    }
    assert!(serde_json::from_value::<Timestamp>(json!("noon")).is_err());
}

#[test]
fn documents_deeper_than_the_limit_are_rejected_without_overflowing() {
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let err = Doc::parse(&deep).unwrap_err();
    assert_eq!(
        err,
        InvalidInput::TooDeep {
            limit: DEFAULT_MAX_DEPTH
        }
    );
    assert_eq!(
        err.to_string(),
        "document nests deeper than the limit of 128 levels"
    );
    assert!(matches!(
        Doc::from_json(&nested(200)),
        Err(InvalidInput::TooDeep { limit: 128 })
    ));
    // Through serde the same input is an error too (serde_json's own
    // recursion limit of 128 may answer first).
    assert!(serde_json::from_str::<Doc>(&deep).is_err());
    // A million levels is refused just the same, not a stack overflow.
    let hostile = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    assert!(matches!(
        Doc::parse(&hostile),
        Err(InvalidInput::TooDeep { .. })
    ));
}

#[test]
fn other_document_input_errors() {
    assert!(matches!(Doc::parse("{"), Err(InvalidInput::Json(_))));
    assert!(matches!(Doc::parse("1 2"), Err(InvalidInput::Json(_))));
    let err = Doc::try_from(f64::NAN).unwrap_err();
    assert!(matches!(err, InvalidInput::NonFiniteNumber(n) if n.is_nan()));
    assert!(matches!(
        Doc::try_from(f64::INFINITY),
        Err(InvalidInput::NonFiniteNumber(_))
    ));
    assert_eq!(err.to_string(), "number NaN cannot be represented in JSON");
}

#[test]
fn limits_that_cannot_work_are_rejected() {
    for (config, field) in [
        (
            TimelineConfig {
                history_limit: 0,
                ..TimelineConfig::default()
            },
            "history_limit",
        ),
        (
            TimelineConfig {
                auto_limit: 0,
                ..TimelineConfig::default()
            },
            "auto_limit",
        ),
        (
            TimelineConfig {
                named_limit: 0,
                ..TimelineConfig::default()
            },
            "named_limit",
        ),
    ] {
        let err = Timeline::new(
            Doc::object(),
            config,
            Arc::new(ManualClock::new(at("10:00"))),
        )
        .unwrap_err();
        assert!(matches!(&err, InvalidInput::Config(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("invalid configuration: {field}")),
            "{text}"
        );
    }
}

// ----- PatchErrorKind -----------------------------------------------------

/// Parses and applies `patch` on the busy timeline, expecting a failure; an
/// apply failure must be a `Rejected` wrapping the same `PatchError` that
/// `Doc::apply_patch` gives, and must leave the timeline unchanged.
fn patch_failure(patch: Value) -> Result<PatchError> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let parsed = match Patch::from_json(&patch) {
        Err(err) => return Ok(err),
        Ok(parsed) => parsed,
    };
    let direct = timeline.head().apply_patch(&parsed).unwrap_err();
    let err = refused(&mut timeline, |t| t.apply(&parsed));
    let TimelineError::Rejected(rejected) = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    let inner = rejected
        .downcast_ref::<PatchError>()
        .expect("Doc rejects changes with a PatchError");
    assert_eq!(inner, &direct);
    assert_eq!(err.to_string(), format!("change rejected: {direct}"));
    Ok(direct)
}

#[test]
fn a_patch_must_be_an_array_of_operation_objects() -> Result<()> {
    let err = patch_failure(json!({"op": "add", "path": "/a", "value": 1}))?;
    assert_eq!(err.kind, PatchErrorKind::NotAnArray);
    assert_eq!(err.op, None);
    assert_eq!(
        err.to_string(),
        "a patch must be a JSON array of operations"
    );
    assert!(matches!(
        Patch::parse("[{"),
        Err(PatchError {
            kind: PatchErrorKind::Malformed(_),
            op: None
        })
    ));
    Ok(())
}

#[test]
fn malformed_operations_are_rejected_at_parse_with_their_index() -> Result<()> {
    let ok = json!({"op": "test", "path": "/a", "value": 2});
    for (bad, message) in [
        (json!("add"), "an operation must be a JSON object"),
        (json!({"path": "/a", "value": 1}), "missing 'op' member"),
        (json!({"op": 1, "path": "/a"}), "'op' must be a string"),
        (
            json!({"op": "spam", "path": "/a"}),
            "unknown op 'spam' (expected add, remove, replace, move, copy or test)",
        ),
        (json!({"op": "add", "path": "/a"}), "missing 'value' member"),
        (
            json!({"op": "replace", "path": "/a"}),
            "missing 'value' member",
        ),
        (
            json!({"op": "test", "path": "/a"}),
            "missing 'value' member",
        ),
        (json!({"op": "add", "value": 1}), "missing 'path' member"),
        (json!({"op": "remove"}), "missing 'path' member"),
        (json!({"op": "move", "path": "/b"}), "missing 'from' member"),
        (json!({"op": "copy", "path": "/b"}), "missing 'from' member"),
        (
            json!({"op": "remove", "path": 5}),
            "'path' must be a string holding a JSON Pointer",
        ),
        (
            json!({"op": "copy", "from": null, "path": "/b"}),
            "'from' must be a string holding a JSON Pointer",
        ),
    ] {
        let err = patch_failure(json!([ok.clone(), bad.clone()]))?;
        assert_eq!(err.op, Some(1), "{bad}");
        assert_eq!(err.kind, PatchErrorKind::Malformed(message.into()), "{bad}");
        assert_eq!(
            err.to_string(),
            format!("patch operation 1 failed: {message}")
        );
    }
    // Removing the whole document parses but cannot be applied.
    let err = patch_failure(json!([{"op": "remove", "path": ""}]))?;
    assert!(matches!(err.kind, PatchErrorKind::Malformed(m) if m.contains("whole document")));
    Ok(())
}

#[test]
fn pointers_must_follow_rfc_6901() -> Result<()> {
    for (path, reason) in [
        ("a/b", "it must be empty or start with '/'"),
        ("/a~2", "'~' must be followed by '0' or '1'"),
        ("/a~", "'~' must be followed by '0' or '1'"),
    ] {
        let err = patch_failure(json!([{"op": "remove", "path": path}]))?;
        assert_eq!(
            err.kind,
            PatchErrorKind::InvalidPointer {
                pointer: path.into(),
                reason
            }
        );
        assert_eq!(
            err.to_string(),
            format!("patch operation 0 failed: invalid JSON Pointer '{path}': {reason}")
        );
    }
    let err = patch_failure(json!([{"op": "move", "from": "x", "path": "/a"}]))?;
    assert!(matches!(err.kind, PatchErrorKind::InvalidPointer { pointer, .. } if pointer == "x"));
    Ok(())
}

#[test]
fn missing_locations_are_path_not_found() -> Result<()> {
    for (op, missing) in [
        (json!({"op": "remove", "path": "/missing"}), "/missing"),
        (
            json!({"op": "replace", "path": "/missing", "value": 1}),
            "/missing",
        ),
        (
            json!({"op": "test", "path": "/missing", "value": 1}),
            "/missing",
        ),
        (
            json!({"op": "add", "path": "/missing/x", "value": 1}),
            "/missing/x",
        ),
        (
            json!({"op": "copy", "from": "/missing", "path": "/x"}),
            "/missing",
        ),
        (
            json!({"op": "move", "from": "/missing", "path": "/x"}),
            "/missing",
        ),
        (
            json!({"op": "move", "from": "/missing", "path": "/missing"}),
            "/missing",
        ),
        (json!({"op": "replace", "path": "/a/b", "value": 1}), "/a/b"),
        (json!({"op": "remove", "path": "/a/b"}), "/a/b"),
    ] {
        let err = patch_failure(json!([op.clone()]))?;
        assert!(
            matches!(&err.kind, PatchErrorKind::PathNotFound(p) if p.to_string() == missing),
            "{op}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("patch operation 0 failed: nothing at '{missing}'")
        );
    }
    Ok(())
}

#[test]
fn array_indexes_must_be_valid_and_in_bounds() -> Result<()> {
    for (op, token) in [
        (json!({"op": "add", "path": "/list/01", "value": 0}), "01"),
        (json!({"op": "replace", "path": "/list/x", "value": 0}), "x"),
        (json!({"op": "remove", "path": "/list/-1"}), "-1"),
        (json!({"op": "remove", "path": "/list/-"}), "-"),
    ] {
        let err = patch_failure(json!([op.clone()]))?;
        assert!(
            matches!(&err.kind, PatchErrorKind::InvalidIndex { token: t, .. } if t == token),
            "{op}: {err:?}"
        );
        assert!(err
            .to_string()
            .contains(&format!("'{token}' is not a valid array index")));
    }
    // The busy timeline's list is [1, 2, 3].
    for (op, index) in [
        (json!({"op": "add", "path": "/list/5", "value": 0}), 5),
        (json!({"op": "remove", "path": "/list/3"}), 3),
        (json!({"op": "replace", "path": "/list/3", "value": 0}), 3),
    ] {
        let err = patch_failure(json!([op.clone()]))?;
        assert!(
            matches!(&err.kind, PatchErrorKind::IndexOutOfBounds { index: i, len: 3, .. } if *i == index),
            "{op}: {err:?}"
        );
        assert!(err.to_string().contains(&format!(
            "index {index} is out of bounds at '{}' (array length 3)",
            op["path"].as_str().unwrap()
        )));
    }
    Ok(())
}

#[test]
fn nothing_can_be_added_inside_a_scalar() -> Result<()> {
    let err = patch_failure(json!([{"op": "add", "path": "/a/b", "value": 1}]))?;
    assert!(matches!(&err.kind, PatchErrorKind::NotAContainer(p) if p.to_string() == "/a/b"));
    assert_eq!(
        err.to_string(),
        "patch operation 0 failed: '/a/b' is not inside an object or array"
    );
    Ok(())
}

#[test]
fn a_failed_test_names_the_location_and_undoes_earlier_ops() -> Result<()> {
    let err = patch_failure(json!([
        {"op": "replace", "path": "/version", "value": "9.9.9"},
        {"op": "test", "path": "/version", "value": "1.0.0"}
    ]))?;
    assert_eq!(err.op, Some(1));
    assert!(matches!(&err.kind, PatchErrorKind::TestFailed(p) if p.to_string() == "/version"));
    assert_eq!(
        err.to_string(),
        "patch operation 1 failed: test failed: the value at '/version' differs"
    );
    Ok(())
}

#[test]
fn a_value_cannot_move_into_its_own_child() -> Result<()> {
    let err = patch_failure(json!([{"op": "move", "from": "/obj", "path": "/obj/b/c"}]))?;
    assert!(matches!(
        &err.kind,
        PatchErrorKind::MoveIntoChild { from, path }
            if from.to_string() == "/obj" && path.to_string() == "/obj/b/c"
    ));
    assert_eq!(
        err.to_string(),
        "patch operation 0 failed: cannot move '/obj' into its own child '/obj/b/c'"
    );
    Ok(())
}

#[test]
fn patches_cannot_nest_documents_past_the_limit() -> Result<()> {
    // Too deep as a value: refused while parsing.
    let err = patch_failure(json!([{"op": "add", "path": "/x", "value": nested(200)}]))?;
    assert_eq!(err.op, Some(0));
    assert_eq!(
        err.kind,
        PatchErrorKind::Value(InvalidInput::TooDeep { limit: 128 })
    );
    // Within the limit as a value, too deep where it is put: refused while
    // applying. `/obj/b` is 2 levels down; 127 more makes 129.
    let err = patch_failure(json!([{"op": "add", "path": "/obj/b/c", "value": nested(127)}]))?;
    assert_eq!(err.kind, PatchErrorKind::TooDeep { limit: 128 });
    assert_eq!(
        err.to_string(),
        "patch operation 0 failed: the result would nest deeper than the limit of 128 levels"
    );
    let err = patch_failure(json!([
        {"op": "add", "path": "/deep", "value": nested(126)},
        {"op": "copy", "from": "/deep", "path": "/obj/b/c"}
    ]))?;
    assert_eq!(err.op, Some(1));
    assert_eq!(err.kind, PatchErrorKind::TooDeep { limit: 128 });
    Ok(())
}

// ----- TimelineError ------------------------------------------------------

#[test]
fn unknown_snapshots_are_not_found() -> Result<()> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let v2 = name("v2.0.0");
    let err = timeline_error(refused(&mut timeline, |t| {
        t.rollback(&RollbackTarget::Named(v2.clone()))
    }));
    assert!(matches!(&err, TimelineError::SnapshotNotFound(n) if n == &v2));
    assert_eq!(err.to_string(), "snapshot 'v2.0.0' not found");

    for err in [
        timeline_error(refused(&mut timeline, |t| {
            t.rollback_dry_run(&RollbackTarget::Named(v2.clone()))
        })),
        refused(&mut timeline, |t| t.delete_snapshot(&v2)),
        refused(&mut timeline, |t| t.protect(&v2, true)),
        refused(&mut timeline, |t| {
            t.state_at(&StateRef::Snapshot(v2.clone()))
        }),
        timeline_error(refused(&mut timeline, |t| {
            t.diff(&StateRef::Head, &StateRef::Snapshot(v2.clone()))
        })),
    ] {
        assert_eq!(err.to_string(), "snapshot 'v2.0.0' not found");
    }
    Ok(())
}

#[test]
fn a_named_snapshot_name_is_used_once() -> Result<()> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let err = timeline_error(refused(&mut timeline, |t| {
        t.snapshot_named(name("v1.0.0"), NamedOptions::default())
    }));
    assert!(matches!(&err, TimelineError::SnapshotExists(n) if n.as_str() == "v1.0.0"));
    assert_eq!(
        err.to_string(),
        "snapshot 'v1.0.0' already exists (ask for replace to overwrite it)"
    );
    Ok(())
}

#[test]
fn protected_snapshots_cannot_be_deleted_or_replaced() -> Result<()> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let prod = name("prod");
    let err = refused(&mut timeline, |t| t.delete_snapshot(&prod));
    assert!(matches!(&err, TimelineError::SnapshotProtected(n) if n == &prod));
    assert_eq!(
        err.to_string(),
        "snapshot 'prod' is protected; unprotect it before deleting it"
    );
    let replace = NamedOptions {
        replace: true,
        ..NamedOptions::default()
    };
    let err = timeline_error(refused(&mut timeline, |t| {
        t.snapshot_named(prod.clone(), replace)
    }));
    assert!(matches!(&err, TimelineError::SnapshotProtected(n) if n == &prod));
    Ok(())
}

#[test]
fn revisions_beyond_the_head_or_pruned_from_the_window_are_not_found() -> Result<()> {
    let (_clock, mut timeline) = timeline_with(TimelineConfig {
        history_limit: 3,
        ..TimelineConfig::default()
    })?;
    timeline.apply(&patch(json!([{"op": "replace", "path": "/a", "value": 2}])))?;
    timeline.snapshot_named(name("keeps-2"), NamedOptions::default())?;
    timeline.apply(&patch(json!([{"op": "replace", "path": "/a", "value": 3}])))?;
    for n in 4..=6 {
        timeline.apply(&patch(json!([{"op": "replace", "path": "/a", "value": n}])))?;
    }
    assert_eq!(timeline.revision(), Revision(5));
    assert_eq!(timeline.oldest_revision(), Revision(3));

    let beyond = refused(&mut timeline, |t| {
        t.state_at(&StateRef::Revision(Revision(9)))
    });
    assert!(matches!(
        beyond,
        TimelineError::RevisionNotFound {
            revision: Revision(9),
            oldest: Revision(3),
            head: Revision(5)
        }
    ));
    assert_eq!(
        beyond.to_string(),
        "revision 9 not found (history holds 3..=5)"
    );

    // Revision 2 left the window and no snapshot holds it.
    let pruned = timeline_error(refused(&mut timeline, |t| {
        t.rollback(&RollbackTarget::Revision(Revision(2)))
    }));
    assert!(matches!(
        pruned,
        TimelineError::RevisionNotFound {
            revision: Revision(2),
            ..
        }
    ));
    assert_eq!(
        pruned.to_string(),
        "revision 2 not found (history holds 3..=5)"
    );
    refused(&mut timeline, |t| {
        t.revision_at(&StateRef::Revision(Revision(0)))
    });
    // Outside the window but held by a snapshot: still there.
    assert_eq!(timeline.state_at(&StateRef::Revision(Revision(1)))?["a"], 2);
    Ok(())
}

#[test]
fn times_before_the_first_snapshot_or_the_window_are_refused() -> Result<()> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let err = timeline_error(refused(&mut timeline, |t| {
        t.rollback(&RollbackTarget::Time(at("09:00")))
    }));
    assert!(matches!(err, TimelineError::NoSnapshotBefore(t) if t == at("09:00")));
    assert_eq!(
        err.to_string(),
        "no snapshot taken at or before 2026-03-14T09:00:00Z"
    );

    let err = refused(&mut timeline, |t| t.state_at(&StateRef::AsOf(at("09:00"))));
    assert!(matches!(
        err,
        TimelineError::TimeOutOfRange { at: t, oldest } if t == at("09:00") && oldest == at("10:00")
    ));
    assert_eq!(
        err.to_string(),
        "no revision known at 2026-03-14T09:00:00Z (history starts at 2026-03-14T10:00:00Z)"
    );
    Ok(())
}

#[test]
fn latest_needs_a_snapshot() -> Result<()> {
    let (_clock, mut timeline) = timeline_with(TimelineConfig::default())?;
    timeline.apply(&patch(json!([{"op": "replace", "path": "/a", "value": 2}])))?;
    let err = timeline_error(refused(&mut timeline, |t| {
        t.rollback(&RollbackTarget::Latest)
    }));
    assert!(matches!(err, TimelineError::NoSnapshots));
    assert_eq!(err.to_string(), "no snapshot to roll back to");
    Ok(())
}

#[test]
fn unknown_and_finished_transactions_are_refused() -> Result<()> {
    let (_clock, mut timeline, running) = busy_timeline()?;
    let ghost = TransactionId(99);
    let step = patch(json!([{"op": "replace", "path": "/a", "value": 7}]));
    let errors = [
        refused(&mut timeline, |t| t.apply_step(ghost, &name("s"), &step)),
        refused(&mut timeline, |t| t.checkpoint(ghost, name("s")).map(drop)),
        refused(&mut timeline, |t| {
            t.finish_transaction(ghost, TransactionOutcome::Committed)
        }),
        refused(&mut timeline, |t| {
            t.transaction_target(ghost, &RollbackPolicy::Start)
        }),
        timeline_error(refused(&mut timeline, |t| {
            t.rollback(&RollbackTarget::Checkpoint {
                transaction: ghost,
                name: name("start"),
            })
        })),
    ];
    for err in errors {
        assert!(matches!(
            err,
            TimelineError::TransactionNotFound(TransactionId(99))
        ));
        assert_eq!(err.to_string(), "transaction 99 not found");
    }

    timeline.finish_transaction(running, TransactionOutcome::Committed)?;
    let errors = [
        refused(&mut timeline, |t| t.apply_step(running, &name("s"), &step)),
        refused(&mut timeline, |t| {
            t.checkpoint(running, name("s")).map(drop)
        }),
        refused(&mut timeline, |t| {
            t.finish_transaction(running, TransactionOutcome::RolledBack)
        }),
    ];
    for err in errors {
        assert!(matches!(err, TimelineError::TransactionFinished(id) if id == running));
        assert_eq!(
            err.to_string(),
            format!("transaction {running} has already finished")
        );
    }
    Ok(())
}

#[test]
fn finished_transactions_past_the_kept_count_are_forgotten() -> Result<()> {
    let (_clock, mut timeline) = timeline_with(TimelineConfig {
        finished_transactions_kept: 1,
        ..TimelineConfig::default()
    })?;
    let first = timeline.begin_transaction();
    timeline.finish_transaction(first, TransactionOutcome::Committed)?;
    let second = timeline.begin_transaction();
    let pruned = timeline.finish_transaction(second, TransactionOutcome::Committed)?;
    assert_eq!(pruned.checkpoint, 1);
    let err = timeline_error(refused(&mut timeline, |t| {
        t.rollback(&RollbackTarget::Checkpoint {
            transaction: first,
            name: name("start"),
        })
    }));
    assert!(matches!(err, TimelineError::TransactionNotFound(id) if id == first));
    Ok(())
}

#[test]
fn checkpoints_are_unique_and_must_exist() -> Result<()> {
    let (_clock, mut timeline, running) = busy_timeline()?;
    let nope = name("nope");
    let errors = [
        timeline_error(refused(&mut timeline, |t| {
            t.rollback(&RollbackTarget::Checkpoint {
                transaction: running,
                name: nope.clone(),
            })
        })),
        refused(&mut timeline, |t| {
            t.transaction_target(running, &RollbackPolicy::Checkpoint(nope.clone()))
        }),
        refused(&mut timeline, |t| {
            t.state_at(&StateRef::Checkpoint {
                transaction: running,
                name: nope.clone(),
            })
        }),
    ];
    for err in errors {
        assert!(matches!(
            &err,
            TimelineError::CheckpointNotFound { transaction, name }
                if *transaction == running && name == &nope
        ));
        assert_eq!(
            err.to_string(),
            format!("checkpoint 'nope' not found in transaction {running}")
        );
    }

    for taken in ["start", "step-1"] {
        let err = refused(&mut timeline, |t| t.checkpoint(running, name(taken)));
        assert!(matches!(
            &err,
            TimelineError::CheckpointExists { transaction, name }
                if *transaction == running && name.as_str() == taken
        ));
        assert_eq!(
            err.to_string(),
            format!("checkpoint '{taken}' already exists in transaction {running}")
        );
    }
    Ok(())
}

#[test]
fn only_named_snapshots_can_be_protected() -> Result<()> {
    let (_clock, mut timeline, _) = busy_timeline()?;
    let auto = timeline
        .snapshots()
        .into_iter()
        .find(|s| s.trigger.is_some())
        .expect("the busy timeline has an auto snapshot")
        .name;
    let err = refused(&mut timeline, |t| t.protect(&auto, true));
    assert!(matches!(&err, TimelineError::NotProtectable(n) if n == &auto));
    assert_eq!(
        err.to_string(),
        format!("snapshot '{auto}' is an auto snapshot; only named snapshots can be protected")
    );
    Ok(())
}

#[test]
fn a_full_set_of_protected_snapshots_exceeds_the_quota() -> Result<()> {
    let (_clock, mut timeline) = timeline_with(TimelineConfig {
        named_limit: 2,
        ..TimelineConfig::default()
    })?;
    let protected = NamedOptions {
        protected: true,
        ..NamedOptions::default()
    };
    timeline.snapshot_named(name("v1"), protected)?;
    timeline.snapshot_named(name("v2"), protected)?;
    let err = timeline_error(refused(&mut timeline, |t| {
        t.snapshot_named(name("v3"), NamedOptions::default())
    }));
    assert!(matches!(err, TimelineError::QuotaExceeded(_)));
    assert_eq!(
        err.to_string(),
        "quota exceeded: all 2 named snapshots are protected; unprotect or delete one first"
    );
    // Replacing an existing unprotected name needs no room, so it still works
    // once one is unprotected.
    timeline.protect(&name("v1"), false)?;
    assert!(timeline
        .snapshot_named(
            name("v1"),
            NamedOptions {
                replace: true,
                ..NamedOptions::default()
            }
        )
        .is_ok());
    Ok(())
}

#[test]
fn a_rejected_change_keeps_the_model_error() -> Result<()> {
    let (_clock, mut timeline, running) = busy_timeline()?;
    let bad = patch(json!([{"op": "remove", "path": "/missing"}]));
    for err in [
        refused(&mut timeline, |t| t.apply(&bad)),
        refused(&mut timeline, |t| t.apply_step(running, &name("s"), &bad)),
    ] {
        let TimelineError::Rejected(rejected) = &err else {
            panic!("expected Rejected, got {err:?}");
        };
        let inner = rejected.downcast_ref::<PatchError>().expect("a PatchError");
        assert_eq!(inner.op, Some(0));
        assert!(
            matches!(&inner.kind, PatchErrorKind::PathNotFound(p) if p.to_string() == "/missing")
        );
        assert!(rejected.downcast_ref::<InvalidInput>().is_none());
        assert_eq!(
            err.to_string(),
            "change rejected: patch operation 0 failed: nothing at '/missing'"
        );
        assert!(std::error::Error::source(rejected).is_some());
    }
    Ok(())
}
