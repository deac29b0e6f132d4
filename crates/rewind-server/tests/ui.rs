//! The timeline UI at `/ui`: its page and files are served from the binary
//! without a token while the API keeps its authentication; and the product
//! guide's stories walked by clicking in a real Chromium (`ui/stories.py`,
//! Playwright driving Debian's `chromium` against two `rewind serve
//! --memory`: one open, one with tokens).
//!
//! Without Chromium or Playwright the browser test prints a loud skip line
//! ([`SKIPPED`]); with `REWIND_REQUIRE_BROWSER=1` (as `.ci/run` sets) it
//! fails instead. The Python with Playwright is `REWIND_PLAYWRIGHT_PYTHON`,
//! else `<target>/ui-venv/bin/python` (where `.ci/run` installs it), else
//! `python3`; the browser `REWIND_CHROMIUM`, else `/usr/bin/chromium`.
//! Screenshots go to `<target>/ui-screenshots/`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use rewind_server::{ApiConfig, Tokens};
use support::Server;

const REWIND: &str = env!("CARGO_BIN_EXE_rewind");

/// What the browser test prints when it skips.
const SKIPPED: &str = "skipped: the timeline UI browser tests need Debian's chromium and \
                       Playwright (pip install playwright); set REWIND_REQUIRE_BROWSER=1 to \
                       fail instead";

#[tokio::test]
async fn the_page_and_its_files_need_no_token_and_the_api_still_does() {
    let mut tokens = Tokens::none();
    tokens.add_admin("admin-secret").unwrap();
    let server = Server::start(ApiConfig {
        tokens,
        ..support::config()
    })
    .await;

    let root = server.get("/").await;
    root.assert_status(308);
    assert_eq!(root.headers["location"], "/ui");
    for page in ["/ui", "/ui/", "/ui/tenants/acme_corp"] {
        let reply = server.get(page).await;
        reply.assert_status(200);
        assert!(reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(reply
            .text
            .contains(r#"<script type="module" src="/ui/assets/app.js">"#));
    }
    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("api.js", "text/javascript"),
        ("timeline.js", "text/javascript"),
        ("tree.js", "text/javascript"),
        ("diff.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let reply = server.get(&format!("/ui/assets/{file}")).await;
        reply.assert_status(200);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{file}"
        );
        assert!(!reply.text.is_empty());
    }
    server
        .get("/ui/assets/secrets.txt")
        .await
        .assert_error(404, "not_found");
    server
        .get("/ui/tenants/acme_corp/extra")
        .await
        .assert_error(404, "not_found");
    // The app calls the API with the token; without one the API refuses.
    server
        .get("/v1/tenants")
        .await
        .assert_error(401, "unauthorized");
}

/// The UI is not part of the API: the OpenAPI document (checked against
/// `route_paths` in `openapi.rs`) does not describe it.
#[tokio::test]
async fn the_ui_routes_are_not_api_routes() {
    let server = Server::new().await;
    assert!(server
        .api
        .route_paths()
        .iter()
        .all(|path| *path != "/" && !path.starts_with("/ui")));
}

/// Every `import` of the app names a file the server embeds.
#[test]
fn every_module_the_app_imports_is_served() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let ui =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ui.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name != "index.html" {
            assert!(
                ui.contains(&format!("\"{name}\"")),
                "{name} is not embedded"
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let module = line.split('"').nth(1).unwrap().trim_start_matches("./");
            assert!(dir.join(module).exists(), "{name} imports {module}");
        }
    }
}

// --- the browser test ---------------------------------------------------

/// A `rewind serve --memory` on a port of its choosing, killed on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(REWIND)
            .args(["serve", "--memory", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("REWIND_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("rewind listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Serve { child, url }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The target directory (`.../target`), from the binary's path.
fn target_dir() -> PathBuf {
    Path::new(REWIND)
        .ancestors()
        .nth(2)
        .expect("the binary is in <target>/<profile>/")
        .to_path_buf()
}

/// The Python that can import Playwright, and the Chromium, or why not.
fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium = PathBuf::from(
        std::env::var("REWIND_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
    );
    if !chromium.exists() {
        return Err(format!("{} not found", chromium.display()));
    }
    let candidates: Vec<PathBuf> = match std::env::var_os("REWIND_PLAYWRIGHT_PYTHON") {
        Some(python) => vec![python.into()],
        None => vec![
            target_dir().join("ui-venv/bin/python"),
            PathBuf::from("python3"),
        ],
    };
    for python in candidates {
        let imports = Command::new(&python)
            .args(["-c", "import playwright.sync_api"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if imports.is_ok_and(|s| s.success()) {
            return Ok((python, chromium));
        }
    }
    Err("no Python with Playwright".into())
}

#[test]
fn the_guide_stories_by_clicking_in_chromium() {
    let (python, chromium) = match browser() {
        Ok(found) => found,
        Err(why) => {
            if std::env::var("REWIND_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                panic!(
                    "REWIND_REQUIRE_BROWSER=1 but {why} (apt-get install chromium; \
                     pip install playwright into {})",
                    target_dir().join("ui-venv").display()
                );
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "{SKIPPED} ({why})");
            return;
        }
    };
    // A 100k-key state is about 2 MB of JSON: past the default body limit.
    let open = Serve::start(&["--max-body-bytes", "16777216"]);
    let tokens = std::env::temp_dir().join(format!("rewind-ui-tokens-{}", std::process::id()));
    std::fs::write(
        &tokens,
        "admin admin-secret\ntenant acme_corp acme-secret\n",
    )
    .unwrap();
    let locked = Serve::start(&["--tokens", tokens.to_str().unwrap()]);
    let shots = target_dir().join("ui-screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/stories.py");
    let output = Command::new(&python)
        .arg(&script)
        .args([&open.url, &locked.url])
        .arg(&shots)
        .env("REWIND_CHROMIUM", &chromium)
        .env_remove("REWIND_UI_STORIES")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&tokens);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The stories and their timings, in every run (past the capture).
    let _ = writeln!(std::io::stderr().lock(), "{stdout}");
    assert!(
        output.status.success(),
        "stories failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "story named snapshot rollback: ok",
        "story time-travel debugging: ok",
        "story state diff: ok",
        "story live update: ok",
        "timing: select revision 0 of a 100,000-key tenant",
        "timing: scrub a 1,000-revision window (even spacing)",
        "ui stories: all passed",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}
