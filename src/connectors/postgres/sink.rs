//! The table sinks: [`copy_in`] and [`upsert`], one transaction per run.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{FutureExt, Sink, SinkExt};
use serde::Serialize;
use tokio_postgres::{Client, CopyInSink};

use super::Connect;
use super::encode::{self, CopyFormat};
use super::error::is_transient_statement;
use super::table::{Mapping, Table, quote_ident};
use super::types::copy_header;
use crate::record::{DataType, Record, Schema, Value};
use crate::runtime::{Staged, current};
use crate::{Batch, Error, Result, Retry};

/// A sink loading `table` through `COPY ... FROM STDIN`, in PostgreSQL's
/// binary format unless [`format`](PgSink::format) says CSV: the fastest way
/// into a table. Each record's fields go into the columns of the same names
/// (the first record's fields are the columns written; the table's other
/// columns take their defaults); a field the table has no column for fails
/// the run, naming it.
///
/// The whole run is one transaction, committed with the run's other outputs
/// when every branch has succeeded (see [`PgSink`]); a failed or cancelled
/// run leaves the table as it was. The table must exist: a missing table, a
/// server that cannot be reached or a wrong password fail the run before any
/// record is read.
///
/// - **Emits** nothing downstream: each batch is encoded and sent to the
///   server as part of one `COPY`.
/// - **Backpressures** while the connection is busy sending earlier batches.
/// - **Completes** when the run succeeds: the `COPY` is ended, the
///   transaction prepared (deferred constraints checked), then committed with
///   the run's other outputs. A row the server refuses (a constraint, a
///   value too long) is reported then, failing the run.
/// - **Cancels** when dropped (a failed or cancelled run): the connection is
///   closed and the server rolls the transaction back.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::record::DataType;
/// use dataflare::{csv, postgres};
///
/// let orders = csv::read_records("orders.csv").infer_schema(1000);
/// let report = Pipeline::from(orders)
///     .to(postgres::copy_in("postgres://app@localhost/shop", "staging.orders"))
///     .run()
///     .await?;
/// println!("{} rows loaded", report.records_out());
/// # Ok(()) }
/// ```
pub fn copy_in(conn: impl Into<Connect>, table: impl Into<String>) -> PgSink<Record> {
    PgSink::new(Config {
        conn: conn.into(),
        table: table.into(),
        mode: Mode::Copy(CopyFormat::Binary),
        commit_every: None,
        retry: None,
    })
}

/// A sink inserting records into `table`, or updating the row with the same
/// `key_columns` where there is one (`INSERT ... ON CONFLICT (keys) DO
/// UPDATE`), a batch at a time: each batch is copied into a temporary table
/// and merged in one statement. The key columns must be a unique key of the
/// table (its primary key, or a unique index without a predicate): checked
/// before any record is read. Running the same input twice leaves the table
/// as running it once.
///
/// Two records of one batch with the same key: **the last wins** (PostgreSQL
/// refuses to update one row twice in a statement, so the batch is reduced to
/// the last record of each key first). Across batches, later batches update
/// what earlier ones wrote, so over a run the last record of each key wins
/// too. Columns not among the records' fields keep their values on update.
///
/// Transactions, the four lines and errors as for [`copy_in`].
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::{jsonl, postgres};
///
/// Pipeline::from(jsonl::read_records("customers.jsonl"))
///     .to(postgres::upsert("postgres://app@localhost/crm", "customers", ["id"]))
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
pub fn upsert<K: Into<String>>(
    conn: impl Into<Connect>,
    table: impl Into<String>,
    key_columns: impl IntoIterator<Item = K>,
) -> PgSink<Record> {
    PgSink::new(Config {
        conn: conn.into(),
        table: table.into(),
        mode: Mode::Upsert(key_columns.into_iter().map(Into::into).collect()),
        commit_every: None,
        retry: None,
    })
}

#[derive(Debug, Clone)]
struct Config {
    conn: Connect,
    table: String,
    mode: Mode,
    commit_every: Option<usize>,
    retry: Option<Retry>,
}

#[derive(Debug, Clone)]
enum Mode {
    Copy(CopyFormat),
    Upsert(Vec<String>),
}

