//! `par_map`, `par_map_unordered` and `par_map_keyed`: the same records as a
//! sequential `map` (in order, as a multiset, in order per key), work off
//! the runtime's threads, bounded memory behind a slow sink, panics and
//! upstream errors that fail the run naming the stage, and runs that end
//! early (cancelled, dropped, a `take` satisfied) with their workers gone.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataflare::prelude::*;
use dataflare::testkit::{Script, probe};
use proptest::prelude::*;
use support::{runtime, sizes, yielding_sink};

/// Uneven CPU work per record: a non-crypto hash iterated `x % 37` times.
fn work(x: u32) -> u64 {
    (0..x % 37).fold(u64::from(x), |h, i| {
        (h ^ u64::from(i))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(17)
    })
}

/// Batch sizes of `records` records split by `batch`.
fn batches_of(records: usize, batch: usize) -> Vec<usize> {
    (0..records.div_ceil(batch))
        .map(|i| batch.min(records - i * batch))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Ordered,
    Unordered,
    Keyed,
}

const KINDS: [Kind; 3] = [Kind::Ordered, Kind::Unordered, Kind::Keyed];

/// `records` through the parallel stage of `kind` with `n` workers, `f` on
/// each, into `sink`; keyed by `x % 7`.
async fn run_kind<F, K>(
    kind: Kind,
    source: impl Source<Record = u32>,
    n: usize,
    f: F,
    sink: K,
) -> Report
where
    F: Fn(u32) -> u64 + Send + Sync + Clone + 'static,
    K: futures::Sink<Batch<u64>, Error = Error> + Send + 'static,
{
    let p = Pipeline::from(source);
    match kind {
        Kind::Ordered => p.par_map(n, f).to(sink).run_to_report().await,
        Kind::Unordered => p.par_map_unordered(n, f).to(sink).run_to_report().await,
        Kind::Keyed => {
            p.par_map_keyed(n, |x: &u32| x % 7, f)
                .to(sink)
                .run_to_report()
                .await
        }
    }
}

fn stage_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Ordered => "par_map#1",
        Kind::Unordered => "par_map_unordered#1",
        Kind::Keyed => "par_map_keyed#1",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Ordered `par_map` gives exactly what a sequential `map` gives, in
    /// batches of the input's sizes, every stage balanced.
    #[test]
    fn par_map_equals_sequential_map(
        input in prop::collection::vec(any::<u32>(), 0..600),
        batch in 1..80usize,
        n in 1..5usize,
    ) {
        let (sink, probe) = probe();
        let report = runtime().block_on(
            Pipeline::from(source::iter(input.clone()).batch_size(batch))
                .par_map(n, work)
                .to(sink)
                .run(),
        ).unwrap();
        let expected: Vec<u64> = input.iter().copied().map(work).collect();
        prop_assert_eq!(probe.records(), expected);
        prop_assert_eq!(sizes(&probe), batches_of(input.len(), batch));
        let stage = report.stage("par_map#1").unwrap();
        prop_assert_eq!((stage.records_in, stage.records_out), (input.len() as u64, input.len() as u64));
        prop_assert_eq!(report.check_accounting(), Ok(()));
    }

    /// Unordered: the same records as a multiset.
    #[test]
    fn par_map_unordered_gives_the_same_multiset(
        input in prop::collection::vec(any::<u32>(), 0..600),
        batch in 1..200usize,
        n in 1..5usize,
    ) {
        let out = Collected::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(input.clone()).batch_size(batch))
                .par_map_unordered(n, work)
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let mut got = out.to_vec();
        got.sort_unstable();
        let mut expected: Vec<u64> = input.iter().copied().map(work).collect();
        expected.sort_unstable();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(report.check_accounting(), Ok(()));
    }

    /// Keyed lanes: each key's records come out in input order, every record
    /// once, and every record of a key meets the same copy of the closure
    /// (its count of the key's records so far is right).
    #[test]
    fn par_map_keyed_keeps_each_keys_order(
        keys in prop::collection::vec(0..12u8, 0..600),
        batch in 1..100usize,
        n in 1..6usize,
    ) {
        let input: Vec<(u8, usize)> = keys.iter().copied().zip(0..).collect();
        let out = Collected::new();
        let mut seen: HashMap<u8, usize> = HashMap::new();
        let report = runtime().block_on(
            Pipeline::from(source::iter(input.clone()).batch_size(batch))
                .par_map_keyed(n, |(key, _): &(u8, usize)| *key, move |(key, i): (u8, usize)| {
                    let count = seen.entry(key).or_default();
                    *count += 1;
                    (key, i, *count, work(i as u32))
                })
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let got = out.to_vec();
        prop_assert_eq!(got.len(), input.len());
        for key in 0..12u8 {
            let of_key: Vec<(usize, usize)> =
                got.iter().filter(|r| r.0 == key).map(|r| (r.1, r.2)).collect();
            let expected: Vec<(usize, usize)> = input
                .iter()
                .filter(|r| r.0 == key)
                .zip(1..)
                .map(|(r, count)| (r.1, count))
                .collect();
            prop_assert_eq!(of_key, expected, "key {}", key);
        }
        prop_assert!(got.iter().all(|r| r.3 == work(r.1 as u32)));
        prop_assert_eq!(report.check_accounting(), Ok(()));
    }
}

