//! PostgreSQL errors as DataFlare errors: the server named (without its
//! password), the server's message with its SQLSTATE, detail and hint.

use std::fmt;

use tokio_postgres::error::SqlState;

use super::Connect;
use super::conn::scrub;
use crate::Error;

/// An error from a PostgreSQL server or the connection to it, as the cause of
/// a DataFlare [`Error`]: which server (`postgres://user@host:port/db`, never
/// the password), what went wrong, and the SQLSTATE code when the server gave
/// one.
///
/// Find it under an error with `std::error::Error::source` or by downcasting
/// the cause (`error.kind()` is [`ErrorKind::Other`](crate::ErrorKind::Other)).
#[derive(Debug, Clone)]
pub struct PgError {
    server: String,
    message: String,
    code: Option<String>,
    closed: bool,
}

impl PgError {
    /// A client error from the connection to `conn`.
    pub(crate) fn from_client(e: &tokio_postgres::Error, conn: &Connect) -> PgError {
        let closed = e.is_closed() || is_io(e);
        let message = if closed {
            format!(
                "the connection was lost ({}); the server closed it or went away",
                PgError::chain(e)
            )
        } else {
            PgError::chain(e)
        };
        PgError {
            server: conn.to_string(),
            message: scrub(&message, conn.password()),
            code: e.code().map(|c| c.code().to_string()),
            closed,
        }
    }

    /// A message of DataFlare's own about `server`.
    pub(crate) fn own(server: String, message: String) -> PgError {
        PgError {
            server,
            message,
            code: None,
            closed: false,
        }
    }

    /// The whole text of a client error: its kind, the server's message with
    /// its SQLSTATE, detail and hint, or the causes below it.
    pub(crate) fn chain(e: &tokio_postgres::Error) -> String {
        if let Some(db) = e.as_db_error() {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                s.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                s.push_str(&format!("; hint: {hint}"));
            }
            return s;
        }
        let mut s = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    }

    /// As a DataFlare error (stream-level: it ends the run).
    pub(crate) fn into_error(self) -> Error {
        Error::other(self)
    }

    /// The server, as `postgres://user@host:port/db`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The SQLSTATE code the server gave (`23505` for a unique violation),
    /// if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// True when the connection was lost (closed by the server, killed, or
    /// the network went away).
    pub fn is_connection_lost(&self) -> bool {
        self.closed
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL {}: {}", self.server, self.message)
    }
}

impl std::error::Error for PgError {}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// True when opening a connection failed for a reason that may pass: refused
/// or unreachable, the server starting up or shutting down, too many
/// connections. Not a wrong password or a missing database.
pub(crate) fn is_transient_connect(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || code.code().starts_with("08")
        }
        None => e.as_db_error().is_none() && (is_io(e) || e.is_closed()),
    }
}

/// True when a statement failed for a reason that retrying the same work may
/// cure: a serialization failure or a deadlock.
pub(crate) fn is_transient_statement(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
        || *c == SqlState::T_R_DEADLOCK_DETECTED)
}
