use std::fmt;
use std::sync::Arc;

use super::fused::{Step, StepState, step_bookkeeping};
use crate::metrics::StageMetrics;

/// Calls a closure on each record as it passes.
///
/// Created by [`Pipeline::inspect`](crate::Pipeline::inspect).
pub struct Inspect<F> {
    f: F,
    state: StepState,
}

impl<F> Inspect<F> {
    pub(crate) fn new(f: F, stage: Arc<StageMetrics>) -> Self {
        Inspect {
            f,
            state: StepState::new(stage),
        }
    }
}

impl<T, F> Step<T> for Inspect<F>
where
    F: FnMut(&T) + Send + 'static,
    T: Send + 'static,
{
    type Out = T;

    fn apply<'a, const COUNT: bool, I>(&'a mut self, records: I) -> impl Iterator<Item = T> + 'a
    where
        I: Iterator<Item = T> + 'a,
    {
        let (f, state) = (&mut self.f, &self.state);
        records.inspect(move |r| state.call(|| f(r)))
    }

    step_bookkeeping!(one_to_one);
}

impl<F> fmt::Debug for Inspect<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspect").finish_non_exhaustive()
    }
}