type Convert<T> = Box<dyn FnMut(T) -> std::result::Result<Record, String> + Send>;

/// The sink made by [`copy_in`] and [`upsert`], configured by its methods
/// until first polled.
///
/// # Transactions
///
/// By default the whole run is **one transaction**: when every branch of the
/// run has drained, the sink ends its writes and prepares the transaction
/// (deferred constraints are checked then), and the run commits it with its
/// other outputs, databases first, file renames last. A failed or cancelled
/// run, or a failure of any other sink of the run before the commit, rolls it
/// back: the table is left as it was. Two database sinks of one run are two
/// transactions: if the second `COMMIT` fails, the first stays committed and
/// the run's error says which outputs were committed and which not.
///
/// With [`commit_every(n)`](PgSink::commit_every) the sink commits every `n`
/// batches instead, for loads too large for one transaction: **a failed or
/// cancelled run then leaves the batches committed before the failure** (a
/// prefix of the input, in whole chunks of `n` batches) in the table; the
/// last chunk still commits only with the run. Rerunning such a load with
/// [`upsert`] is safe; with [`copy_in`], delete the prefix first (or load a
/// staging table).
pub struct PgSink<T> {
    state: State,
    config: Option<Box<Config>>,
    convert: Convert<T>,
}

enum State {
    Configured,
    /// Opening, or writing a batch: the writer comes back when done.
    Busy(BoxFuture<'static, Result<Box<Writer>>>),
    Ready(Box<Writer>),
    Closing(BoxFuture<'static, Result<()>>),
    Done,
}

impl PgSink<Record> {
    fn new(config: Config) -> Self {
        PgSink {
            state: State::Configured,
            config: Some(Box::new(config)),
            convert: Box::new(Ok),
        }
    }

    /// Takes records of your own type, serialized with serde: a struct's
    /// fields (or a map's keys) name the columns. Values are converted to the
    /// columns' types as for records; a [`Decimal`](crate::record::Decimal)
    /// or a [`Timestamp`](crate::record::Timestamp) field is written exactly.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::postgres;
    ///
    /// #[derive(Clone, serde::Serialize)]
    /// struct Reading { sensor: String, value: f64 }
    ///
    /// let readings = vec![Reading { sensor: "t1".into(), value: 21.5 }];
    /// Pipeline::from(source::iter(readings))
    ///     .to(postgres::copy_in("postgres://app@localhost/iot", "readings").typed::<Reading>())
    ///     .run()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn typed<T: Serialize + Send + 'static>(self) -> PgSink<T> {
        PgSink {
            state: State::Configured,
            config: self.config,
            convert: typed_convert::<T>(),
        }
    }
}

impl<T> PgSink<T> {
    fn config(&mut self) -> &mut Config {
        self.config
            .as_mut()
            .expect("a PostgreSQL sink is configured before it is used")
    }

    /// The format of the `COPY` data (binary by default; see
    /// [`CopyFormat`]). For [`copy_in`]; an [`upsert`] always stages its
    /// batches in binary.
    ///
    /// ```
    /// use dataflare::postgres::{self, CopyFormat};
    ///
    /// let sink = postgres::copy_in("postgres://localhost/db", "events").format(CopyFormat::Csv);
    /// # drop(sink);
    /// ```
    pub fn format(mut self, format: CopyFormat) -> Self {
        if let Mode::Copy(f) = &mut self.config().mode {
            *f = format;
        }
        self
    }

    /// Non-transactional mode: commits every `batches` batches, so a very
    /// large load does not hold one transaction open (locks, table bloat,
    /// WAL). A failed or cancelled run leaves what was committed before it:
    /// see [`PgSink`].
    ///
    /// # Panics
    ///
    /// If `batches` is 0.
    ///
    /// ```
    /// let sink = dataflare::postgres::copy_in("postgres://localhost/db", "events").commit_every(100);
    /// # drop(sink);
    /// ```
    #[track_caller]
    pub fn commit_every(mut self, batches: usize) -> Self {
        assert!(batches > 0, "commit_every: batches must be at least 1");
        self.config().commit_every = Some(batches);
        self
    }

