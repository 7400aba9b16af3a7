//! Incremental extraction: [`incremental`], the rows past the last
//! high-water mark, in cursor order.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};

use super::Connect;
use super::source::{Query, stream};
use super::table::{quote_ident, quote_table};
use crate::record::{Record, Value};
use crate::source::DEFAULT_BATCH_SIZE;
use crate::{Batch, Error, Result};

/// Where an incremental read stands: the cursor value of the last row read
/// and its key (the values of the key columns, which break ties between rows
/// with the same cursor value). The next run reads the rows after it in
/// `(cursor, key)` order.
///
/// Displayed (and kept in the report, as the source stage's
/// [`position`](crate::StageStats::position)) as JSON,
/// `{"cursor":"2024-05-01T10:00:00Z","key":[1042]}`, which
/// [`FromStr`](std::str::FromStr) reads back: store it between scheduled
/// runs as text. Values read back from text (a timestamp, a decimal) are
/// converted to the columns' types by the server's parameter types.
///
/// ```
/// use dataflare::postgres::Mark;
/// use dataflare::record::Value;
///
/// let mark = Mark::new(Value::from("2024-05-01T10:00:00Z"), vec![Value::Int(1042)]);
/// let text = mark.to_string();
/// assert_eq!(text, r#"{"cursor":"2024-05-01T10:00:00Z","key":[1042]}"#);
/// assert_eq!(text.parse::<Mark>().unwrap(), mark);
/// let start = Mark::after(100); // rows whose cursor is over 100
/// # drop(start);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    cursor: Value,
    key: Vec<Value>,
}

impl Mark {
    /// The position after the row with cursor value `cursor` and key `key`.
    pub fn new(cursor: impl Into<Value>, key: Vec<Value>) -> Self {
        Mark {
            cursor: cursor.into(),
            key,
        }
    }

    /// A starting position: the rows whose cursor value is greater than
    /// `cursor` (every key).
    pub fn after(cursor: impl Into<Value>) -> Self {
        Mark::new(cursor, Vec::new())
    }

    /// The cursor value of the last row read.
    pub fn cursor(&self) -> &Value {
        &self.cursor
    }

    /// The key of the last row read (empty for a [`Mark::after`]).
    pub fn key(&self) -> &[Value] {
        &self.key
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::json!({ "cursor": self.cursor, "key": self.key });
        write!(f, "{json}")
    }
}

/// A mark that is not of the form [`Mark`] displays.
#[derive(Debug, Clone)]
pub struct ParseMarkError(String);

impl fmt::Display for ParseMarkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a high-water mark ({{\"cursor\":..,\"key\":[..]}}): {}",
            self.0
        )
    }
}

impl std::error::Error for ParseMarkError {}

fn value_of(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::from(n.to_string())),
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Bool(b) => Value::Bool(b),
        other => Value::from(other),
    }
}

impl std::str::FromStr for Mark {
    type Err = ParseMarkError;

    fn from_str(s: &str) -> std::result::Result<Self, ParseMarkError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            cursor: serde_json::Value,
            #[serde(default)]
            key: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_str(s).map_err(|e| ParseMarkError(e.to_string()))?;
        Ok(Mark {
            cursor: value_of(raw.cursor),
            key: raw.key.into_iter().map(value_of).collect(),
        })
    }
}

/// The high-water mark of an [`incremental`] source, readable after (or
/// during) its run: the mark of the last row it emitted, or the starting
/// mark when it emitted none. Store it only once the run has succeeded.
#[derive(Debug, Clone, Default)]
pub struct HighWaterMark(Arc<Mutex<Option<Mark>>>);

impl HighWaterMark {
    /// The mark now; `None` when the source started from the beginning and
    /// has emitted nothing.
    pub fn get(&self) -> Option<Mark> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, mark: Mark) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(mark);
    }
}

