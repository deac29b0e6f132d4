//! Test support, **for rewind's own tests**: not part of the supported API.
//!
//! [`PgServer`] runs a throwaway PostgreSQL cluster in a temp directory, so
//! the PostgreSQL journal's tests need nothing but the server's binaries
//! installed (`apt-get install postgresql`). Without them, tests skip with a
//! loud line ([`SKIPPED`]); with `REWIND_REQUIRE_POSTGRES=1` they fail
//! instead. [`FaultyJournal`] wraps a journal to fail appends before or
//! after they are stored.

mod faults;

pub use faults::{Fault, FaultyJournal};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a test prints when it skips for want of PostgreSQL.
pub const SKIPPED: &str = "skipped: PostgreSQL not installed (initdb/pg_ctl not found); \
                           set REWIND_REQUIRE_POSTGRES=1 to fail instead";

/// Prints [`SKIPPED`] to stderr, past the test harness's capture of test
/// output, so a skip shows in every run.
pub fn print_skipped() {
    use std::io::Write as _;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{SKIPPED}");
}

/// The user the cluster is created for (it trusts local connections).
const USER: &str = "rewind";

/// How many ports to try when the server cannot listen on the first.
const PORT_TRIES: usize = 5;

/// A PostgreSQL cluster of its own for tests: created with `initdb` in a
/// fresh temp directory, listening on a free loopback port. [`stop`]
/// (`pg_ctl stop -m fast`) or drop stops it, and drop removes the directory.
/// A watchdog process does both once the test process is gone, however it
/// ends (a cluster kept in a `static` is never dropped).
///
/// Run as root (where `initdb` and `postgres` refuse to run), the binaries
/// run as the `postgres` system user (else `nobody`) through `runuser`.
///
/// [`stop`]: PgServer::stop
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    port: u16,
    binaries: Binaries,
    /// `Some(user)` when running as root: the binaries run as that user.
    run_as: Option<String>,
    stopped: AtomicBool,
}

/// How [`PgServer::restart_now`] stops the server before starting it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `-m fast`: every session is ended (`57P01 terminating connection due
    /// to administrator command`), its open transaction rolled back, and
    /// the server shuts down cleanly.
    Fast,
    /// `-m immediate`: the server processes quit at once, as in a crash;
    /// sessions see their connection close, and the start recovers from
    /// the write-ahead log.
    Immediate,
}

