use std::fmt;

use super::BatchOp;
use crate::Result;

/// Calls a closure on a reference to each record, passing the records on unchanged.
///
/// Created by [`Pipeline::inspect`](crate::Pipeline::inspect).
pub struct Inspect<F> {
    f: F,
}

impl<F> Inspect<F> {
    pub(crate) fn new(f: F) -> Self {
        Inspect { f }
    }
}

impl<T, F> BatchOp<T> for Inspect<F>
where
    F: FnMut(&T) + Send + 'static,
{
    type Out = T;

    fn apply(&mut self, records: Vec<T>) -> Result<Vec<T>> {
        records.iter().for_each(&mut self.f);
        Ok(records)
    }
}

impl<F> fmt::Debug for Inspect<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspect").finish_non_exhaustive()
    }
}
