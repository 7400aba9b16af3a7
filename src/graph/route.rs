//! `partition` and `route`: every record to exactly one branch.

use std::fmt;

use super::fan_out::Split;
use crate::batch::Meta;
use crate::{Batch, Error};

/// Sends each record to the output its key names; a key out of range is a
/// record error, for the stage's policy.
pub(crate) struct Route<F> {
    pub(crate) key: F,
}

impl<T, F> Split<T> for Route<F>
where
    T: fmt::Debug + Send + 'static,
    F: FnMut(&T) -> usize + Send + 'static,
{
    fn split(
        &mut self,
        batch: Batch<T>,
        outputs: &mut [Option<Batch<T>>],
        rejects: &mut Vec<(Error, Option<String>)>,
    ) {
        let n = outputs.len();
        let (records, meta) = batch.into_parts();
        let mut split: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
        for record in records {
            let i = (self.key)(&record);
            match split.get_mut(i) {
                Some(records) => records.push(record),
                None => rejects.push((
                    Error::msg(format!(
                        "route: the key function sent a record to branch {i}, but there are \
                         only {n} (0 to {}); send it to a branch that exists, or filter it out \
                         before the route",
                        n - 1
                    ))
                    .at_record_level(),
                    Some(format!("{record:?}")),
                )),
            }
        }
        fill(outputs, split, meta);
    }
}

/// Sends each record for which the predicate holds to output 0, the others
/// to output 1.
pub(crate) struct Partition<F> {
    pub(crate) predicate: F,
}

impl<T, F> Split<T> for Partition<F>
where
    T: Send + 'static,
    F: FnMut(&T) -> bool + Send + 'static,
{
    fn split(
        &mut self,
        batch: Batch<T>,
        outputs: &mut [Option<Batch<T>>],
        _rejects: &mut Vec<(Error, Option<String>)>,
    ) {
        let (records, meta) = batch.into_parts();
        let (yes, no): (Vec<T>, Vec<T>) = records.into_iter().partition(&mut self.predicate);
        fill(outputs, vec![yes, no], meta);
    }
}

/// The non-empty shares become the outputs' batches, each with its share of
/// the input's budget lease (rejected records give theirs back).
fn fill<T>(outputs: &mut [Option<Batch<T>>], split: Vec<Vec<T>>, mut meta: Meta) {
    let mut lease = meta.take_lease();
    let mut left = meta.len();
    for (output, records) in outputs.iter_mut().zip(split) {
        if !records.is_empty() {
            let share = lease.as_mut().map(|l| l.split_records(records.len(), left));
            left -= records.len();
            *output = Some(Batch::with_lease(records, meta.seq, share));
        }
    }
}
