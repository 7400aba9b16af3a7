//! Event time: each record's timestamp and the watermark made of them, set
//! on a pipeline with [`Pipeline::event_time`] for the windows (and other
//! time-bound state) that follow.

use std::fmt;
use std::time::Duration;

use super::{EventClock, KeyBy, KeyOf, StateLimits};
use crate::Pipeline;
use crate::ops::Steps;
use crate::record::Timestamp;
use crate::source::Source;
use crate::{BoxError, Error, Result};

/// How a stage finds a record's event time.
///
/// Implemented for closures `FnMut(&T) -> Timestamp`, and for [`TryTime`]
/// (made by [`try_time`]) when reading it may fail: a record without a
/// timestamp is then a record error under the stage's policy.
///
/// Implement it to read times your own way, say from a column:
///
/// ```
/// use dataflare::record::{DataType, Record, Schema, Timestamp, Value};
/// use dataflare::state::TimeOf;
/// use dataflare::Error;
/// use std::sync::Arc;
///
/// /// Seconds since the epoch in an integer column.
/// struct EpochSeconds(&'static str);
///
/// impl TimeOf<Record> for EpochSeconds {
///     fn time_of(&mut self, record: &Record) -> dataflare::Result<Timestamp> {
///         match record.get(self.0).and_then(Value::as_i64) {
///             Some(secs) => Ok(Timestamp::from_secs(secs)),
///             None => Err(Error::msg(format!("no time in column {:?}", self.0)).at_record_level()),
///         }
///     }
/// }
///
/// let schema = Arc::new(Schema::new([("at", DataType::Int)]));
/// let record = Record::new(schema, vec![Value::Int(60)]);
/// assert_eq!(EpochSeconds("at").time_of(&record).unwrap(), Timestamp::from_secs(60));
/// ```
pub trait TimeOf<T>: Send + 'static {
    /// The event time of `record`.
    fn time_of(&mut self, record: &T) -> Result<Timestamp>;
}

impl<T, F> TimeOf<T> for F
where
    F: FnMut(&T) -> Timestamp + Send + 'static,
{
    fn time_of(&mut self, record: &T) -> Result<Timestamp> {
        Ok(self(record))
    }
}

/// The event time of a dynamic record: the [`Timestamp`] in column `name`
/// (typed `timestamp` by a schema, or inferred). A record without the column,
/// with a null there or with another type is a record error under the
/// stage's policy, naming the column and what it held.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::record::{DataType, Record, Schema, Timestamp, Value};
/// use dataflare::state::{Agg, Columns, Window, time_column};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let schema = Arc::new(Schema::new([("page", DataType::Str), ("at", DataType::Timestamp)]));
/// let hit = |p: &str, s: i64| Record::new(schema.clone(), vec![Value::from(p), Value::Timestamp(Timestamp::from_secs(s))]);
/// let out = Collected::new();
/// Pipeline::from(source::iter(vec![hit("/", 10), hit("/", 70), hit("/", 20)]))
///     .event_time(time_column("at"), Duration::from_secs(60))
///     .key_by(Columns::new(["page"]))
///     .window(Window::tumbling(Duration::from_secs(60)))
///     .aggregate_columns([("hits", Agg::Count)])
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// let rows = out.to_vec();
/// assert_eq!(rows[0].get("hits"), Some(&Value::Int(2)));
/// assert_eq!(rows[1].get("window_start"), Some(&Value::Timestamp(Timestamp::from_secs(60))));
/// # Ok(()) }
/// ```
pub fn time_column(name: &str) -> TimeColumn {
    TimeColumn {
        name: name.into(),
        cached: None,
    }
}

/// Made by [`time_column`].
#[derive(Debug, Clone)]
pub struct TimeColumn {
    name: std::sync::Arc<str>,
    /// The column's index in the last schema seen.
    cached: Option<(std::sync::Arc<crate::record::Schema>, Option<usize>)>,
}

