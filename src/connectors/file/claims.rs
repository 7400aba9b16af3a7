//! The files a run reads and writes, compared by what they are, not by how
//! their paths are written: no output may be an input or another output.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::{Role, current};
use crate::{Error, Result};

/// What a file is, whatever path names it: an existing file's device and
/// inode (so symlinks and hard links compare equal), or for an output that
/// does not exist yet, its canonical directory and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg(not(unix))]
    Canonical(PathBuf),
    New(PathBuf, OsString),
}

/// Follows `path` through symbolic links to the file they finally name; a path
/// that is not a link (or does not exist) is returned as it is.
pub(crate) fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

impl FileId {
    /// The identity of a regular file, or of one to be created; `None` for what
    /// two roles may share harmlessly (`/dev/null`, a FIFO, a terminal) and for
    /// a file in a directory that does not exist (it cannot be opened anyway).
    fn of(path: &Path) -> io::Result<Option<FileId>> {
        let target = resolve_symlinks(path)?;
        match fs::metadata(&target) {
            Ok(m) if !m.is_file() => Ok(None),
            Ok(m) => Ok(Some(Self::existing(&target, &m)?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let name = target
                    .file_name()
                    .ok_or_else(|| io::Error::other("the path has no file name"))?;
                let dir = match target.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d,
                    _ => Path::new("."),
                };
                match fs::canonicalize(dir) {
                    Ok(dir) => Ok(Some(FileId::New(dir, name.to_owned()))),
                    // No directory: opening the file will say so.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(unix)]
    fn existing(_: &Path, m: &fs::Metadata) -> io::Result<FileId> {
        use std::os::unix::fs::MetadataExt;
        Ok(FileId::Inode(m.dev(), m.ino()))
    }

    #[cfg(not(unix))]
    fn existing(path: &Path, _: &fs::Metadata) -> io::Result<FileId> {
        fs::canonicalize(path).map(FileId::Canonical)
    }
}

#[derive(Debug)]
struct Claim {
    id: FileId,
    path: PathBuf,
    role: String,
    writes: bool,
}

/// The files one run has claimed so far.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    list: Mutex<Vec<Claim>>,
    refused: AtomicBool,
}

impl Claims {
    /// True once a claim was refused: the run must then commit nothing at
    /// all, not even dead letters, which may be the very file it refused.
    pub(crate) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    fn claim(&self, path: &Path, role: String, writes: bool) -> Result<()> {
        let Some(id) = FileId::of(path).map_err(|e| Error::io(path, e))? else {
            return Ok(());
        };
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = list.iter().find(|c| c.id == id && (c.writes || writes)) {
            self.refused.store(true, Ordering::Relaxed);
            let same = if other.path == path {
                String::new()
            } else {
                format!(" ({})", other.path.display())
            };
            return Err(Error::config(format!(
                "{} is {role}, but it is also {}{same}: the run would overwrite what it \
                 reads or writes; give each output a file of its own",
                path.display(),
                other.role,
            ))
            .with_path(path));
        }
        list.push(Claim {
            id,
            path: path.to_path_buf(),
            role,
            writes,
        });
        Ok(())
    }
}

/// Claims `path` as an input of the current run (if there is one): fails when
/// one of its outputs is the same file.
pub(crate) fn claim_input(path: &Path) -> Result<()> {
    match current() {
        Some(run) => run.claims().claim(path, "the input".to_string(), false),
        None => Ok(()),
    }
}

/// Claims `path` as an output of the current run (if there is one), in the
/// role its sink writes for: fails when the run already reads or writes the
/// same file.
pub(crate) fn claim_output(path: &Path) -> Result<()> {
    let Some(run) = current() else {
        return Ok(());
    };
    let role = match run.role() {
        Role::Output(stage) => format!("the output of stage {stage:?}"),
        Role::DeadLetters => "the dead-letter output".to_string(),
    };
    run.claims().claim(path, role, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_compare_by_the_file_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.csv");
        fs::write(&a, "x").unwrap();
        let claims = Claims::default();
        claims.claim(&a, "the input".into(), false).unwrap();
        // A second reader is fine.
        claims.claim(&a, "the input".into(), false).unwrap();

        #[cfg(unix)]
        {
            let link = dir.path().join("link.csv");
            std::os::unix::fs::symlink(&a, &link).unwrap();
            let e = claims.claim(&link, "the output".into(), true).unwrap_err();
            assert!(
                e.to_string()
                    .contains("is the output, but it is also the input"),
                "{e}"
            );
            let hard = dir.path().join("hard.csv");
            fs::hard_link(&a, &hard).unwrap();
            assert!(claims.claim(&hard, "the output".into(), true).is_err());
        }
        let dotted = dir.path().join(".").join("a.csv");
        assert!(claims.claim(&dotted, "the output".into(), true).is_err());

        // Two outputs that do not exist yet: the same directory and name.
        let new = dir.path().join("new.jsonl");
        claims.claim(&new, "the output".into(), true).unwrap();
        let again = dir.path().join("sub/../new.jsonl");
        fs::create_dir(dir.path().join("sub")).unwrap();
        let e = claims
            .claim(&again, "the dead-letter output".into(), true)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("is the dead-letter output, but it is also the output"),
            "{e}"
        );
        claims
            .claim(&dir.path().join("other.jsonl"), "the output".into(), true)
            .unwrap();
    }
}
