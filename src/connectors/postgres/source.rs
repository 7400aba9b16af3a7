//! The query source: [`query`], streaming a result through a server-side
//! portal, a fetch at a time.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, IsolationLevel, Row, Statement};

use super::Connect;
use super::de::from_record;
use super::table::quote_table;
use super::types::{Cell, Param, data_type, decode, unmappable};
use crate::record::{Field, Record, Schema, Value};
use crate::source::DEFAULT_BATCH_SIZE;
use crate::{Batch, Error, Position, Result};

/// Rows a fetch asks the server for, per record of a batch: a round trip
/// brings this many batches.
const FETCH_BATCHES: usize = 8;

/// A source streaming the rows of `sql`, run with `params` (`$1`, `$2`, ...,
/// converted to the types the server infers for them), as dynamic
/// [`Record`]s whose [`Schema`] comes from the result's column types (see
/// [`postgres`](super) for the mapping); [`typed`](PgSource::typed) reads
/// them into your own type with serde instead.
///
/// The query runs in a read-only transaction. Without parameters, a query
/// starting with `SELECT`, `WITH`, `VALUES` or `TABLE` is streamed as
/// `COPY (query) TO STDOUT (FORMAT binary)`: the server sends rows while the
/// source decodes them, held back by the connection's flow control (about
/// 1.4× faster for a dump than taking turns). Otherwise it runs through a
/// server-side portal fetched [`fetch_size`](PgSource::fetch_size) rows at a
/// time. Either way the result is never held in memory whole, and the
/// records, types and errors are the same.
///
/// - **Emits** a batch of [`batch_size`](PgSource::batch_size) rows as soon
///   as they have arrived (the last batch may be shorter).
/// - **Backpressures** when downstream has no room: it fetches nothing more;
///   the server keeps the rest of the result in its portal.
/// - **Completes** when the last row has been emitted; the transaction is
///   then closed.
/// - **Cancels** when dropped (the run failed, was cancelled, or a `take`
///   had its count): the connection is closed and the server ends the query.
///
/// A column of a type DataFlare cannot map fails the run before any row is
/// read, naming the column and its type. A value that does not fit its
/// [`Value`] (a `numeric` over 28 digits, an infinite date) is a record-level
/// error naming the record and the column, which the source stage's
/// [`ErrorPolicy`](crate::ErrorPolicy) decides on. A lost connection ends the
/// run with an error naming the server (never its password) and the stage.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::{csv, postgres};
///
/// let orders = postgres::query(
///     "postgres://app@localhost/shop",
///     "SELECT id, customer, amount, placed_at FROM orders WHERE placed_at >= $1",
///     ["2024-01-01T00:00:00Z"],
/// );
/// Pipeline::from(orders).to(csv::write_records("orders.csv")).run().await?;
/// # Ok(()) }
/// ```
pub fn query<P: Into<Value>>(
    conn: impl Into<Connect>,
    sql: impl Into<String>,
    params: impl IntoIterator<Item = P>,
) -> PgSource<Record> {
    PgSource::new(
        Query {
            conn: conn.into(),
            sql: sql.into(),
            params: params.into_iter().map(Into::into).collect(),
            batch_size: DEFAULT_BATCH_SIZE,
            fetch_size: None,
            setup: None,
        },
        Ok,
    )
}

/// A source reading every row of `table` (`SELECT * FROM table`): as
/// [`query`], with the name quoted as [`copy_in`](super::copy_in) quotes it
/// (`schema.table` part by part; a name holding `"` is taken as written).
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::{csv, postgres};
///
/// Pipeline::from(postgres::table("postgres://app@localhost/shop", "sales.orders"))
///     .to(csv::write_records("orders.csv"))
///     .run()
///     .await?;
/// # Ok(()) }
/// ```
pub fn table(conn: impl Into<Connect>, table: &str) -> PgSource<Record> {
    query(
        conn,
        format!("SELECT * FROM {}", quote_table(table)),
        [0i64; 0],
    )
}

