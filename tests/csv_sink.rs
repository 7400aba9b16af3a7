//! The CSV sink: headers, dialect options, quoting, append mode, writers,
//! atomic output and errors found before any data is read.

mod support;
use support::entries;

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dataflare::prelude::*;
use dataflare::record::{DataType, Record, Schema, Value};
use dataflare::testkit::failing_source;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
struct Order {
    id: u64,
    user: String,
    amount: f64,
    note: Option<String>,
}

fn orders(n: u64) -> Vec<Order> {
    (0..n)
        .map(|id| Order {
            id,
            user: format!("u{id}"),
            amount: id as f64 * 1.5,
            note: (id % 2 == 0).then(|| "even".to_string()),
        })
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A source of `records` counting how many were read, through an iterator side effect.
fn counted<T: Send + 'static>(records: Vec<T>) -> (impl Source<Record = T>, Arc<AtomicUsize>) {
    let reads = Arc::new(AtomicUsize::new(0));
    let r = reads.clone();
    let source = source::iter(records.into_iter().inspect(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    (source, reads)
}

fn city_schema() -> Arc<Schema> {
    Arc::new(Schema::new([
        ("city", DataType::Str),
        ("pop", DataType::Int),
        ("area", DataType::Float),
        ("capital", DataType::Bool),
    ]))
}

fn city(schema: &Arc<Schema>, name: &str, pop: Option<i64>, area: f64, capital: bool) -> Record {
    Record::new(
        schema.clone(),
        vec![
            Value::from(name),
            Value::from(pop),
            Value::Float(area),
            Value::Bool(capital),
        ],
    )
}

#[tokio::test]
async fn header_from_the_struct_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    let report = Pipeline::from(source::iter(orders(3)).batch_size(2))
        .to(dataflare::csv::write(&path))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 3);
    assert_eq!(
        read(&path),
        "id,user,amount,note\n0,u0,0.0,even\n1,u1,1.5,\n2,u2,3.0,even\n"
    );
    assert_eq!(
        entries(dir.path()),
        ["orders.csv"],
        "no temporary file left"
    );
}

#[tokio::test]
async fn header_from_the_first_records_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let schema = city_schema();
    let rows = vec![
        city(&schema, "Lyon", Some(522_000), 47.87, false),
        city(&schema, "Atlantis", None, 2.0, true),
    ];
    Pipeline::from(source::iter(rows))
        .to(dataflare::csv::write_records(&path))
        .run()
        .await
        .unwrap();
    // Values through their Display: Null is an empty field, floats shortest.
    assert_eq!(
        read(&path),
        "city,pop,area,capital\nLyon,522000,47.87,false\nAtlantis,,2,true\n"
    );
}

#[tokio::test]
async fn records_through_the_typed_constructor_take_their_header_from_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let schema = city_schema();
    Pipeline::from(source::iter(vec![city(
        &schema,
        "Oslo",
        Some(1),
        0.5,
        true,
    )]))
    .to(dataflare::csv::write::<Record>(&path))
    .run()
    .await
    .unwrap();
    assert_eq!(read(&path), "city,pop,area,capital\nOslo,1,0.5,true\n");
}

#[tokio::test]
async fn equal_schemas_in_different_arcs_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let rows = vec![
        city(&city_schema(), "A", Some(1), 1.0, true),
        city(&city_schema(), "B", Some(2), 2.0, false),
    ];
    Pipeline::from(source::iter(rows))
        .to(dataflare::csv::write_records(&path))
        .run()
        .await
        .unwrap();
    assert_eq!(read(&path).lines().count(), 3);
}

#[tokio::test]
async fn a_record_with_other_columns_fails_the_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cities.csv");
    let schema = city_schema();
    let other = Arc::new(Schema::strings(["city", "country"]));
    let rows = vec![
        city(&schema, "A", Some(1), 1.0, true),
        city(&schema, "B", Some(2), 2.0, false),
        Record::new(other, vec![Value::from("C"), Value::from("X")]),
    ];
    let err = Pipeline::from(source::iter(rows).batch_size(2))
        .to(dataflare::csv::write_records(&path))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("sink"));
    assert_eq!(err.path(), Some(path.as_path()));
    assert_eq!(err.position().record, Some(2));
    let text = err.to_string();
    assert!(
        text.contains("record 3")
            && text.contains(
                "(city, country) differ from the first record's (city, pop, area, capital)"
            ),
        "{text}"
    );
    assert!(entries(dir.path()).is_empty(), "no partial output");
}

