//! The pipeline's side of the CSV source: turning the rows the reading
//! thread checked into records (typed through serde, or dynamic), and batching
//! them.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;

use ::csv::StringRecord;
use serde::de::DeserializeOwned;

use super::de::RowDe;
use super::infer::{exact, infer};
use super::parse::Pos;
use super::row::RowText;
use crate::record::{DataType, Record, Schema, Text, Value};
use crate::{Batch, Error, ErrorKind, Position, Result};

/// Where the columns of dynamic records come from.
#[derive(Debug, Clone)]
pub(super) enum Columns {
    /// Names from the header (or `col0`...), every column text.
    FromInput,
    /// A given schema.
    Schema(Arc<Schema>),
    /// Names from the header, types guessed from this many rows.
    Infer(usize),
}

/// Makes the record decoder once the header and the first rows are known.
pub(super) type MakeDecoder<T> = fn(Setup<'_>) -> Result<Box<dyn Decode<T>>>;

/// What the reading thread sends: first the decoder, then checked rows.
pub(super) enum Msg<T> {
    /// The decoder, the labels for errors, and where emptied chunks go back
    /// to the reading thread to be filled again.
    Start(Box<dyn Decode<T>>, Labels, SyncSender<Chunk>),
    /// Rows to decode.
    Rows(Chunk),
    /// Rows the reading thread decoded, having time to spare.
    Decoded(Decoded<T>),
}

/// Rows read and checked on the reading thread, to be decoded in the
/// pipeline's task, and the record-level errors between them, in order.
#[derive(Default)]
pub(super) struct Chunk {
    /// The rows' fields, one after the other.
    pub(super) text: String,
    /// The end of each field in `text`.
    pub(super) ends: Vec<usize>,
    /// Each field's first byte in the input.
    pub(super) positions: Vec<Pos>,
    pub(super) items: Vec<Item>,
    /// Whether the records decoded so far are sent on after this chunk.
    pub(super) flush: bool,
}

pub(super) enum Item {
    /// A row of `fields` fields, the next ones in the chunk.
    Row {
        index: u64,
        start: Pos,
        fields: usize,
    },
    Error(Error),
}

/// How fields are named in errors, and the input's path.
#[derive(Debug, Clone, Default)]
pub(super) struct Labels {
    /// The header's or the schema's names.
    pub(super) names: Vec<String>,
    /// The prefix of a field's index when it has no name.
    pub(super) unnamed: &'static str,
    pub(super) path: Option<PathBuf>,
    /// The dialect, to write a row back as text.
    pub(super) delimiter: u8,
    pub(super) quote: u8,
}

impl Labels {
    /// A well-formed row's text for a dead letter: its fields as read, quoted
    /// where they need it, cut as [`record_text`](super::limit::record_text) does.
    fn row_text(&self, row: RowText<'_>) -> String {
        let (delimiter, quote) = (char::from(self.delimiter), char::from(self.quote));
        let mut text = String::new();
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                text.push(delimiter);
            }
            if field.contains([delimiter, quote, '\r', '\n']) {
                text.push(quote);
                for c in field.chars() {
                    if c == quote {
                        text.push(quote);
                    }
                    text.push(c);
                }
                text.push(quote);
            } else {
                text.push_str(field);
            }
        }
        let cut = text.len().min(super::parse::RAW_TEXT + 1);
        crate::error::record_text(&text.as_bytes()[..cut], text.len())
    }

    /// The error for a value of the row at `index` that did not decode.
    fn field_error(&self, index: u64, start: Pos, positions: &[Pos], e: FieldError) -> Error {
        let at = e
            .column
            .and_then(|c| positions.get(c).copied())
            .unwrap_or(start);
        let mut position = Position::new().record(index).line(at.line).byte(at.byte);
        if let Some(name) = e.name.or_else(|| {
            e.column.map(|c| match self.names.get(c) {
                Some(name) => name.clone(),
                None => format!("{}{c}", self.unnamed),
            })
        }) {
            position = position.field(name);
        }
        let error = match e.stream {
            // The input's fault: every row would fail alike, so the run ends.
            true => Error::new(ErrorKind::Parse(e.message)),
            false => Error::parse(e.message),
        };
        with_path(error.with_position(position), self.path.as_deref())
    }
}