/// What a query source runs.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) conn: Connect,
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
    pub(crate) batch_size: usize,
    pub(crate) fetch_size: Option<usize>,
    /// Statements run in the transaction before the query (`SET ...`).
    pub(crate) setup: Option<String>,
}

impl Query {
    fn fetch_size(&self) -> usize {
        self.fetch_size
            .unwrap_or(self.batch_size.saturating_mul(FETCH_BATCHES))
            .clamp(1, i32::MAX as usize)
    }
}

/// The source made by [`query`]: a stream of batches, configured by its
/// methods until first polled.
pub struct PgSource<T> {
    state: State<T>,
    /// The connection [`read_schema`](PgSource::read_schema) opened, for the
    /// run to go on with (one login, not two).
    opened: Option<Client>,
}

type Convert<T> = fn(Record) -> std::result::Result<T, super::de::DeError>;

enum State<T> {
    Configured(Box<Query>, Convert<T>),
    Running(Pin<Box<dyn Stream<Item = Result<Batch<T>>> + Send>>),
    Done,
}

impl<T: Send + 'static> PgSource<T> {
    fn new(query: Query, convert: Convert<T>) -> Self {
        PgSource {
            state: State::Configured(Box::new(query), convert),
            opened: None,
        }
    }

    fn query(&mut self) -> &mut Query {
        match &mut self.state {
            State::Configured(q, _) => q,
            _ => panic!("a PostgreSQL source is configured before it is polled"),
        }
    }

    /// Rows per batch (default 1024).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// let s = dataflare::postgres::query("postgres://localhost/db", "SELECT 1", [0; 0]).batch_size(500);
    /// # drop(s);
    /// ```
    #[track_caller]
    pub fn batch_size(mut self, n: usize) -> Self {
        assert!(n > 0, "batch_size must be at least 1");
        self.query().batch_size = n;
        self
    }

    /// Rows fetched from the portal per round trip to the server (default 8
    /// batches): what the source holds in memory at most, besides the
    /// batch downstream has. A query streamed through `COPY` (one without
    /// parameters, see [`query`]) has no fetches: the connection's buffers
    /// bound what is in flight.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// let s = dataflare::postgres::query("postgres://localhost/db", "SELECT 1", [0; 0]).fetch_size(50_000);
    /// # drop(s);
    /// ```
    #[track_caller]
    pub fn fetch_size(mut self, n: usize) -> Self {
        assert!(n > 0, "fetch_size must be at least 1");
        self.query().fetch_size = Some(n);
        self
    }
}

impl PgSource<Record> {
    /// The schema of the query's result, asked of the server before the run:
    /// for writing a header when the result is empty, or checking the
    /// columns up front. The connection it opens is kept for the run. Fails
    /// as the run would fail before its first row: a server that cannot be
    /// reached, a query the server refuses, a column DataFlare cannot map.
    ///
    /// # Panics
    ///
    /// If the source has already been polled.
    pub async fn read_schema(&mut self) -> Result<Arc<Schema>> {
        let State::Configured(q, _) = &self.state else {
            panic!("read_schema is called before the source is polled");
        };
        let client = match self.opened.take() {
            Some(client) => client,
            None => q.conn.open().await?,
        };
        let statement = client.prepare(&q.sql).await.map_err(|e| q.conn.error(&e))?;
        let schema = schema_of(&statement).map_err(|e| q.conn.error_msg(e))?;
        self.opened = Some(client);
        Ok(schema)
    }

