//! The CSV source through the public API: options, edge cases, exact errors,
//! the Skip policy, and arbitrary bytes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dataflare::csv::{self, CsvOptions, Trim};
use dataflare::prelude::*;
use dataflare::record::*;
use dataflare::{ErrorKind, Position};
use futures::StreamExt;
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Order {
    id: u32,
    user: String,
    amount: f64,
}

fn order(id: u32, user: &str, amount: f64) -> Order {
    Order {
        id,
        user: user.to_string(),
        amount,
    }
}

/// A file holding `data` in a fresh temporary directory (kept alive by the guard).
fn file(data: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.csv");
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

/// Runs the source to the end, failing on the first error.
async fn collect<S>(source: S) -> Result<Vec<S::Record>>
where
    S: Source,
    S::Record: Clone,
{
    let out = Collected::new();
    Pipeline::from(source).to(sink::collect(&out)).run().await?;
    Ok(out.to_vec())
}

/// Runs the source to the end, skipping malformed records.
async fn collect_skipping<S>(source: S) -> (Vec<S::Record>, Report)
where
    S: Source,
    S::Record: Clone,
{
    let out = Collected::new();
    let report = Pipeline::from(source)
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    (out.to_vec(), report)
}

/// The error that ends the run of the source.
async fn error_of<S: Source>(source: S) -> Error {
    Pipeline::from(source)
        .to(sink::discard())
        .run()
        .await
        .expect_err("the run fails")
}

/// Everything the source yields, without a pipeline: batches and errors.
async fn items<S: Source>(source: S) -> Vec<Result<Vec<S::Record>>> {
    source
        .map(|item| item.map(Batch::into_records))
        .collect()
        .await
}

fn strings(row: &Record) -> Vec<String> {
    row.values().iter().map(|v| v.to_string()).collect()
}

fn position(record: u64, line: u64, byte: u64) -> Position {
    Position::new().record(record).line(line).byte(byte)
}

fn message(e: &Error) -> String {
    match e.kind() {
        ErrorKind::Parse(m) => m.clone(),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// The acceptance list

#[tokio::test]
async fn the_source_is_configured_and_initialised() {
    let (_dir, path) = file("id;user;amount\n1;ada;2.5\n");
    let source = csv::read::<Order>(&path)
        .delimiter(b';')
        .quote(b'\'')
        .escape(b'\\')
        .double_quote(false)
        .comment(b'#')
        .trim(Trim::All)
        .flexible(true)
        .batch_size(7)
        .lenient_quotes(true)
        .lossy_utf8(true);
    let config = source.config();
    assert_eq!(config.delimiter, b';');
    assert_eq!(config.quote, b'\'');
    assert_eq!(config.escape, Some(b'\\'));
    assert!(!config.double_quote);
    assert_eq!(config.comment, Some(b'#'));
    assert_eq!(config.trim, Trim::All);
    assert!(config.flexible && config.lenient_quotes && config.lossy_utf8);
    assert_eq!(config.batch_size, 7);
    assert!(config.has_headers);
    assert_eq!(source.path(), Some(path.as_path()));
    assert!(format!("{source:?}").contains("CsvSource"));

    // Options can be taken back off, and set all at once.
    let source = source.escape(None).comment(None);
    assert_eq!(
        (source.config().escape, source.config().comment),
        (None, None)
    );
    let defaults = csv::read::<Order>(&path).options(CsvOptions::default());
    assert_eq!(defaults.config(), &CsvOptions::default());

    // Initialised: it reads.
    assert_eq!(collect(source).await.unwrap(), vec![order(1, "ada", 2.5)]);
}

#[tokio::test]
async fn reads_data_into_structs_and_records() {
    let data = "id,user,amount\n1,ada,9.5\n2,alan,20\n3,grace,0.25\n";
    let (_dir, path) = file(data);
    let orders = collect(csv::read::<Order>(&path)).await.unwrap();
    assert_eq!(
        orders,
        vec![
            order(1, "ada", 9.5),
            order(2, "alan", 20.0),
            order(3, "grace", 0.25)
        ]
    );

    let rows = collect(csv::read_records(&path)).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0].schema().names().collect::<Vec<_>>(),
        ["id", "user", "amount"]
    );
    assert!(
        rows[0]
            .schema()
            .fields()
            .iter()
            .all(|f| f.data_type() == DataType::Str)
    );
    assert_eq!(rows[1].get("user"), Some(&Value::from("alan")));
    assert!(
        Arc::ptr_eq(rows[0].schema(), rows[2].schema()),
        "one shared schema"
    );

    // The same from a reader.
    let from_reader = collect(csv::read_from::<Order>(data.as_bytes()))
        .await
        .unwrap();
    assert_eq!(from_reader, orders);
    let rows = collect(csv::read_records_from(data.as_bytes()))
        .await
        .unwrap();
    assert_eq!(strings(&rows[2]), ["3", "grace", "0.25"]);
}

#[tokio::test]
async fn reads_with_different_delimiters() {
    for delimiter in [b',', b';', b'\t', b'|'] {
        let d = delimiter as char;
        let data = format!("id{d}user{d}amount\n1{d}ada{d}1.5\n2{d}\"a{d}b\"{d}3\n");
        let (_dir, path) = file(&data);
        let orders = collect(csv::read::<Order>(&path).delimiter(delimiter))
            .await
            .unwrap();
        assert_eq!(
            orders,
            vec![order(1, "ada", 1.5), order(2, &format!("a{d}b"), 3.0)],
            "delimiter {d:?}"
        );
    }
}

#[tokio::test]
async fn reads_files_without_a_header_row() {
    let (_dir, path) = file("1,ada,2.5\n2,alan,4\n");
    let typed = collect(csv::read::<(u32, String, f64)>(&path).has_headers(false))
        .await
        .unwrap();
    assert_eq!(
        typed,
        vec![(1, "ada".to_string(), 2.5), (2, "alan".to_string(), 4.0)]
    );

    let rows = collect(csv::read_records(&path).has_headers(false))
        .await
        .unwrap();
    assert_eq!(
        rows[0].schema().names().collect::<Vec<_>>(),
        ["col0", "col1", "col2"]
    );
    assert_eq!(strings(&rows[1]), ["2", "alan", "4"]);
}

#[tokio::test]
async fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.csv");
    let e = error_of(csv::read::<Order>(&path)).await;
    assert_eq!(e.stage(), Some("source"));
    assert_eq!(e.path(), Some(path.as_path()));
    assert!(!e.is_record_level());
    assert!(
        matches!(e.kind(), ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(e.to_string().contains("nope.csv"), "{e}");

    // Skip does not skip it: the run fails.
    let (_, report) = collect_skipping(csv::read_records(&path)).await;
    assert!(report.is_failed());
}

#[tokio::test]
async fn an_invalid_path_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = error_of(csv::read_records(dir.path())).await;
    assert_eq!(e.stage(), Some("source"));
    assert_eq!(e.path(), Some(dir.path()));
    assert!(matches!(e.kind(), ErrorKind::Config(_)), "{e:?}");
    assert!(e.to_string().contains("is a directory"), "{e}");

    for bad in [Path::new(""), Path::new("no\0such.csv")] {
        let e = error_of(csv::read::<Order>(bad)).await;
        assert_eq!(e.path(), Some(bad));
        assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
    }
}

// ---------------------------------------------------------------------------
// Options

#[tokio::test]
async fn quote_escape_and_double_quote() {
    let data = "text,n\n'it''s, here',1\n";
    let rows = collect(csv::read_from::<(String, u32)>(data.as_bytes()).quote(b'\''))
        .await
        .unwrap();
    assert_eq!(rows, vec![("it's, here".to_string(), 1)]);

    let data = "text\n\"a \\\"quoted\\\" word\"\n\"doubled \"\" too\"\n";
    let rows = collect(csv::read_from::<(String,)>(data.as_bytes()).escape(b'\\'))
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            ("a \"quoted\" word".to_string(),),
            ("doubled \" too".to_string(),)
        ]
    );

    // Without doubled quotes, the second quote closes the field.
    let data = "text\n\"x\"\"y\"\n";
    let e = error_of(csv::read_from::<(String,)>(data.as_bytes()).double_quote(false)).await;
    assert_eq!(e.position(), &position(0, 2, 8).field("text"));
    assert!(
        message(&e).starts_with("'\"' after the closing quote"),
        "{e}"
    );
}

