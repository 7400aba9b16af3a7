use std::fmt;

use super::BatchOp;
use crate::Result;

/// Maps each record to any number of records, in order.
///
/// Created by [`Pipeline::flat_map`](crate::Pipeline::flat_map).
pub struct FlatMap<F> {
    f: F,
}

impl<F> FlatMap<F> {
    pub(crate) fn new(f: F) -> Self {
        FlatMap { f }
    }
}

impl<T, I, F> BatchOp<T> for FlatMap<F>
where
    F: FnMut(T) -> I + Send + 'static,
    I: IntoIterator,
{
    type Out = I::Item;

    fn apply(&mut self, records: Vec<T>) -> Result<Vec<I::Item>> {
        Ok(records.into_iter().flat_map(&mut self.f).collect())
    }
}

impl<F> fmt::Debug for FlatMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatMap").finish_non_exhaustive()
    }
}
