use std::fmt;

use super::TryOp;
use crate::{BoxError, Result};

/// Replaces each record with the result of a fallible closure.
///
/// Created by [`Pipeline::try_map`](crate::Pipeline::try_map).
pub struct TryMap<F> {
    f: F,
}

impl<F> TryMap<F> {
    pub(crate) fn new(f: F) -> Self {
        TryMap { f }
    }
}

impl<T, U, E, F> TryOp<T> for TryMap<F>
where
    F: FnMut(&T) -> Result<U, E> + Send + 'static,
    E: Into<BoxError>,
{
    type Out = U;
    type Partial = U;

    fn try_apply(&mut self, record: &T) -> Result<U, BoxError> {
        (self.f)(record).map_err(Into::into)
    }

    fn emit(&mut self, _record: T, value: U, out: &mut Vec<U>) {
        out.push(value);
    }
}

impl<F> fmt::Debug for TryMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryMap").finish_non_exhaustive()
    }
}