    /// Retries writes that fail for a reason that may pass (a serialization
    /// failure, a deadlock, a lost connection) under `retry`: the chunk being
    /// written is written again from its first batch, on a new connection if
    /// the old one was lost. Only in [`commit_every`](PgSink::commit_every)
    /// mode, which keeps the records of the uncommitted chunk for it: in the
    /// default mode a transaction that failed cannot be resumed, and the run
    /// fails (rolling it back). Opening the connection is retried in any mode
    /// ([`Connect::retry`]).
    ///
    /// ```
    /// use dataflare::ErrorPolicy;
    ///
    /// let sink = dataflare::postgres::upsert("postgres://localhost/db", "t", ["id"])
    ///     .commit_every(10)
    ///     .retry(ErrorPolicy::retry(5));
    /// # drop(sink);
    /// ```
    pub fn retry(mut self, retry: Retry) -> Self {
        self.config().retry = Some(retry);
        self
    }
}

fn typed_convert<T: Serialize>() -> Convert<T> {
    let mut schema: Option<Arc<Schema>> = None;
    Box::new(move |t: T| {
        let json = serde_json::to_value(&t).map_err(|e| e.to_string())?;
        let serde_json::Value::Object(map) = json else {
            return Err("a record that does not serialize as a struct or map".into());
        };
        let same = schema.as_ref().is_some_and(|s| {
            s.len() == map.len() && s.names().zip(map.keys()).all(|(a, b)| a == b)
        });
        if !same {
            schema = Some(Arc::new(Schema::new(
                map.keys().map(|k| (k.as_str(), DataType::Json)),
            )));
        }
        let values = map
            .into_iter()
            .map(|(_, v)| match v {
                serde_json::Value::Bool(b) => Value::Bool(b),
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .map(Value::Int)
                    .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN))),
                serde_json::Value::String(s) => Value::from(s),
                other => Value::from(other),
            })
            .collect();
        Ok(Record::new(schema.clone().expect("set above"), values))
    })
}

impl<T> Unpin for PgSink<T> {}