#[tokio::test]
async fn comment_lines_are_skipped() {
    let data = "# exported today\nid,user,amount\n1,ada,1\n# a note\n2,alan,2\n#last";
    let rows = collect(csv::read_from::<Order>(data.as_bytes()).comment(b'#'))
        .await
        .unwrap();
    assert_eq!(rows, vec![order(1, "ada", 1.0), order(2, "alan", 2.0)]);
    // Not a comment unless set.
    let e = error_of(csv::read_from::<Order>(data.as_bytes())).await;
    assert!(e.is_record_level());
}

#[tokio::test]
async fn trim_headers_fields_or_both() {
    let data = " id , user , amount \n 1 , ada , 2 \n";
    let rows = |trim| collect(csv::read_records_from(data.as_bytes()).trim(trim));
    let none = rows(Trim::None).await.unwrap();
    assert_eq!(
        none[0].schema().names().collect::<Vec<_>>(),
        [" id ", " user ", " amount "]
    );
    assert_eq!(strings(&none[0]), [" 1 ", " ada ", " 2 "]);
    let headers = rows(Trim::Headers).await.unwrap();
    assert_eq!(
        headers[0].schema().names().collect::<Vec<_>>(),
        ["id", "user", "amount"]
    );
    assert_eq!(strings(&headers[0]), [" 1 ", " ada ", " 2 "]);
    let fields = rows(Trim::Fields).await.unwrap();
    assert_eq!(fields[0].schema().names().next(), Some(" id "));
    assert_eq!(strings(&fields[0]), ["1", "ada", "2"]);

    let typed = collect(csv::read_from::<Order>(data.as_bytes()).trim(Trim::All))
        .await
        .unwrap();
    assert_eq!(typed, vec![order(1, "ada", 2.0)]);
}