/// The pipeline's side of the source: decodes rows into records and batches
/// them as the reading thread would have.
pub(super) struct Decoding<T> {
    decoder: Option<Box<dyn Decode<T>>>,
    labels: Labels,
    recycle: Option<SyncSender<Chunk>>,
    /// Records not yet sent.
    pub(super) carry: Vec<T>,
    /// Records per batch.
    pub(super) size: usize,
    seq: u64,
    /// What is ready to be yielded.
    pub(super) out: VecDeque<Result<Batch<T>>>,
    /// Whether the reader has ended.
    pub(super) done: bool,
}

impl<T> Default for Decoding<T> {
    fn default() -> Self {
        Decoding {
            decoder: None,
            labels: Labels::default(),
            recycle: None,
            carry: Vec::new(),
            size: 1,
            seq: 0,
            out: VecDeque::new(),
            done: false,
        }
    }
}

impl<T> Decoding<T> {
    /// Batches of `size` records.
    pub(super) fn with_size(size: usize) -> Self {
        Decoding {
            size,
            ..Decoding::default()
        }
    }

    pub(super) fn take(&mut self, msg: Msg<T>) {
        if self.done {
            return; // after an error that ended the source
        }
        match msg {
            Msg::Start(decoder, labels, recycle) => {
                self.decoder = Some(decoder);
                self.labels = labels;
                self.recycle = Some(recycle);
            }
            Msg::Rows(mut chunk) => {
                let decoded = match self.decoder.as_mut() {
                    Some(decoder) => {
                        let decoded = decode(decoder.as_mut(), &self.labels, &mut chunk);
                        if let Some(recycle) = &self.recycle {
                            // Big buffers allocated afresh for every chunk
                            // make the allocator slow for every small
                            // allocation around them; when the reader has
                            // enough spares, this one is dropped.
                            let _ = recycle.try_send(chunk);
                        }
                        decoded
                    }
                    None => Decoded {
                        records: Vec::new(),
                        errors: vec![(
                            0,
                            Error::msg("internal error: a CSV row came before its decoder"),
                        )],
                        flush: chunk.flush,
                    },
                };
                self.push(decoded);
            }
            Msg::Decoded(decoded) => self.push(decoded),
        }
    }

    /// The schema of the records, once the decoder has come.
    pub(super) fn schema(&self) -> Option<Arc<Schema>> {
        self.decoder.as_ref()?.schema()
    }

    /// Takes the first error waiting to be yielded, if any.
    pub(super) fn take_error(&mut self) -> Option<Error> {
        let at = self.out.iter().position(Result::is_err)?;
        self.out.remove(at)?.err()
    }

    /// Batches decoded records, as the reading thread would have.
    pub(super) fn push(&mut self, decoded: Decoded<T>) {
        let Decoded {
            mut records,
            errors,
            flush,
        } = decoded;
        if self.carry.is_empty() && errors.is_empty() && records.len() == self.size {
            // Most chunks are exactly a batch: no need to move the records.
            self.carry = records;
            self.flush();
            return;
        }
        // The records between two errors move in runs, not one by one.
        let mut taken = 0;
        for (at, e) in errors {
            // `at` counts the records before the error, `taken` those moved.
            let run = at.saturating_sub(taken).min(records.len());
            self.extend(records.drain(..run));
            taken += run;
            if !self.error(e) {
                return;
            }
        }
        self.extend(records.drain(..));
        if flush {
            self.flush();
        }
    }

