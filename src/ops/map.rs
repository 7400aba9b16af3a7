use std::fmt;

use super::BatchOp;
use crate::Result;

/// Replaces each record with the result of a closure.
///
/// Created by [`Pipeline::map`](crate::Pipeline::map).
pub struct Map<F> {
    f: F,
}

impl<F> Map<F> {
    pub(crate) fn new(f: F) -> Self {
        Map { f }
    }
}

impl<T, U, F> BatchOp<T> for Map<F>
where
    F: FnMut(T) -> U + Send + 'static,
{
    type Out = U;

    fn apply(&mut self, records: Vec<T>) -> Result<Vec<U>> {
        // `collect` reuses the input allocation when `T` and `U` have the same layout.
        Ok(records.into_iter().map(&mut self.f).collect())
    }
}

impl<F> fmt::Debug for Map<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").finish_non_exhaustive()
    }
}
