//! Operators' end-of-input and timer hooks (`BatchOp::finish`,
//! `next_timer`/`on_timer`) and stream adapters of the user's own (`through`).

use std::time::Duration;

use dataflare::ops::BatchOp;
use dataflare::prelude::*;
use futures::StreamExt;
use tokio::time::Instant;

/// Counts records per batch window of `every` and at the end.
struct CountEvery {
    every: Duration,
    count: u64,
    due: Option<Instant>,
    finished: bool,
}

impl CountEvery {
    fn new(every: Duration) -> Self {
        CountEvery {
            every,
            count: 0,
            due: None,
            finished: false,
        }
    }
}

impl BatchOp<u64> for CountEvery {
    type Out = (&'static str, u64);

    fn apply(&mut self, records: Vec<u64>) -> dataflare::Result<Vec<Self::Out>> {
        self.count += records.len() as u64;
        let every = self.every;
        self.due.get_or_insert_with(|| Instant::now() + every);
        Ok(Vec::new())
    }

    fn next_timer(&self) -> Option<Instant> {
        self.due
    }

    fn on_timer(&mut self, _now: Instant) -> dataflare::Result<Vec<Self::Out>> {
        self.due = None;
        Ok(vec![("timer", std::mem::take(&mut self.count))])
    }

    fn finish(&mut self) -> dataflare::Result<Vec<Self::Out>> {
        assert!(!self.finished, "finish is called once");
        self.finished = true;
        Ok(vec![("end", self.count)])
    }
}

#[tokio::test(start_paused = true)]
async fn a_timer_fires_while_the_source_is_idle_and_finish_flushes_the_rest() {
    // Two records, a pause of 5 s, one more record, then the end.
    let source = futures::stream::iter(vec![Ok(Batch::new(vec![1u64, 2]))]).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(Batch::new(vec![3u64]))
        }),
    );
    let out = Collected::new();
    let report = Pipeline::from(source)
        .transform(CountEvery::new(Duration::from_secs(1)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    // The first window closed on its timer while the source was silent; the
    // last record came out at the end of input.
    assert_eq!(out.to_vec(), vec![("timer", 2), ("end", 1)]);
    let stage = report.stage("transform#1").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (3, 2));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn finish_is_not_called_when_the_run_fails() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(vec![1u64, 2, 0]).batch_size(1))
        .map(|n| 10 / n)
        .transform(CountEvery::new(Duration::from_secs(3600)))
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert!(
        out.is_empty(),
        "an op's last records went out of a failed run"
    );
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn finish_runs_after_a_take_is_satisfied() {
    /// Emits its records reversed, at the end.
    struct Reverse(Vec<u64>);
    impl BatchOp<u64> for Reverse {
        type Out = u64;
        fn apply(&mut self, records: Vec<u64>) -> dataflare::Result<Vec<u64>> {
            self.0.extend(records);
            Ok(Vec::new())
        }
        fn finish(&mut self) -> dataflare::Result<Vec<u64>> {
            Ok(self.0.drain(..).rev().collect())
        }
    }
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0u64..).batch_size(3))
        .take(5)
        .transform(Reverse(Vec::new()))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), vec![4, 3, 2, 1, 0]);
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn through_runs_a_users_adapter_as_a_named_counted_stage() {
    let out = Collected::new();
    let report = Pipeline::from(source::iter(0..100u64).batch_size(10))
        .through(|batches| {
            // Merge pairs of batches: 10 batches in, 5 out, no record lost.
            batches.chunks(2).map(|pair| {
                let records: Vec<u64> = pair
                    .into_iter()
                    .map(|b| b.map(Batch::into_records))
                    .collect::<dataflare::Result<Vec<_>>>()?
                    .concat();
                Ok(Batch::new(records))
            })
        })
        .name("pairs")
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(out.to_vec(), (0..100).collect::<Vec<_>>());
    let stage = report.stage("pairs").unwrap();
    assert_eq!((stage.records_in, stage.records_out), (100, 100));
    assert_eq!((stage.batches_in, stage.batches_out), (10, 5));
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn a_panic_in_a_users_adapter_fails_the_run_naming_its_stage() {
    let report = Pipeline::from(source::iter(0..10u64).batch_size(2))
        .through(|batches| {
            batches.map(|b| {
                let b = b?;
                assert!(!b.contains(&6), "six!");
                Ok(b)
            })
        })
        .to(sink::discard())
        .run_to_report()
        .await;
    let error = report.error().expect("the run fails");
    assert_eq!(error.stage(), Some("through#1"));
    assert!(error.to_string().contains("six!"), "{error}");
    report.check_accounting().unwrap();
}

#[tokio::test]
async fn what_a_users_adapter_holds_when_the_run_stops_counts_as_abandoned() {
    let report = Pipeline::from(source::iter(0u64..).batch_size(10))
        // Holds records back: one batch out per three in.
        .through(|batches| batches.chunks(3).map(|mut three| three.pop().unwrap()))
        .take(25)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    let stage = report.stage("through#1").unwrap();
    assert!(stage.abandoned > 0 || stage.filtered > 0, "{stage:?}");
    report.check_accounting().unwrap();
}
