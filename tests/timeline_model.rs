//! Model test of [`Timeline<Doc>`]: random programs of operations run against
//! the real timeline and against [`Reference`], a naive timeline written here
//! from DESIGN.md ("Timeline: revisions, snapshots, retention"). The reference
//! keeps a full `serde_json::Value` copy of every revision ever committed and
//! of every snapshot in plain `Vec`s — no `imbl`, no sharing, no clever
//! indexing — so any disagreement points at the core.
//!
//! After every step both must agree on the step's outcome (the value returned,
//! or the error variant and its fields), the head, the revision numbers, the
//! history window (revision, time, cause), the snapshot list, the
//! transactions and their checkpoints, and the state behind every reference
//! still readable. Diffs are checked against a naive structural diff and by
//! applying their patch. A clone taken before each step must not change.
//!
//! A failure prints the shrunk program as a numbered list of operations; the
//! seeds of past failures are kept in `proptest-regressions/timeline_model.txt`
//! and replayed first.
//!
//! ```text
//! cargo test --test timeline_model
//! PROPTEST_CASES=5000 cargo test --release --test timeline_model   # soak
//! ```

use std::fmt;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;
use rewind_core::{
    AutoTrigger, Cause, ChangeKind, Clock, Diff, Doc, Error, InvalidInput, ManualClock,
    NamedOptions, Patch, PatchError, Pruned, Restored, RestoredKind, Revision, RollbackPolicy,
    RollbackTarget, SnapshotInfo, SnapshotKind, SnapshotName, StateRef, TargetKind, Timeline,
    TimelineConfig, TimelineError, Timestamp, TransactionId, TransactionOutcome,
};
use serde_json::{json, Map, Value};

// ----- the program --------------------------------------------------------

/// Snapshot names a user would pick.
const NAMED: &[&str] = &["v1", "v2", "v2.0.0", "pre_deploy", "a:b-c"];
/// Checkpoint (step) names; `start` is taken by every transaction.
const STEPS: &[&str] = &["start", "s1", "s2", "v1"];
/// Names the edge must refuse.
const INVALID: &[&str] = &["", "bad name", "x/y", "ü"];
/// Pointers over the small key set documents are made of, some of which
/// cannot work (`-` outside `add`, a child of a scalar, past the end).
const PATHS: &[&str] = &["/n", "/n/x", "/n/y", "/l", "/l/0", "/l/1", "/l/-", "/a/x"];
/// Members of the root object, which can always be added while the root is
/// an object; `/c~1~0` is the member `c/~`, so escaping is exercised too.
const TOP: &[&str] = &["/a", "/b", "/c~1~0"];

/// A revision, chosen relative to the head so short programs still hit
/// existing ones.
#[derive(Clone, Copy)]
enum RevSpec {
    /// `head - k` (saturating at 0).
    Back(u64),
    /// An absolute number, possibly in the future.
    Abs(u64),
}

/// An instant, chosen relative to the clock or to the start.
#[derive(Clone, Copy)]
enum When {
    /// `clock - s` (the clock may be behind the recorded times).
    Ago(u32),
    /// `T0 + s`.
    At(u32),
    /// One second before the timeline was created.
    BeforeStart,
}

/// A transaction, chosen relative to the newest one begun.
#[derive(Clone, Copy)]
enum TxSpec {
    /// The `k`-th newest transaction begun (0 is the newest).
    Last(u64),
    /// An absolute id (0 is never assigned).
    Abs(u64),
}

#[derive(Clone)]
enum RefSpec {
    Head,
    Revision(RevSpec),
    Snapshot(String),
    Checkpoint(TxSpec, String),
    AsOf(When),
}

#[derive(Clone)]
enum TargetSpec {
    Named(String),
    Time(When),
    Latest,
    Checkpoint(TxSpec, String),
    Revision(RevSpec),
}

#[derive(Clone)]
enum PolicySpec {
    Start,
    LastCheckpoint,
    Checkpoint(String),
}

#[derive(Clone)]
enum Op {
    Advance(u32),
    SetBack(u32),
    Apply(Value),
    Replace(Value),
    SnapshotAuto(AutoTrigger),
    SnapshotNamed {
        name: String,
        protected: bool,
        replace: bool,
    },
    Protect {
        name: String,
        protected: bool,
    },
    Delete(String),
    Rollback(TargetSpec),
    DryRun(TargetSpec),
    Read(RefSpec),
    Diff(RefSpec, RefSpec),
    Begin,
    Step {
        tx: TxSpec,
        step: String,
        patch: Value,
    },
    Checkpoint {
        tx: TxSpec,
        name: String,
    },
    Finish {
        tx: TxSpec,
        outcome: TransactionOutcome,
    },
    TxTarget {
        tx: TxSpec,
        policy: PolicySpec,
    },
}

#[derive(Clone)]
struct Program {
    config: TimelineConfig,
    initial: Value,
    ops: Vec<Op>,
}

impl fmt::Debug for RevSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevSpec::Back(k) => write!(f, "head-{k}"),
            RevSpec::Abs(r) => write!(f, "#{r}"),
        }
    }
}

impl fmt::Debug for TxSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxSpec::Last(0) => f.write_str("tx last"),
            TxSpec::Last(k) => write!(f, "tx last-{k}"),
            TxSpec::Abs(id) => write!(f, "tx #{id}"),
        }
    }
}

impl fmt::Debug for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            When::Ago(s) => write!(f, "clock-{s}s"),
            When::At(s) => write!(f, "T0+{s}s"),
            When::BeforeStart => f.write_str("T0-1s"),
        }
    }
}

impl fmt::Debug for RefSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefSpec::Head => f.write_str("Head"),
            RefSpec::Revision(r) => write!(f, "Revision({r:?})"),
            RefSpec::Snapshot(name) => write!(f, "Snapshot({name:?})"),
            RefSpec::Checkpoint(tx, name) => write!(f, "Checkpoint({tx:?}, {name:?})"),
            RefSpec::AsOf(t) => write!(f, "AsOf({t:?})"),
        }
    }
}

impl fmt::Debug for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Named(name) => write!(f, "Named({name:?})"),
            TargetSpec::Time(t) => write!(f, "Time({t:?})"),
            TargetSpec::Latest => f.write_str("Latest"),
            TargetSpec::Checkpoint(tx, name) => write!(f, "Checkpoint({tx:?}, {name:?})"),
            TargetSpec::Revision(r) => write!(f, "Revision({r:?})"),
        }
    }
}

impl fmt::Debug for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySpec::Start => f.write_str("Start"),
            PolicySpec::LastCheckpoint => f.write_str("LastCheckpoint"),
            PolicySpec::Checkpoint(name) => write!(f, "Checkpoint({name:?})"),
        }
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Advance(s) => write!(f, "clock += {s}s"),
            Op::SetBack(s) => write!(f, "clock -= {s}s"),
            Op::Apply(patch) => write!(f, "apply {patch}"),
            Op::Replace(doc) => write!(f, "replace {doc}"),
            Op::SnapshotAuto(trigger) => write!(f, "snapshot_auto {trigger:?}"),
            Op::SnapshotNamed {
                name,
                protected,
                replace,
            } => write!(
                f,
                "snapshot_named {name:?} protected={protected} replace={replace}"
            ),
            Op::Protect { name, protected } => write!(f, "protect {name:?} {protected}"),
            Op::Delete(name) => write!(f, "delete_snapshot {name:?}"),
            Op::Rollback(target) => write!(f, "rollback {target:?}"),
            Op::DryRun(target) => write!(f, "rollback_dry_run {target:?}"),
            Op::Read(at) => write!(f, "state_at {at:?}"),
            Op::Diff(a, b) => write!(f, "diff {a:?} -> {b:?}"),
            Op::Begin => f.write_str("begin_transaction"),
            Op::Step { tx, step, patch } => write!(f, "apply_step {tx:?} {step:?} {patch}"),
            Op::Checkpoint { tx, name } => write!(f, "checkpoint {tx:?} {name:?}"),
            Op::Finish { tx, outcome } => write!(f, "finish_transaction {tx:?} {outcome:?}"),
            Op::TxTarget { tx, policy } => write!(f, "transaction_target {tx:?} {policy:?}"),
        }
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(f, "Program {{")?;
        writeln!(
            f,
            "  config: history_limit {}, auto_limit {}, named_limit {}, \
             finished_transactions_kept {}",
            c.history_limit, c.auto_limit, c.named_limit, c.finished_transactions_kept
        )?;
        writeln!(f, "  clock: T0 = {}", t0())?;
        writeln!(f, "  initial: {}", self.initial)?;
        for (i, op) in self.ops.iter().enumerate() {
            writeln!(f, "  {i:>2}: {op:?}")?;
        }
        write!(f, "}}")
    }
}