    /// Reads each row into a `T` with serde instead of a [`Record`]: a struct
    /// or map by column name, a tuple by position. A `numeric` reads into a
    /// [`Decimal`](crate::record::Decimal) (or a float, rounded), a
    /// timestamp into a [`Timestamp`](crate::record::Timestamp) or its RFC
    /// 3339 text, `json`/`jsonb` into any type serde reads JSON into, `bytea`
    /// into a `Vec<u8>`. A row that does not fit `T` is a record-level error
    /// naming the record and the column.
    ///
    /// ```no_run
    /// # #[tokio::main]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::postgres;
    /// use dataflare::record::Decimal;
    ///
    /// #[derive(Debug, Clone, serde::Deserialize)]
    /// struct Order { id: i64, amount: Decimal, note: Option<String> }
    ///
    /// let out = Collected::new();
    /// Pipeline::from(postgres::query("postgres://localhost/shop", "SELECT * FROM orders", [0; 0]).typed::<Order>())
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn typed<T: DeserializeOwned + Send + 'static>(self) -> PgSource<T> {
        match self.state {
            State::Configured(q, _) => PgSource {
                opened: self.opened,
                ..PgSource::new(*q, typed_row::<T>)
            },
            _ => panic!("a PostgreSQL source is configured before it is polled"),
        }
    }
}

fn typed_row<T: DeserializeOwned>(r: Record) -> std::result::Result<T, super::de::DeError> {
    from_record(&r)
}

impl<T: Send + 'static> Stream for PgSource<T> {
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                State::Configured(..) => {
                    let State::Configured(q, convert) =
                        std::mem::replace(&mut this.state, State::Done)
                    else {
                        unreachable!("matched above")
                    };
                    let opened = this.opened.take();
                    this.state = State::Running(Box::pin(stream(*q, convert, None, opened)));
                }
                State::Running(s) => {
                    let item = futures::ready!(s.as_mut().poll_next(cx));
                    if item.is_none() {
                        this.state = State::Done;
                    }
                    return Poll::Ready(item);
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }
}

impl<T> Unpin for PgSource<T> {}

impl<T> fmt::Debug for PgSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Configured(q, _) => f
                .debug_struct("PgSource")
                .field("conn", &q.conn)
                .field("sql", &q.sql)
                .field("batch_size", &q.batch_size)
                .finish(),
            State::Running(_) => f.write_str("PgSource(running)"),
            State::Done => f.write_str("PgSource(done)"),
        }
    }
}

/// Called with each batch of records before it is converted and emitted
/// (the incremental source keeps its high-water mark with it).
pub(crate) type OnBatch = Box<dyn FnMut(&[Record]) + Send>;

/// The schema of a prepared statement's result, or an error naming the
/// first column DataFlare cannot map.
pub(crate) fn schema_of(statement: &Statement) -> std::result::Result<Arc<Schema>, String> {
    let mut fields = Vec::with_capacity(statement.columns().len());
    for column in statement.columns() {
        let ty = column.type_();
        let data_type = data_type(ty).ok_or_else(|| unmappable(column.name(), ty))?;
        fields.push(Field::new(column.name(), data_type));
    }
    Ok(Arc::new(Schema::from_fields(fields)))
}

/// A row as a record; a value that does not fit is a record-level error
/// naming the record (`index`, from 0) and the column.
pub(crate) fn record_of(row: &Row, schema: &Arc<Schema>, index: u64) -> Result<Record> {
    let mut values = Vec::with_capacity(schema.len());
    for (i, field) in schema.fields().iter().enumerate() {
        match row.try_get::<_, Cell>(i) {
            Ok(Cell(v)) => values.push(v),
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), ToString::to_string);
                return Err(Error::parse(format!(
                    "column {:?} ({}): {cause}",
                    field.name(),
                    row.columns()[i].type_().name()
                ))
                .with_position(Position::new().record(index).field(field.name())));
            }
        }
    }
    Ok(Record::new(schema.clone(), values))
}

