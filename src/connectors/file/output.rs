use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{AtomicFile, claim_output};
use crate::{Error, Result};

/// Where a file sink writes.
pub(crate) enum Output {
    /// A file replaced atomically when the run completes (the default for paths).
    Replace(PathBuf),
    /// A file appended to as batches arrive (for long-running streams); a failed
    /// run leaves what was written before the failure.
    Append(PathBuf),
    /// Any writer (stdout, a buffer), flushed at the end.
    Writer(Box<dyn Write + Send>),
}

impl Output {
    /// Opens the destination. Runs on a blocking thread.
    pub(crate) fn open(self) -> Result<OutputFile> {
        match self {
            Output::Replace(path) => {
                claim_output(&path)?;
                AtomicFile::create(&path).map(OutputFile::Replace)
            }
            Output::Append(path) => {
                claim_output(&path)?;
                if path.is_dir() {
                    return Err(Error::config("the output path is a directory").with_path(&path));
                }
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                Ok(OutputFile::Append {
                    path,
                    file: BufWriter::with_capacity(256 * 1024, file),
                })
            }
            Output::Writer(w) => Ok(OutputFile::Writer(w)),
        }
    }

    /// True when the destination file exists and is not empty (so an appending
    /// writer should not repeat a header).
    pub(crate) fn has_content(&self) -> bool {
        match self {
            Output::Append(p) => std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false),
            _ => false,
        }
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Replace(p) => f.debug_tuple("Replace").field(p).finish(),
            Output::Append(p) => f.debug_tuple("Append").field(p).finish(),
            Output::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

/// An opened [`Output`].
pub(crate) enum OutputFile {
    Replace(AtomicFile),
    Append {
        path: PathBuf,
        file: BufWriter<File>,
    },
    Writer(Box<dyn Write + Send>),
}

impl OutputFile {
    /// The file path, if the output is a file.
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            OutputFile::Replace(f) => Some(f.path()),
            OutputFile::Append { path, .. } => Some(path),
            OutputFile::Writer(_) => None,
        }
    }

    /// Flushes; a replaced file is synced and renamed into place when the
    /// run commits (see [`AtomicFile::finish`]).
    pub(crate) fn finish(self) -> Result<()> {
        match self {
            OutputFile::Replace(f) => f.finish(),
            OutputFile::Append { path, mut file } => file.flush().map_err(|e| Error::io(&path, e)),
            OutputFile::Writer(mut w) => w.flush().map_err(Error::from),
        }
    }

    /// An I/O error from writing here, naming the file.
    pub(crate) fn io_error(&self, error: io::Error) -> Error {
        match self.path() {
            Some(p) => Error::io(p, error),
            None => Error::from(error),
        }
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            OutputFile::Replace(f) => f.write(buf),
            OutputFile::Append { file, .. } => file.write(buf),
            OutputFile::Writer(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            OutputFile::Replace(f) => f.write_all(buf),
            OutputFile::Append { file, .. } => file.write_all(buf),
            OutputFile::Writer(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            OutputFile::Replace(f) => f.flush(),
            OutputFile::Append { file, .. } => file.flush(),
            OutputFile::Writer(w) => w.flush(),
        }
    }
}

impl fmt::Debug for OutputFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputFile")
            .field("path", &self.path())
            .finish()
    }
}

/// True when the file exists, is not empty and its last byte is not `\n`: a
/// sink appending to it must start a new line first.
pub(crate) fn ends_without_newline(path: &Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if !path.is_file() {
        return Ok(false); // missing: created on open; a directory: open reports it
    }
    let Ok(mut file) = std::fs::File::open(path) else {
        return Ok(false); // unreadable: opening for append reports it
    };
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))
        .and_then(|_| file.read_exact(&mut last))
        .map_err(|e| Error::io(path, e))?;
    Ok(last[0] != b'\n')
}