impl TimeOf<crate::record::Record> for TimeColumn {
    fn time_of(&mut self, record: &crate::record::Record) -> Result<Timestamp> {
        let schema = record.schema();
        if !matches!(&self.cached, Some((s, _)) if std::sync::Arc::ptr_eq(s, schema)) {
            self.cached = Some((schema.clone(), schema.index_of(&self.name)));
        }
        let index = self.cached.as_ref().and_then(|(_, i)| *i);
        let problem = match index.and_then(|i| record.get_index(i)) {
            Some(crate::record::Value::Timestamp(t)) => return Ok(*t),
            None => "the record has no such column".to_string(),
            Some(crate::record::Value::Null) => "it is empty".to_string(),
            Some(other) => format!(
                "it holds {other:?}, not a timestamp (type the column `timestamp` in the schema)"
            ),
        };
        Err(Error::msg(format!(
            "no event time in column {:?}: {problem}",
            self.name
        ))
        .at_record_level())
    }
}

/// Reads event times with a closure that may fail (a missing or malformed
/// column of a dynamic record): its error is a record error under the
/// windowed stage's policy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::prelude::*;
/// use dataflare::record::Timestamp;
/// use dataflare::state::{Window, agg, try_time};
/// use std::time::Duration;
///
/// let out = Collected::new();
/// let report = Pipeline::from(source::iter(vec!["10", "x", "20"]))
///     .event_time(try_time(|s: &&str| s.parse().map(Timestamp::from_secs)), Duration::ZERO)
///     .key_by(|_: &&str| ())
///     .window(Window::tumbling(Duration::from_secs(60)))
///     .aggregate(agg::count())
///     .on_error(ErrorPolicy::Skip)
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec()[0].value, 2);
/// assert_eq!(report.skipped(), 1);
/// # Ok(()) }
/// ```
pub fn try_time<T, E, F>(f: F) -> TryTime<F>
where
    F: FnMut(&T) -> std::result::Result<Timestamp, E>,
    E: Into<BoxError>,
{
    TryTime(f)
}

/// Made by [`try_time`].
#[derive(Clone, Copy)]
pub struct TryTime<F>(F);

impl<T, E, F> TimeOf<T> for TryTime<F>
where
    F: FnMut(&T) -> std::result::Result<Timestamp, E> + Send + 'static,
    E: Into<BoxError>,
{
    fn time_of(&mut self, record: &T) -> Result<Timestamp> {
        (self.0)(record).map_err(|e| Error::from_user(e).at_record_level())
    }
}

impl<F> fmt::Debug for TryTime<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryTime").finish_non_exhaustive()
    }
}

/// A pipeline whose records carry an event time, made by
/// [`Pipeline::event_time`]: not a stage, the clock the next stateful stage
/// keeps time by. Key it ([`key_by`](EventTime::key_by)), then window it.
#[must_use = "an event-time pipeline does nothing until it is keyed and windowed"]
pub struct EventTime<S, C, TF> {
    pipeline: Pipeline<S, C>,
    clock: EventClock<TF>,
}

impl<S: Source, C: Steps<S::Record>> Pipeline<S, C> {
    /// Gives the records an event time, `time(&record)` (a closure returning
    /// a [`Timestamp`], or [`try_time`] when reading it may fail), and a
    /// watermark: the latest event time seen less `lateness`. The end of the
    /// input is the final watermark (+∞). Then [`key_by`](EventTime::key_by)
    /// and [`window`](KeyBy::window).
    ///
    /// A record whose event time is behind the watermark when it comes is
    /// *late*: the windows it belongs to may have closed. It never panics
    /// and is never dropped silently: it is a record error under the
    /// windowed stage's policy — the run fails naming the record, its event
    /// time and the watermark (abort, the default); under
    /// [`ErrorPolicy::Skip`](crate::ErrorPolicy::Skip) it counts as `late`;
    /// [`DeadLetters`](crate::DeadLetters) receive it. The watermark moves
    /// record by record, so which records are late does not depend on how
    /// the input is batched.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::{Window, agg};
    /// use std::time::Duration;
    ///
    /// #[derive(Debug)]
    /// struct Click { user: &'static str, ts: Timestamp }
    /// let at = |user, secs| Click { user, ts: Timestamp::from_secs(secs) };
    ///
    /// let out = Collected::new();
    /// let report = Pipeline::from(source::iter(vec![at("ann", 5), at("bob", 60), at("ann", 50), at("ann", 1)]))
    ///     .event_time(|c: &Click| c.ts, Duration::from_secs(15))
    ///     .key_by(|c: &Click| c.user)
    ///     .window(Window::tumbling(Duration::from_secs(60)))
    ///     .aggregate(agg::count())
    ///     .on_error(ErrorPolicy::Skip)
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// // ann's click at 0:01 came after the watermark reached 0:45 (1:00 - 15 s): late.
    /// let counts: Vec<_> = out.to_vec().into_iter().map(|w| (w.key, w.start.to_string(), w.value)).collect();
    /// assert_eq!(counts, vec![
    ///     ("ann", "1970-01-01T00:00:00Z".to_string(), 2),
    ///     ("bob", "1970-01-01T00:01:00Z".to_string(), 1),
    /// ]);
    /// assert_eq!(report.stage("window#1").unwrap().late, 1);
    /// # Ok(()) }
    /// ```
    pub fn event_time<TF>(self, time: TF, lateness: Duration) -> EventTime<S, C, TF>
    where
        TF: TimeOf<C::Out>,
    {
        EventTime {
            pipeline: self,
            clock: EventClock::new(time, lateness),
        }
    }
}