#[tokio::test]
async fn flexible_rows() {
    let data = "a,b,c\n1\n1,2,3,4\n1,2,3\n";
    let rows = collect(csv::read_records_from(data.as_bytes()).flexible(true))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0].values(),
        &[Value::from("1"), Value::Null, Value::Null]
    );
    assert_eq!(strings(&rows[1]), ["1", "2", "3"]); // the 4th field is past the columns

    #[derive(Debug, Clone, PartialEq, Deserialize)]
    struct Row {
        a: u32,
        b: Option<u32>,
    }
    let typed = collect(csv::read_from::<Row>("a,b\n1\n2,3\n".as_bytes()).flexible(true))
        .await
        .unwrap();
    assert_eq!(typed, vec![Row { a: 1, b: None }, Row { a: 2, b: Some(3) }]);
}

#[tokio::test]
async fn batch_size_sets_records_per_batch() {
    let data: String = std::iter::once("n\n".to_string())
        .chain((0..10).map(|i| format!("{i}\n")))
        .collect();
    let (_dir, path) = file(&data);
    let batches = items(csv::read::<(u32,)>(&path).batch_size(4)).await;
    let sizes: Vec<usize> = batches.iter().map(|b| b.as_ref().unwrap().len()).collect();
    assert_eq!(sizes, [4, 4, 2]);
    let report = Pipeline::from(csv::read::<(u32,)>(&path).batch_size(3))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!((report.records_in(), report.batches_in()), (10, 4));
}

#[test]
#[should_panic(expected = "batch_size")]
fn batch_size_0_panics() {
    let _ = csv::read_records("x.csv").batch_size(0);
}

#[tokio::test]
async fn options_are_checked_when_reading_starts() {
    let mut options = CsvOptions::default();
    options.quote = b',';
    let e = error_of(csv::read_records_from("a\n".as_bytes()).options(options)).await;
    assert!(matches!(e.kind(), ErrorKind::Config(_)), "{e:?}");
    let e = error_of(csv::read_records_from("a\n".as_bytes()).delimiter(b'\n')).await;
    assert!(e.to_string().contains("line break"), "{e}");
    let mut options = CsvOptions::default();
    options.batch_size = 0;
    let e = error_of(csv::read_records_from("a\n".as_bytes()).options(options)).await;
    assert!(e.to_string().contains("batch_size"), "{e}");
}

#[tokio::test]
async fn lenient_quotes_read_as_the_csv_crate_does() {
    let data = "a,b\nab\"c\"d,\"x\"y\n\"open,1\n2,3\n";
    let rows = collect(
        csv::read_records_from(data.as_bytes())
            .lenient_quotes(true)
            .flexible(true),
    )
    .await
    .unwrap();
    assert_eq!(strings(&rows[0]), ["ab\"c\"d", "xy"]);
    // The open quote holds the rest of the input.
    assert_eq!(strings(&rows[1]), ["open,1\n2,3\n", ""]);
}

#[tokio::test]
async fn lossy_utf8_replaces_invalid_bytes() {
    let data = b"name,city\nJos\xE9,K\xF6ln\n";
    let rows = collect(csv::read_records_from(&data[..]).lossy_utf8(true))
        .await
        .unwrap();
    assert_eq!(strings(&rows[0]), ["Jos\u{FFFD}", "K\u{FFFD}ln"]);
    let header = b"n\xE4me\nx\n";
    let rows = collect(csv::read_records_from(&header[..]).lossy_utf8(true))
        .await
        .unwrap();
    assert_eq!(rows[0].schema().names().next(), Some("n\u{FFFD}me"));
}

// ---------------------------------------------------------------------------
// Edge cases