/// Waits (spinning, up to a deadline that fails the test) until `count`
/// reaches `at_least`.
fn wait_for(count: &AtomicUsize, at_least: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count.load(SeqCst) < at_least {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Two records are worked on at the same time, neither on the runtime's own
/// thread (a current-thread runtime: the test's thread is its only one).
#[tokio::test(flavor = "current_thread")]
async fn workers_run_at_once_off_the_runtime_thread() {
    let runtime_thread = std::thread::current().id();
    for kind in KINDS {
        let arrived = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (a, t) = (arrived.clone(), threads.clone());
        let f = move |x: u32| {
            t.lock().unwrap().push(std::thread::current().id());
            if x < 2 {
                // Both first records must be in hand at once to go on.
                a.fetch_add(1, SeqCst);
                wait_for(&a, 2, "a second worker");
            }
            u64::from(x)
        };
        let source = source::iter(vec![0u32, 1, 2, 3, 4, 5, 6, 7]).batch_size(1);
        let out = Collected::new();
        let p = Pipeline::from(source);
        let report = match kind {
            Kind::Ordered => p.par_map(2, f).to(sink::collect(&out)).run().await,
            Kind::Unordered => {
                p.par_map_unordered(2, f)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
            // 0 and 1 go to different lanes of 2 (checked by the test passing).
            Kind::Keyed => {
                p.par_map_keyed(2, |x: &u32| *x, f)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
        }
        .unwrap();
        let mut got = out.to_vec();
        got.sort_unstable();
        assert_eq!(got, (0..8).collect::<Vec<u64>>(), "{kind:?}");
        let threads = threads.lock().unwrap().clone();
        assert!(
            !threads.contains(&runtime_thread),
            "{kind:?}: work on the runtime's thread"
        );
        assert_eq!(report.check_accounting(), Ok(()));
    }
}

/// A source that counts the batches taken from it.
fn counted_source(
    batches: usize,
    per_batch: u32,
    pulled: Arc<AtomicUsize>,
) -> impl Source<Record = u32> {
    futures::stream::iter((0..batches as u32).map(move |b| {
        pulled.fetch_add(1, SeqCst);
        Ok(Batch::new(
            (0..per_batch).map(|i| b * per_batch + i).collect(),
        ))
    }))
}

/// Behind a sink slower than the source, the stage holds at most 2 units per
/// worker: the source is read only as fast as the sink writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_bounds_what_is_read_ahead() {
    const N: usize = 3;
    const BATCHES: usize = 200;
    for kind in KINDS {
        let pulled = Arc::new(AtomicUsize::new(0));
        let ahead = Arc::new(AtomicUsize::new(0));
        let (sink, received) = yielding_sink::<u64>(20);
        // Checked at every batch written: how far the source is ahead.
        let (p, a, r) = (pulled.clone(), ahead.clone(), received.clone());
        let f = move |x: u32| {
            let written_batches = r.load(SeqCst) / 10;
            a.fetch_max(p.load(SeqCst).saturating_sub(written_batches), SeqCst);
            u64::from(x)
        };
        let source = counted_source(BATCHES, 10, pulled.clone());
        let report = run_kind(kind, source, N, f, sink).await;
        assert!(report.is_completed(), "{kind:?}: {:?}", report.error());
        assert_eq!(received.load(SeqCst), BATCHES * 10);
        // 2 units per worker in the stage (and a batch being put back
        // together), one batch waiting at the sink, one counted in part;
        // without backpressure the source would run ahead by all 200.
        let bound = 2 * N + 3;
        let max = ahead.load(SeqCst);
        assert!(
            max <= bound,
            "{kind:?}: {max} batches read ahead of the sink (bound {bound})"
        );
        assert_eq!(report.check_accounting(), Ok(()));
    }
}

/// A panic in the closure fails the run with an error naming the stage, in
/// every variant, and every record is accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_closure_fails_the_run_naming_the_stage() {
    for kind in KINDS {
        let f = |x: u32| {
            if x == 1234 {
                panic!("boom at {x}");
            }
            work(x)
        };
        let source = source::iter(0..5000u32).batch_size(100);
        let report = run_kind(kind, source, 2, f, sink::discard()).await;
        let error = report
            .error()
            .unwrap_or_else(|| panic!("{kind:?}: the run did not fail"));
        let text = error.to_string();
        assert!(text.contains(stage_name(kind)), "{kind:?}: {text}");
        assert!(text.contains("boom at 1234"), "{kind:?}: {text}");
        assert_eq!(report.check_accounting(), Ok(()), "{kind:?}");
        assert!(
            report.stage(stage_name(kind)).unwrap().abandoned > 0,
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_key_fails_the_run_naming_the_stage() {
    let report = Pipeline::from(source::iter(0..1000u32).batch_size(10))
        .par_map_keyed(
            3,
            |x: &u32| {
                assert!(*x != 500, "no key for {x}");
                *x
            },
            |x| x + 1,
        )
        .name("lanes")
        .to(sink::discard())
        .run_to_report()
        .await;
    let text = report.error().expect("the run fails").to_string();
    assert!(
        text.contains("lanes") && text.contains("no key for 500"),
        "{text}"
    );
    assert_eq!(report.check_accounting(), Ok(()));
}

/// An upstream error ends the run with that error; what was in flight is
/// abandoned and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_error_ends_the_run() {
    for kind in KINDS {
        let source = Script::new()
            .batch((0..100).collect())
            .batch((100..200).collect())
            .error(Error::msg("the disk is gone"))
            .batch((200..300).collect())
            .into_source();
        let report = run_kind(kind, source, 2, work, sink::discard()).await;
        let text = report.error().expect("the run fails").to_string();
        assert!(text.contains("the disk is gone"), "{kind:?}: {text}");
        assert_eq!(report.check_accounting(), Ok(()), "{kind:?}");
    }
}

/// Empty input and empty batches: nothing goes out, the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_input_and_empty_batches_complete() {
    for kind in KINDS {
        let source = Script::new()
            .batch(vec![])
            .batch(vec![7])
            .batch(vec![])
            .into_source();
        let (sink, probe) = probe();
        let report = run_kind(kind, source, 2, |x| u64::from(x) * 2, sink).await;
        assert!(report.is_completed(), "{kind:?}");
        assert_eq!(probe.records(), vec![14], "{kind:?}");
        let report = run_kind(
            kind,
            source::iter(Vec::<u32>::new()),
            2,
            work,
            sink::discard(),
        )
        .await;
        assert!(report.is_completed(), "{kind:?}");
        assert_eq!(report.records_out(), 0);
    }
}

/// A gate workers wait at, opened when the source is dropped: the stage
/// that owns the source is being dropped then, and has already told its
/// workers nobody waits for their work any more.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, cv) = &*self.0;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

/// A source that opens its gate when dropped.
struct OpensOnDrop<S> {
    inner: S,
    gate: Gate,
}

impl<S: futures::Stream + Unpin> futures::Stream for OpensOnDrop<S> {
    type Item = S::Item;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        futures::StreamExt::poll_next_unpin(&mut self.inner, cx)
    }
}

impl<S> Drop for OpensOnDrop<S> {
    fn drop(&mut self) {
        self.gate.open();
    }
}

/// Sends on `tx` when dropped: with the last copy of a stage's closure, once
/// the stage and every worker have let go of it.
struct Dropped(Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl Drop for Dropped {
    fn drop(&mut self) {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }
}

/// A run of `kind` whose workers each block on their first record until the
/// stage is dropped: its handle, the closure's call count, and a receiver
/// told when the closure is dropped.
async fn busy_run(
    kind: Kind,
) -> (
    dataflare::RunHandle,
    Arc<AtomicUsize>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let gate = Gate::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (tx, dropped) = tokio::sync::oneshot::channel();
    let guard = Arc::new(Dropped(Mutex::new(Some(tx))));
    let (g, c) = (gate.clone(), calls.clone());
    let f = move |x: u32| {
        let _keep = &guard;
        c.fetch_add(1, SeqCst);
        g.wait();
        u64::from(x)
    };
    // Two big batches: the first split between the workers (between the
    // lanes, for the keyed stage).
    let source = OpensOnDrop {
        inner: Script::new()
            .batch((0..10_000).collect())
            .batch((10_000..20_000).collect())
            .into_source(),
        gate,
    };
    let p = Pipeline::from(source);
    let run = match kind {
        Kind::Ordered => p.par_map(2, f).to(sink::discard()).spawn(),
        Kind::Unordered => p.par_map_unordered(2, f).to(sink::discard()).spawn(),
        Kind::Keyed => p
            .par_map_keyed(2, |x: &u32| *x, f)
            .to(sink::discard())
            .spawn(),
    };
    let waiting = calls.clone();
    tokio::task::spawn_blocking(move || wait_for(&waiting, 2, "both workers busy"))
        .await
        .unwrap();
    (run, calls, dropped)
}

/// Cancelled while both workers are busy: each stops after the record in
/// hand, the run reports Cancelled, and by then every worker has left (the
/// closure was dropped): `run()` leaves no thread behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_workers_are_busy_stops_them() {
    for kind in KINDS {
        let (run, calls, mut dropped) = busy_run(kind).await;
        run.cancel();
        let report = tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| panic!("{kind:?}: the cancelled run did not end"));
        assert!(report.is_cancelled(), "{kind:?}: {:?}", report.status());
        // Each worker finished the record in hand and took no other.
        assert_eq!(calls.load(SeqCst), 2, "{kind:?}");
        assert!(
            dropped.try_recv().is_ok(),
            "{kind:?}: a worker still holds the closure"
        );
        assert_eq!(report.check_accounting(), Ok(()), "{kind:?}");
        assert_eq!(
            report.stage(stage_name(kind)).unwrap().abandoned,
            20_000,
            "{kind:?}"
        );
    }
}

/// Dropping the run while the workers are busy: each stops after the record
/// in hand and leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_while_workers_are_busy_stops_them() {
    for kind in KINDS {
        let (run, calls, dropped) = busy_run(kind).await;
        drop(run); // aborts the run
        tokio::time::timeout(Duration::from_secs(20), dropped)
            .await
            .unwrap_or_else(|_| panic!("{kind:?}: a worker still holds the closure"))
            .unwrap();
        assert_eq!(calls.load(SeqCst), 2, "{kind:?}");
    }
}