impl<S, C, TF> EventTime<S, C, TF>
where
    S: Source,
    C: Steps<S::Record>,
    TF: TimeOf<C::Out>,
{
    /// For unbounded sources: after `after` without any record (on Tokio's
    /// clock), the watermark moves on with processing time, as if event time
    /// had kept pace with it since the last record — the latest event time
    /// seen, plus the silence, less the lateness — so the windows of a
    /// source gone quiet still close, on the stage's timer. When records
    /// come again, one behind that watermark is late.
    ///
    /// Meant for sources whose event time follows the wall clock (live
    /// events); without it, a window closes only when later records, or the
    /// end of the input, move the watermark past its end.
    ///
    /// # Panics
    ///
    /// If `after` is zero.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::{Window, agg};
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = tokio::sync::mpsc::channel(16);
    /// let out = Collected::new();
    /// let run = tokio::spawn(
    ///     Pipeline::from(source::channel(rx))
    ///         .event_time(|t: &i64| Timestamp::from_secs(*t), Duration::ZERO)
    ///         .idle_advance(Duration::from_secs(30))
    ///         .key_by(|_: &i64| "all")
    ///         .window(Window::tumbling(Duration::from_secs(60)))
    ///         .aggregate(agg::count())
    ///         .to(sink::collect(&out))
    ///         .run(),
    /// );
    /// tx.send(10).await.unwrap();
    /// tx.send(20).await.unwrap();
    /// // The source stays open but silent: 30 s on, the watermark moves on,
    /// // and the window [0:00, 1:00) closes when it passes 1:00.
    /// tokio::time::sleep(Duration::from_secs(60)).await;
    /// assert_eq!(out.to_vec()[0].value, 2);
    /// drop(tx);
    /// run.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn idle_advance(mut self, after: Duration) -> Self {
        assert!(
            !after.is_zero(),
            "idle_advance: the silence before the watermark moves on must be longer than zero"
        );
        self.clock.set_idle(after);
        self
    }

    /// Groups the records by `key` (as [`Pipeline::key_by`] does), keeping
    /// their event time for the [`window`](KeyBy::window) that follows.
    ///
    /// ```
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::{Window, agg};
    /// use std::time::Duration;
    ///
    /// let per_sensor = Pipeline::from(source::iter(vec![("s1", 10i64, 20.5f64)]))
    ///     .event_time(|r: &(&'static str, i64, f64)| Timestamp::from_secs(r.1), Duration::from_secs(5))
    ///     .key_by(|r: &(&'static str, i64, f64)| r.0)
    ///     .window(Window::tumbling(Duration::from_secs(60)))
    ///     .aggregate(agg::mean(|r: &(&'static str, i64, f64)| r.2));
    /// # drop(per_sensor);
    /// ```
    pub fn key_by<KF>(self, key: KF) -> KeyBy<S, C, KF, EventClock<TF>>
    where
        KF: KeyOf<C::Out>,
    {
        KeyBy {
            pipeline: self.pipeline,
            key,
            limits: StateLimits::default(),
            time: self.clock,
        }
    }
}

impl<S, C, TF> fmt::Debug for EventTime<S, C, TF> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventTime")
            .field("pipeline", &self.pipeline)
            .field("clock", &self.clock)
            .finish()
    }
}
