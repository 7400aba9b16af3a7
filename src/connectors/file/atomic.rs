use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::claims::resolve_symlinks;
use crate::runtime::{Staged, current};
use crate::{Error, Result};

/// The end of every temporary file's name: `.NAME.PID-N.dataflare-tmp`, in the
/// destination's directory.
const TEMP_SUFFIX: &str = ".dataflare-tmp";

/// The write buffer of a single output file.
const BUFFER: usize = 256 * 1024;

/// An output file written under a temporary name in the destination's
/// directory and renamed into place when the run commits.
///
/// Until then the destination is untouched: a failed or cancelled run leaves no
/// partial file and never clobbers an existing good one. Dropping without
/// committing removes the temporary file.
///
/// The temporary is named after the destination (`.out.csv.PID-N.dataflare-tmp`)
/// and locked (`flock`) while its writer lives, so the next run to the same
/// destination can tell one left by a killed process (unlocked, its process
/// gone: removed) from one another live process is writing (locked: left
/// alone). A destination that is a symbolic link is written through: its
/// target is replaced, the link stays. A replaced file keeps its permissions,
/// but not its owner (the new file is the writer's), and other hard links to
/// it keep the old content: the new file is a new inode, as with any atomic
/// replace by rename.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    /// The path as given, for messages.
    path: PathBuf,
    /// The file replaced: `path`, or the file its symbolic links lead to.
    target: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
    /// After [`prepare`](AtomicFile::prepare): written and synced, still locked.
    prepared: Option<File>,
}

impl AtomicFile {
    /// Checks the destination, removes temporaries that killed runs left for
    /// it, and creates the temporary file. Fails with an error naming `path`
    /// when it is a directory or its directory is missing or not writable.
    pub(crate) fn create(path: &Path) -> Result<AtomicFile> {
        Self::create_with(path, BUFFER, true)
    }

    /// As [`create`](AtomicFile::create), for one of many files a sink writes
    /// into one directory at once: a write buffer of `buffer` bytes (many
    /// files are open together), and no look for stale temporaries, which the
    /// sink does once for the whole directory ([`remove_stale_temps`]).
    pub(crate) fn create_one_of_many(path: &Path, buffer: usize) -> Result<AtomicFile> {
        Self::create_with(path, buffer, false)
    }

    fn create_with(path: &Path, buffer: usize, clean: bool) -> Result<AtomicFile> {
        let target = resolve_symlinks(path).map_err(|e| Error::io(path, e))?;
        if target.is_dir() {
            return Err(Error::config("the output path is a directory").with_path(path));
        }
        let name = target
            .file_name()
            .ok_or_else(|| Error::config("the output path has no file name").with_path(path))?
            .to_string_lossy()
            .into_owned();
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Error::config(format!(
                "the output directory {} does not exist",
                dir.display()
            ))
            .with_path(path));
        }
        if clean {
            remove_stale_temps(&dir, |n| n == name);
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = dir.join(format!(
            ".{name}.{}-{}{TEMP_SUFFIX}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(path, e))?;
        let mut atomic = AtomicFile {
            path: path.to_path_buf(),
            target,
            temp,
            file: None,
            prepared: None,
        };
        // Ours for as long as this process holds it. Locking fails only where
        // the file system has no locks (some network mounts): then a live
        // temporary is still recognised by its process id.
        let _ = file.try_lock();
        if let Ok(meta) = fs::metadata(&atomic.target) {
            // Replacing: the new file gets the old one's permissions.
            file.set_permissions(meta.permissions())
                .map_err(|e| Error::io(path, e))?;
        }
        atomic.file = Some(BufWriter::with_capacity(buffer, file));
        Ok(atomic)
    }

    /// The destination path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and syncs the temporary file: all that is left is the rename.
    pub(crate) fn prepare(&mut self) -> Result<()> {
        if let Some(file) = self.file.take() {
            let file = file
                .into_inner()
                .map_err(|e| Error::io(&self.path, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(&self.path, e))?;
            self.prepared = Some(file);
        }
        Ok(())
    }

    /// Prepares the file and, within a run, hands it to the run to be renamed
    /// into place when every output of the run is ready ([`Staged`]); outside
    /// a run, renames it now.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.prepare()?;
        match current() {
            Some(run) => {
                run.stage(Box::new(self));
                Ok(())
            }
            None => self.rename_into_place(),
        }
    }

    /// Flushes, syncs and renames the temporary file into place now.
    #[cfg(test)]
    pub(crate) fn commit(mut self) -> Result<()> {
        self.prepare()?;
        self.rename_into_place()
    }

    fn rename_into_place(self) -> Result<()> {
        let dir = self.target.parent().map(Path::to_path_buf);
        self.rename()?;
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            sync_dir(&dir);
        }
        Ok(())
    }

    /// Renames the (prepared) temporary file into place, leaving the
    /// directory unsynced: a sink renaming many files into one directory
    /// syncs it once, after the last ([`sync_dir`]).
    pub(crate) fn rename(mut self) -> Result<()> {
        fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.path, e))?;
        // Renamed: nothing to remove any more; closing the file releases the lock.
        self.prepared = None;
        Ok(())
    }
}

