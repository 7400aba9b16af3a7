//! `csv::read_chunks` and `csv::write_chunks`: chunks cut at record
//! boundaries give exactly the records of the whole file at every chunk
//! size; errors name the file, line, byte and field; the sink writes in
//! input order and nothing on a failed run.

use std::path::Path;

use dataflare::csv::{self, CsvChunk, CsvOut};
use dataflare::prelude::*;
use dataflare::testkit::failing_source;

/// A record's fields and where it starts (line, byte).
type Parsed = (Vec<Vec<u8>>, u64, u64);

/// What the `csv` crate gives reading the whole file, header excluded.
fn whole(path: &Path) -> Vec<Parsed> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .unwrap();
    let mut record = ::csv::ByteRecord::new();
    let mut out = Vec::new();
    let bytes = std::fs::read(path).unwrap();
    while reader.read_byte_record(&mut record).unwrap() {
        let p = record.position().unwrap();
        // The record's first byte: the `csv` crate's position may be before
        // a blank line or the `\n` of a `\r\n`.
        let (mut line, mut byte) = (p.line(), p.byte() as usize);
        while matches!(bytes.get(byte), Some(b'\r' | b'\n')) {
            line += u64::from(bytes[byte] == b'\n');
            byte += 1;
        }
        out.push((
            record.iter().map(<[u8]>::to_vec).collect(),
            line,
            byte as u64,
        ));
    }
    out
}

/// The rows of every chunk of `path`, read in blocks of `size` bytes, with
/// each chunk's first line and byte.
async fn chunked(path: &Path, size: usize) -> (Vec<Parsed>, Vec<(u64, u64)>) {
    let out = Collected::new();
    Pipeline::from(csv::read_chunks(path).chunk_size(size))
        .map(|chunk: CsvChunk| {
            let mut rows = Vec::new();
            chunk
                .for_each_row(|row| {
                    let fields = (0..row.len()).map(|i| row.get(i).unwrap().to_vec());
                    rows.push((fields.collect(), row.line(), row.byte()));
                    Ok(())
                })
                .unwrap();
            (rows, (chunk.first_line(), chunk.first_byte()))
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let (rows, starts): (Vec<_>, Vec<_>) = out.to_vec().into_iter().unzip();
    (rows.concat(), starts)
}

const TRICKY: &str = "id,text,n\r\n\
    1,plain,10\r\n\
    2,\"quoted, with comma\",20\n\
    3,\"two\nlines\",30\n\
    4,\"say \"\"hi\"\"\",40\n\
    \n\
    5,\"\"\"\",50\n\
    6,\"\",60\r\n\
    7,\"a\r\nb\nc\",70\n\
    8,last,80";

#[tokio::test]
async fn every_chunk_size_gives_the_records_of_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("tricky.csv", TRICKY.to_string()),
        ("tricky-nl.csv", format!("{TRICKY}\n")),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &text).unwrap();
        let expected = whole(&path);
        assert_eq!(expected.len(), 8);
        for size in 1..=64 {
            let (rows, starts) = chunked(&path, size).await;
            assert_eq!(rows, expected, "{name} in blocks of {size} bytes");
            // Each chunk starts where the last ended, at a line that many
            // line breaks further.
            let bytes = text.as_bytes();
            for (line, byte) in starts {
                let before = &bytes[..byte as usize];
                assert!(before.ends_with(b"\n"), "{name}/{size}: cut at {byte}");
                assert_eq!(
                    line,
                    1 + before.iter().filter(|&&b| b == b'\n').count() as u64
                );
            }
        }
    }
}