/// The rows of `q`, in batches, converted by `convert`; on `opened` when
/// [`PgSource::read_schema`] left a connection open.
///
/// Transport: a query without parameters (and not incremental) runs as
/// `COPY (query) TO STDOUT (FORMAT binary)`: the server streams the rows
/// while the client decodes them, held back only by TCP's flow control. A
/// portal fetched `fetch_size` rows at a time makes the two take turns
/// instead (the server waits while the client decodes a fetch, the client
/// while the server produces the next), which cost a dump about a third of
/// its speed. Both carry the same binary values, decoded by the same
/// [`decode`], so records, types and errors are the same either way.
pub(crate) fn stream<T: Send + 'static>(
    q: Query,
    convert: Convert<T>,
    on_batch: Option<OnBatch>,
    opened: Option<Client>,
) -> impl Stream<Item = Result<Batch<T>>> + Send {
    async_stream::stream! {
        let conn = q.conn.clone();
        let mut client = match opened {
            Some(c) => c,
            None => match conn.open().await {
                Ok(c) => c,
                Err(e) => { yield Err(e); return; }
            },
        };
        let tx = client
            .build_transaction()
            .read_only(true)
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await;
        let tx = match tx {
            Ok(tx) => tx,
            Err(e) => { yield Err(conn.error(&e)); return; }
        };
        if let Some(setup) = &q.setup
            && let Err(e) = tx.batch_execute(setup).await
        {
            yield Err(conn.error(&e));
            return;
        }
        let statement = match tx.prepare(&q.sql).await {
            Ok(s) => s,
            Err(e) => { yield Err(conn.error(&e)); return; }
        };
        let schema = match schema_of(&statement) {
            Ok(s) => s,
            Err(e) => { yield Err(conn.error_msg(e)); return; }
        };
        let copyable = q.params.is_empty() && on_batch.is_none();
        let mut batcher = Batcher::new(q.batch_size, convert, on_batch);
        match copyable.then(|| copy_statement(&q.sql)).flatten() {
            Some(copy) => {
                let out = match tx.copy_out(copy.as_str()).await {
                    Ok(out) => out,
                    Err(e) => { yield Err(conn.error(&e)); return; }
                };
                let mut out = std::pin::pin!(out);
                let types: Vec<Type> =
                    statement.columns().iter().map(|c| c.type_().clone()).collect();
                let mut rows = CopyRows::new(types);
                while let Some(chunk) = out.next().await {
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => { yield Err(conn.error(&e)); return; }
                    };
                    if let Err(e) = rows.feed(&chunk, &schema, &mut batcher) {
                        yield Err(conn.error_msg(e));
                        return;
                    }
                    for item in batcher.ready.drain(..) {
                        yield item;
                    }
                }
                if let Err(e) = rows.finish() {
                    yield Err(conn.error_msg(e));
                    return;
                }
            }
            None => {
                let params: Vec<Param<'_>> = q.params.iter().map(Param).collect();
                let refs: Vec<&(dyn ToSql + Sync)> =
                    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
                let portal = match tx.bind(&statement, &refs).await {
                    Ok(p) => p,
                    Err(e) => { yield Err(conn.error(&e)); return; }
                };
                drop(refs);
                drop(params);
                let fetch = q.fetch_size();
                loop {
                    let rows = match tx.query_portal_raw(&portal, fetch as i32).await {
                        Ok(rows) => rows,
                        Err(e) => { yield Err(conn.error(&e)); return; }
                    };
                    let mut rows = std::pin::pin!(rows);
                    let mut fetched = 0;
                    while let Some(row) = rows.next().await {
                        let row = match row {
                            Ok(row) => row,
                            Err(e) => { yield Err(conn.error(&e)); return; }
                        };
                        fetched += 1;
                        let record = record_of(&row, &schema, batcher.index);
                        batcher.push(record);
                        for item in batcher.ready.drain(..) {
                            yield item;
                        }
                    }
                    if fetched < fetch {
                        break;
                    }
                }
            }
        }
        batcher.flush();
        for item in batcher.ready.drain(..) {
            yield item;
        }
        if let Err(e) = tx.commit().await {
            yield Err(conn.error(&e));
        }
    }
}

