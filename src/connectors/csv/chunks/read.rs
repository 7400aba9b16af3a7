//! The reader's thread: blocks read from the file, checked for quoting and
//! cut after their last whole record.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::super::parse::show;
use super::chunk::FileInfo;
use super::{CsvChunk, QUOTE, ReadConfig};
use crate::connectors::file::{Emit, claim_input};
use crate::{Error, Position, Result};

/// The file being read: what is left of the last block, and where it is.
struct Blocks {
    file: File,
    buf: Vec<u8>,
    eof: bool,
    /// The file's line and byte at `buf[0]`.
    line: u64,
    byte: u64,
}

impl Blocks {
    /// Reads until `buf` holds `want` bytes or the file ends.
    fn fill(&mut self, want: usize, emit: &Emit<CsvChunk>, path: &Path) -> Result<()> {
        if self.eof || self.buf.len() >= want {
            return Ok(());
        }
        let more = want - self.buf.len();
        self.buf.reserve_exact(more);
        let n = (&mut self.file)
            .take(more as u64)
            .read_to_end(&mut self.buf)
            .map_err(|e| Error::io(path, e))?;
        emit.add_read(n as u64);
        if n < more {
            self.eof = true;
        }
        Ok(())
    }

    /// Takes `buf[..cut]` out, moving on the line and byte.
    fn take(&mut self, cut: usize, capacity: usize) -> (Vec<u8>, u64, u64) {
        let mut rest = Vec::with_capacity(capacity.max(self.buf.len() - cut));
        rest.extend_from_slice(&self.buf[cut..]);
        let mut taken = std::mem::replace(&mut self.buf, rest);
        taken.truncate(cut);
        let (line, byte) = (self.line, self.byte);
        self.line += memchr::memchr_iter(b'\n', &taken).count() as u64;
        self.byte += cut as u64;
        (taken, line, byte)
    }

    /// A stream-level error at `buf[at]`.
    fn error(&self, path: &Path, at: usize, message: String) -> Error {
        let line = self.line + memchr::memchr_iter(b'\n', &self.buf[..at]).count() as u64;
        Error::parse(message)
            .with_position(Position::new().line(line).byte(self.byte + at as u64))
            .with_path(path)
    }
}

/// A quoting fault found while looking for record boundaries.
struct Fault {
    at: usize,
    message: String,
}

/// Checks the quoting of `buf` (which starts at a record boundary) and
/// finds where to cut it: after its last line break outside quotes, or at
/// its end when it is the end of the file. `None` when no line break is
/// outside quotes.
fn scan(buf: &[u8], delimiter: u8, eof: bool) -> std::result::Result<Option<usize>, Fault> {
    let ends_field = |b: u8| b == delimiter || b == b'\n' || b == b'\r';
    let mut inside = false;
    let mut opened = 0;
    let mut quotes = 0u64;
    for at in memchr::memchr_iter(QUOTE, buf) {
        quotes += 1;
        if inside {
            // A closing quote, or the first of a doubled one.
            match buf.get(at + 1) {
                Some(&b) if b == QUOTE || ends_field(b) => {}
                Some(&b) => {
                    return Err(Fault {
                        at: at + 1,
                        message: format!(
                            "{} after the closing quote of a quoted field (expected a delimiter or the end of the record)",
                            show(b)
                        ),
                    });
                }
                None => {} // known with the next block (or the end)
            }
        } else {
            // An opening quote, or the second of a doubled one.
            let ok = at == 0 || {
                let b = buf[at - 1];
                b == QUOTE || ends_field(b)
            };
            if !ok {
                return Err(Fault {
                    at,
                    message: "quote '\"' inside an unquoted field (quote the whole field and double the quotes in it)"
                        .to_string(),
                });
            }
            opened = at;
        }
        inside = !inside;
    }
    if eof {
        if inside {
            return Err(Fault {
                at: opened,
                message:
                    "quoted field never closed: the quote opened here runs to the end of the input"
                        .to_string(),
            });
        }
        return Ok(Some(buf.len()));
    }
    // The last line break after an even number of quotes.
    let mut end = buf.len();
    let mut after = 0u64;
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        after += memchr::memchr_iter(QUOTE, &buf[nl..end]).count() as u64;
        if (quotes - after).is_multiple_of(2) {
            return Ok(Some(nl + 1));
        }
        end = nl;
    }
    Ok(None)
}

