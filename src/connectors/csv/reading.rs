//! The reading thread of the CSV source: opens the input, parses it, checks
//! each record (quoting, number of fields, UTF-8, trimming) and sends the
//! rows and record-level errors, in order, in chunks to the pipeline's task.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use ::csv::StringRecord;

use super::decode::{
    Chunk, Columns, Decode, Item, Labels, MakeDecoder, Msg, Setup, decode, with_path,
};
use super::headers::check_duplicates;
use super::limit;
use super::options::{CsvOptions, DuplicateHeaders, Trim};
use super::parse::{Dialect, Fault, Fields, Pos, RecordInfo, Records, Resume, Stop, show};
use crate::connectors::file::Emit;
use crate::{Error, ErrorKind, Position, Result};

/// Emptied chunks waiting to be filled again: as many as can be in flight.
const READ_AHEAD_SPARES: usize = 4;

/// What the source reads.
pub(super) enum Input {
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
}

/// Everything the reading thread needs.
pub(super) struct Job<T> {
    pub(super) input: Input,
    pub(super) options: CsvOptions,
    pub(super) columns: Columns,
    pub(super) decoder: MakeDecoder<T>,
    pub(super) unnamed: &'static str,
}

/// Checks the options before anything is read.
fn check(options: &CsvOptions) -> Result<()> {
    if options.batch_size == 0 {
        return Err(Error::config(
            "batch_size: a batch needs room for at least 1 record",
        ));
    }
    if options.parallel == Some(0) {
        return Err(Error::config("parallel: reading needs at least 1 thread"));
    }
    if options.chunk_size == 0 {
        return Err(Error::config(
            "chunk_size: a chunk needs room for at least 1 byte",
        ));
    }
    if options.max_record_bytes == 0 {
        return Err(Error::config(
            "max_record_bytes: a record needs room for at least 1 byte",
        ));
    }
    if options.delimiter == options.quote {
        return Err(Error::config(format!(
            "the delimiter and the quote are the same byte ({})",
            show(options.quote)
        )));
    }
    for (what, byte) in [
        ("delimiter", Some(options.delimiter)),
        ("quote", Some(options.quote)),
        ("escape", options.escape),
    ] {
        if matches!(byte, Some(b'\r' | b'\n')) {
            return Err(Error::config(format!("the {what} cannot be a line break")));
        }
    }
    Ok(())
}

/// Opens the input: a reader, whether it is a stream (see
/// [`read_from`](super::read_from): any reader, or a path that is not a
/// regular file), and the file's path. The bytes read through the reader
/// count on `emit`, and a regular file's size is its total.
fn open<T>(input: Input, emit: &Emit<T>) -> Result<(Box<dyn Read + Send>, bool, Option<PathBuf>)> {
    match input {
        Input::Reader(reader) => Ok((Box::new(emit.counted(reader)), true, None)),
        Input::Path(path) => {
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            if meta.is_dir() {
                return Err(
                    Error::config("the input path is a directory, not a file").with_path(&path)
                );
            }
            crate::connectors::file::claim_input(&path)?;
            let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
            // A named pipe or a device is read as a stream, of unknown size.
            if meta.is_file() {
                emit.set_total(meta.len());
            }
            Ok((Box::new(emit.counted(file)), !meta.is_file(), Some(path)))
        }
    }
}

