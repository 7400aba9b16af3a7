//! Parsing one regular file on several threads, with exactly the records,
//! errors and batches of the sequential reader.
//!
//! After the header and the first rows (read by the sequential reader, which
//! also makes the decoder), the rest of the file is cut into chunks of about
//! [`CsvOptions::chunk_size`] bytes. A chunk is parsed, checked and decoded by
//! one of the workers, from the first byte after a `\n` at or after its
//! nominal start, taking the records that start before the next chunk's
//! start. That start is a guess: the `\n` before it may be inside a quoted
//! field. The guess is checked in file order, on the reading thread: a chunk
//! is right when the record before it ended at or before its start, for then
//! the sequential parser is between records there, and reads on exactly as
//! the worker did. A wrong chunk is parsed again from where the record before
//! it ended. A chunk holding an error is parsed again too, once its place is
//! known, so that the error's record index and line are the sequential
//! reader's: the workers count lines and records from their own start.
//!
//! The reading thread hands the records on as the sequential reader would
//! have: it feeds them to a [`Decoding`] in the chunks the sequential reader
//! sends (the first rows, then every `batch_size` rows), so the batches, and
//! what a stream-level error loses, are the same.
//!
//! Bounded: at most `2 × workers + 2` chunks are parsed or waiting at once.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::decode::{Chunk, Decode, Decoded, Decoding, Item, Labels, Msg, decode};
use super::options::CsvOptions;
use super::parse::{Pos, Resume};
use super::reading::{Building, Gather, Rows};
use crate::connectors::file::Emit;
use crate::{Error, Result};

/// Bytes of a file parsed by one worker at a time, by default.
pub(crate) const DEFAULT_CHUNK_SIZE: usize = 512 * 1024;

/// The workers to use for `options`: its `parallel`, or by default the
/// machine's cores less one, which the pipeline's own task keeps busy (at
/// least one).
pub(super) fn workers(options: &CsvOptions) -> usize {
    if !cfg!(any(unix, windows)) {
        return 1;
    }
    options.parallel.unwrap_or_else(default_workers)
}

/// The machine's cores less one, at least one. On 2 cores, one: there the
/// one-thread reader, the pipeline's task and a sink's writing thread
/// already keep both cores busy, and a second parsing thread only added
/// work (see `benches/csv.rs`).
pub(super) fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| usize::from(n).saturating_sub(1).max(1))
        .unwrap_or(1)
}

/// What every worker reads the file with.
pub(super) struct Plan {
    pub(super) file: Arc<File>,
    pub(super) path: PathBuf,
    /// The file's size when it was opened.
    pub(super) len: u64,
    pub(super) options: CsvOptions,
    pub(super) width: Option<usize>,
    pub(super) names: Vec<String>,
    pub(super) unnamed: &'static str,
    pub(super) labels: Labels,
    /// Where the sequential reader stopped: the first chunk starts there.
    pub(super) first: Resume,
    /// The index of the first record there.
    pub(super) index: u64,
    pub(super) workers: usize,
}

impl Plan {
    fn chunk(&self) -> u64 {
        self.options.chunk_size.max(1) as u64
    }

    /// How many chunks the file is cut into.
    fn chunks(&self) -> usize {
        let rest = self.len.saturating_sub(self.first.pos.byte);
        usize::try_from(rest.div_ceil(self.chunk()).max(1)).unwrap_or(usize::MAX)
    }

    /// Chunk `j`'s nominal start.
    fn nominal(&self, j: usize) -> u64 {
        self.first.pos.byte + j as u64 * self.chunk()
    }

    /// The first offset at or after `n` (> 0) that follows a `\n`, or the
    /// end of the file.
    fn boundary(&self, n: u64) -> io::Result<u64> {
        let mut buffer = [0u8; 4096];
        let mut at = n - 1;
        loop {
            let got = read_at(&self.file, &mut buffer, at)?;
            if got == 0 {
                return Ok(at);
            }
            if let Some(i) = memchr::memchr(b'\n', &buffer[..got]) {
                return Ok(at + i as u64 + 1);
            }
            at += got as u64;
        }
    }

    /// The line breaks in `from..to`, counted as the parser counts them.
    fn breaks(&self, from: Resume, to: u64) -> io::Result<u64> {
        let mut buffer = [0u8; 4096];
        let (mut at, mut after_cr, mut lines) = (from.pos.byte, from.after_cr, 0);
        while at < to {
            let want = usize::try_from(to - at)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let got = read_at(&self.file, &mut buffer[..want], at)?;
            if got == 0 {
                break;
            }
            for &b in &buffer[..got] {
                if b == b'\r' {
                    lines += 1;
                    after_cr = at + 1;
                } else if b == b'\n' && after_cr != at {
                    lines += 1;
                }
                at += 1;
            }
        }
        Ok(lines)
    }
}

