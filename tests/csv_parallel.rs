//! Parsing one CSV file on several threads gives exactly what one thread
//! gives: the same records in the same batches, the same errors (message,
//! record, line, byte, field, row text) at the same places, the same end,
//! whatever the chunk size; and a stream (a named pipe) still delivers
//! records as they arrive.

use std::path::PathBuf;
use std::sync::Arc;

use dataflare::csv::{self, CsvSource, Trim};
use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema};
use futures::StreamExt;
use proptest::prelude::*;

/// What a source yields, item by item.
#[derive(Debug, PartialEq)]
enum Event<T> {
    Batch(Vec<T>),
    Error {
        display: String,
        debug: String,
        record_level: bool,
        text: Option<String>,
    },
}

/// Everything `source` yields, polled directly (no pipeline: the batches
/// are as the source made them).
async fn trace<T: Send + 'static>(mut source: CsvSource<T>) -> Vec<Event<T>> {
    let mut events = Vec::new();
    while let Some(item) = source.next().await {
        events.push(match item {
            Ok(batch) => Event::Batch(batch.into_records()),
            Err(e) => Event::Error {
                display: e.to_string(),
                debug: format!("{e:?}"),
                record_level: e.is_record_level(),
                text: e.record_text().map(str::to_string),
            },
        });
    }
    events
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn file(data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.csv");
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

/// The options a case reads with, besides parallelism.
#[derive(Debug, Clone)]
struct Options {
    headers: bool,
    flexible: bool,
    lenient: bool,
    comment: bool,
    lossy: bool,
    trim: bool,
    /// `\` escapes in quoted fields, and doubled quotes not read as one.
    escape: bool,
    batch: usize,
    max_record: Option<usize>,
}

fn configure<T: Send + 'static>(source: CsvSource<T>, o: &Options) -> CsvSource<T> {
    let mut source = source
        .has_headers(o.headers)
        .flexible(o.flexible)
        .lenient_quotes(o.lenient)
        .lossy_utf8(o.lossy)
        .batch_size(o.batch)
        .comment(o.comment.then_some(b'#'))
        .trim(if o.trim { Trim::All } else { Trim::None })
        .escape(o.escape.then_some(b'\\'))
        .double_quote(!o.escape);
    if let Some(max) = o.max_record {
        source = source.max_record_bytes(max);
    }
    source
}

/// What one thread reads, and what `threads` threads read with chunks of
/// `chunk` bytes.
fn both<T, F>(make: F, o: &Options, threads: usize, chunk: usize) -> (Vec<Event<T>>, Vec<Event<T>>)
where
    T: Send + 'static,
    F: Fn() -> CsvSource<T>,
{
    let rt = runtime();
    let one = rt.block_on(trace(configure(make(), o).parallel(1)));
    let many = rt.block_on(trace(
        configure(make(), o).parallel(threads).chunk_size(chunk),
    ));
    (one, many)
}

/// A CSV-ish file: well-formed and malformed fields, quoted line breaks,
/// blank and comment lines, `\n`, `\r\n` and `\r` line ends.
fn data() -> impl Strategy<Value = Vec<u8>> {
    let field = prop::sample::select(vec![
        &b"a"[..],
        b"bc",
        b"",
        b" x ",
        b"12",
        b"-3",
        b"007",
        b"1.5",
        b"\"q,1\"",
        b"\"multi\nline\"",
        b"\"multi\r\nline\"",
        b"\"\n\"",
        b"\"say \"\"hi\"\"\"",
        b"\"#not a comment\n\"",
        b"ab\"c",
        b"\"ab\"c",
        b"\xFF\xFE",
        b"caf\xC3\xA9",
        b"\"esc\\\"aped\n\\\n\"",
        b"back\\slash",
    ]);
    let end = prop::sample::select(vec![&b"\n"[..], b"\r\n", b"\r", b"\n\n", b"\n# c,\"x\n"]);
    let record = (prop::collection::vec(field, 1..4), end).prop_map(|(fields, end)| {
        let mut line = fields.join(&b","[..]);
        line.extend_from_slice(end);
        line
    });
    let tail = prop::sample::select(vec![
        &b""[..],
        b"last,row",
        b"\"open\nnever closed",
        b"x,\"",
    ]);
    (any::<bool>(), prop::collection::vec(record, 0..40), tail).prop_map(|(bom, records, tail)| {
        let mut data = Vec::new();
        if bom {
            data.extend_from_slice(b"\xEF\xBB\xBF");
        }
        for r in records {
            data.extend_from_slice(&r);
        }
        data.extend_from_slice(tail);
        data
    })
}

