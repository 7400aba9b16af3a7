//! Splitting CSV input into records and fields, in one pass that also notes
//! positions and the quoting the `csv` crate accepts silently.
//!
//! The [`Parser`] follows `csv_core`'s state machine (the same states and
//! transitions, for the dialect the source reads: delimiter, quote, escape,
//! doubled quotes, comments, and `\r`, `\n` or `\r\n` ending a record), so it
//! finds the same records and the same field values as the `csv` crate; the
//! tests below check that against the crate on arbitrary bytes. Doing it here
//! rather than through the crate's reader spares a second pass over the input
//! to find positions and faults, and lets the values go straight into the
//! buffers that are sent to the pipeline.
//!
//! For each record it notes the physical line and byte offset of the record
//! and of each of its fields, and the first of three quoting faults the crate
//! reads without complaint:
//!
//! - a quote inside an unquoted field (`ab"c"d`), which the crate keeps as text;
//! - text after the closing quote of a quoted field (`"abc"def`), which the
//!   crate appends to the field;
//! - a quoted field still open at the end of the input, which the crate ends
//!   there, holding the rest of the file.
//!
//! A fault never changes how records are split: the value is what the crate
//! would read, and the source decides whether it is an error.

use std::io::{self, Read};

/// A place in the input: a byte offset from the start (a UTF-8 BOM included)
/// and the physical line it is on, counting from 1. `\n`, `\r\n` and a lone
/// `\r` each end a line, as editors show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) byte: u64,
    pub(crate) line: u64,
}

/// Where a parser stands between two records: the next byte's place, and
/// the offset just past the last `\r` read (a `\n` there ends no new line).
/// A parser made with [`Records::resume`] at a point where the input's own
/// parser was between records reads on exactly as that one would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) pos: Pos,
    pub(crate) after_cr: u64,
}

/// A quoting fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A quote byte inside a field that does not start with a quote.
    QuoteInUnquotedField,
    /// This byte after the closing quote of a quoted field, where a delimiter
    /// or the end of the record should be.
    TextAfterClosingQuote(u8),
    /// A quoted field still open at the end of the input; the position is its
    /// opening quote.
    UnclosedQuote,
}

/// The first quoting fault of a record, where it is, and in which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteError {
    pub(crate) fault: Fault,
    pub(crate) at: Pos,
    pub(crate) field: usize,
}

impl QuoteError {
    /// What went wrong, for the user.
    pub(crate) fn message(&self, quote: u8) -> String {
        match self.fault {
            Fault::QuoteInUnquotedField => format!(
                "quote {} inside an unquoted field (quote the whole field and double the quotes in it)",
                show(quote)
            ),
            Fault::TextAfterClosingQuote(b) => format!(
                "{} after the closing quote of a quoted field (expected a delimiter or the end of the record)",
                show(b)
            ),
            Fault::UnclosedQuote => {
                "quoted field never closed: the quote opened here runs to the end of the input"
                    .to_string()
            }
        }
    }
}

/// A byte as a user reads it: `'d'` when printable ASCII, `byte 0x0B` otherwise.
pub(crate) fn show(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// The dialect the parser follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    pub(crate) delimiter: u8,
    pub(crate) quote: u8,
    pub(crate) escape: Option<u8>,
    pub(crate) double_quote: bool,
    pub(crate) comment: Option<u8>,
}

/// Where parsed records go: the values of their fields one after the other,
/// where each ends, and where each started in the input. Records are appended;
/// the caller takes them out (or truncates a record it rejects).
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub(crate) text: Vec<u8>,
    /// The end of each field's value in `text`.
    pub(crate) ends: Vec<usize>,
    /// Each field's first byte in the input: its opening quote when quoted;
    /// for an empty field, the delimiter or line break after it.
    pub(crate) positions: Vec<Pos>,
}

impl Fields {
    /// Forgets everything from the `fields`-th field on, which starts at
    /// `text` in the text.
    pub(crate) fn truncate(&mut self, fields: usize, text: usize) {
        self.text.truncate(text);
        self.ends.truncate(fields);
        self.positions.truncate(fields);
    }
}