/// A source reading the rows of a table (or of a query) whose cursor column
/// is past a high-water mark, in `(cursor, key)` order, so a scheduled job
/// reads each row once: start each run [`after`](Incremental::start_after)
/// the previous run's mark, found in its [`Report`](crate::Report) (the
/// source stage's [`position`](crate::StageStats::position)) or through
/// [`high_water_mark`](Incremental::high_water_mark).
///
/// `table_or_query` is a table name (`orders`, `sales.orders`) or a query
/// (text starting with `SELECT`, `WITH` or `(`); `cursor_column` is a column
/// of it that grows as rows are added or changed (`updated_at`, a sequence).
/// Ties are broken by the key: by default the table's primary key; for a
/// query, or a table without one, give it with [`key`](Incremental::key).
/// Rows whose cursor is `NULL` are never read.
///
/// # The limit: commits out of order
///
/// The mark assumes that a row that becomes visible later has a greater
/// `(cursor, key)` than every row already read. That fails when cursor
/// values are assigned before the transactions that write them commit, and
/// they commit out of order: transaction A takes `id = 10` (or `updated_at =
/// now()`), B takes 11 and commits first; a run in between reads 11, and A's
/// row 10, committed later, is behind the mark and never read. A
/// [`lag_margin`](Incremental::lag_margin) leaves out the rows whose cursor is
/// within the margin of the server's clock (a timestamp or date cursor), so
/// they are read by a later run once every transaction that could still
/// commit behind them has; choose it longer than your longest writing
/// transaction. Integer sequences have no such margin: read them through a
/// query that leaves out the newest values, or from a table written by one
/// transaction at a time.
///
/// The four lines are those of [`query`](super::query): it **emits** batches
/// as they arrive, **backpressures** by not fetching, **completes** after
/// the last row past the mark, **cancels** by closing its connection. The
/// mark moves with each batch emitted: after a failed run, do not store it.
///
/// ```no_run
/// # #[tokio::main]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::postgres::{self, Mark};
/// use std::time::Duration;
///
/// let last: Option<Mark> = std::fs::read_to_string("orders.mark").ok().and_then(|s| s.parse().ok());
/// let mut source = postgres::incremental("postgres://etl@db/shop", "orders", "updated_at")
///     .lag_margin(Duration::from_secs(60));
/// if let Some(mark) = last {
///     source = source.start_after(mark);
/// }
/// let report = Pipeline::from(source)
///     .to(dataflare::jsonl::write::<dataflare::record::Record>("orders-changes.jsonl"))
///     .run()
///     .await?;
/// if let Some(mark) = &report.stage("source").unwrap().position {
///     std::fs::write("orders.mark", mark).unwrap();
/// }
/// # Ok(()) }
/// ```
pub fn incremental(
    conn: impl Into<Connect>,
    table_or_query: impl Into<String>,
    cursor_column: impl Into<String>,
) -> Incremental {
    Incremental {
        state: IncState::Configured(Box::new(Config {
            conn: conn.into(),
            from: table_or_query.into(),
            cursor: cursor_column.into(),
            key: None,
            start: None,
            lag: None,
            batch_size: DEFAULT_BATCH_SIZE,
            fetch_size: None,
        })),
        mark: HighWaterMark::default(),
    }
}

#[derive(Debug, Clone)]
struct Config {
    conn: Connect,
    from: String,
    cursor: String,
    key: Option<Vec<String>>,
    start: Option<Mark>,
    lag: Option<Duration>,
    batch_size: usize,
    fetch_size: Option<usize>,
}

/// The source made by [`incremental`], configured by its methods until first
/// polled.
pub struct Incremental {
    state: IncState,
    mark: HighWaterMark,
}

enum IncState {
    Configured(Box<Config>),
    Running(Pin<Box<dyn Stream<Item = Result<Batch<Record>>> + Send>>),
    Done,
}

impl Incremental {
    fn config(&mut self) -> &mut Config {
        match &mut self.state {
            IncState::Configured(c) => c,
            _ => panic!("an incremental source is configured before it is polled"),
        }
    }

