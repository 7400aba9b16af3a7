//! A partitioned output: one file per key in a directory (`DIR/KEY.EXT`), all
//! written by one writer thread, each to a temporary of its own, and
//! committed together with the rest of the run.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use super::atomic::{remove_stale_temps, sync_dir};
use super::{AtomicFile, BatchWriter, Keyed, OutputFile, PartitionKey, claim_output};
use crate::runtime::{Staged, current};
use crate::{Batch, Error, Result};

/// Partitions a sink takes by default before it fails the run.
pub(crate) const DEFAULT_MAX_PARTITIONS: usize = 512;

/// The write buffer of each partition's file: many are open at once.
const PART_BUFFER: usize = 8 * 1024;

/// How a partitioned sink writes one of its files (the format: CSV, ...).
pub(crate) trait PartWriter<T>: Sized + Send + 'static {
    /// What every file's writer is made from: the sink's format options.
    type Config: Send + 'static;

    /// A writer into `out`, a new partition file.
    fn open(config: &Self::Config, out: OutputFile) -> Result<Self>;

    /// Writes one record; errors name the file and the record.
    fn write(&mut self, record: &T) -> Result<()>;

    /// Flushes what the writer holds and gives back its output.
    fn into_output(self) -> Result<OutputFile>;
}

/// What a partitioned sink is opened with.
#[derive(Debug)]
pub(crate) struct PartitionsConfig<C> {
    /// The output directory.
    pub(crate) dir: PathBuf,
    /// The files' extension, without the dot.
    pub(crate) extension: &'static str,
    /// The most partitions (open files) one run may have.
    pub(crate) max_partitions: usize,
    /// The format's options, shared by every file.
    pub(crate) format: C,
}

/// The writer of a partitioned output, on the sink's one blocking thread: a
/// map from key to the writer of that key's file, opened when the key first
/// comes. `W` writes one file, made from the format's options `C`.
pub(crate) struct Partitions<T, W, C> {
    /// Declared before `dir`, so dropped first: an abandoned run removes its
    /// temporaries, then the directory if it created it.
    parts: Vec<Part<W>>,
    dir: OutputDir,
    format: C,
    extension: &'static str,
    max_partitions: usize,
    /// Index in `parts` of each key.
    keys: HashMap<PartitionKey, usize>,
    /// Index in `parts` of each key in lower case, to find keys that differ
    /// only in case.
    folded: HashMap<String, usize>,
    /// The last record's partition: records of one key often come together.
    last: Option<usize>,
    _records: PhantomData<fn(T)>,
}

struct Part<W> {
    key: PartitionKey,
    path: PathBuf,
    writer: W,
}

impl<T, W, C> Partitions<T, W, C>
where
    T: Send + 'static,
    W: PartWriter<T, Config = C>,
{
    /// Opens the output directory, creating it if missing (its parent must
    /// exist), and removes temporaries killed runs left there. Runs on the
    /// writer thread, before any record is read.
    pub(crate) fn open(config: PartitionsConfig<C>) -> Result<Self> {
        let PartitionsConfig {
            dir,
            extension,
            max_partitions,
            format,
        } = config;
        let dir = OutputDir::open(dir)?;
        let suffix = format!(".{extension}");
        remove_stale_temps(&dir.path, |name| name.ends_with(&suffix));
        Ok(Partitions {
            parts: Vec::new(),
            dir,
            format,
            extension,
            max_partitions,
            keys: HashMap::new(),
            folded: HashMap::new(),
            last: None,
            _records: PhantomData,
        })
    }

    /// The index in `parts` of `key`'s partition, opened if it is new.
    fn part(&mut self, key: PartitionKey) -> Result<usize> {
        if let Some(&i) = self.keys.get(&key) {
            return Ok(i);
        }
        let path = self.dir.path.join(format!("{key}.{}", self.extension));
        let folded = key.as_str().to_lowercase();
        if let Some(&other) = self.folded.get(&folded) {
            let other = &self.parts[other];
            return Err(Error::msg(format!(
                "partition keys {:?} and {:?} differ only in case: on a case-insensitive \
                 file system (macOS, Windows) both are the file {}, so they are refused \
                 on every system, for the output to be the same everywhere; make the \
                 keys' case uniform (e.g. lowercase them) before making the keys",
                other.key.as_str(),
                key.as_str(),
                other.path.display(),
            ))
            .with_path(&path));
        }
        if self.parts.len() >= self.max_partitions {
            return Err(Error::msg(format!(
                "partition key {:?} would be partition {} of a sink allowed {} \
                 (max_partitions): each partition keeps a file open until the run \
                 ends, and open files are limited (ulimit -n); raise the limit with \
                 `max_partitions(n)` (and the open-file limit if need be), or \
                 partition by a key with fewer values",
                key.as_str(),
                self.parts.len() + 1,
                self.max_partitions,
            ))
            .with_path(&path));
        }
        claim_output(&path)?;
        let file = AtomicFile::create_one_of_many(&path, PART_BUFFER)?;
        let writer = W::open(&self.format, OutputFile::Replace(file))?;
        let i = self.parts.len();
        self.keys.insert(key.clone(), i);
        self.folded.insert(folded, i);
        self.parts.push(Part { key, path, writer });
        Ok(i)
    }
}

