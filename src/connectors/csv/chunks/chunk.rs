//! A chunk of whole records and the rows parsed from it, borrowing its text.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::super::de::RowDe;
use super::super::decode::serde_error;
use super::super::parse::show;
use super::super::row::RowText;
use crate::{Error, ErrorKind, Position, Result};

/// What a chunk shares with the others of its file.
#[derive(Debug)]
pub(super) struct FileInfo {
    pub(super) path: PathBuf,
    pub(super) headers: Arc<::csv::StringRecord>,
    pub(super) delimiter: u8,
}

/// A block of whole records of a CSV file, made by [`read_chunks`](super::read_chunks): its
/// text, where it starts in the file, and the file's header row. Parse it
/// with [`rows`](CsvChunk::rows) or [`for_each_row`](CsvChunk::for_each_row).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> dataflare::Result<()> {
/// use dataflare::csv::{self, CsvChunk};
/// use dataflare::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("in.csv");
/// std::fs::write(&path, "a,b\n1,2\n").unwrap();
/// let out = Collected::new();
/// Pipeline::from(csv::read_chunks(&path))
///     .map(|c: CsvChunk| (c.first_line(), c.first_byte(), c.len(), c.headers().len()))
///     .to(sink::collect(&out))
///     .run()
///     .await?;
/// assert_eq!(out.to_vec(), vec![(2, 4, 4, 2)]);
/// # Ok(()) }
/// ```
pub struct CsvChunk {
    pub(super) bytes: Vec<u8>,
    pub(super) first_line: u64,
    pub(super) first_byte: u64,
    pub(super) file: Arc<FileInfo>,
}

impl CsvChunk {
    /// The file's header row.
    pub fn headers(&self) -> &Arc<::csv::StringRecord> {
        &self.file.headers
    }

    /// The file the chunk was read from.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The chunk's text: whole records, ending in a line break (except
    /// perhaps the file's last).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The length of the chunk's text, in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when the chunk has no text (never for a chunk of [`read_chunks`](super::read_chunks)).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The line of the file (from 1) where the chunk starts.
    pub fn first_line(&self) -> u64 {
        self.first_line
    }

    /// The byte offset in the file (from 0) where the chunk starts.
    pub fn first_byte(&self) -> u64 {
        self.first_byte
    }

