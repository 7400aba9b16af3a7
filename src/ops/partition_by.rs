use std::fmt;

use super::TryOp;
use crate::BoxError;
use crate::sink::{Keyed, PartitionKey};

/// Pairs each record with its partition key, checked to be a safe file name.
///
/// Created by [`Pipeline::partition_by`](crate::Pipeline::partition_by).
pub struct PartitionBy<F> {
    key: F,
}

impl<F> PartitionBy<F> {
    pub(crate) fn new(key: F) -> Self {
        PartitionBy { key }
    }
}

impl<T, K, F> TryOp<T> for PartitionBy<F>
where
    F: FnMut(&T) -> K + Send + 'static,
    K: Into<String>,
{
    type Out = Keyed<T>;
    type Partial = PartitionKey;

    fn try_apply(&mut self, record: &T) -> Result<PartitionKey, BoxError> {
        PartitionKey::new((self.key)(record)).map_err(Into::into)
    }

    fn emit(&mut self, record: T, key: PartitionKey, out: &mut Vec<Keyed<T>>) {
        out.push(Keyed::new(key, record));
    }
}

impl<F> fmt::Debug for PartitionBy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionBy").finish_non_exhaustive()
    }
}
