//! `tee`: every record to every branch.

use super::fan_out::Split;
use crate::{Batch, Error};

/// Shares out a batch whole to every output: a clone for each but the last,
/// which gets the batch itself.
pub(crate) struct Tee;

impl<T: Clone + Send + 'static> Split<T> for Tee {
    fn split(
        &mut self,
        batch: Batch<T>,
        outputs: &mut [Option<Batch<T>>],
        _rejects: &mut Vec<(Error, Option<String>)>,
    ) {
        if let Some((last, rest)) = outputs.split_last_mut() {
            for output in rest {
                *output = Some(batch.clone());
            }
            *last = Some(batch);
        }
    }
}