#[tokio::test]
async fn a_bom_is_skipped_but_counted_in_byte_offsets() {
    let data = b"\xEF\xBB\xBFid,user,amount\n1,ada,x\n";
    let e = error_of(csv::read_from::<Order>(&data[..])).await;
    // The header's first name is "id", not "\u{FEFF}id": the row decoded up to amount.
    assert_eq!(e.position(), &position(0, 2, 24).field("amount"));
    let rows = collect(csv::read_records_from(&data[..])).await.unwrap();
    assert_eq!(rows[0].schema().names().next(), Some("id"));
}

#[tokio::test]
async fn crlf_line_ends() {
    let data = "id,user,amount\r\n1,ada,1\r\n\r\n2,\"two\r\nlines\",2\r\n3,x,bad\r\n";
    let (rows, report) = collect_skipping(csv::read_from::<Order>(data.as_bytes())).await;
    assert_eq!(
        rows,
        vec![order(1, "ada", 1.0), order(2, "two\r\nlines", 2.0)]
    );
    assert_eq!(report.skipped(), 1);
    let e = error_of(csv::read_from::<Order>(data.as_bytes())).await;
    // Lines: header 1, record 2, blank 3, "two" 4, "lines" 5, the bad record 6.
    let byte = data.find("bad").unwrap() as u64;
    assert_eq!(e.position(), &position(2, 6, byte).field("amount"));
}

#[tokio::test]
async fn quoted_fields_hold_delimiters_quotes_and_newlines() {
    let data =
        "id,user,amount\n1,\"a,b\",1\n2,\"say \"\"hi\"\"\",2\n3,\"multi\nline\n\",3\n4,\"\",4\n";
    let rows = collect(csv::read_from::<Order>(data.as_bytes()))
        .await
        .unwrap();
    let users: Vec<&str> = rows.iter().map(|o| o.user.as_str()).collect();
    assert_eq!(users, ["a,b", "say \"hi\"", "multi\nline\n", ""]);
}

#[tokio::test]
async fn empty_fields() {
    let data = "a,b,c\n,,\n1,,3\n\"\",x,\n";
    let rows = collect(csv::read_records_from(data.as_bytes()))
        .await
        .unwrap();
    assert_eq!(rows[0].values(), &[Value::Null, Value::Null, Value::Null]);
    assert_eq!(
        rows[1].values(),
        &[Value::from("1"), Value::Null, Value::from("3")]
    );
    assert!(rows[2].get("a").unwrap().is_null());
    let typed = collect(csv::read_from::<(Option<u32>, String, Option<f64>)>(
        data.as_bytes(),
    ))
    .await
    .unwrap();
    assert_eq!(typed[0], (None, String::new(), None));
    assert_eq!(typed[1], (Some(1), String::new(), Some(3.0)));
}

#[tokio::test]
async fn an_empty_file_has_no_records_and_no_error() {
    for data in ["", "\n\n", "\r\n", "\u{FEFF}"] {
        let (_dir, path) = file(data);
        let report = Pipeline::from(csv::read::<Order>(&path))
            .to(sink::discard())
            .run()
            .await
            .unwrap();
        assert!(report.is_completed());
        assert_eq!((report.records_in(), report.batches_in()), (0, 0));
        let rows = collect(csv::read_records(&path).has_headers(false))
            .await
            .unwrap();
        assert!(rows.is_empty());
    }
}

#[tokio::test]
async fn a_header_only_file_has_no_records() {
    for data in [
        "id,user,amount",
        "id,user,amount\n",
        "id,user,amount\r\n\r\n",
    ] {
        let (_dir, path) = file(data);
        assert!(collect(csv::read::<Order>(&path)).await.unwrap().is_empty());
        let schema = Arc::new(Schema::new([("amount", DataType::Float)]));
        assert!(
            collect(csv::read_records(&path).schema(schema))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            collect(csv::read_records(&path).infer_schema(10))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_reader_that_waits_does_not_hold_records_back() {
    /// Bytes from a channel: `read` waits for the next chunk.
    struct ChannelReader(std::sync::mpsc::Receiver<Vec<u8>>, Vec<u8>);
    impl Read for ChannelReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.1.is_empty() {
                match self.0.recv() {
                    Ok(chunk) => self.1 = chunk,
                    Err(_) => return Ok(0),
                }
            }
            let n = buf.len().min(self.1.len());
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1.drain(..n);
            Ok(n)
        }
    }

    let (tx, rx) = std::sync::mpsc::channel();
    let mut source = csv::read_from::<(u32,)>(ChannelReader(rx, Vec::new()));
    let wait = std::time::Duration::from_secs(30);
    // Each record comes while the writer is still there; "3" may go on ("30").
    tx.send(b"n\n1\n".to_vec()).unwrap();
    let first = tokio::time::timeout(wait, source.next())
        .await
        .expect("record 1 sent");
    assert_eq!(first.unwrap().unwrap().into_records(), vec![(1,)]);
    tx.send(b"2\n3".to_vec()).unwrap();
    let second = tokio::time::timeout(wait, source.next())
        .await
        .expect("record 2 sent");
    assert_eq!(second.unwrap().unwrap().into_records(), vec![(2,)]);
    tx.send(b"0\n".to_vec()).unwrap();
    drop(tx);
    let rest: Vec<_> = source.map(|b| b.unwrap().into_records()).collect().await;
    assert_eq!(rest.concat(), vec![(30,)]);
}

#[tokio::test]
async fn a_read_error_ends_the_run_after_the_records_before_it() {
    /// Gives 8 bytes, is interrupted (and retried), then fails.
    struct Failing(std::io::Cursor<&'static [u8]>, u32);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 += 1;
            match self.1 {
                2 => Err(std::io::ErrorKind::Interrupted.into()),
                1 => {
                    let n = buf.len().min(8);
                    self.0.read(&mut buf[..n])
                }
                _ => Err(std::io::Error::other("disk on fire")),
            }
        }
    }
    let source = csv::read_from::<(u32,)>(Failing(std::io::Cursor::new(b"n\n1\n2\n3\n4\n"), 0));
    let items = items(source).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0].as_ref().unwrap(), &vec![(1,), (2,), (3,)]);
    let e = items[1].as_ref().unwrap_err();
    assert!(!e.is_record_level());
    assert!(matches!(e.kind(), ErrorKind::Io(_)), "{e:?}");
    assert!(e.to_string().contains("disk on fire"), "{e}");
}

