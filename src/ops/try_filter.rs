use std::fmt;

use super::TryOp;
use crate::{BoxError, Result};

/// Keeps the records for which a fallible predicate returns true.
///
/// Created by [`Pipeline::try_filter`](crate::Pipeline::try_filter).
pub struct TryFilter<F> {
    f: F,
}

impl<F> TryFilter<F> {
    pub(crate) fn new(f: F) -> Self {
        TryFilter { f }
    }
}

impl<T, E, F> TryOp<T> for TryFilter<F>
where
    F: FnMut(&T) -> Result<bool, E> + Send + 'static,
    E: Into<BoxError>,
{
    type Out = T;
    type Partial = bool;

    fn try_apply(&mut self, record: &T) -> Result<bool, BoxError> {
        (self.f)(record).map_err(Into::into)
    }

    fn emit(&mut self, record: T, keep: bool, out: &mut Vec<T>) {
        if keep {
            out.push(record);
        }
    }
}

impl<F> fmt::Debug for TryFilter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryFilter").finish_non_exhaustive()
    }
}