/// Reads the whole input, sending rows and record-level errors; returns a
/// stream-level error, or `Ok` at the end of the input or once the pipeline
/// is gone.
pub(super) fn read_all<T: Send>(job: Job<T>, emit: &mut Emit<Msg<T>>) -> Result<()> {
    let Job {
        input,
        options,
        columns,
        decoder,
        unnamed,
    } = job;
    let path_of = match &input {
        Input::Path(p) => Some(p.clone()),
        Input::Reader(_) => None,
    };
    check(&options).map_err(|e| with_path(e, path_of.as_deref()))?;
    let (reader, streaming, path) = open(input, emit)?;
    let width = match (&columns, options.has_headers) {
        (Columns::Schema(schema), false) => Some(schema.len()),
        _ => None,
    };
    let mut rows = Rows::new(reader, &options, path.clone(), width, unnamed);
    // Chunks the pipeline has emptied come back to be filled again.
    let (recycle, spares) = std::sync::mpsc::sync_channel(READ_AHEAD_SPARES);
    let mut out = Batcher {
        emit,
        chunk: Building::default(),
        size: options.batch_size,
        unflushed: false,
        streaming,
        hold: true,
        gone: false,
        local: None,
        spare: None,
        spares,
    };

    let header = if options.has_headers {
        match rows.header(&mut out)? {
            Some(header) => Some(header),
            None => return Ok(()), // empty input
        }
    } else {
        None
    };
    rows.names = match (&header, &columns) {
        (Some(header), _) => header.iter().map(str::to_string).collect(),
        (None, Columns::Schema(schema)) => schema.names().map(str::to_string).collect(),
        (None, _) => Vec::new(),
    };

    // The first rows, held back: enough to infer types, and at least one to
    // know how many fields a record has when there is no header.
    let wanted = match columns {
        Columns::Infer(n) => n.max(1),
        _ => 1,
    };
    let mut more = true;
    while out.chunk.items.len() < wanted {
        if !rows.next(&mut out)? {
            more = false;
            break;
        }
    }
    if header.is_none() && out.chunk.items.is_empty() {
        return Ok(()); // empty input
    }
    let decoder = {
        let sample = out.chunk.sample();
        decoder(Setup {
            header: header.as_ref(),
            width: rows.width.unwrap_or(0),
            sample: &sample,
            columns: &columns,
            path: path.as_deref(),
        })?
    };
    let labels = Labels {
        names: rows.names.clone(),
        unnamed: rows.unnamed,
        path: rows.path.clone(),
        delimiter: options.delimiter,
        quote: options.quote,
    };
    let workers = super::parallel::workers(&options);
    if more
        && !streaming
        && workers > 1
        && let Some(path) = &path
    {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let first = rows.end();
        // What is left fits one chunk: one thread reads it.
        if len.saturating_sub(first.pos.byte) > options.chunk_size as u64 {
            // The rest of the file is parsed on several threads.
            let plan = super::parallel::Plan {
                file: std::sync::Arc::new(file),
                path: path.clone(),
                len,
                width: rows.width,
                names: rows.names.clone(),
                unnamed: rows.unnamed,
                labels: labels.clone(),
                first,
                index: rows.next_index(),
                workers,
                options: options.clone(),
            };
            let counted = rows.read_to();
            drop(rows);
            // The rows read so far: the first chunk the sequential reader
            // sends holds them all, and at least a batch.
            let held = out.chunk.items.len();
            let mut feed = super::parallel::Feed::new(out.size, held.max(out.size));
            let mut local = decoder.fork();
            let first = super::parallel::decode_building(local.as_mut(), &labels, &mut out.chunk);
            if !out
                .emit
                .batch(vec![Msg::Start(decoder.fork(), labels, recycle)])
            {
                return Ok(());
            }
            if !feed.add_first(first, out.emit) {
                return Ok(());
            }
            return super::parallel::read_rest(plan, decoder.as_ref(), feed, out.emit, counted);
        }
    }
    out.local = Some((decoder.fork(), labels.clone()));
    if !out.emit.batch(vec![Msg::Start(decoder, labels, recycle)]) {
        return Ok(());
    }
    out.hold = false;
    if out.chunk.items.len() >= out.size && !out.send(false) {
        return Ok(());
    }
    while rows.next(&mut out)? {
        if out.gone {
            return Ok(());
        }
    }
    if !out.gone {
        out.flush();
    }
    Ok(())
}

/// A chunk being filled on the reading thread.
#[derive(Default)]
pub(super) struct Building {
    pub(super) fields: Fields,
    pub(super) items: Vec<Item>,
    /// The text and fields of the rows in `items`; anything after is the
    /// record being read.
    pub(super) text_len: usize,
    pub(super) fields_len: usize,
}

/// Where [`Rows`] puts the rows it checked and the errors it found.
pub(super) trait Gather: super::parse::Out {
    /// The chunk being filled.
    fn building(&mut self) -> &mut Building;
    /// Adds the last row parsed, of `fields` fields.
    fn row(&mut self, index: u64, start: Pos, fields: usize);
    /// Adds an error, after the rows so far, in place of the last record
    /// parsed.
    fn error(&mut self, error: Error);
}