    /// The chunk's records, parsed one at a time into one reused record:
    /// call [`Rows::next_row`] until it gives `None`. Each [`Row`] borrows
    /// from the parser, so it lives until the next call (see
    /// [`for_each_row`](CsvChunk::for_each_row) for a closure instead).
    ///
    /// A record whose number of fields differs from the header's gives a
    /// record-level error (the file, line and byte where it starts), and
    /// the rows go on after it. Empty lines are skipped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.csv");
    /// std::fs::write(&path, "name,city\nAda,London\nBob\n").unwrap();
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_chunks(&path))
    ///     .map(|chunk: CsvChunk| {
    ///         let mut seen = Vec::new();
    ///         let mut rows = chunk.rows();
    ///         while let Some(row) = rows.next_row() {
    ///             seen.push(match row {
    ///                 Ok(row) => format!("{} at line {}", row.str(0).unwrap(), row.line()),
    ///                 Err(e) => e.to_string(),
    ///             });
    ///         }
    ///         seen
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let seen = out.to_vec().concat();
    /// assert_eq!(seen[0], "Ada at line 2");
    /// assert!(seen[1].contains("line 3, byte 21"), "{}", seen[1]);
    /// assert!(seen[1].contains("expected 2 fields, found 1"), "{}", seen[1]);
    /// # Ok(()) }
    /// ```
    pub fn rows(&self) -> Rows<'_> {
        let parser = self.parser();
        let width = self.file.headers.len();
        Rows {
            chunk: self,
            parser,
            at: 0,
            text: vec![0; 256],
            ends: vec![0; width.max(1) + 1],
            fields: 0,
            line: 1,
            byte: 0,
        }
    }

    /// Calls `f` with each of the chunk's records, in order; returns the
    /// first error, from `f` or from a record (see [`rows`](CsvChunk::rows)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk};
    /// use dataflare::prelude::*;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("in.csv");
    /// std::fs::write(&path, "id,amount\n1,2.5\n2,oops\n").unwrap();
    /// let out = Collected::new();
    /// Pipeline::from(csv::read_chunks(&path))
    ///     .map(|chunk: CsvChunk| {
    ///         let mut total = 0.0;
    ///         let done = chunk.for_each_row(|row| Ok(total += row.parse::<f64>(1)?));
    ///         (total, done.unwrap_err().to_string())
    ///     })
    ///     .to(sink::collect(&out))
    ///     .run()
    ///     .await?;
    /// let (total, error) = &out.to_vec()[0];
    /// assert_eq!(*total, 2.5);
    /// assert!(error.contains("line 3, byte 18, field \"amount\""), "{error}");
    /// # Ok(()) }
    /// ```
    pub fn for_each_row(&self, mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let mut rows = self.rows();
        while let Some(row) = rows.next_row() {
            f(&row?)?;
        }
        Ok(())
    }

    /// A parser of the chunk's dialect, at the start of a record.
    fn parser(&self) -> csv_core::Reader {
        csv_core::ReaderBuilder::new()
            .delimiter(self.file.delimiter)
            .build()
    }

    /// Where field `i` of the record that starts at `line` and `byte`
    /// starts (its opening quote, if quoted): the position the CSV source's
    /// errors give. The record start if it has no field `i`.
    #[cold]
    fn field_start(&self, line: u64, byte: u64, i: usize) -> (u64, u64) {
        let record = &self.bytes[(byte - self.first_byte) as usize..];
        let mut parser = self.parser();
        let (mut at, mut out) = (0, [0u8; 256]);
        for _ in 0..i {
            loop {
                let (result, read, _) = parser.read_field(&record[at..], &mut out);
                at += read;
                match result {
                    csv_core::ReadFieldResult::OutputFull => {}
                    csv_core::ReadFieldResult::Field { record_end: false } => break,
                    _ => return (line, byte),
                }
            }
        }
        let lines = record[..at].iter().filter(|&&b| b == b'\n').count() as u64;
        (line + lines, byte + at as u64)
    }

    /// A record-level parse error at `line` and `byte`, naming the file.
    fn error(&self, message: String, line: u64, byte: u64, field: Option<usize>) -> Error {
        let name = field.map(|field| match self.file.headers.get(field) {
            Some(name) => name.to_string(),
            None => field.to_string(),
        });
        self.placed(Error::parse(message), line, byte, name)
            .at_record_level()
    }

    /// `error` at `line` and `byte` of this chunk's file, naming `field`.
    fn placed(&self, error: Error, line: u64, byte: u64, field: Option<String>) -> Error {
        let mut position = Position::new().line(line).byte(byte);
        if let Some(field) = field {
            position = position.field(field);
        }
        error.with_position(position).with_path(&self.file.path)
    }
}

impl fmt::Debug for CsvChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvChunk")
            .field("path", &self.file.path)
            .field("first_line", &self.first_line)
            .field("first_byte", &self.first_byte)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The records of a [`CsvChunk`], made by [`CsvChunk::rows`]: a lending
/// iterator (each [`Row`] borrows the parser's buffers, reused for every
/// record), parsing the chunk in place with the `csv` crate's parser.
pub struct Rows<'c> {
    chunk: &'c CsvChunk,
    parser: csv_core::Reader,
    /// The bytes of the chunk parsed so far.
    at: usize,
    /// The last record's unquoted fields, one after the other...
    text: Vec<u8>,
    /// ...and where each ends in `text`.
    ends: Vec<usize>,
    fields: usize,
    /// The file's line and byte where the last record starts.
    line: u64,
    byte: u64,
}

