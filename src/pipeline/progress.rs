//! A running run's progress: its phase, what it read and wrote, how far along
//! it is, and which stage holds it back.

use std::time::Duration;

use crate::metrics::StageStats;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Phase {
    /// Opening its sinks, before any source is read.
    #[default]
    Starting,
    /// Reading and moving data.
    Running,
    /// Paused by its handle: no source is polled.
    Paused,
    /// Stopped or cancelled: what is in flight drains (stopped) or is dropped
    /// (cancelled).
    Draining,
    /// Every branch drained: the sinks prepare and commit.
    Committing,
    /// Ended: completed (with or without put-aside records).
    Completed,
    /// Ended: cancelled, nothing committed.
    Cancelled,
    /// Ended: failed, no main output committed.
    Failed,
}

impl Phase {
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_code(code: u8) -> Phase {
        match code {
            0 => Phase::Starting,
            1 => Phase::Running,
            2 => Phase::Paused,
            3 => Phase::Draining,
            4 => Phase::Committing,
            5 => Phase::Completed,
            6 => Phase::Cancelled,
            _ => Phase::Failed,
        }
    }

    /// True once the run has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Completed | Phase::Cancelled | Phase::Failed)
    }
}

/// A snapshot of a run, from [`RunHandle::progress`](crate::RunHandle::progress):
/// published at the run's progress interval and at every phase change, read
/// whenever the subscriber likes (a slow subscriber sees the latest snapshot
/// and never slows the run). Serializes with serde under these field names.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Progress {
    /// Where the run is.
    pub phase: Phase,
    /// Time since the run started, pauses included.
    #[serde(rename = "elapsed_secs", serialize_with = "secs")]
    pub elapsed: Duration,
    /// Time spent paused.
    #[serde(rename = "paused_secs", serialize_with = "secs")]
    pub paused: Duration,
    /// Records the sources produced.
    pub records_read: u64,
    /// Records the sinks confirmed written.
    pub records_written: u64,
    /// Bytes the file sources read.
    pub bytes_read: u64,
    /// Bytes the sources will read in all, when every source knows its size.
    pub bytes_total: Option<u64>,
    /// How far along the run is, 0 to 1, when the total is known.
    pub fraction: Option<f64>,
    /// Time left at the pace so far (paused time excluded), when the total is
    /// known and some of it was read.
    #[serde(rename = "eta_secs", serialize_with = "opt_secs")]
    pub eta: Option<Duration>,
    /// Records read per second of running (paused time excluded).
    pub records_per_sec: f64,
    /// Bytes read per second of running.
    pub bytes_per_sec: f64,
    /// What holds the run back, in plain words.
    pub bottleneck: Option<String>,
    /// Every stage's counters now.
    pub stages: Vec<StageStats>,
    /// The byte budget's use, for a run with one.
    pub in_flight: Option<super::report::InFlight>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

impl Progress {
    /// The snapshot of `stages` at `elapsed`, `paused` of it paused.
    pub(crate) fn of(
        phase: Phase,
        stages: Vec<StageStats>,
        elapsed: Duration,
        paused: Duration,
    ) -> Progress {
        let of_kind = |kind: &'static str| stages.iter().filter(move |s| s.kind == kind);
        let records_read = of_kind("source").map(|s| s.records_out).sum();
        let records_written = of_kind("sink").map(|s| s.records_out).sum();
        let bytes_read: u64 = of_kind("source").map(|s| s.bytes_in).sum();
        let bytes_total = of_kind("source")
            .map(|s| (s.bytes_total > 0).then_some(s.bytes_total))
            .sum::<Option<u64>>()
            .filter(|t| *t > 0);
        let active = elapsed.saturating_sub(paused).as_secs_f64();
        let fraction = bytes_total.map(|t| (bytes_read as f64 / t as f64).min(1.0));
        let eta = fraction
            .filter(|f| *f > 0.0 && *f < 1.0 && active > 0.0)
            .map(|f| Duration::from_secs_f64(active * (1.0 - f) / f));
        let rate = |n: u64| if active > 0.0 { n as f64 / active } else { 0.0 };
        Progress {
            phase,
            elapsed,
            paused,
            records_read,
            records_written,
            bytes_read,
            bytes_total,
            fraction,
            eta,
            records_per_sec: rate(records_read),
            bytes_per_sec: rate(bytes_read),
            bottleneck: bottleneck(&stages, elapsed.saturating_sub(paused)),
            stages,
            in_flight: None,
        }
    }
}

/// What holds a run back, from its stages' times over `active` time: the
/// sinks, if they were busy or full most of the time ("sink-bound"); else
/// a `throttle` that held records back most of the time ("throttle-bound");
/// else the busiest stage between source and sink, if it was busy most of the
/// time (its own work is the limit: nothing downstream held it back); else the
/// sources, if the sinks mostly waited for input ("source-bound"). `None`
/// for a run too short to tell (under 50 ms of running), or time spread
/// evenly.
pub(crate) fn bottleneck(stages: &[StageStats], active: Duration) -> Option<String> {
    let active = active.as_secs_f64();
    // Shorter, and the clock reads and the start-up say more than the work.
    if active < 0.05 {
        return None;
    }
    let share = |d: Duration| d.as_secs_f64() / active;
    let sinks: Vec<&StageStats> = stages.iter().filter(|s| s.kind == "sink").collect();
    let sink_held = sinks
        .iter()
        .map(|s| share(s.busy + s.blocked))
        .fold(0.0, f64::max);
    if sink_held >= 0.5 {
        let name = sinks
            .iter()
            .max_by(|a, b| share(a.busy + a.blocked).total_cmp(&share(b.busy + b.blocked)))
            .map(|s| s.name.as_str())
            .unwrap_or("sink");
        return Some(format!(
            "sink-bound: {name:?} was writing or full {:.0}% of the time",
            sink_held * 100.0
        ));
    }
    // A throttle holding records back most of the time sets the pace on
    // purpose: its rate, not any stage's work, is the limit.
    let throttled = stages
        .iter()
        .filter(|s| s.kind == "throttle")
        .max_by(|a, b| a.blocked.cmp(&b.blocked));
    if let Some(stage) = throttled.filter(|s| share(s.blocked) >= 0.5) {
        return Some(format!(
            "throttle-bound: {:?} held records back {:.0}% of the time (its rate is the limit)",
            stage.name,
            share(stage.blocked) * 100.0
        ));
    }
    let busiest = stages
        .iter()
        .filter(|s| s.kind != "sink" && s.kind != "source")
        .max_by(|a, b| a.busy.cmp(&b.busy));
    if let Some(stage) = busiest.filter(|s| share(s.busy) >= 0.5) {
        return Some(format!(
            "stage {:?} ({}): busy {:.0}% of the time",
            stage.name,
            stage.kind,
            share(stage.busy) * 100.0
        ));
    }
    let sink_waited = sinks.iter().map(|s| share(s.waiting)).fold(0.0, f64::max);
    if sink_waited >= 0.5 {
        return Some(format!(
            "source-bound: the sinks waited for input {:.0}% of the time",
            sink_waited * 100.0
        ));
    }
    None
}
