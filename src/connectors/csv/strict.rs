//! Where records and fields start, and the quoting the `csv` crate accepts
//! silently.
//!
//! The [`Validator`] is a byte-level mirror of `csv_core`'s parser (the same
//! states and transitions, for the dialect the source reads: delimiter, quote,
//! escape, doubled quotes, comments, and `\r`, `\n` or `\r\n` ending a record).
//! It sees the input through [`Tee`], a `Read` wrapper between the file and the
//! `csv` reader, so it reads exactly the bytes the crate reads, in the same
//! order, and finds the same records: the CSV source pops one [`RecordInfo`] for
//! each record the crate returns, and checks that both ended at the same byte.
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
//! The validator never changes how records are split: after a fault the
//! source reports the record and carries on with the next one the crate reads.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read};
use std::rc::Rc;

/// A place in the input: a byte offset from the start (a UTF-8 BOM included)
/// and the physical line it is on, counting from 1. `\n`, `\r\n` and a lone
/// `\r` each end a line, as editors show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub(crate) byte: u64,
    pub(crate) line: u64,
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

/// What the validator learned about one record.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecordInfo {
    /// The record's first byte.
    pub(crate) start: Pos,
    /// The offset just past the byte that ended the record (its `\r` or `\n`),
    /// or the end of the input.
    pub(crate) end: u64,
    /// Each field's first byte: its opening quote when quoted; for an empty
    /// field, the delimiter or terminator after it.
    pub(crate) fields: Vec<Pos>,
    /// Bytes of quoted fields that are not part of the value (quotes, the first
    /// of a doubled quote, escapes), as (field, offset in the value where the
    /// dropped byte was): what [`locate`](RecordInfo::locate) needs to map a
    /// byte of a value back to the input.
    dropped: Vec<(usize, usize)>,
    /// The first quoting fault, if any.
    pub(crate) error: Option<QuoteError>,
    /// Not a record of the input: `csv_core` makes a record of one empty
    /// field from a comment line left open at the end of the input.
    pub(crate) phantom: bool,
}

impl RecordInfo {
    fn clear(&mut self) {
        self.start = Pos::default();
        self.end = 0;
        self.fields.clear();
        self.dropped.clear();
        self.error = None;
        self.phantom = false;
    }

    /// Where byte `offset` of field `field`'s value (`value`, as the `csv`
    /// crate read it, before any trimming) came from in the input.
    pub(crate) fn locate(&self, field: usize, value: &[u8], offset: usize) -> Option<Pos> {
        let start = *self.fields.get(field)?;
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
        Some(Pos {
            byte: start.byte + offset as u64 + dropped,
            line: start.line + breaks,
        })
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

/// The dialect the validator follows; the same as the `csv` reader's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    pub(crate) delimiter: u8,
    pub(crate) quote: u8,
    pub(crate) escape: Option<u8>,
    pub(crate) double_quote: bool,
    pub(crate) comment: Option<u8>,
}

/// Follows the input as the `csv` crate parses it; see the [module](self) docs.
#[derive(Debug)]
pub(crate) struct Validator {
    dialect: Dialect,
    /// Byte classes: which bytes end a run of ordinary bytes.
    class: [u8; 256],
    state: State,
    /// Offset and line of the next byte.
    next: Pos,
    /// The offset just past the last `\r`: a `\n` there ends no new line.
    after_cr: u64,
    /// Whether the first chunk has been seen (for the BOM).
    started: bool,
    /// Whether the end of the input has been seen.
    finished: bool,
    /// The offset of the current field's first byte.
    field_start: u64,
    /// Bytes of the current field dropped so far.
    field_drops: usize,
    /// The opening quote of the current quoted field.
    opened: Pos,
    /// The record being read.
    current: Meta,
    /// Complete records, oldest first...
    done: VecDeque<Meta>,
    /// ... and the fields and dropped bytes of those and of the current one,
    /// in input order (no allocation per record).
    fields: VecDeque<Pos>,
    dropped: VecDeque<(usize, usize)>,
}

/// A record in the validator's queue; its fields are in the shared queues.
#[derive(Debug, Clone, Copy, Default)]
struct Meta {
    start: Pos,
    end: u64,
    fields: usize,
    dropped: usize,
    error: Option<QuoteError>,
    phantom: bool,
}

impl Validator {
    pub(crate) fn new(dialect: Dialect) -> Self {
        let mut class = [0u8; 256];
        class[usize::from(dialect.delimiter)] |= DELIMITER;
        class[usize::from(dialect.quote)] |= QUOTE;
        if let Some(e) = dialect.escape {
            class[usize::from(e)] |= ESCAPE;
        }
        class[usize::from(b'\r')] |= NEWLINE;
        class[usize::from(b'\n')] |= NEWLINE;
        Validator {
            dialect,
            class,
            state: State::StartRecord,
            next: Pos { byte: 0, line: 1 },
            after_cr: u64::MAX,
            started: false,
            finished: false,
            field_start: 0,
            field_drops: 0,
            opened: Pos::default(),
            current: Meta::default(),
            done: VecDeque::new(),
            fields: VecDeque::new(),
            dropped: VecDeque::new(),
        }
    }

