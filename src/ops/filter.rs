use std::fmt;
use std::sync::Arc;

use super::fused::{Step, StepState, step_bookkeeping};
use crate::metrics::StageMetrics;

/// Keeps the records for which a predicate is true.
///
/// Created by [`Pipeline::filter`](crate::Pipeline::filter).
pub struct Filter<F> {
    f: F,
    state: StepState,
}

impl<F> Filter<F> {
    pub(crate) fn new(f: F, stage: Arc<StageMetrics>) -> Self {
        Filter {
            f,
            state: StepState::new(stage),
        }
    }
}

impl<T, F> Step<T> for Filter<F>
where
    F: FnMut(&T) -> bool + Send + 'static,
    T: Send + 'static,
{
    type Out = T;

    fn apply<'a, const COUNT: bool, I>(&'a mut self, records: I) -> impl Iterator<Item = T> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        let (f, state) = (&mut self.f, &self.state);
        records.filter(move |r| {
            let keep = state.call(|| f(r));
            state.count::<COUNT>(keep as usize);
            keep
        })
    }

    fn starts_with_filter(&self) -> bool {
        true
    }

    fn admit(&mut self, record: &T) -> bool {
        let (f, state) = (&mut self.f, &self.state);
        let keep = state.call(|| f(record));
        state.count::<true>(keep as usize);
        keep
    }

    fn apply_after_filter<'a, const COUNT: bool, I>(
        &'a mut self,
        records: I,
    ) -> impl Iterator<Item = T> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        records
    }

    step_bookkeeping!(changes_count);
}

impl<F> fmt::Debug for Filter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter").finish_non_exhaustive()
    }
}
