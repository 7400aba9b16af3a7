//! Windows: what [`KeyBy::window`](super::KeyBy::window) takes — tumbling,
//! sliding and session windows by event or processing time, and count
//! windows — and [`Windowed`], a window's result.

use std::fmt;
use std::time::Duration;

use super::EventClock;
use super::watermark::ProcessingClock;
use crate::record::Timestamp;

pub(super) mod sealed {
    pub trait Sealed {}
}

/// Fixed windows by time: tumbling ([`Window::tumbling`]) or sliding
/// ([`Window::sliding`]); the constructors of the other kinds are here too
/// ([`Window::session`], [`Window::count`]).
///
/// Windows are by event time (after
/// [`Pipeline::event_time`](crate::Pipeline::event_time)), or by processing
/// time with [`processing_time`](Window::processing_time). They are aligned
/// on the Unix epoch: a window of an hour starts on the hour (UTC). A
/// window `[start, end)` holds the records with `start <= time < end`.
///
/// ```
/// use dataflare::state::Window;
/// use std::time::Duration;
///
/// let hourly = Window::tumbling(Duration::from_secs(3600));
/// let last_hour_every_5_min = Window::sliding(Duration::from_secs(3600), Duration::from_secs(300));
/// assert_eq!(hourly.slide(), hourly.size());
/// assert_eq!(last_hour_every_5_min.slide(), Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Size and slide, in microseconds (> 0, slide <= size).
    size: i64,
    slide: i64,
}

impl Window {
    /// Windows of `size`, one after the other: each record is in one.
    ///
    /// # Panics
    ///
    /// If `size` is less than a microsecond.
    #[track_caller]
    pub fn tumbling(size: Duration) -> Window {
        let size = micros("Window::tumbling: the size", size);
        Window { size, slide: size }
    }

    /// Windows of `size` starting every `slide`: each record is in
    /// `size / slide` of them (rounded up), and is still counted once as
    /// `absorbed`. Each of those windows takes the record into its
    /// accumulator: keep `size / slide` moderate.
    ///
    /// # Panics
    ///
    /// If `size` or `slide` is less than a microsecond, or `slide` is longer
    /// than `size` (records between windows would be in none).
    #[track_caller]
    pub fn sliding(size: Duration, slide: Duration) -> Window {
        let size = micros("Window::sliding: the size", size);
        let slide = micros("Window::sliding: the slide", slide);
        assert!(
            slide <= size,
            "Window::sliding: the slide ({slide} µs) is longer than the size ({size} µs), so \
             records between windows would be in none"
        );
        Window { size, slide }
    }

    /// Session windows: a key's records less than `gap` apart (by their
    /// time) are one session, `[first, last + gap)`; a silence of `gap` or
    /// more starts a new one. A record that bridges two sessions merges
    /// them, and their aggregates: sessions take aggregates that can merge
    /// ([`Merge`](super::agg::Merge)), so no [`fold`](super::WindowBy::fold).
    ///
    /// # Panics
    ///
    /// If `gap` is less than a microsecond.
    ///
    /// ```
    /// use dataflare::state::Window;
    /// use std::time::Duration;
    ///
    /// let visits = Window::session(Duration::from_secs(30 * 60));
    /// assert_eq!(visits.gap(), Duration::from_secs(1800));
    /// ```
    ///
    /// A fold cannot merge, so it does not compile over sessions:
    ///
    /// ```compile_fail
    /// use dataflare::prelude::*;
    /// use dataflare::record::Timestamp;
    /// use dataflare::state::Window;
    /// use std::time::Duration;
    ///
    /// let pipeline = Pipeline::from(source::iter(0..3i64))
    ///     .event_time(|n: &i64| Timestamp::from_secs(*n), Duration::ZERO)
    ///     .key_by(|n: &i64| n % 2)
    ///     .window(Window::session(Duration::from_secs(60)))
    ///     .fold(0, |sum: &mut i64, n: &i64| *sum += n); // Fold is not Merge
    /// ```
    #[track_caller]
    pub fn session(gap: Duration) -> SessionWindow {
        SessionWindow {
            gap: micros("Window::session: the gap", gap),
        }
    }

