use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// An output file written under a temporary name in the destination's
/// directory and renamed into place by [`commit`](AtomicFile::commit).
///
/// Until then the destination is untouched: a failed or cancelled run leaves no
/// partial file and never clobbers an existing good one. Dropping without
/// committing removes the temporary file.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Checks the destination and creates the temporary file. Fails with an
    /// error naming `path` when it is a directory or its directory is missing or
    /// not writable.
    pub(crate) fn create(path: &Path) -> Result<AtomicFile> {
        if path.is_dir() {
            return Err(Error::config("the output path is a directory").with_path(path));
        }
        let name = path
            .file_name()
            .ok_or_else(|| Error::config("the output path has no file name").with_path(path))?;
        let dir = match path.parent() {
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
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = dir.join(format!(
            ".{}.{}-{}.dataflare-tmp",
            name.to_string_lossy(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            temp,
            file: Some(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// The destination path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes, syncs and renames the temporary file into place.
    pub(crate) fn commit(mut self) -> Result<()> {
        let file = self.file.take().expect("a file is present until commit");
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.path, e))?;
        drop(file);
        fs::rename(&self.temp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file
            .as_mut()
            .expect("open until commit")
            .write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
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
}