// ----- strategies ---------------------------------------------------------

fn name_from(pool: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(pool).prop_map(String::from)
}

fn auto_name() -> impl Strategy<Value = String> {
    (1u64..=20).prop_map(|n| format!("auto_{n}"))
}

/// A name to look a snapshot up by: named, auto, or invalid.
fn snapshot_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => name_from(NAMED),
        4 => auto_name(),
        1 => name_from(INVALID),
    ]
}

/// A name a snapshot is likely to have been taken under.
fn existing_name() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => name_from(NAMED),
        2 => auto_name(),
        1 => name_from(INVALID),
    ]
}

/// A name to take a named snapshot under, including reserved and invalid ones.
fn new_snapshot_name() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => name_from(NAMED),
        1 => name_from(&["auto_1", "auto_", "start", "auto"]),
        1 => name_from(INVALID),
    ]
}

fn step_name() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => name_from(STEPS),
        1 => Just("auto_1".to_owned()),
        1 => name_from(INVALID),
    ]
}

fn tx() -> impl Strategy<Value = TxSpec> {
    prop_oneof![
        6 => Just(TxSpec::Last(0)),
        3 => (1u64..=2).prop_map(TxSpec::Last),
        1 => (0u64..=8).prop_map(TxSpec::Abs),
    ]
}

fn rev_spec() -> impl Strategy<Value = RevSpec> {
    prop_oneof![
        3 => (0u64..=6).prop_map(RevSpec::Back),
        1 => (0u64..=70).prop_map(RevSpec::Abs),
    ]
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        3 => select(&[0u32, 1, 30, 59, 60, 61, 300, 600, 3600][..]).prop_map(When::Ago),
        2 => (0u32..=20_000).prop_map(When::At),
        1 => Just(When::BeforeStart),
    ]
}

fn ref_spec() -> impl Strategy<Value = RefSpec> {
    prop_oneof![
        1 => Just(RefSpec::Head),
        3 => rev_spec().prop_map(RefSpec::Revision),
        3 => snapshot_name().prop_map(RefSpec::Snapshot),
        2 => (tx(), step_name()).prop_map(|(tx, name)| RefSpec::Checkpoint(tx, name)),
        2 => when().prop_map(RefSpec::AsOf),
    ]
}

fn target_spec() -> impl Strategy<Value = TargetSpec> {
    prop_oneof![
        3 => snapshot_name().prop_map(TargetSpec::Named),
        2 => when().prop_map(TargetSpec::Time),
        2 => Just(TargetSpec::Latest),
        2 => (tx(), step_name()).prop_map(|(tx, name)| TargetSpec::Checkpoint(tx, name)),
        2 => rev_spec().prop_map(TargetSpec::Revision),
    ]
}

fn policy_spec() -> impl Strategy<Value = PolicySpec> {
    prop_oneof![
        Just(PolicySpec::Start),
        Just(PolicySpec::LastCheckpoint),
        step_name().prop_map(PolicySpec::Checkpoint),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0i64..4).prop_map(Value::from),
        1 => Just(json!("s")),
        1 => Just(json!(true)),
        1 => Just(Value::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => scalar(),
        1 => Just(json!({"x": 1})),
        1 => Just(json!([1, 2])),
    ]
}

/// A small object over the keys `a b c/~` (scalars), `n` (object of `x y`)
/// and `l` (array); now and then a scalar or an array instead.
fn doc() -> impl Strategy<Value = Value> {
    prop_oneof![
        10 => object_doc(),
        1 => scalar(),
        1 => Just(json!([1, {"x": 1}])),
    ]
}

fn object_doc() -> impl Strategy<Value = Value> {
    let nested = (
        proptest::option::of(scalar()),
        proptest::option::of(scalar()),
    );
    let list = proptest::collection::vec(0i64..4, 0..3);
    (
        proptest::option::of(scalar()),
        proptest::option::of(scalar()),
        proptest::option::of(scalar()),
        proptest::option::of(nested),
        proptest::option::of(list),
    )
        .prop_map(|(a, b, c, n, l)| {
            let mut out = Map::new();
            for (key, v) in [("a", a), ("b", b), ("c/~", c)] {
                if let Some(v) = v {
                    out.insert(key.into(), v);
                }
            }
            if let Some((x, y)) = n {
                let mut inner = Map::new();
                for (key, v) in [("x", x), ("y", y)] {
                    if let Some(v) = v {
                        inner.insert(key.into(), v);
                    }
                }
                out.insert("n".into(), Value::Object(inner));
            }
            if let Some(l) = l {
                out.insert("l".into(), json!(l));
            }
            Value::Object(out)
        })
}

fn path() -> impl Strategy<Value = &'static str> {
    prop_oneof![3 => select(TOP), 2 => select(PATHS)]
}

fn patch_op() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (path(), value()).prop_map(|(p, v)| json!({"op": "add", "path": p, "value": v})),
        2 => path().prop_map(|p| json!({"op": "remove", "path": p})),
        2 => (path(), value()).prop_map(|(p, v)| json!({"op": "replace", "path": p, "value": v})),
        1 => (path(), path()).prop_map(|(f, p)| json!({"op": "move", "from": f, "path": p})),
        1 => (path(), path()).prop_map(|(f, p)| json!({"op": "copy", "from": f, "path": p})),
        2 => (path(), value()).prop_map(|(p, v)| json!({"op": "test", "path": p, "value": v})),
    ]
}

fn patch() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => proptest::collection::vec(patch_op(), 1..=1),
        1 => proptest::collection::vec(patch_op(), 2..=3),
    ]
    .prop_map(Value::Array)
}

