//! The one error type of DataFlare, with the context a user needs to act on it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Raw text a source keeps of a rejected record, at most (see
/// [`Error::with_record_text`]): a dead letter shows what the record was
/// without holding a huge one.
pub(crate) const RECORD_TEXT_MAX: usize = 4096;

/// A rejected record's raw text, as kept for [`Error::with_record_text`]:
/// `bytes` are its first bytes (of `total` in all), invalid UTF-8 replaced by
/// U+FFFD, cut at a character boundary after [`RECORD_TEXT_MAX`] bytes with a
/// note saying so. One place for every source, so every dead letter reads alike.
pub(crate) fn record_text(bytes: &[u8], total: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    if total <= RECORD_TEXT_MAX && bytes.len() == total {
        return text.into_owned();
    }
    let mut cut = RECORD_TEXT_MAX.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [cut: the record has {total} bytes]", &text[..cut])
}

/// A boxed error from user code or a third-party library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with DataFlare's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong. Context (stage, file, position) lives on [`Error`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed.
    #[error("I/O error: {0}")]
    Io(#[source] std::io::Error),
    /// Input bytes that do not form a valid record.
    #[error("{0}")]
    Parse(String),
    /// User code panicked; the payload's message, when it was a string.
    #[error("panicked: {0}")]
    Panic(String),
    /// The other side of a channel went away.
    #[error("the receiving side is closed")]
    Closed,
    /// A configuration that cannot work, found before any data moved.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An error returned by user code or a library, kept as the cause.
    #[error("{0}")]
    Other(#[source] BoxError),
    /// A plain message.
    #[error("{0}")]
    Message(String),
}

/// Where in the data an error happened.
///
/// Displays as `record 12 (line 13, byte 400), field "amount"`, leaving out what is
/// unknown. In messages records are numbered from 1, like lines (the first record
/// of an input is "record 1"); the [`record`](Position::record) field holds the
/// 0-based index. Bytes count from 0 (as the `csv` crate does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Position {
    /// Index of the record in its source, counting from 0 (displayed as the
    /// 1-based record number: index 0 is "record 1").
    pub record: Option<u64>,
    /// Physical line number, counting from 1, as an editor shows it.
    pub line: Option<u64>,
    /// Byte offset from the start of the input.
    pub byte: Option<u64>,
    /// Name (or index, when unnamed) of the field.
    pub field: Option<String>,
}

impl Position {
    /// An empty position: nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the record index.
    pub fn record(mut self, record: u64) -> Self {
        self.record = Some(record);
        self
    }

    /// Sets the physical line number.
    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    /// Sets the byte offset.
    pub fn byte(mut self, byte: u64) -> Self {
        self.byte = Some(byte);
        self
    }

    /// Sets the field name.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(r) = self.record {
            write!(f, "record {}", r + 1)?;
            wrote = true;
        }
        let mut inner = Vec::new();
        if let Some(l) = self.line {
            inner.push(format!("line {l}"));
        }
        if let Some(b) = self.byte {
            inner.push(format!("byte {b}"));
        }
        if !inner.is_empty() {
            if wrote {
                write!(f, " ({})", inner.join(", "))?;
            } else {
                write!(f, "{}", inner.join(", "))?;
                wrote = true;
            }
        }
        if let Some(field) = &self.field {
            if wrote {
                write!(f, ", ")?;
            }
            write!(f, "field {field:?}")?;
        }
        Ok(())
    }
}

/// DataFlare's error: a [`ErrorKind`] plus the context to act on it — the stage,
/// the file, the [`Position`] in the data.
///
/// Displays from the outside in:
/// `stage "parse": orders.csv: record 12 (line 13, byte 400), field "amount": invalid digit`.
pub struct Error(Box<Inner>);

struct Inner {
    kind: ErrorKind,
    stage: Option<String>,
    path: Option<PathBuf>,
    position: Position,
    record_level: bool,
    attempts: u32,
    record_text: Option<String>,
}

impl Error {
    /// An error of the given kind, without context.
    pub fn new(kind: ErrorKind) -> Self {
        Error(Box::new(Inner {
            kind,
            stage: None,
            path: None,
            position: Position::default(),
            record_level: false,
            attempts: 0,
            record_text: None,
        }))
    }

