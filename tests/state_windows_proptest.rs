//! Windows over random records in random order (event times shuffled), with
//! random lateness, window kinds and batch sizes, against a model computed
//! with plain iterators and maps: which records are late (counted `late`
//! under Skip), which windows come out, in which order, holding what; and
//! every run balances.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Timestamp, Value};
use dataflare::state::{Agg, Columns, Window, Windowed, agg};
use futures::stream::BoxStream;
use proptest::prelude::*;
use support::runtime;

#[derive(Debug, Clone)]
struct Rec {
    key: u8,
    ts: i64,
    value: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1i64..40).prop_map(Kind::Tumbling),
        (1i64..40)
            .prop_flat_map(|size| (Just(size), 1..=size))
            .prop_map(|(size, slide)| Kind::Sliding(size, slide)),
        (1i64..30).prop_map(Kind::Session),
    ]
}

fn records(nulls: bool) -> impl Strategy<Value = Vec<Rec>> {
    let value = if nulls {
        prop::option::weighted(0.7, -50i64..50).boxed()
    } else {
        (-50i64..50).prop_map(Some).boxed()
    };
    prop::collection::vec((0u8..3, 0i64..200, value), 0..60).prop_map(|rs| {
        rs.into_iter()
            .map(|(key, ts, value)| Rec { key, ts, value })
            .collect()
    })
}

fn us(n: i64) -> Duration {
    Duration::from_micros(n as u64)
}

fn window(kind: Kind) -> WindowKind {
    match kind {
        Kind::Tumbling(size) => WindowKind::Fixed(Window::tumbling(us(size))),
        Kind::Sliding(size, slide) => WindowKind::Fixed(Window::sliding(us(size), us(slide))),
        Kind::Session(gap) => WindowKind::Session(Window::session(us(gap))),
    }
}

enum WindowKind {
    Fixed(Window),
    Session(dataflare::state::SessionWindow),
}

/// A record in a model window: its arrival index and value.
type Item = (usize, Option<i64>);

/// One model window: key, start, end, and its records in arrival order.
type ModelWindow = (u8, i64, i64, Vec<Item>);

/// The model: records behind the watermark (the latest time taken less the
/// lateness) are late; the others go in their windows. Returns the windows
/// in the order they close (by end, then first arrival) and the late count.
fn model(records: &[Rec], kind: Kind, lateness: i64) -> (Vec<ModelWindow>, u64) {
    let mut watermark = i64::MIN;
    let mut max = i64::MIN;
    let mut late = 0;
    let mut taken = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if r.ts < watermark {
            late += 1;
            continue;
        }
        taken.push((i, r));
        max = max.max(r.ts);
        watermark = watermark.max(max - lateness);
    }
    let mut windows: Vec<ModelWindow> = Vec::new();
    match kind {
        Kind::Tumbling(size) | Kind::Sliding(size, _) => {
            let slide = match kind {
                Kind::Sliding(_, slide) => slide,
                _ => size,
            };
            let mut by_window: BTreeMap<(u8, i64), Vec<Item>> = BTreeMap::new();
            for &(i, r) in &taken {
                for start in (r.ts - size + 1)..=r.ts {
                    if start.rem_euclid(slide) == 0 {
                        by_window
                            .entry((r.key, start))
                            .or_default()
                            .push((i, r.value));
                    }
                }
            }
            for ((key, start), items) in by_window {
                windows.push((key, start, start + size, items));
            }
        }
        Kind::Session(gap) => {
            let mut by_key: BTreeMap<u8, Vec<(i64, usize, Option<i64>)>> = BTreeMap::new();
            for &(i, r) in &taken {
                by_key.entry(r.key).or_default().push((r.ts, i, r.value));
            }
            for (key, mut items) in by_key {
                items.sort();
                let mut session: Vec<(i64, usize, Option<i64>)> = Vec::new();
                for item in items {
                    if session.last().is_some_and(|last| item.0 - last.0 >= gap) {
                        windows.push(session_window(key, gap, std::mem::take(&mut session)));
                    }
                    session.push(item);
                }
                if !session.is_empty() {
                    windows.push(session_window(key, gap, session));
                }
            }
        }
    }
    for w in &mut windows {
        w.3.sort();
    }
    windows.sort_by_key(|w| (w.2, w.3[0].0));
    (windows, late)
}

