//! The query source: [`query`], streaming a result through a server-side
//! portal, a fetch at a time.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row, Statement};

use super::Connect;
use super::de::from_record;
use super::table::quote_table;
use super::types::{Cell, Param, data_type, unmappable};
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
/// The query runs in a read-only transaction through a server-side portal,
/// fetched [`fetch_size`](PgSource::fetch_size) rows at a time: the result is
/// never held in memory whole, only the fetch in hand.
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
    /// batch downstream has.
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
    /// The schema of the query's result, asked of the server before the run
    /// (a connection opened and closed for it): for writing a header when
    /// the result is empty, or checking the columns up front. Fails as the
    /// run would fail before its first row: a server that cannot be reached,
    /// a query the server refuses, a column DataFlare cannot map.
    ///
    /// # Panics
    ///
    /// If the source has already been polled.
    pub async fn read_schema(&self) -> Result<Arc<Schema>> {
        let State::Configured(q, _) = &self.state else {
            panic!("read_schema is called before the source is polled");
        };
        let client = q.conn.open().await?;
        let statement = client.prepare(&q.sql).await.map_err(|e| q.conn.error(&e))?;
        schema_of(&statement).map_err(|e| q.conn.error_msg(e))
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
            State::Configured(q, _) => PgSource::new(*q, typed_row::<T>),
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
                    this.state = State::Running(Box::pin(stream(*q, convert, None)));
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

/// The rows of `q`, in batches, converted by `convert`.
pub(crate) fn stream<T: Send + 'static>(
    q: Query,
    convert: Convert<T>,
    mut on_batch: Option<OnBatch>,
) -> impl Stream<Item = Result<Batch<T>>> + Send {
    async_stream::stream! {
        let conn = q.conn.clone();
        let mut client = match conn.open().await {
            Ok(c) => c,
            Err(e) => { yield Err(e); return; }
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
        let params: Vec<Param<'_>> = q.params.iter().map(Param).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let portal = match tx.bind(&statement, &refs).await {
            Ok(p) => p,
            Err(e) => { yield Err(conn.error(&e)); return; }
        };
        drop(refs);
        drop(params);
        let fetch = q.fetch_size();
        let mut index = 0u64;
        let mut seq = 0u64;
        let mut records = Vec::with_capacity(q.batch_size);
        let mut errors = Vec::new();
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
                match record_of(&row, &schema, index) {
                    Ok(r) => records.push(r),
                    Err(e) => errors.push(e),
                }
                index += 1;
                if records.len() + errors.len() >= q.batch_size {
                    for e in errors.drain(..) {
                        yield Err(e);
                    }
                    if !records.is_empty() {
                        let batch = std::mem::replace(&mut records, Vec::with_capacity(q.batch_size));
                        let (batch, errs) = emit(batch, convert, &mut on_batch, index);
                        for e in errs {
                            yield Err(e);
                        }
                        if !batch.is_empty() {
                            yield Ok(batch.with_seq(seq));
                            seq += 1;
                        }
                    }
                }
            }
            if fetched < fetch {
                break;
            }
        }
        for e in errors.drain(..) {
            yield Err(e);
        }
        if !records.is_empty() {
            let (batch, errs) = emit(records, convert, &mut on_batch, index);
            for e in errs {
                yield Err(e);
            }
            if !batch.is_empty() {
                yield Ok(batch.with_seq(seq));
            }
        }
        if let Err(e) = tx.commit().await {
            yield Err(conn.error(&e));
        }
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