    /// An error holding a plain message.
    ///
    /// ```
    /// let e = dataflare::Error::msg("amount is negative");
    /// assert_eq!(e.to_string(), "amount is negative");
    /// ```
    pub fn msg(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Message(message.into()))
    }

    /// Wraps any error from user code or a library, keeping it as the cause.
    pub fn other(error: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Other(error.into()))
    }

    /// A record-level error from a user's fallible closure; a DataFlare `Error`
    /// passes through with its context.
    pub(crate) fn from_user(error: impl Into<BoxError>) -> Self {
        match error.into().downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => Self::new(ErrorKind::Other(other)),
        }
        .at_record_level()
    }

    /// An I/O error on the given file.
    pub fn io(path: impl AsRef<Path>, error: std::io::Error) -> Self {
        Self::new(ErrorKind::Io(error)).with_path(path)
    }

    /// A malformed-input error. It is [record-level](Error::is_record_level):
    /// the stage's [`ErrorPolicy`](crate::ErrorPolicy) decides whether it ends the run.
    pub fn parse(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Parse(message.into())).at_record_level()
    }

    /// Marks the error as concerning one record only: a source may yield it and
    /// go on, and the stage's [`ErrorPolicy`](crate::ErrorPolicy) decides whether
    /// it ends the run. Errors are stream-level (they end the run) unless marked.
    pub fn at_record_level(mut self) -> Self {
        self.0.record_level = true;
        self
    }

    /// True for an error concerning one record (see [`at_record_level`](Error::at_record_level)).
    pub fn is_record_level(&self) -> bool {
        self.0.record_level
    }

    /// A configuration that cannot work.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config(message.into()))
    }

    /// The peer of a channel is gone.
    pub fn closed() -> Self {
        Self::new(ErrorKind::Closed)
    }

    /// A panic caught in user code, turned into an error.
    pub(crate) fn panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a non-string panic payload".to_string()
        };
        Self::new(ErrorKind::Panic(message))
    }

    /// The error of a spawned task or blocking thread that did not finish: a
    /// panic keeps its message. The one mapping for every bridge.
    pub(crate) fn from_join(error: tokio::task::JoinError) -> Self {
        match error.try_into_panic() {
            Ok(payload) => Self::panic(payload),
            Err(e) => Self::other(e),
        }
    }

    /// Names the stage the error happened in, unless one is named already
    /// (the innermost stage is the one to blame).
    pub fn with_stage(mut self, stage: impl Into<String>) -> Self {
        if self.0.stage.is_none() {
            self.0.stage = Some(stage.into());
        }
        self
    }

    /// Names the file the error concerns.
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.0.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// Sets the record index when the error has no position of its own (an
    /// error from user code knows nothing of where its record came from).
    pub(crate) fn or_at_record(mut self, index: u64) -> Self {
        if self.0.position.is_empty() {
            self.0.position.record = Some(index);
        }
        self
    }

    /// Sets where in the data the error happened.
    pub fn with_position(mut self, position: Position) -> Self {
        self.0.position = position;
        self
    }

    /// Records how many attempts were made before giving up (shown when more than one).
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.0.attempts = attempts;
        self
    }

    /// Keeps the raw input text of the record at fault (a source's malformed
    /// row or line), so a dead letter can be fixed without opening the input.
    /// Sources keep at most a bounded prefix of it.
    pub fn with_record_text(mut self, text: impl Into<String>) -> Self {
        self.0.record_text = Some(text.into());
        self
    }

    /// The raw input text of the record at fault, when a source kept it.
    pub fn record_text(&self) -> Option<&str> {
        self.0.record_text.as_deref()
    }

    /// Attempts made at the record before this error was final; 0 when not tracked.
    pub fn attempts(&self) -> u32 {
        self.0.attempts
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The stage the error happened in, when known.
    pub fn stage(&self) -> Option<&str> {
        self.0.stage.as_deref()
    }

    /// The file the error concerns, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.0.path.as_deref()
    }

    /// Where in the data the error happened.
    pub fn position(&self) -> &Position {
        &self.0.position
    }

    /// True when this error is a panic caught in user code.
    pub fn is_panic(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Panic(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(stage) = &self.0.stage {
            write!(f, "stage {stage:?}: ")?;
        }
        if let Some(path) = &self.0.path {
            write!(f, "{}: ", path.display())?;
        }
        if !self.0.position.is_empty() {
            write!(f, "{}: ", self.0.position)?;
        }
        if self.0.attempts > 1 {
            write!(f, "after {} attempts: ", self.0.attempts)?;
        }
        write!(f, "{}", self.0.kind)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind);
        if let Some(stage) = &self.0.stage {
            d.field("stage", stage);
        }
        if let Some(path) = &self.0.path {
            d.field("path", path);
        }
        if !self.0.position.is_empty() {
            d.field("position", &self.0.position);
        }
        if self.0.attempts > 0 {
            d.field("attempts", &self.0.attempts);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::new(ErrorKind::Io(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_from_the_outside_in() {
        let e = Error::parse("invalid digit")
            .with_position(
                Position::new()
                    .record(11)
                    .line(13)
                    .byte(400)
                    .field("amount"),
            )
            .with_path("orders.csv")
            .with_stage("parse");
        assert_eq!(
            e.to_string(),
            "stage \"parse\": orders.csv: record 12 (line 13, byte 400), field \"amount\": invalid digit"
        );
    }

    #[test]
    fn record_text_is_cut_after_4_kib_at_a_character_saying_so() {
        assert_eq!(record_text(b"a,b", 3), "a,b");
        assert_eq!(record_text(b"{oops\xff", 6), "{oops\u{FFFD}");
        let long = "\u{e9}".repeat(3000); // 6000 bytes
        for kept in [RECORD_TEXT_MAX + 1, long.len()] {
            let text = record_text(&long.as_bytes()[..kept], long.len());
            assert!(
                text.ends_with("\u{e9}... [cut: the record has 6000 bytes]"),
                "{text}"
            );
            assert!(text.len() <= RECORD_TEXT_MAX + 40);
        }
    }

    #[test]
    fn innermost_stage_wins() {
        let e = Error::msg("x").with_stage("map#1").with_stage("sink");
        assert_eq!(e.stage(), Some("map#1"));
    }

    #[test]
    fn io_cause_is_kept() {
        let e = Error::io("a.csv", std::io::Error::other("disk full"));
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.to_string(), "a.csv: I/O error: disk full");
    }
}