#[tokio::test]
async fn a_record_that_cannot_be_serialized_is_named() {
    /// Serializes like a one-field struct, except the value 3.
    struct Picky(u32);
    impl Serialize for Picky {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error as _, SerializeStruct};
            if self.0 == 3 {
                return Err(S::Error::custom("three is not allowed"));
            }
            let mut st = s.serialize_struct("Picky", 1)?;
            st.serialize_field("n", &self.0)?;
            st.end()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("picky.csv");
    let err = Pipeline::from(source::iter((0..10).map(Picky)).batch_size(2))
        .to(dataflare::csv::write(&path))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.position().record, Some(3));
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(err.to_string().contains("three is not allowed"), "{err}");
}

#[tokio::test]
async fn unequal_lengths_fail_unless_flexible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.csv");
    let rows = vec![vec![1, 2], vec![3, 4], vec![5]];
    let err = Pipeline::from(source::iter(rows.clone()))
        .to(dataflare::csv::write(&path))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.position().record, Some(2));
    assert!(
        err.to_string()
            .contains("has 1 fields but the previous one has 2"),
        "{err}"
    );

    let mut options = dataflare::csv::CsvOptions::default();
    options.flexible = true;
    Pipeline::from(source::iter(rows))
        .to(dataflare::csv::write(&path).options(options))
        .run()
        .await
        .unwrap();
    assert_eq!(read(&path), "1,2\n3,4\n5\n");
}

#[tokio::test]
async fn delimiter_quote_and_header_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    #[derive(Serialize)]
    struct Row {
        a: &'static str,
        b: &'static str,
    }
    let rows = vec![
        Row {
            a: "x;y",
            b: "it's",
        },
        Row {
            a: "plain",
            b: "q\"q",
        },
    ];
    Pipeline::from(source::iter(rows))
        .to(dataflare::csv::write(&path).delimiter(b';').quote(b'\''))
        .run()
        .await
        .unwrap();
    // The field holding the delimiter and the one holding the quote are
    // quoted; a `"` is now an ordinary character.
    assert_eq!(read(&path), "a;b\n'x;y';'it''s'\nplain;q\"q\n");

    let path = dir.path().join("no_header.tsv");
    Pipeline::from(source::iter(vec![Row { a: "1", b: "2" }]))
        .to(dataflare::csv::write(&path)
            .delimiter(b'\t')
            .has_headers(false))
        .run()
        .await
        .unwrap();
    assert_eq!(read(&path), "1\t2\n");

    let path = dir.path().join("escaped.csv");
    Pipeline::from(source::iter(vec![Row {
        a: "say \"hi\"",
        b: "",
    }]))
    .to(dataflare::csv::write(&path)
        .double_quote(false)
        .escape(b'\\'))
    .run()
    .await
    .unwrap();
    assert_eq!(read(&path), "a,b\n\"say \\\"hi\\\"\",\n");
}

#[tokio::test]
async fn fields_with_delimiters_quotes_and_line_breaks_are_quoted_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tricky.csv");
    let texts = [
        "a,b",
        "say \"hi\"",
        "two\nlines",
        "crlf\r\nline",
        " padded ",
        "",
        "plain",
    ];
    let schema = Arc::new(Schema::strings(["i", "text"]));
    let rows: Vec<Record> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Record::new(
                schema.clone(),
                vec![Value::from(i.to_string()), Value::from(*t)],
            )
        })
        .collect();
    Pipeline::from(source::iter(rows))
        .to(dataflare::csv::write_records(&path))
        .run()
        .await
        .unwrap();
    let text = read(&path);
    assert!(text.contains("\"a,b\""), "{text}");
    assert!(text.contains("\"say \"\"hi\"\"\""), "{text}");
    assert!(text.contains("\"two\nlines\""), "{text}");
    let mut reader = ::csv::Reader::from_path(&path).unwrap();
    let back: Vec<String> = reader
        .records()
        .map(|r| r.unwrap().get(1).unwrap().to_string())
        .collect();
    assert_eq!(back, texts);
}

#[tokio::test]
async fn append_adds_rows_without_repeating_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.csv");
    for chunk in [0..2u64, 2..3] {
        let rows: Vec<Order> = orders(3)
            .into_iter()
            .filter(|o| chunk.contains(&o.id))
            .collect();
        Pipeline::from(source::iter(rows))
            .to(dataflare::csv::write(&path).append())
            .run()
            .await
            .unwrap();
    }
    assert_eq!(
        read(&path),
        "id,user,amount,note\n0,u0,0.0,even\n1,u1,1.5,\n2,u2,3.0,even\n"
    );

    // Records too; and a file not ending with a line break gets one first.
    let path = dir.path().join("cities.csv");
    std::fs::write(&path, "city,pop,area,capital\nA,1,1,true").unwrap();
    let schema = city_schema();
    Pipeline::from(source::iter(vec![city(&schema, "B", Some(2), 2.5, false)]))
        .to(dataflare::csv::write_records(&path).append())
        .run()
        .await
        .unwrap();
    assert_eq!(
        read(&path),
        "city,pop,area,capital\nA,1,1,true\nB,2,2.5,false\n"
    );
}