/// `COPY (sql) TO STDOUT (FORMAT binary)` for a query COPY can run (one
/// starting with SELECT, WITH, VALUES or TABLE), or `None`: another
/// statement goes through the portal. The query is put on lines of its own
/// (a trailing `-- comment` stays inside) and loses a trailing `;`.
pub(crate) fn copy_statement(sql: &str) -> Option<String> {
    let head = sql.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    let word: String = head
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_lowercase();
    if !matches!(word.as_str(), "select" | "with" | "values" | "table") {
        return None;
    }
    let body = sql.trim_end();
    let body = body.strip_suffix(';').unwrap_or(body);
    Some(format!("COPY (\n{body}\n) TO STDOUT (FORMAT binary)"))
}

/// Records gathered into batches of `batch_size`, with the record-level
/// errors met on the way; what is ready to emit waits in `ready`.
struct Batcher<T> {
    batch_size: usize,
    convert: Convert<T>,
    on_batch: Option<OnBatch>,
    records: Vec<Record>,
    errors: Vec<Error>,
    /// The index of the next record, from 0.
    index: u64,
    seq: u64,
    ready: Vec<Result<Batch<T>>>,
}

impl<T> Batcher<T> {
    fn new(batch_size: usize, convert: Convert<T>, on_batch: Option<OnBatch>) -> Self {
        Batcher {
            batch_size,
            convert,
            on_batch,
            records: Vec::with_capacity(batch_size),
            errors: Vec::new(),
            index: 0,
            seq: 0,
            ready: Vec::new(),
        }
    }

    /// Takes the next record (or its error); a full batch moves to `ready`.
    fn push(&mut self, record: Result<Record>) {
        match record {
            Ok(r) => self.records.push(r),
            Err(e) => self.errors.push(e),
        }
        self.index += 1;
        if self.records.len() + self.errors.len() >= self.batch_size {
            self.flush();
        }
    }

    /// Moves what is gathered to `ready`: the errors, then the batch.
    fn flush(&mut self) {
        self.ready.extend(self.errors.drain(..).map(Err));
        if !self.records.is_empty() {
            let records = std::mem::replace(&mut self.records, Vec::with_capacity(self.batch_size));
            let (batch, errs) = emit(records, self.convert, &mut self.on_batch, self.index);
            self.ready.extend(errs.into_iter().map(Err));
            if !batch.is_empty() {
                self.ready.push(Ok(batch.with_seq(self.seq)));
                self.seq += 1;
            }
        }
    }
}

/// The rows of a binary `COPY ... TO STDOUT`, parsed from its data as it
/// arrives (the server sends a row per message, but a row may span messages
/// all the same: a partial row waits in `pending` for the rest).
struct CopyRows {
    types: Vec<Type>,
    header: bool,
    trailer: bool,
    pending: Vec<u8>,
}

/// The signature opening a binary `COPY`.
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

impl CopyRows {
    fn new(types: Vec<Type>) -> Self {
        CopyRows {
            types,
            header: false,
            trailer: false,
            pending: Vec::new(),
        }
    }