impl<T, W, C> BatchWriter<Keyed<T>> for Partitions<T, W, C>
where
    T: Send + 'static,
    W: PartWriter<T, Config = C>,
    C: Send + 'static,
{
    fn write(&mut self, batch: Batch<Keyed<T>>) -> Result<()> {
        // Each record goes to its file as it comes: the order within a file is
        // the order of the stream.
        for Keyed { key, record } in batch {
            let i = match self.last {
                Some(i) if self.parts[i].key == key => i,
                _ => self.part(key)?,
            };
            self.last = Some(i);
            self.parts[i].writer.write(&record)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let Partitions { parts, dir, .. } = *self;
        let prepared = Prepared {
            files: prepare::<T, W>(parts)?,
            dir,
        };
        match current() {
            Some(run) => {
                run.stage(Box::new(prepared));
                Ok(())
            }
            None => Box::new(prepared).commit(),
        }
    }
}

/// Flushes and syncs every partition's temporary; on an error, the ones not
/// yet prepared and those prepared are all removed.
fn prepare<T, W: PartWriter<T>>(parts: Vec<Part<W>>) -> Result<Vec<AtomicFile>> {
    let mut files = Vec::with_capacity(parts.len());
    for part in parts {
        let OutputFile::Replace(mut file) = part.writer.into_output()? else {
            unreachable!("partitions are written to atomic files")
        };
        file.prepare()?;
        files.push(file);
    }
    Ok(files)
}

/// Every partition file of a finished writer, written and synced, waiting for
/// the run's commit. Dropped without it (the run failed or was cancelled
/// after the sink finished), it removes the temporaries, then the directory
/// if the sink created it.
#[derive(Debug)]
struct Prepared {
    /// Declared before `dir`: dropped first.
    files: Vec<AtomicFile>,
    dir: OutputDir,
}

impl Staged for Prepared {
    fn describe(&self) -> String {
        format!(
            "{} ({} partition files)",
            self.dir.path.display(),
            self.files.len()
        )
    }

    fn commit(self: Box<Self>) -> Result<()> {
        let Prepared { files, mut dir } = *self;
        let total = files.len();
        for (done, file) in files.into_iter().enumerate() {
            // On an error the files not renamed are dropped (removed) with
            // the iterator; the directory holds the ones that were.
            file.rename().map_err(|e| {
                Error::msg(format!(
                    "{e} ({done} of the {total} partition files were committed before it, \
                     the others were not)"
                ))
            })?;
        }
        sync_dir(&dir.path);
        dir.keep();
        Ok(())
    }
}

/// A partitioned sink's output directory. Dropped while it holds a directory
/// the sink created (the run did not commit), it removes it if it is empty.
#[derive(Debug)]
struct OutputDir {
    path: PathBuf,
    /// Created by this sink and not committed yet.
    created: bool,
}

impl OutputDir {
    fn open(path: PathBuf) -> Result<OutputDir> {
        let created = match fs::metadata(&path) {
            Ok(m) if m.is_dir() => false,
            Ok(_) => {
                return Err(Error::config(
                    "the output path of a partitioned sink is not a directory",
                )
                .with_path(&path));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(&path)?,
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(OutputDir { path, created })
    }

    /// The run committed: the directory stays.
    fn keep(&mut self) {
        self.created = false;
    }
}

/// Creates the directory `path` (not its parents); false when another process
/// made it first.
fn create_dir(path: &Path) -> Result<bool> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::create_dir(path) {
        Ok(()) => {
            sync_dir(parent);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::config(format!(
            "the directory {} does not exist (a partitioned sink creates its output \
             directory, not the ones above it)",
            parent.display()
        ))
        .with_path(path)),
        Err(e) => Err(Error::io(path, e)),
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.created {
            // Best effort, and only when empty: never anything put there since.
            let _ = fs::remove_dir(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// One number a line: the simplest format.
    struct Lines(OutputFile);

    impl PartWriter<u32> for Lines {
        type Config = ();

        fn open(_: &(), out: OutputFile) -> Result<Self> {
            Ok(Lines(out))
        }

        fn write(&mut self, record: &u32) -> Result<()> {
            writeln!(self.0, "{record}").map_err(|e| self.0.io_error(e))
        }

        fn into_output(self) -> Result<OutputFile> {
            Ok(self.0)
        }
    }

    type Writer = Partitions<u32, Lines, ()>;

    fn open(dir: &Path, max_partitions: usize) -> Result<Writer> {
        Partitions::open(PartitionsConfig {
            dir: dir.to_path_buf(),
            extension: "txt",
            max_partitions,
            format: (),
        })
    }

    fn batch(records: &[(&str, u32)]) -> Batch<Keyed<u32>> {
        records
            .iter()
            .map(|(k, x)| Keyed::new(PartitionKey::new(*k).unwrap(), *x))
            .collect()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn outside_a_run_finish_renames_every_file_into_place() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut w = open(&out, 8).unwrap();
        assert!(out.is_dir(), "made when opened");
        w.write(batch(&[("a", 1), ("b", 2), ("a", 3)])).unwrap();
        w.write(batch(&[("b", 4), ("a", 5)])).unwrap();
        let names = entries(&out);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names.iter().all(|n| n.ends_with(".dataflare-tmp")),
            "{names:?}"
        );
        Box::new(w).finish().unwrap();
        assert_eq!(entries(&out), ["a.txt", "b.txt"]);
        assert_eq!(fs::read_to_string(out.join("a.txt")).unwrap(), "1\n3\n5\n");
        assert_eq!(fs::read_to_string(out.join("b.txt")).unwrap(), "2\n4\n");
    }

    #[test]
    fn abandoned_partitions_remove_their_temporaries_and_the_directory_they_made() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut w = open(&out, 8).unwrap();
        w.write(batch(&[("a", 1), ("b", 2)])).unwrap();
        drop(w);
        assert!(!out.exists());

        // A directory that was there stays, with what it held.
        fs::create_dir(&out).unwrap();
        fs::write(out.join("a.txt"), "old\n").unwrap();
        let mut w = open(&out, 8).unwrap();
        w.write(batch(&[("a", 1), ("b", 2)])).unwrap();
        drop(w);
        assert_eq!(entries(&out), ["a.txt"]);
        assert_eq!(fs::read_to_string(out.join("a.txt")).unwrap(), "old\n");
    }

    #[test]
    fn prepared_partitions_dropped_without_their_commit_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut w = open(&out, 8).unwrap();
        w.write(batch(&[("a", 1), ("b", 2)])).unwrap();
        let Partitions { parts, dir, .. } = w;
        let prepared = Prepared {
            files: prepare::<u32, Lines>(parts).unwrap(),
            dir,
        };
        assert_eq!(
            prepared.describe(),
            format!("{} (2 partition files)", out.display())
        );
        drop(prepared);
        assert!(!out.exists(), "the run failed after the sink finished");
    }

    #[test]
    fn a_key_too_many_and_keys_differing_in_case_are_refused_before_opening() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let mut w = open(&out, 2).unwrap();
        let e = w
            .write(batch(&[("a", 1), ("b", 2), ("a", 3), ("c", 4)]))
            .unwrap_err();
        assert_eq!(e.path(), Some(out.join("c.txt").as_path()));
        assert!(!e.is_record_level());
        let e = w.write(batch(&[("A", 5)])).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"a\" and \"A\" differ only in case"),
            "{e}"
        );
        assert_eq!(entries(&out).len(), 2, "only a's and b's temporaries");
    }
}