impl<T> Gather for Batcher<'_, T> {
    fn building(&mut self) -> &mut Building {
        &mut self.chunk
    }

    fn row(&mut self, index: u64, start: Pos, fields: usize) {
        Batcher::row(self, index, start, fields);
    }

    fn error(&mut self, error: Error) {
        Batcher::error(self, error);
    }
}

impl Building {
    /// The rows so far, as records (for schema inference).
    fn sample(&self) -> Vec<StringRecord> {
        let (mut field, mut from) = (0, 0);
        let mut sample = Vec::new();
        for item in &self.items {
            if let Item::Row { fields, .. } = item {
                let mut record = StringRecord::new();
                for &end in &self.fields.ends[field..field + fields] {
                    record.push_field(&String::from_utf8_lossy(&self.fields.text[from..end]));
                    from = end;
                }
                field += fields;
                sample.push(record);
            }
        }
        sample
    }
}

/// Collects checked rows and record-level errors into chunks and sends them,
/// to be decoded in the pipeline's task, which batches the records as they
/// would be batched here: a full batch is sent, and the records so far go
/// before an error and wherever [`flush`](Batcher::flush) is called.
struct Batcher<'a, T> {
    emit: &'a mut Emit<Msg<T>>,
    chunk: Building,
    size: usize,
    /// Whether rows were sent since the last flush.
    unflushed: bool,
    /// Whether the rows so far are sent before waiting for more input.
    streaming: bool,
    /// Whether rows are held back (the first ones, until the decoder is made).
    hold: bool,
    /// Whether the pipeline is gone.
    gone: bool,
    /// A decoder of this thread's own, for when the pipeline is behind.
    local: Option<(Box<dyn Decode<T>>, Labels)>,
    /// An emptied chunk to fill next: one decoded here, or one the pipeline
    /// sent back.
    spare: Option<Chunk>,
    spares: Receiver<Chunk>,
}

impl<T> Batcher<'_, T> {
    /// Adds the last row parsed, of `fields` fields.
    fn row(&mut self, index: u64, start: Pos, fields: usize) {
        let chunk = &mut self.chunk;
        chunk.items.push(Item::Row {
            index,
            start,
            fields,
        });
        chunk.text_len = chunk.fields.text.len();
        chunk.fields_len = chunk.fields.ends.len();
        self.sent_if_full();
    }

    /// Adds an error, after the rows so far, in place of the last record
    /// parsed.
    fn error(&mut self, error: Error) {
        let chunk = &mut self.chunk;
        chunk.fields.truncate(chunk.fields_len, chunk.text_len);
        chunk.items.push(Item::Error(error));
        self.sent_if_full();
    }

    fn sent_if_full(&mut self) {
        if !self.hold && self.chunk.items.len() >= self.size {
            self.send(false);
        }
    }

    /// Sends the records so far, if any; true if it did (whether or not
    /// the pipeline is still there to take them).
    fn flush(&mut self) -> bool {
        if self.chunk.items.is_empty() && !self.unflushed {
            return false;
        }
        self.send(true);
        true
    }

    /// Sends the rows and errors so far; the record being read, if any, goes
    /// on in the next chunk. False when the pipeline is gone.
    fn send(&mut self, flush: bool) -> bool {
        let chunk = &mut self.chunk;
        let mut next = match self.spare.take().or_else(|| self.spares.try_recv().ok()) {
            Some(spare) => Building {
                fields: Fields {
                    text: spare.text.into_bytes(),
                    ends: spare.ends,
                    positions: spare.positions,
                },
                items: spare.items,
                text_len: 0,
                fields_len: 0,
            },
            // The next chunk starts with room for as much as this one held.
            None => Building {
                fields: Fields {
                    text: Vec::with_capacity(chunk.fields.text.capacity()),
                    ends: Vec::with_capacity(chunk.fields.ends.capacity()),
                    positions: Vec::with_capacity(chunk.fields.positions.capacity()),
                },
                items: Vec::with_capacity(chunk.items.len()),
                text_len: 0,
                fields_len: 0,
            },
        };
        // The record being read moves to the next chunk.
        let (text_len, fields_len) = (chunk.text_len, chunk.fields_len);
        next.fields
            .text
            .extend_from_slice(&chunk.fields.text[text_len..]);
        next.fields.ends.extend(
            chunk.fields.ends[fields_len..]
                .iter()
                .map(|&end| end - text_len),
        );
        next.fields
            .positions
            .extend_from_slice(&chunk.fields.positions[fields_len..]);
        chunk.fields.truncate(fields_len, text_len);
        let Building { fields, items, .. } = std::mem::replace(chunk, next);
        self.unflushed = !flush;
        // Every field was checked to be UTF-8 on its own, so the text is.
        let chunk = match String::from_utf8(fields.text) {
            Ok(text) => Chunk {
                text,
                ends: fields.ends,
                positions: fields.positions,
                items,
                flush,
            },
            Err(_) => Chunk {
                items: vec![Item::Error(Error::msg(
                    "internal error: a checked CSV row is not UTF-8",
                ))],
                flush,
                ..Chunk::default()
            },
        };
        // When the pipeline has not taken what was sent before, this thread
        // would only wait: it decodes the rows itself meanwhile, sharing the
        // decoding with the pipeline's task as their speeds demand.
        let sent = match &mut self.local {
            Some((decoder, labels)) if !self.emit.has_room() => {
                let mut chunk = chunk;
                let decoded = decode(decoder.as_mut(), labels, &mut chunk);
                self.spare = Some(chunk);
                Msg::Decoded(decoded)
            }
            _ => Msg::Rows(chunk),
        };
        let more = self.emit.batch(vec![sent]);
        self.gone |= !more;
        more
    }
}