/// What the parser learned about the last record it completed, besides its
/// fields (which are the last `fields` in [`Fields`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordInfo {
    /// The record's first byte.
    pub(crate) start: Pos,
    /// How many fields it has.
    pub(crate) fields: usize,
    /// Where its text starts in [`Fields::text`], and its first field in
    /// [`Fields::ends`].
    pub(crate) text_start: usize,
    pub(crate) first_field: usize,
    /// Bytes of quoted fields that are not part of the value (quotes, the first
    /// of a doubled quote, escapes), as (field, offset in the value where the
    /// dropped byte was): what [`locate`](RecordInfo::locate) needs to map a
    /// byte of a value back to the input.
    dropped: Vec<(usize, usize)>,
    /// The first quoting fault, if any.
    pub(crate) error: Option<QuoteError>,
    /// The opening quote of the first quoted field holding a line break: where
    /// to look when a stray quote made one record of many lines.
    pub(crate) spanning: Option<Pos>,
}

impl RecordInfo {
    /// Notes that the input byte being read, in a quoted field whose value
    /// starts at `value_start` in the text, is not part of its value.
    fn drop_byte(&mut self, value_start: usize, out: &Fields) {
        let field = self.fields - 1;
        self.dropped.push((field, out.text.len() - value_start));
    }

    fn fault(&mut self, fault: Fault, at: Pos) {
        if self.error.is_none() {
            self.error = Some(QuoteError {
                fault,
                at,
                field: self.fields.saturating_sub(1),
            });
        }
    }

    /// Where byte `offset` of field `field`'s value (`value`, as parsed,
    /// before any trimming; it started at `start`) came from in the input.
    pub(crate) fn locate(&self, field: usize, start: Pos, value: &[u8], offset: usize) -> Pos {
        let offset = offset.min(value.len());
        // Dropped bytes come in the order of their offsets.
        let mut drops = self
            .dropped
            .iter()
            .filter(|&&(f, _)| f == field)
            .map(|&(_, at)| at)
            .peekable();
        let (mut dropped, mut breaks, mut after_cr) = (0u64, 0u64, false);
        for i in 0..=offset {
            while drops.next_if(|&at| at <= i).is_some() {
                dropped += 1;
                after_cr = false; // an escape between `\r` and `\n` parts them
            }
            let Some(&b) = value.get(i).filter(|_| i < offset) else {
                break;
            };
            if b == b'\r' || (b == b'\n' && !after_cr) {
                breaks += 1;
            }
            after_cr = b == b'\r';
        }
        Pos {
            byte: start.byte + offset as u64 + dropped,
            line: start.line + breaks,
        }
    }
}

/// The parser states, as in `csv_core` (its epsilon-only states folded in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: blank lines and comment lines are skipped here.
    StartRecord,
    /// At the first byte of a field.
    StartField,
    /// In an unquoted field.
    InField,
    /// In a quoted field.
    InQuoted,
    /// After an escape byte in a quoted field.
    Escaped,
    /// After a quote in a quoted field: a doubled quote, or the closing one.
    AfterQuote,
    /// In a comment line.
    Comment,
}

const DELIMITER: u8 = 1;
const QUOTE: u8 = 2;
const ESCAPE: u8 = 4;
const NEWLINE: u8 = 8;
/// The bytes that end a run of plain bytes in an unquoted field...
const UNQUOTED_STOP: u8 = DELIMITER | QUOTE | NEWLINE;
/// ... and in a quoted one.
const QUOTED_STOP: u8 = QUOTE | ESCAPE | NEWLINE;

/// Splits input into records; see the [module](self) docs.
#[derive(Debug)]
pub(crate) struct Parser {
    dialect: Dialect,
    /// Byte classes: which bytes end a run of plain bytes.
    class: [u8; 256],
    state: State,
    /// Offset and line of the next byte.
    next: Pos,
    /// The offset just past the last `\r`: a `\n` there ends no new line.
    after_cr: u64,
    /// Where the current field's value starts in the text.
    value_start: usize,
    /// The opening quote of the current quoted field.
    opened: Pos,
    /// The record being read, then the last one completed.
    record: RecordInfo,
}

impl Parser {
    pub(crate) fn new(dialect: Dialect) -> Self {
        let mut class = [0u8; 256];
        class[usize::from(dialect.delimiter)] |= DELIMITER;
        class[usize::from(dialect.quote)] |= QUOTE;
        if let Some(e) = dialect.escape {
            class[usize::from(e)] |= ESCAPE;
        }
        class[usize::from(b'\r')] |= NEWLINE;
        class[usize::from(b'\n')] |= NEWLINE;
        Parser {
            dialect,
            class,
            state: State::StartRecord,
            next: Pos { byte: 0, line: 1 },
            after_cr: u64::MAX,
            value_start: 0,
            opened: Pos::default(),
            record: RecordInfo::default(),
        }
    }

    /// The last record completed.
    pub(crate) fn record(&self) -> &RecordInfo {
        &self.record
    }

