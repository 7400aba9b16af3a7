//! Records that never end: `max_record_bytes` bounds what the CSV source holds
//! for one record, and a record past it, or open at the end of the input, ends
//! the run even under Skip.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dataflare::csv::{self, CsvOptions};
use dataflare::prelude::*;
use dataflare::record::Record;

/// A file holding `data` in a fresh temporary directory (kept alive by the guard).
fn file(data: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.csv");
    std::fs::write(&path, data).unwrap();
    (dir, path)
}

/// A header, a stray quote on line 2, then `lines` good lines.
fn stray_quote_then(lines: usize) -> String {
    let mut data = String::from("id,note,n\n1,\"oops,1\n");
    for i in 2..lines + 2 {
        data.push_str(&format!("{i},fine,{i}\n"));
    }
    data
}

async fn run_skipping<S: Source>(source: S) -> Report
where
    S::Record: Clone,
{
    let out = Collected::new();
    Pipeline::from(source)
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run_to_report()
        .await
}

async fn read_all(source: csv::CsvSource<Record>) -> Result<Vec<Record>> {
    let out = Collected::new();
    Pipeline::from(source).to(sink::collect(&out)).run().await?;
    Ok(out.to_vec())
}

#[tokio::test]
async fn a_quote_never_closed_on_line_2_fails_the_run_under_skip_naming_the_line() {
    // About 2.7 MB after the quote: far past the limit.
    let (_dir, path) = file(stray_quote_then(200_000));
    let source = csv::read_records(&path).max_record_bytes(64 * 1024);
    let report = run_skipping(source).await;
    assert!(report.is_failed(), "{report:?}");
    let e = report.error().unwrap();
    assert!(!e.is_record_level());
    assert_eq!(e.path(), Some(path.as_path()));
    assert_eq!(e.position().line, Some(2));
    assert_eq!(e.position().byte, Some(12));
    assert_eq!(e.position().field.as_deref(), Some("note"));
    let text = e.to_string();
    for part in [
        "record 1, starting on line 2, grew past max_record_bytes (64 KiB)",
        "a quote opened on line 2 is never closed",
        "raise max_record_bytes",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    assert_eq!(report.skipped(), 0);
    assert_eq!(report.records_out(), 0);

    // Under the limit, the quote runs to the end of the input: the same.
    let (_dir, path) = file(stray_quote_then(100));
    let report = run_skipping(csv::read_records(&path)).await;
    let e = report.error().expect("the run fails");
    assert!(!e.is_record_level());
    assert!(
        e.to_string()
            .contains("a quote opened on line 2 is never closed: record 1, starting on line 2, runs to the end of the input"),
        "{e}"
    );
    assert_eq!(report.skipped(), 0);
}

/// An endless input: a header, a stray quote, then good lines forever,
/// counting the bytes it was asked for.
struct Endless {
    read: Arc<AtomicU64>,
    line: u64,
    pending: Vec<u8>,
}

impl Read for Endless {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.len() < buf.len() {
            let line = match self.line {
                0 => "id,note\n".to_string(),
                1 => "1,\"oops\n".to_string(),
                n => format!("{n},a line of text that is not short\n"),
            };
            self.line += 1;
            self.pending.extend_from_slice(line.as_bytes());
        }
        let n = buf.len();
        buf.copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[tokio::test]
async fn memory_stays_bounded_by_the_default_limit_whatever_the_input() {
    let read = Arc::new(AtomicU64::new(0));
    let input = Endless {
        read: read.clone(),
        line: 0,
        pending: Vec::new(),
    };
    assert_eq!(CsvOptions::default().max_record_bytes, 16 * 1024 * 1024);
    let report = run_skipping(csv::read_records_from(input)).await;
    let e = report.error().expect("the run fails");
    assert!(!e.is_record_level());
    assert!(e.to_string().contains("max_record_bytes (16 MiB)"), "{e}");
    // The limit and the 64 KiB reads around it: nothing more was read.
    let read = read.load(Ordering::Relaxed);
    assert!(
        read <= 16 * 1024 * 1024 + 2 * 64 * 1024,
        "{read} bytes read"
    );
}

#[tokio::test]
async fn a_record_over_a_small_limit_fails_naming_the_limit() {
    let long = "x".repeat(2000);
    let data = format!("id,note\n1,short\n2,{long}\n3,short\n");
    let source = csv::read_records_from(std::io::Cursor::new(data)).max_record_bytes(1000);
    let report = run_skipping(source).await;
    let e = report.error().expect("the run fails");
    assert!(!e.is_record_level());
    assert_eq!(e.position().line, Some(3));
    assert!(
        e.to_string().contains(
            "record 2, starting on line 3, is longer than max_record_bytes (1000 bytes); \
             raise max_record_bytes"
        ),
        "{e}"
    );

    // A header row past the limit, too.
    let data = format!("id,{long}\n1,2\n");
    let source = csv::read_records_from(std::io::Cursor::new(data)).max_record_bytes(1000);
    let e = read_all(source).await.unwrap_err();
    assert!(
        e.to_string().contains("the header row, starting on line 1"),
        "{e}"
    );
}

#[tokio::test]
async fn a_record_of_many_fields_is_measured_by_what_it_holds() {
    // 1000 bytes of input, but 500 fields to hold.
    let data = format!("a\n{}\n", ",".repeat(999));
    let source = csv::read_records_from(std::io::Cursor::new(data))
        .flexible(true)
        .max_record_bytes(4000);
    let e = read_all(source).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("longer than max_record_bytes (4000 bytes)"),
        "{e}"
    );
}

#[tokio::test]
async fn quotes_that_pair_up_far_away_name_the_line_of_the_opening_quote() {
    // A stray quote on line 2 and another on line 41: one record of 40 lines.
    let mut data = String::from("id,note,n\n1,\"oops,1\n");
    for i in 2..40 {
        data.push_str(&format!("{i},fine,{i}\n"));
    }
    data.push_str("40,al\"so,40\n41,after,41\n");
    let (_dir, path) = file(&data);
    let (rows, report) = {
        let out = Collected::new();
        let report = Pipeline::from(csv::read_records(&path))
            .on_error(ErrorPolicy::Skip)
            .to(sink::collect(&out))
            .run_to_report()
            .await;
        (out.to_vec(), report)
    };
    assert_eq!(rows.len(), 1);
    let e = &report.errors()[0];
    assert!(e.is_record_level());
    assert_eq!(e.position().line, Some(41));
    assert!(
        e.to_string()
            .contains("a quoted field opened on line 2: a stray quote there"),
        "{e}"
    );

    // The same, past the limit after the quote closed.
    let tail = "y".repeat(5000);
    let data = format!("id,note\n1,\"a\nb\nc\"{tail}\n2,x\n");
    let source = csv::read_records_from(std::io::Cursor::new(data))
        .lenient_quotes(true)
        .max_record_bytes(4096);
    let e = read_all(source).await.unwrap_err();
    assert!(!e.is_record_level());
    assert_eq!(e.position().line, Some(2));
    assert!(
        e.to_string().contains(
            "record 1, starting on line 2, grew past max_record_bytes (4 KiB); its quoted field \
             opened on line 2 holds line breaks"
        ),
        "{e}"
    );
}

/// A reader handing out its bytes a few at a time.
struct Trickle(std::io::Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

#[tokio::test]
async fn multi_line_quoted_fields_within_the_limit_read_across_chunk_boundaries() {
    // Records of up to about 3 KiB, with line breaks and doubled quotes, over
    // many 64 KiB reads; the limit is 4 KiB.
    let mut data = String::from("id,text\n");
    let mut expected = Vec::new();
    for i in 0..500 {
        let text = format!("line {i}\n{}\"\"quoted\"\"\r\nend", "z".repeat(i * 6));
        data.push_str(&format!("{i},\"{text}\"\n"));
        expected.push(text.replace("\"\"", "\""));
    }
    assert!(data.len() > 4 * 64 * 1024);
    let (_dir, path) = file(&data);
    let texts = |rows: Vec<Record>| -> Vec<String> {
        rows.iter()
            .map(|r| r.get("text").unwrap().to_string())
            .collect()
    };
    let rows = read_all(csv::read_records(&path).max_record_bytes(4096))
        .await
        .unwrap();
    assert_eq!(texts(rows), expected);
    let trickle = Trickle(std::io::Cursor::new(data.into_bytes()));
    let rows = read_all(csv::read_records_from(trickle).max_record_bytes(4096))
        .await
        .unwrap();
    assert_eq!(texts(rows), expected);
}

#[test]
#[should_panic(expected = "max_record_bytes")]
fn max_record_bytes_0_panics() {
    let _ = csv::read_records("x.csv").max_record_bytes(0);
}

#[tokio::test]
async fn max_record_bytes_0_in_options_is_a_configuration_error() {
    let mut options = CsvOptions::default();
    options.max_record_bytes = 0;
    let source = csv::read_records_from(std::io::Cursor::new("a\n1\n")).options(options);
    let e = read_all(source).await.unwrap_err();
    assert!(e.to_string().contains("max_record_bytes"), "{e}");
}