    /// The columns breaking ties between rows with the same cursor value,
    /// in order: they must be unique together (with the cursor). By default
    /// the table's primary key.
    ///
    /// ```
    /// let s = dataflare::postgres::incremental(
    ///     "postgres://localhost/db",
    ///     "SELECT o.*, c.region FROM orders o JOIN customers c USING (customer_id)",
    ///     "updated_at",
    /// )
    /// .key(["order_id"]);
    /// # drop(s);
    /// ```
    pub fn key<K: Into<String>>(mut self, columns: impl IntoIterator<Item = K>) -> Self {
        self.config().key = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// Reads the rows after `mark` (the previous run's high-water mark, or
    /// [`Mark::after`] a starting value). Without it, every row is read.
    ///
    /// ```
    /// use dataflare::postgres::{self, Mark};
    ///
    /// let s = postgres::incremental("postgres://localhost/db", "events", "id").start_after(Mark::after(5000));
    /// # drop(s);
    /// ```
    pub fn start_after(mut self, mark: Mark) -> Self {
        self.mark.set(mark.clone());
        self.config().start = Some(mark);
        self
    }

    /// Leaves out the rows whose cursor (a timestamp or date) is within
    /// `margin` of the server's clock, for rows committed out of order: see
    /// [`incremental`]. Timestamps without time zone are compared in UTC.
    ///
    /// ```
    /// let s = dataflare::postgres::incremental("postgres://localhost/db", "orders", "updated_at")
    ///     .lag_margin(std::time::Duration::from_secs(300));
    /// # drop(s);
    /// ```
    pub fn lag_margin(mut self, margin: Duration) -> Self {
        self.config().lag = Some(margin);
        self
    }

    /// Rows per batch (default 1024).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn batch_size(mut self, n: usize) -> Self {
        assert!(n > 0, "batch_size must be at least 1");
        self.config().batch_size = n;
        self
    }

    /// Rows fetched per round trip (see [`PgSource::fetch_size`](super::PgSource::fetch_size)).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[track_caller]
    pub fn fetch_size(mut self, n: usize) -> Self {
        assert!(n > 0, "fetch_size must be at least 1");
        self.config().fetch_size = Some(n);
        self
    }

    /// A handle to the high-water mark, to read after the run.
    ///
    /// ```
    /// let s = dataflare::postgres::incremental("postgres://localhost/db", "orders", "id");
    /// let mark = s.high_water_mark();
    /// assert_eq!(mark.get(), None); // nothing read yet
    /// ```
    pub fn high_water_mark(&self) -> HighWaterMark {
        self.mark.clone()
    }
}

fn is_query(s: &str) -> bool {
    let t = s.trim_start();
    let head: String = t.chars().take(6).collect::<String>().to_ascii_uppercase();
    t.starts_with('(') || head.starts_with("SELECT") || head.starts_with("WITH")
}

/// The incremental query: the rows past the mark, in `(cursor, key)` order.
fn build_sql(config: &Config, key: &[String]) -> (String, Vec<Value>) {
    let from = if is_query(&config.from) {
        format!("({})", config.from.trim().trim_end_matches(';'))
    } else {
        quote_table(&config.from)
    };
    let cursor = quote_ident(&config.cursor);
    let order: Vec<String> = std::iter::once(cursor.clone())
        .chain(key.iter().map(|k| quote_ident(k)))
        .collect();
    let mut conditions = vec![format!("{cursor} IS NOT NULL")];
    let mut params = Vec::new();
    if let Some(mark) = &config.start {
        if mark.key.is_empty() {
            conditions.push(format!("{cursor} > $1"));
            params.push(mark.cursor.clone());
        } else {
            let n = 1 + mark.key.len().min(key.len());
            let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
            conditions.push(format!(
                "({}) > ({})",
                order[..n].join(", "),
                placeholders.join(", ")
            ));
            params.push(mark.cursor.clone());
            params.extend(mark.key.iter().take(n - 1).cloned());
        }
    }
    if let Some(lag) = config.lag {
        conditions.push(format!(
            "{cursor} <= now() - interval '{}.{:06} seconds'",
            lag.as_secs(),
            lag.subsec_micros()
        ));
    }
    let sql = format!(
        "SELECT * FROM {from} AS dataflare_incremental WHERE {} ORDER BY {}",
        conditions.join(" AND "),
        order.join(", ")
    );
    (sql, params)
}

