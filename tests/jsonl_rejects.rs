//! JSON Lines dead letters carry the rejected line's raw text, cut when long,
//! so a reject can be fixed without opening the input.

use dataflare::jsonl;
use dataflare::prelude::*;
use dataflare::{DeadLetters, Rejected};

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Event {
    id: u32,
    kind: String,
}

#[tokio::test]
async fn a_rejected_line_carries_its_raw_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let long_bad = format!("{{\"id\":5,\"kind\":\"{}\"", "\u{e9}".repeat(3000)); // no closing brace
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"id\":1,\"kind\":\"a\"}\n");
    input.extend_from_slice(b"{\"id\": oops}\r\n");
    input.extend_from_slice(b"{\"id\":3,\"kind\":\"caf\xe9\"}\n");
    input.extend_from_slice(b"{\"id\":4,\"kind\":\"b\"}\n");
    input.extend_from_slice(long_bad.as_bytes());
    std::fs::write(&path, &input).unwrap();

    let rejects = Collected::<Rejected>::new();
    let out = Collected::new();
    let report = Pipeline::from(jsonl::read::<Event>(&path))
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::collect(&out))
        .run()
        .await
        .unwrap();
    assert_eq!(
        out.to_vec().iter().map(|e| e.id).collect::<Vec<_>>(),
        [1, 4]
    );
    assert_eq!(report.dead_lettered(), 3);
    let rejects = rejects.to_vec();
    assert_eq!(rejects.len(), 3);

    let r = &rejects[0];
    assert_eq!(r.stage, "source");
    assert_eq!(
        r.record.as_deref(),
        Some("{\"id\": oops}"),
        "the line without its line break"
    );
    assert_eq!(
        (r.record_index, r.line, r.byte),
        (Some(1), Some(2), Some(20))
    );

    // Invalid UTF-8: the text with U+FFFD in place of the bad byte.
    let r = &rejects[1];
    assert_eq!(
        r.record.as_deref(),
        Some("{\"id\":3,\"kind\":\"caf\u{FFFD}\"}")
    );
    assert!(
        r.error.contains("invalid UTF-8 at column 20 (byte 53)"),
        "{}",
        r.error
    );
    assert!(r.error.contains("lossy_utf8(true)"), "{}", r.error);

    // A long line is cut at 4 KiB, on a character boundary, and says so.
    let r = &rejects[2];
    let text = r.record.as_deref().unwrap();
    let suffix = format!("... [cut: the record has {} bytes]", long_bad.len());
    assert!(text.ends_with(&suffix), "{}", &text[text.len() - 80..]);
    let kept = text.strip_suffix(&suffix).unwrap();
    assert!(long_bad.starts_with(kept));
    assert_eq!(kept.len(), 4096);
    assert_eq!(r.line, Some(5));
}

#[tokio::test]
async fn a_rejected_record_keeps_its_text_in_dynamic_reading_too() {
    // A repeated key (a nested value, rejected here before, is now JSON).
    let input = "{\"a\":1}\n{\"a\":2,\"b\":3}\n{\"a\":4,\"a\":4}\n{\"a\":5}\n";
    let rejects = Collected::<Rejected>::new();
    let report = Pipeline::from(jsonl::read_records_from(std::io::Cursor::new(input)))
        .on_error(DeadLetters::to(sink::collect(&rejects)))
        .to(sink::discard())
        .run()
        .await
        .unwrap();
    assert_eq!(report.records_out(), 2);
    let got: Vec<_> = rejects
        .to_vec()
        .into_iter()
        .map(|r| (r.record, r.field, r.line))
        .collect();
    assert_eq!(
        got,
        [
            (Some("{\"a\":2,\"b\":3}".into()), Some("b".into()), Some(2)),
            (Some("{\"a\":4,\"a\":4}".into()), Some("a".into()), Some(3)),
        ]
    );
}