    /// The record being read, if the parser is inside one, or the one just
    /// completed when `done`, with `out` the buffers it was parsed into.
    fn measure(&self, out: &Fields, done: bool) -> Option<Partial> {
        if !done && matches!(self.state, State::StartRecord | State::Comment) {
            return None;
        }
        let record = &self.record;
        // What the record holds: its text, each field's end and position,
        // and the quote bytes noted as dropped.
        let fields = out.positions.len().saturating_sub(record.first_field);
        let held = out.text.len().saturating_sub(record.text_start)
            + fields * (size_of::<usize>() + size_of::<Pos>())
            + record.dropped.len() * size_of::<(usize, usize)>();
        // A completed record's line break is not part of it.
        let read = (self.next.byte - record.start.byte).saturating_sub(u64::from(done));
        Some(Partial {
            start: record.start,
            size: usize::try_from(read).unwrap_or(usize::MAX).max(held),
            open_quote: (!done && matches!(self.state, State::InQuoted | State::Escaped))
                .then_some(self.opened),
            spanning: record.spanning,
            field: record.fields.saturating_sub(1),
        })
    }

    /// Follows the removal of `text` bytes and `fields` fields from the front
    /// of the output, all before the record being read.
    pub(crate) fn rebase(&mut self, text: usize, fields: usize) {
        self.value_start = self.value_start.saturating_sub(text);
        self.record.text_start = self.record.text_start.saturating_sub(text);
        self.record.first_field = self.record.first_field.saturating_sub(fields);
    }

    /// Skips `n` bytes of input that are no part of any record (a BOM).
    pub(crate) fn skip(&mut self, n: usize) {
        self.next.byte += n as u64;
    }

    /// Parses `input`, the bytes after those given before, into `out` until a
    /// record is complete or the input is used up. Returns how many bytes it
    /// used, and whether a record was completed ([`record`](Parser::record)).
    pub(crate) fn parse(&mut self, input: &[u8], out: &mut Fields) -> (usize, bool) {
        // The loop keeps its state in locals; positions are `base + i`.
        let d = self.dialect;
        let class = &self.class;
        let record = &mut self.record;
        let mut value_start = self.value_start;
        let mut after_cr = self.after_cr;
        let base = self.next.byte;
        let mut line = self.next.line;
        let mut state = self.state;
        let n = input.len();
        let mut i = 0;
        let mut done = false;
        while i < n {
            let b = input[i];
            let at = base + i as u64;
            let pos = Pos { byte: at, line };
            match state {
                State::StartRecord => {
                    if b == b'\r' || b == b'\n' {
                        // A blank line, or the `\n` of a `\r\n`.
                    } else if d.comment == Some(b) {
                        state = State::Comment;
                    } else {
                        record.start = pos;
                        record.fields = 0;
                        record.text_start = out.text.len();
                        record.first_field = out.ends.len();
                        record.dropped.clear();
                        record.error = None;
                        record.spanning = None;
                        // Most records end in this input, and most fields
                        // hold no quote: those are split at their delimiters
                        // in one go, up to a field with a quote, which goes
                        // through the states below.
                        let rest = &input[i..];
                        if let Some(len) = memchr::memchr2(b'\n', b'\r', rest) {
                            let text = &rest[..len];
                            let quote = memchr::memchr(d.quote, text).unwrap_or(len);
                            let mut from = 0;
                            for to in memchr::memchr_iter(d.delimiter, text).chain([len]) {
                                if to > quote {
                                    break;
                                }
                                out.positions.push(Pos {
                                    byte: at + from as u64,
                                    line: pos.line,
                                });
                                out.text.extend_from_slice(&text[from..to]);
                                out.ends.push(out.text.len());
                                from = to + 1;
                            }
                            record.fields = out.ends.len() - record.first_field;
                            if from > len {
                                // The whole record; then the line break ending it.
                                let end = at + len as u64;
                                if rest[len] == b'\r' {
                                    after_cr = end + 1;
                                }
                                line += 1;
                                i += len + 1;
                                done = true;
                                break;
                            }
                            i += from;
                            state = State::StartField;
                            continue; // the field with the quote
                        }
                        state = State::StartField;
                        continue; // this byte starts the first field
                    }
                }
                State::StartField => {
                    out.positions.push(pos);
                    record.fields += 1;
                    value_start = out.text.len();
                    if b == d.quote {
                        self.opened = pos;
                        record.drop_byte(value_start, out);
                        state = State::InQuoted;
                    } else if b == d.delimiter {
                        // An empty field; the next byte starts another.
                        out.ends.push(out.text.len());
                    } else if b == b'\r' || b == b'\n' {
                        out.ends.push(out.text.len());
                        state = State::StartRecord;
                        done = true;
                    } else {
                        state = State::InField;
                        continue; // this byte is the value's first
                    }
                }
                State::InField => {
                    if class[usize::from(b)] & UNQUOTED_STOP == 0 {
                        i += copy_run(&input[i..], class, UNQUOTED_STOP, &mut out.text);
                        continue;
                    }
                    if b == d.delimiter {
                        out.ends.push(out.text.len());
                        state = State::StartField;
                    } else if b == b'\r' || b == b'\n' {
                        out.ends.push(out.text.len());
                        state = State::StartRecord;
                        done = true;
                    } else {
                        // The quote: the crate keeps it as text.
                        record.fault(Fault::QuoteInUnquotedField, pos);
                        out.text.push(b);
                    }
                }
                State::InQuoted => {
                    if class[usize::from(b)] & QUOTED_STOP == 0 {
                        i += copy_run(&input[i..], class, QUOTED_STOP, &mut out.text);
                        continue;
                    }
                    if b == d.quote {
                        record.drop_byte(value_start, out);
                        state = State::AfterQuote;
                    } else if d.escape == Some(b) {
                        record.drop_byte(value_start, out);
                        state = State::Escaped;
                    } else {
                        // A line break inside the field.
                        record.spanning.get_or_insert(self.opened);
                        out.text.push(b);
                    }
                }
                State::Escaped => {
                    out.text.push(b);
                    state = State::InQuoted;
                }
                State::AfterQuote => {
                    if d.double_quote && b == d.quote {
                        out.text.push(b);
                        state = State::InQuoted;
                    } else if b == d.delimiter {
                        out.ends.push(out.text.len());
                        state = State::StartField;
                    } else if b == b'\r' || b == b'\n' {
                        out.ends.push(out.text.len());
                        state = State::StartRecord;
                        done = true;
                    } else {
                        // The crate appends it to the field, unquoted from here on.
                        record.fault(Fault::TextAfterClosingQuote(b), pos);
                        out.text.push(b);
                        state = State::InField;
                    }
                }
                State::Comment => {
                    if b == b'\n' {
                        state = State::StartRecord;
                    }
                }
            }
            // Count the line this byte ends, if any.
            if b == b'\r' {
                line += 1;
                after_cr = at + 1;
            } else if b == b'\n' && after_cr != at {
                line += 1;
            }
            i += 1;
            if done {
                break;
            }
        }
        self.state = state;
        self.value_start = value_start;
        self.after_cr = after_cr;
        self.next = Pos {
            byte: base + i as u64,
            line,
        };
        (i, done)
    }