impl Staged for AtomicFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.rename_into_place()
    }
}

/// Makes the renames into `dir` durable. Best effort: not every system can
/// sync a directory.
pub(crate) fn sync_dir(dir: &Path) {
    let _ = File::open(dir).and_then(|d| d.sync_all());
}

/// Removes the temporaries in `dir` that runs killed before they could clean
/// up left behind, for the destinations whose names `ours` accepts: named as
/// [`AtomicFile`] names them, not locked, and (where `/proc` tells) made by a
/// process that is gone. Never anything else.
pub(crate) fn remove_stale_temps(dir: &Path, ours: impl Fn(&str) -> bool) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        // `.NAME.PID-N.dataflare-tmp`, where NAME may hold dots and PID-N not.
        let Some(pid) = file_name
            .to_str()
            .and_then(|f| f.strip_prefix('.'))
            .and_then(|f| f.strip_suffix(TEMP_SUFFIX))
            .and_then(|f| f.rsplit_once('.'))
            .filter(|(name, _)| ours(name))
            .and_then(|(_, f)| f.split_once('-'))
            .filter(|(pid, n)| is_number(pid) && is_number(n))
            .map(|(pid, _)| pid)
        else {
            continue;
        };
        if process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() && fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted run");
        }
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// True when the process may be alive: `/proc/PID` exists, or there is no
/// `/proc` to ask (the lock alone decides then).
fn process_alive(pid: &str) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid).exists()
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until finished").write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("open until finished")
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until finished").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() | self.prepared.take().is_some() {
            // Not committed: the run failed or was cancelled. Best effort; the
            // destination itself was never touched.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dataflare-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn commit_renames_into_place_and_drop_leaves_nothing() {
        let dir = temp_dir("commit");
        let path = dir.join("out.txt");
        fs::write(&path, "old good data").unwrap();

        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old good data");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "temp file removed");

        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_destinations_fail_before_writing() {
        let dir = temp_dir("bad");
        let e = AtomicFile::create(&dir).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = AtomicFile::create(&dir.join("missing/out.csv")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(e.path(), Some(dir.join("missing/out.csv").as_path()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_keeps_its_permissions_and_a_symlink_is_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("perm");
        let path = dir.join("priv.jsonl");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let target = dir.join("data.csv");
        fs::write(&target, "old").unwrap();
        let link = dir.join("latest.csv");
        std::os::unix::fs::symlink("data.csv", &link).unwrap();
        let mut f = AtomicFile::create(&link).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&target).unwrap(), "new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temporaries_are_removed_but_live_ones_and_strangers_are_not() {
        let dir = temp_dir("stale");
        let path = dir.join("out.csv");
        // Left by a killed process (no such pid, no lock).
        let stale = dir.join(".out.csv.4000000000-0.dataflare-tmp");
        fs::write(&stale, "partial").unwrap();
        // Another live writer of the same destination (this process, locked).
        let live = AtomicFile::create(&path).unwrap();
        // Not ours, though it looks close.
        let strangers = [
            dir.join(".out.csv.4000000000-x.dataflare-tmp"),
            dir.join(".out.csvx.4000000000-0.dataflare-tmp"),
            dir.join("out.csv.4000000000-0.dataflare-tmp"),
        ];
        for s in &strangers {
            fs::write(s, "keep").unwrap();
        }
        assert!(
            !stale.exists(),
            "the first create removed the stale temporary"
        );
        fs::write(&stale, "partial").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        assert!(!stale.exists());
        assert!(
            live.temp.exists(),
            "a live writer's temporary is left alone"
        );
        for s in &strangers {
            assert!(s.exists(), "{} is not ours", s.display());
        }
        f.write_all(b"x").unwrap();
        f.commit().unwrap();
        drop(live);
        fs::remove_dir_all(&dir).unwrap();
    }
}