    /// Parses the rows of `chunk` (after what is pending) into `batcher`.
    fn feed<T>(
        &mut self,
        chunk: &[u8],
        schema: &Arc<Schema>,
        batcher: &mut Batcher<T>,
    ) -> std::result::Result<(), String> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, schema, batcher)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            self.pending.extend_from_slice(chunk);
            let buf = std::mem::take(&mut self.pending);
            let used = self.parse(&buf, schema, batcher)?;
            self.pending = buf;
            self.pending.drain(..used);
        }
        Ok(())
    }

    /// Checks that the data ended where it should: after the trailer.
    fn finish(&self) -> std::result::Result<(), String> {
        if !self.trailer || !self.pending.is_empty() {
            return Err("the COPY data ended in the middle of a row".into());
        }
        Ok(())
    }

    /// Parses the whole rows at the start of `buf`; returns the bytes used.
    fn parse<T>(
        &mut self,
        buf: &[u8],
        schema: &Arc<Schema>,
        batcher: &mut Batcher<T>,
    ) -> std::result::Result<usize, String> {
        let mut at = 0;
        if !self.header {
            // Signature, flags, header extension length, extension.
            if buf.len() < 19 {
                return Ok(0);
            }
            if &buf[..11] != COPY_SIGNATURE {
                return Err("the COPY data does not start with the binary signature".into());
            }
            let ext = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
            if buf.len() < 19 + ext {
                return Ok(0);
            }
            at = 19 + ext;
            self.header = true;
        }
        let columns = self.types.len();
        while at < buf.len() {
            if self.trailer {
                return Err("COPY data after its trailer".into());
            }
            let Some(count) = buf.get(at..at + 2) else {
                break;
            };
            let count = i16::from_be_bytes([count[0], count[1]]);
            if count == -1 {
                self.trailer = true;
                at += 2;
                continue;
            }
            if count as usize != columns {
                return Err(format!(
                    "a COPY row of {count} fields where the query has {columns} columns"
                ));
            }
            let mut p = at + 2;
            let mut values = Vec::with_capacity(columns);
            let mut error = None;
            let mut whole = true;
            for (i, ty) in self.types.iter().enumerate() {
                let Some(len) = buf.get(p..p + 4) else {
                    whole = false;
                    break;
                };
                let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                p += 4;
                if len < 0 {
                    values.push(Value::Null);
                    continue;
                }
                let Some(raw) = buf.get(p..p + len as usize) else {
                    whole = false;
                    break;
                };
                p += len as usize;
                if error.is_some() {
                    continue;
                }
                match decode(ty, raw) {
                    Ok(v) => values.push(v),
                    Err(cause) => {
                        let field = &schema.fields()[i];
                        error = Some(
                            Error::parse(format!(
                                "column {:?} ({}): {cause}",
                                field.name(),
                                ty.name()
                            ))
                            .with_position(
                                Position::new().record(batcher.index).field(field.name()),
                            ),
                        );
                    }
                }
            }
            if !whole {
                break;
            }
            at = p;
            batcher.push(match error {
                Some(e) => Err(e),
                None => Ok(Record::new(schema.clone(), values)),
            });
        }
        Ok(at)
    }
}