/// Checks the options of a chunked read.
fn check(config: &ReadConfig) -> Result<()> {
    match config.delimiter {
        QUOTE => Err(Error::config(
            "the delimiter cannot be the quote '\"' when reading chunks",
        )),
        b'\n' | b'\r' => Err(Error::config("the delimiter cannot be a line break")),
        _ => Ok(()),
    }
}

/// Reads the file at `config.path`, sending its chunks.
pub(super) fn read_file(config: &ReadConfig, emit: &mut Emit<CsvChunk>) -> Result<()> {
    let path = &config.path;
    check(config).map_err(|e| e.with_path(path))?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::config("the input path is a directory, not a file").with_path(path));
    }
    claim_input(path)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        emit.set_total(meta.len());
    }
    let mut blocks = Blocks {
        file,
        buf: Vec::new(),
        eof: false,
        line: 1,
        byte: 0,
    };
    let chunk_size = config.chunk_size;
    let max = config.max_record_bytes;
    let too_long = |blocks: &Blocks| {
        blocks.error(
            path,
            0,
            format!(
                "a record longer than {max} bytes (max_record_bytes) starts here, or a quote opened in it is never closed"
            ),
        )
    };

    // The header row: the first record (empty lines before it are skipped).
    let mut want = chunk_size;
    let headers = loop {
        blocks.fill(want, emit, path)?;
        if blocks.buf.starts_with(b"\xEF\xBB\xBF") && blocks.byte == 0 {
            blocks.buf.drain(..3);
            blocks.byte = 3;
        }
        let first = first_record(&blocks.buf, config.delimiter);
        match first {
            Some((mut end, record)) if end < blocks.buf.len() || blocks.eof => {
                if blocks.buf[end - 1] == b'\r' && blocks.buf.get(end) == Some(&b'\n') {
                    end += 1; // the rest of a \r\n
                }
                if let Err(f) = scan(&blocks.buf[..end], config.delimiter, true) {
                    return Err(blocks.error(path, f.at, format!("header row: {}", f.message)));
                }
                let headers = ::csv::StringRecord::from_byte_record(record).map_err(|e| {
                    let field = e.utf8_error().field() + 1;
                    blocks.error(
                        path,
                        0,
                        format!("header row: invalid UTF-8 in field {field}"),
                    )
                })?;
                let _ = blocks.take(end, chunk_size);
                break headers;
            }
            None if blocks.eof => {
                return Ok(()); // an empty file: no header, no rows
            }
            _ if blocks.buf.len() > max => return Err(too_long(&blocks)),
            _ => want = (blocks.buf.len() + chunk_size).min(max + 1),
        }
    };
    let info = Arc::new(FileInfo {
        path: path.clone(),
        headers: Arc::new(headers),
        delimiter: config.delimiter,
    });

    let mut want = chunk_size;
    loop {
        blocks.fill(want, emit, path)?;
        if blocks.buf.is_empty() && blocks.eof {
            return Ok(());
        }
        let cut = scan(&blocks.buf, config.delimiter, blocks.eof)
            .map_err(|f| blocks.error(path, f.at, f.message))?;
        match cut {
            Some(cut) => {
                let (bytes, first_line, first_byte) = blocks.take(cut, chunk_size);
                want = chunk_size;
                let chunk = CsvChunk {
                    bytes,
                    first_line,
                    first_byte,
                    file: info.clone(),
                };
                if !emit.batch(vec![chunk]) {
                    return Ok(()); // the pipeline is gone
                }
            }
            None if blocks.buf.len() > max => return Err(too_long(&blocks)),
            None => want = (blocks.buf.len() + chunk_size).min(max + 1),
        }
    }
}

/// The first record of `buf` and where the next starts, parsed by the
/// `csv` crate; `None` when `buf` has none (empty, or empty lines only).
fn first_record(buf: &[u8], delimiter: u8) -> Option<(usize, ::csv::ByteRecord)> {
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(buf);
    let mut record = ::csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => Some((reader.position().byte() as usize, record)),
        _ => None,
    }
}