fn op() -> impl Strategy<Value = Op> {
    let trigger = prop_oneof![Just(AutoTrigger::Requested), Just(AutoTrigger::Policy)];
    let outcome = prop_oneof![
        Just(TransactionOutcome::Committed),
        Just(TransactionOutcome::RolledBack),
        Just(TransactionOutcome::Failed),
    ];
    prop_oneof![
        8 => select(&[0u32, 1, 30, 60, 60, 300, 600, 3600][..]).prop_map(Op::Advance),
        2 => select(&[1u32, 60, 600, 3600, 86_400][..]).prop_map(Op::SetBack),
        14 => patch().prop_map(Op::Apply),
        3 => doc().prop_map(Op::Replace),
        5 => trigger.prop_map(Op::SnapshotAuto),
        8 => (new_snapshot_name(), prop::bool::weighted(0.3), prop::bool::weighted(0.3))
            .prop_map(|(name, protected, replace)| Op::SnapshotNamed { name, protected, replace }),
        3 => (existing_name(), any::<bool>())
            .prop_map(|(name, protected)| Op::Protect { name, protected }),
        3 => existing_name().prop_map(Op::Delete),
        8 => target_spec().prop_map(Op::Rollback),
        3 => target_spec().prop_map(Op::DryRun),
        5 => ref_spec().prop_map(Op::Read),
        4 => (ref_spec(), ref_spec()).prop_map(|(a, b)| Op::Diff(a, b)),
        6 => Just(Op::Begin),
        5 => (tx(), step_name(), patch())
            .prop_map(|(tx, step, patch)| Op::Step { tx, step, patch }),
        4 => (tx(), step_name()).prop_map(|(tx, name)| Op::Checkpoint { tx, name }),
        3 => (tx(), outcome).prop_map(|(tx, outcome)| Op::Finish { tx, outcome }),
        2 => (tx(), policy_spec()).prop_map(|(tx, policy)| Op::TxTarget { tx, policy }),
    ]
}

fn config() -> impl Strategy<Value = TimelineConfig> {
    let small =
        (1usize..=8, 1usize..=4, 1usize..=4, 0usize..=3).prop_map(|(h, a, n, k)| TimelineConfig {
            history_limit: h,
            auto_limit: a,
            named_limit: n,
            finished_transactions_kept: k,
            ..TimelineConfig::default()
        });
    // Some limits small, the others at their defaults.
    let mixed = (
        prop::option::of(1usize..=8),
        prop::option::of(1usize..=4),
        prop::option::of(1usize..=4),
        prop::option::of(0usize..=3),
    )
        .prop_map(|(h, a, n, k)| {
            let d = TimelineConfig::default();
            TimelineConfig {
                history_limit: h.unwrap_or(d.history_limit),
                auto_limit: a.unwrap_or(d.auto_limit),
                named_limit: n.unwrap_or(d.named_limit),
                finished_transactions_kept: k.unwrap_or(d.finished_transactions_kept),
                ..d
            }
        });
    prop_oneof![
        1 => Just(TimelineConfig::default()),
        3 => small,
        1 => mixed,
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (config(), doc(), proptest::collection::vec(op(), 1..=64)).prop_map(|(config, initial, ops)| {
        Program {
            config,
            initial,
            ops,
        }
    })
}

// ----- naive JSON Patch and diff over serde_json::Value -------------------

/// RFC 6901 reference tokens (`""` is the root).
fn tokens(pointer: &str) -> Vec<String> {
    if pointer.is_empty() {
        return Vec::new();
    }
    pointer[1..]
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// An array index token: digits without leading zeros, below `len` (or equal
/// to it, or `-`, when adding).
fn array_index(token: &str, len: usize, adding: bool) -> Option<usize> {
    if adding && token == "-" {
        return Some(len);
    }
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    let index: usize = token.parse().ok()?;
    let limit = if adding { len + 1 } else { len };
    (index < limit).then_some(index)
}

fn get<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => &items[array_index(token, items.len(), false)?],
            _ => return None,
        };
    }
    Some(current)
}

fn get_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token)?,
            Value::Array(items) => {
                let index = array_index(token, items.len(), false)?;
                &mut items[index]
            }
            _ => return None,
        };
    }
    Some(current)
}

fn add(doc: &mut Value, tokens: &[String], value: Value) -> Option<()> {
    let Some((last, parent)) = tokens.split_last() else {
        *doc = value;
        return Some(());
    };
    match get_mut(doc, parent)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
        }
        Value::Array(items) => {
            let index = array_index(last, items.len(), true)?;
            items.insert(index, value);
        }
        _ => return None,
    }
    Some(())
}

fn remove(doc: &mut Value, tokens: &[String]) -> Option<Value> {
    let (last, parent) = tokens.split_last()?;
    match get_mut(doc, parent)? {
        Value::Object(map) => map.remove(last),
        Value::Array(items) => {
            let index = array_index(last, items.len(), false)?;
            Some(items.remove(index))
        }
        _ => None,
    }
}

fn apply_op(doc: &mut Value, op: &Value) -> Option<()> {
    let member = |name: &str| op.get(name).and_then(Value::as_str).map(tokens);
    let path = member("path")?;
    match op["op"].as_str()? {
        "add" => add(doc, &path, op["value"].clone()),
        "remove" => remove(doc, &path).map(drop),
        "replace" => {
            *get_mut(doc, &path)? = op["value"].clone();
            Some(())
        }
        "move" => {
            let from = member("from")?;
            if from == path {
                return get(doc, &from).map(drop);
            }
            if path.len() > from.len() && path.starts_with(&from) {
                return None; // into its own child
            }
            let value = remove(doc, &from)?;
            add(doc, &path, value)
        }
        "copy" => {
            let value = get(doc, &member("from")?)?.clone();
            add(doc, &path, value)
        }
        "test" => (get(doc, &path)? == &op["value"]).then_some(()),
        other => panic!("unknown op {other}"),
    }
}

/// Applies a patch to a copy; on failure, the index of the failing op.
fn apply_patch(doc: &Value, patch: &Value) -> Result<Value, usize> {
    let mut out = doc.clone();
    for (i, op) in patch.as_array().expect("a patch").iter().enumerate() {
        apply_op(&mut out, op).ok_or(i)?;
    }
    Ok(out)
}

type DiffLine = (String, ChangeKind, Option<Value>, Option<Value>);

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every leaf difference from `a` to `b`: objects key by key, arrays index by
/// index with the tail of the longer one added or removed, anything else
/// changed as a whole.
fn naive_diff(a: &Value, b: &Value, path: &str, out: &mut Vec<DiffLine>) {
    if a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{path}/{}", escape(key));
                match (x.get(key), y.get(key)) {
                    (Some(old), Some(new)) => naive_diff(old, new, &child, out),
                    (Some(old), None) => {
                        out.push((child, ChangeKind::Removed, Some(old.clone()), None))
                    }
                    (None, Some(new)) => {
                        out.push((child, ChangeKind::Added, None, Some(new.clone())))
                    }
                    (None, None) => unreachable!(),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                let child = format!("{path}/{i}");
                match (x.get(i), y.get(i)) {
                    (Some(old), Some(new)) => naive_diff(old, new, &child, out),
                    (Some(old), None) => {
                        out.push((child, ChangeKind::Removed, Some(old.clone()), None))
                    }
                    (None, Some(new)) => {
                        out.push((child, ChangeKind::Added, None, Some(new.clone())))
                    }
                    (None, None) => unreachable!(),
                }
            }
        }
        _ => out.push((
            path.to_owned(),
            ChangeKind::Changed,
            Some(a.clone()),
            Some(b.clone()),
        )),
    }
}