impl<T> PgSink<T> {
    /// Drives the work in hand (opening, a batch) to its end.
    fn poll_busy(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        loop {
            match &mut self.state {
                State::Configured => {
                    let config = self.config.take().expect("configured once");
                    self.state = State::Busy(Writer::open(*config).boxed());
                }
                State::Busy(f) => {
                    let result = ready!(f.as_mut().poll(cx));
                    match result {
                        Ok(w) => self.state = State::Ready(w),
                        Err(e) => {
                            self.state = State::Done;
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                State::Ready(_) => return Poll::Ready(Ok(())),
                State::Closing(_) | State::Done => return Poll::Ready(Err(Error::closed())),
            }
        }
    }
}

impl<T> Sink<Batch<T>> for PgSink<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.get_mut().poll_busy(cx)
    }

    fn start_send(self: Pin<&mut Self>, batch: Batch<T>) -> Result<()> {
        let this = self.get_mut();
        let State::Ready(_) = &this.state else {
            return Err(Error::msg("start_send called before poll_ready"));
        };
        let State::Ready(mut writer) = std::mem::replace(&mut this.state, State::Done) else {
            unreachable!("matched above")
        };
        let mut records = Vec::with_capacity(batch.len());
        for (i, t) in batch.into_records().into_iter().enumerate() {
            let record = (this.convert)(t).map_err(|e| {
                writer.fail(format!("record {}: {e}", writer.written + i as u64 + 1))
            })?;
            records.push(record);
        }
        this.state = State::Busy(
            async move {
                writer.write(records).await?;
                Ok(writer)
            }
            .boxed(),
        );
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        match this.state {
            State::Busy(_) => this.poll_busy(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Configured | State::Busy(_) => ready!(this.poll_busy(cx))?,
                State::Ready(_) => {
                    let State::Ready(writer) = std::mem::replace(&mut this.state, State::Done)
                    else {
                        unreachable!("matched above")
                    };
                    this.state = State::Closing(writer.finish().boxed());
                }
                State::Closing(f) => {
                    let result = ready!(f.as_mut().poll(cx));
                    this.state = State::Done;
                    return Poll::Ready(result);
                }
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<T> fmt::Debug for PgSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Configured => "configured",
            State::Busy(_) => "busy",
            State::Ready(_) => "ready",
            State::Closing(_) => "closing",
            State::Done => "done",
        };
        let mut d = f.debug_struct("PgSink");
        if let Some(c) = &self.config {
            d.field("conn", &c.conn)
                .field("table", &c.table)
                .field("mode", &c.mode);
        }
        d.field("state", &state).finish()
    }
}

/// A failure while writing: the client's (to tell a transient one), or
/// DataFlare's own.
enum Fail {
    Pg(tokio_postgres::Error),
    Other(Error),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Pg(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Other(e)
    }
}

/// The sink's connection and what it has written.
struct Writer {
    config: Config,
    client: Client,
    table: Table,
    mapping: Mapping,
    /// The `COPY` under way (`copy_in`), across batches.
    copy: Option<Pin<Box<CopyInSink<Bytes>>>>,
    /// The temporary table an upsert stages its batches in, once made.
    staging: Option<String>,
    /// Records written (sent) so far.
    written: u64,
    /// Batches since the last commit (`commit_every`).
    in_chunk: usize,
    /// The records of the uncommitted chunk, kept to write it again (with
    /// `commit_every` and `retry`).
    chunk: Vec<Vec<Record>>,
}

impl Writer {
    /// Connects, begins the transaction and looks the table up.
    async fn open(config: Config) -> Result<Box<Writer>> {
        let conn = config.conn.clone();
        let client = conn.open().await?;
        let table = Table::load(&client, &conn, &config.table).await?;
        if let Mode::Upsert(keys) = &config.mode {
            if keys.is_empty() {
                return Err(
                    conn.error_msg(format!("upsert into {}: no key columns given", table.name))
                );
            }
            for k in keys {
                if table.column(k).is_none() {
                    return Err(conn.error_msg(format!(
                        "upsert into {}: the key column {k:?} is not a column of the table",
                        table.name
                    )));
                }
            }
            let mut wanted = keys.clone();
            wanted.sort();
            wanted.dedup();
            if !table.unique_keys(&client, &conn).await?.contains(&wanted) {
                return Err(conn.error_msg(format!(
                    "upsert into {}: ({}) is not a unique key of the table (a primary key or a \
                     unique index without a predicate is needed for ON CONFLICT)",
                    table.name,
                    keys.join(", ")
                )));
            }
        }
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| conn.error(&e))?;
        Ok(Box::new(Writer {
            config,
            client,
            table,
            mapping: Mapping::default(),
            copy: None,
            staging: None,
            written: 0,
            in_chunk: 0,
            chunk: Vec::new(),
        }))
    }

    fn conn(&self) -> &Connect {
        &self.config.conn
    }

    /// An error about writing to the table.
    fn fail(&self, message: impl fmt::Display) -> Error {
        self.conn()
            .error_msg(format!("table {}: {message}", self.table.name))
    }

    fn error(&self, fail: Fail) -> Error {
        match fail {
            Fail::Pg(e) => self.conn().error(&e),
            Fail::Other(e) => e,
        }
    }

    /// Writes a batch (and commits, every `commit_every` batches).
    async fn write(&mut self, records: Vec<Record>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let keep = self.config.commit_every.is_some() && self.config.retry.is_some();
        if keep {
            self.chunk.push(records.clone());
        }
        let result = self.send(&records).await;
        self.written += records.len() as u64;
        self.retrying(result).await?;
        self.in_chunk += 1;
        if self.config.commit_every.is_some_and(|n| self.in_chunk >= n) {
            let result = self.commit_chunk().await;
            self.retrying(result).await?;
            self.in_chunk = 0;
            self.chunk.clear();
        }
        Ok(())
    }

    /// On a failure that may pass, and with a retry to spend, writes the
    /// chunk again (and commits it if it was being committed).
    async fn retrying(&mut self, mut result: std::result::Result<(), Fail>) -> Result<()> {
        let mut attempts = 1;
        loop {
            let fail = match result {
                Ok(()) => return Ok(()),
                Err(fail) => fail,
            };
            let transient = matches!(&fail, Fail::Pg(e) if is_transient_statement(e) || e.is_closed()
                || self.client.is_closed());
            let delay = match &self.config.retry {
                Some(r) if transient && self.config.commit_every.is_some() => {
                    r.next_delay(attempts)
                }
                _ => None,
            };
            let Some(delay) = delay else {
                let e = self.error(fail);
                return Err(if attempts > 1 {
                    e.with_attempts(attempts)
                } else {
                    e
                });
            };
            tracing::warn!(
                table = %self.table.name,
                server = %self.conn(),
                attempt = attempts,
                error = %self.error(fail),
                "writing to PostgreSQL failed; writing the uncommitted chunk again"
            );
            tokio::time::sleep(delay).await;
            attempts += 1;
            result = self.replay().await;
        }
    }

    /// Rolls back (or reconnects), begins again and writes the kept chunk.
    async fn replay(&mut self) -> std::result::Result<(), Fail> {
        self.copy = None;
        if self.client.is_closed() {
            self.client = self.conn().open().await?;
            self.staging = None;
        } else {
            self.client.batch_execute("ROLLBACK").await?;
        }
        self.client.batch_execute("BEGIN").await?;
        let chunk = std::mem::take(&mut self.chunk);
        let mut result = Ok(());
        for records in &chunk {
            result = self.send(records).await;
            if result.is_err() {
                break;
            }
        }
        self.chunk = chunk;
        result?;
        if self
            .config
            .commit_every
            .is_some_and(|n| self.in_chunk + 1 >= n)
        {
            self.commit_chunk().await?;
        }
        Ok(())
    }

    /// Sends one batch: into the `COPY` under way, or staged and merged.
    async fn send(&mut self, records: &[Record]) -> std::result::Result<(), Fail> {
        if !self.mapping.is_started() {
            self.mapping
                .start(&self.table, &records[0])
                .map_err(|e| self.fail(e))?;
            let format = match &self.config.mode {
                Mode::Copy(f) => *f,
                Mode::Upsert(keys) => {
                    if let Some(k) = keys
                        .iter()
                        .find(|k| !self.mapping.columns.iter().any(|c| &c.name == *k))
                    {
                        return Err(self
                            .fail(format!(
                                "upsert: the records have no field for the key column {k:?}"
                            ))
                            .into());
                    }
                    CopyFormat::Binary
                }
            };
            encode::check_columns(&self.mapping, &self.table, format).map_err(|e| self.fail(e))?;
        }
        match self.config.mode.clone() {
            Mode::Copy(format) => {
                let mut buf = BytesMut::with_capacity(records.len() * 64);
                if self.copy.is_none() {
                    let columns = self.column_list();
                    let sql = format!(
                        "COPY {} ({columns}) FROM STDIN (FORMAT {})",
                        self.table.sql,
                        format.sql()
                    );
                    self.copy = Some(Box::pin(self.client.copy_in(&sql).await?));
                    if format == CopyFormat::Binary {
                        copy_header(&mut buf);
                    }
                }
                encode::rows(
                    records,
                    &mut self.mapping,
                    format,
                    None,
                    self.written,
                    &mut buf,
                )
                .map_err(|e| self.fail(e))?;
                let copy = self.copy.as_mut().expect("started above");
                copy.feed(buf.freeze()).await?;
            }
            Mode::Upsert(keys) => {
                let staging = match &self.staging {
                    Some(s) => s.clone(),
                    None => self.make_staging().await?,
                };
                let columns = self.column_list();
                let mut buf = BytesMut::with_capacity(records.len() * 64 + 32);
                copy_header(&mut buf);
                encode::rows(
                    records,
                    &mut self.mapping,
                    CopyFormat::Binary,
                    Some(0),
                    self.written,
                    &mut buf,
                )
                .map_err(|e| self.fail(e))?;
                crate::connectors::postgres::types::copy_trailer(&mut buf);
                let sql = format!(
                    "COPY {staging} ({columns}, __dataflare_seq) FROM STDIN (FORMAT binary)"
                );
                let mut copy = Box::pin(self.client.copy_in::<_, Bytes>(&sql).await?);
                copy.feed(buf.freeze()).await?;
                copy.as_mut().finish().await?;
                let keys_sql = keys
                    .iter()
                    .map(|k| quote_ident(k))
                    .collect::<Vec<_>>()
                    .join(", ");
                let updates: Vec<String> = self
                    .mapping
                    .columns
                    .iter()
                    .filter(|c| !keys.contains(&c.name))
                    .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(&c.name)))
                    .collect();
                let action = if updates.is_empty() {
                    "DO NOTHING".to_string()
                } else {
                    format!("DO UPDATE SET {}", updates.join(", "))
                };
                let sql = format!(
                    "INSERT INTO {table} ({columns}) SELECT DISTINCT ON ({keys_sql}) {columns} \
                     FROM {staging} ORDER BY {keys_sql}, __dataflare_seq DESC \
                     ON CONFLICT ({keys_sql}) {action}; TRUNCATE {staging}",
                    table = self.table.sql
                );
                self.client.batch_execute(&sql).await?;
            }
        }
        Ok(())
    }

    fn column_list(&self) -> String {
        self.mapping
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Makes the temporary table an upsert stages its batches in: the
    /// columns written, without constraints, and a sequence number.
    async fn make_staging(&mut self) -> std::result::Result<String, Fail> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "dataflare_upsert_{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let sql = format!(
            "CREATE TEMPORARY TABLE {name} AS SELECT {} FROM {} WITH NO DATA; \
             ALTER TABLE {name} ADD COLUMN __dataflare_seq int8",
            self.column_list(),
            self.table.sql
        );
        self.client.batch_execute(&sql).await?;
        self.staging = Some(name.clone());
        Ok(name)
    }

    /// Ends the `COPY` under way, if any.
    async fn end_copy(&mut self) -> std::result::Result<(), Fail> {
        if let Some(mut copy) = self.copy.take() {
            let mut trailer = BytesMut::new();
            if matches!(self.config.mode, Mode::Copy(CopyFormat::Binary)) {
                crate::connectors::postgres::types::copy_trailer(&mut trailer);
                copy.feed(trailer.freeze()).await?;
            }
            copy.as_mut().finish().await?;
        }
        Ok(())
    }

    /// `commit_every`: commits the chunk and begins the next one.
    async fn commit_chunk(&mut self) -> std::result::Result<(), Fail> {
        self.end_copy().await?;
        self.client.batch_execute("COMMIT; BEGIN").await?;
        Ok(())
    }

    /// Ends the writes and prepares the transaction; within a run, hands it
    /// to the run to commit with the other outputs, outside one commits now.
    async fn finish(mut self: Box<Self>) -> Result<()> {
        let result = self.end_copy().await;
        self.retrying(result).await?;
        // Deferred constraints are checked now, not at COMMIT.
        let result = self
            .client
            .batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
            .await
            .map_err(Fail::Pg);
        self.retrying(result).await?;
        let staged = Transaction {
            client: self.client,
            conn: self.config.conn,
            table: self.table.name,
        };
        match current() {
            Some(run) => {
                run.stage(Box::new(staged));
                Ok(())
            }
            None => staged.commit_now().await,
        }
    }
}

/// A prepared transaction waiting for the run's commit. Dropped without it,
/// its connection closes and the server rolls it back.
struct Transaction {
    client: Client,
    conn: Connect,
    table: String,
}

impl Transaction {
    async fn commit_now(self) -> Result<()> {
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| self.conn.error(&e))
    }
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Staged for Transaction {
    fn describe(&self) -> String {
        format!("table {} on {}", self.table, self.conn)
    }

    fn may_refuse_commit(&self) -> bool {
        true
    }

    fn commit(self: Box<Self>) -> Result<()> {
        // On the run's commit thread, a blocking one: waits for the server.
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::msg("no Tokio runtime to commit the PostgreSQL transaction on"))?;
        handle.block_on(self.commit_now())
    }
}
