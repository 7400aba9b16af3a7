//! The checks of partitioned sinks: one file per key in a directory.

use super::*;
use crate::sink::{Keyed, PartitionKey};

/// The keys the kit gives records: record `i` goes to `KEYS[i % 3]`.
const KEYS: [&str; 3] = ["p0", "p1", "p2"];

/// A file in a pre-existing output directory that no run of the kit writes.
const STRANGER: &str = "stranger";

/// Checks a partitioned file sink, which writes each record to the file of
/// its key in a directory and commits every file when the run completes, and
/// only then. `make(dir)` makes the sink writing into the directory `dir`,
/// `read_back(file)` reads one file it wrote, and `sample(i)` is the `i`-th
/// record of a run; the kit keys record `i` with `p0`, `p1` or `p2` (`i % 3`).
/// A key's file must be named after it: the key, or the key and an
/// extension (`p0.csv`). Each check runs in an empty directory of its own,
/// `dir` being a directory in it:
///
/// 1. *empty run*: completes; `dir` is made and left empty;
/// 2. *round trip*: [`RECORDS`] records (several batches): `dir` holds one
///    file per key and nothing else (no temporary file), each reading back as
///    its key's records in order, and `records_out` counts them all;
/// 3. *failing upstream*: a source failing after some records fails the run;
///    `dir` is not left behind, or, if it existed, holds what it held byte
///    for byte (a file of a key the run writes, and one of no key);
/// 4. *cancelled*: a run stopped (`run_until`) after the sink has taken
///    records: as 3;
/// 5. *unwritable destination*: `dir` in a missing directory fails the run
///    before any record is read, creating nothing.
///
/// Every run's accounting must balance and every run must return.
///
/// # Panics
///
/// When a check fails, naming `name` and the check.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dataflare::csv;
/// use dataflare::testkit::kit;
///
/// kit::check_partitioned_sink(
///     "csv::write_partitioned",
///     |i| i as u64,
///     |dir| csv::write_partitioned::<u64>(dir),
///     |file| {
///         let text = std::fs::read_to_string(file).unwrap();
///         text.lines().map(|line| line.parse().unwrap()).collect()
///     },
/// )
/// .await;
/// # }
/// ```
pub async fn check_partitioned_sink<T, K>(
    name: &str,
    sample: impl Fn(usize) -> T,
    mut make: impl FnMut(&Path) -> K,
    mut read_back: impl FnMut(&Path) -> Vec<T>,
) where
    T: Clone + PartialEq + Debug + Send + 'static,
    K: Sink<Batch<Keyed<T>>, Error = Error> + Send + 'static,
{
    let all: Vec<T> = (0..RECORDS).map(&sample).collect();
    let keyed: Vec<Keyed<T>> = all
        .iter()
        .enumerate()
        .map(|(i, record)| Keyed::new(key(i), record.clone()))
        .collect();
    let scratch = Scratch::new(name);

    let c = Check::new(name, "empty run");
    let dir = scratch.dir("empty");
    let dest = dir.join(OUTPUT);
    let run = Pipeline::from(source::iter(Vec::<Keyed<T>>::new()))
        .to(make(&dest))
        .run_to_report();
    let report = c.within(run).await;
    c.completed(&report);
    c.counts(&report, "records_out", report.records_out(), 0);
    c.left(&dir, &[OUTPUT]);
    c.left(&dest, &[]);

    let c = Check::new(name, "round trip");
    let dir = scratch.dir("round-trip");
    let dest = dir.join(OUTPUT);
    let run = Pipeline::from(source::iter(keyed.clone()).batch_size(SINK_BATCH))
        .to(make(&dest))
        .run_to_report();
    let report = c.within(run).await;
    c.completed(&report);
    c.counts(&report, "records_out", report.records_out(), RECORDS);
    c.left(&dir, &[OUTPUT]);
    let names = entries(&dest).unwrap_or_else(|e| c.fail(format!("cannot list the output: {e}")));
    c.ensure(names.len() == KEYS.len(), || {
        format!("the output holds {names:?}, not one file for each of {KEYS:?}")
    });
    let files: Vec<String> = KEYS
        .iter()
        .map(|key| {
            let file = names
                .iter()
                .find(|n| *n == key || n.starts_with(&format!("{key}.")));
            file.cloned()
                .unwrap_or_else(|| c.fail(format!("no file of key {key:?} in {names:?}")))
        })
        .collect();
    for (k, file) in files.iter().enumerate() {
        let want: Vec<T> = all.iter().skip(k).step_by(KEYS.len()).cloned().collect();
        let what = format!("the records read back from {file}");
        c.same_records(&what, &read_back(&dest.join(file)), &want);
    }

    let earlier = files[0].clone();
    check_leaves_nothing(
        name,
        &scratch,
        &keyed,
        "into an existing directory",
        &mut make,
        |c, dest| c.fill(dest, &earlier),
        |c, dir, dest, before| c.unchanged(dir, dest, before.map(Vec::as_slice)),
    )
    .await;
}

fn key(i: usize) -> PartitionKey {
    PartitionKey::new(KEYS[i % KEYS.len()]).expect("the kit's keys are valid")
}

impl Check<'_> {
    /// Makes the directory `dest` with what an earlier run left: `file`, the
    /// file of a key the run writes, and a file of no key; returns their names.
    #[track_caller]
    fn fill(&self, dest: &Path, file: &str) -> Vec<String> {
        std::fs::create_dir(dest)
            .unwrap_or_else(|e| self.fail(format!("cannot create {}: {e}", dest.display())));
        let mut names = vec![file.to_string(), STRANGER.to_string()];
        names.sort();
        for name in &names {
            self.write(&dest.join(name), EXISTING);
        }
        names
    }

    /// Checks that a failed or cancelled run left no trace: `dest` is gone
    /// from `dir`, or holds exactly the files `before` named, unchanged.
    #[track_caller]
    fn unchanged(&self, dir: &Path, dest: &Path, before: Option<&[String]>) {
        let Some(before) = before else {
            return self.left(dir, &[]);
        };
        let names: Vec<&str> = before.iter().map(String::as_str).collect();
        self.left(dest, &names);
        for name in names {
            let bytes = self.read(&dest.join(name));
            self.ensure(bytes == EXISTING, || {
                format!(
                    "{name} was changed: it holds {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            });
        }
    }
}