    /// Adds records after those carried, sending each batch they fill.
    fn extend(&mut self, mut records: std::vec::Drain<'_, T>) {
        while records.len() > 0 {
            if self.carry.capacity() == 0 {
                self.carry.reserve_exact(self.size.min(4096));
            }
            let room = self.size - self.carry.len();
            self.carry.extend(records.by_ref().take(room));
            if self.carry.len() >= self.size {
                self.flush();
            }
        }
    }

    /// Queues an error after the records so far; false when it ends the
    /// source (a stream-level error: nothing after it is yielded).
    fn error(&mut self, e: Error) -> bool {
        self.flush();
        let go_on = e.is_record_level();
        self.out.push_back(Err(e));
        self.done |= !go_on;
        go_on
    }

    /// Queues the records so far as a batch, if any.
    pub(super) fn flush(&mut self) {
        if self.carry.is_empty() {
            return;
        }
        // For the run's byte budget: a dynamic record's value slots (its
        // short text is inline, long text shared); a typed record counts its
        // inline size only.
        let slots = self
            .schema()
            .map_or(0, |s| s.len() * std::mem::size_of::<Value>());
        let heap = slots * self.carry.len();
        let batch = Batch::new(std::mem::take(&mut self.carry))
            .with_seq(self.seq)
            .with_heap_bytes(heap);
        self.seq += 1;
        self.out.push_back(Ok(batch));
    }
}

/// Records decoded from a chunk, on either side of the channel, and the
/// record-level errors between them.
pub(super) struct Decoded<T> {
    pub(super) records: Vec<T>,
    /// Each error, after how many of `records`.
    pub(super) errors: Vec<(usize, Error)>,
    /// Whether the records decoded so far are sent on after these.
    pub(super) flush: bool,
}

impl<T> Decoded<T> {
    /// How many rows of the input these are: records and errors.
    pub(super) fn items(&self) -> usize {
        self.records.len() + self.errors.len()
    }

    /// Takes the first `n` items (records and errors, in the input's order)
    /// out of these.
    pub(super) fn split_front(&mut self, n: usize) -> Decoded<T> {
        // The errors among the first `n` items: error `i`, after `at`
        // records, is item `at + i`.
        let errors = self
            .errors
            .iter()
            .enumerate()
            .take_while(|(i, (at, _))| at + i < n)
            .count();
        let records = n - errors;
        let front = Decoded {
            records: self.records.drain(..records).collect(),
            errors: self.errors.drain(..errors).collect(),
            flush: false,
        };
        for (at, _) in &mut self.errors {
            *at -= records;
        }
        front
    }
}

/// Decodes the rows of a chunk, leaving it empty.
pub(super) fn decode<T>(
    decoder: &mut dyn Decode<T>,
    labels: &Labels,
    chunk: &mut Chunk,
) -> Decoded<T> {
    let Chunk {
        text,
        ends,
        positions,
        items,
        flush,
    } = chunk;
    let mut records = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let (mut field, mut from) = (0, 0);
    for item in items.drain(..) {
        match item {
            Item::Error(e) => errors.push((records.len(), e)),
            Item::Row {
                index,
                start,
                fields,
            } => {
                let row_ends = &ends[field..field + fields];
                let row = RowText::new(text.as_str(), from, row_ends);
                from = row_ends.last().copied().unwrap_or(from);
                let at = &positions[field..field + fields];
                field += fields;
                match decoder.decode(row) {
                    Ok(record) => records.push(record),
                    Err(e) => {
                        let text = labels.row_text(row);
                        let e = labels
                            .field_error(index, start, at, e)
                            .with_record_text(text);
                        errors.push((records.len(), e));
                    }
                }
            }
        }
    }
    text.clear();
    ends.clear();
    positions.clear();
    Decoded {
        records,
        errors,
        flush: *flush,
    }
}

/// What a decoder is made from.
pub(super) struct Setup<'a> {
    pub(super) header: Option<&'a StringRecord>,
    /// Fields in a record: the header's, or the first record's.
    pub(super) width: usize,
    /// The first records that were well formed (as many as schema inference
    /// asked for, else at most one).
    pub(super) sample: &'a [StringRecord],
    pub(super) columns: &'a Columns,
    pub(super) path: Option<&'a Path>,
}