#[tokio::test]
async fn append_to_an_empty_file_writes_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.csv");
    std::fs::write(&path, "").unwrap();
    Pipeline::from(source::iter(orders(1)))
        .to(dataflare::csv::write(&path).append())
        .run()
        .await
        .unwrap();
    assert_eq!(read(&path), "id,user,amount,note\n0,u0,0.0,even\n");
}

/// A writer into a shared buffer, readable after the run.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[tokio::test]
async fn write_to_any_writer() {
    let out = Shared::default();
    Pipeline::from(source::iter(orders(2)))
        .to(dataflare::csv::write_to(out.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.text(),
        "id,user,amount,note\n0,u0,0.0,even\n1,u1,1.5,\n"
    );

    let out = Shared::default();
    let schema = city_schema();
    Pipeline::from(source::iter(vec![city(&schema, "C", None, 1.25, false)]))
        .to(dataflare::csv::write_records_to(out.clone()).delimiter(b'|'))
        .run()
        .await
        .unwrap();
    assert_eq!(out.text(), "city|pop|area|capital\nC||1.25|false\n");
}

#[tokio::test]
async fn an_empty_run_writes_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.csv");
    std::fs::write(&path, "old").unwrap();
    let report = Pipeline::from(source::iter(Vec::<Order>::new()))
        .to(dataflare::csv::write(&path))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 0);
    assert_eq!(read(&path), "");
    assert_eq!(entries(dir.path()), ["none.csv"]);
}

#[tokio::test]
async fn a_failed_run_leaves_no_file_and_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    let report = Pipeline::from(failing_source(orders(1000), 10, 500))
        .to(dataflare::csv::write(&path))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert!(!path.exists(), "no output file");
    assert!(
        entries(dir.path()).is_empty(),
        "no temporary file once run returned"
    );
}

#[tokio::test]
async fn a_failed_run_keeps_the_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.csv");
    std::fs::write(&path, "id\n42\n").unwrap();
    let schema = city_schema();
    let rows: Vec<Record> = (0..100)
        .map(|i| city(&schema, "X", Some(i), 1.0, false))
        .collect();
    let report = Pipeline::from(failing_source(rows, 7, 50))
        .to(dataflare::csv::write_records(&path))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(read(&path), "id\n42\n", "the good file is untouched");
    assert_eq!(
        entries(dir.path()),
        ["out.csv"],
        "no temporary file once run returned"
    );
}

#[tokio::test]
async fn a_missing_output_directory_fails_before_any_record_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/out.csv");
    let (source, reads) = counted(orders(100));
    let err = Pipeline::from(source)
        .to(dataflare::csv::write(&path))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.stage(), Some("sink"));
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(reads.load(Ordering::SeqCst), 0, "no record was read");
}

#[tokio::test]
async fn a_directory_as_output_fails_before_any_record_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for append in [false, true] {
        let (source, reads) = counted(orders(100));
        let sink = dataflare::csv::write(dir.path());
        let sink = if append { sink.append() } else { sink };
        let err = Pipeline::from(source).to(sink).run().await.unwrap_err();
        assert!(err.to_string().contains("is a directory"), "{err}");
        assert_eq!(err.path(), Some(dir.path()));
        assert_eq!(reads.load(Ordering::SeqCst), 0, "no record was read");
    }
    assert!(entries(dir.path()).is_empty());
}

/// True when a file can be created in `dir`.
fn can_create_in(dir: &Path) -> bool {
    let probe = dir.join(".dataflare-probe");
    let ok = std::fs::write(&probe, "").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

#[cfg(unix)]
#[tokio::test]
async fn an_unwritable_directory_fails_before_any_record_is_read() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root (as in many containers) writes through directory permissions: then
    // try a directory the kernel refuses (sysfs), and if there is none, skip
    // this one assertion rather than pretend it was made.
    let unwritable = [locked.as_path(), Path::new("/sys")]
        .into_iter()
        .find(|d| d.is_dir() && !can_create_in(d));
    match unwritable {
        Some(target) => {
            let path = target.join("out.csv");
            let (source, reads) = counted(orders(100));
            let err = Pipeline::from(source)
                .to(dataflare::csv::write(&path))
                .run()
                .await
                .unwrap_err();
            assert_eq!(err.stage(), Some("sink"));
            assert_eq!(err.path(), Some(path.as_path()));
            assert!(matches!(err.kind(), dataflare::ErrorKind::Io(_)), "{err:?}");
            assert_eq!(reads.load(Ordering::SeqCst), 0, "no record was read");
        }
        None => eprintln!("skipped: no directory this user cannot write to (running as root?)"),
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}