impl Rows<'_> {
    /// The next record, `None` after the last; a record with the wrong
    /// number of fields is an `Err`, and the next call goes on after it.
    #[inline]
    pub fn next_row(&mut self) -> Option<Result<Row<'_>>> {
        let chunk = self.chunk;
        let input = &chunk.bytes[..];
        let (start, line) = (self.at, self.parser.line());
        let (mut text, mut fields) = (0, 0);
        loop {
            let (result, read, wrote, ended) = self.parser.read_record(
                &input[self.at..],
                &mut self.text[text..],
                &mut self.ends[fields..],
            );
            self.at += read;
            text += wrote;
            fields += ended;
            match result {
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return None,
                csv_core::ReadRecordResult::InputEmpty => {} // then the end: `input` is all there is
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.text.len();
                    self.text.resize(len * 2, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len();
                    self.ends.resize(len * 2, 0);
                }
            }
        }
        self.fields = fields;
        // The record's first byte: after the line breaks (blank lines, the
        // `\n` of a `\r\n`) the parser skipped before it.
        let (mut line, mut at) = (line, start);
        while let Some(&b) = input.get(at).filter(|&&b| b == b'\n' || b == b'\r') {
            line += u64::from(b == b'\n');
            at += 1;
        }
        self.line = chunk.first_line + line - 1;
        self.byte = chunk.first_byte + at as u64;
        let width = chunk.file.headers.len();
        if fields != width {
            let message = format!("expected {width} fields, found {fields}");
            return Some(Err(chunk.error(message, self.line, self.byte, None)));
        }
        Some(Ok(Row {
            text: &self.text,
            ends: &self.ends[..fields],
            chunk,
            line: self.line,
            byte: self.byte,
        }))
    }
}

impl fmt::Debug for Rows<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rows")
            .field("chunk", self.chunk)
            .field("at", &self.at)
            .finish()
    }
}

/// One record of a [`CsvChunk`], borrowed from it: fields as bytes,
/// decoded only when asked, with errors naming the file, the line and byte
/// where the field starts, and the field.
pub struct Row<'a> {
    text: &'a [u8],
    ends: &'a [usize],
    chunk: &'a CsvChunk,
    line: u64,
    byte: u64,
}

