use std::fmt;

use super::TryOp;
use crate::{BoxError, Result};

/// Maps each record to any number of records with a fallible closure.
///
/// Created by [`Pipeline::try_flat_map`](crate::Pipeline::try_flat_map).
pub struct TryFlatMap<F> {
    f: F,
}

impl<F> TryFlatMap<F> {
    pub(crate) fn new(f: F) -> Self {
        TryFlatMap { f }
    }
}

impl<T, I, E, F> TryOp<T> for TryFlatMap<F>
where
    F: FnMut(&T) -> Result<I, E> + Send + 'static,
    I: IntoIterator,
    E: Into<BoxError>,
{
    type Out = I::Item;
    type Partial = I;

    fn try_apply(&mut self, record: &T) -> Result<I, BoxError> {
        (self.f)(record).map_err(Into::into)
    }

    fn emit(&mut self, _record: T, items: I, out: &mut Vec<I::Item>) {
        out.extend(items);
    }
}

impl<F> fmt::Debug for TryFlatMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryFlatMap").finish_non_exhaustive()
    }
}
