//! A panic in user code, in every kind of stage the builder offers, and in a
//! source and a sink: the run fails (it does not hang) with an error naming the
//! stage and saying it panicked, and every stage still balances (`records_in +
//! expanded == records_out + filtered + skipped + dead_lettered + abandoned`):
//! the panicking record and those in flight are abandoned, counted once.
//!
//! The input is 40 records in 8 batches of 5; user code panics on record 17,
//! in the middle of the fourth batch. Each case is one line of the table at
//! the end and its own test, so a failure names the adapter.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use dataflare::ops::{BatchOp, Metered};
use dataflare::prelude::*;
use futures::Stream;

/// The record user code panics on.
const BAD: u64 = 17;

type Input = Pipeline<Metered<source::Iter<std::ops::Range<u64>>>>;

fn input() -> Input {
    Pipeline::from(source::iter(0..40u64).batch_size(5))
}

/// User code that panics on [`BAD`].
fn boom(x: u64) -> u64 {
    if x == BAD {
        panic!("no {BAD}s");
    }
    x
}

/// An async closure's work: yields first, so several calls are in flight when
/// one panics.
async fn later(x: u64) -> u64 {
    tokio::task::yield_now().await;
    boom(x)
}

/// A user `BatchOp` whose code panics on a batch holding [`BAD`].
struct Doubler;

impl BatchOp<u64> for Doubler {
    type Out = u64;

    fn apply(&mut self, records: Vec<u64>) -> dataflare::Result<Vec<u64>> {
        Ok(records.into_iter().map(|x| boom(x) * 2).collect())
    }
}

/// A hand-written source that panics when it reaches [`BAD`].
struct PanickingSource {
    next: u64,
}

impl Stream for PanickingSource {
    type Item = dataflare::Result<Batch<u64>>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let first = self.next;
        if first >= 40 {
            return Poll::Ready(None);
        }
        self.next += 5;
        Poll::Ready(Some(Ok(Batch::new((first..first + 5).map(boom).collect()))))
    }
}

/// A sink whose code panics on a batch holding [`BAD`], when it takes it.
fn panicking_sink() -> impl futures::Sink<Batch<u64>, Error = Error> + Send + 'static {
    sink::for_each(|batch: Batch<u64>| {
        batch.iter().for_each(|x| {
            boom(*x);
        });
        Ok(())
    })
}

/// A sink whose write (a future, polled in `poll_ready` / `poll_flush` /
/// `poll_close`) panics on a batch holding [`BAD`].
fn panicking_async_sink() -> impl futures::Sink<Batch<u64>, Error = Error> + Send + 'static {
    futures::sink::unfold((), |(), batch: Batch<u64>| async move {
        tokio::task::yield_now().await;
        batch.iter().for_each(|x| {
            boom(*x);
        });
        Ok::<_, Error>(())
    })
}

/// Runs the pipeline and checks what every case promises.
async fn check(stage: &str, run: impl Future<Output = Report>) {
    let report = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run hung");
    assert!(report.is_failed(), "the run did not fail:\n{report}");
    let error = report.error().expect("a failed run has an error");
    assert!(error.is_panic(), "not a panic: {error}");
    assert_eq!(error.stage(), Some(stage), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(stage) && message.contains("panicked") && message.contains("no 17s"),
        "{message}"
    );
    if let Err(unbalanced) = report.check_accounting() {
        panic!("{unbalanced}\n{report}");
    }
}

/// `case!(name, "stage", |p| pipeline)`: a test running `pipeline` (built
/// from `p`, the 40-record input) on a current-thread runtime with paused
/// time; `case!(multi name, ...)` on a multi-thread runtime.
macro_rules! case {
    ($name:ident, $stage:literal, |$p:ident| $run:expr) => {
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let $p = input();
            check($stage, $run.run_to_report()).await;
        }
    };
    (multi $name:ident, $stage:literal, |$p:ident| $run:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let $p = input();
            check($stage, $run.run_to_report()).await;
        }
    };
}

// Per-record steps, fused into one pass per batch.
case!(map, "map#1", |p| p.map(boom).to(sink::discard()));
case!(map_fused_after_another_step, "map#2", |p| p
    .filter(|_| true)
    .map(boom)
    .to(sink::discard()));
case!(filter, "filter#1", |p| p
    .filter(|x| boom(*x).is_multiple_of(2))
    .to(sink::discard()));
case!(filter_map, "filter_map#1", |p| p
    .filter_map(|x| Some(boom(x)).filter(|x| x % 3 != 0))
    .to(sink::discard()));
case!(flat_map, "flat_map#1", |p| p
    .flat_map(|x| vec![boom(x); 2])
    .to(sink::discard()));
case!(flat_map_iterator, "flat_map#1", |p| p
    .flat_map(|x| (0..2).map(move |_| boom(x)))
    .to(sink::discard()));
case!(inspect, "inspect#1", |p| p
    .inspect(|x| {
        boom(*x);
    })
    .to(sink::discard()));

// Batch-level stages.
case!(map_batch, "map_batch#1", |p| p
    .map_batch(|records| records.into_iter().map(boom).collect())
    .to(sink::discard()));
