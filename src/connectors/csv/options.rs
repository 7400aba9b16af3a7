use crate::source::DEFAULT_BATCH_SIZE;

/// How surrounding whitespace in fields is handled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trim {
    /// Keep fields as they are (the default).
    #[default]
    None,
    /// Trim header names only.
    Headers,
    /// Trim values only.
    Fields,
    /// Trim header names and values.
    All,
}

/// What a CSV source does with a header row that names a column twice
/// (`a,a,b`): records with two fields of one name would be written as JSON
/// objects with duplicate keys, and a typed row could take either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DuplicateHeaders {
    /// End the run with an error naming the file, the name and both column
    /// positions (the default).
    #[default]
    Refuse,
    /// Rename the repeats: the second `a` becomes `a_2`, the third `a_3`,
    /// skipping any name another column already has (`a_3` when there is an
    /// `a_2` column).
    Rename,
}

/// The CSV dialect and reading options shared by CSV sources and sinks.
///
/// Cloneable, so one configuration can make many readers and writers (as the
/// `csv` crate's `ReaderBuilder` builds with `&self`). The source and sink
/// builders (`csv::read(..)`, `csv::write(..)`) set these through their own
/// chained methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CsvOptions {
    /// Field delimiter; `,` by default. Any byte: `;`, `\t`, `|` ...
    pub delimiter: u8,
    /// Whether the first row is a header; true by default.
    pub has_headers: bool,
    /// Quote character; `"` by default.
    pub quote: u8,
    /// Escape character inside quoted fields (e.g. `\`); none by default.
    pub escape: Option<u8>,
    /// Whether two quotes in a quoted field stand for one; true by default.
    pub double_quote: bool,
    /// Lines starting with this byte are skipped; none by default.
    pub comment: Option<u8>,
    /// Whitespace trimming; none by default.
    pub trim: Trim,
    /// Whether rows may have differing numbers of fields; false by default (an error).
    pub flexible: bool,
    /// Records per batch; [`DEFAULT_BATCH_SIZE`] by default.
    pub batch_size: usize,
    /// Whether malformed quoting (`ab"c"d`, `"abc"def`, a quote left open at end
    /// of file) is accepted as the `csv` crate reads it; false by default (an error).
    pub lenient_quotes: bool,
    /// Whether invalid UTF-8 is replaced by U+FFFD instead of being an error;
    /// false by default.
    pub lossy_utf8: bool,
    /// The most one record may take while it is read (sources only): 16 MiB
    /// by default. A longer record, typically a stray quote that makes the
    /// rest of the file one field, ends the run; see
    /// [`CsvSource::max_record_bytes`](super::CsvSource::max_record_bytes).
    pub max_record_bytes: usize,
    /// What a header naming a column twice does (sources only);
    /// [`DuplicateHeaders::Refuse`] by default.
    pub duplicate_headers: DuplicateHeaders,
    /// Threads parsing one regular file at once (sources only); `None` (the
    /// default) for the machine's cores less one, at least one. A stream (stdin, a pipe, any
    /// reader) is always read on one thread. See
    /// [`CsvSource::parallel`](super::CsvSource::parallel).
    pub parallel: Option<usize>,
    /// Bytes of a file each parsing thread takes at a time when parsing in
    /// parallel (sources only); 512 KiB by default. See
    /// [`CsvSource::chunk_size`](super::CsvSource::chunk_size).
    pub chunk_size: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            has_headers: true,
            quote: b'"',
            escape: None,
            double_quote: true,
            comment: None,
            trim: Trim::None,
            flexible: false,
            batch_size: DEFAULT_BATCH_SIZE,
            lenient_quotes: false,
            lossy_utf8: false,
            max_record_bytes: super::limit::DEFAULT_MAX_RECORD_BYTES,
            duplicate_headers: DuplicateHeaders::Refuse,
            parallel: None,
            chunk_size: super::parallel::DEFAULT_CHUNK_SIZE,
        }
    }
}

impl CsvOptions {
    /// A `csv` crate writer configured with these options.
    pub(crate) fn writer_builder(&self) -> ::csv::WriterBuilder {
        let mut b = ::csv::WriterBuilder::new();
        b.delimiter(self.delimiter)
            .has_headers(self.has_headers)
            .quote(self.quote)
            .double_quote(self.double_quote)
            .flexible(self.flexible);
        if let Some(escape) = self.escape {
            b.escape(escape);
        }
        b
    }
}