    /// Follows the end of the input: true when that completes a record. After
    /// it, the parser starts over as if at the start of a record.
    pub(crate) fn finish(&mut self, out: &mut Fields) -> bool {
        let state = std::mem::replace(&mut self.state, State::StartRecord);
        match state {
            // `csv_core` makes a record of one empty field from a comment line
            // left open at the end of the input; it is not a record of the
            // input, so it is left out.
            State::StartRecord | State::Comment => return false,
            State::StartField => {
                // After a delimiter: one more, empty, field.
                out.positions.push(self.next);
                self.record.fields += 1;
            }
            State::InField | State::AfterQuote => {}
            State::InQuoted | State::Escaped => {
                self.record.fault(Fault::UnclosedQuote, self.opened);
            }
        }
        out.ends.push(out.text.len());
        true
    }
}

/// Where [`Records`] puts what it parses.
pub(crate) trait Out {
    /// The buffers records are parsed into.
    fn fields(&mut self) -> &mut Fields;
    /// Called before waiting for more input: a chance to send on what was
    /// read so far. Returns how much text and how many fields were taken
    /// from the front of [`fields`](Out::fields), records the parser had
    /// completed.
    fn waiting(&mut self) -> (usize, usize);
}

impl Out for Fields {
    fn fields(&mut self) -> &mut Fields {
        self
    }

    fn waiting(&mut self) -> (usize, usize) {
        (0, 0)
    }
}

/// Bytes read from the input at a time.
pub(crate) const BUFFER: usize = 64 * 1024;

/// A record still being read when it grew past the size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Partial {
    /// Its first byte.
    pub(crate) start: Pos,
    /// What it takes so far: the bytes read for it, or what holding it
    /// takes, whichever is more.
    pub(crate) size: usize,
    /// The opening quote of the quoted field it is in, if it is in one.
    pub(crate) open_quote: Option<Pos>,
    /// The opening quote of its first quoted field holding a line break.
    pub(crate) spanning: Option<Pos>,
    /// The field being read, from 0.
    pub(crate) field: usize,
}