/// A core diff from `from` to `to` must list exactly the naive differences,
/// count them in its summary, and carry a patch that turns `from` into `to`.
fn check_diff(diff: &Diff, from: &Value, to: &Value) -> Result<(), String> {
    let mut got: Vec<DiffLine> = diff
        .entries
        .iter()
        .map(|e| {
            (
                e.path.to_string(),
                e.kind,
                e.old.as_ref().map(Doc::to_json),
                e.new.as_ref().map(Doc::to_json),
            )
        })
        .collect();
    let mut want = Vec::new();
    naive_diff(from, to, "", &mut want);
    let count = |lines: &[DiffLine], kind| lines.iter().filter(|l| l.1 == kind).count();
    let summary = [
        diff.summary.added,
        diff.summary.removed,
        diff.summary.changed,
    ];
    let counted =
        [ChangeKind::Added, ChangeKind::Removed, ChangeKind::Changed].map(|k| count(&want, k));
    agree("diff summary (added, removed, changed)", summary, counted)?;
    let order = |a: &DiffLine, b: &DiffLine| a.0.cmp(&b.0);
    got.sort_by(order);
    want.sort_by(order);
    agree("diff entries", got, want)?;
    let patch = diff.patch.to_json();
    agree(
        "diff patch applied to `from` (naive apply)",
        apply_patch(from, &patch).map_err(|i| format!("op {i} failed")),
        Ok(to.clone()),
    )?;
    let applied = Doc::from_json(from)
        .expect("a valid document")
        .apply_patch(&diff.patch)
        .map(|d| d.to_json())
        .map_err(|e| e.to_string());
    agree(
        "diff patch applied to `from` (Doc::apply_patch)",
        applied,
        Ok(to.clone()),
    )
}

// ----- outcomes both sides report -----------------------------------------

/// An error, reduced to what both sides can state.
#[derive(Clone, Debug, PartialEq)]
enum Failure {
    InvalidName(String),
    ReservedName(String),
    SnapshotNotFound(String),
    SnapshotExists(String),
    SnapshotProtected(String),
    NotProtectable(String),
    QuotaExceeded,
    RevisionNotFound {
        revision: u64,
        oldest: u64,
        head: u64,
    },
    NoSnapshotBefore(Timestamp),
    TimeOutOfRange {
        at: Timestamp,
        oldest: Timestamp,
    },
    NoSnapshots,
    TransactionNotFound(u64),
    TransactionFinished(u64),
    CheckpointNotFound {
        transaction: u64,
        name: String,
    },
    CheckpointExists {
        transaction: u64,
        name: String,
    },
    /// The change was refused; which op of the patch failed.
    Rejected(Option<usize>),
    Unexpected(String),
}

fn from_input(e: &InvalidInput) -> Failure {
    match e {
        InvalidInput::SnapshotName { name, .. } => Failure::InvalidName(name.clone()),
        InvalidInput::ReservedName { name, .. } => Failure::ReservedName(name.to_string()),
        other => Failure::Unexpected(format!("{other:?}")),
    }
}

fn from_timeline(e: &TimelineError) -> Failure {
    match e {
        TimelineError::SnapshotNotFound(n) => Failure::SnapshotNotFound(n.to_string()),
        TimelineError::SnapshotExists(n) => Failure::SnapshotExists(n.to_string()),
        TimelineError::SnapshotProtected(n) => Failure::SnapshotProtected(n.to_string()),
        TimelineError::NotProtectable(n) => Failure::NotProtectable(n.to_string()),
        TimelineError::QuotaExceeded(_) => Failure::QuotaExceeded,
        TimelineError::RevisionNotFound {
            revision,
            oldest,
            head,
        } => Failure::RevisionNotFound {
            revision: revision.get(),
            oldest: oldest.get(),
            head: head.get(),
        },
        TimelineError::NoSnapshotBefore(t) => Failure::NoSnapshotBefore(*t),
        TimelineError::TimeOutOfRange { at, oldest } => Failure::TimeOutOfRange {
            at: *at,
            oldest: *oldest,
        },
        TimelineError::NoSnapshots => Failure::NoSnapshots,
        TimelineError::TransactionNotFound(t) => Failure::TransactionNotFound(t.0),
        TimelineError::TransactionFinished(t) => Failure::TransactionFinished(t.0),
        TimelineError::CheckpointNotFound { transaction, name } => Failure::CheckpointNotFound {
            transaction: transaction.0,
            name: name.to_string(),
        },
        TimelineError::CheckpointExists { transaction, name } => Failure::CheckpointExists {
            transaction: transaction.0,
            name: name.to_string(),
        },
        TimelineError::Rejected(why) => {
            Failure::Rejected(why.downcast_ref::<PatchError>().and_then(|p| p.op))
        }
        other => Failure::Unexpected(format!("{other:?}")),
    }
}

fn from_error(e: &Error) -> Failure {
    match e {
        Error::Input(e) => from_input(e),
        Error::Timeline(e) => from_timeline(e),
        other => Failure::Unexpected(format!("{other:?}")),
    }
}

/// Snapshot metadata as both sides see it.
#[derive(Clone, Debug, PartialEq)]
struct SnapView {
    name: String,
    kind: SnapshotKind,
    revision: u64,
    created_at: Timestamp,
    protected: bool,
    trigger: Option<AutoTrigger>,
    transaction: Option<u64>,
}

impl From<&SnapshotInfo> for SnapView {
    fn from(info: &SnapshotInfo) -> Self {
        SnapView {
            name: info.name.to_string(),
            kind: info.kind,
            revision: info.revision.get(),
            created_at: info.created_at,
            protected: info.protected,
            trigger: info.trigger,
            transaction: info.transaction.map(|t| t.0),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct TxnView {
    id: u64,
    start_revision: u64,
    started_at: Timestamp,
    outcome: Option<TransactionOutcome>,
    checkpoints: Vec<SnapView>,
}

/// Everything observable about a timeline between steps.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    revision: u64,
    oldest: u64,
    history: Vec<(u64, Timestamp, Cause)>,
    head: Value,
    snapshots: Vec<SnapView>,
    transactions: Vec<TxnView>,
    counts: [usize; 3],
}

fn pruned(p: &Pruned) -> [usize; 3] {
    [p.auto, p.named, p.checkpoint]
}

// ----- the reference timeline ---------------------------------------------

#[derive(Clone, Debug)]
struct Rev {
    at: Timestamp,
    cause: Cause,
    state: Value,
}

#[derive(Clone, Debug)]
struct Snap {
    view: SnapView,
    /// Creation order across all kinds (the `n` of `auto_<n>`).
    seq: u64,
    state: Value,
}

#[derive(Clone, Debug)]
struct Txn {
    id: u64,
    start_revision: u64,
    started_at: Timestamp,
    outcome: Option<TransactionOutcome>,
    checkpoints: Vec<Snap>,
}

/// The timeline as DESIGN.md describes it, written for obviousness.
#[derive(Clone, Debug)]
struct Reference {
    config: TimelineConfig,
    clock: ManualClock,
    /// The newest recorded time; recorded times never go below it.
    last_at: Timestamp,
    /// Every revision ever committed; `revisions[r]` is revision `r`. The
    /// history window is the last `history_limit` of them.
    revisions: Vec<Rev>,
    /// Auto and named snapshots alive, in creation order.
    snapshots: Vec<Snap>,
    /// Running transactions and kept finished ones, in begin order.
    transactions: Vec<Txn>,
    next_seq: u64,
    next_transaction: u64,
}

/// What a rollback target resolved to.
struct Resolved {
    restored: Restored,
    state: Value,
}

fn check_name(name: &str) -> Result<SnapshotName, Failure> {
    let ok = (1..=128).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c));
    if !ok {
        return Err(Failure::InvalidName(name.to_owned()));
    }
    Ok(SnapshotName::new(name).expect("the core accepts a valid name"))
}

impl Reference {
    fn new(initial: Value, config: TimelineConfig, clock: ManualClock) -> Self {
        let at = clock.now();
        Reference {
            config,
            clock,
            last_at: at,
            revisions: vec![Rev {
                at,
                cause: Cause::Initial,
                state: initial,
            }],
            snapshots: Vec::new(),
            transactions: Vec::new(),
            next_seq: 1,
            next_transaction: 1,
        }
    }

    fn head_revision(&self) -> u64 {
        self.revisions.len() as u64 - 1
    }

    fn head(&self) -> &Value {
        &self.revisions.last().expect("revision 0").state
    }