fn session_window(key: u8, gap: i64, items: Vec<(i64, usize, Option<i64>)>) -> ModelWindow {
    let start = items[0].0;
    let end = items.last().unwrap().0 + gap;
    (
        key,
        start,
        end,
        items.into_iter().map(|(_, i, v)| (i, v)).collect(),
    )
}

type Stats = (u64, i64, i64, i64, i64, i64);

/// Count, sum, first, last, min, max of a window's values (all present).
fn stats(items: &[Item]) -> Stats {
    let values: Vec<i64> = items.iter().map(|(_, v)| v.unwrap()).collect();
    (
        values.len() as u64,
        values.iter().sum(),
        values[0],
        *values.last().unwrap(),
        *values.iter().min().unwrap(),
        *values.iter().max().unwrap(),
    )
}

type Windows = Pipeline<BoxStream<'static, dataflare::Result<Batch<Windowed<u8, Stats>>>>>;

fn typed(records: Vec<Rec>, kind: Kind, lateness: i64, batch: usize) -> Windows {
    let keyed = Pipeline::from(source::iter(records).batch_size(batch))
        .event_time(|r: &Rec| Timestamp::from_micros(r.ts), us(lateness))
        .key_by(|r: &Rec| r.key);
    let value = |r: &Rec| r.value.unwrap();
    let aggs = (
        agg::count(),
        agg::sum(value),
        agg::first(value),
        agg::last(value),
        agg::min(value),
        agg::max(value),
    );
    match window(kind) {
        WindowKind::Fixed(w) => keyed
            .window(w)
            .aggregate(aggs)
            .on_error(ErrorPolicy::Skip)
            .boxed(),
        WindowKind::Session(w) => keyed
            .window(w)
            .aggregate(aggs)
            .on_error(ErrorPolicy::Skip)
            .boxed(),
    }
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("k", DataType::Int),
        ("ts", DataType::Int),
        ("v", DataType::Int),
    ]))
}

fn ts_of(r: &Record) -> Timestamp {
    Timestamp::from_micros(r.get("ts").and_then(Value::as_i64).unwrap())
}

type Rows = Pipeline<BoxStream<'static, dataflare::Result<Batch<Record>>>>;

fn dynamic(records: Vec<Rec>, kind: Kind, lateness: i64, batch: usize) -> Rows {
    let schema = schema();
    let records: Vec<Record> = records
        .into_iter()
        .map(|r| {
            let values = vec![
                Value::Int(r.key as i64),
                Value::Int(r.ts),
                Value::from(r.value),
            ];
            Record::new(schema.clone(), values)
        })
        .collect();
    let keyed = Pipeline::from(source::iter(records).batch_size(batch))
        .event_time(ts_of, us(lateness))
        .key_by(Columns::new(["k"]));
    let aggs = [
        ("n", Agg::Count),
        ("sum", Agg::sum("v")),
        ("mean", Agg::mean("v")),
        ("first", Agg::first("v")),
        ("last", Agg::last("v")),
        ("min", Agg::min("v")),
        ("max", Agg::max("v")),
        ("distinct", Agg::count_distinct("v")),
    ];
    match window(kind) {
        WindowKind::Fixed(w) => keyed
            .window(w)
            .aggregate_columns(aggs)
            .on_error(ErrorPolicy::Skip)
            .boxed(),
        WindowKind::Session(w) => keyed
            .window(w)
            .aggregate_columns(aggs)
            .on_error(ErrorPolicy::Skip)
            .boxed(),
    }
}

/// A model window as the row a dynamic stage makes of it: nulls skipped.
fn row((key, start, end, items): &ModelWindow) -> Vec<Value> {
    let values: Vec<i64> = items.iter().filter_map(|(_, v)| *v).collect();
    let or_null = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
    let mut distinct = values.clone();
    distinct.sort();
    distinct.dedup();
    vec![
        Value::Int(*key as i64),
        Value::Timestamp(Timestamp::from_micros(*start)),
        Value::Timestamp(Timestamp::from_micros(*end)),
        Value::Int(items.len() as i64),
        or_null((!values.is_empty()).then(|| values.iter().sum())),
        if values.is_empty() {
            Value::Null
        } else {
            Value::Float(values.iter().sum::<i64>() as f64 / values.len() as f64)
        },
        or_null(values.first().copied()),
        or_null(values.last().copied()),
        or_null(values.iter().min().copied()),
        or_null(values.iter().max().copied()),
        Value::Int(distinct.len() as i64),
    ]
}