/// A chunk parsed and decoded.
struct Parsed<T> {
    /// Where parsing started, and whether that place (its line, the index of
    /// its first record) was known rather than guessed.
    start: u64,
    exact: bool,
    /// The records and errors, in order, in pieces of at most a batch.
    parts: Vec<Decoded<T>>,
    /// How many rows (records and errors) it took.
    items: u64,
    /// Whether it holds a record-level error.
    errors: bool,
    /// A stream-level error that stopped it.
    failed: Option<Error>,
    /// Where the parser stood after its last record.
    end: Resume,
    /// Where the next chunk starts, and the parser's place there when it is
    /// between records there (the last record ended at or before it).
    until: u64,
    at_until: Option<Resume>,
    /// How far the file was read.
    read_to: u64,
}

impl<T> Parsed<T> {
    fn empty(start: Resume, exact: bool, until: u64) -> Self {
        Parsed {
            start: start.pos.byte,
            exact,
            parts: Vec::new(),
            items: 0,
            errors: false,
            failed: None,
            end: start,
            until,
            at_until: (start.pos.byte == until).then_some(start),
            read_to: start.pos.byte,
        }
    }

    /// Moves lines counted from 1 at the chunk's start to lines counted
    /// from `line` there.
    fn shift(&mut self, line: u64) {
        let shift = |r: &mut Resume| r.pos.line += line - 1;
        shift(&mut self.end);
        if let Some(r) = &mut self.at_until {
            shift(r);
        }
    }
}

/// The rows a worker parsed, not yet decoded.
#[derive(Default)]
struct Collect {
    chunk: Building,
}

impl super::parse::Out for Collect {
    fn fields(&mut self) -> &mut super::parse::Fields {
        &mut self.chunk.fields
    }

    fn waiting(&mut self) -> (usize, usize) {
        (0, 0)
    }
}

impl Gather for Collect {
    fn building(&mut self) -> &mut Building {
        &mut self.chunk
    }

    fn row(&mut self, index: u64, start: Pos, fields: usize) {
        let chunk = &mut self.chunk;
        chunk.items.push(Item::Row {
            index,
            start,
            fields,
        });
        chunk.text_len = chunk.fields.text.len();
        chunk.fields_len = chunk.fields.ends.len();
    }

    fn error(&mut self, error: Error) {
        let chunk = &mut self.chunk;
        chunk.fields.truncate(chunk.fields_len, chunk.text_len);
        chunk.items.push(Item::Error(error));
    }
}

/// Decodes the rows gathered so far, leaving `building` empty, its buffers
/// kept for the next rows.
pub(super) fn decode_building<T>(
    decoder: &mut dyn Decode<T>,
    labels: &Labels,
    building: &mut Building,
) -> Decoded<T> {
    let fields = &mut building.fields;
    let text = std::mem::take(&mut fields.text);
    let mut chunk = match String::from_utf8(text) {
        // Every field was checked to be UTF-8 on its own, so the text is.
        Ok(text) => Chunk {
            text,
            ends: std::mem::take(&mut fields.ends),
            positions: std::mem::take(&mut fields.positions),
            items: std::mem::take(&mut building.items),
            flush: false,
        },
        Err(_) => {
            building.items.clear();
            fields.truncate(0, 0);
            return Decoded {
                records: Vec::new(),
                errors: vec![(
                    0,
                    Error::msg("internal error: a checked CSV row is not UTF-8"),
                )],
                flush: false,
            };
        }
    };
    let decoded = decode(decoder, labels, &mut chunk);
    fields.text = chunk.text.into_bytes();
    fields.ends = chunk.ends;
    fields.positions = chunk.positions;
    building.items = chunk.items;
    building.text_len = 0;
    building.fields_len = 0;
    decoded
}