    fn oldest(&self) -> u64 {
        let kept = self.revisions.len().min(self.config.history_limit);
        (self.revisions.len() - kept) as u64
    }

    fn in_window(&self, revision: u64) -> bool {
        (self.oldest()..=self.head_revision()).contains(&revision)
    }

    fn stamp(&mut self) -> Timestamp {
        self.last_at = self.last_at.max(self.clock.now());
        self.last_at
    }

    fn commit(&mut self, state: Value, cause: Cause) -> (u64, Timestamp) {
        let at = self.stamp();
        self.revisions.push(Rev { at, cause, state });
        (self.head_revision(), at)
    }

    /// A new snapshot of the head, numbered in creation order across all
    /// kinds; the caller sets protection, trigger and transaction.
    fn snap(&mut self, name: String, kind: SnapshotKind) -> Snap {
        let seq = self.next_seq;
        self.next_seq += 1;
        Snap {
            view: SnapView {
                name,
                kind,
                revision: self.head_revision(),
                created_at: self.stamp(),
                protected: false,
                trigger: None,
                transaction: None,
            },
            seq,
            state: self.head().clone(),
        }
    }

    /// Every snapshot that pins a revision: auto, named and checkpoints.
    fn all_snapshots(&self) -> impl Iterator<Item = &Snap> {
        self.snapshots
            .iter()
            .chain(self.transactions.iter().flat_map(|t| t.checkpoints.iter()))
    }

    fn count(&self, kind: SnapshotKind) -> usize {
        self.all_snapshots().filter(|s| s.view.kind == kind).count()
    }

    fn find(&self, name: &str) -> Option<&Snap> {
        self.snapshots.iter().find(|s| s.view.name == name)
    }

    // ----- reads

    fn revision_state(&self, revision: u64) -> Result<Value, Failure> {
        let pinned = self.all_snapshots().any(|s| s.view.revision == revision);
        if self.in_window(revision) || pinned {
            Ok(self.revisions[revision as usize].state.clone())
        } else {
            Err(Failure::RevisionNotFound {
                revision,
                oldest: self.oldest(),
                head: self.head_revision(),
            })
        }
    }

    fn transaction(&self, id: u64) -> Result<&Txn, Failure> {
        self.transactions
            .iter()
            .find(|t| t.id == id)
            .ok_or(Failure::TransactionNotFound(id))
    }

    fn checkpoint_of(&self, id: u64, name: &str) -> Result<&Snap, Failure> {
        self.transaction(id)?
            .checkpoints
            .iter()
            .find(|c| c.view.name == name)
            .ok_or_else(|| Failure::CheckpointNotFound {
                transaction: id,
                name: name.to_owned(),
            })
    }

    /// (revision, state) at a reference whose names are already valid.
    fn read(&self, at: &Resolvable) -> Result<(u64, Value), Failure> {
        match at {
            Resolvable::Head => Ok((self.head_revision(), self.head().clone())),
            Resolvable::Revision(r) => Ok((*r, self.revision_state(*r)?)),
            Resolvable::Snapshot(name) => self
                .find(name)
                .map(|s| (s.view.revision, s.state.clone()))
                .ok_or_else(|| Failure::SnapshotNotFound(name.clone())),
            Resolvable::Checkpoint(tx, name) => {
                let c = self.checkpoint_of(*tx, name)?;
                Ok((c.view.revision, c.state.clone()))
            }
            Resolvable::AsOf(t) => {
                let oldest = self.oldest();
                (oldest..=self.head_revision())
                    .rev()
                    .find(|r| self.revisions[*r as usize].at <= *t)
                    .map(|r| (r, self.revisions[r as usize].state.clone()))
                    .ok_or(Failure::TimeOutOfRange {
                        at: *t,
                        oldest: self.revisions[oldest as usize].at,
                    })
            }
        }
    }

    fn resolve(&self, target: &Target) -> Result<Resolved, Failure> {
        let of_snapshot = |s: &Snap| Resolved {
            restored: Restored {
                kind: match s.view.kind {
                    SnapshotKind::Auto => RestoredKind::Auto,
                    SnapshotKind::Named => RestoredKind::Named,
                    SnapshotKind::Checkpoint => RestoredKind::Checkpoint,
                },
                name: Some(SnapshotName::new(&s.view.name).expect("valid")),
                transaction: s.view.transaction.map(TransactionId),
                revision: Revision(s.view.revision),
            },
            state: s.state.clone(),
        };
        match target {
            Target::Named(name) => self
                .find(name)
                .map(of_snapshot)
                .ok_or_else(|| Failure::SnapshotNotFound(name.clone())),
            Target::Time(t) => {
                let mut best: Option<&Snap> = None;
                for s in self.all_snapshots().filter(|s| s.view.created_at <= *t) {
                    let newer = best
                        .is_none_or(|b| (s.view.created_at, s.seq) > (b.view.created_at, b.seq));
                    if newer {
                        best = Some(s);
                    }
                }
                best.map(of_snapshot).ok_or(Failure::NoSnapshotBefore(*t))
            }
            Target::Latest => self
                .all_snapshots()
                .max_by_key(|s| s.seq)
                .map(of_snapshot)
                .ok_or(Failure::NoSnapshots),
            Target::Checkpoint(tx, name) => self.checkpoint_of(*tx, name).map(of_snapshot),
            Target::Revision(r) => Ok(Resolved {
                restored: Restored {
                    kind: RestoredKind::Revision,
                    name: None,
                    transaction: None,
                    revision: Revision(*r),
                },
                state: self.revision_state(*r)?,
            }),
        }
    }

    // ----- changes

    fn apply(&mut self, patch: &Value, cause: Cause) -> Result<(u64, Timestamp), Failure> {
        let next = apply_patch(self.head(), patch).map_err(|i| Failure::Rejected(Some(i)))?;
        Ok(self.commit(next, cause))
    }

    fn snapshot_auto(&mut self, trigger: AutoTrigger) -> (SnapView, [usize; 3]) {
        let name = format!("auto_{}", self.next_seq);
        let mut snap = self.snap(name, SnapshotKind::Auto);
        snap.view.trigger = Some(trigger);
        let view = snap.view.clone();
        self.snapshots.push(snap);
        let mut dropped = 0;
        while self.count(SnapshotKind::Auto) > self.config.auto_limit {
            let oldest = self
                .snapshots
                .iter()
                .position(|s| s.view.kind == SnapshotKind::Auto)
                .expect("counted");
            self.snapshots.remove(oldest);
            dropped += 1;
        }
        (view, [dropped, 0, 0])
    }

    fn snapshot_named(
        &mut self,
        name: &str,
        protected: bool,
        replace: bool,
    ) -> Result<(SnapView, [usize; 3]), Failure> {
        check_name(name)?;
        if name.starts_with("auto_") {
            return Err(Failure::ReservedName(name.to_owned()));
        }
        let mut dropped = 0;
        match self.find(name).map(|s| s.view.protected) {
            Some(_) if !replace => return Err(Failure::SnapshotExists(name.to_owned())),
            Some(true) => return Err(Failure::SnapshotProtected(name.to_owned())),
            Some(false) => self.snapshots.retain(|s| s.view.name != name),
            None if self.count(SnapshotKind::Named) >= self.config.named_limit => {
                let oldest = self
                    .snapshots
                    .iter()
                    .position(|s| s.view.kind == SnapshotKind::Named && !s.view.protected)
                    .ok_or(Failure::QuotaExceeded)?;
                self.snapshots.remove(oldest);
                dropped = 1;
            }
            None => {}
        }
        let mut snap = self.snap(name.to_owned(), SnapshotKind::Named);
        snap.view.protected = protected;
        let view = snap.view.clone();
        self.snapshots.push(snap);
        Ok((view, [0, dropped, 0]))
    }

