use super::BatchOp;
use crate::Result;

/// Passes on the first `n` records, then ends the stream.
///
/// Created by [`Pipeline::take`](crate::Pipeline::take).
#[derive(Debug)]
pub struct Take {
    remaining: u64,
}

impl Take {
    pub(crate) fn new(n: u64) -> Self {
        Take { remaining: n }
    }
}

impl<T: Send + 'static> BatchOp<T> for Take {
    type Out = T;

    fn apply(&mut self, mut records: Vec<T>) -> Result<Vec<T>> {
        let keep = records
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        records.truncate(keep);
        self.remaining -= keep as u64;
        Ok(records)
    }

    fn is_done(&self) -> bool {
        self.remaining == 0
    }
}