fn options() -> impl Strategy<Value = Options> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        1usize..5,
        prop::option::weighted(0.2, 8usize..64),
    )
        .prop_map(
            |(headers, flexible, lenient, comment, lossy, trim, escape, batch, max_record)| {
                Options {
                    headers,
                    flexible,
                    lenient,
                    comment,
                    lossy,
                    trim,
                    escape,
                    batch,
                    max_record,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Dynamic records, every column text: the same events.
    #[test]
    fn records_are_those_of_one_thread(
        data in data(), o in options(), threads in 2usize..5, chunk in 1usize..48,
    ) {
        let (_dir, path) = file(&data);
        let (one, many) = both(|| csv::read_records(&path), &o, threads, chunk);
        prop_assert_eq!(one, many);
    }

    /// Inferred types: later values that do not fit are errors at the same
    /// places.
    #[test]
    fn inferred_records_are_those_of_one_thread(
        data in data(), o in options(), threads in 2usize..5, chunk in 1usize..48,
        rows in 1usize..4,
    ) {
        let (_dir, path) = file(&data);
        let (one, many) = both(|| csv::read_records(&path).infer_schema(rows), &o, threads, chunk);
        prop_assert_eq!(one, many);
    }

    /// Typed rows through serde, with type errors.
    #[test]
    fn typed_rows_are_those_of_one_thread(
        data in data(), o in options(), threads in 2usize..5, chunk in 1usize..48,
    ) {
        let (_dir, path) = file(&data);
        let (one, many) = both(|| csv::read::<(String, Option<i64>)>(&path), &o, threads, chunk);
        prop_assert_eq!(one, many);
        let (one, many) = both(|| csv::read::<Vec<String>>(&path), &o, threads, chunk);
        prop_assert_eq!(one, many);
    }
}

/// `n` rows of orders, each with a quoted note holding a line break, a
/// comma and a doubled quote, so that many chunk starts guess wrong.
fn orders(n: usize) -> Vec<u8> {
    let mut data = b"id,user,amount,note\r\n".to_vec();
    for i in 0..n {
        let note = match i % 4 {
            0 => String::new(),
            1 => "\"line one\nline two\"".to_string(),
            2 => "\"a, \"\"quoted\"\" word\"".to_string(),
            _ => format!("\"{}\n\"", "x".repeat(i % 97)),
        };
        data.extend_from_slice(
            format!(
                "{i},user{},{}.{:02},{note}\r\n",
                i % 13,
                i * 7 % 1000,
                i % 100
            )
            .as_bytes(),
        );
    }
    data
}

const PLAIN: Options = Options {
    headers: true,
    flexible: false,
    lenient: false,
    comment: false,
    lossy: false,
    trim: false,
    escape: false,
    batch: 100,
    max_record: None,
};

#[test]
fn a_large_file_keeps_its_order_and_batches() {
    let (_dir, path) = file(&orders(20_000));
    for (threads, chunk) in [(2, 4096), (3, 1000), (4, 65536), (2, 7)] {
        let (one, many) = both(|| csv::read_records(&path), &PLAIN, threads, chunk);
        assert_eq!(one.len(), 200);
        assert!(one == many, "{threads} threads, chunks of {chunk}");
    }
    let rt = runtime();
    let ids: Vec<i64> = rt
        .block_on(trace(
            csv::read_records(&path).infer_schema(10).chunk_size(2048),
        ))
        .into_iter()
        .flat_map(|e| match e {
            Event::Batch(records) => records,
            Event::Error { display, .. } => panic!("{display}"),
        })
        .map(|r: Record| r.get("id").and_then(|v| v.as_i64()).unwrap())
        .collect();
    assert_eq!(ids, (0..20_000).collect::<Vec<i64>>());
}

/// A medium file with `bad` put in as row `at`.
fn with_bad_row(at: usize, bad: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut data = b"id,name,amount\n".to_vec();
    for i in 0..3000 {
        if i == at {
            data.extend_from_slice(bad);
        } else {
            data.extend_from_slice(format!("{i},\"n\n{i}\",{}\n", i % 50).as_bytes());
        }
    }
    data.extend_from_slice(tail);
    data
}

/// Each malformed input gives the one-thread errors for every chunk size
/// tried, in a typed, a schema and a text source.
fn same_errors(data: &[u8]) {
    let (_dir, path) = file(data);
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("name", DataType::Str),
        ("amount", DataType::Int),
    ]));
    for chunk in [1, 3, 64, 500, 4096, 100_000] {
        let (one, many) = both(|| csv::read_records(&path), &PLAIN, 3, chunk);
        assert!(one == many, "text records, chunks of {chunk}: {many:?}");
        let (one, many) = both(
            || csv::read_records(&path).schema(schema.clone()),
            &PLAIN,
            2,
            chunk,
        );
        assert!(one.iter().any(|e| matches!(e, Event::Error { .. })));
        assert!(one == many, "schema records, chunks of {chunk}");
        let (one, many) = both(|| csv::read::<(u32, String, u32)>(&path), &PLAIN, 2, chunk);
        assert!(one == many, "typed rows, chunks of {chunk}");
        // Without a header: the first row is data, the schema gives the width.
        let no_header = Options {
            headers: false,
            ..PLAIN
        };
        let (one, many) = both(
            || csv::read_records(&path).schema(schema.clone()),
            &no_header,
            2,
            chunk,
        );
        assert!(
            one == many,
            "schema records without a header, chunks of {chunk}"
        );
    }
}