#[tokio::test]
async fn chunks_hold_about_a_block_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.csv");
    let mut text = String::from("id,v\n");
    for i in 0..10_000 {
        text.push_str(&format!("{i},\"v{i}\"\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let out = Collected::new();
    Pipeline::from(csv::read_chunks(&path).chunk_size(4096))
        .map(|chunk: CsvChunk| chunk.len())
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let sizes = out.to_vec();
    assert_eq!(sizes.iter().sum::<usize>(), text.len() - 5);
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.iter().all(|&n| n <= 4096 && n > 4000), "{sizes:?}");
    assert!(*last <= 4096);
}

/// What `f` makes of each row of `path` (or of its error), read in blocks of
/// `size` bytes, in file order; `None`s left out.
async fn each_row<T: Send + 'static>(
    path: &Path,
    size: usize,
    f: impl Fn(dataflare::Result<csv::Row<'_>>) -> Option<T> + Send + 'static,
) -> Vec<T> {
    let out = Collected::new();
    Pipeline::from(csv::read_chunks(path).chunk_size(size))
        .map(move |chunk: CsvChunk| {
            let mut made = Vec::new();
            let mut rows = chunk.rows();
            while let Some(row) = rows.next_row() {
                made.extend(f(row));
            }
            made
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    out.take().into_iter().flatten().collect()
}

/// The errors of field `column` parsed as a number in every row of `path`,
/// read in blocks of `size` bytes.
async fn number_errors(path: &Path, size: usize, column: usize) -> Vec<dataflare::Error> {
    each_row(path, size, move |row| {
        row.unwrap().parse::<f64>(column).err()
    })
    .await
}

#[tokio::test]
async fn a_bad_number_names_the_file_line_byte_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "id,amount\n1,2.5\n2,\"a\nb\"\n3,x7\n").unwrap();
    for size in [1, 4, 1 << 20] {
        let errors = number_errors(&path, size, 1).await;
        assert_eq!(errors.len(), 2, "{size}: {errors:?}");
        let (e, f) = (&errors[0], &errors[1]);
        assert!(e.is_record_level());
        assert_eq!(e.path(), Some(path.as_path()));
        // The field's own line and byte, as the CSV source gives them.
        assert_eq!(e.position().line, Some(3));
        assert_eq!(e.position().byte, Some(18));
        assert_eq!(e.position().field.as_deref(), Some("amount"));
        assert!(e.to_string().contains("invalid value \"a\\nb\""), "{e}");
        assert_eq!(f.position().line, Some(5));
        assert_eq!(f.position().byte, Some(26));
        assert!(f.to_string().contains("bad.csv"), "{f}");
    }
}

/// The chunked path and the CSV source name the same line, byte and field
/// for a value that does not parse, wherever it is in its record (after a
/// quoted field holding a line break, quoted itself, the last field).
#[tokio::test]
async fn a_bad_value_has_the_position_the_csv_source_gives() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Row {
        id: u64,
        note: String,
        amount: f64,
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, bad) in [
        "2,\"x\ny\",oops\n",
        "2,\"a,b\",\"oops\"\n",
        "\"2\",plain,1e\r\n",
        "2,,-\n",
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("bad{i}.csv"));
        std::fs::write(
            &path,
            format!("id,note,amount\n1,\"a\nb\",2.5\n{bad}3,c,4\n"),
        )
        .unwrap();
        let source = Pipeline::from(csv::read::<Row>(&path))
            .to(sink::discard())
            .run()
            .await
            .unwrap_err();
        let chunked = number_errors(&path, 1 << 20, 2).await;
        assert_eq!(chunked.len(), 1, "{bad:?}: {chunked:?}");
        let (s, c) = (source.position(), chunked[0].position());
        assert_eq!(
            (c.line, c.byte),
            (s.line, s.byte),
            "{bad:?}: {source} / {}",
            chunked[0]
        );
        assert_eq!(c.field, s.field, "{bad:?}");
        assert_eq!(c.field.as_deref(), Some("amount"));
    }
}

#[tokio::test]
async fn a_record_of_the_wrong_width_is_a_record_level_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ragged.csv");
    std::fs::write(&path, "a,b\n1,2\n3\n4,5,6\n7,8\n").unwrap();
    let out = Collected::new();
    Pipeline::from(csv::read_chunks(&path))
        .map(|chunk: CsvChunk| {
            let mut seen = Vec::new();
            let mut rows = chunk.rows();
            while let Some(row) = rows.next_row() {
                seen.push(match row {
                    Ok(row) => format!("ok {}", row.line()),
                    Err(e) => {
                        assert!(e.is_record_level());
                        e.to_string()
                    }
                });
            }
            seen
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let seen = out.to_vec().concat();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0], "ok 2");
    assert!(seen[1].contains("line 3, byte 8") && seen[1].contains("expected 2 fields, found 1"));
    assert!(seen[2].contains("line 4, byte 10") && seen[2].contains("found 3"));
    assert_eq!(seen[3], "ok 5");
}

async fn read_error(path: &Path, size: usize, max: usize) -> dataflare::Error {
    Pipeline::from(
        csv::read_chunks(path)
            .chunk_size(size)
            .max_record_bytes(max),
    )
    .map(|chunk: CsvChunk| chunk.len())
    .to(sink::discard())
    .run()
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_record_longer_than_the_limit_fails_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.csv");
    let long = "x".repeat(100);
    std::fs::write(&path, format!("a,b\n1,2\n3,\"{long}\"\n5,6\n")).unwrap();
    for size in [1, 7, 64] {
        let e = read_error(&path, size, 50).await;
        assert_eq!(e.position().line, Some(3), "{size}: {e}");
        assert_eq!(e.position().byte, Some(8), "{size}: {e}");
        assert!(e.to_string().contains("longer than 50 bytes"), "{e}");
    }
    // Within the limit, it is read whatever the block size.
    let (rows, _) = chunked(&path, 3).await;
    assert_eq!(rows, whole(&path));
}