/// Turns a well-formed row's fields into a `T`.
pub(super) trait Decode<T>: Send {
    fn decode(&mut self, row: RowText<'_>) -> std::result::Result<T, FieldError>;
    /// Another decoder like this one, for the other side of the channel.
    fn fork(&self) -> Box<dyn Decode<T>>;
    /// The schema of the records it makes, for dynamic records.
    fn schema(&self) -> Option<Arc<Schema>> {
        None
    }
}

/// A value that does not fit: in which column, and why.
pub(super) struct FieldError {
    pub(super) column: Option<usize>,
    pub(super) name: Option<String>,
    pub(super) message: String,
    /// Whether the fault is the input's, not the row's (a column the type
    /// needs is not in the header): the error ends the run.
    pub(super) stream: bool,
}

/// Deserializes rows into `T` with serde.
struct Typed<T> {
    header: Option<StringRecord>,
    /// The row being decoded (its buffers reused).
    record: StringRecord,
    _record: PhantomData<fn() -> T>,
}

pub(super) fn typed<T: DeserializeOwned + 'static>(setup: Setup<'_>) -> Result<Box<dyn Decode<T>>> {
    Ok(Box::new(Typed {
        header: setup.header.cloned(),
        record: StringRecord::new(),
        _record: PhantomData,
    }))
}

impl<T: DeserializeOwned + 'static> Decode<T> for Typed<T> {
    fn fork(&self) -> Box<dyn Decode<T>> {
        Box::new(Typed {
            header: self.header.clone(),
            record: StringRecord::new(),
            _record: PhantomData,
        })
    }

    fn decode(&mut self, row: RowText<'_>) -> std::result::Result<T, FieldError> {
        if let Ok(record) = T::deserialize(&mut RowDe::new(row, self.header.as_ref())) {
            return Ok(record);
        }
        // Through the `csv` crate: its result, or its error.
        self.record.clear();
        for field in row.iter() {
            self.record.push_field(field);
        }
        let fields = &self.record;
        fields
            .deserialize(self.header.as_ref())
            .map_err(|e| serde_error(self.header.as_ref(), fields, &e))
    }
}

/// What the `csv` crate's error `e`, deserializing `fields`, says: in which
/// column, and why (the value quoted); or that the header lacks a column the
/// type needs. Shared by the CSV source and [`Row::deserialize`].
///
/// [`Row::deserialize`]: super::Row::deserialize
pub(super) fn serde_error(
    header: Option<&StringRecord>,
    fields: &StringRecord,
    e: &::csv::Error,
) -> FieldError {
    if let Some(missing) = header.and_then(|h| missing_column(h, e)) {
        return missing;
    }
    let ::csv::ErrorKind::Deserialize { err, .. } = e.kind() else {
        return FieldError {
            column: None,
            name: None,
            message: e.to_string(),
            stream: false,
        };
    };
    let column = err.field().and_then(|c| usize::try_from(c).ok());
    let name = column.map(|c| match header.and_then(|h| h.get(c)) {
        Some(name) => name.to_string(),
        None => c.to_string(),
    });
    let message = match column.and_then(|c| fields.get(c)) {
        Some(text) => format!("invalid value {}: {}", excerpt(text), err.kind()),
        None => err.kind().to_string(),
    };
    FieldError {
        column,
        name,
        message,
        stream: false,
    }
}