#[test]
fn a_quote_never_closed_fails_at_the_same_place() {
    same_errors(&with_bad_row(usize::MAX, b"", b"3000,\"open\n3001,x,1\n"));
}

#[test]
fn a_wrong_number_of_fields_is_the_same_error() {
    same_errors(&with_bad_row(2100, b"2100,only two\n", b""));
}

#[test]
fn invalid_utf8_is_the_same_error() {
    same_errors(&with_bad_row(1500, b"1500,\"caf\xE9\nau lait\",3\n", b""));
}

#[test]
fn a_value_of_the_wrong_type_is_the_same_error() {
    same_errors(&with_bad_row(2999, b"2999,\"n\",x1\n", b""));
}

#[test]
fn a_stray_quote_is_the_same_error() {
    same_errors(&with_bad_row(700, b"700,ab\"c,1\n", b""));
}

#[test]
fn a_record_past_the_limit_ends_both_alike() {
    // A quote opened half way that nothing closes within the limit.
    let mut data = b"id,user,amount,note\n".to_vec();
    for i in 0..3000 {
        data.extend_from_slice(format!("{i},user{i},{i}.5,note\n").as_bytes());
        if i == 1500 {
            data.extend_from_slice(b"9999,x,1,\"open\n");
        }
    }
    let (_dir, path) = file(&data);
    let limited = Options {
        max_record: Some(4096),
        ..PLAIN
    };
    for chunk in [100, 5000, 1 << 20] {
        let (one, many) = both(|| csv::read_records(&path), &limited, 3, chunk);
        match one.last() {
            Some(Event::Error { record_level, .. }) => assert!(!record_level),
            other => panic!("expected the run to end with an error, got {other:?}"),
        }
        assert!(one == many, "chunks of {chunk}");
    }
}

#[tokio::test]
async fn skipped_rows_and_bytes_read_are_counted_alike() {
    let mut data = with_bad_row(1200, b"1200,only two\n", b"");
    data.extend_from_slice(b"\n\n");
    let (_dir, path) = file(&data);
    for threads in [1, 3] {
        let out = Collected::new();
        let report = Pipeline::from(csv::read_records(&path).parallel(threads).chunk_size(999))
            .on_error(ErrorPolicy::Skip)
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
        report.check_accounting().unwrap();
        assert_eq!(report.skipped(), 1);
        assert_eq!(out.len(), 2999);
        let source = report.stage("source").unwrap();
        assert_eq!(source.bytes_in, data.len() as u64, "{threads} threads");
        assert_eq!(source.bytes_total, data.len() as u64);
    }
}