impl<'a> Row<'a> {
    /// Field `i` (from 0) as bytes, unquoted; `None` past the last field.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        self.text.get(start..end)
    }

    /// The fields, in order, as bytes.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let text = self.text;
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let field = &text[start..end];
            start = end;
            field
        })
    }

    /// The number of fields (the header's).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the record has no field.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The line of the file (from 1) where the record starts.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The byte offset in the file (from 0) where the record starts.
    pub fn byte(&self) -> u64 {
        self.byte
    }

    /// Field `i` as text: invalid UTF-8, or no field `i`, is a record-level
    /// error naming the file, line, byte and field.
    #[inline]
    pub fn str(&self, i: usize) -> Result<&'a str> {
        let bytes = self.field(i)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => Err(self.utf8_error(i, bytes, e)),
        }
    }

    /// Field `i` parsed with [`FromStr`]: an error is a record-level parse
    /// error naming the file, line, byte and field, and quoting the value.
    #[inline]
    pub fn parse<T>(&self, i: usize) -> Result<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = self.str(i)?;
        match text.parse() {
            Ok(value) => Ok(value),
            Err(e) => Err(self.error(i, format!("invalid value {}: {e}", excerpt(text)))),
        }
    }

    /// A record-level parse error about field `i` of this record, saying
    /// `message` and naming the file, the line and byte where the field
    /// starts (as the CSV source's errors do), and the field: for checks of
    /// one's own.
    #[cold]
    pub fn error(&self, i: usize, message: impl Into<String>) -> Error {
        let (line, byte) = self.chunk.field_start(self.line, self.byte, i);
        self.chunk.error(message.into(), line, byte, Some(i))
    }

    /// The record deserialized into `T` with serde, fields matched to `T`'s
    /// by the header's names, as [`csv::read`](crate::csv::read) does: the
    /// same values and, for a value that does not fit, a record-level error
    /// naming the file, the line and byte where the field starts, and the
    /// field. A field `T` needs that the header lacks is an error that is
    /// not record-level (every record would fail alike). Text fields are
    /// read in place; `T` owns what it keeps.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> dataflare::Result<()> {
    /// use dataflare::csv::{self, CsvChunk, CsvOut};
    /// use dataflare::prelude::*;
    ///
    /// #[derive(serde::Deserialize, serde::Serialize)]
    /// struct Order { id: u64, amount: f64 }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let (input, output) = (dir.path().join("in.csv"), dir.path().join("out.csv"));
    /// std::fs::write(&input, "id,amount\n1,2.5\n2,150\n").unwrap();
    /// Pipeline::from(csv::read_chunks(&input))
    ///     .par_try_map(2, |chunk: &CsvChunk| -> dataflare::Result<Vec<u8>> {
    ///         let mut out = CsvOut::new();
    ///         chunk.for_each_row(|row| {
    ///             let order: Order = row.deserialize()?;
    ///             if order.amount > 100.0 {
    ///                 out.serialize(&order)?;
    ///             }
    ///             Ok(())
    ///         })?;
    ///         Ok(out.into_bytes())
    ///     })
    ///     .to(csv::write_chunks(&output).header(["id", "amount"]))
    ///     .run()
    ///     .await?;
    /// assert_eq!(std::fs::read_to_string(&output).unwrap(), "id,amount\n2,150.0\n");
    /// # Ok(()) }
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        let headers = &*self.chunk.file.headers;
        // Straight from the row's text when it is UTF-8 field by field (a
        // character never straddles two fields), as the CSV source does.
        if let Ok(text) = std::str::from_utf8(self.text)
            && self.ends.iter().all(|&end| text.is_char_boundary(end))
            && let Ok(record) = T::deserialize(&mut RowDe::new(
                RowText::new(text, 0, self.ends),
                Some(headers),
            ))
        {
            return Ok(record);
        }
        self.deserialize_by_crate(headers)
    }

    /// [`deserialize`](Row::deserialize) through the `csv` crate: its value,
    /// or its error with this record's position.
    #[cold]
    fn deserialize_by_crate<T: DeserializeOwned>(
        &self,
        headers: &::csv::StringRecord,
    ) -> Result<T> {
        let mut fields = ::csv::StringRecord::with_capacity(self.text.len(), self.len());
        for i in 0..self.len() {
            fields.push_field(self.str(i)?);
        }
        fields.deserialize(Some(headers)).map_err(|e| {
            let e = serde_error(Some(headers), &fields, &e);
            match (e.column, e.stream) {
                (Some(i), _) => self.error(i, e.message),
                (None, false) => self.chunk.error(e.message, self.line, self.byte, None),
                // The header's fault: the run ends on it.
                (None, true) => self.chunk.placed(
                    Error::new(ErrorKind::Parse(e.message)),
                    self.line,
                    self.byte,
                    e.name,
                ),
            }
        })
    }

    #[cold]
    fn utf8_error(&self, i: usize, bytes: &[u8], e: std::str::Utf8Error) -> Error {
        let bad = bytes.get(e.valid_up_to()).copied().unwrap_or(0);
        self.error(i, format!("invalid UTF-8 ({})", show(bad)))
    }

    #[inline]
    fn field(&self, i: usize) -> Result<&'a [u8]> {
        match self.get(i) {
            Some(field) => Ok(field),
            None => Err(self.error(i, format!("no field {i}: the record has {}", self.len()))),
        }
    }
}

impl fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<_> = self.iter().map(String::from_utf8_lossy).collect();
        f.debug_struct("Row")
            .field("line", &self.line)
            .field("byte", &self.byte)
            .field("fields", &fields)
            .finish()
    }
}

/// A value as shown in an error: quoted, cut after 40 characters.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(40) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
    }
}