/// The primary key columns of `table`, in order.
async fn primary_key(conn: &Connect, table: &str) -> Result<Vec<String>> {
    let client = conn.open().await?;
    let rows = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY k.ord",
            &[&quote_table(table)],
        )
        .await
        .map_err(|e| conn.error(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn run(config: Config, mark: HighWaterMark) -> impl Stream<Item = Result<Batch<Record>>> + Send {
    async_stream::stream! {
        if let Some(stage) = crate::metrics::source_stage()
            && let Some(m) = mark.get()
        {
            stage.set_position(m.to_string());
        }
        let key = match &config.key {
            Some(k) => k.clone(),
            None if is_query(&config.from) => {
                yield Err(Error::config(format!(
                    "incremental read of a query by {:?}: give the key columns that break ties \
                     between rows with the same cursor value (.key([...]))",
                    config.cursor
                )));
                return;
            }
            None => match primary_key(&config.conn, &config.from).await {
                Ok(k) if !k.is_empty() => k,
                Ok(_) => {
                    yield Err(Error::config(format!(
                        "incremental read of table {}: it has no primary key; give the key \
                         columns that break ties between rows with the same cursor value \
                         (.key([...]))",
                        config.from
                    )));
                    return;
                }
                Err(e) => { yield Err(e); return; }
            },
        };
        let (sql, params) = build_sql(&config, &key);
        tracing::debug!(sql = %sql, "incremental read");
        let query = Query {
            conn: config.conn.clone(),
            sql,
            params,
            batch_size: config.batch_size,
            fetch_size: config.fetch_size,
            setup: config.lag.map(|_| "SET LOCAL TIME ZONE 'UTC'".to_string()),
        };
        let cursor = config.cursor.clone();
        let tracked = mark.clone();
        let on_batch: super::source::OnBatch = Box::new(move |records: &[Record]| {
            if let Some(last) = records.last() {
                let m = Mark {
                    cursor: last.get(&cursor).cloned().unwrap_or_default(),
                    key: key.iter().map(|k| last.get(k).cloned().unwrap_or_default()).collect(),
                };
                if let Some(stage) = crate::metrics::source_stage() {
                    stage.set_position(m.to_string());
                }
                tracked.set(m);
            }
        });
        let mut rows = std::pin::pin!(stream(query, Ok, Some(on_batch), None));
        while let Some(item) = rows.next().await {
            yield item;
        }
    }
}

impl Stream for Incremental {
    type Item = Result<Batch<Record>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                IncState::Configured(_) => {
                    let IncState::Configured(c) =
                        std::mem::replace(&mut this.state, IncState::Done)
                    else {
                        unreachable!("matched above")
                    };
                    this.state = IncState::Running(Box::pin(run(*c, this.mark.clone())));
                }
                IncState::Running(s) => {
                    let item = futures::ready!(s.as_mut().poll_next(cx));
                    if item.is_none() {
                        this.state = IncState::Done;
                    }
                    return Poll::Ready(item);
                }
                IncState::Done => return Poll::Ready(None),
            }
        }
    }
}

impl Unpin for Incremental {}

impl fmt::Debug for Incremental {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            IncState::Configured(c) => f
                .debug_struct("Incremental")
                .field("conn", &c.conn)
                .field("from", &c.from)
                .field("cursor", &c.cursor)
                .field("start", &c.start)
                .finish(),
            _ => f
                .debug_struct("Incremental")
                .field("mark", &self.mark.get())
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(from: &str, start: Option<Mark>) -> Config {
        Config {
            conn: Connect::parse("postgres://localhost/db").unwrap(),
            from: from.into(),
            cursor: "at".into(),
            key: None,
            start,
            lag: None,
            batch_size: 10,
            fetch_size: None,
        }
    }

    #[test]
    fn the_query_orders_by_cursor_then_key_past_the_mark() {
        let (sql, params) = build_sql(&config("s.t", None), &["id".into()]);
        assert_eq!(
            sql,
            "SELECT * FROM \"s\".\"t\" AS dataflare_incremental WHERE \"at\" IS NOT NULL ORDER BY \"at\", \"id\""
        );
        assert!(params.is_empty());
        let mark = Mark::new(5, vec![Value::Int(7)]);
        let (sql, params) = build_sql(&config("select * from x;", Some(mark)), &["id".into()]);
        assert_eq!(
            sql,
            "SELECT * FROM (select * from x) AS dataflare_incremental WHERE \"at\" IS NOT NULL \
             AND (\"at\", \"id\") > ($1, $2) ORDER BY \"at\", \"id\""
        );
        assert_eq!(params, vec![Value::Int(5), Value::Int(7)]);
    }
}