    /// Moves the next complete record, in input order, into `info`; false
    /// when none is complete.
    pub(crate) fn pop_into(&mut self, info: &mut RecordInfo) -> bool {
        let Some(meta) = self.done.pop_front() else {
            return false;
        };
        info.clear();
        info.start = meta.start;
        info.end = meta.end;
        info.error = meta.error;
        info.phantom = meta.phantom;
        move_front(&mut self.fields, meta.fields, &mut info.fields);
        move_front(&mut self.dropped, meta.dropped, &mut info.dropped);
        true
    }

    /// True when a complete record is waiting, or the input has ended: the
    /// reader can return its next record without reading more input.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.done.is_empty() || self.finished
    }

    /// Follows the next chunk of input, as read from the underlying reader.
    pub(crate) fn feed(&mut self, mut input: &[u8]) {
        if !self.started {
            self.started = true;
            // `csv_core` skips a UTF-8 BOM when the first buffer it is given
            // starts with one, which is the first chunk read.
            if let Some(rest) = input.strip_prefix(b"\xEF\xBB\xBF") {
                input = rest;
                self.next.byte += 3;
            }
        }
        // The loop keeps its state in locals; positions are `base + i`.
        let d = self.dialect;
        let class = self.class;
        let base = self.next.byte;
        let mut line = self.next.line;
        let mut state = self.state;
        let n = input.len();
        let mut i = 0;
        let unquoted_stop = DELIMITER | QUOTE | NEWLINE;
        let quoted_stop = QUOTE | ESCAPE | NEWLINE;
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
                        self.current.start = pos;
                        state = State::StartField;
                        continue; // this byte starts the first field
                    }
                }
                State::StartField => {
                    self.push_field(pos);
                    self.field_start = at;
                    self.field_drops = 0;
                    if b == d.quote {
                        self.opened = pos;
                        self.drop_byte(at);
                        state = State::InQuoted;
                    } else if b == d.delimiter {
                        // An empty field; the next byte starts another.
                    } else if b == b'\r' || b == b'\n' {
                        self.end_record(at + 1);
                        state = State::StartRecord;
                    } else {
                        state = State::InField;
                    }
                }
                State::InField => {
                    if class[usize::from(b)] & unquoted_stop == 0 {
                        i += 1;
                        while i < n && class[usize::from(input[i])] & unquoted_stop == 0 {
                            i += 1;
                        }
                        continue;
                    }
                    if b == d.delimiter {
                        state = State::StartField;
                    } else if b == b'\r' || b == b'\n' {
                        self.end_record(at + 1);
                        state = State::StartRecord;
                    } else {
                        // The quote: the crate keeps it as text.
                        self.fault(Fault::QuoteInUnquotedField, pos);
                    }
                }
                State::InQuoted => {
                    if class[usize::from(b)] & quoted_stop == 0 {
                        i += 1;
                        while i < n && class[usize::from(input[i])] & quoted_stop == 0 {
                            i += 1;
                        }
                        continue;
                    }
                    if b == d.quote {
                        self.drop_byte(at);
                        state = State::AfterQuote;
                    } else if d.escape == Some(b) {
                        self.drop_byte(at);
                        state = State::Escaped;
                    }
                    // Else a line break inside the field.
                }
                State::Escaped => state = State::InQuoted,
                State::AfterQuote => {
                    if d.double_quote && b == d.quote {
                        state = State::InQuoted;
                    } else if b == d.delimiter {
                        state = State::StartField;
                    } else if b == b'\r' || b == b'\n' {
                        self.end_record(at + 1);
                        state = State::StartRecord;
                    } else {
                        // The crate appends it to the field, unquoted from here on.
                        self.fault(Fault::TextAfterClosingQuote(b), pos);
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
                self.after_cr = at + 1;
            } else if b == b'\n' && self.after_cr != at {
                line += 1;
            }
            i += 1;
        }
        self.state = state;
        self.next = Pos {
            byte: base + n as u64,
            line,
        };
    }

    /// Follows the end of the input. Idempotent.
    pub(crate) fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.started = true;
        let end = self.next.byte;
        match self.state {
            State::StartRecord => {}
            State::Comment => {
                // `csv_core` ends a comment line only at a `\n`; one left open
                // at the end of the input makes it return a record of one
                // empty field, which the source leaves out.
                self.current.phantom = true;
                self.current.start = self.next;
                self.push_field(self.next);
                self.end_record(end);
            }
            State::StartField => {
                // After a delimiter: one more, empty, field.
                self.push_field(self.next);
                self.end_record(end);
            }
            State::InField | State::AfterQuote => self.end_record(end),
            State::InQuoted | State::Escaped => {
                self.fault(Fault::UnclosedQuote, self.opened);
                self.end_record(end);
            }
        }
        self.state = State::StartRecord;
    }

    fn push_field(&mut self, pos: Pos) {
        self.fields.push_back(pos);
        self.current.fields += 1;
    }

    /// Notes that the byte at `at`, in a quoted field, is not part of its value.
    fn drop_byte(&mut self, at: u64) {
        let field = self.current.fields.saturating_sub(1);
        let offset = (at - self.field_start) as usize - self.field_drops;
        self.dropped.push_back((field, offset));
        self.current.dropped += 1;
        self.field_drops += 1;
    }

    fn fault(&mut self, fault: Fault, at: Pos) {
        if self.current.error.is_none() {
            self.current.error = Some(QuoteError {
                fault,
                at,
                field: self.current.fields.saturating_sub(1),
            });
        }
    }

    /// Ends the record; `end` is the offset just past it.
    fn end_record(&mut self, end: u64) {
        self.current.end = end;
        self.done.push_back(std::mem::take(&mut self.current));
    }
}

