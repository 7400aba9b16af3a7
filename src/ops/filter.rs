use std::fmt;

use super::BatchOp;
use crate::Result;

/// Keeps the records for which a predicate is true.
///
/// Created by [`Pipeline::filter`](crate::Pipeline::filter).
pub struct Filter<F> {
    f: F,
}

impl<F> Filter<F> {
    pub(crate) fn new(f: F) -> Self {
        Filter { f }
    }
}

impl<T, F> BatchOp<T> for Filter<F>
where
    F: FnMut(&T) -> bool + Send + 'static,
{
    type Out = T;

    fn apply(&mut self, mut records: Vec<T>) -> Result<Vec<T>> {
        records.retain(|r| (self.f)(r));
        Ok(records)
    }
}

impl<F> fmt::Debug for Filter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter").finish_non_exhaustive()
    }
}