/// Why [`Records::next`] stopped short of a record.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Reading the input failed.
    Io(io::Error),
    /// The record being read grew past the limit.
    TooLong(Partial),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// Reads records from an input with a [`Parser`]. Retries reads interrupted by
/// a signal; skips a UTF-8 BOM at the start.
pub(crate) struct Records<R> {
    input: R,
    parser: Parser,
    buffer: Box<[u8]>,
    /// The bytes read but not parsed yet: `buffer[at..len]`.
    at: usize,
    len: usize,
    /// Whether the start of the input (for the BOM) has been seen.
    started: bool,
    ended: bool,
    /// The most a record may take, in bytes (see [`Partial::size`]).
    limit: usize,
    /// The offset in the input of `buffer[0]`.
    base: u64,
    /// The first bytes of the record being read, from the buffers before
    /// this one (at most [`RAW_TEXT`] and one more), and the offset of the
    /// record they belong to.
    carry: Vec<u8>,
    carry_for: Option<u64>,
}

/// The most of a record's raw text kept for errors: [`Records::raw`].
pub(crate) const RAW_TEXT: usize = crate::error::RECORD_TEXT_MAX;

impl<R: Read> Records<R> {
    /// Reads records of at most `limit` bytes from `input`.
    pub(crate) fn new(input: R, dialect: Dialect, limit: usize) -> Self {
        Records {
            input,
            parser: Parser::new(dialect),
            buffer: vec![0; BUFFER].into_boxed_slice(),
            at: 0,
            len: 0,
            started: false,
            ended: false,
            limit,
            base: 0,
            carry: Vec::new(),
            carry_for: None,
        }
    }

    /// Reads records from `input`, the bytes of an input from `at` on, as a
    /// reader of the whole input would read them from there when it is
    /// between records at `at` (no BOM is looked for).
    pub(crate) fn resume(input: R, dialect: Dialect, limit: usize, at: Resume) -> Self {
        let mut records = Records::new(input, dialect, limit);
        records.started = true;
        records.base = at.pos.byte;
        records.parser.next = at.pos;
        records.parser.after_cr = at.after_cr;
        records
    }

    /// Where the parser stands: after the last record read (or the point it
    /// resumed at), before any blank or comment line after it.
    pub(crate) fn resume_point(&self) -> Resume {
        Resume {
            pos: self.parser.next,
            after_cr: self.parser.after_cr,
        }
    }

    /// How many bytes of the input have been read from it so far (counted
    /// from the start of the input, even for one made with [`resume`](Records::resume)).
    pub(crate) fn read_to(&self) -> u64 {
        self.base + self.len as u64
    }