impl<T> super::parse::Out for Batcher<'_, T> {
    fn fields(&mut self) -> &mut Fields {
        &mut self.chunk.fields
    }

    fn waiting(&mut self) -> (usize, usize) {
        let taken = (self.chunk.text_len, self.chunk.fields_len);
        if self.streaming && !self.hold && !self.gone && self.flush() {
            taken
        } else {
            (0, 0)
        }
    }
}

/// Reads records with the parser, checking each: quoting, the number of
/// fields, UTF-8.
pub(super) struct Rows {
    records: Records<Box<dyn Read + Send>>,
    /// `max_record_bytes`.
    limit: usize,
    duplicates: DuplicateHeaders,
    path: Option<PathBuf>,
    quote: u8,
    strict: bool,
    lossy: bool,
    flexible: bool,
    trim_headers: bool,
    trim_fields: bool,
    /// The number of fields a record should have: the header's, the
    /// schema's, or the first record's.
    width: Option<usize>,
    next_index: u64,
    /// Field names for errors: the header's or the schema's.
    names: Vec<String>,
    /// The prefix of a field's index when it has no name.
    unnamed: &'static str,
    /// Records starting at or after this byte are left to another reader
    /// (see [`ranged`](Rows::ranged)); `u64::MAX` for none.
    until: u64,
    /// Where the parser stood after the last record taken.
    end: Resume,
}

impl Rows {
    fn new(
        reader: Box<dyn Read + Send>,
        options: &CsvOptions,
        path: Option<PathBuf>,
        width: Option<usize>,
        unnamed: &'static str,
    ) -> Self {
        let records = Records::new(reader, dialect(options), options.max_record_bytes);
        Rows::with(records, options, path, width, unnamed)
    }

    fn with(
        records: Records<Box<dyn Read + Send>>,
        options: &CsvOptions,
        path: Option<PathBuf>,
        width: Option<usize>,
        unnamed: &'static str,
    ) -> Self {
        Rows {
            records,
            limit: options.max_record_bytes,
            duplicates: options.duplicate_headers,
            path,
            quote: options.quote,
            strict: !options.lenient_quotes,
            lossy: options.lossy_utf8,
            flexible: options.flexible,
            trim_headers: matches!(options.trim, Trim::Headers | Trim::All),
            trim_fields: matches!(options.trim, Trim::Fields | Trim::All),
            width,
            next_index: 0,
            names: Vec::new(),
            unnamed,
            until: u64::MAX,
            end: Resume {
                pos: Pos { byte: 0, line: 1 },
                after_cr: u64::MAX,
            },
        }
    }