    fn protect(&mut self, name: &str, protected: bool) -> Result<SnapView, Failure> {
        check_name(name)?;
        match self.snapshots.iter_mut().find(|s| s.view.name == name) {
            Some(s) if s.view.kind == SnapshotKind::Named => {
                s.view.protected = protected;
                Ok(s.view.clone())
            }
            Some(_) => Err(Failure::NotProtectable(name.to_owned())),
            None => Err(Failure::SnapshotNotFound(name.to_owned())),
        }
    }

    fn delete(&mut self, name: &str) -> Result<SnapView, Failure> {
        check_name(name)?;
        let index = self
            .snapshots
            .iter()
            .position(|s| s.view.name == name)
            .ok_or_else(|| Failure::SnapshotNotFound(name.to_owned()))?;
        if self.snapshots[index].view.protected {
            return Err(Failure::SnapshotProtected(name.to_owned()));
        }
        Ok(self.snapshots.remove(index).view)
    }

    /// Resolve first, then the pre-rollback auto snapshot, then the new
    /// revision holding the target's state.
    fn rollback(
        &mut self,
        target: &Target,
    ) -> Result<(Resolved, SnapView, [usize; 3], u64), Failure> {
        let resolved = self.resolve(target)?;
        let from = self.head_revision();
        let (pre, dropped) = self.snapshot_auto(AutoTrigger::PreRollback);
        let cause = Cause::Rollback {
            target: target.kind(),
            restored: resolved.restored.clone(),
            from: Revision(from),
        };
        let (revision, _) = self.commit(resolved.state.clone(), cause);
        Ok((resolved, pre, dropped, revision))
    }

    fn begin(&mut self) -> u64 {
        let id = self.next_transaction;
        self.next_transaction += 1;
        let started_at = self.stamp();
        let mut start = self.snap("start".into(), SnapshotKind::Checkpoint);
        start.view.transaction = Some(id);
        self.transactions.push(Txn {
            id,
            start_revision: self.head_revision(),
            started_at,
            outcome: None,
            checkpoints: vec![start],
        });
        id
    }

    fn running(&self, id: u64) -> Result<usize, Failure> {
        let txn = self.transaction(id)?;
        if txn.outcome.is_some() {
            return Err(Failure::TransactionFinished(id));
        }
        Ok(self
            .transactions
            .iter()
            .position(|t| t.id == id)
            .expect("found"))
    }

    fn apply_step(
        &mut self,
        id: u64,
        step: &str,
        patch: &Value,
    ) -> Result<(u64, Timestamp), Failure> {
        let step = check_name(step)?;
        self.running(id)?;
        let cause = Cause::TransactionStep {
            transaction: TransactionId(id),
            step,
        };
        self.apply(patch, cause)
    }

    fn checkpoint(&mut self, id: u64, name: &str) -> Result<SnapView, Failure> {
        check_name(name)?;
        let index = self.running(id)?;
        if self.transactions[index]
            .checkpoints
            .iter()
            .any(|c| c.view.name == name)
        {
            return Err(Failure::CheckpointExists {
                transaction: id,
                name: name.to_owned(),
            });
        }
        let mut snap = self.snap(name.to_owned(), SnapshotKind::Checkpoint);
        snap.view.transaction = Some(id);
        let view = snap.view.clone();
        self.transactions[index].checkpoints.push(snap);
        Ok(view)
    }

    fn finish(&mut self, id: u64, outcome: TransactionOutcome) -> Result<[usize; 3], Failure> {
        let index = self.running(id)?;
        self.transactions[index].outcome = Some(outcome);
        let mut dropped = 0;
        while self
            .transactions
            .iter()
            .filter(|t| t.outcome.is_some())
            .count()
            > self.config.finished_transactions_kept
        {
            let oldest = self
                .transactions
                .iter()
                .position(|t| t.outcome.is_some())
                .expect("counted");
            dropped += self.transactions.remove(oldest).checkpoints.len();
        }
        Ok([0, 0, dropped])
    }

    fn transaction_target(&self, id: u64, policy: &PolicySpec) -> Result<RollbackTarget, Failure> {
        let name = match policy {
            PolicySpec::Checkpoint(name) => Some(check_name(name)?),
            _ => None,
        };
        let txn = self.transaction(id)?;
        let name = match (policy, name) {
            (PolicySpec::Start, _) => "start".to_owned(),
            (PolicySpec::LastCheckpoint, _) => {
                txn.checkpoints.last().expect("start").view.name.clone()
            }
            (_, Some(name)) => self.checkpoint_of(id, name.as_str())?.view.name.clone(),
            (_, None) => unreachable!(),
        };
        Ok(RollbackTarget::Checkpoint {
            transaction: TransactionId(id),
            name: SnapshotName::new(name).expect("valid"),
        })
    }

    fn observe(&self) -> Observed {
        let view = |s: &Snap| s.view.clone();
        Observed {
            revision: self.head_revision(),
            oldest: self.oldest(),
            history: (self.oldest()..=self.head_revision())
                .map(|r| {
                    let rev = &self.revisions[r as usize];
                    (r, rev.at, rev.cause.clone())
                })
                .collect(),
            head: self.head().clone(),
            snapshots: self.snapshots.iter().map(view).collect(),
            transactions: self
                .transactions
                .iter()
                .map(|t| TxnView {
                    id: t.id,
                    start_revision: t.start_revision,
                    started_at: t.started_at,
                    outcome: t.outcome,
                    checkpoints: t.checkpoints.iter().map(view).collect(),
                })
                .collect(),
            counts: SnapshotKind::ALL.map(|k| self.count(k)),
        }
    }
}

fn observe(timeline: &Timeline<Doc>) -> Observed {
    Observed {
        revision: timeline.revision().get(),
        oldest: timeline.oldest_revision().get(),
        history: timeline
            .history()
            .map(|i| (i.revision.get(), i.at, i.cause.clone()))
            .collect(),
        head: timeline.head().to_json(),
        snapshots: timeline.snapshots().iter().map(SnapView::from).collect(),
        transactions: timeline
            .transactions()
            .iter()
            .map(|t| TxnView {
                id: t.id.0,
                start_revision: t.start_revision.get(),
                started_at: t.started_at,
                outcome: t.outcome,
                checkpoints: t.checkpoints.iter().map(SnapView::from).collect(),
            })
            .collect(),
        counts: SnapshotKind::ALL.map(|k| timeline.snapshot_counts().of(k)),
    }
}

// ----- running a program --------------------------------------------------

fn t0() -> Timestamp {
    Timestamp::parse_rfc3339("2026-03-14T10:00:00Z").expect("a valid instant")
}

/// A reference with its names checked at the edge, numbers and times fixed.
enum Resolvable {
    Head,
    Revision(u64),
    Snapshot(String),
    Checkpoint(u64, String),
    AsOf(Timestamp),
}

/// A rollback target with its names checked, numbers and times fixed.
enum Target {
    Named(String),
    Time(Timestamp),
    Latest,
    Checkpoint(u64, String),
    Revision(u64),
}

impl Target {
    fn kind(&self) -> TargetKind {
        match self {
            Target::Named(_) => TargetKind::Named,
            Target::Time(_) => TargetKind::Time,
            Target::Latest => TargetKind::Latest,
            Target::Checkpoint(..) => TargetKind::Checkpoint,
            Target::Revision(_) => TargetKind::Revision,
        }
    }

