//! The run's commit: outputs prepared by their sinks (written, flushed and
//! synced to a temporary, or a transaction made ready) wait here until the
//! whole run has succeeded, then all commit together.

use std::fmt;
use std::sync::Mutex;

use super::Role;
use crate::{Error, Result};

/// An output prepared for commit: everything is written and durable, and only
/// the last step (a rename into place, a database `COMMIT`) remains. Dropped
/// without [`commit`](Staged::commit), it abandons the output (the temporary
/// file is removed, the transaction rolled back).
pub(crate) trait Staged: Send + fmt::Debug {
    /// The destination, for messages (a path).
    fn describe(&self) -> String;

    /// True when the commit step itself can still fail for reasons other than
    /// a broken disk (a database refusing a `COMMIT`): such outputs commit
    /// first, renames last, so a late refusal leaves the fewest outputs
    /// committed.
    fn may_refuse_commit(&self) -> bool {
        false
    }

    /// Makes the output visible: the destination now holds it.
    fn commit(self: Box<Self>) -> Result<()>;
}

/// The outputs of one run waiting for its commit.
#[derive(Debug, Default)]
pub(crate) struct Commits {
    staged: Mutex<Vec<(Role, Box<dyn Staged>)>>,
}

impl Commits {
    pub(crate) fn push(&self, role: Role, output: Box<dyn Staged>) {
        self.lock().push((role, output));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Role, Box<dyn Staged>)>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits what the run staged: every output when the run succeeded;
    /// otherwise only dead letters, if `keep_dead_letters` (a failed run's:
    /// they explain the failure), the rest being abandoned. Outputs that may refuse their
    /// commit go first, renames last.
    ///
    /// There is no atomicity across files or resources: when one commit fails,
    /// those before it stay committed, those after it are abandoned, and the
    /// error names both.
    pub(crate) fn commit(&self, run_succeeded: bool, keep_dead_letters: bool) -> Result<()> {
        let mut staged = std::mem::take(&mut *self.lock());
        if !run_succeeded {
            staged.retain(|(role, _)| keep_dead_letters && *role == Role::DeadLetters);
        }
        staged.sort_by_key(|(_, output)| !output.may_refuse_commit());
        let mut committed = Vec::new();
        let mut staged = staged.into_iter();
        while let Some((_, output)) = staged.next() {
            let what = output.describe();
            if let Err(cause) = output.commit() {
                let abandoned = staged.map(|(_, o)| o.describe()).collect();
                return Err(Error::other(CommitFailed {
                    failed: what,
                    committed,
                    abandoned,
                    cause,
                }));
            }
            committed.push(what);
        }
        Ok(())
    }
}

/// A commit step failed after other outputs of the run may have committed.
#[derive(Debug)]
struct CommitFailed {
    failed: String,
    committed: Vec<String>,
    abandoned: Vec<String>,
    cause: Error,
}

impl fmt::Display for CommitFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not commit {}: {}", self.failed, self.cause)?;
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            " (already committed: {}; not committed: {})",
            list(&self.committed),
            list(&self.abandoned)
        )
    }
}

impl std::error::Error for CommitFailed {}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[derive(Debug)]
    struct Fake {
        name: &'static str,
        refuses: bool,
        fails: bool,
        log: Arc<Mutex<Vec<String>>>,
        committed: Arc<AtomicBool>,
    }

    impl Staged for Fake {
        fn describe(&self) -> String {
            self.name.to_string()
        }
        fn may_refuse_commit(&self) -> bool {
            self.refuses
        }
        fn commit(self: Box<Self>) -> Result<()> {
            self.log.lock().unwrap().push(self.name.to_string());
            if self.fails {
                return Err(Error::msg("disk gone"));
            }
            self.committed.store(true, Ordering::Relaxed);
            Ok(())
        }
    }

    fn fake(
        log: &Arc<Mutex<Vec<String>>>,
        name: &'static str,
        refuses: bool,
        fails: bool,
    ) -> Box<Fake> {
        Box::new(Fake {
            name,
            refuses,
            fails,
            log: log.clone(),
            committed: Arc::default(),
        })
    }

    #[test]
    fn what_may_refuse_commits_first_and_a_failure_names_both_sides() {
        let log = Arc::default();
        let commits = Commits::default();
        commits.push(Role::default(), fake(&log, "a.csv", false, false));
        commits.push(Role::default(), fake(&log, "db", true, false));
        commits.push(Role::DeadLetters, fake(&log, "rej.jsonl", false, true));
        commits.push(Role::default(), fake(&log, "b.csv", false, false));
        let e = commits.commit(true, true).unwrap_err().to_string();
        assert_eq!(*log.lock().unwrap(), ["db", "a.csv", "rej.jsonl"]);
        assert_eq!(
            e,
            "could not commit rej.jsonl: disk gone (already committed: db, a.csv; not committed: b.csv)"
        );
    }

    #[test]
    fn a_failed_run_commits_only_its_dead_letters() {
        let log = Arc::default();
        let commits = Commits::default();
        commits.push(Role::default(), fake(&log, "out.csv", false, false));
        commits.push(Role::DeadLetters, fake(&log, "rej.jsonl", false, false));
        commits.commit(false, true).unwrap();
        assert_eq!(*log.lock().unwrap(), ["rej.jsonl"]);
    }
}
