//! Where a PostgreSQL source or sink connects: [`Connect`], made from a
//! connection string or a `tokio_postgres::Config`; opening a connection
//! (retried while the server cannot be reached), and naming it in messages
//! without its password.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::Client;
use tokio_postgres::config::Host;

use super::error::{PgError, is_transient_connect};
use crate::{Error, Result, Retry};

/// Where to connect: a PostgreSQL connection string (`postgres://user:pw@host:5432/db`
/// or `host=... user=... dbname=...`) or a [`tokio_postgres::Config`], and
/// the retry of opening the connection.
///
/// The password is used to log in and nowhere else: [`Display`](fmt::Display)
/// and [`Debug`] show `postgres://user@host:port/db`, and every error of a
/// PostgreSQL source or sink names the server that way, never with the
/// password (the text of a server's error is searched for it too, and it is
/// replaced by `***` should a server ever repeat it).
///
/// Opening a connection that fails for a reason that may pass (refused, the
/// server starting up or shutting down, too many connections) is tried again
/// under the [`retry`](Connect::retry) policy; by default it is tried 3 times,
/// 200 ms apart and doubling. A wrong password or database fails at once.
///
/// TLS: with the `postgres-tls` feature, `sslmode=prefer` (the default) or
/// `require` in the connection string uses TLS (rustls, with the system's root
/// certificates); without it, connections are plain and `sslmode=require`
/// fails, saying so.
///
/// ```
/// use dataflare::postgres::Connect;
///
/// let conn: Connect = "postgres://app:s3cret@db.example.com:5433/sales".parse().unwrap();
/// assert_eq!(conn.to_string(), "postgres://app@db.example.com:5433/sales");
/// assert!(!format!("{conn:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct Connect {
    config: Arc<tokio_postgres::Config>,
    retry: Retry,
}

impl Connect {
    /// A connection made with `config`.
    pub fn new(config: tokio_postgres::Config) -> Self {
        Connect {
            config: Arc::new(config),
            retry: default_retry(),
        }
    }

    /// Parses a connection string; the error never holds the password.
    ///
    /// ```
    /// let e = dataflare::postgres::Connect::parse("postgres://u:pw@host:notaport/db").unwrap_err();
    /// assert!(!e.to_string().contains("pw@"));
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        match tokio_postgres::Config::from_str(s) {
            Ok(config) => Ok(Connect::new(config)),
            Err(e) => {
                // The parser's messages name options, not values; scrub all
                // the same, with the password as written in the text.
                let message = PgError::chain(&e);
                let password = password_in(s);
                let message = scrub(&message, password.as_deref().map(str::as_bytes));
                Err(Error::config(format!(
                    "invalid PostgreSQL connection string: {message}"
                )))
            }
        }
    }

    /// Sets how opening the connection is retried when the server cannot be
    /// reached yet (see [`Connect`]); `ErrorPolicy::retry(1)` tries once.
    ///
    /// ```
    /// use dataflare::{Backoff, ErrorPolicy};
    /// use std::time::Duration;
    ///
    /// let conn = dataflare::postgres::Connect::parse("postgres://localhost/app")
    ///     .unwrap()
    ///     .retry(ErrorPolicy::retry(10).backoff(Backoff::exponential(Duration::from_millis(100))));
    /// # drop(conn);
    /// ```
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The configuration (its password included: keep it to yourself).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The password's bytes, to scrub from messages.
    pub(crate) fn password(&self) -> Option<&[u8]> {
        self.config.get_password().filter(|p| !p.is_empty())
    }

    /// Turns a client error into DataFlare's, naming this server, without the
    /// password.
    pub(crate) fn error(&self, e: &tokio_postgres::Error) -> Error {
        PgError::from_client(e, self).into_error()
    }

    /// A message about this server, without the password.
    pub(crate) fn error_msg(&self, message: impl fmt::Display) -> Error {
        let message = scrub(&message.to_string(), self.password());
        Error::other(PgError::own(self.to_string(), message))
    }

    /// Opens a connection, retried under the retry policy while the failure
    /// may pass; the connection's driver runs on a task of its own, which ends
    /// when the [`Client`] is dropped (the server then rolls back any
    /// transaction left open).
    pub(crate) async fn open(&self) -> Result<Client> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.open_once().await {
                Ok(client) => return Ok(client),
                Err(e) if is_transient_connect(&e) => match self.retry.next_delay(attempts) {
                    Some(delay) => {
                        tracing::warn!(
                            server = %self,
                            attempt = attempts,
                            error = %scrub(&PgError::chain(&e), self.password()),
                            "could not connect to PostgreSQL; retrying"
                        );
                        tokio::time::sleep(delay).await;
                    }
                    None => return Err(self.error(&e).with_attempts(attempts)),
                },
                Err(e) => return Err(self.error(&e).with_attempts(attempts)),
            }
        }
    }

    #[cfg(not(feature = "postgres-tls"))]
    async fn open_once(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        spawn_driver(connection);
        Ok(client)
    }

    #[cfg(feature = "postgres-tls")]
    async fn open_once(&self) -> Result<Client, tokio_postgres::Error> {
        let tls = super::tls::connector();
        let (client, connection) = self.config.connect(tls).await?;
        spawn_driver(connection);
        Ok(client)
    }
}