/// Moves the first `n` items of `from` to the end of `to`.
fn move_front<T: Copy>(from: &mut VecDeque<T>, n: usize, to: &mut Vec<T>) {
    let n = n.min(from.len());
    let (a, b) = from.as_slices();
    let in_a = n.min(a.len());
    to.extend_from_slice(&a[..in_a]);
    to.extend_from_slice(&b[..n - in_a]);
    from.drain(..n);
}

/// A reader passing everything it reads to a [`Validator`] on its way to the
/// `csv` reader. Retries reads interrupted by a signal.
pub(crate) struct Tee<R> {
    inner: R,
    validator: Rc<RefCell<Validator>>,
}

impl<R> Tee<R> {
    pub(crate) fn new(inner: R, validator: Rc<RefCell<Validator>>) -> Self {
        Tee { inner, validator }
    }
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    let n = n.min(buf.len());
                    let mut validator = self.validator.borrow_mut();
                    if n == 0 {
                        if !buf.is_empty() {
                            validator.finish();
                        }
                    } else {
                        validator.feed(&buf[..n]);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
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

    /// Reads `data` with the `csv` crate through a tee, checking that the
    /// validator finds the same records, and that every byte of every value
    /// maps back to the same byte of the input.
    fn check(data: &[u8], dialect: Dialect, sizes: Vec<usize>) -> Vec<(Vec<Vec<u8>>, RecordInfo)> {
        let validator = Rc::new(RefCell::new(Validator::new(dialect)));
        let reader = Chunked {
            data: data.to_vec(),
            at: 0,
            sizes,
            turn: 0,
        };
        let mut csv = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(dialect.delimiter)
            .quote(dialect.quote)
            .escape(dialect.escape)
            .double_quote(dialect.double_quote)
            .comment(dialect.comment)
            .buffer_capacity(16)
            .from_reader(Tee::new(reader, validator.clone()));
        let mut record = ::csv::ByteRecord::new();
        let mut out = Vec::new();
        while csv.read_byte_record(&mut record).unwrap() {
            let mut info = RecordInfo::default();
            let found = validator.borrow_mut().pop_into(&mut info);
            assert!(found, "the validator found the record");
            assert_eq!(info.end, csv.position().byte(), "record ends agree");
            assert_eq!(info.fields.len(), record.len(), "field counts agree");
            for (f, value) in record.iter().enumerate() {
                for (k, &b) in value.iter().enumerate() {
                    let pos = info.locate(f, value, k).unwrap();
                    assert_eq!(data[pos.byte as usize], b, "field {f} byte {k}");
                    let line = 1 + line_breaks(&data[..pos.byte as usize]);
                    assert_eq!(pos.line, line, "field {f} byte {k}");
                }
            }
            let start = info.start.byte as usize;
            assert_eq!(info.start.line, 1 + line_breaks(&data[..start]));
            out.push((record.iter().map(<[u8]>::to_vec).collect(), info));
        }
        assert!(
            !validator.borrow_mut().pop_into(&mut RecordInfo::default()),
            "no extra record"
        );
        out
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
        assert_eq!(records[1].1.fields[1], Pos { byte: 16, line: 4 });
    }

    #[test]
    fn a_comment_open_at_the_end_is_a_phantom_record() {
        let comments = Dialect {
            comment: Some(b'#'),
            ..DIALECT
        };
        // `csv_core` returns a record of one empty field for it.
        let records = check(b"a\n#note", comments, vec![4096]);
        assert_eq!(records.len(), 2);
        assert!(!records[0].1.phantom);
        assert!(records[1].1.phantom);
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
        assert_eq!(
            info.locate(0, &values[0], 2),
            Some(Pos { byte: 4, line: 3 })
        );
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

        /// Whatever the bytes, dialect and read sizes, the validator finds the
        /// crate's records, and positions map values back to the input.
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