/// A `take` downstream ends the run early: the rest in flight is abandoned
/// and counted, and the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_downstream_ends_the_run_with_everything_counted() {
    for kind in KINDS {
        let out = Collected::new();
        let p = Pipeline::from(source::iter(0..).batch_size(64)); // endless
        let report = match kind {
            Kind::Ordered => {
                p.par_map(2, work)
                    .take(1000)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
            Kind::Unordered => {
                p.par_map_unordered(2, work)
                    .take(1000)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
            Kind::Keyed => {
                p.par_map_keyed(2, |x: &u32| x % 5, work)
                    .take(1000)
                    .to(sink::collect(&out))
                    .run()
                    .await
            }
        }
        .unwrap();
        assert_eq!(out.len(), 1000, "{kind:?}");
        if let Kind::Ordered = kind {
            assert_eq!(out.to_vec(), (0..1000).map(work).collect::<Vec<_>>());
        }
        assert_eq!(report.check_accounting(), Ok(()), "{kind:?}");
    }
}

#[test]
#[should_panic(expected = "par_map: the number of workers must be at least 1")]
fn par_map_with_no_workers_panics() {
    let _ = Pipeline::from(source::iter(0..3u32)).par_map(0, |x| x);
}

#[test]
#[should_panic(expected = "par_map_unordered: the number of workers must be at least 1")]
fn par_map_unordered_with_no_workers_panics() {
    let _ = Pipeline::from(source::iter(0..3u32)).par_map_unordered(0, |x| x);
}

#[test]
#[should_panic(expected = "par_map_keyed: the number of workers must be at least 1")]
fn par_map_keyed_with_no_workers_panics() {
    let _ = Pipeline::from(source::iter(0..3u32)).par_map_keyed(0, |x: &u32| *x, |x| x);
}

/// Under the run's byte budget, the records in a parallel stage keep their
/// batch's bytes leased until they go on: behind a slow sink, no more than
/// the budget holds is ever between the source and the sink, and every
/// byte is given back at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_records_in_a_parallel_stage_hold_their_share_of_the_budget() {
    const KB: usize = 1 << 10;
    const BUDGET: usize = 4 << 20;
    for kind in KINDS {
        // 256 KiB records, 4 to a batch: 16 fit in the budget; the stage
        // alone would hold up to 6 batches (24 records) without it.
        let rows = (0..400u32).map(|i| {
            let mut s = format!("{i:>8}");
            s.push_str(&"x".repeat(256 * KB - 8));
            s
        });
        let left = Arc::new(AtomicUsize::new(0));
        let (counter, seen) = (left.clone(), left.clone());
        let written = Arc::new(AtomicUsize::new(0));
        let done = written.clone();
        let max_between = Arc::new(AtomicUsize::new(0));
        let most = max_between.clone();
        let sink = sink::for_each_async(move |batch: Batch<String>| {
            let between = seen.load(SeqCst) - done.load(SeqCst);
            most.fetch_max(between, SeqCst);
            let done = done.clone();
            async move {
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
                done.fetch_add(batch.len(), SeqCst);
                Ok(())
            }
        });
        let p =
            Pipeline::from(source::iter(rows).batch_size(4).estimate_heap()).inspect(move |_| {
                counter.fetch_add(1, SeqCst);
            });
        let f = |s: String| s;
        let run = match kind {
            Kind::Ordered => {
                p.par_map(3, f)
                    .to(sink)
                    .max_in_flight_bytes(BUDGET)
                    .run()
                    .await
            }
            Kind::Unordered => {
                p.par_map_unordered(3, f)
                    .to(sink)
                    .max_in_flight_bytes(BUDGET)
                    .run()
                    .await
            }
            Kind::Keyed => {
                p.par_map_keyed(3, |s: &String| s[..8].to_string(), f)
                    .to(sink)
                    .max_in_flight_bytes(BUDGET)
                    .run()
                    .await
            }
        };
        let report = run.unwrap();
        assert_eq!(written.load(SeqCst), 400, "{kind:?}");
        let in_flight = report.in_flight().expect("the run had a budget");
        assert!(
            in_flight.peak_bytes <= BUDGET as u64,
            "{kind:?}: {in_flight:?}"
        );
        assert_eq!(
            in_flight.bytes, 0,
            "{kind:?}: every byte given back at the end"
        );
        let most = max_between.load(SeqCst);
        assert!(
            most <= 16,
            "{kind:?}: {most} records between the source and the sink"
        );
        assert_eq!(report.check_accounting(), Ok(()), "{kind:?}");
    }
}

/// Under paused time (tokio's `test-util`) the workers neither freeze the
/// clock (it advances as soon as their work is done) nor let it jump while
/// they work: a slow sink takes exactly its time, and a generous timeout
/// does not fire.
#[tokio::test(start_paused = true)]
async fn paused_time_advances_only_when_the_work_is_done() {
    for kind in KINDS {
        let (sink, probe) = dataflare::testkit::slow_sink(Duration::from_millis(10));
        let start = tokio::time::Instant::now();
        let run = run_kind(kind, source::iter(0..100u32).batch_size(10), 2, work, sink);
        let report = tokio::time::timeout(Duration::from_secs(3600), run)
            .await
            .unwrap_or_else(|_| panic!("{kind:?}: the clock jumped while the workers worked"));
        assert!(report.is_completed(), "{kind:?}");
        let mut got = probe.records();
        got.sort_unstable();
        let mut expected: Vec<u64> = (0..100).map(work).collect();
        expected.sort_unstable();
        assert_eq!(got, expected, "{kind:?}");
        // 10 ms a batch: 10 batches in order (the keyed stage's are parts).
        let batches = probe.batch_count() as u64;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(10 * batches),
            "{kind:?}"
        );
    }
}