    fn to_core(&self) -> RollbackTarget {
        let name = |n: &str| SnapshotName::new(n).expect("checked");
        match self {
            Target::Named(n) => RollbackTarget::Named(name(n)),
            Target::Time(t) => RollbackTarget::Time(*t),
            Target::Latest => RollbackTarget::Latest,
            Target::Checkpoint(tx, n) => RollbackTarget::Checkpoint {
                transaction: TransactionId(*tx),
                name: name(n),
            },
            Target::Revision(r) => RollbackTarget::Revision(Revision(*r)),
        }
    }
}

impl Resolvable {
    fn to_core(&self) -> StateRef {
        let name = |n: &str| SnapshotName::new(n).expect("checked");
        match self {
            Resolvable::Head => StateRef::Head,
            Resolvable::Revision(r) => StateRef::Revision(Revision(*r)),
            Resolvable::Snapshot(n) => StateRef::Snapshot(name(n)),
            Resolvable::Checkpoint(tx, n) => StateRef::Checkpoint {
                transaction: TransactionId(*tx),
                name: name(n),
            },
            Resolvable::AsOf(t) => StateRef::AsOf(*t),
        }
    }
}

fn fix_rev(spec: RevSpec, reference: &Reference) -> u64 {
    match spec {
        RevSpec::Back(k) => reference.head_revision().saturating_sub(k),
        RevSpec::Abs(r) => r,
    }
}

fn fix_tx(spec: TxSpec, reference: &Reference) -> u64 {
    match spec {
        TxSpec::Last(k) => reference.next_transaction.saturating_sub(1 + k),
        TxSpec::Abs(id) => id,
    }
}

fn fix_time(when: When, clock: &ManualClock) -> Timestamp {
    match when {
        When::Ago(s) => clock.now().add_secs(-i64::from(s)),
        When::At(s) => t0().add_secs(i64::from(s)),
        When::BeforeStart => t0().add_secs(-1),
    }
}

fn fix_ref(spec: &RefSpec, reference: &Reference) -> Result<Resolvable, Failure> {
    Ok(match spec {
        RefSpec::Head => Resolvable::Head,
        RefSpec::Revision(r) => Resolvable::Revision(fix_rev(*r, reference)),
        RefSpec::Snapshot(name) => Resolvable::Snapshot(check_name(name)?.to_string()),
        RefSpec::Checkpoint(tx, name) => {
            Resolvable::Checkpoint(fix_tx(*tx, reference), check_name(name)?.to_string())
        }
        RefSpec::AsOf(when) => Resolvable::AsOf(fix_time(*when, &reference.clock)),
    })
}

fn fix_target(spec: &TargetSpec, reference: &Reference) -> Result<Target, Failure> {
    Ok(match spec {
        TargetSpec::Named(name) => Target::Named(check_name(name)?.to_string()),
        TargetSpec::Time(when) => Target::Time(fix_time(*when, &reference.clock)),
        TargetSpec::Latest => Target::Latest,
        TargetSpec::Checkpoint(tx, name) => {
            Target::Checkpoint(fix_tx(*tx, reference), check_name(name)?.to_string())
        }
        TargetSpec::Revision(r) => Target::Revision(fix_rev(*r, reference)),
    })
}

fn agree<T: PartialEq + fmt::Debug>(what: &str, core: T, reference: T) -> Result<(), String> {
    if core == reference {
        Ok(())
    } else {
        Err(format!(
            "{what} differ\n  core:      {core:?}\n  reference: {reference:?}"
        ))
    }
}

/// Core-side name validation, at the edge as a caller would do it.
fn core_name(name: &str) -> Result<SnapshotName, Failure> {
    SnapshotName::new(name).map_err(|e| from_input(&e))
}

fn core_patch(patch: &Value) -> Patch {
    Patch::from_json(patch).expect("generated patches are well-formed")
}

fn commit_view(c: rewind_core::Commit) -> (u64, Timestamp) {
    (c.revision.get(), c.at)
}

/// Runs one operation on both timelines and compares what they report.
fn step(core: &mut Timeline<Doc>, reference: &mut Reference, op: &Op) -> Result<(), String> {
    match op {
        Op::Advance(s) => reference.clock.advance_secs(i64::from(*s)),
        Op::SetBack(s) => {
            let clock = &reference.clock;
            clock.set(clock.now().add_secs(-i64::from(*s)));
        }
        Op::Apply(patch) => {
            let got = core.apply(&core_patch(patch)).map(commit_view);
            let want = reference.apply(patch, Cause::Change);
            agree("apply", got.map_err(|e| from_timeline(&e)), want)?;
        }
        Op::Replace(doc) => {
            let got = commit_view(core.replace(Doc::from_json(doc).expect("valid")));
            let want = reference.commit(doc.clone(), Cause::Replace);
            agree("replace", got, want)?;
        }
        Op::SnapshotAuto(trigger) => {
            let got = core.snapshot_auto(*trigger);
            let want = reference.snapshot_auto(*trigger);
            agree(
                "snapshot_auto",
                (SnapView::from(&got.snapshot), pruned(&got.pruned)),
                want,
            )?;
        }
        Op::SnapshotNamed {
            name,
            protected,
            replace,
        } => {
            let options = NamedOptions {
                protected: *protected,
                replace: *replace,
            };
            let got = core_name(name).and_then(|n| {
                core.snapshot_named(n, options)
                    .map(|t| (SnapView::from(&t.snapshot), pruned(&t.pruned)))
                    .map_err(|e| from_error(&e))
            });
            let want = reference.snapshot_named(name, *protected, *replace);
            agree("snapshot_named", got, want)?;
        }
        Op::Protect { name, protected } => {
            let got = core_name(name).and_then(|n| {
                core.protect(&n, *protected)
                    .map(|i| SnapView::from(&i))
                    .map_err(|e| from_timeline(&e))
            });
            agree("protect", got, reference.protect(name, *protected))?;
        }
        Op::Delete(name) => {
            let got = core_name(name).and_then(|n| {
                core.delete_snapshot(&n)
                    .map(|i| SnapView::from(&i))
                    .map_err(|e| from_timeline(&e))
            });
            agree("delete_snapshot", got, reference.delete(name))?;
        }
        Op::Rollback(spec) => {
            let old_head = reference.head().clone();
            let target = fix_target(spec, reference);
            let got = target
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|t| core.rollback(&t.to_core()).map_err(|e| from_error(&e)));
            let want = target.and_then(|t| reference.rollback(&t));
            match (got, want) {
                (Ok(got), Ok((resolved, pre, dropped, revision))) => {
                    agree(
                        "rollback (revision, restored, pre-rollback, pruned)",
                        (
                            got.revision.get(),
                            &got.restored,
                            SnapView::from(&got.pre_rollback),
                            pruned(&got.pruned),
                        ),
                        (revision, &resolved.restored, pre, dropped),
                    )?;
                    check_diff(&got.diff, &old_head, &resolved.state)?;
                }
                (got, want) => agree("rollback outcome", got.map(|_| ()), want.map(|_| ()))?,
            }
        }
        Op::DryRun(spec) => {
            let target = fix_target(spec, reference);
            let got = target.as_ref().map_err(Clone::clone).and_then(|t| {
                core.rollback_dry_run(&t.to_core())
                    .map_err(|e| from_error(&e))
            });
            let want = target.and_then(|t| reference.resolve(&t));
            match (got, want) {
                (Ok(got), Ok(resolved)) => {
                    agree(
                        "rollback_dry_run (revision, restored)",
                        (got.revision.get(), &got.restored),
                        (reference.head_revision(), &resolved.restored),
                    )?;
                    check_diff(&got.diff, reference.head(), &resolved.state)?;
                }
                (got, want) => agree(
                    "rollback_dry_run outcome",
                    got.map(|_| ()),
                    want.map(|_| ()),
                )?,
            }
        }
        Op::Read(spec) => {
            let at = fix_ref(spec, reference);
            let got = at.as_ref().map_err(Clone::clone).and_then(|at| {
                let at = at.to_core();
                let state = core.state_at(&at).map_err(|e| from_timeline(&e))?;
                let revision = core.revision_at(&at).map_err(|e| from_timeline(&e))?;
                Ok((revision.get(), state.to_json()))
            });
            let want = at.and_then(|at| reference.read(&at));
            agree("state_at / revision_at", got, want)?;
        }
        Op::Diff(a, b) => {
            let refs = fix_ref(a, reference).and_then(|a| Ok((a, fix_ref(b, reference)?)));
            let got = refs.as_ref().map_err(Clone::clone).and_then(|(a, b)| {
                core.diff(&a.to_core(), &b.to_core())
                    .map_err(|e| from_error(&e))
            });
            let want = refs.and_then(|(a, b)| Ok((reference.read(&a)?.1, reference.read(&b)?.1)));
            match (got, want) {
                (Ok(diff), Ok((from, to))) => check_diff(&diff, &from, &to)?,
                (got, want) => agree("diff outcome", got.map(|_| ()), want.map(|_| ()))?,
            }
        }
        Op::Begin => agree(
            "begin_transaction",
            core.begin_transaction().0,
            reference.begin(),
        )?,
        Op::Step { tx, step, patch } => {
            let tx = &fix_tx(*tx, reference);
            let got = core_name(step).and_then(|s| {
                core.apply_step(TransactionId(*tx), &s, &core_patch(patch))
                    .map(commit_view)
                    .map_err(|e| from_timeline(&e))
            });
            agree("apply_step", got, reference.apply_step(*tx, step, patch))?;
        }
        Op::Checkpoint { tx, name } => {
            let tx = &fix_tx(*tx, reference);
            let got = core_name(name).and_then(|n| {
                core.checkpoint(TransactionId(*tx), n)
                    .map(|i| SnapView::from(&i))
                    .map_err(|e| from_timeline(&e))
            });
            agree("checkpoint", got, reference.checkpoint(*tx, name))?;
        }
        Op::Finish { tx, outcome } => {
            let tx = &fix_tx(*tx, reference);
            let got = core
                .finish_transaction(TransactionId(*tx), *outcome)
                .map(|p| pruned(&p))
                .map_err(|e| from_timeline(&e));
            agree("finish_transaction", got, reference.finish(*tx, *outcome))?;
        }
        Op::TxTarget { tx, policy } => {
            let tx = &fix_tx(*tx, reference);
            let core_policy = match policy {
                PolicySpec::Start => Ok(RollbackPolicy::Start),
                PolicySpec::LastCheckpoint => Ok(RollbackPolicy::LastCheckpoint),
                PolicySpec::Checkpoint(name) => core_name(name).map(RollbackPolicy::Checkpoint),
            };
            let got = core_policy.and_then(|p| {
                core.transaction_target(TransactionId(*tx), &p)
                    .map_err(|e| from_timeline(&e))
            });
            agree(
                "transaction_target",
                got,
                reference.transaction_target(*tx, policy),
            )?;
        }
    }
    Ok(())
}