    /// Count windows: each key's records `n` at a time, emitted as soon as
    /// the `n`-th comes; at the end of the input, each key's last,
    /// partial, window. They need no time (no
    /// [`event_time`](crate::Pipeline::event_time)) and emit `(key, result)`
    /// pairs, as [`KeyBy::aggregate`](super::KeyBy::aggregate) does.
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::state::{Window, agg};
    ///
    /// let out = Collected::new();
    /// Pipeline::from(source::iter(1..=7u32))
    ///     .key_by(|n: &u32| n % 2)
    ///     .window(Window::count(2))
    ///     .aggregate(agg::sum(|n: &u32| *n))
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// // 1 + 3 and 2 + 4 as they fill, 5 + 7 and 6, then the partial one left.
    /// assert_eq!(out.to_vec(), vec![(1, 4), (0, 6), (1, 12), (0, 6)]);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn count(n: u64) -> CountWindow {
        assert!(n > 0, "Window::count: a window holds one record at least");
        CountWindow { n }
    }

    /// The same windows by processing time: a record's time is when the
    /// stage takes it (Tokio's clock, as UTC), windows close on the stage's
    /// timer when their end comes, and no record is late. For unbounded
    /// streams with no event time; needs no
    /// [`event_time`](crate::Pipeline::event_time).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::prelude::*;
    /// use dataflare::state::{Window, agg};
    /// use std::time::Duration;
    ///
    /// let (tx, rx) = tokio::sync::mpsc::channel(16);
    /// let out = Collected::new();
    /// let run = tokio::spawn(
    ///     Pipeline::from(source::channel(rx))
    ///         .key_by(|level: &&'static str| *level)
    ///         .window(Window::tumbling(Duration::from_secs(60)).processing_time())
    ///         .aggregate(agg::count())
    ///         .to(sink::collect(&out))
    ///         .run(),
    /// );
    /// for level in ["warn", "error", "warn"] {
    ///     tx.send(level).await.unwrap();
    /// }
    /// // Within a minute their window ends, and the stage's timer emits it.
    /// tokio::time::sleep(Duration::from_secs(60)).await;
    /// let counts: Vec<_> = out.to_vec().into_iter().map(|w| (w.key, w.value)).collect();
    /// assert_eq!(counts, vec![("warn", 2), ("error", 1)]);
    /// drop(tx);
    /// run.await.unwrap()?;
    /// # Ok(()) }
    /// ```
    pub fn processing_time(self) -> ProcessingTime<Window> {
        ProcessingTime(self)
    }

    /// How long a window lasts.
    pub fn size(&self) -> Duration {
        Duration::from_micros(self.size as u64)
    }

    /// How far apart windows start (the size, for tumbling windows).
    pub fn slide(&self) -> Duration {
        Duration::from_micros(self.slide as u64)
    }

    /// The starts (descending) of the windows holding `ts`.
    pub(super) fn starts(&self, ts: Timestamp) -> impl Iterator<Item = Timestamp> {
        let (t, size, slide) = (ts.micros() as i128, self.size as i128, self.slide as i128);
        let last = t.div_euclid(slide) * slide;
        let mut previous = None;
        (0..)
            .map(move |i| last - i * slide)
            .take_while(move |start| start + size > t)
            .map(|start| Timestamp::from_micros(start.max(i64::MIN as i128) as i64))
            // Near the beginning of time, starts clamp to one.
            .filter(move |start| previous.replace(*start) != Some(*start))
    }

    /// The end of the window starting at `start`.
    pub(super) fn end(&self, start: Timestamp) -> Timestamp {
        Timestamp::from_micros(start.micros().saturating_add(self.size))
    }
}

/// Session windows, made by [`Window::session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindow {
    gap: i64,
}

impl SessionWindow {
    /// The same sessions by processing time: a key's session ends after
    /// `gap` without a record, on the stage's timer. See
    /// [`Window::processing_time`].
    ///
    /// ```
    /// use dataflare::state::Window;
    /// use std::time::Duration;
    ///
    /// let bursts = Window::session(Duration::from_secs(5)).processing_time();
    /// # drop(bursts);
    /// ```
    pub fn processing_time(self) -> ProcessingTime<SessionWindow> {
        ProcessingTime(self)
    }

    /// The silence that ends a session.
    pub fn gap(&self) -> Duration {
        Duration::from_micros(self.gap as u64)
    }

    /// The session a record at `ts` makes alone.
    pub(super) fn around(&self, ts: Timestamp) -> (Timestamp, Timestamp) {
        (
            ts,
            Timestamp::from_micros(ts.micros().saturating_add(self.gap)),
        )
    }
}

/// Count windows, made by [`Window::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountWindow {
    n: u64,
}

