//! Keyed aggregation: one accumulator per key, results at the end of input.

use std::fmt;
use std::marker::PhantomData;

use super::hash::IndexMap;

use super::agg::{Aggregate, update_counted};
use super::stage::{Emits, Reject, StatefulOp};
use super::{KeyOf, StateSize};
use crate::Result;
use crate::metrics::StageMetrics;
use crate::size::entry_bytes;

/// How a keyed stage's results become its output records.
pub trait Output<K, V>: Send + 'static {
    /// The output record.
    type Out: Send + 'static;
    /// The records for these `(key, result)` pairs, in their order.
    fn make(&mut self, groups: Vec<(K, V)>) -> Vec<Self::Out>;
}

/// `(key, result)` pairs, as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pairs;

impl<K: Send + 'static, V: Send + 'static> Output<K, V> for Pairs {
    type Out = (K, V);

    fn make(&mut self, groups: Vec<(K, V)>) -> Vec<(K, V)> {
        groups
    }
}

/// Groups records by key and runs an [`Aggregate`] over each group; emits one
/// record per key at the end of the input, in the order the keys first
/// appeared.
pub struct Aggregation<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    key: KF,
    agg: A,
    make: M,
    groups: IndexMap<KF::Key, A::Acc>,
    bytes: usize,
    record: PhantomData<fn(T)>,
}

impl<T, KF, A, M> Aggregation<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    pub(crate) fn new(key: KF, agg: A, make: M) -> Self {
        Aggregation {
            key,
            agg,
            make,
            groups: IndexMap::default(),
            bytes: 0,
            record: PhantomData,
        }
    }
}

impl<T, KF, A, M> fmt::Debug for Aggregation<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregation")
            .field("keys", &self.groups.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<T, KF, A, M> Emits for Aggregation<T, KF, A, M>
where
    KF: KeyOf<T>,
    A: Aggregate<T>,
    M: Output<KF::Key, A::Out>,
{
    type Out = M::Out;
}

impl<T, KF, A, M> StatefulOp<Vec<T>> for Aggregation<T, KF, A, M>
where
    T: fmt::Debug + Send + 'static,
    KF: KeyOf<T>,
    A: Aggregate<T>,
    M: Output<KF::Key, A::Out>,
{
    fn apply(
        &mut self,
        records: Vec<T>,
        _out: &mut Vec<M::Out>,
        rejects: &mut Vec<Reject>,
        stage: &StageMetrics,
    ) -> Result<()> {
        let mut absorbed = 0;
        for record in records {
            // A key seen before is found by reference: an owned key is made
            // only for a new one.
            let groups = &self.groups;
            let found = match self.key.with_key(&record, |k| groups.get_index_of(k)) {
                Ok(found) => found,
                Err(error) => {
                    rejects.push(Reject::of(error, &record));
                    continue;
                }
            };
            let (agg, bytes) = (&mut self.agg, &mut self.bytes);
            let acc = match found {
                Some(i) => self.groups.get_index_mut(i).expect("found above").1,
                None => {
                    let key = match self.key.key_of(&record) {
                        Ok(key) => key,
                        Err(error) => {
                            rejects.push(Reject::of(error, &record));
                            continue;
                        }
                    };
                    *bytes += entry_bytes::<KF::Key, A::Acc>() + key.heap_bytes();
                    let acc = agg.init();
                    *bytes += agg.acc_heap(&acc);
                    let (i, _) = self.groups.insert_full(key, acc);
                    self.groups.get_index_mut(i).expect("inserted").1
                }
            };
            update_counted(agg, acc, &record, bytes);
            absorbed += 1;
        }
        stage.absorb(absorbed);
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<M::Out>, stage: &StageMetrics) -> Result<()> {
        let groups: Vec<(KF::Key, A::Out)> = std::mem::take(&mut self.groups)
            .into_iter()
            .map(|(key, acc)| (key, self.agg.finish(acc)))
            .collect();
        self.bytes = 0;
        let made = self.make.make(groups);
        stage.expand(made.len());
        out.extend(made);
        Ok(())
    }

    fn state_size(&self) -> (u64, u64) {
        // The index map keeps a hash table of indices besides its entries.
        let bytes = self.bytes + self.groups.capacity() * std::mem::size_of::<usize>() * 8 / 7;
        (self.groups.len() as u64, bytes as u64)
    }
}