#[tokio::test]
async fn bad_quoting_fails_naming_the_line_and_byte() {
    let dir = tempfile::tempdir().unwrap();
    for (text, line, byte, what) in [
        ("a,b\n1,2\n3,x\"y\n", 3, 11, "inside an unquoted field"),
        ("a,b\n1,2\n3,\"x\"y\n", 3, 13, "after the closing quote"),
        ("a,b\n1,2\n3,\"x\n\n", 3, 10, "never closed"),
    ] {
        let path = dir.path().join("quotes.csv");
        std::fs::write(&path, text).unwrap();
        for size in [1, 5, 1024] {
            let e = read_error(&path, size, 1 << 20).await;
            assert_eq!(e.position().line, Some(line), "{text:?}/{size}: {e}");
            assert_eq!(e.position().byte, Some(byte), "{text:?}/{size}: {e}");
            assert!(e.to_string().contains(what), "{e}");
        }
    }
}

#[tokio::test]
async fn a_header_only_or_empty_file_gives_no_chunk() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "a,b\n", "a,b", "\n\na,b\r\n"] {
        let path = dir.path().join("few.csv");
        std::fs::write(&path, text).unwrap();
        let out = Collected::new();
        let report = Pipeline::from(csv::read_chunks(&path))
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
        assert_eq!(report.records_out(), 0, "{text:?}");
    }
    // The sink still writes its header.
    let path = dir.path().join("few.csv");
    std::fs::write(&path, "a,b\n").unwrap();
    let output = dir.path().join("out.csv");
    Pipeline::from(csv::read_chunks(&path))
        .map(|chunk: CsvChunk| chunk.bytes().to_vec())
        .to(csv::write_chunks(&output).header(["a", "b"]))
        .run()
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "a,b\n");
}

#[tokio::test]
async fn headers_come_with_every_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.csv");
    std::fs::write(&path, "\u{feff}id,\"na,me\"\n1,a\n2,b\n").unwrap();
    let out = Collected::new();
    Pipeline::from(csv::read_chunks(&path).chunk_size(2))
        .map(|chunk: CsvChunk| chunk.headers().iter().map(String::from).collect::<Vec<_>>())
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let expected = vec!["id".to_string(), "na,me".to_string()];
    assert_eq!(out.to_vec(), vec![expected.clone(), expected]);
}

#[tokio::test]
async fn the_sink_writes_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    // Uneven work per block, on 2 workers: the order is still the input's.
    let report = Pipeline::from(source::iter(0..2000u64).batch_size(3))
        .par_map(2, |i: u64| {
            let spin = if i.is_multiple_of(7) { 20_000 } else { 10 };
            let x = (0..spin).fold(i, |a, b| a.wrapping_mul(31).wrapping_add(b));
            let mut out = CsvOut::new();
            out.write_record([i.to_string(), (x % 2).to_string()])
                .unwrap();
            out.into_bytes()
        })
        .to(csv::write_chunks(&output).header(["i", "bit"]))
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 2000);
    let text = std::fs::read_to_string(&output).unwrap();
    let firsts: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(firsts, (0..2000).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failed_run_writes_nothing_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.csv");
    std::fs::write(&output, "old\n").unwrap();
    let blocks = (0..100).map(|i| format!("{i}\n").into_bytes());
    let report = Pipeline::from(failing_source(blocks, 5, 50))
        .to(csv::write_chunks(&output).header(["i"]))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(std::fs::read_to_string(&output).unwrap(), "old\n");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
}

#[tokio::test]
async fn chunks_to_chunks_copies_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, TRICKY).unwrap();
    let output = dir.path().join("out.csv");
    Pipeline::from(csv::read_chunks(&input).chunk_size(7))
        .par_map(2, |chunk: CsvChunk| {
            let mut out = CsvOut::new();
            chunk
                .for_each_row(|row| out.write_record(row.iter()))
                .unwrap();
            out.into_bytes()
        })
        .to(csv::write_chunks(&output).header(["id", "text", "n"]))
        .run()
        .await
        .unwrap();
    let fields = |p: &Path| -> Vec<Vec<Vec<u8>>> { whole(p).into_iter().map(|r| r.0).collect() };
    assert_eq!(fields(&output), fields(&input));
}