/// Drives a connection on a task of its own until its client is dropped or
/// the server goes away (which the client's next call reports).
fn spawn_driver<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        // Its error is the client's to report (a call on a closed connection
        // fails): nothing to do with it here.
        let _ = connection.await;
    });
}

/// Tries 3 times, 200 ms apart and doubling.
fn default_retry() -> Retry {
    Retry::new(3).backoff(crate::Backoff::exponential(
        std::time::Duration::from_millis(200),
    ))
}

/// `text` with every occurrence of `password` replaced by `***`.
pub(crate) fn scrub(text: &str, password: Option<&[u8]>) -> String {
    match password.and_then(|p| std::str::from_utf8(p).ok()) {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

/// The password written in a connection string, as far as it can be told
/// without parsing it (for scrubbing a parse error).
fn password_in(s: &str) -> Option<String> {
    if let Some(rest) = s
        .strip_prefix("postgres://")
        .or_else(|| s.strip_prefix("postgresql://"))
    {
        let userinfo = rest.split('@').next().filter(|_| rest.contains('@'))?;
        return userinfo.split_once(':').map(|(_, p)| p.to_string());
    }
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix("password="))
        .map(|p| p.trim_matches('\'').to_string())
}

impl FromStr for Connect {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Connect::parse(s)
    }
}

impl From<tokio_postgres::Config> for Connect {
    fn from(config: tokio_postgres::Config) -> Self {
        Connect::new(config)
    }
}

impl From<&str> for Connect {
    /// Parses a connection string.
    ///
    /// # Panics
    ///
    /// If the string is not a valid connection string (the message never
    /// holds the password); use [`Connect::parse`] to handle that.
    #[track_caller]
    fn from(s: &str) -> Self {
        Connect::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl From<String> for Connect {
    /// As `From<&str>`.
    #[track_caller]
    fn from(s: String) -> Self {
        Connect::from(s.as_str())
    }
}

/// `postgres://user@host:port/dbname`: never the password.
impl fmt::Display for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.write_str("postgres://")?;
        if let Some(user) = c.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = c.get_ports();
        let hosts = c.get_hosts();
        if hosts.is_empty() {
            f.write_str("localhost")?;
        }
        for (i, host) in hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(h) => f.write_str(h)?,
                #[cfg(unix)]
                Host::Unix(p) => write!(f, "[{}]", p.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        if let Some(db) = c.get_dbname() {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Connect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Connect").field(&self.to_string()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_server_without_the_password() {
        let c = Connect::parse("postgres://u:hunter2@h:1/d").unwrap();
        assert_eq!(c.to_string(), "postgres://u@h:1/d");
        let c = Connect::parse("host=/tmp port=5 user=x password=hunter2 dbname=y").unwrap();
        assert_eq!(c.to_string(), "postgres://x@[/tmp]:5/y");
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn a_bad_string_is_refused_without_its_password() {
        for s in [
            "postgres://u:hunter2@h:nope/d",
            "host=h port=x password=hunter2",
            "password='hunter2' sslmode=bogus",
        ] {
            let e = Connect::parse(s).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid configuration: invalid PostgreSQL connection string"),
                "{e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn scrub_replaces_the_password() {
        assert_eq!(scrub("a hunter2 b", Some(b"hunter2")), "a *** b");
        assert_eq!(scrub("a b", None), "a b");
    }
}