// ---------------------------------------------------------------------------
// Schemas

#[tokio::test]
async fn a_schema_gives_types_and_picks_columns_by_name() {
    let schema = Arc::new(Schema::new([
        ("amount", DataType::Float),
        ("id", DataType::Int),
        ("paid", DataType::Bool),
        ("day", DataType::Date),
    ]));
    let data = "id,user,amount,paid,day\n1,ada,2.5,true,2024-02-29\n2,alan,,no,\n";
    let rows = collect(csv::read_records_from(data.as_bytes()).schema(schema.clone()))
        .await
        .unwrap();
    assert!(Arc::ptr_eq(rows[0].schema(), &schema));
    assert_eq!(
        rows[0].values(),
        &[
            Value::Float(2.5),
            Value::Int(1),
            Value::Bool(true),
            Value::Date(Date::from_ymd(2024, 2, 29).unwrap())
        ]
    );
    assert_eq!(
        rows[1].values(),
        &[Value::Null, Value::Int(2), Value::Bool(false), Value::Null]
    );

    // Without a header, by position.
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("name", DataType::Str),
    ]));
    let rows = collect(
        csv::read_records_from("7,x\n".as_bytes())
            .has_headers(false)
            .schema(schema),
    )
    .await
    .unwrap();
    assert_eq!(rows[0].values(), &[Value::Int(7), Value::from("x")]);
}

#[tokio::test]
async fn a_value_that_does_not_fit_the_schema_is_a_record_error() {
    let schema = Arc::new(Schema::new([
        ("id", DataType::Int),
        ("amount", DataType::Float),
    ]));
    let data = "id,amount\n1,2.5\n2,\"n/a\"\n3,4\n";
    let (_dir, path) = file(data);
    let e = error_of(csv::read_records(&path).schema(schema.clone())).await;
    assert_eq!(e.stage(), Some("source"));
    assert_eq!(e.path(), Some(path.as_path()));
    assert!(e.is_record_level());
    // The field's first byte: its opening quote.
    assert_eq!(e.position(), &position(1, 3, 18).field("amount"));
    assert_eq!(message(&e), "\"n/a\" is not a number");

    let (rows, report) = collect_skipping(csv::read_records(&path).schema(schema)).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(report.stage("source").unwrap().skipped, 1);
}

#[tokio::test]
async fn a_schema_column_missing_from_the_header_ends_the_run() {
    let schema = Arc::new(Schema::new([("price", DataType::Float)]));
    let (_dir, path) = file("id,amount\n1,2\n");
    let (rows, report) = collect_skipping(csv::read_records(&path).schema(schema)).await;
    assert!(rows.is_empty());
    let e = report.error().expect("failed");
    assert!(matches!(e.kind(), ErrorKind::Config(_)), "{e:?}");
    assert_eq!(e.path(), Some(path.as_path()));
    assert!(e.to_string().contains("\"price\""), "{e}");
}

