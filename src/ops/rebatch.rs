use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use pin_project::{pin_project, pinned_drop};

use crate::metrics::StageMetrics;
use crate::{Batch, Result};

/// Regroups records into batches of exactly `size` records; only the last batch
/// may be smaller.
///
/// Created by [`Pipeline::rebatch`](crate::Pipeline::rebatch).
#[pin_project(PinnedDrop)]
#[must_use = "streams do nothing unless polled"]
pub struct Rebatch<S, T> {
    #[pin]
    upstream: S,
    size: usize,
    pending: VecDeque<T>,
    seq: u64,
    stage: Arc<StageMetrics>,
    done: bool,
}

impl<S, T> Rebatch<S, T> {
    pub(crate) fn new(upstream: S, size: usize, stage: Arc<StageMetrics>) -> Self {
        Rebatch {
            upstream,
            size,
            pending: VecDeque::new(),
            seq: 0,
            stage,
            done: false,
        }
    }
}

impl<S, T> Stream for Rebatch<S, T>
where
    S: Stream<Item = Result<Batch<T>>>,
{
    type Item = Result<Batch<T>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        loop {
            if this.pending.len() >= *this.size || (*this.done && !this.pending.is_empty()) {
                let n = this.pending.len().min(*this.size);
                let records: Vec<T> = this.pending.drain(..n).collect();
                this.stage.batch_out(records.len());
                let seq = *this.seq;
                *this.seq += 1;
                return Poll::Ready(Some(Ok(Batch::new(records).with_seq(seq))));
            }
            if *this.done {
                return Poll::Ready(None);
            }
            match ready!(this.upstream.as_mut().poll_next(cx)) {
                Some(Ok(batch)) => {
                    this.stage.batch_in(batch.len());
                    if this.pending.is_empty() && batch.len() == *this.size {
                        // Already the right size: pass the allocation through untouched.
                        this.stage.batch_out(batch.len());
                        let seq = *this.seq;
                        *this.seq += 1;
                        return Poll::Ready(Some(Ok(batch.with_seq(seq))));
                    }
                    this.pending.extend(batch);
                }
                Some(Err(e)) => {
                    // Records still held are not passed on: the run fails, and the
                    // error is what the user must see.
                    *this.done = true;
                    this.stage.abandon(this.pending.len());
                    this.pending.clear();
                    return Poll::Ready(Some(Err(e)));
                }
                None => *this.done = true,
            }
        }
    }
}

#[pinned_drop]
impl<S, T> PinnedDrop for Rebatch<S, T> {
    fn drop(self: Pin<&mut Self>) {
        // Records still waiting for a full batch when the run ended early.
        let this = self.project();
        this.stage.abandon(this.pending.len());
    }
}

impl<S, T> fmt::Debug for Rebatch<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebatch")
            .field("size", &self.size)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}