/// The error for a field the type needs that the header has no column for,
/// when that is what `e` says: a property of the input, not of the row.
fn missing_column(header: &StringRecord, e: &::csv::Error) -> Option<FieldError> {
    let ::csv::ErrorKind::Deserialize { err, .. } = e.kind() else {
        return None;
    };
    let ::csv::DeserializeErrorKind::Message(message) = err.kind() else {
        return None;
    };
    // serde's words for a required field with no value.
    let name = message.strip_prefix("missing field `")?.strip_suffix('`')?;
    if header.iter().any(|h| h == name) {
        return None; // a short row (flexible), not the header
    }
    const SHOWN: usize = 20;
    let mut columns: Vec<&str> = header.iter().take(SHOWN).collect();
    if header.len() > SHOWN {
        columns.push("...");
    }
    Some(FieldError {
        column: None,
        name: Some(name.to_string()),
        message: format!(
            "the header has no column `{name}` that the type needs; columns are {}; add \
             the column, or make the field an Option or #[serde(default)]",
            columns.join(", ")
        ),
        stream: true,
    })
}

/// Makes dynamic records of the schema's columns.
struct Dynamic {
    schema: Arc<Schema>,
    /// For each schema column, the field it is read from.
    columns: Vec<usize>,
    /// For each schema column, its recent text values.
    recent: Vec<Recent>,
    /// When the types were inferred, from how many rows: values are then
    /// read only when nothing is lost ([`exact`]).
    inferred: Option<usize>,
}

impl Dynamic {
    fn new(schema: Arc<Schema>, columns: Vec<usize>, inferred: Option<usize>) -> Self {
        let recent = columns.iter().map(|_| Recent::default()).collect();
        Dynamic {
            schema,
            columns,
            recent,
            inferred,
        }
    }
}

/// The text values one column had lately, so that a value seen again (a
/// category, a country, a status) shares the string made for it instead of
/// allocating its own: allocation is most of what decoding a dynamic record
/// costs. A column whose values rarely repeat stops looking after a while.
#[derive(Default)]
struct Recent {
    /// Strings by a hash of their text; empty until first used.
    slots: Vec<Option<Arc<str>>>,
    lookups: u32,
    hits: u32,
    off: bool,
}

impl Recent {
    const SLOTS: usize = 64;
    /// Longer values are rarely repeated, and costly to compare.
    const LONGEST: usize = 48;
    /// Lookups before deciding whether the column repeats enough.
    const TRIAL: u32 = 4096;

    fn get(&mut self, text: &str) -> Text {
        // Short text is inline: no allocation to save, and copying it is
        // cheaper than hashing it.
        if self.off || Text::fits_inline(text) || text.len() > Self::LONGEST {
            return Text::from(text);
        }
        if self.slots.is_empty() {
            self.slots.resize(Self::SLOTS, None);
        }
        if self.lookups < Self::TRIAL {
            self.lookups += 1;
        } else if self.hits < Self::TRIAL / 4 {
            // Worth it only when a good share of the values repeat.
            self.off = true;
            self.slots = Vec::new();
            return Text::from(text);
        }
        // FNV-1a: short texts, one multiplication a byte.
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let slot = &mut self.slots[(hash as usize) % Self::SLOTS];
        match slot {
            Some(s) if **s == *text => {
                if self.lookups < Self::TRIAL {
                    self.hits += 1;
                }
                Text::from(s.clone())
            }
            _ => Text::from(slot.insert(Arc::from(text)).clone()),
        }
    }
}