#[tokio::test]
async fn infer_schema_guesses_types_from_the_first_rows() {
    let data = "i,f,d,b,s,e\n1,1.5,2024-01-01,true,a,\n-2,3,2024-12-31,false,1,\n3,1e3,,,x,\n";
    let (_dir, path) = file(data);
    for source in [
        csv::read_records(&path).infer_schema(2),
        csv::read_records_from(std::io::Cursor::new(data)).infer_schema(100),
    ] {
        let rows = collect(source).await.unwrap();
        let types: Vec<DataType> = rows[0]
            .schema()
            .fields()
            .iter()
            .map(Field::data_type)
            .collect();
        use DataType::*;
        assert_eq!(types, [Int, Float, Date, Bool, Str, Str]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].get("f"), Some(&Value::Float(1000.0)));
        assert_eq!(rows[1].get("s"), Some(&Value::from("1")));
    }

    // Beyond the rows looked at, a value that does not fit is a record error.
    let data = "n,word\n1,nan\n2,inf\nx,y\n";
    let e = error_of(csv::read_records_from(data.as_bytes()).infer_schema(2)).await;
    assert_eq!(e.position(), &position(2, 4, 19).field("n"));
    let rows = collect(csv::read_records_from(data.as_bytes()).infer_schema(3))
        .await
        .unwrap();
    assert_eq!(
        rows[0].schema().field(0).unwrap().data_type(),
        DataType::Str
    );
    assert_eq!(
        rows[0].schema().field(1).unwrap().data_type(),
        DataType::Str
    );

    // Without a header, names are col0...; malformed rows in the sample keep their place.
    let data = "1,2\n3\n4,5\n";
    let (rows, report) = collect_skipping(
        csv::read_records_from(data.as_bytes())
            .has_headers(false)
            .infer_schema(5),
    )
    .await;
    assert_eq!(report.skipped(), 1);
    assert_eq!(rows[1].values(), &[Value::Int(4), Value::Int(5)]);
    assert_eq!(
        rows[1].schema().names().collect::<Vec<_>>(),
        ["col0", "col1"]
    );
}

#[test]
#[should_panic(expected = "infer_schema")]
fn infer_schema_from_0_rows_panics() {
    let _ = csv::read_records("x.csv").infer_schema(0);
}

// ---------------------------------------------------------------------------
// Malformed input: exact errors

#[tokio::test]
async fn an_unterminated_quote_ends_the_run_at_the_opening_quote() {
    let data = "id,user,amount\n1,ada,1\n2,\"never closed,3\n4,x,5\n";
    let (_dir, path) = file(data);
    let e = error_of(csv::read::<Order>(&path)).await;
    assert_eq!(e.stage(), Some("source"));
    assert_eq!(e.path(), Some(path.as_path()));
    assert!(!e.is_record_level());
    assert_eq!(e.position(), &position(1, 3, 25).field("user"));
    assert_eq!(
        e.to_string(),
        format!(
            "stage \"source\": {}: record 2 (line 3, byte 25), field \"user\": \
             a quote opened on line 3 is never closed: record 2, starting on line 3, runs to \
             the end of the input, taking every line after it; check the quoting there",
            path.display()
        )
    );
    // Skipping it would drop every line after it: the run fails instead.
    let (_, report) = collect_skipping(csv::read::<Order>(&path)).await;
    let e = report.error().expect("the run fails under Skip");
    assert!(!e.is_record_level());
    assert_eq!(report.skipped(), 0);
}

#[tokio::test]
async fn a_quote_inside_an_unquoted_field_is_an_error() {
    let data = "id,user,amount\n1,ab\"c\"d,1\n2,ok,2\n";
    let e = error_of(csv::read_from::<Order>(data.as_bytes())).await;
    assert_eq!(e.position(), &position(0, 2, 19).field("user"));
    assert!(e.path().is_none());
    assert_eq!(
        message(&e),
        "quote '\"' inside an unquoted field (quote the whole field and double the quotes in it)"
    );
    // Reading goes on at the next record.
    let (rows, report) = collect_skipping(csv::read_from::<Order>(data.as_bytes())).await;
    assert_eq!(rows, vec![order(2, "ok", 2.0)]);
    assert_eq!(report.skipped(), 1);
}

#[tokio::test]
async fn text_after_a_closing_quote_is_an_error() {
    let data = "id,user,amount\n1,\"abc\"def,1\n2,\"ok\",2\n3,\"x\" ,3\n";
    let (_dir, path) = file(data);
    let e = error_of(csv::read::<Order>(&path)).await;
    assert_eq!(e.position(), &position(0, 2, 22).field("user"));
    assert_eq!(
        message(&e),
        "'d' after the closing quote of a quoted field (expected a delimiter or the end of the record)"
    );
    let (rows, report) = collect_skipping(csv::read::<Order>(&path)).await;
    assert_eq!(rows, vec![order(2, "ok", 2.0)]);
    assert_eq!(report.skipped(), 2); // `"x" ` too: a space after the quote
    assert_eq!(report.stage("source").unwrap().skipped, 2);
    assert!(report.has_errors());
}

