//! `tee`: every record to every branch.

use super::fan_out::Split;
use crate::{Batch, Error};

/// Shares out a batch whole to every output: one batch shared by all (copy
/// on write), so a branch that only reads it pays no copy.
pub(crate) struct Tee;

impl<T: Clone + Send + Sync + 'static> Split<T> for Tee {
    fn split(
        &mut self,
        batch: Batch<T>,
        outputs: &mut [Option<Batch<T>>],
        _rejects: &mut Vec<(Error, Option<String>)>,
    ) {
        if outputs.len() == 1 {
            outputs[0] = Some(batch);
            return;
        }
        let copies = batch.share(outputs.len());
        for (output, copy) in outputs.iter_mut().zip(copies) {
            *output = Some(copy);
        }
    }
}