    /// The raw input of the last record read, without its line break: at
    /// most its first [`RAW_TEXT`] bytes and one more (so that a longer one
    /// shows as such), and its whole length.
    pub(crate) fn raw(&self) -> (Vec<u8>, usize) {
        let (start, end) = (self.parser.record.start.byte, self.parser.next.byte);
        let mut raw = Vec::new();
        if self.carry_for == Some(start) {
            raw.extend_from_slice(&self.carry);
        }
        let from = usize::try_from(start.max(self.base) - self.base).unwrap_or(usize::MAX);
        let to = usize::try_from(end.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let bytes = self.buffer.get(from..to.min(self.len)).unwrap_or_default();
        let room = (RAW_TEXT + 1).saturating_sub(raw.len());
        raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let mut total = usize::try_from(end - start).unwrap_or(usize::MAX);
        // A record ends at a line break in this buffer, or at the end of
        // the input.
        if to > 0 && matches!(self.buffer.get(to - 1), Some(b'\r' | b'\n')) {
            if raw.len() == total {
                raw.pop();
            }
            total -= 1;
        }
        (raw, total)
    }

    /// The last record read.
    pub(crate) fn record(&self) -> &RecordInfo {
        self.parser.record()
    }

    /// Parses the next record into `out`; false at the end of the input.
    /// A record that grows past the limit stops it: what it holds then is at
    /// most the limit and one buffer of input.
    pub(crate) fn next(&mut self, out: &mut impl Out) -> Result<bool, Stop> {
        loop {
            if self.at < self.len {
                let input = &self.buffer[self.at..self.len];
                let (used, done) = self.parser.parse(input, out.fields());
                self.at += used;
                self.check_size(out.fields(), done)?;
                if done {
                    return Ok(true);
                }
            }
            if self.ended {
                return Ok(false);
            }
            let (text, fields) = out.waiting();
            self.parser.rebase(text, fields);
            if !self.fill()? {
                self.ended = true;
                let done = self.parser.finish(out.fields());
                self.check_size(out.fields(), done)?;
                return Ok(done);
            }
        }
    }

    /// Stops at a record past the limit: the one being read, or the one
    /// just completed when `done`.
    fn check_size(&self, out: &Fields, done: bool) -> Result<(), Stop> {
        // Most records are far below the limit, whatever their fields: a
        // byte of input holds at most a byte of text, a field (24 bytes) and
        // a dropped quote (16).
        let read = self.parser.next.byte - self.parser.record.start.byte;
        if read.saturating_mul(41).saturating_add(24) <= self.limit as u64 {
            return Ok(());
        }
        match self.parser.measure(out, done) {
            Some(partial) if partial.size > self.limit => Err(Stop::TooLong(partial)),
            _ => Ok(()),
        }
    }

    /// Reads more input into the buffer; false at the end of the input.
    fn fill(&mut self) -> io::Result<bool> {
        // The start of a record that goes on in the next buffer is kept for
        // its raw text.
        if !matches!(self.parser.state, State::StartRecord | State::Comment) {
            let start = self.parser.record.start.byte;
            if self.carry_for != Some(start) {
                self.carry.clear();
                self.carry_for = Some(start);
            }
            let from = usize::try_from(start.saturating_sub(self.base)).unwrap_or(usize::MAX);
            let bytes = self.buffer.get(from..self.len).unwrap_or_default();
            let room = (RAW_TEXT + 1).saturating_sub(self.carry.len());
            self.carry
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        self.base += self.len as u64;
        self.at = 0;
        self.len = 0;
        loop {
            let n = match self.input.read(&mut self.buffer[self.len..]) {
                Ok(n) => n.min(self.buffer.len() - self.len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.len += n;
            if self.started {
                return Ok(n > 0);
            }
            // A BOM is skipped when the input starts with one, which may take
            // more than one read to know.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let head = &self.buffer[..self.len];
            if n > 0 && head.len() < BOM.len() && BOM.starts_with(head) {
                continue;
            }
            self.started = true;
            if head.starts_with(BOM) {
                self.at = BOM.len();
                self.parser.skip(BOM.len());
            }
            return Ok(self.len > 0);
        }
    }
}

/// Copies the bytes at the start of `rest` that `class` does not mark with
/// `stop` (plain text inside a field) to `text`; returns how many.
#[inline(always)]
fn copy_run(rest: &[u8], class: &[u8; 256], stop: u8, text: &mut Vec<u8>) -> usize {
    let run = rest
        .iter()
        .position(|&c| class[usize::from(c)] & stop != 0)
        .unwrap_or(rest.len());
    text.extend_from_slice(&rest[..run]);
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIALECT: Dialect = Dialect {
        delimiter: b',',
        quote: b'"',
        escape: None,
        double_quote: true,
        comment: None,
    };

    /// A reader returning its bytes in chunks of the given sizes (cycled).
    struct Chunked {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.turn % self.sizes.len()].max(1);
            self.turn += 1;
            let n = size.min(buf.len()).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// Reads `data` in chunks of `sizes`, checking that the parser finds the
    /// records and values the `csv` crate finds reading it all at once, and
    /// that every byte of every value maps back to the same byte of the input.
    fn check(data: &[u8], dialect: Dialect, sizes: Vec<usize>) -> Vec<(Vec<Vec<u8>>, RecordInfo)> {
        let mut csv = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(dialect.delimiter)
            .quote(dialect.quote)
            .escape(dialect.escape)
            .double_quote(dialect.double_quote)
            .comment(dialect.comment)
            .from_reader(data);
        let expected: Vec<Vec<Vec<u8>>> = csv
            .byte_records()
            .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
            .collect();

        let input = Chunked {
            data: data.to_vec(),
            at: 0,
            sizes,
            turn: 0,
        };
        let mut records = Records::new(input, dialect, usize::MAX);
        let mut out = Fields::default();
        let mut found = Vec::new();
        while records.next(&mut out).unwrap() {
            let info = records.record().clone();
            assert_eq!(out.ends.len(), info.first_field + info.fields);
            let mut from = info.text_start;
            let mut values = Vec::new();
            for (f, &end) in out.ends[info.first_field..].iter().enumerate() {
                let value = &out.text[from..end];
                let start = out.positions[info.first_field + f];
                for (k, &b) in value.iter().enumerate() {
                    let pos = info.locate(f, start, value, k);
                    assert_eq!(data[pos.byte as usize], b, "field {f} byte {k}");
                    let line = 1 + line_breaks(&data[..pos.byte as usize]);
                    assert_eq!(pos.line, line, "field {f} byte {k}");
                }
                values.push(value.to_vec());
                from = end;
            }
            let start = info.start.byte as usize;
            assert_eq!(info.start.line, 1 + line_breaks(&data[..start]));
            // The raw text is the record's bytes, its line break left out.
            let (raw, total) = records.raw();
            assert_eq!(raw, &data[start..start + total]);
            found.push((values, info));
        }
        let mut expected = expected;
        // `csv_core`'s record of one empty field for a comment line open at
        // the end of the input, which the parser leaves out.
        if dialect.comment.is_some()
            && expected.len() == found.len() + 1
            && expected.last() == Some(&vec![Vec::new()])
        {
            expected.pop();
        }
        let values: Vec<Vec<Vec<u8>>> = found.iter().map(|(v, _)| v.clone()).collect();
        assert_eq!(values, expected, "the csv crate's records");
        found
    }

    fn line_breaks(data: &[u8]) -> u64 {
        let mut n = 0;
        for (i, &b) in data.iter().enumerate() {
            if b == b'\r' || (b == b'\n' && (i == 0 || data[i - 1] != b'\r')) {
                n += 1;
            }
        }
        n
    }

    fn faults(data: &[u8]) -> Vec<Option<QuoteError>> {
        check(data, DIALECT, vec![4096])
            .into_iter()
            .map(|(_, info)| info.error)
            .collect()
    }

    #[test]
    fn well_formed_quoting_is_fine() {
        let data = b"a,\"b,c\",\"d\"\"e\"\r\n\"multi\nline\",,\"\"\n";
        assert_eq!(faults(data), vec![None, None]);
    }

    #[test]
    fn finds_the_three_faults_where_they_are() {
        let e = faults(b"x\nab\"c\"d,y\n")[1].unwrap();
        assert_eq!(e.fault, Fault::QuoteInUnquotedField);
        assert_eq!((e.at, e.field), (Pos { byte: 4, line: 2 }, 0));

        let e = faults(b"x,\"abc\"def\n")[0].unwrap();
        assert_eq!(e.fault, Fault::TextAfterClosingQuote(b'd'));
        assert_eq!((e.at, e.field), (Pos { byte: 7, line: 1 }, 1));

        let e = faults(b"a\r\nb,\"open\r\nstill open")[1].unwrap();
        assert_eq!(e.fault, Fault::UnclosedQuote);
        assert_eq!((e.at, e.field), (Pos { byte: 5, line: 2 }, 1));
    }

    #[test]
    fn positions_count_the_bom_and_physical_lines() {
        let records = check(
            b"\xEF\xBB\xBFa,b\r\n\r\n\"x\ny\",z\rlast",
            DIALECT,
            vec![4096],
        );
        let starts: Vec<Pos> = records.iter().map(|(_, i)| i.start).collect();
        assert_eq!(
            starts,
            vec![
                Pos { byte: 3, line: 1 },
                Pos { byte: 10, line: 3 },
                Pos { byte: 18, line: 5 }
            ]
        );
    }

    #[test]
    fn a_bom_split_over_reads_is_skipped() {
        let records = check(b"\xEF\xBB\xBFa\n", DIALECT, vec![1]);
        assert_eq!(records[0].0, vec![b"a".to_vec()]);
        assert_eq!(records[0].1.start, Pos { byte: 3, line: 1 });
    }

    #[test]
    fn a_comment_open_at_the_end_is_no_record() {
        let comments = Dialect {
            comment: Some(b'#'),
            ..DIALECT
        };
        assert_eq!(check(b"a\n#note", comments, vec![4096]).len(), 1);
        assert!(check(b"#note\n", comments, vec![4096]).is_empty());
    }

    #[test]
    fn an_escape_between_cr_and_lf_parts_the_lines() {
        let escapes = Dialect {
            escape: Some(b'\\'),
            ..DIALECT
        };
        // `\r`, then an escaped `\n`: two line ends; `a` is on line 3.
        let records = check(b"\"\r\\\na\"", escapes, vec![1]);
        let (values, info) = &records[0];
        assert_eq!(values[0], b"\r\na");
        let start = Pos { byte: 0, line: 1 };
        assert_eq!(
            info.locate(0, start, &values[0], 2),
            Pos { byte: 4, line: 3 }
        );
    }

    #[test]
    fn a_record_past_the_limit_stops_the_reader_with_its_quote() {
        let data = [&b"a\n\"open\n"[..], &b"b\n".repeat(100)].concat();
        let mut records = Records::new(&data[..], DIALECT, 64);
        let mut out = Fields::default();
        assert!(records.next(&mut out).unwrap());
        let Err(Stop::TooLong(partial)) = records.next(&mut out) else {
            panic!("expected the limit");
        };
        assert_eq!(partial.start, Pos { byte: 2, line: 2 });
        assert_eq!(partial.open_quote, Some(Pos { byte: 2, line: 2 }));
        assert_eq!(partial.spanning, Some(Pos { byte: 2, line: 2 }));
        assert!(partial.size > 64);

        // A record of exactly the limit is fine.
        let mut records = Records::new(&b"abcd\nabcde\n"[..], DIALECT, 4 + 24);
        let mut out = Fields::default();
        assert!(records.next(&mut out).unwrap());
        assert!(matches!(records.next(&mut out), Err(Stop::TooLong(_))));
    }

    /// The raw text of each record, read in chunks of `sizes`.
    fn raws(data: &[u8], sizes: Vec<usize>) -> Vec<(Vec<u8>, usize)> {
        let input = Chunked {
            data: data.to_vec(),
            at: 0,
            sizes,
            turn: 0,
        };
        let mut records = Records::new(input, DIALECT, usize::MAX);
        let mut out = Fields::default();
        let mut found = Vec::new();
        while records.next(&mut out).unwrap() {
            found.push(records.raw());
        }
        found
    }

    #[test]
    fn raw_text_is_the_input_whatever_the_reads() {
        let data = b"\xEF\xBB\xBFa,\"b\r\nc\"\r\n\nab\"c\"d,e\rlast";
        let expected = vec![
            (b"a,\"b\r\nc\"".to_vec(), 8),
            (b"ab\"c\"d,e".to_vec(), 8),
            (b"last".to_vec(), 4),
        ];
        for size in [1, 2, 3, 5, 4096] {
            assert_eq!(raws(data, vec![size]), expected, "reads of {size}");
        }
        // A long record keeps its first bytes, and its length.
        let long = [&b"x"[..], &b"y".repeat(10_000), b"\nz\n"].concat();
        for size in [7, 4096, 65536] {
            let found = raws(&long, vec![size]);
            assert_eq!(found[0].0.len(), RAW_TEXT + 1);
            assert_eq!(found[0].1, 10_001);
            assert!(found[0].0.starts_with(b"xyy"));
            assert_eq!(found[1], (b"z".to_vec(), 1));
        }
    }

    fn dialects() -> impl Strategy<Value = Dialect> {
        (
            prop::sample::select(vec![b',', b';', b'\t', b'|']),
            prop::sample::select(vec![b'"', b'\'']),
            prop::option::of(Just(b'\\')),
            any::<bool>(),
            prop::option::of(Just(b'#')),
        )
            .prop_map(
                |(delimiter, quote, escape, double_quote, comment)| Dialect {
                    delimiter,
                    quote,
                    escape,
                    double_quote,
                    comment,
                },
            )
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let alphabet = vec![
            b'a', b'b', b' ', b',', b';', b'\t', b'|', b'"', b'\'', b'\\', b'#', b'\r', b'\n',
            0xEF, 0xBB, 0xBF, 0xFF, 0,
        ];
        prop_oneof![
            prop::collection::vec(prop::sample::select(alphabet), 0..64),
            prop::collection::vec(any::<u8>(), 0..64),
            // Sometimes a BOM first.
            prop::collection::vec(prop::sample::select(vec![b'a', b'"', b',', b'\n']), 0..32)
                .prop_map(|v| [&b"\xEF\xBB\xBF"[..], &v].concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the bytes, dialect and read sizes, the parser finds the
        /// crate's records and values, and positions map values back to the
        /// input.
        #[test]
        fn agrees_with_the_csv_crate(
            data in bytes(),
            dialect in dialects(),
            sizes in prop::collection::vec(1usize..8, 1..4),
        ) {
            check(&data, dialect, sizes);
        }

        /// Fields the `csv` crate writes read back without a fault.
        #[test]
        fn written_csv_has_no_faults(
            rows in prop::collection::vec(
                prop::collection::vec("[a-c ,;\"\r\n]{0,6}", 1..4), 1..6),
        ) {
            let mut w = ::csv::WriterBuilder::new().flexible(true).from_writer(vec![]);
            for row in &rows {
                w.write_record(row).unwrap();
            }
            let data = w.into_inner().unwrap();
            for (_, info) in check(&data, DIALECT, vec![4096]) {
                prop_assert_eq!(info.error, None);
            }
        }
    }
}
