//! Stage counters through the `metrics` facade (feature `metrics`).

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{StageMetrics, Stages};

/// A counter and the stage statistic it shows.
type CounterOf = (metrics::Counter, fn(&crate::StageStats) -> u64);
/// A gauge and the stage statistic it shows.
type GaugeOf = (metrics::Gauge, fn(&crate::StageStats) -> f64);

/// One stage's handles, registered once when the run starts.
struct Handles {
    stage: Arc<StageMetrics>,
    counters: [CounterOf; 9],
    gauges: [GaugeOf; 5],
}

/// Publishes every stage's counters (`dataflare_stage_*{stage, kind}`) every
/// `every` until dropped, and once more when [`flush`](Exporter::flush) is
/// called at the end of the run: the per-batch path is never touched.
pub(crate) struct Exporter {
    handles: Vec<Handles>,
    started: tokio::time::Instant,
    /// The run's byte budget, for `dataflare_in_flight_bytes` and its peak.
    budget: Option<Arc<crate::runtime::Budget>>,
}

impl Exporter {
    pub(crate) fn new(stages: &Stages, budget: Option<Arc<crate::runtime::Budget>>) -> Exporter {
        let handles = stages
            .list()
            .into_iter()
            .map(|stage| {
                let labels = [("stage", stage.name()), ("kind", stage.kind().to_string())];
                let counter = |name: &'static str| metrics::counter!(name, &labels);
                let gauge = |name: &'static str| metrics::gauge!(name, &labels);
                Handles {
                    counters: [
                        (counter("dataflare_stage_records_in"), |s| s.records_in),
                        (counter("dataflare_stage_records_out"), |s| s.records_out),
                        (counter("dataflare_stage_filtered"), |s| s.filtered),
                        (counter("dataflare_stage_skipped"), |s| s.skipped),
                        (counter("dataflare_stage_dead_lettered"), |s| {
                            s.dead_lettered
                        }),
                        (counter("dataflare_stage_abandoned"), |s| s.abandoned),
                        (counter("dataflare_stage_absorbed"), |s| s.absorbed),
                        (counter("dataflare_stage_late"), |s| s.late),
                        (counter("dataflare_stage_bytes_in"), |s| s.bytes_in),
                    ],
                    gauges: [
                        (gauge("dataflare_stage_busy_seconds"), |s| {
                            s.busy.as_secs_f64()
                        }),
                        (gauge("dataflare_stage_waiting_seconds"), |s| {
                            s.waiting.as_secs_f64()
                        }),
                        (gauge("dataflare_stage_blocked_seconds"), |s| {
                            s.blocked.as_secs_f64()
                        }),
                        (gauge("dataflare_stage_state_keys"), |s| s.state_keys as f64),
                        (gauge("dataflare_stage_queue_depth"), |s| {
                            s.queue_depth as f64
                        }),
                    ],
                    stage,
                }
            })
            .collect();
        Exporter {
            handles,
            started: tokio::time::Instant::now(),
            budget,
        }
    }

    /// Sets every handle to its stage's value now.
    pub(crate) fn flush(&self) {
        for h in &self.handles {
            let stats = h.stage.snapshot();
            for (counter, of) in &h.counters {
                counter.absolute(of(&stats));
            }
            for (gauge, of) in &h.gauges {
                gauge.set(of(&stats));
            }
        }
        metrics::gauge!("dataflare_run_elapsed_seconds").set(self.started.elapsed().as_secs_f64());
        if let Some(budget) = &self.budget {
            metrics::gauge!("dataflare_in_flight_bytes").set(budget.in_flight() as f64);
            metrics::gauge!("dataflare_in_flight_peak_bytes").set(budget.peak() as f64);
            metrics::gauge!("dataflare_in_flight_max_bytes").set(budget.max() as f64);
        }
    }

    /// Flushes every `every`, forever (dropped with the run).
    pub(crate) async fn run(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}