impl CountWindow {
    /// The records in a full window.
    ///
    /// ```
    /// assert_eq!(dataflare::state::Window::count(100).len(), 100);
    /// ```
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Never: a window holds one record at least.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Windows by processing time, made by [`Window::processing_time`] and
/// [`SessionWindow::processing_time`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingTime<W>(W);

/// The result of one window of one key: what a windowed
/// [`aggregate`](super::WindowBy::aggregate), [`fold`](super::WindowBy::fold)
/// or [`reduce`](super::WindowBy::reduce) emits for each.
///
/// Windows are emitted when the watermark passes their end (and all those
/// left at the end of the input), in order of their end; windows that end
/// together, in the order their first records came.
///
/// ```
/// use dataflare::record::Timestamp;
/// use dataflare::state::Windowed;
///
/// let hour = Windowed { key: "books", start: Timestamp::from_secs(0), end: Timestamp::from_secs(3600), value: 12u64 };
/// assert_eq!(hour.end.to_string(), "1970-01-01T01:00:00Z");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Windowed<K, V> {
    /// The key.
    pub key: K,
    /// The window's start (inclusive).
    pub start: Timestamp,
    /// The window's end (exclusive).
    pub end: Timestamp,
    /// The aggregate of the key's records in the window.
    pub value: V,
}

/// A window and the clock it runs by: what a windowed stage is planned from
/// (see [`WindowOf`]).
pub struct Timed<Clk, W> {
    pub(super) clock: Clk,
    pub(super) window: W,
}

impl<Clk: fmt::Debug, W: fmt::Debug> fmt::Debug for Timed<Clk, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timed")
            .field("clock", &self.clock)
            .field("window", &self.window)
            .finish()
    }
}

/// The windows [`KeyBy::window`](super::KeyBy::window) takes, given the
/// pipeline's clock `E`: event-time windows ([`Window`], [`SessionWindow`])
/// after [`event_time`](crate::Pipeline::event_time); processing-time
/// windows ([`ProcessingTime`]) and count windows ([`CountWindow`]) without.
/// Sealed.
///
/// So a window that does not fit the clock does not compile:
///
/// ```compile_fail
/// use dataflare::prelude::*;
/// use dataflare::state::{Window, agg};
/// use std::time::Duration;
///
/// // By event time, but the records have none: "`Window` is no window for
/// // this keyed pipeline (its clock: `()`)".
/// let pipeline = Pipeline::from(source::iter(0..3u32))
///     .key_by(|n: &u32| n % 2)
///     .window(Window::tumbling(Duration::from_secs(60)))
///     .aggregate(agg::count());
/// ```
///
/// By processing time, it does:
///
/// ```
/// use dataflare::prelude::*;
/// use dataflare::state::{Window, agg};
/// use std::time::Duration;
///
/// let pipeline = Pipeline::from(source::iter(0..3u32))
///     .key_by(|n: &u32| n % 2)
///     .window(Window::tumbling(Duration::from_secs(60)).processing_time())
///     .aggregate(agg::count());
/// # drop(pipeline);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is no window for this keyed pipeline (its clock: `{E}`)",
    label = "not a window for this clock",
    note = "event-time windows (Window::tumbling, sliding, session) need `.event_time(..)` \
            before `key_by`; processing-time windows (`.processing_time()`) and count windows \
            (`Window::count`) take no event time"
)]
pub trait WindowOf<E>: sealed::Sealed {
    /// The window with its clock.
    type Plan;

    /// Puts the window on the clock.
    #[doc(hidden)]
    fn plan(self, clock: E) -> Self::Plan;
}

impl sealed::Sealed for Window {}
impl sealed::Sealed for SessionWindow {}
impl sealed::Sealed for CountWindow {}
impl<W> sealed::Sealed for ProcessingTime<W> {}

impl<TF> WindowOf<EventClock<TF>> for Window {
    type Plan = Timed<EventClock<TF>, Window>;

    fn plan(self, clock: EventClock<TF>) -> Self::Plan {
        Timed {
            clock,
            window: self,
        }
    }
}

impl<TF> WindowOf<EventClock<TF>> for SessionWindow {
    type Plan = Timed<EventClock<TF>, SessionWindow>;

    fn plan(self, clock: EventClock<TF>) -> Self::Plan {
        Timed {
            clock,
            window: self,
        }
    }
}

impl<W> WindowOf<()> for ProcessingTime<W> {
    type Plan = Timed<ProcessingClock, W>;

    fn plan(self, (): ()) -> Self::Plan {
        Timed {
            clock: ProcessingClock::default(),
            window: self.0,
        }
    }
}

impl WindowOf<()> for CountWindow {
    type Plan = CountWindow;

    fn plan(self, (): ()) -> Self::Plan {
        self
    }
}

/// `d` in whole microseconds, at least one.
#[track_caller]
fn micros(what: &str, d: Duration) -> i64 {
    let micros = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    assert!(micros > 0, "{what} must be a microsecond at least");
    micros
}
