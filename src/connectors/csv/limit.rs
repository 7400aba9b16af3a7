//! The errors for records that never end: one past `max_record_bytes`, and
//! one whose quoted field is still open at the end of the input. Both end the
//! run, whatever the error policy: skipping such a record would silently drop
//! everything after it.

use std::path::Path;

use super::decode::with_path;
use super::parse::{Partial, Pos};
use crate::{Error, ErrorKind, Position};

/// The default of [`CsvOptions::max_record_bytes`](super::CsvOptions::max_record_bytes).
pub(super) const DEFAULT_MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// `n` bytes as a user reads it: `16 MiB`, `64 KiB`, or `1000 bytes`.
pub(super) fn bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Which record: the header row, or the data record at `index`.
fn which(index: Option<u64>) -> String {
    match index {
        Some(i) => format!("record {}", i + 1),
        None => "the header row".to_string(),
    }
}

/// The stream-level error for a record that grew past `limit` bytes.
pub(super) fn too_long(
    partial: &Partial,
    limit: usize,
    index: Option<u64>,
    path: Option<&Path>,
    field: Option<String>,
) -> Error {
    let Partial {
        start,
        open_quote,
        spanning,
        ..
    } = *partial;
    let what = which(index);
    let limit = bytes(limit);
    let (message, at) = match (open_quote, spanning) {
        (Some(quote), _) => (
            format!(
                "{what}, starting on line {}, grew past max_record_bytes ({limit}) inside a \
                 quoted field: a quote opened on line {} is never closed within it; check \
                 the quoting there, or raise max_record_bytes (--max-record-bytes) if records this long are expected",
                start.line, quote.line
            ),
            quote,
        ),
        (None, Some(quote)) => (
            format!(
                "{what}, starting on line {}, grew past max_record_bytes ({limit}); its quoted \
                 field opened on line {} holds line breaks (a stray quote?); check the quoting \
                 there, or raise max_record_bytes (--max-record-bytes) if records this long are expected",
                start.line, quote.line
            ),
            quote,
        ),
        (None, None) => (
            format!(
                "{what}, starting on line {}, is longer than max_record_bytes ({limit}); \
                 raise max_record_bytes (--max-record-bytes) if records this long are expected",
                start.line
            ),
            start,
        ),
    };
    stream_error(message, at, index, path, field)
}

/// The stream-level error for a quoted field opened at `quote` and still
/// open at the end of the input, in the record starting at `start`.
pub(super) fn unclosed(
    quote: Pos,
    start: Pos,
    index: Option<u64>,
    path: Option<&Path>,
    field: Option<String>,
) -> Error {
    let message = format!(
        "a quote opened on line {} is never closed: {}, starting on line {}, runs to the end \
         of the input, taking every line after it; check the quoting there",
        quote.line,
        which(index),
        start.line
    );
    stream_error(message, quote, index, path, field)
}

/// What a record-level error about a record spanning several lines adds:
/// where the quoted field that made it span them was opened.
pub(super) fn spanning_note(spanning: Option<Pos>) -> String {
    match spanning {
        Some(quote) => format!(
            " (the record holds line breaks in a quoted field opened on line {}: a stray \
             quote there joins the lines after it into this record)",
            quote.line
        ),
        None => String::new(),
    }
}

fn stream_error(
    message: String,
    at: Pos,
    index: Option<u64>,
    path: Option<&Path>,
    field: Option<String>,
) -> Error {
    let mut position = Position::new().line(at.line).byte(at.byte);
    if let Some(index) = index {
        position = position.record(index);
    }
    if let Some(field) = field {
        position = position.field(field);
    }
    // Not record-level: the run ends even when bad records are skipped.
    with_path(
        Error::new(ErrorKind::Parse(message)).with_position(position),
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_a_user_writes_them() {
        assert_eq!(bytes(DEFAULT_MAX_RECORD_BYTES), "16 MiB");
        assert_eq!(bytes(64 * 1024), "64 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }
}