/// Parses, checks and decodes the records starting in `start..until`, from
/// `start`, where the parser is between records; `exact` when `start`'s line
/// and `index` are known (else lines count from 1 and records from 0).
fn parse<T>(
    plan: &Plan,
    decoder: &mut dyn Decode<T>,
    start: Resume,
    index: u64,
    exact: bool,
    until: u64,
) -> Parsed<T> {
    if start.pos.byte >= until {
        return Parsed::empty(start, exact, until);
    }
    let reader = At {
        file: plan.file.clone(),
        pos: start.pos.byte,
    };
    let mut rows = Rows::ranged(
        Box::new(reader),
        &plan.options,
        Some(plan.path.clone()),
        plan.width,
        plan.names.clone(),
        plan.unnamed,
        start,
        index,
        until,
    );
    let size = plan.options.batch_size.max(1);
    let mut collect = Collect::default();
    let mut parsed = Parsed::empty(start, exact, until);
    loop {
        match rows.next(&mut collect) {
            Ok(true) => {
                if collect.chunk.items.len() >= size {
                    parsed.take(decoder, &plan.labels, &mut collect.chunk);
                }
            }
            Ok(false) => break,
            Err(e) => {
                parsed.failed = Some(e);
                break;
            }
        }
    }
    // A record cut short by a stream-level error is no row.
    let chunk = &mut collect.chunk;
    chunk.fields.truncate(chunk.fields_len, chunk.text_len);
    if !collect.chunk.items.is_empty() {
        parsed.take(decoder, &plan.labels, &mut collect.chunk);
    }
    parsed.end = rows.end();
    parsed.read_to = rows.read_to();
    if parsed.failed.is_none() && until != u64::MAX && parsed.end.pos.byte <= until {
        match plan.breaks(parsed.end, until) {
            Ok(lines) => {
                parsed.at_until = Some(Resume {
                    pos: Pos {
                        byte: until,
                        line: parsed.end.pos.line + lines,
                    },
                    // The byte before `until` is a `\n`.
                    after_cr: u64::MAX,
                })
            }
            Err(e) => parsed.failed = Some(Error::io(&plan.path, e)),
        }
    } else {
        parsed.at_until = None;
    }
    parsed
}

impl<T> Parsed<T> {
    /// Decodes the rows in `building` into the next part.
    fn take(&mut self, decoder: &mut dyn Decode<T>, labels: &Labels, building: &mut Building) {
        self.items += building.items.len() as u64;
        self.errors |= building
            .items
            .iter()
            .any(|item| matches!(item, Item::Error(_)));
        let decoded = decode_building(decoder, labels, building);
        self.errors |= !decoded.errors.is_empty();
        self.parts.push(decoded);
    }
}

/// A chunk to parse: its index, where it starts (none for the first, which
/// starts where the one-thread reader stopped) and where the next starts,
/// when they could be found.
#[derive(Debug, Clone, Copy)]
struct Task {
    j: usize,
    start: Option<u64>,
    until: Option<u64>,
}

/// Finds the chunks' starts in file order. A search that ran past the next
/// nominal start found that chunk's start too, so a file with few line
/// breaks (or none: `\r` line ends) is scanned once, not once a chunk.
#[derive(Default)]
struct Bounds {
    /// The last search: the first start at or after `.0` is `.1`.
    last: Option<(u64, u64)>,
}

impl Bounds {
    fn boundary(&mut self, plan: &Plan, n: u64) -> Option<u64> {
        if let Some((from, found)) = self.last
            && from <= n
            && n <= found
        {
            return Some(found);
        }
        // A file that cannot be read there is read again, in order, by the
        // reading thread, which meets the error where the one-thread
        // reader would.
        let found = plan.boundary(n).ok()?;
        self.last = Some((n, found));
        Some(found)
    }

    fn task(&mut self, plan: &Plan, j: usize) -> Task {
        let start = match j {
            0 => None,
            _ => self.boundary(plan, plan.nominal(j)),
        };
        let until = match j + 1 >= plan.chunks() {
            true => Some(u64::MAX),
            false => self.boundary(plan, plan.nominal(j + 1)),
        };
        Task { j, start, until }
    }
}

/// Parses a chunk on a worker: from its guessed start, or from where the
/// one-thread reader stopped for the first chunk.
fn parse_chunk<T>(plan: &Plan, decoder: &mut dyn Decode<T>, task: Task) -> Parsed<T> {
    // Not knowing where the next chunk starts, take every record after.
    let until = task.until.unwrap_or(u64::MAX);
    match (task.j, task.start) {
        (0, _) => parse(plan, decoder, plan.first, plan.index, true, until),
        (_, Some(start)) => {
            let start = Resume {
                pos: Pos {
                    byte: start,
                    line: 1,
                },
                after_cr: u64::MAX,
            };
            parse(plan, decoder, start, 0, false, until)
        }
        (_, None) => {
            let mut parsed = Parsed::empty(plan.first, false, until);
            parsed.start = u64::MAX; // never right: parsed again where it starts
            parsed
        }
    }
}

