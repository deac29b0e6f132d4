//! One connection, owned by the thread that uses it (the writer, a reader):
//! its prepared statements, and whether it is still usable.

use std::collections::HashMap;
use std::error::Error as _;

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row, Statement};
use rewind_runtime::journal::JournalError;

/// A connection and the statements prepared on it.
pub(super) struct Session {
    client: Client,
    /// By SQL text; they live as long as the connection.
    statements: HashMap<&'static str, Statement>,
    /// A failure showed the connection is gone (or going): the owner opens
    /// a new one.
    lost: bool,
}

/// The longest a session may sit idle inside a transaction before the
/// server ends it: far above the milliseconds between the statements of
/// one commit, well below a shard lease.
pub(super) const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest one statement may run before the server ends it.
pub(super) const STATEMENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Parameters of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl Session {
    /// Opens a connection to the database of `config`; `url` (without
    /// password) names it in the error.
    pub(super) fn connect(config: &Config, url: &str) -> Result<Session, JournalError> {
        let mut client = config.connect(NoTls).map_err(|e| {
            JournalError::Storage(format!(
                "PostgreSQL at {url} is unreachable: {}",
                describe(&e)
            ))
        })?;
        // A process paused inside a transaction (SIGSTOP, a long GC) would
        // keep its locks, the `FOR SHARE` of a shard's lease row among
        // them, and so hold up the node taking the shard over. The server
        // ends such a session instead; the paused writer finds its
        // connection gone when it wakes, and its write is fenced on the new
        // one.
        //
        // A statement that takes longer than `STATEMENT_TIMEOUT` (locks
        // held by a stuck session, an overloaded server) is ended by the
        // server, so a write fails (and is answered) instead of hanging
        // past the request's own limit.
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {}; SET statement_timeout = {}",
                IDLE_IN_TRANSACTION.as_millis(),
                STATEMENT_TIMEOUT.as_millis()
            ))
            .map_err(|e| {
                JournalError::Storage(format!(
                    "PostgreSQL at {url}: setting up the session: {}",
                    describe(&e)
                ))
            })?;
        Ok(Session {
            client,
            statements: HashMap::new(),
            lost: false,
        })
    }

    /// False once the connection is known to be gone.
    pub(super) fn usable(&self) -> bool {
        !self.lost && !self.client.is_closed()
    }

    /// Runs a statement (prepared once per connection) and returns its rows.
    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, postgres::Error> {
        let result = match self.prepared(sql) {
            Ok(statement) => self.client.query(&statement, params),
            Err(e) => Err(e),
        };
        self.note(result)
    }

    /// Runs a statement (prepared once per connection); the rows it changed.
    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<u64, postgres::Error> {
        let result = match self.prepared(sql) {
            Ok(statement) => self.client.execute(&statement, params),
            Err(e) => Err(e),
        };
        self.note(result)
    }

    /// Runs statements without parameters (transaction control, DDL) in
    /// one round trip.
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), postgres::Error> {
        let result = self.client.batch_execute(sql);
        self.note(result)
    }

    /// Opens a transaction and returns its id (`txid_current()`), in one
    /// round trip: after a `COMMIT` whose answer was lost,
    /// `txid_status(id)` tells whether it committed. `None` if the server
    /// did not say (the transaction is open all the same).
    pub(super) fn begin(&mut self) -> Result<Option<i64>, postgres::Error> {
        let result = self
            .client
            .simple_query("BEGIN; SELECT txid_current()")
            .map(|messages| {
                messages.iter().find_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row) => {
                        row.get(0).and_then(|id| id.parse::<i64>().ok())
                    }
                    _ => None,
                })
            });
        self.note(result)
    }

    /// What became of transaction `id`: `committed`, `aborted`,
    /// `in progress`, or `None` when it is too old to tell.
    pub(super) fn status_of(&mut self, id: i64) -> Result<Option<String>, postgres::Error> {
        let rows = self.query("SELECT txid_status($1)", &[&id])?;
        Ok(rows.first().and_then(|row| row.get::<_, Option<String>>(0)))
    }

    fn prepared(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// Marks the session lost when `result` failed for want of a connection.
    fn note<T>(&mut self, result: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if let Err(error) = &result {
            if connection_lost(error) || self.client.is_closed() {
                self.lost = true;
            }
        }
        result
    }
}

/// The error says the connection is gone: closed, an I/O failure, or the
/// server ending the session (SQLSTATE class 08, or 57P01..57P03: an
/// administrator's termination, a crash, a shutdown).
fn connection_lost(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let code = code.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    error
        .source()
        .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some())
}

/// The error with its causes, as one line of text: the server's message for
/// an error the server reported.
pub(super) fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// A storage failure naming the database and what was being done.
pub(super) fn storage(url: &str, doing: &str, error: &postgres::Error) -> JournalError {
    JournalError::Storage(format!("PostgreSQL at {url}: {doing}: {}", describe(error)))
}
