//! RFC 6902 conformance: every case of the public json-patch-tests suite
//! (vendored in `tests/data/json-patch-tests/`, Apache-2.0) applied to `Doc`.
//!
//! A case with `expected` must produce exactly that document; a case with
//! `error` must fail to parse or to apply; a case with neither must apply
//! cleanly. `disabled` cases and comment-only records are skipped and counted.

use rewind_core::{Doc, Patch};
use serde_json::Value;

const FILES: [&str; 2] = ["tests.json", "spec_tests.json"];

#[derive(Default)]
struct Tally {
    passed: usize,
    skipped: usize,
    failures: Vec<String>,
}

/// Runs one case; `Err` says why it did not behave as the suite requires.
fn run_case(case: &serde_json::Map<String, Value>) -> Result<(), String> {
    let doc = case.get("doc").ok_or("case has a patch but no doc")?;
    let patch = case.get("patch").ok_or("case has a doc but no patch")?;
    let doc = Doc::from_json(doc).map_err(|e| format!("doc rejected: {e}"))?;
    let outcome = Patch::from_json(patch)
        .map_err(|e| format!("parse: {e}"))
        .and_then(|patch| doc.apply_patch(&patch).map_err(|e| format!("apply: {e}")));
    match (case.get("expected"), case.get("error")) {
        (_, Some(error)) => match outcome {
            Err(_) => Ok(()),
            Ok(result) => Err(format!(
                "expected an error ({error}) but the patch applied, giving {result}"
            )),
        },
        (Some(expected), None) => {
            let expected =
                Doc::from_json(expected).map_err(|e| format!("expected doc rejected: {e}"))?;
            match outcome {
                Ok(result) if result == expected => Ok(()),
                Ok(result) => Err(format!("expected {expected}, got {result}")),
                Err(e) => Err(format!("expected {expected}, got error {e}")),
            }
        }
        (None, None) => outcome.map(drop),
    }
}

fn run_file(file: &str, tally: &mut Tally) {
    let path = format!(
        "{}/tests/data/json-patch-tests/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let cases: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {path}: {e}"));
    assert!(!cases.is_empty(), "{path} holds no case");
    for (index, case) in cases.iter().enumerate() {
        let Value::Object(case) = case else {
            tally
                .failures
                .push(format!("{file} #{index}: record is not an object"));
            continue;
        };
        let comment = case.get("comment").and_then(Value::as_str).unwrap_or("");
        let disabled = case.get("disabled").and_then(Value::as_bool) == Some(true);
        let comment_only = !case.contains_key("doc") && !case.contains_key("patch");
        if disabled || comment_only {
            tally.skipped += 1;
            continue;
        }
        match run_case(case) {
            Ok(()) => tally.passed += 1,
            Err(why) => tally
                .failures
                .push(format!("{file} #{index} ({comment}): {why}")),
        }
    }
}

#[test]
fn every_enabled_case_of_the_suite_passes() {
    let mut tally = Tally::default();
    for file in FILES {
        run_file(file, &mut tally);
    }
    println!(
        "json-patch conformance: {} passed, {} failed, {} skipped",
        tally.passed,
        tally.failures.len(),
        tally.skipped
    );
    assert!(
        tally.failures.is_empty(),
        "{} case(s) failed:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
    // Both files together hold 112 records, 4 of them disabled: guard against
    // the data silently going missing.
    assert!(tally.passed >= 100, "only {} cases ran", tally.passed);
}
