//! Lines of bounded length: a line that runs past the limit is reported after
//! reading at most the limit plus its line break, never buffered whole.

use std::io::{self, BufRead, BufReader, Read};

/// The UTF-8 byte order mark, skipped at the start of the input.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// What [`LineReader::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A line, readable with [`LineReader::line`].
    Line,
    /// A line longer than the limit; reading stopped after `read` bytes of it.
    TooLong {
        /// Bytes of the line read before giving up.
        read: usize,
    },
    /// The end of the input.
    End,
}

/// Reads lines of at most `max` bytes (not counting the `\n` or `\r\n` that
/// ends them), keeping at most `max + 2` bytes of a line in memory.
pub(super) struct LineReader<R> {
    reader: BufReader<R>,
    max: usize,
    /// The current line, line break included.
    buf: Vec<u8>,
    /// The number of the current line (at the end, of the last line).
    number: u64,
    /// Offset of the current line's first byte (after a BOM).
    start: u64,
    /// Offset of the next byte to read.
    next_byte: u64,
}

impl<R: Read> LineReader<R> {
    /// Reads `reader` through a buffer of `capacity` bytes.
    pub(super) fn new(reader: R, capacity: usize, max: usize) -> Self {
        LineReader {
            reader: BufReader::with_capacity(capacity, reader),
            max,
            buf: Vec::new(),
            number: 0,
            start: 0,
            next_byte: 0,
        }
    }

    /// Reads the next line, calling `waiting` before each read from the
    /// input, which may wait for it (a pipe, a socket). After an I/O error,
    /// [`number`](Self::number) and [`start`](Self::start) name the line being
    /// read.
    pub(super) fn next(&mut self, mut waiting: impl FnMut()) -> io::Result<Next> {
        self.buf.clear();
        self.start = self.next_byte;
        self.number += 1;
        // Room for the longest allowed line and its `\r\n`.
        let room = self.max.saturating_add(2);
        let ended = loop {
            if self.reader.buffer().is_empty() {
                waiting();
            }
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break false;
            }
            let window = &available[..available.len().min(room - self.buf.len())];
            let (take, ended) = match memchr::memchr(b'\n', window) {
                Some(i) => (i + 1, true),
                None => (window.len(), false),
            };
            reserve_up_to(&mut self.buf, take, room);
            self.buf.extend_from_slice(&window[..take]);
            self.reader.consume(take);
            self.next_byte += take as u64;
            if ended {
                break true;
            }
            if self.buf.len() == room {
                return Ok(Next::TooLong { read: room });
            }
        };
        if !ended && self.buf.is_empty() {
            self.number -= 1;
            return Ok(Next::End);
        }
        if self.number == 1 && self.buf.starts_with(BOM) {
            self.buf.drain(..BOM.len());
            self.start += BOM.len() as u64;
        }
        if self.line().len() > self.max {
            return Ok(Next::TooLong {
                read: self.buf.len(),
            });
        }
        Ok(Next::Line)
    }

    /// The current line, without its line break.
    pub(super) fn line(&self) -> &[u8] {
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        line.strip_suffix(b"\r").unwrap_or(line)
    }

    /// The number of the current line, from 1 (of the last line, at the end).
    pub(super) fn number(&self) -> u64 {
        self.number
    }

    /// The offset of the current line's first byte, from 0.
    pub(super) fn start(&self) -> u64 {
        self.start
    }
}

/// Makes room for `more` bytes in `buf`, growing it as a `Vec` does but never
/// past `cap` bytes, so a line at the limit does not take twice the limit.
fn reserve_up_to(buf: &mut Vec<u8>, more: usize, cap: usize) {
    let needed = buf.len() + more;
    if needed > buf.capacity() {
        let target = needed.max(buf.capacity().saturating_mul(2)).min(cap);
        buf.reserve_exact(target - buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every result and line of `input`, read with a tiny buffer so lines
    /// straddle reads.
    fn read_all(input: &[u8], max: usize) -> Vec<(Next, String, u64, u64)> {
        let mut lines = LineReader::new(input, 3, max);
        let mut out = Vec::new();
        loop {
            let next = lines.next(|| ()).unwrap();
            let end = next == Next::End;
            let line = String::from_utf8_lossy(lines.line()).into_owned();
            out.push((next, line, lines.number(), lines.start()));
            if end || matches!(out.last().unwrap().0, Next::TooLong { .. }) {
                return out;
            }
        }
    }

    #[test]
    fn lines_with_and_without_a_final_break() {
        let got = read_all(b"ab\r\n\ncdef\nxyz", 4);
        let lines: Vec<_> = got
            .iter()
            .map(|(n, l, num, s)| (n, l.as_str(), *num, *s))
            .collect();
        assert_eq!(
            lines,
            [
                (&Next::Line, "ab", 1, 0),
                (&Next::Line, "", 2, 4),
                (&Next::Line, "cdef", 3, 5),
                (&Next::Line, "xyz", 4, 10),
                (&Next::End, "", 4, 13),
            ]
        );
    }

    #[test]
    fn the_limit_counts_the_line_without_its_break() {
        assert_eq!(read_all(b"abcd\r\n", 4)[0].0, Next::Line);
        assert_eq!(read_all(b"abcd", 4)[0].0, Next::Line);
        assert_eq!(read_all(b"abcde\n", 4)[0].0, Next::TooLong { read: 6 });
        assert_eq!(read_all(b"abcde", 4)[0].0, Next::TooLong { read: 5 });
        let got = read_all(b"ok\nabcdefghijklmnop\nnever", 4);
        assert_eq!(got[1].0, Next::TooLong { read: 6 });
        assert_eq!((got[1].2, got[1].3), (2, 3), "line 2 starts at byte 3");
    }

    #[test]
    fn a_bom_is_skipped_at_the_start_only() {
        let got = read_all(b"\xEF\xBB\xBF1\n\xEF\xBB\xBF2\n", 8);
        assert_eq!((got[0].1.as_str(), got[0].3), ("1", 3));
        assert_eq!(got[1].1, "\u{FEFF}2");
    }

    #[test]
    fn waiting_is_called_before_each_read() {
        let mut lines = LineReader::new(&b"1\n2\n3\n"[..], 8, 10);
        let mut waits = Vec::new();
        for _ in 0..4 {
            let mut n = 0;
            lines.next(|| n += 1).unwrap();
            waits.push(n);
        }
        // One read gets all three lines; one more finds the end.
        assert_eq!(waits, [1, 0, 0, 1]);
    }

    #[test]
    fn memory_stays_within_the_limit() {
        let input = vec![b'x'; 1 << 20];
        let mut lines = LineReader::new(&input[..], 8192, 1000);
        assert_eq!(lines.next(|| ()).unwrap(), Next::TooLong { read: 1002 });
        assert!(lines.buf.capacity() <= 1002, "{}", lines.buf.capacity());
    }
}
