use std::fmt;
use std::sync::Arc;

use super::fused::{Step, StepState, step_bookkeeping};
use crate::metrics::StageMetrics;

/// Replaces each record with the result of a closure.
///
/// Created by [`Pipeline::map`](crate::Pipeline::map).
pub struct Map<F> {
    f: F,
    state: StepState,
}

impl<F> Map<F> {
    pub(crate) fn new(f: F, stage: Arc<StageMetrics>) -> Self {
        Map {
            f,
            state: StepState::new(stage),
        }
    }
}

impl<T, U, F> Step<T> for Map<F>
where
    F: FnMut(T) -> U + Send + 'static,
    U: Send + 'static,
{
    type Out = U;

    fn apply<'a, const COUNT: bool, I>(&'a mut self, records: I) -> impl Iterator<Item = U> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        let (f, state) = (&mut self.f, &self.state);
        records.map(move |r| state.call(|| f(r)))
    }

    step_bookkeeping!(one_to_one);
}

impl<F> fmt::Debug for Map<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map").finish_non_exhaustive()
    }
}
