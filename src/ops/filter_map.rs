use std::fmt;
use std::sync::Arc;

use super::fused::{Step, StepState, step_bookkeeping};
use crate::metrics::StageMetrics;

/// Maps each record to zero or one record.
///
/// Created by [`Pipeline::filter_map`](crate::Pipeline::filter_map).
pub struct FilterMap<F> {
    f: F,
    state: StepState,
}

impl<F> FilterMap<F> {
    pub(crate) fn new(f: F, stage: Arc<StageMetrics>) -> Self {
        FilterMap {
            f,
            state: StepState::new(stage),
        }
    }
}

impl<T, U, F> Step<T> for FilterMap<F>
where
    F: FnMut(T) -> Option<U> + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    fn apply<'a, const COUNT: bool, I>(&'a mut self, records: I) -> impl Iterator<Item = U> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        let (f, state) = (&mut self.f, &self.state);
        records.filter_map(move |r| {
            let out = state.call(|| f(r));
            state.count::<COUNT>(out.is_some() as usize);
            out
        })
    }

    step_bookkeeping!(changes_count);
}

impl<F> fmt::Debug for FilterMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilterMap").finish_non_exhaustive()
    }
}