    /// Rows of an input read from `at` on, where a reader of the whole
    /// input is between records, as that reader would check them: records
    /// count from `index`, fields are named by `names`, and a record must
    /// have `width` fields (unless flexible). Only the records starting
    /// before byte `until` are taken; [`next`](Rows::next) ends before the
    /// first one at or after it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ranged(
        reader: Box<dyn Read + Send>,
        options: &CsvOptions,
        path: Option<PathBuf>,
        width: Option<usize>,
        names: Vec<String>,
        unnamed: &'static str,
        at: Resume,
        index: u64,
        until: u64,
    ) -> Self {
        let records = Records::resume(reader, dialect(options), options.max_record_bytes, at);
        let mut rows = Rows::with(records, options, path, width, unnamed);
        rows.names = names;
        rows.next_index = index;
        rows.until = until;
        rows.end = at;
        rows
    }

    /// Where the parser stood after the last record taken.
    pub(super) fn end(&self) -> Resume {
        self.end
    }

    /// How far the input has been read.
    pub(super) fn read_to(&self) -> u64 {
        self.records.read_to()
    }

    /// The index the next record will have.
    pub(super) fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The stream-level error for what stopped the reader while reading the
    /// record at `index` (`None`: the header row).
    fn stop_error(&self, stop: Stop, index: Option<u64>) -> Error {
        match stop {
            Stop::Io(e) => match &self.path {
                Some(path) => Error::io(path, e),
                None => Error::from(e),
            },
            Stop::TooLong(partial) => {
                // The header's fields are not named yet.
                let field = index.map(|_| self.label(partial.field));
                limit::too_long(&partial, self.limit, index, self.path.as_deref(), field)
            }
        }
    }

    /// Reads the header row. Its errors are stream-level.
    fn header<T>(&mut self, out: &mut Batcher<'_, T>) -> Result<Option<StringRecord>> {
        if !self
            .records
            .next(out)
            .map_err(|e| self.stop_error(e, None))?
        {
            return Ok(None);
        }
        let info = self.records.record();
        let fields = &mut out.chunk.fields;
        let fail = |message: String, at: Pos| {
            let position = Position::new().line(at.line).byte(at.byte);
            let e = Error::new(ErrorKind::Parse(format!("header row: {message}")));
            self.at_path(e.with_position(position))
        };
        if let Some(q) = info.error.filter(|_| self.strict) {
            if q.fault == Fault::UnclosedQuote {
                let path = self.path.as_deref();
                return Err(limit::unclosed(q.at, info.start, None, path, None));
            }
            return Err(fail(q.message(self.quote), q.at));
        }
        let mut header = StringRecord::new();
        for (field, value) in values(fields, info).enumerate() {
            match std::str::from_utf8(value) {
                Ok(value) => header.push_field(value),
                Err(_) if self.lossy => header.push_field(&String::from_utf8_lossy(value)),
                Err(e) => {
                    let at = utf8_position(fields, info, field, value, e.valid_up_to());
                    let bad = value.get(e.valid_up_to()).copied().unwrap_or(0);
                    return Err(fail(format!("invalid UTF-8 ({})", show(bad)), at));
                }
            }
        }
        let line = info.start.line;
        fields.truncate(0, 0);
        if self.trim_headers {
            header.trim();
        }
        check_duplicates(&mut header, self.duplicates, self.path.as_deref(), line)?;
        self.width = Some(header.len());
        Ok(Some(header))
    }

    /// Reads and checks the next data record, adding it to `out` as a row or
    /// an error; false at the end of the input, or at a record starting at or
    /// after [`until`](Rows::ranged), which is left out.
    pub(super) fn next(&mut self, out: &mut impl Gather) -> Result<bool> {
        let index = self.next_index;
        match self.records.next(out) {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            // Another reader's record, whatever it holds.
            Err(Stop::TooLong(partial)) if partial.start.byte >= self.until => {
                return Ok(self.leave(out));
            }
            Err(e) => return Err(self.stop_error(e, Some(index))),
        }
        if self.records.record().start.byte >= self.until {
            return Ok(self.leave(out));
        }
        self.next_index += 1;
        // A quote open at the end of the input took every line after it:
        // skipping the record would drop them silently.
        let info = self.records.record();
        if let Some(q) = info
            .error
            .filter(|q| self.strict && q.fault == Fault::UnclosedQuote)
        {
            let (path, field) = (self.path.as_deref(), Some(self.label(q.field)));
            return Err(limit::unclosed(q.at, info.start, Some(index), path, field));
        }
        // Without a header or a schema, the first record sets the width.
        let fields = self.records.record().fields;
        self.width.get_or_insert(fields);
        match self.check(&mut out.building().fields, index) {
            Ok(()) => {
                let info = self.records.record();
                out.row(index, info.start, info.fields);
            }
            Err(e) => {
                // The row as it is in the input, for a dead letter.
                let (raw, total) = self.records.raw();
                out.error(e.with_record_text(crate::error::record_text(&raw, total)));
            }
        }
        self.end = self.records.resume_point();
        Ok(true)
    }

    /// Drops the record just parsed, left to another reader: false.
    fn leave(&mut self, out: &mut impl Gather) -> bool {
        let chunk = out.building();
        chunk.fields.truncate(chunk.fields_len, chunk.text_len);
        false
    }

    /// Checks the last record's quoting, its number of fields and its UTF-8,
    /// and trims its fields if asked.
    fn check(&self, fields: &mut Fields, index: u64) -> std::result::Result<(), Error> {
        let info = self.records.record();
        let width = self.width.unwrap_or(info.fields);
        let note = limit::spanning_note(info.spanning);
        if let Some(q) = info.error.filter(|_| self.strict) {
            let message = format!("{}{note}", q.message(self.quote));
            return Err(self.error(message, index, q.at, Some(q.field)));
        }
        if !self.flexible && info.fields != width {
            let message = format!("expected {width} fields, found {}{note}", info.fields);
            return Err(self.error(message, index, info.start, None));
        }
        // Most records are ASCII, and then every field is UTF-8.
        if !fields.text[info.text_start..].is_ascii() {
            let bad = values(fields, info)
                .enumerate()
                .find_map(|(f, value)| std::str::from_utf8(value).err().map(|e| (f, value, e)));
            if let Some((field, value, e)) = bad {
                if !self.lossy {
                    let at = utf8_position(fields, info, field, value, e.valid_up_to());
                    let bad = value.get(e.valid_up_to()).copied().unwrap_or(0);
                    let message = format!("invalid UTF-8 ({})", show(bad));
                    return Err(self.error(message, index, at, Some(field)));
                }
                rewrite(fields, info, String::from_utf8_lossy);
            }
        }
        if self.trim_fields {
            rewrite(fields, info, |value| {
                // Every value is UTF-8 by now.
                let text = std::str::from_utf8(value).unwrap_or_default();
                Cow::Borrowed(text.trim())
            });
        }
        Ok(())
    }

    /// The name of field `column`, for errors.
    fn label(&self, column: usize) -> String {
        match self.names.get(column) {
            Some(name) => name.clone(),
            None => format!("{}{column}", self.unnamed),
        }
    }

    /// A record-level parse error at `at`.
    fn error(&self, message: String, index: u64, at: Pos, field: Option<usize>) -> Error {
        let mut position = Position::new().record(index).line(at.line).byte(at.byte);
        if let Some(field) = field {
            position = position.field(self.label(field));
        }
        self.at_path(Error::parse(message).with_position(position))
    }

    fn at_path(&self, error: Error) -> Error {
        with_path(error, self.path.as_deref())
    }
}

