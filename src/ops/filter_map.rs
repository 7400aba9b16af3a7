use std::fmt;

use super::BatchOp;
use crate::Result;

/// Maps each record to zero or one record.
///
/// Created by [`Pipeline::filter_map`](crate::Pipeline::filter_map).
pub struct FilterMap<F> {
    f: F,
}

impl<F> FilterMap<F> {
    pub(crate) fn new(f: F) -> Self {
        FilterMap { f }
    }
}

impl<T, U, F> BatchOp<T> for FilterMap<F>
where
    F: FnMut(T) -> Option<U> + Send + 'static,
{
    type Out = U;

    fn apply(&mut self, records: Vec<T>) -> Result<Vec<U>> {
        Ok(records.into_iter().filter_map(&mut self.f).collect())
    }
}

impl<F> fmt::Debug for FilterMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterMap").finish_non_exhaustive()
    }
}