/// Converts a batch of records; `end` is the index after its last record.
/// Records that do not convert are record-level errors, returned beside the
/// batch of the others.
fn emit<T>(
    records: Vec<Record>,
    convert: Convert<T>,
    on_batch: &mut Option<OnBatch>,
    end: u64,
) -> (Batch<T>, Vec<Error>) {
    if let Some(f) = on_batch {
        f(&records);
    }
    let start = end - records.len() as u64;
    let mut out = Vec::with_capacity(records.len());
    let mut errors = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        match convert(r) {
            Ok(t) => out.push(t),
            Err(e) => errors
                .push(Error::parse(e.0).with_position(Position::new().record(start + i as u64))),
        }
    }
    (Batch::new(out), errors)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::connectors::postgres::types::{copy_field, copy_header, copy_trailer};
    use crate::record::DataType;

    #[test]
    fn copy_wraps_queries_copy_can_run_and_leaves_the_rest_to_the_portal() {
        assert_eq!(
            copy_statement("  select 1;  ").unwrap(),
            "COPY (\n  select 1\n) TO STDOUT (FORMAT binary)"
        );
        assert!(copy_statement("WITH x AS (SELECT 1) SELECT * FROM x -- note").is_some());
        assert!(copy_statement("(VALUES (1))").is_some());
        assert!(copy_statement("TABLE t").is_some());
        assert!(copy_statement("SHOW work_mem").is_none());
        assert!(copy_statement("EXPLAIN SELECT 1").is_none());
        assert!(copy_statement("-- a comment first\nSELECT 1").is_none());
    }

    fn rows(types: &[Type], rows: &[Vec<Value>]) -> Vec<u8> {
        let mut out = BytesMut::new();
        copy_header(&mut out);
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for (v, ty) in row.iter().zip(types) {
                copy_field(v, ty, &mut out).unwrap();
            }
        }
        copy_trailer(&mut out);
        out.to_vec()
    }

    fn read(
        data: &[u8],
        chunk: usize,
        types: &[Type],
        schema: &Arc<Schema>,
    ) -> Vec<Result<Batch<Record>>> {
        let mut batcher = Batcher::new(2, Ok, None);
        let mut parser = CopyRows::new(types.to_vec());
        for piece in data.chunks(chunk) {
            parser.feed(piece, schema, &mut batcher).unwrap();
        }
        parser.finish().unwrap();
        batcher.flush();
        std::mem::take(&mut batcher.ready)
    }

    #[test]
    fn copy_rows_are_the_same_however_the_data_is_split() {
        let types = [Type::INT8, Type::TEXT, Type::NUMERIC, Type::TIMESTAMPTZ];
        let schema = Arc::new(Schema::new([
            ("id", DataType::Int),
            ("name", DataType::Str),
            ("amount", DataType::Decimal),
            ("at", DataType::Timestamp),
        ]));
        let data: Vec<Vec<Value>> = (0..5)
            .map(|i| {
                vec![
                    Value::Int(i),
                    if i == 2 {
                        Value::Null
                    } else {
                        Value::from(format!("ñame {i}"))
                    },
                    Value::Decimal(format!("{i}.25").parse().unwrap()),
                    Value::Timestamp("2024-02-29T12:00:00Z".parse().unwrap()),
                ]
            })
            .collect();
        let bytes = rows(&types, &data);
        let whole = read(&bytes, bytes.len(), &types, &schema);
        let values = |batches: &[Result<Batch<Record>>]| -> Vec<Vec<Value>> {
            batches
                .iter()
                .flat_map(|b| {
                    b.as_ref()
                        .unwrap()
                        .iter()
                        .map(|r| r.values().to_vec())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        assert_eq!(values(&whole), data);
        assert_eq!(whole.len(), 3);
        for chunk in [1, 3, 7, 50] {
            assert_eq!(
                values(&read(&bytes, chunk, &types, &schema)),
                data,
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_value_that_does_not_decode_is_a_record_level_error_and_the_rest_is_read() {
        let types = [Type::INT8, Type::DATE];
        let schema = Arc::new(Schema::new([
            ("id", DataType::Int),
            ("day", DataType::Date),
        ]));
        let mut out = BytesMut::new();
        copy_header(&mut out);
        for (id, days) in [(1i64, 0i32), (2, i32::MAX), (3, 1)] {
            out.extend_from_slice(&2i16.to_be_bytes());
            copy_field(&Value::Int(id), &Type::INT8, &mut out).unwrap();
            out.extend_from_slice(&4i32.to_be_bytes());
            out.extend_from_slice(&days.to_be_bytes());
        }
        copy_trailer(&mut out);
        let items = read(&out, 5, &types, &schema);
        let errors: Vec<String> = items
            .iter()
            .filter_map(|i| i.as_ref().err())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].contains("record 2")
                && errors[0].contains("\"day\"")
                && errors[0].contains("infinite"),
            "{}",
            errors[0]
        );
        let ids: Vec<Value> = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .flat_map(|b| b.iter().map(|r| r.values()[0].clone()).collect::<Vec<_>>())
            .collect();
        assert_eq!(ids, [Value::Int(1), Value::Int(3)]);
    }

    #[test]
    fn truncated_copy_data_is_an_error() {
        let types = [Type::INT8];
        let schema = Arc::new(Schema::new([("id", DataType::Int)]));
        let bytes = rows(&types, &[vec![Value::Int(1)]]);
        let mut batcher = Batcher::new(2, Ok, None);
        let mut parser = CopyRows::new(types.to_vec());
        parser
            .feed(&bytes[..bytes.len() - 4], &schema, &mut batcher)
            .unwrap();
        assert!(parser.finish().is_err());
        let mut parser = CopyRows::new(vec![Type::INT8, Type::INT8]);
        assert!(
            parser
                .feed(&bytes, &schema, &mut batcher)
                .unwrap_err()
                .contains("1 fields")
        );
    }
}