#[tokio::test]
async fn ragged_rows_are_errors_unless_flexible() {
    let data = "a,b,c\n1,2,3\n4,5\n6,7,8,9\n10,11,12\n";
    let (_dir, path) = file(data);
    let e = error_of(csv::read_records(&path)).await;
    assert_eq!(e.position(), &position(1, 3, 12));
    assert_eq!(message(&e), "expected 3 fields, found 2");

    let errors: Vec<Error> = items(csv::read_records(&path))
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[1].position(), &position(2, 4, 16));
    assert_eq!(message(&errors[1]), "expected 3 fields, found 4");
    assert_eq!(errors[1].path(), Some(path.as_path()));

    let (rows, report) = collect_skipping(csv::read_records(&path)).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(report.skipped(), 2);
    assert_eq!(report.records_out(), 2);

    // Without a header, the first record sets the count.
    let e = error_of(csv::read_from::<Vec<String>>("1,2\n3\n".as_bytes()).has_headers(false)).await;
    assert_eq!(e.position(), &position(1, 2, 4));
}

#[tokio::test]
async fn invalid_utf8_is_an_error_at_the_bad_byte() {
    let data = b"id,user,amount\n1,Jos\xE9,1\n2,\"a\"\"b\nc\xFF\",2\n3,ok,3\n";
    let errors: Vec<Error> = items(csv::read_from::<Order>(&data[..]))
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].position(), &position(0, 2, 20).field("user"));
    assert_eq!(message(&errors[0]), "invalid UTF-8 (byte 0xE9)");
    // After a doubled quote and a line break inside the quoted field.
    assert_eq!(errors[1].position(), &position(1, 4, 33).field("user"));
    assert_eq!(message(&errors[1]), "invalid UTF-8 (byte 0xFF)");

    let (rows, report) = collect_skipping(csv::read_from::<Order>(&data[..])).await;
    assert_eq!(rows, vec![order(3, "ok", 3.0)]);
    assert_eq!(report.skipped(), 2);
}

#[tokio::test]
async fn a_value_that_does_not_deserialize_names_its_field() {
    let data = "id,user,amount\n1,ada,n/a\n";
    let (_dir, path) = file(data);
    let e = error_of(csv::read::<Order>(&path)).await;
    assert_eq!(e.position(), &position(0, 2, 21).field("amount"));
    assert_eq!(message(&e), "invalid value \"n/a\": invalid float literal");
    // Without a header, the field is named by its index.
    let e = error_of(csv::read::<Order>(&path).has_headers(false)).await;
    assert_eq!(e.position(), &position(0, 1, 0).field("0"));
}

#[tokio::test]
async fn a_very_large_field() {
    let big = "x".repeat(10 * 1024 * 1024);
    let mut data = format!("id,user,amount\n1,\"{big}\nstill\",1\n");
    let bad_row = data.len();
    data.push_str("2,\"bad\"x,2\n3,ok,3\n");
    let (_dir, path) = file(&data);
    let (rows, report) = collect_skipping(csv::read::<Order>(&path)).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].user.len(), big.len() + 6);
    assert_eq!(report.skipped(), 1);
    let e = error_of(csv::read::<Order>(&path)).await;
    assert_eq!(
        e.position(),
        &position(1, 4, bad_row as u64 + 7).field("user")
    );
}

#[tokio::test]
async fn a_nul_byte_is_data() {
    let data = "id,user,amount\n1,a\0b,1\n\x002,c,1\n";
    let errors: Vec<Result<Vec<Order>>> = items(csv::read_from::<Order>(data.as_bytes())).await;
    assert_eq!(errors[0].as_ref().unwrap(), &vec![order(1, "a\0b", 1.0)]);
    let e = errors[1].as_ref().unwrap_err();
    assert_eq!(e.position(), &position(1, 3, 23).field("id"));
    assert!(message(e).starts_with("invalid value \"\\02\""), "{e}");

    let schema = Arc::new(Schema::new([("id", DataType::Int)]));
    let data = "id\n\x00\n";
    let e = error_of(csv::read_records_from(data.as_bytes()).schema(schema)).await;
    assert_eq!(e.position(), &position(0, 2, 3).field("id"));
}

#[tokio::test]
async fn errors_in_the_header_row_end_the_run() {
    for (data, line, byte) in [
        (&b"id,\"us\"er,amount\n1,a,1\n"[..], 1, 7),
        (&b"id,user,amount,\"x\n"[..], 1, 15),
        (&b"id,us\xFFer,amount\n1,a,1\n"[..], 1, 5),
    ] {
        let (rows, report) = collect_skipping(csv::read_from::<Order>(data)).await;
        assert!(rows.is_empty());
        let e = report.error().expect("the run failed");
        assert!(!e.is_record_level());
        assert_eq!(e.stage(), Some("source"));
        assert_eq!(e.position(), &Position::new().line(line).byte(byte));
        assert!(message(e).contains("header row"), "{e}");
    }
}