/// Feeds decoded rows to a [`Decoding`] in the chunks the sequential reader
/// would have sent, and sends the batches it makes.
pub(super) struct Feed<T> {
    batching: Decoding<T>,
    held: VecDeque<Decoded<T>>,
    held_items: usize,
    /// Rows fed so far, and the count at which the next chunk would be sent.
    fed: usize,
    next: usize,
    size: usize,
}

impl<T> Feed<T> {
    /// `first`: the rows in the first chunk the sequential reader sends.
    pub(super) fn new(size: usize, first: usize) -> Self {
        Feed {
            batching: Decoding::with_size(size),
            held: VecDeque::new(),
            held_items: 0,
            fed: 0,
            next: first,
            size,
        }
    }

    /// Adds the rows read before the parallel reading; false when the
    /// pipeline is gone or a stream-level error ended the source.
    pub(super) fn add_first(&mut self, decoded: Decoded<T>, emit: &mut Emit<Msg<T>>) -> bool {
        self.add(decoded, emit)
    }

    /// Adds rows after those so far; false when the pipeline is gone or a
    /// stream-level error ended the source.
    fn add(&mut self, decoded: Decoded<T>, emit: &mut Emit<Msg<T>>) -> bool {
        self.held_items += decoded.items();
        self.held.push_back(decoded);
        while self.fed + self.held_items >= self.next {
            let mut want = self.next - self.fed;
            while want > 0 {
                let Some(front) = self.held.front_mut() else {
                    break;
                };
                let part = if front.items() <= want {
                    self.held.pop_front().unwrap_or_else(|| unreachable!())
                } else {
                    front.split_front(want)
                };
                want -= part.items();
                self.held_items -= part.items();
                self.batching.push(part);
            }
            self.fed = self.next;
            self.next += self.size;
            if self.batching.done {
                return self.send(emit);
            }
        }
        true
    }

    /// Sends the batches made so far, together (one hand-off for many
    /// batches); false when the pipeline is gone or the source has ended.
    fn send(&mut self, emit: &mut Emit<Msg<T>>) -> bool {
        if self.batching.out.is_empty() {
            return !self.batching.done;
        }
        let mut msgs = Vec::with_capacity(self.batching.out.len());
        while let Some(item) = self.batching.out.pop_front() {
            let decoded = match item {
                Ok(batch) => Decoded {
                    records: batch.into_records(),
                    errors: Vec::new(),
                    flush: true,
                },
                Err(e) => Decoded {
                    records: Vec::new(),
                    errors: vec![(0, e)],
                    flush: true,
                },
            };
            msgs.push(Msg::Decoded(decoded));
        }
        emit.batch(msgs) && !self.batching.done
    }

    /// At the end of the input: sends every row left.
    fn finish(&mut self, emit: &mut Emit<Msg<T>>) {
        while let Some(part) = self.held.pop_front() {
            self.batching.push(part);
        }
        self.batching.flush();
        self.send(emit);
    }

    /// At a stream-level error: the rows the sequential reader had not sent
    /// yet are lost, and so are those its pipeline had not batched yet.
    fn fail(&mut self, emit: &mut Emit<Msg<T>>) {
        self.held.clear();
        self.batching.carry.clear();
        self.send(emit);
    }
}

/// Reads the rest of the file on `plan.workers` threads, sending what
/// [`super::reading::read_all`] would have sent from there on.
pub(super) fn read_rest<T: Send>(
    plan: Plan,
    decoder: &dyn Decode<T>,
    mut feed: Feed<T>,
    emit: &mut Emit<Msg<T>>,
    counted: u64,
) -> Result<()> {
    let chunks = plan.chunks();
    let window = 2 * plan.workers + 2;
    let (tasks, todo) = sync_channel::<Task>(window);
    let todo = Mutex::new(todo);
    let (done, results) = sync_channel::<(usize, Parsed<T>)>(window);
    let mut local = decoder.fork();
    let (plan, todo, feed) = (&plan, &todo, &mut feed);
    std::thread::scope(move |scope| {
        let mut started = 0;
        for _ in 0..plan.workers {
            let mut decoder = decoder.fork();
            let done = done.clone();
            let worker = std::thread::Builder::new()
                .name("dataflare-csv".to_string())
                .spawn_scoped(scope, move || work(plan, decoder.as_mut(), todo, done));
            started += usize::from(worker.is_ok());
        }
        drop(done);
        if started == 0 {
            return Err(Error::msg("could not start a CSV parsing thread"));
        }
        // The channels are this closure's: dropped when it returns or
        // unwinds, which stops the workers at their next task or result
        // before the scope waits for them.
        collect(
            plan,
            local.as_mut(),
            feed,
            emit,
            counted,
            chunks,
            window,
            &tasks,
            &results,
        )
    })
}

