use std::fmt;

use super::BatchOp;
use crate::Result;

/// Replaces the records of each batch at once (for work that wants the whole batch, such as a bulk lookup).
///
/// Created by [`Pipeline::map_batch`](crate::Pipeline::map_batch).
pub struct MapBatch<F> {
    f: F,
}

impl<F> MapBatch<F> {
    pub(crate) fn new(f: F) -> Self {
        MapBatch { f }
    }
}

impl<T, U, F> BatchOp<T> for MapBatch<F>
where
    F: FnMut(Vec<T>) -> Vec<U> + Send + 'static,
{
    type Out = U;

    fn apply(&mut self, records: Vec<T>) -> Result<Vec<U>> {
        Ok((self.f)(records))
    }
}

impl<F> fmt::Debug for MapBatch<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapBatch").finish_non_exhaustive()
    }
}