/// Where the server's programs are.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl PgServer {
    /// Starts a cluster; `None` (after printing [`SKIPPED`] to stderr) if
    /// PostgreSQL is not installed.
    ///
    /// # Panics
    ///
    /// If PostgreSQL is not installed and `REWIND_REQUIRE_POSTGRES=1`; if the
    /// binaries are there but the cluster cannot be created or started (the
    /// message has the server's log).
    pub fn start() -> Option<PgServer> {
        let Some(binaries) = Binaries::find() else {
            if std::env::var("REWIND_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!(
                    "REWIND_REQUIRE_POSTGRES=1 but PostgreSQL binaries are not installed \
                     (apt-get install postgresql)"
                );
            }
            print_skipped();
            return None;
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rewind-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let run_as = if is_root() {
            let user = if user_exists("postgres") {
                "postgres"
            } else {
                "nobody"
            };
            let status = Command::new("chown").args(["-R", user]).arg(&dir).status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "chown -R {user} {}: {status:?}",
                dir.display()
            );
            Some(user.to_owned())
        } else {
            None
        };
        let mut server = PgServer {
            dir,
            port: 0,
            binaries,
            run_as,
            stopped: AtomicBool::new(false),
        };
        server.initdb();
        server.watch();
        let mut failures = Vec::new();
        for _ in 0..PORT_TRIES {
            server.port = free_port();
            match server.pg_ctl_start() {
                Ok(()) => return Some(server),
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "PostgreSQL would not start in {} ({PORT_TRIES} ports tried):\n{}\nlog tail:\n{}",
            server.dir.display(),
            failures.join("\n"),
            server.log_tail()
        );
    }

    /// The URL of the cluster's `postgres` database.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates the database `name` (letters, digits and `_`) and returns its
    /// URL; each test takes one of its own.
    ///
    /// # Panics
    ///
    /// If `name` is not such a name or the database cannot be created (say,
    /// it exists).
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            !name.is_empty()
                && name.len() < 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database name {name:?}: use 1 to 63 letters, digits and _"
        );
        let sql = format!("CREATE DATABASE \"{name}\"");
        if let Err(error) = self.on_admin_connection(move |client| client.batch_execute(&sql)) {
            panic!("creating database {name}: {}", message(&error));
        }
        self.database_url(name)
    }

    /// Ends every session of the database `db` (as an administrator's
    /// `pg_terminate_backend`), as if their connections dropped.
    ///
    /// # Panics
    ///
    /// If the server cannot be asked.
    pub fn kill_connections(&self, db: &str) {
        let db = db.to_owned();
        let killed = self.on_admin_connection(move |client| {
            client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&db],
                )
                .map(|rows| rows.len())
        });
        if let Err(error) = killed {
            panic!(
                "terminating the sessions of a database: {}",
                message(&error)
            );
        }
    }

    /// Runs SQL statements (no parameters) on the database `db`, as a test
    /// reaches behind the journal's back.
    ///
    /// # Panics
    ///
    /// If they fail.
    pub fn execute(&self, db: &str, sql: &str) {
        let (url, statements) = (self.database_url(db), sql.to_owned());
        let outcome = on_thread(move || {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls)?;
            client.batch_execute(&statements)
        });
        if let Err(error) = outcome {
            panic!("running {sql:?} on {db}: {}", message(&error));
        }
    }

    /// Stops the server (`pg_ctl stop -m fast`); again does nothing.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        let mut stop = self.command(&self.binaries.pg_ctl);
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"]);
        if let Err(failure) = run(&mut stop) {
            eprintln!("stopping the test PostgreSQL server: {failure}");
        }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same
    /// port and data; does nothing while it runs. Panics, with the log's
    /// tail, if it does not start.
    pub fn restart(&self) {
        if !self.stopped.load(Ordering::SeqCst) {
            return;
        }
        if let Err(failure) = self.pg_ctl_start() {
            panic!("restarting the test PostgreSQL server: {failure}");
        }
        self.stopped.store(false, Ordering::SeqCst);
    }

    /// Restarts the running server at once, on the same port and data
    /// (`pg_ctl restart -m fast|immediate`), cutting whatever its sessions
    /// are doing: see [`Shutdown`]. Returns when the server accepts
    /// connections again (polled every 10 ms), with the moment it first did.
    ///
    /// # Panics
    ///
    /// If `pg_ctl` fails, or the server does not accept connections within
    /// 60 seconds (the message has the log's tail).
    pub fn restart_now(&self, mode: Shutdown) -> std::time::Instant {
        let mode = match mode {
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        };
        let mut restart = self.command(&self.binaries.pg_ctl);
        // `-W`: pg_ctl waits for the stop, not for the start; the poll
        // below tells when the server accepts connections.
        restart
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(self.options())
            .arg("-l")
            .arg(self.log())
            .args(["-m", mode, "-W", "restart"]);
        if let Err(failure) = run(&mut restart) {
            panic!("restarting the test PostgreSQL server ({mode}): {failure}");
        }
        self.stopped.store(false, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if self.accepts_connections() {
                return std::time::Instant::now();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the test PostgreSQL server did not accept connections within 60 s of a \
                 restart ({mode}); log tail:\n{}",
                self.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Whether a session can be opened and run `SELECT 1` now (not while
    /// the server is down, starting up or recovering).
    pub fn accepts_connections(&self) -> bool {
        let url = self.url();
        on_thread(move || {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls)?;
            client.simple_query("SELECT 1")
        })
        .is_ok()
    }

    fn database_url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// `program`, as the server's user when running as root, in the
    /// cluster's directory (which that user can enter).
    fn command(&self, program: &Path) -> Command {
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn initdb(&self) {
        let mut initdb = self.command(&self.binaries.initdb);
        initdb.arg("-D").arg(self.data()).args([
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        if let Err(failure) = run(&mut initdb) {
            panic!("initdb failed in {}:\n{failure}", self.dir.display());
        }
    }

    /// The server's command-line options.
    fn options(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
             -c synchronous_commit=on -c max_connections=400",
            self.port,
            self.dir.display()
        )
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut start = self.command(&self.binaries.pg_ctl);
        start
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(self.options())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "start"]);
        run(&mut start)
    }

    /// Starts a process that outlives this one by a moment: once this
    /// process is gone, it stops the server (`immediate`: nothing needs
    /// keeping) and removes the directory.
    fn watch(&self) {
        let pg_ctl = match &self.run_as {
            Some(user) => format!(
                "runuser -u {user} -- {}",
                shell_quote(&self.binaries.pg_ctl.display().to_string())
            ),
            None => shell_quote(&self.binaries.pg_ctl.display().to_string()),
        };
        let dir = shell_quote(&self.dir.display().to_string());
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {pg_ctl} -D {dir}/data -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id()
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Err(e) = spawned {
            eprintln!("no watchdog for the test PostgreSQL server (it may outlive the tests): {e}");
        }
    }

    /// The last lines of the server's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Runs `work` with a client of the `postgres` database, on a thread of
    /// its own (the client must not run inside an async runtime).
    fn on_admin_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut ::postgres::Client) -> Result<T, ::postgres::Error> + Send + 'static,
    ) -> Result<T, ::postgres::Error> {
        let url = self.url();
        on_thread(move || {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls)?;
            work(&mut client)
        })
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Binaries {
    /// `initdb`, `pg_ctl` and `postgres` on `PATH`, else in the newest
    /// `/usr/lib/postgresql/*/bin`.
    fn find() -> Option<Binaries> {
        let on_path = |name: &str| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(name))
                    .find(|candidate| candidate.is_file())
            })
        };
        if let (Some(initdb), Some(pg_ctl), Some(_)) =
            (on_path("initdb"), on_path("pg_ctl"), on_path("postgres"))
        {
            return Some(Binaries { initdb, pg_ctl });
        }
        let newest = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let version = entry.file_name().to_str()?.parse::<f64>().ok()?;
                let bin = entry.path().join("bin");
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|name| bin.join(name).is_file())
                    .then_some((version, bin))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        let bin = newest.1;
        Some(Binaries {
            initdb: bin.join("initdb"),
            pg_ctl: bin.join("pg_ctl"),
        })
    }
}

/// Runs `command` to its end: its output on failure.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{command:?} did not run: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{command:?} exited with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

/// Runs `work` on a new thread and waits for it.
fn on_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ::postgres::Error> + Send + 'static,
) -> Result<T, ::postgres::Error> {
    match std::thread::spawn(work).join() {
        Ok(outcome) => outcome,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Whether this process runs as root (effective uid 0), from
/// `/proc/self/status`, else `id -u`.
fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(uids) = status.lines().find_map(|line| line.strip_prefix("Uid:")) {
            // Real, effective, saved, file system.
            return uids.split_whitespace().nth(1) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("a bound port").port()
}

/// `text` quoted for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// An error's server message, if it has one.
fn message(error: &::postgres::Error) -> String {
    error
        .as_db_error()
        .map_or_else(|| format!("{error:?}"), |db| db.message().to_owned())
}