#[tokio::test]
async fn a_missing_file_or_a_quote_delimiter_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let e = read_error(&missing, 16, 1024).await;
    assert_eq!(e.path(), Some(missing.as_path()));
    let path = dir.path().join("x.csv");
    std::fs::write(&path, "a\n").unwrap();
    let e = Pipeline::from(csv::read_chunks(&path).delimiter(b'"'))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("delimiter"), "{e}");
}

#[tokio::test]
async fn invalid_utf8_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin1.csv");
    std::fs::write(&path, b"id,name\n1,ok\n2,caf\xE9\n").unwrap();
    let out = Collected::new();
    Pipeline::from(csv::read_chunks(&path))
        .map(|chunk: CsvChunk| {
            let mut errors = Vec::new();
            chunk
                .for_each_row(|row| {
                    if let Err(e) = row.str(1) {
                        errors.push(e.to_string());
                    }
                    Ok(())
                })
                .unwrap();
            errors
        })
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    let errors = out.to_vec().concat();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("line 3, byte 15, field \"name\": invalid UTF-8 (byte 0xE9)"),
        "{}",
        errors[0]
    );
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    /// Fields of a few kinds: plain, with the delimiter, quotes, line breaks.
    fn field() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("a"),
                Just("bc"),
                Just(","),
                Just("\""),
                Just("\n"),
                Just("\r\n"),
                Just(" "),
                Just("é"),
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Records written by the `csv` crate (quoted as it quotes), lines
        /// ending in `\n` or `\r\n`, read in blocks of any size: the rows
        /// and their positions are the whole file's.
        #[test]
        fn any_file_at_any_chunk_size(
            records in prop::collection::vec(prop::collection::vec(field(), 3), 0..20),
            crlf in any::<bool>(),
            newline_at_end in any::<bool>(),
            size in 1usize..80,
        ) {
            let terminator = if crlf {
                ::csv::Terminator::CRLF
            } else {
                ::csv::Terminator::Any(b'\n')
            };
            let mut w = ::csv::WriterBuilder::new().terminator(terminator).from_writer(Vec::new());
            w.write_record(["x", "y", "z"]).unwrap();
            for r in &records {
                w.write_record(r).unwrap();
            }
            let mut text = w.into_inner().unwrap();
            if !newline_at_end && !records.is_empty() {
                while matches!(text.last(), Some(b'\n' | b'\r')) {
                    text.pop();
                }
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("gen.csv");
            std::fs::write(&path, &text).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (rows, _) = rt.block_on(chunked(&path, size));
            prop_assert_eq!(rows, whole(&path));
        }
    }
}

