use tokio::sync::mpsc;

/// The one place channels between stages are made: always bounded, so a fast
/// producer waits for room instead of filling memory (no unbounded edge anywhere).
#[track_caller]
pub(crate) fn bounded<T>(capacity: usize) -> (mpsc::Sender<T>, mpsc::Receiver<T>) {
    assert!(
        capacity > 0,
        "a channel between stages needs a capacity of at least 1"
    );
    mpsc::channel(capacity)
}