/// The parser's dialect for `options`.
fn dialect(options: &CsvOptions) -> Dialect {
    Dialect {
        delimiter: options.delimiter,
        quote: options.quote,
        escape: options.escape,
        double_quote: options.double_quote,
        comment: options.comment,
    }
}

/// The values of the record `info` tells of, the last in `fields`.
fn values<'a>(fields: &'a Fields, info: &RecordInfo) -> impl Iterator<Item = &'a [u8]> {
    let mut from = info.text_start;
    fields.ends[info.first_field..].iter().map(move |&end| {
        let value = &fields.text[from..end];
        from = end;
        value
    })
}

/// Where byte `offset` of `value`, field `field` of the record, was in the input.
fn utf8_position(
    fields: &Fields,
    info: &RecordInfo,
    field: usize,
    value: &[u8],
    offset: usize,
) -> Pos {
    let start = fields.positions[info.first_field + field];
    info.locate(field, start, value, offset)
}

/// Replaces each value of the last record with `f` of it.
fn rewrite(fields: &mut Fields, info: &RecordInfo, f: impl Fn(&[u8]) -> Cow<'_, str>) {
    let new: Vec<String> = values(fields, info).map(|v| f(v).into_owned()).collect();
    fields.text.truncate(info.text_start);
    fields.ends.truncate(info.first_field);
    for value in new {
        fields.text.extend_from_slice(value.as_bytes());
        fields.ends.push(fields.text.len());
    }
}
