//! The `rewind` command line against a running `rewind serve`: the product
//! guide's safe deployment (snapshot, deploy v2.0.0, see memory climb, roll
//! back to v1.9.5) told entirely through the binary, its `--json` output,
//! refusals that exit non-zero with the server's message, tokens, and
//! `watch`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

use serde_json::{json, Value};

const REWIND: &str = env!("CARGO_BIN_EXE_rewind");

/// A `rewind serve --memory` on a port of its choosing, killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(None)
    }

    fn start_with(admin_token: Option<&str>) -> Server {
        Server::start_with_args(admin_token, &[])
    }

    fn start_with_args(admin_token: Option<&str>, args: &[&str]) -> Server {
        let mut command = Command::new(REWIND);
        command
            .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("REWIND_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(token) = admin_token {
            command.env("REWIND_ADMIN_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        // The server prints its address once the port is bound, so requests
        // from here on are accepted.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("rewind listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let server = Server {
            child,
            url: format!("http://{addr}"),
        };
        assert_eq!(server.healthz(&addr), 200);
        server
    }

    /// The status of `GET /healthz`.
    fn healthz(&self, addr: &str) -> u16 {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response[9..12].parse().unwrap()
    }

    /// `rewind ARGS` against this server, without a token.
    fn rewind(&self, args: &[&str]) -> Command {
        let mut command = Command::new(REWIND);
        command
            .args(args)
            .env("REWIND_SERVER", &self.url)
            .env_remove("REWIND_TOKEN")
            .env_remove("REWIND_ADMIN_TOKEN");
        command
    }

    /// Runs `rewind ARGS`; it must succeed. Returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let output = self.rewind(args).output().unwrap();
        stdout_of_success(args, &output)
    }

    /// Runs `rewind ARGS` with `input` on stdin; it must succeed.
    #[track_caller]
    fn ok_with_stdin(&self, args: &[&str], input: &str) -> String {
        let mut child = self
            .rewind(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        stdout_of_success(args, &output)
    }

    /// Runs `rewind ARGS --json`; it must succeed and print JSON.
    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// Runs `rewind ARGS`; it must fail with exit code 1 and print nothing
    /// on stdout. Returns stderr.
    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let output = self.rewind(args).output().unwrap();
        stderr_of_failure(args, &output)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn stdout_of_success(args: &[&str], output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "rewind {args:?}: {stderr}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[track_caller]
fn stderr_of_failure(args: &[&str], output: &Output) -> String {
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    assert_eq!(output.status.code(), Some(1), "rewind {args:?}: {stderr}");
    assert!(
        output.stdout.is_empty(),
        "rewind {args:?} printed on stdout"
    );
    stderr
}

/// A fresh directory for the JSON files of one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rewind-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// v1.9.5, stable: the state before the deployment.
fn stable() -> Value {
    json!({
        "version": "1.9.5",
        "status": "stable",
        "metrics": {"memory_usage_pct": 41, "error_rate_pct": 0.1},
        "features": {"new_checkout": false}
    })
}

/// Deploying v2.0.0: update the version, enable new features, migrate data
/// structures; memory climbs to 95%.
fn deploy_v2() -> Value {
    json!([
        {"op": "replace", "path": "/version", "value": "2.0.0"},
        {"op": "replace", "path": "/features/new_checkout", "value": true},
        {"op": "add", "path": "/schema", "value": "v2"},
        {"op": "replace", "path": "/metrics/memory_usage_pct", "value": 95}
    ])
}

/// The product guide's "Real-World Workflow: Safe Deployment", one command
/// at a time.
#[test]
fn the_safe_deployment_story_runs_from_the_command_line() {
    let server = Server::start();
    let dir = temp_dir("story");
    let state = dir.join("stable.json");
    std::fs::write(&state, stable().to_string()).unwrap();
    let state = state.to_str().unwrap();

    assert_eq!(
        server.ok(&["create", "acme_corp", "--state", state]),
        "created tenant 'acme_corp' at revision 0\n"
    );
    // Step 1: pre-deployment snapshot.
    assert_eq!(
        server.ok(&["snapshot", "acme_corp", "pre_v2_deploy", "--protected"]),
        "snapshot 'pre_v2_deploy' (named, protected) of 'acme_corp' pins revision 0\n"
    );
    // Step 2: deploy v2.0.0, the patch from stdin.
    assert_eq!(
        server.ok_with_stdin(&["patch", "acme_corp", "-"], &deploy_v2().to_string()),
        "'acme_corp' is at revision 1\n"
    );
    let head: Value = serde_json::from_str(&server.ok(&["get", "acme_corp"])).unwrap();
    assert_eq!(head["version"], "2.0.0");
    assert_eq!(head["metrics"]["memory_usage_pct"], 95);

    // Step 3: monitoring shows memory at 95%; what changed since the snapshot?
    assert_eq!(
        server.ok(&["diff", "acme_corp", "snapshot:pre_v2_deploy", "head"]),
        "revision 0 → 1: 1 added, 0 removed, 3 changed\n\
         metrics.memory_usage_pct: 41 → 95\n\
         added_keys: [\"schema\"]\n\
         changed_keys: [\"features.new_checkout\", \"version\"]\n"
    );

    // Step 4: emergency rollback, previewed first.
    let preview = server.ok(&[
        "rollback",
        "acme_corp",
        "--to-snapshot",
        "pre_v2_deploy",
        "--dry-run",
    ]);
    assert!(
        preview.starts_with(
            "dry run: rolling back 'acme_corp' would restore named 'pre_v2_deploy' (revision 0); \
             nothing changed, still at revision 1\n"
        ),
        "{preview}"
    );
    let rollback = server.ok(&["rollback", "acme_corp", "--to-snapshot", "pre_v2_deploy"]);
    assert_eq!(
        rollback,
        "rolled back 'acme_corp' to named 'pre_v2_deploy' (revision 0): now at revision 2\n\
         undo with: rewind rollback acme_corp --to-revision 1\n\
         metrics.memory_usage_pct: 95 → 41\n\
         removed_keys: [\"schema\"]\n\
         changed_keys: [\"features.new_checkout\", \"version\"]\n"
    );
    let head: Value = serde_json::from_str(&server.ok(&["get", "acme_corp"])).unwrap();
    assert_eq!(head, stable());

    // The deployment is still there to investigate offline.
    let past: Value =
        serde_json::from_str(&server.ok(&["get", "acme_corp", "--revision", "1"])).unwrap();
    assert_eq!(past["version"], "2.0.0");
    let pinned: Value =
        serde_json::from_str(&server.ok(&["get", "acme_corp", "--snapshot", "pre_v2_deploy"]))
            .unwrap();
    assert_eq!(pinned, stable());

    let history = server.ok(&["history", "acme_corp"]);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(
        lines[0].starts_with("revision 2 at ")
            && lines[0].ends_with(
                ": rollback (named) to named 'pre_v2_deploy' (revision 0) from 1 by anonymous"
            ),
        "{history}"
    );
    assert!(lines[1].starts_with("revision 1 at ") && lines[1].ends_with(": change by anonymous"));
    assert!(
        lines[2].starts_with("revision 0 at ") && lines[2].ends_with(": initial by anonymous"),
        "{history}"
    );
    assert_eq!(
        server
            .ok(&["history", "acme_corp", "--limit", "1"])
            .lines()
            .count(),
        1
    );

    let snapshots = server.ok(&["snapshots", "acme_corp"]);
    let lines: Vec<&str> = snapshots.lines().collect();
    assert_eq!(lines.len(), 2, "{snapshots}");
    assert!(
        lines[0].starts_with("pre_v2_deploy  revision 0 "),
        "{snapshots}"
    );
    assert!(lines[0].ends_with("named, protected"), "{snapshots}");
    assert!(lines[1].ends_with("auto, pre-rollback"), "{snapshots}");
    assert_eq!(server.ok(&["tenants"]), "acme_corp  revision 2\n");
    std::fs::remove_dir_all(dir).unwrap();
}

/// `--json` prints the server's answer as it is, for scripts.
#[test]
fn json_output_is_the_servers_json() {
    let server = Server::start();
    let dir = temp_dir("json");
    let patch = dir.join("deploy_v2.json");
    std::fs::write(&patch, deploy_v2().to_string()).unwrap();
    let patch = patch.to_str().unwrap();

    assert_eq!(server.json(&["tenants"]), json!({"tenants": []}));
    let state = dir.join("stable.json");
    std::fs::write(&state, stable().to_string()).unwrap();
    assert_eq!(
        server.json(&["create", "acme_corp", "--state", state.to_str().unwrap()]),
        json!({"tenant": "acme_corp", "revision": 0})
    );
    assert_eq!(server.json(&["get", "acme_corp"]), stable());
    let snapshot = server.json(&["snapshot", "acme_corp", "pre_v2_deploy"]);
    assert_eq!(snapshot["name"], "pre_v2_deploy");
    assert_eq!(snapshot["kind"], "named");
    assert_eq!(snapshot["revision"], 0);
    assert_eq!(snapshot["protected"], false);

    // `--if-match` guards the patch: the head is 0, so 0 passes.
    let patched = server.json(&["patch", "acme_corp", patch, "--if-match", "0"]);
    assert_eq!(patched, json!({"revision": 1}));

    let diff = server.json(&["diff", "acme_corp", "snapshot:pre_v2_deploy", "head"]);
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(
        diff["summary"],
        json!({"added": 1, "removed": 0, "changed": 3})
    );
    assert!(diff["changes"]
        .as_array()
        .unwrap()
        .contains(&json!({"path": "/version", "kind": "changed", "old": "1.9.5", "new": "2.0.0"})));
    assert!(diff["patch"].is_array());

    let preview = server.json(&["rollback", "acme_corp", "--to-latest", "--dry-run"]);
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["revision"], 1);
    assert_eq!(server.json(&["get", "acme_corp"])["version"], "2.0.0");

    let rollback = server.json(&["rollback", "acme_corp", "--to-revision", "0"]);
    assert_eq!(rollback["revision"], 2);
    assert_eq!(
        rollback["restored"],
        json!({"kind": "revision", "revision": 0})
    );
    assert_eq!(server.json(&["get", "acme_corp"]), stable());
    assert_eq!(
        server.json(&["get", "acme_corp", "--revision", "1"])["version"],
        "2.0.0"
    );

    // Times: the instant revision 1 was committed reads v2.0.0.
    let history = server.json(&["history", "acme_corp"]);
    let deployed_at = history["revisions"][1]["at"].as_str().unwrap().to_owned();
    assert_eq!(
        server.json(&["get", "acme_corp", "--as-of", &deployed_at])["version"],
        "2.0.0"
    );
    let time_ref = format!("time:{deployed_at}");
    let diff = server.json(&["diff", "acme_corp", &time_ref, "head"]);
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (json!(1), json!(2))
    );

    let history = server.json(&["history", "acme_corp", "--limit", "2"]);
    let revisions = history["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["cause"]["kind"], "rollback");
    let snapshots = server.json(&["snapshots", "acme_corp"]);
    assert_eq!(snapshots["snapshots"][0]["name"], "pre_v2_deploy");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Refusals exit 1 with the server's message and code, and change nothing.
#[test]
fn a_refusal_exits_non_zero_with_the_servers_message() {
    let server = Server::start();
    server.ok(&["create", "acme_corp"]);
    let history = server.ok(&["history", "acme_corp"]);

    let stderr = server.fails(&["rollback", "acme_corp", "--to-snapshot", "v9"]);
    assert_eq!(
        stderr,
        "rewind: snapshot 'v9' not found for tenant 'acme_corp' (snapshot_not_found)\n"
    );
    let stderr = server.fails(&["get", "globex"]);
    assert!(stderr.contains("(tenant_not_found)"), "{stderr}");
    assert!(stderr.contains("globex"), "{stderr}");
    let stderr = server.fails(&["create", "acme_corp"]);
    assert!(stderr.contains("(tenant_exists)"), "{stderr}");
    let stderr = server.fails(&["diff", "acme_corp", "head", "42"]);
    assert!(stderr.contains("(revision_not_found)"), "{stderr}");

    let dir = temp_dir("refusals");
    let bad = dir.join("bad_patch.json");
    std::fs::write(
        &bad,
        json!([{"op": "remove", "path": "/missing"}]).to_string(),
    )
    .unwrap();
    let stderr = server.fails(&["patch", "acme_corp", bad.to_str().unwrap()]);
    assert!(stderr.contains("(patch_failed)"), "{stderr}");
    let fine = dir.join("patch.json");
    std::fs::write(
        &fine,
        json!([{"op": "add", "path": "/a", "value": 1}]).to_string(),
    )
    .unwrap();
    let stderr = server.fails(&[
        "patch",
        "acme_corp",
        fine.to_str().unwrap(),
        "--if-match",
        "7",
    ]);
    assert!(stderr.contains("(revision_mismatch)"), "{stderr}");

    assert_eq!(server.ok(&["history", "acme_corp"]), history);
    assert_eq!(server.ok(&["get", "acme_corp", "--json"]), "{}\n");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Mistakes caught before any request: a bad id, two read targets, no
/// rollback target (usage errors exit 2, as clap's do).
#[test]
fn usage_errors_are_caught_before_any_request() {
    let server = Server::start();
    let output = server.rewind(&["get", "no/slash"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = server
        .rewind(&["get", "acme", "--revision", "1", "--snapshot", "v1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = server.rewind(&["rollback", "acme"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--to-snapshot"), "{stderr}");
    assert_eq!(server.ok(&["tenants"]), "no tenants\n");
}

/// Nothing listening: the message names the server URL.
#[test]
fn an_unreachable_server_is_named() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let args = ["--server", url.as_str(), "tenants"];
    let output = Command::new(REWIND)
        .args(args)
        .env_remove("REWIND_TOKEN")
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&args, &output);
    assert!(
        stderr.starts_with(&format!(
            "rewind: cannot reach the rewind server at {url}: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("REWIND_SERVER"), "{stderr}");
    let output = Command::new(REWIND)
        .args(["--server", "https://127.0.0.1:7070", "tenants"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("https is not supported"), "{stderr}");
}

/// A server with an admin token: the command line without one is refused
/// with the server's message; with REWIND_TOKEN (or --token) it works.
#[test]
fn the_token_comes_from_rewind_token() {
    let server = Server::start_with(Some("s3cret"));
    let stderr = server.fails(&["tenants"]);
    assert_eq!(
        stderr,
        "rewind: give a token with REWIND_TOKEN or --token: missing bearer token (send \
         `Authorization: Bearer <token>`) (unauthorized)\n"
    );
    let output = server
        .rewind(&["create", "acme_corp"])
        .env("REWIND_TOKEN", "wrong")
        .output()
        .unwrap();
    let stderr = stderr_of_failure(&["create"], &output);
    assert!(stderr.contains("invalid token (unauthorized)"), "{stderr}");

    let output = server
        .rewind(&["create", "acme_corp"])
        .env("REWIND_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(
        stdout_of_success(&["create"], &output),
        "created tenant 'acme_corp' at revision 0\n"
    );
    assert_eq!(
        server.ok(&["--token", "s3cret", "tenants"]),
        "acme_corp  revision 0\n"
    );
}

/// `watch` prints one line per new revision, as they are committed.
#[test]
fn watch_prints_one_line_per_revision() {
    let server = Server::start();
    server.ok(&["create", "acme_corp"]);
    server.ok(&["snapshot", "acme_corp", "pre_v2_deploy"]);
    let mut watch = server
        .rewind(&["watch", "acme_corp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(watch.stdout.take().unwrap());
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    // Printed once the server has subscribed the stream: every revision
    // from here on reaches it.
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("watching 'acme_corp' on "), "{line}");

    server.ok_with_stdin(
        &["patch", "acme_corp", "-"],
        &json!([{"op": "add", "path": "/version", "value": "2.0.0"}]).to_string(),
    );
    server.ok(&["rollback", "acme_corp", "--to-snapshot", "pre_v2_deploy"]);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("revision 1 at ") && first.ends_with(": change by anonymous\n"),
        "{first}"
    );
    let mut second = String::new();
    stdout.read_line(&mut second).unwrap();
    assert!(
        second.starts_with("revision 2 at ")
            && second.ends_with(
                ": rollback (named) to named 'pre_v2_deploy' (revision 0) from 1 by anonymous\n"
            ),
        "{second}"
    );
    watch.kill().unwrap();
    watch.wait().unwrap();
}

/// A `rewind watch` started as a background job.
struct Watching {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Watching {
    /// `rewind watch ARGS`, once it printed that it is watching (the
    /// server has subscribed the stream).
    fn start(server: &Server, args: &[&str]) -> Watching {
        let mut child = server
            .rewind(&[&["watch"], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.starts_with("watching '"), "{line}");
        Watching {
            child,
            stdout,
            stderr,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    /// Waits for the end: the exit code and the rest of stderr.
    fn end(mut self) -> (Option<i32>, String) {
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        let status = self.child.wait().unwrap();
        (status.code(), rest)
    }
}

/// A watched tenant that is deleted ends the watch with a message saying
/// so and exit 1, where it used to print "the server ended the stream" and
/// exit 0; a resume point beyond the head is reset to it; a server that
/// stops ends the watch with exit 5 and how to resume (`--after` the last
/// revision seen).
#[test]
fn watch_says_why_it_ended() {
    let server = Server::start();
    server.ok(&["create", "acme_corp"]);
    let watch = Watching::start(&server, &["acme_corp"]);
    server.ok(&["delete", "acme_corp"]);
    let (code, stderr) = watch.end();
    assert!(
        stderr.contains("tenant 'acme_corp' was deleted"),
        "{stderr}"
    );
    assert_eq!(code, Some(1), "{stderr}");

    // Created again: resuming after revision 5 of the old tenant is
    // answered with a reset to the new one's head.
    server.ok(&["create", "acme_corp"]);
    let mut watch = Watching::start(&server, &["acme_corp", "--after", "5"]);
    assert_eq!(
        watch.line(),
        "reset: revision 5 is beyond the head (0): the tenant was deleted and created again; \
         re-read it, watching from revision 0\n"
    );
    server.ok_with_stdin(
        &["patch", "acme_corp", "-"],
        &json!([{"op": "add", "path": "/v", "value": 1}]).to_string(),
    );
    assert!(watch.line().starts_with("revision 1 at "));
    let mut server = server;
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    server.child.wait().unwrap();
    let (code, stderr) = watch.end();
    assert!(
        stderr.contains("rewind watch acme_corp --after 1"),
        "{stderr}"
    );
    assert_eq!(code, Some(5), "{stderr}");
}

/// `rewind serve --help` lists the server's flags only; the client
/// subcommands list the client options.
#[test]
fn serve_help_shows_only_serve_options() {
    let output = Command::new(REWIND)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--max-connections",
        "--header-read-timeout",
        "--idle-timeout",
    ] {
        assert!(help.contains(flag), "{flag} missing from {help}");
    }
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|line| line.trim().split([' ', ',']).next())
        .filter(|word| word.starts_with("--"))
        .collect();
    for flag in ["--server", "--token", "--json"] {
        assert!(
            !flags.contains(&flag),
            "{flag} in rewind serve --help:\n{help}"
        );
    }
    assert!(flags.contains(&"--tokens"), "{flags:?}");
    let output = Command::new(REWIND)
        .args(["get", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("--server") && help.contains("REWIND_SERVER"),
        "{help}"
    );
    assert!(!help.contains("--listen"), "{help}");
    // The exit codes are in `rewind --help`, and each command's own.
    let output = Command::new(REWIND).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("Exit codes:")
            && help.contains("3  transaction: a step failed and it rolled back")
            && help.contains("5  watch: the server ended the stream"),
        "{help}"
    );
    let output = Command::new(REWIND)
        .args(["transaction", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("3 when a step failed and it rolled back"),
        "{help}"
    );
    let output = Command::new(REWIND)
        .args(["--json", "serve", "--memory"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not of `rewind serve`"));
}

/// Snapshots protected, unprotected and deleted; a transaction from a
/// file with each step printed; a rollback to one of its checkpoints; and
/// the tenant deleted.
#[test]
fn snapshots_transactions_checkpoints_and_deletion_from_the_command_line() {
    let server = Server::start();
    let dir = temp_dir("lifecycle");
    server.ok(&["create", "acme_corp"]);
    assert_eq!(
        server.ok(&["snapshot", "acme_corp", "v1", "--protected"]),
        "snapshot 'v1' (named, protected) of 'acme_corp' pins revision 0\n"
    );
    let stderr = server.fails(&["snapshot", "acme_corp", "--delete", "v1"]);
    assert!(stderr.contains("(snapshot_protected)"), "{stderr}");
    assert_eq!(
        server.ok(&["unprotect", "acme_corp", "v1"]),
        "snapshot 'v1' (named) of 'acme_corp' pins revision 0\n"
    );
    assert_eq!(
        server.ok(&["protect", "acme_corp", "v1"]),
        "snapshot 'v1' (named, protected) of 'acme_corp' pins revision 0\n"
    );
    server.ok(&["unprotect", "acme_corp", "v1"]);
    assert_eq!(
        server.ok(&["snapshot", "acme_corp", "--delete", "v1"]),
        "deleted snapshot 'v1' of 'acme_corp'\n"
    );
    assert_eq!(server.ok(&["snapshots", "acme_corp"]), "no snapshots\n");
    let stderr = server.fails(&["protect", "acme_corp", "v1"]);
    assert!(stderr.contains("(snapshot_not_found)"), "{stderr}");

    // A migration in three steps; the third fails, so it rolls back to the
    // start, and every step is printed.
    let file = dir.join("migration.json");
    std::fs::write(
        &file,
        json!({"steps": [
            {"name": "schema", "patch": [{"op": "add", "path": "/schema", "value": "v2"}]},
            {"name": "data", "patch": [{"op": "add", "path": "/users", "value": 3}]},
            {"name": "verify", "patch": [{"op": "test", "path": "/users", "value": 4}]}
        ]})
        .to_string(),
    )
    .unwrap();
    // It ran and rolled back: exit 3, the report on stdout, why on stderr.
    let args = ["transaction", "acme_corp", file.to_str().unwrap()];
    let output = server.rewind(&args).output().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(3), "{out}{err}");
    assert!(
        err.contains("transaction 1 on 'acme_corp' rolled back: step 'verify' failed"),
        "{err}"
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "step 'schema': revision 1, checkpoint 'schema'",
        "{out}"
    );
    assert_eq!(
        lines[1], "step 'data': revision 2, checkpoint 'data'",
        "{out}"
    );
    assert!(lines[2].starts_with("step 'verify' failed: "), "{out}");
    assert!(
        lines[3].starts_with("transaction 1 on 'acme_corp': rolled back to checkpoint 'start'"),
        "{out}"
    );
    assert_eq!(server.json(&["get", "acme_corp"]), json!({}));

    // Roll forward to the checkpoint after `data`.
    let out = server.ok(&["rollback", "acme_corp", "--to-checkpoint", "1:data"]);
    assert!(
        out.starts_with("rolled back 'acme_corp' to checkpoint 'data'"),
        "{out}"
    );
    assert_eq!(
        server.json(&["get", "acme_corp"]),
        json!({"schema": "v2", "users": 3})
    );
    let stderr = server.fails(&["rollback", "acme_corp", "--to-checkpoint", "1:nope"]);
    assert!(stderr.contains("not found"), "{stderr}");
    let output = server
        .rewind(&["rollback", "acme_corp", "--to-checkpoint", "data"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));

    // A committed transaction from stdin, as JSON.
    let report = server.ok_with_stdin(
        &["transaction", "acme_corp", "-", "--json"],
        &json!({"steps": [{"name": "bump", "patch": [{"op": "replace", "path": "/users", "value": 4}]}]})
            .to_string(),
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["outcome"], "committed");

    assert_eq!(
        server.ok(&["delete", "acme_corp"]),
        "deleted tenant 'acme_corp'\n"
    );
    assert_eq!(server.ok(&["tenants"]), "no tenants\n");
    let stderr = server.fails(&["delete", "acme_corp"]);
    assert!(stderr.contains("(tenant_not_found)"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The audit trail from the command line: `--reason` (or REWIND_REASON)
/// goes with each write, `history` shows who and why, `patch --merge` sends
/// a merge patch, and `watch --after N` resumes a watch.
#[test]
fn history_shows_who_and_why() {
    let dir = temp_dir("audit");
    let tokens = dir.join("tokens");
    std::fs::write(
        &tokens,
        "admin root-token\ntenant acme_corp acme-token label=ci-deployer\n",
    )
    .unwrap();
    let server = Server::start_with_args(None, &["--tokens", tokens.to_str().unwrap()]);
    let as_ci = |args: &[&str]| {
        let output = server
            .rewind(args)
            .env("REWIND_TOKEN", "acme-token")
            .output()
            .unwrap();
        stdout_of_success(args, &output)
    };
    let output = server
        .rewind(&["create", "acme_corp"])
        .env("REWIND_TOKEN", "root-token")
        .output()
        .unwrap();
    stdout_of_success(&["create"], &output);

    let merge = dir.join("memory.json");
    std::fs::write(
        &merge,
        json!({"memory_pct": 95, "canary": null}).to_string(),
    )
    .unwrap();
    assert_eq!(
        as_ci(&[
            "patch",
            "acme_corp",
            merge.to_str().unwrap(),
            "--merge",
            "--reason",
            "memory at 95%"
        ]),
        "'acme_corp' is at revision 1\n"
    );
    let output = server
        .rewind(&["rollback", "acme_corp", "--to-revision", "0"])
        .env("REWIND_TOKEN", "root-token")
        .env("REWIND_REASON", "undo the deploy")
        .output()
        .unwrap();
    stdout_of_success(&["rollback"], &output);

    let history = as_ci(&["history", "acme_corp"]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines[0].ends_with(" from 1 by admin: \"undo the deploy\""),
        "{history}"
    );
    assert!(
        lines[1].ends_with(": change by ci-deployer: \"memory at 95%\""),
        "{history}"
    );
    let json = as_ci(&["history", "acme_corp", "--json"]);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["revisions"][1]["author"], "ci-deployer");
    assert_eq!(json["revisions"][1]["message"], "memory at 95%");
    assert!(!json.to_string().contains("acme-token"));
    let state: Value =
        serde_json::from_str(&as_ci(&["get", "acme_corp", "--revision", "1"])).unwrap();
    assert_eq!(state, json!({"memory_pct": 95}));

    // Resuming a watch after revision 0 replays 1 and 2 first.
    let mut watch = server
        .rewind(&["watch", "acme_corp", "--after", "0"])
        .env("REWIND_TOKEN", "acme-token")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(watch.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("revision 1 at ")
            && first.ends_with("by ci-deployer: \"memory at 95%\"\n"),
        "{first}"
    );
    let mut second = String::new();
    stdout.read_line(&mut second).unwrap();
    assert!(second.starts_with("revision 2 at "), "{second}");
    watch.kill().unwrap();
    watch.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

/// `rewind tenants` follows the server's pages (1,000 per page) and
/// `--limit` caps the total.
#[test]
fn tenants_follows_the_pages_and_limit_caps_the_total() {
    let server = Server::start();
    let addr = server.url.trim_start_matches("http://").to_owned();
    for i in 0..1_005 {
        let mut stream = TcpStream::connect(&addr).unwrap();
        write!(
            stream,
            "PUT /v1/tenants/t{i:04} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    }
    let listed = server.ok(&["tenants"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 1_005, "{listed}");
    assert!(lines[0].starts_with("t0000 ") && lines[1_004].starts_with("t1004 "));
    assert_eq!(server.ok(&["tenants", "--limit", "3"]).lines().count(), 3);
    let json = server.json(&["tenants", "--limit", "1002"]);
    assert_eq!(json["tenants"].as_array().unwrap().len(), 1_002);
    assert_eq!(json["tenants"][1_001]["tenant"], "t1001");
}

/// A health endpoint answering every request with the status a test sets.
fn health_endpoint(status: std::sync::Arc<std::sync::atomic::AtomicU16>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let code = status.load(std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 {code} Status\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    addr.to_string()
}

#[test]
fn deploy_follows_the_deployment_and_exits_by_its_outcome() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let status = std::sync::Arc::new(AtomicU16::new(200));
    let health = health_endpoint(std::sync::Arc::clone(&status));
    let server = Server::start_with_args(None, &["--allow-check-host", &health]);
    let dir = temp_dir("deploy");
    let state = dir.join("stable.json");
    std::fs::write(&state, stable().to_string()).unwrap();
    server.ok(&["create", "acme_corp", "--state", state.to_str().unwrap()]);
    let patch = dir.join("v2.json");
    std::fs::write(
        &patch,
        json!([{"op": "replace", "path": "/version", "value": "2.0.0"}]).to_string(),
    )
    .unwrap();
    let check = format!("http:http://{health}/health");
    let deploy = |name: &str| {
        server
            .rewind(&[
                "deploy",
                "acme_corp",
                patch.to_str().unwrap(),
                "--name",
                name,
                "--check",
                &check,
                "--interval",
                "100ms",
                "--window",
                "400ms",
            ])
            .output()
            .unwrap()
    };
    let promoted = deploy("v2.0.0");
    let out = String::from_utf8_lossy(&promoted.stdout).into_owned();
    assert!(
        promoted.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert!(out.contains("deploying 'v2.0.0' to 'acme_corp'"), "{out}");
    assert_eq!(out.matches("  pass   http ").count(), 4, "{out}");
    assert!(out.contains("promoted 'v2.0.0' on 'acme_corp'"), "{out}");

    status.store(500, Ordering::SeqCst);
    server.ok(&["rollback", "acme_corp", "--to-snapshot", "pre_v2.0.0"]);
    let rolled_back = deploy("v2.0.1");
    let out = String::from_utf8_lossy(&rolled_back.stdout).into_owned();
    let err = String::from_utf8_lossy(&rolled_back.stderr).into_owned();
    assert_eq!(rolled_back.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("  fail   http "), "{out}");
    assert!(out.contains("status 500, expected 200"), "{out}");
    assert!(out.contains("rolled back 'v2.0.1' on 'acme_corp'"), "{out}");
    assert!(err.contains("deployment 'v2.0.1' rolled back"), "{err}");
    let state = server.json(&["get", "acme_corp"]);
    assert_eq!(state["version"], stable()["version"]);

    let listing = server.ok(&["deployments", "acme_corp"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(
        lines[0].contains("rolled_back") && lines[0].contains("v2.0.1"),
        "{listing}"
    );
    assert!(
        lines[1].contains("promoted") && lines[1].contains("v2.0.0"),
        "{listing}"
    );
    // A host not allowed: refused before anything changes.
    let refused = server.fails(&[
        "deploy",
        "acme_corp",
        patch.to_str().unwrap(),
        "--name",
        "v3",
        "--check",
        "http:http://127.0.0.1:1/health",
    ]);
    assert!(
        refused.contains("--allow-check-host 127.0.0.1:1"),
        "{refused}"
    );
}

/// `rewind fork`, `forks` and `promote`: a variant forked, changed,
/// promoted by merge; a conflicting one refused with the paths; `--json`.
#[test]
fn forks_from_the_command_line() {
    let server = Server::start();
    let dir = temp_dir("forks");
    let state = dir.join("shop.json");
    std::fs::write(&state, json!({"price": 10, "hero": "classic"}).to_string()).unwrap();
    server.ok(&["create", "shop", "--state", state.to_str().unwrap()]);
    let change = |name: &str, patch: Value| {
        let file = dir.join(name);
        std::fs::write(&file, patch.to_string()).unwrap();
        file.to_str().unwrap().to_owned()
    };
    let bold = change(
        "bold.json",
        json!([{"op": "replace", "path": "/hero", "value": "bold"}]),
    );
    let cheaper = change(
        "cheaper.json",
        json!([{"op": "replace", "path": "/price", "value": 8}]),
    );
    let dearer = change(
        "dearer.json",
        json!([{"op": "replace", "path": "/price", "value": 12}]),
    );

    assert_eq!(
        server.ok(&["fork", "shop", "shop.b"]),
        "forked 'shop' at revision 0 into 'shop.b' (revision 0)\n"
    );
    let mut forked = server.json(&["fork", "shop", "shop.c", "--from", "0"]);
    // The parent's incarnation: which creation of 'shop' it was made of.
    let incarnation = forked["fork"]
        .as_object_mut()
        .and_then(|fork| fork.remove("parent_incarnation"))
        .unwrap();
    assert_eq!(incarnation.as_str().unwrap().len(), 32, "{incarnation}");
    assert_eq!(
        forked["fork"],
        json!({"parent": "shop", "base_revision": 0})
    );
    let listed = server.ok(&["forks", "shop"]);
    assert!(listed.starts_with("shop.b  from revision 0  "), "{listed}");
    assert_eq!(listed.lines().count(), 2, "{listed}");

    server.ok(&["patch", "shop.b", &bold]);
    server.ok(&["patch", "shop.c", &cheaper]);
    server.ok(&["patch", "shop", &dearer]);
    assert_eq!(
        server.ok(&["promote", "shop.b"]),
        "promoted 'shop.b' (revision 1, merge) into 'shop': revision 2\n"
    );
    assert_eq!(
        server.json(&["get", "shop"]),
        json!({"price": 12, "hero": "bold"})
    );
    let refused = server.fails(&["promote", "shop.c", "--strategy", "merge"]);
    assert!(refused.contains("/price"), "{refused}");
    let stale = server.fails(&[
        "promote",
        "shop.c",
        "--strategy",
        "replace",
        "--if-parent-revision",
        "1",
    ]);
    assert!(stale.contains("expected 1"), "{stale}");
    let promoted = server.json(&["promote", "shop.c", "--strategy", "replace"]);
    assert_eq!(promoted["revision"], 3);
    assert_eq!(
        server.json(&["get", "shop"]),
        json!({"price": 8, "hero": "classic"})
    );
    let history = server.ok(&["history", "shop", "--limit", "1"]);
    assert!(
        history.contains("promote (replace) of 'shop.c' at revision 1"),
        "{history}"
    );
}

/// `rewind delete` refuses a tenant with attached forks or protected
/// snapshots (exit 1, naming them and what `--force` would destroy),
/// deletes it with `--detach-forks` / `--force`, and a detached fork's
/// promotion is refused.
#[test]
fn delete_refuses_forks_and_protected_snapshots_without_the_flags() {
    let server = Server::start();
    server.ok(&["create", "p1"]);
    server.ok(&["fork", "p1", "p1.f"]);
    server.ok(&["snapshot", "p1", "keep", "--protected"]);
    let refused = server.fails(&["delete", "p1"]);
    assert!(refused.contains("(delete_refused)"), "{refused}");
    assert!(refused.contains("--force would destroy"), "{refused}");
    assert!(refused.contains("protected snapshot 'keep'"), "{refused}");
    assert!(refused.contains("--detach-forks"), "{refused}");
    assert!(refused.contains("'p1.f'"), "{refused}");
    // Each flag overrides its own refusal only.
    let refused = server.fails(&["delete", "p1", "--force"]);
    assert!(refused.contains("'p1.f'"), "{refused}");
    assert!(!refused.contains("--force would destroy"), "{refused}");
    let refused = server.fails(&["delete", "p1", "--detach-forks"]);
    assert!(refused.contains("protected snapshot 'keep'"), "{refused}");
    assert_eq!(server.json(&["get", "p1"]), json!({}));
    assert_eq!(
        server.ok(&["delete", "p1", "--force", "--detach-forks"]),
        "deleted tenant 'p1'\n"
    );
    server.ok(&["create", "p1"]);
    let refused = server.fails(&["promote", "p1.f", "--strategy", "replace"]);
    assert!(refused.contains("(fork_detached)"), "{refused}");
    assert_eq!(server.ok(&["forks", "p1"]), "'p1' has no forks\n");
}