/// A worker: parses the chunks it is given until there are none.
fn work<T>(
    plan: &Plan,
    decoder: &mut dyn Decode<T>,
    todo: &Mutex<Receiver<Task>>,
    done: SyncSender<(usize, Parsed<T>)>,
) {
    loop {
        let task = match todo.lock() {
            Ok(todo) => todo.recv(),
            Err(_) => return,
        };
        let Ok(task) = task else { return };
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parse_chunk(plan, decoder, task)
        }))
        .unwrap_or_else(|panic| {
            let mut parsed = Parsed::empty(plan.first, true, 0);
            parsed.start = u64::MAX;
            parsed.failed = Some(Error::msg(format!(
                "a CSV parsing thread panicked: {}",
                panic_message(panic.as_ref())
            )));
            parsed
        });
        if done.send((task.j, parsed)).is_err() {
            return;
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// The reading thread's side: hands out the chunks, takes them back in
/// order, checks each, and feeds the rows on.
#[allow(clippy::too_many_arguments)]
fn collect<T>(
    plan: &Plan,
    decoder: &mut dyn Decode<T>,
    feed: &mut Feed<T>,
    emit: &mut Emit<Msg<T>>,
    mut counted: u64,
    chunks: usize,
    window: usize,
    tasks: &SyncSender<Task>,
    results: &Receiver<(usize, Parsed<T>)>,
) -> Result<()> {
    let mut bounds = Bounds::default();
    let mut given = 0;
    while given < chunks.min(window) {
        if tasks.send(bounds.task(plan, given)).is_err() {
            break;
        }
        given += 1;
    }
    // Chunks back from the workers, from the next one wanted on.
    let mut ready: VecDeque<Option<Parsed<T>>> = VecDeque::new();
    let mut at = plan.first;
    let mut index = plan.index;
    let mut read_to = 0;
    for j in 0..chunks {
        let parsed = loop {
            if let Some(Some(_)) = ready.front() {
                break ready
                    .pop_front()
                    .flatten()
                    .unwrap_or_else(|| unreachable!());
            }
            let Ok((k, parsed)) = results.recv() else {
                return Err(Error::msg("internal error: the CSV parsing threads ended"));
            };
            let slot = k - j;
            if ready.len() <= slot {
                ready.resize_with(slot + 1, || None);
            }
            ready[slot] = Some(parsed);
        };
        if given < chunks {
            let _ = tasks.send(bounds.task(plan, given));
            given += 1;
        }
        let right = parsed.start == at.pos.byte;
        let parsed = if parsed.exact && right {
            parsed
        } else if right && !parsed.errors && parsed.failed.is_none() {
            let mut parsed = parsed;
            parsed.shift(at.pos.line);
            parsed
        } else {
            // Guessed wrong, or holding errors whose places must be exact.
            parse(plan, decoder, at, index, true, parsed.until)
        };
        read_to = read_to.max(parsed.read_to);
        let Parsed {
            parts,
            items,
            failed,
            end,
            at_until,
            ..
        } = parsed;
        for part in parts {
            if !feed.add(part, emit) {
                return Ok(());
            }
        }
        if let Some(e) = failed {
            feed.fail(emit);
            return Err(e);
        }
        index += items;
        at = at_until.unwrap_or(end);
        // The chunk's bytes count as read before its batches leave.
        if at.pos.byte > counted && at.pos.byte != u64::MAX {
            emit.add_read(at.pos.byte - counted);
            counted = at.pos.byte;
        }
        if !feed.send(emit) {
            return Ok(());
        }
    }
    if read_to > counted {
        emit.add_read(read_to - counted);
    }
    feed.finish(emit);
    Ok(())
}

/// Reads a file from an offset, without moving a shared cursor.
struct At {
    file: Arc<File>,
    pos: u64,
}

fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    loop {
        #[cfg(unix)]
        let got = std::os::unix::fs::FileExt::read_at(file, buf, pos);
        #[cfg(windows)]
        let got = std::os::windows::fs::FileExt::seek_read(file, buf, pos);
        #[cfg(not(any(unix, windows)))]
        let got: io::Result<usize> = {
            let _ = (file, buf, pos);
            Err(io::Error::other(
                "reading at an offset is not supported here",
            ))
        };
        match got {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            got => return got,
        }
    }
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