#[tokio::test]
async fn skip_counts_every_malformed_row_and_keeps_the_good_ones() {
    let data = "id,user,amount\n\
                1,ada,1\n\
                2,\"x\"y,2\n\
                3,bob\n\
                4,eve,x\n\
                5,\"multi\nline\",5\n\
                6,\"end\"x,6\n";
    let (_dir, path) = file(data);
    let (rows, report) = collect_skipping(csv::read::<Order>(&path).batch_size(2)).await;
    assert_eq!(
        rows,
        vec![order(1, "ada", 1.0), order(5, "multi\nline", 5.0)]
    );
    assert!(report.has_errors());
    assert_eq!(report.skipped(), 4);
    let source = report.stage("source").unwrap();
    assert_eq!((source.skipped, source.records_out), (4, 2));
    assert_eq!(report.records_out(), 2);

    // The source's own view: batches and errors in input order.
    let seq: Vec<String> = items(csv::read::<Order>(&path))
        .await
        .into_iter()
        .map(|item| match item {
            Ok(batch) => format!("{} ok", batch.len()),
            Err(e) => format!("record {}", e.position().record.unwrap()),
        })
        .collect();
    assert_eq!(
        seq,
        [
            "1 ok", "record 1", "record 2", "record 3", "1 ok", "record 5"
        ]
    );
}

// ---------------------------------------------------------------------------
// Arbitrary bytes never panic

fn arbitrary_csv() -> impl Strategy<Value = Vec<u8>> {
    let alphabet = vec![
        b'a', b'1', b'.', b'-', b' ', b',', b';', b'"', b'\'', b'\\', b'#', b'\r', b'\n', 0, 0xEF,
        0xBB, 0xBF, 0xC3, 0xA9, 0xFF,
    ];
    prop_oneof![
        prop::collection::vec(prop::sample::select(alphabet), 0..200),
        prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[derive(Debug, Clone)]
struct Settings {
    has_headers: bool,
    flexible: bool,
    lenient: bool,
    lossy: bool,
    escape: Option<u8>,
    comment: Option<u8>,
    trim: Trim,
    infer: Option<usize>,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        any::<(bool, bool, bool, bool)>(),
        prop::option::of(Just(b'\\')),
        prop::option::of(Just(b'#')),
        prop::sample::select(vec![Trim::None, Trim::All]),
        prop::option::of(1usize..4),
    )
        .prop_map(
            |((has_headers, flexible, lenient, lossy), escape, comment, trim, infer)| Settings {
                has_headers,
                flexible,
                lenient,
                lossy,
                escape,
                comment,
                trim,
                infer,
            },
        )
}

fn options(s: &Settings) -> CsvOptions {
    let mut o = CsvOptions::default();
    o.has_headers = s.has_headers;
    o.flexible = s.flexible;
    o.lenient_quotes = s.lenient;
    o.lossy_utf8 = s.lossy;
    o.escape = s.escape;
    o.comment = s.comment;
    o.trim = s.trim;
    o.batch_size = 3;
    o
}

/// The run returned, and if it failed, not from a panic or an internal error.
fn assert_sane(report: &Report) {
    if let Some(e) = report.error() {
        assert!(!e.is_panic(), "{e}");
        assert!(!e.to_string().contains("internal error"), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn arbitrary_bytes_never_panic(data in arbitrary_csv(), s in settings()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for skip in [true, false] {
                let policy = || if skip { ErrorPolicy::Skip } else { ErrorPolicy::Abort };
                let mut records = csv::read_records_from(std::io::Cursor::new(data.clone()))
                    .options(options(&s));
                if let Some(n) = s.infer {
                    records = records.infer_schema(n);
                }
                let report = Pipeline::from(records)
                    .on_error(policy())
                    .to(sink::discard())
                    .run_to_report()
                    .await;
                assert_sane(&report);
                if skip {
                    // Only stream-level errors (the header) fail a skipping run.
                    if let Some(e) = report.error() {
                        assert!(!e.is_record_level(), "{e}");
                    }
                }

                let typed = csv::read_from::<(Option<i64>, String)>(std::io::Cursor::new(data.clone()))
                    .options(options(&s));
                let report = Pipeline::from(typed)
                    .on_error(policy())
                    .to(sink::discard())
                    .run_to_report()
                    .await;
                assert_sane(&report);
            }
        });
    }
}