/// Every state still readable holds the reference's copy: each revision of
/// the window, each snapshot and each checkpoint.
fn check_states(core: &Timeline<Doc>, reference: &Reference) -> Result<(), String> {
    for r in reference.oldest()..=reference.head_revision() {
        let got = core
            .state_at(&StateRef::Revision(Revision(r)))
            .map(|d| d.to_json());
        agree(
            &format!("state of revision {r}"),
            got.map_err(|e| from_timeline(&e)),
            Ok(reference.revisions[r as usize].state.clone()),
        )?;
    }
    for s in &reference.snapshots {
        let name = SnapshotName::new(&s.view.name).expect("valid");
        let got = core
            .state_at(&StateRef::Snapshot(name))
            .map(|d| d.to_json());
        agree(
            &format!("state of snapshot {:?}", s.view.name),
            got.map_err(|e| from_timeline(&e)),
            Ok(s.state.clone()),
        )?;
    }
    for t in &reference.transactions {
        for c in &t.checkpoints {
            let at = StateRef::Checkpoint {
                transaction: TransactionId(t.id),
                name: SnapshotName::new(&c.view.name).expect("valid"),
            };
            let got = core.state_at(&at).map(|d| d.to_json());
            agree(
                &format!(
                    "state of checkpoint {:?} of transaction {}",
                    c.view.name, t.id
                ),
                got.map_err(|e| from_timeline(&e)),
                Ok(c.state.clone()),
            )?;
        }
    }
    Ok(())
}

fn run(program: &Program) -> Result<(), String> {
    let clock = ManualClock::new(t0());
    let initial = Doc::from_json(&program.initial).expect("a valid document");
    let mut core = Timeline::new(initial, program.config, Arc::new(clock.clone()))
        .map_err(|e| format!("config refused: {e}"))?;
    let mut reference = Reference::new(program.initial.clone(), program.config, clock);
    let mut seen = reference.observe();
    agree("initial timeline", observe(&core), seen.clone())?;
    for (i, op) in program.ops.iter().enumerate() {
        let at = |m: String| format!("step {i} `{op:?}`: {m}");
        let before = core.clone();
        step(&mut core, &mut reference, op).map_err(at)?;
        let now = reference.observe();
        let got = observe(&core);
        agree("revision", got.revision, now.revision).map_err(at)?;
        agree("oldest revision", got.oldest, now.oldest).map_err(at)?;
        agree("history (revision, at, cause)", &got.history, &now.history).map_err(at)?;
        agree("head", &got.head, &now.head).map_err(at)?;
        agree("snapshots", &got.snapshots, &now.snapshots).map_err(at)?;
        agree("transactions", &got.transactions, &now.transactions).map_err(at)?;
        agree(
            "snapshot counts (auto, named, checkpoint)",
            got.counts,
            now.counts,
        )
        .map_err(at)?;
        let times: Vec<Timestamp> = core.history().map(|i| i.at).collect();
        if times.windows(2).any(|w| w[0] > w[1]) {
            return Err(at(format!("recorded times go backwards: {times:?}")));
        }
        agree("the clone taken before the step", observe(&before), seen).map_err(at)?;
        check_states(&core, &reference).map_err(at)?;
        seen = now;
    }
    Ok(())
}

fn proptest_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/timeline_model.txt"
        )))),
        ..ProptestConfig::default()
    }
}

/// The same programs with a tiny hot set: only the head and the newest
/// snapshot held whole, at most one rebuild cached, so most reads, diffs
/// and rollbacks of the past rebuild their state from reverse deltas.
fn tiny_hot_set() -> impl Strategy<Value = Program> {
    (program(), 0usize..=1, 0usize..=1).prop_map(|(mut program, hot, cache)| {
        program.config.hot_revisions = hot;
        program.config.rebuild_cache = cache;
        program
    })
}

proptest! {
    #![proptest_config(proptest_config())]

    /// The timeline agrees with the naive reference after every step of any
    /// program.
    #[test]
    fn timeline_agrees_with_the_reference(program in program()) {
        if let Err(message) = run(&program) {
            return Err(TestCaseError::fail(message));
        }
    }

    /// As above, with most states cold.
    #[test]
    fn timeline_with_a_tiny_hot_set_agrees_with_the_reference(program in tiny_hot_set()) {
        if let Err(message) = run(&program) {
            return Err(TestCaseError::fail(message));
        }
    }
}