#[tokio::test]
async fn a_row_error_in_par_try_map_fails_the_run_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let mut text = String::from("id,amount\n");
    for i in 0..5000 {
        text.push_str(&format!("{i},{}.5\n", i % 97));
    }
    text.push_str("5000,12x\n");
    std::fs::write(&input, &text).unwrap();
    let output = dir.path().join("out.csv");
    let err = Pipeline::from(csv::read_chunks(&input).chunk_size(1024))
        .par_try_map(2, |chunk: &CsvChunk| -> dataflare::Result<Vec<u8>> {
            let mut out = CsvOut::new();
            chunk.for_each_row(|row| {
                let amount: f64 = row.parse(1)?;
                out.write_record([row.str(0)?, &amount.to_string()])
            })?;
            Ok(out.into_bytes())
        })
        .to(csv::write_chunks(&output).header(["id", "amount"]))
        .run()
        .await
        .unwrap_err();
    assert_eq!(err.path(), Some(input.as_path()));
    assert_eq!(err.position().line, Some(5002));
    // The field's byte: "12x" after "5000,".
    assert_eq!(err.position().byte, Some(text.len() as u64 - 4));
    assert_eq!(err.position().field.as_deref(), Some("amount"));
    assert!(!output.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A row of the typed tests: text that may be quoted or hold line breaks, a
/// number, and an optional number.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
struct Typed {
    id: u64,
    text: String,
    n: Option<f64>,
}

/// Every row of `path` deserialized into `Typed` on the chunked path, in
/// blocks of `size` bytes: the values, or each record's error.
async fn deserialized(path: &Path, size: usize) -> Vec<Result<Typed>> {
    each_row(path, size, |row| {
        Some(row.and_then(|row| row.deserialize()))
    })
    .await
}

/// `Row::deserialize` gives what `csv::read::<T>` gives, at every chunk
/// size: quoted fields, doubled quotes, line breaks inside fields, empty
/// optional values, non-ASCII text.
#[tokio::test]
async fn typed_rows_are_what_the_csv_source_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typed.csv");
    let mut text = String::from("id,text,n\n");
    for i in 0..300u64 {
        let field = match i % 5 {
            0 => format!("plain{i}"),
            1 => format!("\"a, b {i}\""),
            2 => format!("\"two\nlines {i}\""),
            3 => format!("\"say \"\"hi\"\" — {i} é\""),
            _ => String::new(),
        };
        let n = if i % 7 == 0 {
            String::new()
        } else {
            format!("{i}.5")
        };
        text.push_str(&format!("{i},{field},{n}\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let expected = Collected::new();
    Pipeline::from(csv::read::<Typed>(&path))
        .to(sink::collect(&expected))
        .run()
        .await
        .unwrap();
    let expected = expected.to_vec();
    assert_eq!(expected.len(), 300);
    for size in [1, 7, 64, 1000, 1 << 20] {
        let got: Vec<Typed> = deserialized(&path, size)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, expected, "chunk size {size}");
    }
}

/// A value that does not fit the type is a record-level error with the
/// CSV source's position (line, byte, field) and words; the rows around
/// it still deserialize.
#[tokio::test]
async fn a_value_that_does_not_deserialize_is_placed_as_the_csv_source_places_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "id,text,n\n1,\"a\nb\",2.5\n2,\"x,y\",oops\n3,c,4\n").unwrap();
    let source = Pipeline::from(csv::read::<Typed>(&path))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    for size in [1, 16, 1 << 20] {
        let got = deserialized(&path, size).await;
        assert_eq!(got.len(), 3, "chunk size {size}");
        assert_eq!(got[0].as_ref().unwrap().text, "a\nb");
        assert_eq!(got[2].as_ref().unwrap().id, 3);
        let e = got[1].as_ref().unwrap_err();
        assert!(e.is_record_level(), "{e}");
        let (s, c) = (source.position(), e.position());
        assert_eq!((c.line, c.byte), (s.line, s.byte), "{source} / {e}");
        assert_eq!(c.field.as_deref(), Some("n"));
        assert_eq!(c.field, s.field);
        assert!(e.to_string().contains("invalid value \"oops\""), "{e}");
        assert!(
            source.to_string().contains("invalid value \"oops\""),
            "{source}"
        );
        assert_eq!(e.path(), Some(path.as_path()));
    }
}

/// A field the type needs that the header lacks fails every record alike:
/// the error is not record-level, and it names the missing column, as the
/// CSV source's does.
#[tokio::test]
async fn a_column_the_type_needs_and_the_header_lacks_is_not_a_record_error() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Needs {
        id: u64,
        n: f64,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.csv");
    std::fs::write(&path, "id,text\n1,a\n").unwrap();
    let source = Pipeline::from(csv::read::<Needs>(&path))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    let errors = each_row(&path, 1 << 20, |row| {
        row.unwrap().deserialize::<Needs>().err()
    })
    .await;
    let e = &errors[0];
    assert!(!e.is_record_level(), "{e}");
    assert!(!source.is_record_level(), "{source}");
    assert_eq!(e.position().field.as_deref(), Some("n"));
    assert!(
        e.to_string().contains("the header has no column `n`"),
        "{e}"
    );
    assert!(
        source.to_string().contains("the header has no column `n`"),
        "{source}"
    );
}

/// Typed records written with `CsvOut::serialize` and `write_chunks` are
/// what `csv::write` writes of them, byte for byte.
#[tokio::test]
async fn serialized_chunks_are_what_the_csv_sink_writes() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Typed> = (0..50u64)
        .map(|i| Typed {
            id: i,
            text: ["plain", "a, b", "two\nlines", "say \"hi\"", ""][(i % 5) as usize].to_string(),
            n: (i % 3 != 0).then_some(i as f64 / 4.0),
        })
        .collect();
    let by_sink = dir.path().join("sink.csv");
    Pipeline::from(source::iter(records.clone()))
        .to(csv::write::<Typed>(&by_sink))
        .run()
        .await
        .unwrap();
    let by_chunks = dir.path().join("chunks.csv");
    Pipeline::from(source::iter(
        records.chunks(7).map(<[Typed]>::to_vec).collect::<Vec<_>>(),
    ))
    .map(|part: Vec<Typed>| {
        let mut out = CsvOut::new();
        for record in &part {
            out.serialize(record).unwrap();
        }
        out.into_bytes()
    })
    .to(csv::write_chunks(&by_chunks).header(["id", "text", "n"]))
    .run()
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&by_chunks).unwrap(),
        std::fs::read_to_string(&by_sink).unwrap()
    );
}