/// The stage's counters against the model's.
fn check_counts(report: &Report, taken: usize, late: u64, windows: usize) {
    let stage = report.stage("window#1").unwrap();
    assert_eq!(stage.late, late);
    assert_eq!(stage.absorbed, taken as u64);
    assert_eq!(stage.expanded, windows as u64);
    assert_eq!(stage.records_out, windows as u64);
    assert_eq!((stage.state_keys, stage.state_bytes), (0, 0));
    report.check_accounting().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn typed_windows_match_the_model(
        records in records(false),
        kind in kind(),
        lateness in 0i64..80,
        batch in 1usize..8,
    ) {
        let (expected, late) = model(&records, kind, lateness);
        let n = records.len();
        let out = Collected::new();
        let report = runtime().block_on(
            typed(records, kind, lateness, batch).to(sink::collect(&out)).run(),
        ).unwrap();
        let expected: Vec<Windowed<u8, Stats>> = expected
            .iter()
            .map(|(key, start, end, items)| Windowed {
                key: *key,
                start: Timestamp::from_micros(*start),
                end: Timestamp::from_micros(*end),
                value: stats(items),
            })
            .collect();
        prop_assert_eq!(out.to_vec(), expected.clone());
        check_counts(&report, n - late as usize, late, expected.len());
    }

    #[test]
    fn dynamic_windows_with_nulls_match_the_model(
        records in records(true),
        kind in kind(),
        lateness in 0i64..80,
        batch in 1usize..8,
    ) {
        let (expected, late) = model(&records, kind, lateness);
        let n = records.len();
        let out = Collected::new();
        let report = runtime().block_on(
            dynamic(records, kind, lateness, batch).to(sink::collect(&out)).run(),
        ).unwrap();
        let rows: Vec<Vec<Value>> = out.to_vec().iter().map(|r| r.values().to_vec()).collect();
        let expected: Vec<Vec<Value>> = expected.iter().map(row).collect();
        prop_assert_eq!(rows, expected.clone());
        check_counts(&report, n - late as usize, late, expected.len());
    }

    #[test]
    fn count_windows_match_the_model(
        records in records(false),
        n in 1u64..5,
        batch in 1usize..8,
    ) {
        // The model: each key's records n at a time, emitted as the n-th
        // comes; then the partial ones by their first record.
        let mut open: HashMap<u8, Vec<(usize, i64)>> = HashMap::new();
        let mut expected = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let group = open.entry(r.key).or_default();
            group.push((i, r.value.unwrap()));
            if group.len() as u64 == n {
                let group = open.remove(&r.key).unwrap();
                expected.push((r.key, group.iter().map(|(_, v)| v).sum::<i64>(), group.len() as u64));
            }
        }
        let mut partial: Vec<_> = open.into_iter().collect();
        partial.sort_by_key(|(_, group)| group[0].0);
        expected.extend(partial.into_iter().map(|(key, group)| {
            (key, group.iter().map(|(_, v)| v).sum::<i64>(), group.len() as u64)
        }));

        let out = Collected::new();
        let taken = records.len();
        let report = runtime().block_on(
            Pipeline::from(source::iter(records).batch_size(batch))
                .key_by(|r: &Rec| r.key)
                .window(Window::count(n))
                .aggregate((agg::sum(|r: &Rec| r.value.unwrap()), agg::count()))
                .to(sink::collect(&out))
                .run(),
        ).unwrap();
        let got: Vec<(u8, i64, u64)> = out.to_vec().into_iter().map(|(k, (s, c))| (k, s, c)).collect();
        prop_assert_eq!(got, expected.clone());
        check_counts(&report, taken, 0, expected.len());
    }
}