pub(super) fn records(setup: Setup<'_>) -> Result<Box<dyn Decode<Record>>> {
    let names: Vec<String> = match setup.header {
        Some(header) => header.iter().map(str::to_string).collect(),
        None => (0..setup.width).map(|i| format!("col{i}")).collect(),
    };
    let all = (0..names.len()).collect();
    let (schema, columns) = match setup.columns {
        Columns::FromInput => (
            Arc::new(Schema::strings(names.iter().map(String::as_str))),
            all,
        ),
        Columns::Infer(_) => {
            let types = (0..names.len()).map(|c| infer(setup.sample, c));
            let schema = Schema::new(names.iter().map(String::as_str).zip(types));
            (Arc::new(schema), all)
        }
        Columns::Schema(schema) => match setup.header {
            None => (schema.clone(), (0..schema.len()).collect()),
            Some(header) => {
                let columns = schema
                    .names()
                    .map(|name| {
                        header.iter().position(|h| h == name).ok_or_else(|| {
                            let e = Error::config(format!(
                                "column {name:?} of the schema is not in the header"
                            ));
                            with_path(e, setup.path)
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                (schema.clone(), columns)
            }
        },
    };
    let inferred = match setup.columns {
        Columns::Infer(rows) => Some(*rows),
        _ => None,
    };
    Ok(Box::new(Dynamic::new(schema, columns, inferred)))
}

impl Decode<Record> for Dynamic {
    fn schema(&self) -> Option<Arc<Schema>> {
        Some(self.schema.clone())
    }

    fn fork(&self) -> Box<dyn Decode<Record>> {
        Box::new(Dynamic::new(
            self.schema.clone(),
            self.columns.clone(),
            self.inferred,
        ))
    }

    fn decode(&mut self, fields: RowText<'_>) -> std::result::Result<Record, FieldError> {
        let mut values = Vec::with_capacity(self.columns.len());
        let columns = self.schema.fields().iter().zip(&self.columns);
        for ((field, &c), recent) in columns.zip(&mut self.recent) {
            let value = match (fields.get(c), field.data_type()) {
                (None, _) => Value::Null,
                (Some(text), DataType::Str) if !text.is_empty() => Value::Str(recent.get(text)),
                (Some(text), data_type) => match self.inferred {
                    None => data_type.parse(text),
                    Some(rows) => exact(data_type, text)
                        .ok_or_else(|| does_not_fit(text, field.name(), data_type, rows)),
                }
                .map_err(|message| FieldError {
                    column: Some(c),
                    name: Some(field.name().to_string()),
                    message,
                    stream: false,
                })?,
            };
            values.push(value);
        }
        Ok(Record::new(self.schema.clone(), values))
    }
}

/// The message for a value, past the rows types were inferred from, that its
/// column's inferred type cannot hold as it is.
fn does_not_fit(text: &str, column: &str, data_type: DataType, rows: usize) -> String {
    let how = match data_type.parse(text) {
        Ok(value) => format!("it would read back as {:?}", value.to_string()),
        Err(_) => "it is not one".to_string(),
    };
    format!(
        "{} does not fit column {column:?}, inferred as {data_type} from the first {rows} \
         records ({how}); raise infer_schema (--infer-schema N) to look at more records, or \
         give the column's type with schema(..)",
        excerpt(text)
    )
}

/// A value for an error message: quoted, and cut short when long.
fn excerpt(text: &str) -> String {
    const MAX: usize = 40;
    match text.char_indices().nth(MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
    }
}

pub(super) fn with_path(error: Error, path: Option<&Path>) -> Error {
    match path {
        Some(path) => error.with_path(path),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when the two texts are one shared string.
    fn shared(a: &Text, b: &Text) -> bool {
        a.as_ptr() == b.as_ptr()
    }

    const LONG: &str = "a category name longer than inline text";

    #[test]
    fn a_repeated_long_value_shares_its_string() {
        let mut recent = Recent::default();
        let (a, b) = (recent.get(LONG), recent.get(LONG));
        assert!(shared(&a, &b));
        assert_eq!(&*recent.get("toys"), "toys");
        assert_eq!(&*recent.get(LONG), LONG);
    }

    #[test]
    fn a_short_value_is_inline_not_cached() {
        let mut recent = Recent::default();
        let (a, b) = (recent.get("books"), recent.get("books"));
        assert_eq!((&*a, &*b), ("books", "books"));
        assert!(!shared(&a, &b));
    }

    #[test]
    fn a_column_of_distinct_values_stops_looking() {
        let mut recent = Recent::default();
        for i in 0..=Recent::TRIAL {
            let text = format!("{i:>30}");
            assert_eq!(&*recent.get(&text), text);
        }
        assert!(recent.off);
        let (a, b) = (recent.get(LONG), recent.get(LONG));
        assert!(!shared(&a, &b));
    }
}