#[tokio::test]
async fn a_run_stopped_early_ends_without_waiting_for_the_file() {
    let (_dir, path) = file(&orders(50_000));
    let report = Pipeline::from(csv::read_records(&path).parallel(4).chunk_size(1024))
        .take(10)
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 10);
    let source = report.stage("source").unwrap();
    assert!(source.bytes_in < source.bytes_total);
}

/// A named pipe is read as a stream, whatever `parallel` says: each record
/// comes through before the next is written.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_pipe_still_streams() {
    use std::io::Write;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.csv");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let writer_path = fifo.clone();
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(writer_path)
            .unwrap();
        while let Ok(Some(line)) = rx.recv() {
            w.write_all(line.as_bytes()).unwrap();
            w.flush().unwrap();
        }
    });
    tx.send(Some("id,name\n".into())).unwrap();
    let mut source = csv::read_records(&fifo).parallel(4).chunk_size(1);
    for i in 0..5 {
        tx.send(Some(format!("{i},\"name\n{i}\"\n"))).unwrap();
        // The record must arrive while the pipe is still open.
        let batch = tokio::time::timeout(Duration::from_secs(20), source.next())
            .await
            .expect("a record written to the pipe did not come through")
            .unwrap()
            .unwrap();
        let ids: Vec<String> = batch
            .iter()
            .map(|r| r.get("id").unwrap().to_string())
            .collect();
        assert_eq!(ids, [i.to_string()]);
    }
    tx.send(None).unwrap();
    writer.join().unwrap();
    assert!(source.next().await.is_none());
}

/// A run whose sink fails part way, or which is cancelled, ends with the
/// parsing threads busy ahead of it, and does not wait for the whole file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_cancelled_run_ends_while_the_file_is_parsed_ahead() {
    let (_dir, path) = file(&orders(100_000));
    let (sink, probe) = dataflare::testkit::failing_sink(2_000);
    let err = Pipeline::from(csv::read_records(&path).parallel(3).chunk_size(4096))
        .to(sink)
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("sink"));
    assert!(probe.record_count() < 100_000);

    let handle = Pipeline::from(csv::read_records(&path).parallel(3).chunk_size(4096))
        .to(sink::discard())
        .spawn();
    handle.cancel();
    let report = handle.await;
    assert!(report.records_out() < 100_000, "{report:?}");
}

/// Lines far longer than a chunk, lines ended by a lone `\r` (no `\n` to
/// start a chunk after), and a last line without a line break.
#[test]
fn long_lines_and_carriage_returns_read_alike() {
    let mut long = b"id,text\n".to_vec();
    for i in 0..300 {
        let width = [3, 20_000, 10, 4_000, 1][i % 5];
        long.extend_from_slice(format!("{i},{}\n", "y".repeat(width)).as_bytes());
    }
    long.extend_from_slice(b"300,no line break at the end");
    let mut cr = b"id,text\r".to_vec();
    for i in 0..3_000 {
        cr.extend_from_slice(format!("{i},\"two\rlines\"\r").as_bytes());
    }
    for data in [long, cr] {
        let (_dir, path) = file(&data);
        for chunk in [7, 512, 4096] {
            let (one, many) = both(|| csv::read_records(&path), &PLAIN, 3, chunk);
            assert!(matches!(one.last(), Some(Event::Batch(_))));
            assert!(one == many, "chunks of {chunk}");
        }
    }
}

/// The schema read before the run: the rows read for it come first, then
/// the rest of the file on several threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_read_before_the_run_keeps_every_record() {
    let (_dir, path) = file(&orders(5_000));
    let mut source = csv::read_records(&path)
        .infer_schema(1_500)
        .parallel(3)
        .chunk_size(2048);
    let schema = source.read_schema().await.unwrap();
    assert_eq!(schema.fields()[0].data_type(), DataType::Int);
    let many = trace(source).await;
    let one = trace(csv::read_records(&path).infer_schema(1_500).parallel(1)).await;
    assert_eq!(many.len(), 5);
    assert!(one == many);
}