case!(transform, "transform#1", |p| p
    .transform(Doubler)
    .to(sink::discard()));
case!(take_then_panic, "map#2", |p| p
    .take(30)
    .map(boom)
    .to(sink::discard()));
case!(panic_then_take, "map#1", |p| p
    .map(boom)
    .take(30)
    .to(sink::discard()));
case!(rebatch_then_panic, "map#2", |p| p
    .rebatch(3)
    .map(boom)
    .to(sink::discard()));
case!(panic_then_rebatch, "map#1", |p| p
    .map(boom)
    .rebatch(3)
    .to(sink::discard()));

// Async boundaries.
case!(buffer_then_panic, "map#2", |p| p
    .buffer(2)
    .map(boom)
    .to(sink::discard()));
case!(panic_then_buffer, "map#1", |p| p
    .map(boom)
    .buffer(2)
    .to(sink::discard()));
case!(multi buffer_then_panic_multi_thread, "map#2", |p| p
    .buffer(2)
    .map(boom)
    .to(sink::discard()));
case!(multi panic_then_buffer_multi_thread, "map#1", |p| p
    .map(boom)
    .buffer(2)
    .to(sink::discard()));
case!(map_async_future, "map_async#1", |p| p
    .map_async(3, later)
    .to(sink::discard()));
case!(map_async_closure, "map_async#1", |p| p
    .map_async(3, |x| {
        let x = boom(x);
        async move { x }
    })
    .to(sink::discard()));
case!(multi map_async_future_multi_thread, "map_async#1", |p| p
    .map_async(3, later)
    .to(sink::discard()));
case!(map_async_unordered_future, "map_async_unordered#1", |p| p
    .map_async_unordered(3, later)
    .to(sink::discard()));
case!(map_async_unordered_closure, "map_async_unordered#1", |p| p
    .map_async_unordered(3, |x| {
        let x = boom(x);
        async move { x }
    })
    .to(sink::discard()));
case!(multi map_async_unordered_future_multi_thread, "map_async_unordered#1", |p| p
    .map_async_unordered(3, later)
    .to(sink::discard()));

// Fallible stages: a panic is not a record error, whatever the policy.
case!(try_map, "try_map#1", |p| p
    .try_map(|x: &u64| Ok::<_, Error>(boom(*x)))
    .to(sink::discard()));
case!(try_map_under_skip, "try_map#1", |p| p
    .try_map(|x: &u64| match x % 4 {
        0 => Err(Error::msg("not this one")),
        _ => Ok(boom(*x)),
    })
    .on_error(ErrorPolicy::Skip)
    .to(sink::discard()));
case!(try_filter, "try_filter#1", |p| p
    .try_filter(|x: &u64| Ok::<_, Error>(boom(*x).is_multiple_of(2)))
    .to(sink::discard()));
case!(try_flat_map, "try_flat_map#1", |p| p
    .try_flat_map(|x: &u64| Ok::<_, Error>(vec![boom(*x); 2]))
    .to(sink::discard()));
case!(try_flat_map_iterator, "try_flat_map#1", |p| p
    .try_flat_map(|x: &u64| {
        let x = *x;
        Ok::<_, Error>((0..2).map(move |_| boom(x)))
    })
    .to(sink::discard()));
case!(try_map_async_future, "try_map_async#1", |p| p
    .try_map_async(3, |x: &u64| {
        let x = *x;
        async move { Ok::<_, Error>(later(x).await) }
    })
    .to(sink::discard()));
case!(try_map_async_closure, "try_map_async#1", |p| p
    .try_map_async(3, |x: &u64| {
        let x = boom(*x);
        async move { Ok::<_, Error>(x) }
    })
    .to(sink::discard()));
case!(
    try_map_async_while_others_back_off,
    "try_map_async#1",
    |p| p
        .try_map_async(3, |x: &u64| {
            let x = *x;
            async move {
                match x {
                    16 => Err(Error::msg("busy")),
                    _ => Ok(later(x).await),
                }
            }
        })
        .on_error(ErrorPolicy::retry(3))
        .to(sink::discard())
);
case!(multi try_map_async_future_multi_thread, "try_map_async#1", |p| p
    .try_map_async(3, |x: &u64| {
        let x = *x;
        async move { Ok::<_, Error>(later(x).await) }
    })
    .to(sink::discard()));

// Sources and sinks.
case!(source, "source", |_p| Pipeline::from(PanickingSource {
    next: 0
})
.to(sink::discard()));
case!(source_behind_a_buffer, "source", |_p| Pipeline::from(
    PanickingSource { next: 0 }
)
.map(|x| x + 1)
.buffer(2)
.to(sink::discard()));
case!(sink, "sink", |p| p.to(panicking_sink()));
case!(sink_behind_a_buffer, "sink", |p| p
    .buffer(2)
    .to(panicking_sink()));
case!(sink_future, "sink", |p| p.to(panicking_async_sink()));
case!(multi sink_future_multi_thread, "sink", |p| p
    .buffer(2)
    .to(panicking_async_sink()));
