//! JSON Lines `max_line_bytes`: a line past the limit ends the run (even under
//! Skip), naming where it is, after reading no more than the limit of it.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dataflare::jsonl;
use dataflare::prelude::*;

#[derive(Debug, Clone, serde::Deserialize)]
struct Row {
    a: String,
}

/// A source reads from a reader at most this many bytes at a time (its read
/// buffer): a line past the limit is given up on within this of its end.
const READ_BUFFER: u64 = 64 * 1024;

/// An input of `len` bytes without a line break — `{"a":"xxxx…` — made as it
/// is read, counting the bytes handed out.
struct Unterminated {
    len: u64,
    pos: u64,
    read: Arc<AtomicU64>,
}

impl Unterminated {
    fn new(len: u64) -> (Self, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let input = Unterminated {
            len,
            pos: 0,
            read: read.clone(),
        };
        (input, read)
    }
}

impl Read for Unterminated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.len - self.pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = self.pos as usize + i;
            *b = *b"{\"a\":\"".get(at).unwrap_or(&b'x');
        }
        self.pos += n as u64;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

fn assert_too_long(err: &Error, line: u64, byte: u64, limit: usize) {
    assert!(!err.is_record_level(), "stream-level: {err}");
    assert_eq!(err.stage(), Some("source"));
    assert_eq!(err.position().line, Some(line), "{err}");
    assert_eq!(err.position().byte, Some(byte), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("longer than max_line_bytes ({limit} bytes)")),
        "{text}"
    );
    assert!(
        text.contains(
            "raise max_line_bytes (--max-record-bytes), or check that the input is JSON Lines \
             (one object per line)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_line_over_the_limit_fails_the_run_even_under_skip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    let long = format!("{{\"a\":\"{}\"}}", "x".repeat(200));
    let text = format!("{{\"a\":\"1\"}}\n{{\"a\":\"2\"}}\n{long}\n{{\"a\":\"4\"}}\n");
    std::fs::write(&path, &text).unwrap();
    let long_start = text.find(&long).unwrap() as u64;

    let out = Collected::new();
    let report = Pipeline::from(jsonl::read::<Row>(&path).max_line_bytes(64))
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run_to_report()
        .await;
    assert!(report.is_failed());
    assert_eq!(report.skipped(), 0, "the long line is not skipped");
    let err = report.error().unwrap();
    assert_too_long(err, 3, long_start, 64);
    assert_eq!(err.path(), Some(path.as_path()));
    assert!(
        err.to_string()
            .contains("rows.jsonl: record 3 (line 3, byte 20): the line"),
        "{err}"
    );
    let got: Vec<String> = out.to_vec().into_iter().map(|r| r.a).collect();
    assert_eq!(
        got,
        ["1", "2"],
        "the records before the line were passed on"
    );

    let out = Collected::new();
    let err = Pipeline::from(jsonl::read_records(&path).max_line_bytes(64))
        .on_error(ErrorPolicy::Skip)
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap_err();
    assert_too_long(&err, 3, long_start, 64);
    assert_eq!(err.path(), Some(path.as_path()));
    assert_eq!(out.len(), 2);
}

#[tokio::test]
async fn an_input_without_line_breaks_fails_without_being_read_whole() {
    const LIMIT: usize = 64 * 1024;
    // 80 MB, made as it is read: never in memory at once.
    let (input, read) = Unterminated::new(80 << 20);
    let err = Pipeline::from(jsonl::read_from::<Row>(input).max_line_bytes(LIMIT))
        .on_error(ErrorPolicy::Skip)
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert_too_long(&err, 1, 0, LIMIT);
    let read = read.load(Ordering::SeqCst);
    assert!(
        read <= LIMIT as u64 + 2 + READ_BUFFER,
        "read {read} bytes for a limit of {LIMIT}"
    );

    let (input, read) = Unterminated::new(80 << 20);
    let err = Pipeline::from(jsonl::read_records_from(input).max_line_bytes(LIMIT))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert_too_long(&err, 1, 0, LIMIT);
    assert!(read.load(Ordering::SeqCst) <= LIMIT as u64 + 2 + READ_BUFFER);
}

#[tokio::test]
async fn the_default_limit_is_16_mib() {
    assert_eq!(jsonl::DEFAULT_MAX_LINE_BYTES, 16 * 1024 * 1024);
    let (input, read) = Unterminated::new(40 << 20);
    let err = Pipeline::from(jsonl::read_from::<Row>(input))
        .to(sink::discard())
        .run()
        .await
        .unwrap_err();
    assert_too_long(&err, 1, 0, jsonl::DEFAULT_MAX_LINE_BYTES);
    let read = read.load(Ordering::SeqCst);
    assert!(read <= (16 << 20) + 2 + READ_BUFFER, "read {read} bytes");
}

#[tokio::test]
async fn lines_up_to_the_limit_pass_and_the_last_needs_no_line_break() {
    // Each line exactly 10 bytes, not counting its line break.
    let text = "\"12345678\"\n\"abcdefgh\"\r\n\n\"ABCDEFGH\"";
    let (got, report) = {
        let out = Collected::new();
        let source = jsonl::read_from::<String>(std::io::Cursor::new(text)).max_line_bytes(10);
        let report = Pipeline::from(source)
            .to(sink::collect(&out))
            .run()
            .await
            .unwrap();
        (out.to_vec(), report)
    };
    assert_eq!(got, ["12345678", "abcdefgh", "ABCDEFGH"]);
    assert!(report.is_completed());

    // One byte less and the first line is too long.
    let err =
        Pipeline::from(jsonl::read_from::<String>(std::io::Cursor::new(text)).max_line_bytes(9))
            .to(sink::discard())
            .run()
            .await
            .unwrap_err();
    assert_too_long(&err, 1, 0, 9);
    // The last line, without a line break, is held to the limit too.
    let text = "\"1\"\n\"abcdefgh\"";
    let err =
        Pipeline::from(jsonl::read_from::<String>(std::io::Cursor::new(text)).max_line_bytes(9))
            .to(sink::discard())
            .run()
            .await
            .unwrap_err();
    assert_too_long(&err, 2, 4, 9);
}

#[test]
#[should_panic(expected = "max_line_bytes")]
fn a_zero_limit_is_refused() {
    let _ = jsonl::read_from::<Row>(std::io::empty()).max_line_bytes(0);
}
